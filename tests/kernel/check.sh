#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# check.sh - run the dm-lakecrypt selftests in QEMU on both kernel lines
# (host side; `make check-kernel` calls this).
#
#   tests/kernel/check.sh [--lines "6.1 6.12"] [PATTERN...]
#
# PATTERNs select case files (e.g. t-30, m-10); default: every t-* case.
# For each line it runs tools/qemu/run.sh --entry tests/run-all.sh with the
# t-* cases (LC_CHECK_MEM MiB), then, when m-* cases are named (or with
# LAKECRYPT_MEM_TESTS=1), a second boot with them (memory pressure:
# 384 MiB and a virtio disk on a sparse mktemp host file), shows
# the guest output, and takes the counts from the guests' closing lines.  A harness failure
# (kernel WARN/BUG/oops/lockdep/hung task, timeout, guest death, build
# error) counts as one more failure.  Ends with one line
# "N passed, N failed, N skipped" summed over both lines; exit 1 if any
# failed.
#
# The lines boot at the same time (LC_CHECK_JOBS at once, default: as many
# as there are CPUs, at most one per line): a guest's shell scripts keep
# about one host CPU busy, so two guests take little longer than one.  Each
# line's output is shown whole, in line order, once that line has finished.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
lines="6.1 6.12"
if [ "${1:-}" = --lines ]; then lines=$2; shift 2; fi
mem=${LC_CHECK_MEM:-1024}
tmo=${LC_CHECK_TIMEOUT:-1500}
mtmo=${LC_CHECK_MEM_TIMEOUT:-2700}	# the memory boot

# PATTERNs for the main boot (t-*) and for the memory boot (m-*).
tpat=() mpat=()
for p in "$@"; do
	case $p in m-*) mpat+=("$p") ;; *) tpat+=("$p") ;; esac
done
main=1 membt=1
if [ $# -gt 0 ]; then
	[ ${#tpat[@]} -gt 0 ] || main=
	[ ${#mpat[@]} -gt 0 ] || membt=
elif [ "${LAKECRYPT_MEM_TESTS:-0}" = 1 ]; then
	mpat=(m-)
else
	# The memory boot (m-10-swap) has not yet run to its end on this
	# project's machines (issue 7): it is run by name or with
	# LAKECRYPT_MEM_TESTS=1, not by make check, until it does.
	membt=
fi

P=0 F=0 S=0
summary=()
res=$(mktemp -d)
trap 'rm -rf "$res"' EXIT
# boot LINE KIND MEM QEMU-ARGS PATTERN...: one guest running run-all.sh;
# its counts are appended to $res/<line>.counts ("p f s"), its summary
# line to $res/<line>.summary.
boot() {
	local line=$1 kind=$2 bmem=$3 qemu=$4 log out start rc secs counts p f s note
	shift 4
	log=$top/build/logs/check-kernel-$line$kind.log
	out=$(mktemp)
	start=$(date +%s)
	echo "=== kernel line $line${kind:+ ($kind boot: $bmem MiB${qemu:+, virtio disk})}"
	"$top/tools/qemu/run.sh" --line "$line" --entry tests/run-all.sh --mem "$bmem" \
		--timeout "$([ -n "$kind" ] && echo "$mtmo" || echo "$tmo")" --log "$log" ${1:+--args "$*"} ${qemu:+--qemu "$qemu"} | tee "$out"
	rc=${PIPESTATUS[0]}
	secs=$(($(date +%s) - start))
	counts=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$out" | tail -n1)
	if [ -n "$counts" ]; then
		read -r p _ f _ s _ <<<"$counts"
	else
		p=0 f=0 s=0
	fi
	note=
	if [ "$rc" -ne 0 ] && { [ "$f" -eq 0 ] || [ "$rc" -ne 1 ]; }; then
		# The guest counted no failure, or the harness saw more than the
		# tests did (kernel problem 3, timeout 124, build error 2).
		case $rc in
		3) note="kernel problem on the console" ;;
		124) note="timeout" ;;
		2) note="harness/build error" ;;
		*) note="harness exit $rc" ;;
		esac
		f=$((f + 1))
		echo "not ok - kernel line $line${kind:+ $kind}: $note (see $log)"
	fi
	[ -n "$counts" ] || note="${note:+$note, }no result line from the guest"
	echo "$p $f $s" >>"$res/$line.counts"
	echo "$line${kind:+ $kind}: $p passed, $f failed, $s skipped in ${secs}s${note:+ ($note)}" >>"$res/$line.summary"
	rm -f "$out"
}

# one_line LINE: every boot of one kernel line, one after the other.
one_line() {
	local line=$1 disk
	[ -z "$main" ] || boot "$line" "" "$mem" "" "${tpat[@]}"
	if [ -n "$membt" ]; then
		# Swap under memory pressure: 384 MiB of RAM, and a virtio disk
		# backed by a sparse host file (2 GiB: lakecrypt, then dm-crypt).
		disk=$(mktemp "${TMPDIR:-/tmp}/lct-swapdisk.XXXXXX")
		truncate -s 2G "$disk"
		boot "$line" memory 384 "-drive file=$disk,format=raw,if=virtio,cache=writeback" "${mpat[@]}"
		rm -f "$disk"
	fi
}

jobs_max=${LC_CHECK_JOBS:-$(nproc 2>/dev/null || echo 1)}
pids=()
for line in $lines; do
	while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
	one_line "$line" >"$res/$line.out" 2>&1 &
	pids+=($!)
done
# Show each line's output in order, as soon as it and the ones before it
# are done.
i=0
for line in $lines; do
	wait "${pids[$i]}"
	i=$((i + 1))
	cat "$res/$line.out"
	while read -r p f s; do
		P=$((P + p)) F=$((F + f)) S=$((S + s))
	done < <(cat "$res/$line.counts" 2>/dev/null)
	if [ ! -f "$res/$line.counts" ]; then
		echo "not ok - kernel line $line: no boot result"
		F=$((F + 1))
	fi
	while IFS= read -r l; do summary+=("$l"); done < <(cat "$res/$line.summary" 2>/dev/null)
done
echo "=== summary"
printf '%s\n' "${summary[@]}"
echo "$P passed, $F failed, $S skipped"
[ "$F" -eq 0 ]
