#!/bin/bash
# Install everything lakecrypt needs to build, test and benchmark on a
# Debian 12 host.  Idempotent: a second run does nothing but check.
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "setup-deps: run as root (apt-get)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

bpo=/etc/apt/sources.list.d/lakecrypt-bookworm-backports.list
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	echo 'deb http://deb.debian.org/debian bookworm-backports main' >"$bpo"
	rm -f /var/lib/apt/lakecrypt-updated
fi

# apt lists: refresh when older than a day or when backports are missing.
stamp=/var/lib/apt/lakecrypt-updated
if [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ] ||
   ! apt-cache madison linux-headers-amd64 | grep -q bpo; then
	apt-get update -q
	touch "$stamp"
fi

pkgs=(build-essential make gcc cpio gzip kmod xz-utils bc flex bison
      libelf-dev sparse dkms
      qemu-system-x86 busybox-static dmsetup keyutils cryptsetup-bin fio
      mount
      linux-source-6.1
      pkg-config libssl-dev libcurl4-openssl-dev libdevmapper-dev libkeyutils-dev
      libjson-c-dev libcmocka-dev libblkid-dev clang libclang-rt-14-dev e2fsprogs python3
      udev systemd go-md2man man-db groff-base
      debhelper dh-dkms lintian debootstrap
      libp11-kit-dev	# the Cryptoki header of the PKCS#11 provider
      postgresql-15 postgresql-client-15
      strace	# tests/system: the generator opens /dev/kmsg once
      )
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
# PostgreSQL is only carried into the QEMU guest (tools/qemu/mkpgdisk.sh):
# no cluster of its own on the host, unless the host already asked for one.
if [[ " ${missing[*]} " == *" postgresql-15 "* ]] && [ ! -e /etc/postgresql-common/createcluster.conf ]; then
	mkdir -p /etc/postgresql-common
	echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf
fi
if [ ${#missing[@]} -gt 0 ]; then
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The kernels the tests boot (6.1 from bookworm, 6.12 from backports):
# headers installed, images unpacked under build/ (never installed).
top=$(cd "$(dirname "$0")/.." && pwd)
for line in 6.1 6.12; do
	"$top/tools/qemu/kernels.sh" fetch "$line" >/dev/null
done
# Emulators and reference clients of the cloud KMS tests (tests/kms).
"$top/tools/setup-kms-tools.sh"
echo "setup-deps: ok"
