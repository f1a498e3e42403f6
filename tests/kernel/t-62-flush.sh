#!/bin/sh
# Flush and FUA pass through: O_SYNC/O_DSYNC writes, fsync, fio with fsync
# and sync=1, dd conv=fsync; data verified.
. ./lib.sh
lc_begin

b=$(lc_brd 20) || lc_bail "brd"
D=lct-fl
M=/dev/mapper/$D
lc_vol $D t62 aes-xts-plain64 64 128 $b 0 32768 sector_size:4096 || lc_bail "set up $D"
lc_randfile "$LC_WORK/plain" 1024
lc_run "O_DIRECT|O_SYNC|O_DSYNC write (FUA) + fsync" lct-blk pwrite -d -s $M 0 1048576 "$LC_WORK/plain" 0
lc_run "buffered O_SYNC write + fsync" lct-blk pwrite -s $M 1048576 1048576 "$LC_WORK/plain" 0
lc_run "dd conv=fsync" dd if="$LC_WORK/plain" of=$M bs=64k seek=32 conv=fsync
lc_dropcaches
lc_run "  all three read back" sh -c "lct-blk cmp $M 0 '$LC_WORK/plain' 0 1048576 &&
	lct-blk cmp $M 1048576 '$LC_WORK/plain' 0 1048576 && lct-blk cmp $M 2097152 '$LC_WORK/plain' 0 1048576"
lc_run "fio write fsync=1 (buffered), crc32c verify" fio --name=fs --filename=$M --rw=write --bs=4k \
	--offset=4M --size=1M --fsync=1 --verify=crc32c --verify_fatal=1 --output="$LC_WORK/fio1"
lc_run "fio randwrite direct sync=1 (O_SYNC, FUA), crc32c verify" fio --name=fua --filename=$M --rw=randwrite \
	--bs=8k --direct=1 --sync=1 --offset=6M --size=2M --verify=crc32c --verify_fatal=1 --output="$LC_WORK/fio2"
lc_run "fio randwrite direct fdatasync=4, crc32c verify" fio --name=fds --filename=$M --rw=randwrite \
	--bs=16k --direct=1 --fdatasync=4 --offset=8M --size=2M --verify=crc32c --verify_fatal=1 --output="$LC_WORK/fio3"
lc_run "sync + blockdev --flushbufs" sh -c "sync && blockdev --flushbufs $M"

# Header silent on an empty flush with no key loaded; dm-crypt passes it.
lc_msg $D key wipe all
lc_kmark
if dd if=/dev/null of=$M conv=fsync,notrunc >/dev/null 2>&1; then st=succeeds; else st="fails: $(lc_klog | tail -n1)"; fi
lc_diag "note: a flush with no key loaded $st"
