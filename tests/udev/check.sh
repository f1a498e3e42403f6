#!/bin/bash
# Host side of the udev tests: build, boot the QEMU machine once (kernel
# line 6.1, Debian 12's) with a virtio disk and run tests/udev/run-guest.sh
# in it.  Ends with "N passed, N failed, N skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
make -s -C agent >/dev/null || { echo "not ok 1 - build agent"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
img=$(mktemp "$top/build/udev-vda.XXXXXX")
trap 'rm -f "$img"' EXIT
truncate -s 48M "$img"
log=$(mktemp)
tools/qemu/run.sh --line "${LAKECRYPT_UDEV_LINE:-6.1}" --entry udev/run-guest.sh --mem 1024 --timeout 900 \
	--qemu "-drive file=$img,if=virtio,format=raw,cache=unsafe" | tee "$log"
rc=${PIPESTATUS[0]}
sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n1)
rm -f "$log"
if [ -z "$sum" ]; then
	echo "not ok - no result (run.sh exit $rc)"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
if [ "$rc" -ne 0 ] && echo "$sum" | grep -q ' 0 failed'; then
	echo "not ok - run.sh exit $rc (kernel problem or timeout)"
	echo "$sum" | sed -E 's/ 0 failed/ 1 failed/'
	exit 1
fi
echo "$sum"
[ "$rc" -eq 0 ]
