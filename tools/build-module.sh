#!/bin/bash
# Build dm-lakecrypt.ko for kernel release KVER in its own tree
# (build/kmod/KVER), so that builds for several kernels never share
# objects.  Prints the path of the module.  Extra arguments go to make
# (W=1, C=2, ...).
set -euo pipefail
kver=${1:?usage: build-module.sh KVER [make args]}
shift
top=$(cd "$(dirname "$0")/.." && pwd)
kdir=/usr/src/linux-headers-$kver
[ -f "$kdir/Makefile" ] || { echo "build-module: no headers for $kver in $kdir (run tools/setup-deps.sh)" >&2; exit 1; }
out=$top/build/kmod/$kver
mkdir -p "$out/kernel" "$out/include"
cp -a "$top"/kernel/. "$out/kernel/"
cp -a "$top"/include/. "$out/include/"
make -s -C "$kdir" M="$out/kernel" "$@" modules >&2
echo "$out/kernel/dm-lakecrypt.ko"
