#!/bin/bash
# Host side of the end-to-end tests, for each kernel line: build the agent
# and the CLI, and boot the QEMU machine twice: tests/e2e/run-all.sh (the
# local KMS; it ends with the key lifecycle and tests/e2e/pg.sh, PostgreSQL
# on lakecrypt volumes, on the disks tools/qemu/pg-drives.sh attaches),
# then the KMS providers in one boot (providers-host.sh: local-kms, PyKMIP
# and the fake Cloud KMS on the host, reached through guestfwd; SoftHSM2
# in the guest).  Ends with "N passed, N failed, N skipped" over all of
# them.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
make -s -C agent >/dev/null || { echo "not ok 1 - build agent"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
tp=0 tf=0 ts=0

# tally LINE NAME LOG RC: add the summary line in LOG to the totals; a run
# without one, or that exited non-zero with no failed case, is a failure.
tally() {
	local sum p f s
	sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$3" | tail -n1)
	if [ -z "$sum" ]; then
		echo "not ok - $1: $2: no result (exit $4)"
		tf=$((tf + 1))
		return
	fi
	read -r p f s < <(echo "$sum" | sed -E 's/([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')
	tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + s))
	if [ "$4" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $1: $2: exit $4 (kernel problem or timeout)"
		tf=$((tf + 1))
	fi
}

# guest LINE ENTRY MEM [QEMU_ARGS]: a boot running ENTRY; host LINE SCRIPT:
# a host script
guest() {
	local log rc
	log=$(mktemp)
	tools/qemu/run.sh --line "$1" --entry "$2" --mem "$3" --timeout 1800 ${4:+--qemu "$4"} |
		tee "$log"
	rc=${PIPESTATUS[0]}
	tally "$1" "$2" "$log" "$rc"
	rm -f "$log"
}
host() {
	local log rc
	log=$(mktemp)
	"tests/e2e/$2" "$1" | tee "$log"
	rc=${PIPESTATUS[0]}
	tally "$1" "$2" "$log" "$rc"
	rm -f "$log"
}

for line in ${LAKECRYPT_LINES:-6.1 6.12}; do
	# PostgreSQL's disks for tests/e2e/pg.sh (run by run-all.sh).
	pgdir=$(mktemp -d /tmp/lakecrypt-e2e-pg.XXXXXX)
	if ! drives=$(tools/qemu/pg-drives.sh "$pgdir" pgdata:256 pgwal:192) || [ -z "$drives" ]; then
		echo "not ok - $line: PostgreSQL disks (tools/qemu/pg-drives.sh)"
		tf=$((tf + 1))
		drives=
	fi
	guest "$line" e2e/run-all.sh 1536 "$drives"
	rm -rf "$pgdir"
	host "$line" providers-host.sh
done
echo "$tp passed, $tf failed, $ts skipped"
[ "$tf" -eq 0 ]
