#!/bin/bash
# Host side of the udev and systemd tests: build, then boot the QEMU
# machine (kernel line 6.1, Debian 12's) twice:
#   udev/run-guest.sh      systemd-udevd started by hand, the rules on RAM
#                          disks, a loop device, a virtio disk and dm devices
#   udev/systemd-guest.sh  systemd as PID 1: the installed units, the
#                          hardened agent, lakecrypttab and the generator
# Ends with "N passed, N failed, N skipped" over both.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
make -s -C agent >/dev/null || { echo "not ok 1 - build agent"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
img=$(mktemp "$top/build/udev-vda.XXXXXX")
log=$(mktemp)
trap 'rm -f "$img" "$log"' EXIT
truncate -s 48M "$img"
line=${LAKECRYPT_UDEV_LINE:-6.1}
tp=0 tf=0 ts=0
for entry in udev/run-guest.sh udev/systemd-guest.sh; do
	extra=
	[ "$entry" = udev/run-guest.sh ] && extra="-drive file=$img,if=virtio,format=raw,cache=unsafe"
	tools/qemu/run.sh --line "$line" --entry "$entry" --mem 1024 --timeout 900 --qemu "$extra" | tee "$log"
	rc=${PIPESTATUS[0]}
	sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n1)
	if [ -z "$sum" ]; then
		echo "not ok - $entry: no result (run.sh exit $rc)"
		tf=$((tf + 1))
		continue
	fi
	read -r p f s < <(echo "$sum" | sed -E 's/([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')
	tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + s))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $entry: run.sh exit $rc (kernel problem or timeout)"
		tf=$((tf + 1))
	fi
done
echo "$tp passed, $tf failed, $ts skipped"
[ "$tf" -eq 0 ]
