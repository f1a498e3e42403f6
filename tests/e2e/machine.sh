# shellcheck shell=sh
# SPDX-License-Identifier: GPL-2.0
# Sourced by the provider end-to-end scripts in the guest (aws-kms.sh,
# kmip.sh, gcp-kms.sh, pkcs11.sh), which tests/e2e/providers.sh runs one
# after another in one boot: loads what they share, once per boot.
#   lc_machine         dm-lakecrypt, one 65 MiB RAM disk (/dev/ram0) and
#                      key quotas for 4,096-segment volumes
#   lc_machine_net     the same, and eth0 up as 10.0.2.15/24 on QEMU's
#                      restricted user network (tests/e2e/providers-host.sh)
# Both bail (lc_bail) when a step fails.
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
