#!/bin/bash
# Userspace unit tests (cmocka), run twice: a normal build and an
# AddressSanitizer + UndefinedBehaviorSanitizer build.  Then every libFuzzer
# target runs briefly over its corpus.  TAP out; ends with
# "N passed, N failed, N skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
# Tests here add 65,536 logon keys at a time.  Some host kernels (seen on a
# 6.18 build machine, not on the Debian kernels we boot) keep 4 bytes of
# root's key quota per key even after the keyring is cleared and destroyed,
# so repeated runs would exhaust the default 25 MB: give root headroom.
if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/kernel/keys/root_maxbytes ] &&
   [ "$(cat /proc/sys/kernel/keys/root_maxbytes)" -lt 1000000000 ]; then
	echo 1000000000 >/proc/sys/kernel/keys/root_maxbytes
fi
pass=0 fail=0 n=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

tap() {	# tap <rc> <description>
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then pass=$((pass + 1)); echo "ok $n - $2"
	else fail=$((fail + 1)); echo "not ok $n - $2"; sed 's/^/# /' "$log" | tail -n 60; fi
}

jobs_max=$(nproc 2>/dev/null || echo 1)
udir=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$udir"' EXIT
# unit_one <binary> <tag>: rc to $udir/<tag>.rc, output to .log, seconds to .t
unit_one() {
	local t0=$SECONDS
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"$1" >"$udir/$2.log" 2>&1
	echo $? >"$udir/$2.rc"
	echo $((SECONDS - t0)) >"$udir/$2.t"
}
for san in 0 1; do
	variant=plain; [ $san -eq 1 ] && variant=asan+ubsan
	make -s -j"$jobs_max" -C agent SAN=$san all unit >"$log" 2>&1
	tap $? "build ($variant) with -Wall -Wextra -Werror"
	out=build/agent; [ $san -eq 1 ] && out=build/agent-san
	# The programs share no state (each its own mktemp dirs, process
	# keyring and fake dm): run as many at once as there are CPUs, then
	# report them in order.
	progs=()
	for t in "$out"/unit/test-*; do
		[ -x "$t" ] && progs+=("$t")
	done
	for t in "${progs[@]}"; do
		while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
		unit_one "$t" "$variant-$(basename "$t")" &
	done
	wait
	for t in "${progs[@]}"; do
		tag=$variant-$(basename "$t")
		cp "$udir/$tag.log" "$log"
		rc=$(cat "$udir/$tag.rc" 2>/dev/null || echo 1)
		# A skipped case is a case CI did not run: it fails the program.
		skipped=$(grep -cE '^\[  SKIPPED \]' "$log")
		[ "$skipped" -gt 0 ] && rc=1
		tap $rc "$(basename "$t") ($variant): $(grep -cE '^\[       OK \]' "$log") cases passed, $(grep -cE '^\[  FAILED  \]' "$log") failed, $skipped skipped ($(cat "$udir/$tag.t" 2>/dev/null) s)"
	done
done

# The fuzz targets are single-threaded: run as many at once as there are
# CPUs (each still gets its full time), then report them in order.
if ls tests/fuzz/fuzz-*.c >/dev/null 2>&1; then
	make -s -j"$jobs_max" -C agent fuzz >"$log" 2>&1
	tap $? "build libFuzzer targets (clang, ASan+UBSan)"
	# make check: 12 s per target (LAKECRYPT_FUZZ_SECONDS for longer runs).
	secs=${LAKECRYPT_FUZZ_SECONDS:-12}
	fdir=$(mktemp -d)
	trap 'rm -f "$log"; rm -rf "$fdir" "$udir"' EXIT
	mkdir -p build/fuzz/crashes
	fuzz_one() {	# fuzz_one <binary>: rc to $fdir/<name>.rc, output to .log
		local f=$1 name work corpus
		name=$(basename "$f")
		corpus=tests/fuzz/corpus/${name#fuzz-}
		work=$(mktemp -d)
		[ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
		"$f" -print_final_stats=1 -max_total_time="$secs" -timeout=10 \
			-artifact_prefix=build/fuzz/crashes/"$name"- "$work" >"$fdir/$name.log" 2>&1
		echo $? >"$fdir/$name.rc"
		rm -rf "$work"
	}
	targets=()
	for f in build/fuzz/fuzz-*; do
		[ -x "$f" ] || continue
		targets+=("$f")
		while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
		fuzz_one "$f" &
	done
	wait
	for f in "${targets[@]}"; do
		name=$(basename "$f")
		cp "$fdir/$name.log" "$log"
		rc=$(cat "$fdir/$name.rc" 2>/dev/null || echo 1)
		runs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | awk '{print $2}')
		if [ "$rc" -eq 0 ]; then
			tap 0 "$name: $secs s of fuzzing, $runs runs, no crash"
		else
			tap "$rc" "$name: crashed or failed after $runs runs (input kept in build/fuzz/crashes/)"
		fi
	done
fi
echo "$pass passed, $fail failed, 0 skipped"
[ $fail -eq 0 ]
