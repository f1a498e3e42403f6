#!/bin/bash
# Host side of the end-to-end tests: build the agent and the CLI, boot the
# QEMU machine on each kernel line and run tests/e2e/run-all.sh in it, then
# tests/e2e/aws-kms.sh (tests/e2e/aws-kms-host.sh: AWS KMS on the host).
# run-all.sh ends with tests/e2e/pg.sh (PostgreSQL on lakecrypt volumes) in
# the same boot, on the disks tools/qemu/pg-drives.sh attaches.
# Ends with "N passed, N failed, N skipped" over both lines.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
make -s -C agent >/dev/null || { echo "not ok 1 - build agent"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
tp=0 tf=0 ts=0
for line in ${LAKECRYPT_LINES:-6.1 6.12}; do
	log=$(mktemp)
	# PostgreSQL's disks for tests/e2e/pg.sh (run by run-all.sh).
	pgdir=$(mktemp -d /tmp/lakecrypt-e2e-pg.XXXXXX)
	drives=$(tools/qemu/pg-drives.sh "$pgdir" pgdata:256 pgwal:192) || drives=
	[ -n "$drives" ] || echo "not ok - $line: PostgreSQL disks (tools/qemu/pg-drives.sh): pg.sh will fail"
	tools/qemu/run.sh --line "$line" --entry e2e/run-all.sh --mem 1536 --timeout 1800 \
		${drives:+--qemu "$drives"} | tee "$log"
	rc=${PIPESTATUS[0]}
	rm -rf "$pgdir"
	sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n1)
	rm -f "$log"
	if [ -z "$sum" ]; then
		echo "not ok - $line: no result (run.sh exit $rc)"
		tf=$((tf + 1))
		continue
	fi
	read -r p f s < <(echo "$sum" | sed -E 's/([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')
	tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + s))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $line: run.sh exit $rc (kernel problem or timeout)"
		tf=$((tf + 1))
	fi
	# AWS KMS end to end: local-kms on the host, reached over TLS through
	# QEMU's restricted user network.
	sum=$(tests/e2e/aws-kms-host.sh "$line" | tee /dev/stderr | grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' | tail -n1)
	if [ -z "$sum" ]; then
		echo "not ok - $line: aws-kms: no result"
		tf=$((tf + 1))
		continue
	fi
	read -r p f s < <(echo "$sum" | sed -E 's/([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')
	tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + s))
done
echo "$tp passed, $tf failed, $ts skipped"
[ "$tf" -eq 0 ]
