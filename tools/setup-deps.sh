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

stamp=/var/lib/apt/lakecrypt-updated
if [ ! -e "$stamp" ] || [ -n "$(find /var/lib/apt/lists -maxdepth 0 -newer "$stamp" 2>/dev/null)" ] ||
   ! apt-cache policy linux-headers-amd64 | grep -q bpo; then
	apt-get update -q
	touch "$stamp"
fi

pkgs=(build-essential make gcc cpio gzip kmod xz-utils bc flex bison
      libelf-dev sparse dkms
      qemu-system-x86 busybox-static dmsetup keyutils cryptsetup-bin fio
      linux-headers-amd64 linux-source-6.1)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The 6.12 line: headers from bookworm-backports, beside the 6.1 ones.
bpo_abi=$(apt-cache depends -t bookworm-backports linux-headers-amd64 2>/dev/null |
	  sed -n 's/.*Depends: linux-headers-//p' | head -n1)
[ -n "$bpo_abi" ] || { echo "setup-deps: cannot resolve the bookworm-backports kernel ABI" >&2; exit 1; }
if ! dpkg-query -W -f='${Status}' "linux-headers-$bpo_abi" 2>/dev/null | grep -q 'ok installed'; then
	apt-get install -y -q --no-install-recommends -t bookworm-backports "linux-headers-$bpo_abi"
fi
echo "setup-deps: ok"
