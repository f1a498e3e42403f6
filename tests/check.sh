#!/bin/bash
# make check: every test suite of the project, one after the other.
# Each suite ends with "N passed, N failed, N skipped"; this script adds
# them up and ends with the same line for the whole run.  A suite that dies
# without its summary line counts as one failure.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

suites=(${LAKECRYPT_SUITES:-tests/lint.sh tests/unit/run.sh tests/cli/test-cli.sh tests/kms/check.sh tests/etcd/check.sh tests/system/check.sh tests/sim/check.sh tests/kernel/check.sh tests/e2e/check.sh tests/udev/check.sh tests/deb/check.sh})
tp=0 tf=0 ts=0 bad=0
# Every failing case is printed again at the very end, so that the last
# lines of the run (all a CI summary may show) name what failed.
fails=$(mktemp)
trap 'rm -f "$fails"' EXIT
for s in "${suites[@]}"; do
	echo "=== $s"
	log=$(mktemp)
	start=$SECONDS
	bash "$s" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	grep -E '^not ok ' "$log" | sed "s|^|$s: |" >>"$fails"
	sum=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log" | tail -n1)
	rm -f "$log"
	if [ -z "$sum" ]; then
		echo "=== $s: no summary line (exit $rc): counted as 1 failure" | tee -a "$fails"
		tf=$((tf + 1)); bad=1
		continue
	fi
	read -r p f sk < <(echo "$sum" | sed -E 's/^([A-Za-z-]+: )?([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?$/\2 \3 \5/')
	tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + ${sk:-0}))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "=== $s: exit $rc with no failed test: counted as 1 failure" | tee -a "$fails"
		tf=$((tf + 1))
	fi
	[ "$rc" -ne 0 ] && bad=1
	echo "=== $s: $sum ($((SECONDS - start)) s)"
done
if [ -s "$fails" ]; then
	echo "=== failed:"
	cat "$fails"
fi
echo "$tp passed, $tf failed, $ts skipped"
[ $bad -eq 0 ] && [ $tf -eq 0 ]
