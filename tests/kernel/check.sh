#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# check.sh - run the dm-lakecrypt selftests in QEMU on both kernel lines
# (host side; `make check-kernel` calls this).
#
#   tests/kernel/check.sh [--lines "6.1 6.12"] [PATTERN...]
#
# PATTERNs select case files (e.g. t-30); default: all.  For each line it
# runs tools/qemu/run.sh --entry tests/run-all.sh, shows the guest output,
# and takes the counts from the guest's closing line.  A harness failure
# (kernel WARN/BUG/oops/lockdep/hung task, timeout, guest death, build
# error) counts as one more failure.  Ends with one line
# "N passed, N failed, N skipped" summed over both lines; exit 1 if any
# failed.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
lines="6.1 6.12"
if [ "${1:-}" = --lines ]; then lines=$2; shift 2; fi
mem=${LC_CHECK_MEM:-1024}
tmo=${LC_CHECK_TIMEOUT:-1500}

P=0 F=0 S=0
summary=()
for line in $lines; do
	log=$top/build/logs/check-kernel-$line.log
	out=$(mktemp)
	start=$(date +%s)
	echo "=== kernel line $line"
	"$top/tools/qemu/run.sh" --line "$line" --entry tests/run-all.sh --mem "$mem" \
		--timeout "$tmo" --log "$log" ${1:+--args "$*"} | tee "$out"
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
	fi
	[ -n "$counts" ] || note="${note:+$note, }no result line from the guest"
	P=$((P + p)) F=$((F + f)) S=$((S + s))
	summary+=("$line: $p passed, $f failed, $s skipped in ${secs}s${note:+ ($note)}")
	rm -f "$out"
done
echo "=== summary"
printf '%s\n' "${summary[@]}"
echo "$P passed, $F failed, $S skipped"
[ "$F" -eq 0 ]
