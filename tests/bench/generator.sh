#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# lakecrypt-generator's rate at its limit (review 11b, finding 2): the
# generator reads at most 256 lines that are not comments
# (Documentation/lakecrypttab.md) and must end well before systemd kills a
# generator (90 s).  Runs the generator of this tree on the host (no
# systemd involved) for three files of 256 lines each and prints lines per
# second, seconds per file and CPU seconds; asserts nothing.
#
#   tests/bench/generator.sh [RUNS]     RUNS per file, default 3
#
# Files: "good" (256 valid volumes, _netdev,timeout=2min: a device
# timeout drop-in each), "plain" (256 valid volumes, no options), "bad"
# (256 lines with a bad workspace, no nofail: a failing unit each).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed -e 's|@SBINDIR@|/usr/sbin|g' -e 's|@SYSCONFDIR@|/etc|g' -e 's|@UNITDIR@|/usr/lib/systemd/system|g' \
	"$top/tools/systemd/lakecrypt-generator.in" >"$work/gen"
max=$(sed -n 's/^maxlines=\([0-9]*\)$/\1/p' "$work/gen")
i=1
while [ "$i" -le "$max" ]; do
	printf 'vol%d /dev/disk/by-id/wwn-0x5000c500a1b2%04d ws1 _netdev,timeout=2min\n' "$i" "$i" >>"$work/good"
	printf 'vol%d UUID=3f2c9d1e-8a4b-4c6d-9e0f-1a2b3c4d%04d ws1\n' "$i" "$i" >>"$work/plain"
	printf 'vol%d /dev/sd%d w$s\n' "$i" "$i" >>"$work/bad"
	i=$((i + 1))
done
chmod 644 "$work/good" "$work/plain" "$work/bad"
echo "lakecrypt-generator, $max lines per file, $runs runs each, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %8s %10s %10s %12s\n' file run seconds cpu-s lines/s
for f in good plain bad; do
	r=1
	while [ "$r" -le "$runs" ]; do
		rm -rf "$work/out"; mkdir "$work/out"
		# wall and CPU seconds of the generator and its children (bash's time)
		TIMEFORMAT='%R %U %S'
		t=$( { time LAKECRYPTTAB="$work/$f" sh "$work/gen" "$work/out" 2>/dev/null; } 2>&1)
		set -- $t
		awk -v f="$f" -v r="$r" -v e="$1" -v u="$2" -v s="$3" -v n="$max" \
			'BEGIN { printf "%-6s %8d %10.2f %10.2f %12.0f\n", f, r, e, u + s, (e > 0 ? n / e : 0) }'
		r=$((r + 1))
	done
done
