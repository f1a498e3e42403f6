# shellcheck shell=bash
# Shared by the scripts that start test servers (tests/kms/kmip.sh,
# tests/e2e/providers-host.sh).  Source it.

# kill_tree PID: PID and every process it forked, children first.  PyKMIP's
# server forks; its children outlive a kill of the parent (they were found
# reparented to init after the suite), holding memory on the test machine.
kill_tree() {
	local c
	for c in $(sed -nE 's/^([0-9]+) \(.*\) [A-Za-z] ([0-9]+) .*/\1 \2/p' /proc/[0-9]*/stat 2>/dev/null |
		awk -v p="$1" '$2 == p { print $1 }'); do
		kill_tree "$c"
	done
	kill -9 "$1" 2>/dev/null
}
