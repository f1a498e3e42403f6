#!/bin/bash
# QEMU arguments (for run.sh --qemu) that attach the PostgreSQL disks:
#
#   pg-drives.sh DIR SERIAL:MiB...
#
# The image of tools/qemu/mkpgdisk.sh read-only (serial lc-pg), then one
# sparse scratch disk DIR/SERIAL.img of MiB MiB per argument (serial
# SERIAL), virtio, cache=unsafe (nothing needs to outlive the boot).  DIR
# must exist (a mktemp -d of the caller, which removes it).  Prints one
# line of blank-separated words; messages go to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: pg-drives.sh DIR SERIAL:MiB...}
shift
[ -d "$dir" ] || { echo "pg-drives: no directory $dir" >&2; exit 2; }
case $dir in *' '*) echo "pg-drives: $dir has a blank (run.sh splits --qemu on blanks)" >&2; exit 2 ;; esac
img=$("$here/mkpgdisk.sh") || exit 2
w="-drive file=$img,if=none,id=lcpg,format=raw,readonly=on -device virtio-blk-pci,drive=lcpg,serial=lc-pg"
for a in "$@"; do
	s=${a%%:*} mb=${a#*:}
	[[ $s =~ ^[a-z0-9-]{1,20}$ && $mb =~ ^[0-9]{1,6}$ ]] || { echo "pg-drives: bad disk '$a'" >&2; exit 2; }
	rm -f "$dir/$s.img"
	truncate -s "${mb}M" "$dir/$s.img"
	w+=" -drive file=$dir/$s.img,if=none,id=d$s,format=raw,cache=unsafe,discard=unmap"
	w+=" -device virtio-blk-pci,drive=d$s,serial=$s"
done
echo "$w"
