#!/bin/sh
# A segment without a key fails I/O with EIO, promptly, while keyed
# segments work.  A failed read returns neither plaintext nor ciphertext
# (the reader's buffer is checked), a failed write changes nothing on the
# backing device.  key wipe -> I/O fails; key load -> works, data intact.
. ./lib.sh
lc_begin

SEG=64
SB=$((SEG * 512))
LEN=1024 # 16 segments
OFF=2048
b=$(lc_brd 2) || lc_bail "brd"
D=lct-nokey
M=/dev/mapper/$D
lc_vol $D t40 aes-xts-plain64 64 $SEG $b $OFF $LEN || lc_bail "set up $D"
lc_randfile "$LC_WORK/plain" $((LEN / 2))
lct-blk pwrite -d $M 0 $((LEN * 512)) "$LC_WORK/plain" 0 >/dev/null || lc_bail "initial write"
lct-blk pread -d $b $((OFF * 512)) $((LEN * 512)) "$LC_WORK/cipher" >/dev/null || lc_bail "read backing"

lc_run "key wipe 5" lc_msg $D key wipe 5
e0=$(lc_status $D errors)

# no_leak FILE OFF LEN: no 512-byte sector of FILE equals plaintext or
# ciphertext of the same sector.
no_leak() {
	_i=0
	while [ $_i -lt $(($3 / 512)) ]; do
		if lct-blk cmp "$1" $((_i * 512)) "$LC_WORK/plain" $(($2 + _i * 512)) 512 >/dev/null; then
			echo "sector $_i of the buffer is plaintext"
			return 1
		fi
		if lct-blk cmp "$1" $((_i * 512)) "$LC_WORK/cipher" $(($2 + _i * 512)) 512 >/dev/null; then
			echo "sector $_i of the buffer is ciphertext"
			return 1
		fi
		_i=$((_i + 1))
	done
	head -c 16 "$1" | od -An -tx1 | sed 's/^/buffer starts:/'
}

t0=$(lc_now_ms)
out=$(timeout 10 lct-blk pread -d $M $((5 * SB)) 4096 "$LC_WORK/buf")
st=$?
t1=$(lc_now_ms)
case $out in
*"errno=5 "*) lc_ok "O_DIRECT read of segment 5 (no key) fails with EIO in $((t1 - t0)) ms" ;;
*) lc_notok "O_DIRECT read of segment 5 (no key) fails with EIO (exit $st: $out)" ;;
esac
[ $((t1 - t0)) -lt 5000 ] && lc_ok "  promptly (< 5 s)" || lc_notok "  promptly (< 5 s): took $((t1 - t0)) ms"
lc_run "  reader's buffer holds no plaintext and no ciphertext" no_leak "$LC_WORK/buf" $((5 * SB)) 4096
out=$(timeout 10 lct-blk pread -d $M $((5 * SB + SB - 8192)) 8192 "$LC_WORK/buf")
case $out in
*"errno=5 "*) lc_ok "O_DIRECT read of the last 8 KiB of segment 5 fails with EIO" ;;
*) lc_notok "O_DIRECT read of the last 8 KiB of segment 5 fails with EIO ($out)" ;;
esac
lc_run "  reader's buffer holds no plaintext and no ciphertext" no_leak "$LC_WORK/buf" $((6 * SB - 8192)) 8192
out=$(timeout 10 lct-blk pread -d $M $((5 * SB - 4096)) 8192 "$LC_WORK/buf")
case $out in
*"errno=5 "*|"ret=4096 "*) lc_ok "O_DIRECT read straddling segments 4|5 does not return segment 5 ($out)" ;;
*) lc_notok "O_DIRECT read straddling segments 4|5 does not return segment 5 ($out)" ;;
esac
dd if="$LC_WORK/buf" of="$LC_WORK/buf.5" bs=4096 skip=1 count=1 2>/dev/null
lc_run "  second half of that buffer (segment 5) holds no plaintext or ciphertext" no_leak "$LC_WORK/buf.5" $((5 * SB)) 4096
lc_dropcaches
lc_fails "buffered read of segment 5 fails" \
	timeout 10 dd if=$M of="$LC_WORK/buf" bs=4096 skip=$((5 * SB / 4096)) count=1
lc_run "O_DIRECT read of segment 4 works" lct-blk cmp $M $((4 * SB)) "$LC_WORK/plain" $((4 * SB)) $SB
lc_run "O_DIRECT read of segment 6 works" lct-blk cmp $M $((6 * SB)) "$LC_WORK/plain" $((6 * SB)) $SB

t0=$(lc_now_ms)
out=$(timeout 10 lct-blk pwrite -d $M $((5 * SB)) 4096 "$LC_WORK/plain" 0)
t1=$(lc_now_ms)
case $out in
*"errno=5 "*) lc_ok "O_DIRECT write to segment 5 (no key) fails with EIO in $((t1 - t0)) ms" ;;
*) lc_notok "O_DIRECT write to segment 5 (no key) fails with EIO ($out)" ;;
esac
lc_fails "buffered write + fsync to segment 5 fails" timeout 10 lct-blk pwrite $M $((5 * SB + 100)) 100 "$LC_WORK/plain" 0
lc_run "  backing device: segment 5 ciphertext unchanged by the failed writes" \
	lct-blk cmp $b $(((OFF + 5 * SEG) * 512)) "$LC_WORK/cipher" $((5 * SB)) $SB
lc_run "O_DIRECT write to segment 6 works" lct-blk pwrite -d $M $((6 * SB)) 4096 "$LC_WORK/plain" $((6 * SB))
e1=$(lc_status $D errors)
[ "$e1" -gt "$e0" ] 2>/dev/null && lc_ok "io_errors counter moved ($e0 -> $e1)" ||
	lc_notok "io_errors counter moved ($e0 -> $e1)"

lc_run "key wipe all" lc_msg $D key wipe all
lc_eq "  0 keys loaded" 0 "$(lc_status $D keys)"
lc_fails "  O_DIRECT read of segment 0 fails" timeout 10 lct-blk pread -d $M 0 4096 "$LC_WORK/buf"
lc_fails "  O_DIRECT read of segment 15 fails" timeout 10 lct-blk pread -d $M $((15 * SB)) 4096 "$LC_WORK/buf"
lc_fails "  O_DIRECT write to segment 0 fails" timeout 10 lct-blk pwrite -d $M 0 4096 "$LC_WORK/plain" 0
lc_run "key load all" lc_msg $D key load all
lc_dropcaches
lc_run "  data intact after wipe + load" lct-blk cmp $M 0 "$LC_WORK/plain" 0 $((LEN * 512))
lc_run "  backing device unchanged by all failed writes" \
	lct-blk cmp $b $((OFF * 512)) "$LC_WORK/cipher" 0 $((LEN * 512))
