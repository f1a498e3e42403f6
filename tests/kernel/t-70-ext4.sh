#!/bin/sh
# A filesystem on lakecrypt: mkfs.ext4, mount, write files, umount, tear
# the device down, set it up again from the keyring, mount, verify.
. ./lib.sh
lc_begin

lc_modprobe ext4 crc32c_intel crc32c_generic
b=$(lc_brd 50) || lc_bail "brd"
D=lct-fs
M=/dev/mapper/$D
# 48 MiB, 128 KiB segments, 4 KiB sectors
lc_vol $D t70 aes-xts-plain64 64 256 $b 2048 98304 sector_size:4096 || lc_bail "set up $D"
mnt=$LC_WORK/mnt
mkdir -p $mnt
# busybox ash runs its own mke2fs applet first: name the e2fsprogs one.
lc_run "mkfs.ext4 (e2fsprogs)" /usr/sbin/mke2fs -q -t ext4 -F $M
lc_run "mount" mount -t ext4 $M $mnt
lc_randfile "$LC_WORK/big" 8192
lc_run "write files" sh -c "cp '$LC_WORK/big' $mnt/big && mkdir $mnt/d &&
	for i in \$(seq 1 50); do head -c \$((i * 977)) '$LC_WORK/big' >$mnt/d/f\$i; done && sync"
(cd $mnt && find . -type f | sort | xargs sha256sum) >"$LC_WORK/sums"
lc_run "umount" umount $mnt
lc_run "remove the device" dmsetup remove $D
lc_create $D "$(lc_table aes-xts-plain64 64 t70 256 $b 2048 98304 sector_size:4096)" && lc_msg $D key load all
lc_result $? "create it again and key load all"
if [ -x /usr/sbin/e2fsck ]; then
	lc_run "e2fsck -fn finds no error" /usr/sbin/e2fsck -fn $M
fi
lc_run "mount again" mount -t ext4 $M $mnt
lc_run "files verify (sha256)" sh -c "cd $mnt && sha256sum -c '$LC_WORK/sums' >/dev/null"
lc_eq "file count" 51 "$(find $mnt -type f | wc -l)"
lc_run "umount" umount $mnt
