#!/bin/sh
# allow_discards: without it the mapped device offers no discard (blkdiscard
# fails, data and backing untouched); with it blkdiscard works and reaches
# the backing device (a loop over tmpfs reads zeros there).
. ./lib.sh
lc_begin

SEG=128
MIB=8
LEN=$((MIB * 2048))
OFF=2048
BYTES=$((MIB * 1048576))
l=$(lc_loop $((MIB + 1))) || lc_bail "loop"
lc_randfile "$LC_WORK/plain" $((MIB * 1024))
lc_diag "backing $l: discard_max_bytes=$(cat /sys/block/${l#/dev/}/queue/discard_max_bytes)"

D=lct-dsc
M=/dev/mapper/$D
lc_vol $D t60 aes-xts-plain64 64 $SEG $l $OFF $LEN || lc_bail "set up $D"
lct-blk pwrite -d $M 0 $BYTES "$LC_WORK/plain" 0 >/dev/null || lc_bail "write"
q=/sys/block/$(lc_dmdev $D)/queue
lc_eq "without allow_discards: discard_max_bytes of the mapped device" 0 "$(cat $q/discard_max_bytes)"
lc_fails "without allow_discards: blkdiscard fails" blkdiscard -o 1048576 -l 1048576 $M
lc_dropcaches
lc_run "  data intact" lct-blk cmp $M 0 "$LC_WORK/plain" 0 $BYTES
lc_fails "  backing not discarded" lct-blk zero $l $(((OFF + 2048) * 512)) 1048576
dmsetup remove $D

lc_create $D "$(lc_table aes-xts-plain64 64 t60 $SEG $l $OFF $LEN allow_discards)" && lc_msg $D key load all ||
	lc_bail "set up $D with allow_discards"
q=/sys/block/$(lc_dmdev $D)/queue
dmb=$(cat $q/discard_max_bytes)
[ "$dmb" -gt 0 ] && lc_ok "with allow_discards: discard_max_bytes=$dmb" || lc_notok "with allow_discards: discard_max_bytes=$dmb"
lc_run "with allow_discards: blkdiscard of 1 MiB at 1 MiB works" blkdiscard -o 1048576 -l 1048576 $M
lc_run "  the backing range reads zeros (discard passed down)" lct-blk zero $l $(((OFF + 2048) * 512)) 1048576
lc_run "  data before it intact" lct-blk cmp $M 0 "$LC_WORK/plain" 0 1048576
lc_run "  data after it intact" lct-blk cmp $M 2097152 "$LC_WORK/plain" 2097152 $((BYTES - 2097152))
# A discard that straddles segment boundaries at odd segment offsets.
lc_run "blkdiscard straddling segments (64 KiB+4 KiB at 3 MiB-4 KiB)" blkdiscard -o $((3145728 - 4096)) -l $((65536 + 4096)) $M
lc_run "  the backing range reads zeros" lct-blk zero $l $(((OFF * 512) + 3145728 - 4096)) $((65536 + 4096))
lc_run "  neighbours intact" sh -c "lct-blk cmp $M 2097152 '$LC_WORK/plain' 2097152 $((1048576 - 4096)) &&
	lct-blk cmp $M $((3145728 + 65536)) '$LC_WORK/plain' $((3145728 + 65536)) 1048576"
lc_run "  the header area before the data area is untouched" lct-blk zero $l 0 $((OFF * 512))
lc_run "writes after a discard read back" sh -c "lct-blk pwrite -d $M 1048576 1048576 '$LC_WORK/plain' 1048576 >/dev/null &&
	lct-blk cmp $M 1048576 '$LC_WORK/plain' 1048576 1048576"

# After revoke (not ephemeral, no "discard"): user discards fail too.
lct-blk pread -d $l $(((OFF + 8192) * 512)) 1048576 "$LC_WORK/before" >/dev/null
lc_run "revoke" lc_msg $D revoke
lc_fails "after revoke: blkdiscard fails" blkdiscard -o 4194304 -l 1048576 $M
lc_run "  backing range unchanged" lct-blk cmp $l $(((OFF + 8192) * 512)) "$LC_WORK/before" 0 1048576
