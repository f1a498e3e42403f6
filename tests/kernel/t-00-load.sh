#!/bin/sh
# The module loads and registers target "lakecrypt" with the version of
# include/uapi/linux/dm-lakecrypt.h.
. ./lib.sh
lc_begin

lc_ok "insmod $LC_MODULE"
v=$(dmsetup targets | awk '$1 == "lakecrypt" {print $2}')
lc_eq "dmsetup targets lists lakecrypt with the header's version" "v1.1.0" "$v"
lc_run "modinfo-style license is GPL-compatible (module not tainting with P)" \
	sh -c '! grep -q "^dm_lakecrypt .*(.*P.*)" /proc/modules'
