#!/bin/sh
# No leak: after a warm-up round, with the module unloaded, SUnreclaim/Slab
# are measured; then the module is loaded, devices are created, keyed, used,
# revoked, wiped and removed (four rounds), the keys dropped and the module
# removed.  The
# unreclaimable slab must come back to where it was, within 512 KiB
# (a leak of one crypto transform per key would be tens of MiB here, one
# 64-byte key copy per key 1 MiB); lakecrypt slab caches must be gone.
# snap() sets s<N>_u, s<N>_s, s<N>_l with eval.
# shellcheck disable=SC2154
. ./lib.sh
lc_begin

TOL=512  # kB
b=$(lc_brd 24) || lc_bail "brd"
lc_randfile "$LC_WORK/plain" 1024
dd if=/dev/urandom of="$LC_WORK/keys" bs=64 count=2048 2>/dev/null

snap() {
	keyctl clear $LC_KEYRING >/dev/null 2>&1
	sync
	echo 3 >/proc/sys/vm/drop_caches
	sleep 2 # key garbage collection and RCU callbacks
	echo 3 >/proc/sys/vm/drop_caches
	eval "${1}_u=$(lc_meminfo SUnreclaim) ${1}_s=$(lc_meminfo Slab) ${1}_l=$(lc_slab_lakecrypt)"
}

round() { # I
	for v in 0 1 2; do
		lct-addkeys "lakecrypt:t90r$v:" 0 2048 64 "$LC_WORK/keys" 2>/dev/null || return 1
		dmsetup create lct-u$v --table "0 $((2048 * 8)) lakecrypt aes-xts-plain64 :64:logon:lakecrypt:t90r$v: 8 $b $((v * 2048 * 8)) t90r$v" || return 1
		dmsetup message lct-u$v 0 key load all || return 1
		lct-blk pwrite -d /dev/mapper/lct-u$v 0 1048576 "$LC_WORK/plain" 0 >/dev/null || return 1
		lct-blk cmp /dev/mapper/lct-u$v 0 "$LC_WORK/plain" 0 1048576 >/dev/null || return 1
	done
	dmsetup message lct-u0 0 revoke || return 1
	dmsetup message lct-u1 0 key wipe 0-1000 || return 1
	lct-blk pread -d /dev/mapper/lct-u1 0 4096 "$LC_WORK/buf" >/dev/null 2>&1
	dmsetup suspend lct-u2 && dmsetup resume lct-u2 || return 1
	for v in 0 1 2; do dmsetup remove lct-u$v || return 1; done
	keyctl clear $LC_KEYRING
}

# A warm-up round first, so that one-time allocations (crypto algorithm
# instances, dm-delay... whatever the kernel keeps around) are in the baseline
# and only what grows with the rounds is measured.
round 0 >"$LC_WORK/round.out" 2>&1 || { lc_diag_file "$LC_WORK/round.out"; lc_bail "warm-up round"; }
rmmod dm_lakecrypt 2>"$LC_WORK/rmmod.err"
lc_result $? "rmmod with no device left (module reference count back to 0)" || lc_diag_file "$LC_WORK/rmmod.err"
snap s0
lc_diag "without the module: SUnreclaim $s0_u kB, Slab $s0_s kB"
lc_module_load || lc_bail "insmod"
ok=0
for i in 1 2 3 4; do
	round $i >"$LC_WORK/round.out" 2>&1 || { ok=1; lc_diag_file "$LC_WORK/round.out"; break; }
done
lc_result $ok "4 rounds: 3 devices x 2048 keys, I/O, revoke, wipe, suspend/resume, remove"
snap s1
lc_diag "module loaded, devices removed: SUnreclaim $s1_u kB (+$((s1_u - s0_u))), Slab $s1_s kB, lakecrypt caches $s1_l bytes"
lc_eq "lakecrypt slab caches hold nothing with no device" 0 "$s1_l"
rmmod dm_lakecrypt 2>"$LC_WORK/rmmod.err"
lc_result $? "rmmod after the rounds" || lc_diag_file "$LC_WORK/rmmod.err"
snap s2
d=$((s2_u - s0_u))
lc_diag "after rmmod: SUnreclaim $s2_u kB ($d kB from the start), Slab $s2_s kB ($((s2_s - s0_s)) kB)"
[ $d -le $TOL ] && lc_ok "SUnreclaim back where it started (+$d kB, tolerance $TOL kB)" ||
	lc_notok "SUnreclaim back where it started (+$d kB, tolerance $TOL kB)"
[ -r /proc/slabinfo ] && lc_eq "no lakecrypt slab cache after rmmod" "" "$(grep lakecrypt /proc/slabinfo)"
lc_module_load && lc_ok "module loads again" || lc_notok "module loads again"
