#!/bin/bash
# lakecrypt benchmark: boots the QEMU test machine once and runs
# tests/bench/bench.sh in it (fio on brd: raw, dm-crypt default and tuned,
# lakecrypt with 1 and 1024 segments; memory per loaded key; time from
# revoke to every volume failing I/O; revocation detection: from the KMS's
# first denial to confirmation and every volume failing I/O, per
# watch_interval_s / confirm_denials setting, and KMS calls per interval).
# Before that, natively: the agent's CPU time and KMS calls to open a
# 65,536-segment volume, with the local KMS and through the AWS provider
# (local-kms on loopback), and the fleet revocation model
# (tests/sim/fleet-sim.py).  Then tools/bench-pg.sh (its own boot): pgbench on
# raw, dm-crypt and lakecrypt.
#
#   tools/bench.sh [--line 6.1|6.12] [--mem MiB] [--module FILE.ko]
#                  [-- bench.sh arguments, e.g. runtime=5 parts=io]
#
# The report (LC lines, prefix stripped) is on stdout and in
# build/bench/<line>-<kernel release>-<date>.txt; the console log is
# build/logs/<line>-bench.log.  Exit code is run.sh's.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
line=6.1 mem=1536 extra=()
while [ $# -gt 0 ]; do
	case $1 in
	--line) line=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--module) extra+=(--module "$2"); shift 2 ;;
	--) shift; break ;;
	*) sed -n '6,7p' "$0" >&2; exit 2 ;;
	esac
done
kver=$("$top/tools/qemu/kernels.sh" kver "$line")
# Tests here add 65,536 logon keys at a time.  Some host kernels (seen on a
# 6.18 build machine, not on the Debian kernels we boot) keep 4 bytes of
# root's key quota per key even after the keyring is cleared and destroyed,
# so repeated runs would exhaust the default 25 MB: give root headroom.
if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/kernel/keys/root_maxbytes ] &&
   [ "$(cat /proc/sys/kernel/keys/root_maxbytes)" -lt 1000000000 ]; then
	echo 1000000000 >/proc/sys/kernel/keys/root_maxbytes
fi
make -s -C "$top/agent" all bench
echo "bench: agent, natively: open of a 65,536-segment volume (keyring real, device-mapper stubbed)"
"$top/build/agent/bench/bench-open" 65536 5 2>/dev/null
echo "bench: the same through the AWS KMS provider (SigV4 over HTTPS to local-kms behind stunnel)"
aws_work=$(mktemp -d)
(
	. "$top/tests/kms/lib-local-kms.sh"
	trap 'lkms_stop; rm -rf "$aws_work"' EXIT
	lkms_start "$aws_work" IP:127.0.0.1 || { cat "$aws_work/lkms.err"; exit 1; }
	key=$(lkms_create "$aws_work") || { echo "bench: cannot create a key in local-kms"; exit 1; }
	AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=benchSecretKey/0123456789 \
		"$top/build/agent/bench/bench-open" --aws "$key" "https://127.0.0.1:$LKMS_TLS_PORT" \
		"$aws_work/ca.pem" 65536 5 2>/dev/null
)
echo "bench: fleet revocation model (tests/sim/fleet-sim.py, Documentation/fleet-revocation.md)"
python3 "$top/tests/sim/fleet-sim.py"
mkdir -p "$top/build/bench"
report=$top/build/bench/$line-$kver-$(date +%Y%m%d-%H%M%S).txt
start=$(date +%s)
set +e
"$top/tools/qemu/run.sh" --line "$line" --entry bench/bench.sh --args "$*" --mem "$mem" \
	--timeout 3600 "${extra[@]}" | tee "$report"
rc=${PIPESTATUS[0]}
set -e
echo "bench: $(( $(date +%s) - start )) s in all, report $report" >&2
# PostgreSQL on raw, dm-crypt and lakecrypt, and the kill switch under
# load: a boot of its own (tools/bench-pg.sh).
prc=0
"$top/tools/bench-pg.sh" --line "$line" --mem "$mem" "${extra[@]}" || prc=$?
[ "$rc" -ne 0 ] || rc=$prc
exit "$rc"
