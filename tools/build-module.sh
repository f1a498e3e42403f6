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
# Headers of the running kernel come from the distribution (Debian:
# linux-headers-$(uname -r)); tools/setup-deps.sh installs only those of
# the QEMU test kernels.  make install can also do without a build here.
if [ ! -f "$kdir/Makefile" ]; then
	echo "build-module: no headers for $kver in $kdir: install them (Debian: apt-get install linux-headers-$kver;" \
		"tools/setup-deps.sh installs only the QEMU test kernels' ones), or make install MODULE=dkms" \
		"(DKMS builds the module when headers arrive) or MODULE=none (no module)" >&2
	exit 1
fi
out=$top/build/kmod/$kver
mkdir -p "$out/kernel" "$out/include"
cp -a "$top"/kernel/. "$out/kernel/"
cp -a "$top"/include/. "$out/include/"
make -s -C "$kdir" M="$out/kernel" "$@" modules >&2
echo "$out/kernel/dm-lakecrypt.ko"
