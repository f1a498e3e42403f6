# shellcheck shell=sh
# SPDX-License-Identifier: GPL-2.0
# Sourced by the provider end-to-end scripts in the guest (aws-kms.sh,
# kmip.sh, gcp-kms.sh, etcd.sh, pkcs11.sh), which tests/e2e/providers.sh
# runs one after another in one boot: loads what they share, once per boot,
# and the helpers they share.
#   lc_machine         dm-lakecrypt, one 65 MiB RAM disk (/dev/ram0) and
#                      key quotas for 4,096-segment volumes
#   lc_machine_net     the same, and eth0 up as 10.0.2.15/24 on QEMU's
#                      restricted user network (tests/e2e/providers-host.sh)
# Both bail (lc_bail) when a step fails.
#   lc_wait_revoked NAME SECONDS
#                      waits until the kernel's status of mapping NAME says
#                      revoked; prints the state it saw last (see below)
lc_machine() {
	grep -q '^dm_lakecrypt ' /proc/modules ||
		insmod /lakecrypt/dm-lakecrypt.ko || lc_bail "insmod dm-lakecrypt"
	[ -b /dev/ram0 ] || modprobe brd rd_nr=1 rd_size=66560 || lc_bail "brd"
	echo 1000000 >/proc/sys/kernel/keys/root_maxkeys
	echo 100000000 >/proc/sys/kernel/keys/root_maxbytes
}

lc_machine_net() {
	lc_machine
	ip -4 addr show dev eth0 2>/dev/null | grep -q 'inet 10\.0\.2\.15/' && return 0
	modprobe virtio_pci
	modprobe virtio_net
	ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 || lc_bail "network"
}

# lc_wait_revoked NAME SECONDS: reads `dmsetup status NAME` once a second,
# at most SECONDS times, until its state (the target's first status word,
# the line's 4th field) is "revoked", and prints the state it read last
# ("revoked", another state, or nothing when there is no such mapping).
# SECONDS only ends a hung test (a loaded TCG guest runs several times
# slower): the caller checks what it prints, e.g. with lc_eq.
lc_wait_revoked() {
	_lw_name=$1 _lw_max=$2 _lw_i=0
	while [ $_lw_i -lt "$_lw_max" ]; do
		set -- $(dmsetup status "$_lw_name")
		[ "${4:-}" = revoked ] && break
		sleep 1
		_lw_i=$((_lw_i + 1))
	done
	echo "${4:-}"
}
