#!/bin/sh
# Round trip of random data at sector sizes 512..4096 with I/O that
# straddles segment boundaries: O_DIRECT at odd sector offsets and sizes,
# buffered writes at odd byte offsets, fio verify with random block sizes,
# and a read after the device is torn down and set up again.
. ./lib.sh
lc_begin

SEG=16            # 8 KiB segments: boundaries everywhere
SB=$((SEG * 512))
OFF=2048          # 1 MiB before the data area
MIB=12
LEN=$((MIB * 2048))
BYTES=$((MIB * 1048576))
b=$(lc_brd $((MIB + 2))) || lc_bail "brd"
lc_randfile "$LC_WORK/plain" $((MIB * 1024))
lc_randfile "$LC_WORK/src" 512
have_fio=1
command -v fio >/dev/null || have_fio=0

for ss in 512 1024 2048 4096; do
	D=lct-rt$ss
	V=t30s$ss
	M=/dev/mapper/$D
	cp "$LC_WORK/plain" "$LC_WORK/model"
	lc_vol $D $V aes-xts-plain64 64 $SEG $b $OFF $LEN sector_size:$ss || { lc_notok "ss=$ss: set up $D"; continue; }
	lc_eq "ss=$ss: logical block size of the mapped device" $ss "$(blockdev --getss $M)"
	if [ $have_fio = 1 ]; then
		fio --name=v$ss --filename=$M --direct=1 --ioengine=psync --rw=randwrite \
			--bsrange=$ss-65536 --blockalign=$ss --size=$BYTES --io_size=4M \
			--verify=crc32c --verify_fatal=1 --do_verify=1 --randrepeat=0 \
			--output="$LC_WORK/fio.out" >/dev/null 2>&1
		st=$?
		lc_result $st "ss=$ss: fio randwrite bs $ss..64K aligned to $ss, crc32c verify"
		[ $st -eq 0 ] || lc_diag_file "$LC_WORK/fio.out" 30
	else
		lc_notok "ss=$ss: fio is not in the guest"
	fi
	lc_run "ss=$ss: O_DIRECT write of $MIB MiB" lct-blk pwrite -d $M 0 $BYTES "$LC_WORK/plain" 0
	# O_DIRECT writes that start one sector before a boundary and cross one or more.
	o=$((SB - ss)) n=$((3 * ss)) s=7
	for k in 1 2 3 4 5 6; do
		lct-blk pwrite -d $M $o $n "$LC_WORK/src" $s >"$LC_WORK/w.out" 2>&1 &&
			lct-blk pwrite "$LC_WORK/model" $o $n "$LC_WORK/src" $s >/dev/null || {
			lc_notok "ss=$ss: O_DIRECT write at $o len $n"
			lc_diag_file "$LC_WORK/w.out"
		}
		o=$((o + k * 5 * SB + SB - ss)) n=$((n + k * 3 * ss + SB)) s=$((s + 1111))
	done
	# Buffered writes at odd byte offsets and lengths across boundaries.
	for pair in "$((SB - 1)) 2" "$((3 * SB - 333)) 10001" "$((40 * SB + 17)) $((5 * SB + 5))" "$((BYTES - SB - 1)) $((SB + 1))" "1 1"; do
		set -- $pair
		lct-blk pwrite $M $1 $2 "$LC_WORK/src" 100 >"$LC_WORK/w.out" 2>&1 &&
			lct-blk pwrite "$LC_WORK/model" $1 $2 "$LC_WORK/src" 100 >/dev/null || {
			lc_notok "ss=$ss: buffered write at $1 len $2"
			lc_diag_file "$LC_WORK/w.out"
		}
	done
	# And plain dd with an odd block size through the page cache.
	dd if="$LC_WORK/src" of=$M bs=777 seek=13 skip=3 count=29 conv=notrunc 2>/dev/null &&
		dd if="$LC_WORK/src" of="$LC_WORK/model" bs=777 seek=13 skip=3 count=29 conv=notrunc 2>/dev/null ||
		lc_notok "ss=$ss: dd bs=777 seek=13 count=29"
	lc_dropcaches
	lc_run "ss=$ss: O_DIRECT and buffered writes across segment boundaries read back" \
		lct-blk cmp $M 0 "$LC_WORK/model" 0 $BYTES
	lc_run "ss=$ss: buffered read equals O_DIRECT read" \
		sh -c "dd if=$M bs=64k 2>/dev/null | cmp - '$LC_WORK/model'"
	lc_fails "ss=$ss: backing data area is not the plaintext" lct-blk cmp $b $((OFF * 512)) "$LC_WORK/model" 0 $SB
	lc_run "ss=$ss: the 1 MiB before the data area is untouched" lct-blk zero $b 0 $((OFF * 512))
	lc_run "ss=$ss: the 1 MiB after the data area is untouched" lct-blk zero $b $(((OFF + LEN) * 512)) 1048576
	dmsetup remove $D || lc_notok "ss=$ss: remove $D"
	lc_create $D "$(lc_table aes-xts-plain64 64 $V $SEG $b $OFF $LEN sector_size:$ss)" 2>/dev/null &&
		lc_msg $D key load all 2>/dev/null
	lc_run "ss=$ss: data reads back after remove, create, key load" lct-blk cmp $M 0 "$LC_WORK/model" 0 $BYTES
	dmsetup remove $D
done

# Per-segment keys really differ: the same plaintext in two segments gives
# different ciphertext on the backing device.
D=lct-rtk
lc_vol $D t30k aes-xts-plain64 64 $SEG $b $OFF 1024 || lc_bail "set up $D"
for seg in 3 9; do
	lct-blk pwrite -d /dev/mapper/$D $((seg * SB)) 4096 "$LC_WORK/src" 0 >/dev/null || lc_notok "write segment $seg"
done
lc_fails "same 4 KiB plaintext at the start of segments 3 and 9: different ciphertext" \
	lct-blk cmp $b $(((OFF + 3 * SEG) * 512)) $b $(((OFF + 9 * SEG) * 512)) 4096
