# SPDX-License-Identifier: GPL-2.0
# lakecrypt_open_volumes: whether lakecrypt volumes are open on this
# system, for what removes lakecrypt's CLI, agent or module: `make
# uninstall` (tools/install.sh sources this file) and the prerm of both
# Debian packages, lakecrypt and lakecrypt-dkms (tools/debian/mkprerm.sh
# puts this file into them).  Prints "lakecrypt volumes are open: NAME
# ..." (dmsetup ls --target lakecrypt) or why that cannot be told, and
# succeeds: the removal is then refused.  Fails, printing nothing, when
# none is open, or when dmsetup cannot answer (not there, no
# device-mapper) while dm-lakecrypt is not loaded: it is never built in,
# so without /sys/module/dm_lakecrypt nothing can be open (e.g. a
# container or chroot without device-mapper).  POSIX sh.
# LAKECRYPT_SYS_MODULE replaces /sys/module (tests/system).
lakecrypt_open_volumes() {
	if ! lc_ov=$(dmsetup ls --target lakecrypt 2>&1); then
		[ -d "${LAKECRYPT_SYS_MODULE:-/sys/module}/dm_lakecrypt" ] || return 1
		echo "cannot tell whether lakecrypt volumes are open (dmsetup ls --target lakecrypt: $lc_ov)"
		return 0
	fi
	lc_ov=$(printf '%s\n' "$lc_ov" | awk 'NF && $0 != "No devices found" { printf "%s%s", s, $1; s = " " }')
	[ -n "$lc_ov" ] || return 1
	echo "lakecrypt volumes are open: $lc_ov"
}
