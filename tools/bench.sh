#!/bin/bash
# lakecrypt benchmark: boots the QEMU test machine once and runs
# tests/bench/bench.sh in it (fio on brd: raw, dm-crypt default and tuned,
# lakecrypt with 1 and 1024 segments; memory per loaded key).
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
mkdir -p "$top/build/bench"
report=$top/build/bench/$line-$kver-$(date +%Y%m%d-%H%M%S).txt
start=$(date +%s)
set +e
"$top/tools/qemu/run.sh" --line "$line" --entry bench/bench.sh --args "$*" --mem "$mem" \
	--timeout 3600 "${extra[@]}" | tee "$report"
rc=${PIPESTATUS[0]}
set -e
echo "bench: $(( $(date +%s) - start )) s in all, report $report" >&2
exit "$rc"
