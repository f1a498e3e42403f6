#!/bin/bash
# Host side of the udev and systemd tests: build, then boot the QEMU
# machine (kernel line 6.1, Debian 12's) three times:
#   udev/run-guest.sh      systemd-udevd started by hand, the rules on RAM
#                          disks, a loop device, a virtio disk and dm devices
#   udev/systemd-guest.sh  systemd as PID 1: the installed units, the
#                          hardened agent, lakecrypttab and the generator;
#                          ends with lakecrypttab and the enabled agent in
#                          place and an orderly shutdown (volumes closed by
#                          their units, checked during it)
#   udev/systemd-guest.sh boot2
#                          the same two virtio disks booted again: the
#                          volume opened at boot, before multi-user.target
# Ends with "N passed, N failed, N skipped" over both.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
make -s -C agent >/dev/null || { echo "not ok 1 - build agent"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
img=$(mktemp "$top/build/udev-vda.XXXXXX")
# The systemd boots share a state disk (a tar archive of /etc/lakecrypt,
# /var/lib/lakecrypt, ... that the guest's /init unpacks before systemd
# starts, see tools/qemu/mkinitramfs.sh) and a volume disk.
stdisk=$(mktemp "$top/build/udev-state.XXXXXX")
voldisk=$(mktemp "$top/build/udev-vol.XXXXXX")
log=$(mktemp)
trap 'rm -f "$img" "$stdisk" "$voldisk" "$log"' EXIT
truncate -s 48M "$img"
truncate -s 16M "$stdisk"
truncate -s 40M "$voldisk"
line=${LAKECRYPT_UDEV_LINE:-6.1}
sysdisks="-drive file=$stdisk,if=none,id=lcst,format=raw,cache=unsafe"
sysdisks+=" -device virtio-blk-pci,drive=lcst,serial=lakecrypt-state"
sysdisks+=" -drive file=$voldisk,if=none,id=lcvol,format=raw,cache=unsafe"
sysdisks+=" -device virtio-blk-pci,drive=lcvol,serial=lakecrypt-vol"
tp=0 tf=0 ts=0
for run in udev/run-guest.sh udev/systemd-guest.sh udev/systemd-guest.sh:boot2; do
	entry=${run%%:*} args= extra=$sysdisks
	case $run in *:*) args=${run#*:} ;; esac
	[ "$entry" = udev/run-guest.sh ] && extra="-drive file=$img,if=virtio,format=raw,cache=unsafe"
	tools/qemu/run.sh --line "$line" --entry "$entry" ${args:+--args "$args"} \
		--log "$top/build/logs/$line-$(basename "$entry" .sh)${args:+-$args}.log" \
		--mem 1024 --timeout 900 --qemu "$extra" | tee "$log"
	rc=${PIPESTATUS[0]}
	sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n1)
	if [ -z "$sum" ]; then
		echo "not ok - $run: no result (run.sh exit $rc)"
		tf=$((tf + 1))
		continue
	fi
	read -r p f s < <(echo "$sum" | sed -E 's/([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')
	tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + s))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $run: run.sh exit $rc (kernel problem or timeout)"
		tf=$((tf + 1))
	fi
done
echo "$tp passed, $tf failed, $ts skipped"
[ "$tf" -eq 0 ]
