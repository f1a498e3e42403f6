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
# e2e_by_line: tests/e2e/check.sh once per kernel line, the lines at the
# same time (as tests/kernel/check.sh boots them): a guest keeps about one
# host CPU busy.  Each line's output is shown whole, in order, when it is
# done; ends with the summed "N passed, N failed, N skipped".
e2e_by_line() {
	local d l p f sk tp=0 tf=0 ts=0 rc=0 pids=() i=0 sum
	d=$(mktemp -d)
	# Built once here, so that the two runs do not build it at once.
	make -s -C agent >/dev/null 2>&1
	for l in ${LAKECRYPT_LINES:-6.1 6.12}; do
		LAKECRYPT_LINES=$l bash tests/e2e/check.sh >"$d/$l.out" 2>&1 &
		pids+=($!)
	done
	for l in ${LAKECRYPT_LINES:-6.1 6.12}; do
		wait "${pids[$i]}" || rc=1
		i=$((i + 1))
		echo "=== tests/e2e/check.sh, kernel line $l"
		cat "$d/$l.out"
		sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$d/$l.out" | tail -n1)
		if [ -z "$sum" ]; then
			echo "not ok - e2e line $l: no summary line"
			tf=$((tf + 1))
			continue
		fi
		read -r p _ f _ sk _ <<<"$sum"
		tp=$((tp + p)) tf=$((tf + f)) ts=$((ts + sk))
	done
	rm -rf "$d"
	echo "$tp passed, $tf failed, $ts skipped"
	[ $rc -eq 0 ] && [ $tf -eq 0 ]
}

for s in "${suites[@]}"; do
	echo "=== $s"
	log=$(mktemp)
	start=$SECONDS
	if [ "$s" = tests/e2e/check.sh ] && [ "${LAKECRYPT_E2E_PARALLEL:-1}" = 1 ]; then
		e2e_by_line
	else
		bash "$s"
	fi 2>&1 | tee "$log"
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
