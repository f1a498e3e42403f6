#!/bin/bash
# PostgreSQL benchmark (part of make bench): boots the QEMU machine once
# with the PostgreSQL disk and two scratch disks (tools/qemu/pg-drives.sh)
# and runs tests/bench/pg.sh in it: pgbench on the raw virtio disk, on
# dm-crypt and on lakecrypt with 1 and 1,024 segments (TPS, latency,
# ratios lakecrypt/dm-crypt), then the kill-switch timings under load.
#
#   tools/bench-pg.sh [--line 6.1|6.12] [--mem MiB] [--module FILE.ko]
#                     [-- pg.sh arguments, e.g. scale=5 clients=4 duration=30]
#
# The report (LC lines, prefix stripped) is on stdout and in
# build/bench/pg-<line>-<kernel release>-<date>.txt.  Exit code is run.sh's.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
line=6.1 mem=1536 extra=()
while [ $# -gt 0 ]; do
	case $1 in
	--line) line=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--module) extra+=(--module "$2"); shift 2 ;;
	--) shift; break ;;
	*) sed -n '7,8p' "$0" >&2; exit 2 ;;
	esac
done
kver=$("$top/tools/qemu/kernels.sh" kver "$line")
make -s -C "$top/agent"
work=$(mktemp -d /tmp/lakecrypt-bench-pg.XXXXXX)
trap 'rm -rf "$work"' EXIT
# pgbench: 1 MiB of lakecrypt header + 1 GiB (1 or 1,024 segments).
qemu=$("$top/tools/qemu/pg-drives.sh" "$work" pgbench:1025 pgbwal:257)
mkdir -p "$top/build/bench"
report=$top/build/bench/pg-$line-$kver-$(date +%Y%m%d-%H%M%S).txt
start=$(date +%s)
set +e
"$top/tools/qemu/run.sh" --line "$line" --entry bench/pg.sh --args "$*" --mem "$mem" \
	--timeout 3600 --log "$top/build/logs/$line-bench-pg.log" --qemu "$qemu" "${extra[@]}" | tee "$report"
rc=${PIPESTATUS[0]}
set -e
echo "bench-pg: $(( $(date +%s) - start )) s in all, report $report" >&2
exit "$rc"
