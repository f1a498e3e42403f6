#!/bin/bash
# Register dm-lakecrypt with DKMS and build (and install) it.
#   dkms-install.sh [--build-only] [KVER...]   default KVER: the running kernel
# --build-only builds without installing, then unregisters again (used by
# the tests to prove the DKMS path works for every kernel line).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
hdr=$top/include/uapi/linux/dm-lakecrypt.h
ver=$(awk '/LAKECRYPT_VERSION_(MAJOR|MINOR|PATCH)/ { v = v (v ? "." : "") $3 } END { print v }' "$hdr")
build_only=0
if [ "${1:-}" = --build-only ]; then build_only=1; shift; fi
[ $# -gt 0 ] || set -- "$(uname -r)"

src=/usr/src/lakecrypt-$ver
rm -rf "$src"
mkdir -p "$src"
cp -a "$top/kernel" "$top/include" "$src/"
find "$src" \( -name '*.o' -o -name '*.ko' -o -name '.*.cmd' -o -name '*.mod*' \) -delete
sed "s/@VERSION@/$ver/" "$top/kernel/dkms.conf" >"$src/dkms.conf"
dkms remove -m lakecrypt -v "$ver" --all >/dev/null 2>&1 || true
dkms add -m lakecrypt -v "$ver"
rc=0
for k in "$@"; do
	if [ $build_only -eq 1 ]; then
		dkms build -m lakecrypt -v "$ver" -k "$k" || rc=1
	else
		dkms install -m lakecrypt -v "$ver" -k "$k" || rc=1
	fi
done
if [ $build_only -eq 1 ]; then
	dkms remove -m lakecrypt -v "$ver" --all >/dev/null
	rm -rf "$src"
fi
exit $rc
