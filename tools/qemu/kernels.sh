#!/bin/bash
# Debian kernels for the QEMU test machine.
#   kernels.sh kver  <line>   print the kernel release of line 6.1 or 6.12
#   kernels.sh fetch <line>   extract linux-image-<release> into
#                             build/kernels/<release> (not installed on the
#                             host), run depmod there, make sure the matching
#                             linux-headers are installed; print the folder
# The release is resolved from the archive at run time (Debian drops old
# ABIs): the newest linux-headers-amd64 whose version starts with <line>.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)

die() { echo "kernels.sh: $*" >&2; exit 1; }

kver() {
	local line=$1 ver=
	case $line in 6.1|6.12) ;; *) die "unknown line '$line' (6.1 or 6.12)" ;; esac
	# Newest metapackage version of this line, whatever suite it is in
	# (6.1: bookworm / bookworm-security, 6.12: bookworm-backports).
	ver=$(apt-cache madison linux-headers-amd64 | awk -F'|' '{gsub(/[ \t]/, "", $2); print $2}' |
	      grep -E "^${line//./\\.}\.[0-9]" | sort -V | tail -n1) || true
	[ -n "$ver" ] || die "no linux-headers-amd64 $line.x in the apt lists (run tools/setup-deps.sh)"
	apt-cache depends "linux-headers-amd64=$ver" | sed -n 's/.*Depends: linux-headers-//p' | head -n1
}

fetch() {
	local line=$1 kv dir tmp deb
	kv=$(kver "$line")
	[ -n "$kv" ] || die "cannot resolve the kernel release of line $line"
	export DEBIAN_FRONTEND=noninteractive
	if ! dpkg-query -W -f='${Status}' "linux-headers-$kv" 2>/dev/null | grep -q 'ok installed'; then
		echo "kernels.sh: installing linux-headers-$kv" >&2
		# pkg/suite pins only this package (and what it needs) to the suite,
		# unlike -t which would upgrade unrelated packages too.
		local suite=
		[ "$line" = 6.12 ] && suite=/bookworm-backports
		apt-get install -y -q --no-install-recommends "linux-headers-$kv$suite" >&2
	fi
	dir=$top/build/kernels/$kv
	mkdir -p "$top/build/kernels"
	exec 8>"$top/build/kernels/.$kv.lock"
	flock 8  # parallel runs for the same release extract once
	if [ ! -f "$dir/.complete" ]; then
		echo "kernels.sh: fetching linux-image-$kv" >&2
		rm -rf "$dir"
		tmp=$(mktemp -d "$top/build/kernels/.dl.XXXXXX")
		(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "linux-image-$kv" >&2)
		deb=$(ls "$tmp"/linux-image-*.deb)
		mkdir -p "$dir"
		dpkg -x "$deb" "$dir"
		rm -rf "$tmp"
		[ -f "$dir/boot/vmlinuz-$kv" ] || die "no vmlinuz in linux-image-$kv"
		depmod -b "$dir" "$kv"
		touch "$dir/.complete"
	fi
	exec 8>&-
	echo "$dir"
}

case ${1:-} in
kver)  kver "${2:?usage: kernels.sh kver <line>}" ;;
fetch) fetch "${2:?usage: kernels.sh fetch <line>}" ;;
*) die "usage: kernels.sh kver|fetch <line>" ;;
esac
