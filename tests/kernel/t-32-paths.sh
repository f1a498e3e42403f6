#!/bin/sh
# The I/O path over three kinds of backing device, with each way of running
# crypto pinned by an optional parameter: brd (reads complete in the
# submitting task, so they may be decrypted inline), a loop device over
# tmpfs (reads complete in loop's worker) and dm-delay (reads complete in
# dm-delay's worker, later).  Data written reads back, fio verifies, no
# I/O error; the table line prints the options back.
. ./lib.sh
lc_begin

SEG=256
MIB=8
LEN=$((MIB * 2048))
BYTES=$((MIB * 1048576))
lc_randfile "$LC_WORK/plain" $((MIB * 1024))
lc_modprobe dm_delay
b=$(lc_brd $((MIB + 1))) || lc_bail "brd"
l=$(lc_loop $((MIB + 1)) p) || lc_bail "loop device"
l2=$(lc_loop $((MIB + 1)) q) || lc_bail "loop device for dm-delay"
dmsetup create lct-delay --table "0 $(((MIB + 1) * 2048)) delay $l2 0 5" || lc_bail "dm-delay"
lc_keys t32 $((LEN / SEG)) 64 || lc_bail "keys"

n=0
for bk in "brd:$b" "loop:$l" "dm-delay:/dev/mapper/lct-delay"; do
	name=${bk%%:*}
	dev=${bk#*:}
	for opts in "" "no_read_workqueue no_write_workqueue" "no_inline_crypt" "same_cpu_crypt" "no_inline_crypt same_cpu_crypt"; do
		n=$((n + 1))
		tag="$name${opts:+, $opts}"
		D=lct-p
		M=/dev/mapper/$D
		# shellcheck disable=SC2086
		lc_create $D "$(lc_table aes-xts-plain64 64 t32 $SEG $dev 2048 $LEN $opts)" || { lc_notok "$tag: create"; continue; }
		lc_msg $D key load all || lc_notok "$tag: key load"
		set -- $opts
		tbl_opts=$(dmsetup table $D | awk '{for (i = 10; i <= NF; i++) printf "%s ", $i}')
		lc_eq "$tag: table prints the options back" "${opts:+$# $opts }" "$tbl_opts"
		lc_run "$tag: O_DIRECT write ${MIB} MiB" lct-blk pwrite -d $M 0 $BYTES "$LC_WORK/plain" 0
		lc_dropcaches
		lc_run "$tag: O_DIRECT read back" lct-blk cmp $M 0 "$LC_WORK/plain" 0 $BYTES
		lc_run "$tag: buffered read back" sh -c "dd if=$M bs=1M count=$MIB 2>/dev/null | cmp - '$LC_WORK/plain'"
		fio --name=p$n --filename=$M --direct=1 --ioengine=psync --rw=randrw --bs=4k-64k \
			--bs_unaligned=0 --size=2M --offset=4M --offset_increment=2M --numjobs=2 --verify=crc32c \
			--output="$LC_WORK/fio.out" >/dev/null 2>&1
		st=$?
		lc_result $st "$tag: fio randrw 4k-64k, 2 jobs, crc32c verify"
		[ $st -eq 0 ] || lc_diag_file "$LC_WORK/fio.out" 20
		lc_eq "$tag: io_errors" 0 "$(lc_status $D errors)"
		dmsetup remove $D || lc_notok "$tag: remove"
	done
done
dmsetup remove lct-delay
