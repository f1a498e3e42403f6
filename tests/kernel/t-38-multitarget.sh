#!/bin/sh
# Two lakecrypt targets in one table (the second starts at sector 1024 of
# the mapped device): each has its own volume, keys and messages (addressed
# by sector), and its IV counts from its own data area, not from the start
# of the mapped device.
. ./lib.sh
lc_begin

SEG=64
b=$(lc_brd 4) || lc_bail "brd"
lc_keys t38a 16 64 && lc_keys t38b 16 64 || lc_bail "keys"
D=lct-multi
M=/dev/mapper/$D
printf '0 1024 lakecrypt aes-xts-plain64 :64:logon:lakecrypt:t38a: 64 %s 0 t38a\n1024 1024 lakecrypt aes-xts-plain64 :64:logon:lakecrypt:t38b: 64 %s 4096 t38b\n' $b $b >"$LC_WORK/table"
lc_kmark
dmsetup create $D "$LC_WORK/table" >"$LC_WORK/c.out" 2>&1 || { lc_klog >>"$LC_WORK/c.out"; lc_diag_file "$LC_WORK/c.out"; lc_bail "create $D with two targets"; }
lc_run "key load all for the target at sector 0" lc_msg $D key load all
lc_eq "  first target: 16 keys" "16" "$(dmsetup status $D | awk 'NR == 1 {print $6}')"
lc_eq "  second target: 0 keys" "0" "$(dmsetup status $D | awk 'NR == 2 {print $6}')"
lc_fails "  the second target still refuses I/O" lct-blk pread -d $M $((1024 * 512)) 4096 "$LC_WORK/buf"
dmsetup message $D 1024 key load all >"$LC_WORK/m.out" 2>&1
lc_result $? "key load all for the target at sector 1024 (dmsetup message $D 1024 ...)"
lc_eq "  second target: 16 keys" "16" "$(dmsetup status $D | awk 'NR == 2 {print $6}')"
lc_randfile "$LC_WORK/plain" 1024
lc_run "write 1 MiB across both targets" lct-blk pwrite -d $M 0 1048576 "$LC_WORK/plain" 0
lc_dropcaches
lc_run "  read back" lct-blk cmp $M 0 "$LC_WORK/plain" 0 1048576
for s in 0 3; do
	dmsetup create lct-dmc --table "0 $SEG crypt aes-xts-plain64 $(lc_keyhex t38b $s 64) $((s * SEG)) $b $((4096 + s * SEG))" || lc_notok "dm-crypt table"
	lc_run "dm-crypt reads segment $s of the second target (IV from its own data area)" \
		lct-blk cmp /dev/mapper/lct-dmc 0 "$LC_WORK/plain" $(((1024 + s * SEG) * 512)) $((SEG * 512))
	dmsetup remove lct-dmc
done
dmsetup message $D 1024 revoke >/dev/null 2>&1
lc_result $? "revoke the second target only"
lc_eq "  first target still active" active "$(dmsetup status $D | awk 'NR == 1 {print $4}')"
lc_eq "  second target revoked" revoked "$(dmsetup status $D | awk 'NR == 2 {print $4}')"
lc_run "  first target still readable" lct-blk cmp $M 0 "$LC_WORK/plain" 0 524288
lc_fails "  second target refuses I/O" lct-blk pread -d $M 524288 4096 "$LC_WORK/buf"

# A length that is not a whole number of segments: the last segment is
# partial (4 sectors) and works like the others.
dmsetup remove $D
lc_keys t38c 17 64 || lc_bail "keys"
lc_create $D "0 1028 lakecrypt aes-xts-plain64 :64:logon:lakecrypt:t38c: 64 $b 2048 t38c" || lc_bail "create $D (1028 sectors)"
lc_eq "16 segments + 4 sectors: 17 segments" 17 "$(lc_status $D segments)"
lc_msg_fail $D "key load 17 is out of range" "range|segment|beyond" key load 17
lc_run "key load all (17 keys)" lc_msg $D key load all
lc_run "write all 1028 sectors" lct-blk pwrite -d $M 0 $((1028 * 512)) "$LC_WORK/plain" 0
lc_dropcaches
lc_run "  read back" lct-blk cmp $M 0 "$LC_WORK/plain" 0 $((1028 * 512))
dmsetup create lct-dmc --table "0 4 crypt aes-xts-plain64 $(lc_keyhex t38c 16 64) 1024 $b $((2048 + 1024))" || lc_notok "dm-crypt table"
lc_run "dm-crypt with key 16 reads the partial segment 16" lct-blk cmp /dev/mapper/lct-dmc 0 "$LC_WORK/plain" $((1024 * 512)) 2048
dmsetup remove lct-dmc
