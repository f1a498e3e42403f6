#!/bin/sh
# dm-crypt compatibility: inside a segment, lakecrypt encrypts exactly as
# dm-crypt does with that segment's key and the plain64 IV counting 512-byte
# sectors from the start of the data area.  For a few segments a dm-crypt
# mapping of just that segment (iv_offset = seg * segment_sectors) must read
# what lakecrypt wrote, and lakecrypt must read what dm-crypt wrote.
. ./lib.sh
lc_begin

SEG=64             # 32 KiB segments
SB=$((SEG * 512))
NSEG=64
LEN=$((SEG * NSEG))
OFF=2048
b=$(lc_brd 4) || lc_bail "brd"
lc_randfile "$LC_WORK/plain" $((LEN / 2))
lc_randfile "$LC_WORK/plain2" $((LEN / 2))

# crypt_seg NAME CIPHER KEYHEX SEG SS: dm-crypt over segment SEG only.
crypt_seg() {
	_o=
	[ "$5" -ne 512 ] && _o=" 1 sector_size:$5"
	dmsetup create "$1" --table "0 $SEG crypt $2 $3 $(($4 * SEG)) $b $((OFF + $4 * SEG))$_o"
}

compat() { # CIPHER KEYSIZE SS
	C=$1 KS=$2 SS=$3
	tag="$C/${KS}B ss=$SS"
	D=lct-cmp
	V=t35$KS$SS
	lc_vol $D $V $C $KS $SEG $b $OFF $LEN sector_size:$SS || { lc_notok "$tag: set up lakecrypt"; return; }
	lc_run "$tag: write 2 MiB through lakecrypt" lct-blk pwrite -d /dev/mapper/$D 0 $((LEN * 512)) "$LC_WORK/plain" 0
	for s in 0 1 37 $((NSEG - 1)); do
		if ! crypt_seg lct-dmc "$C" "$(lc_keyhex $V $s $KS)" $s $SS 2>"$LC_WORK/dmc.err"; then
			lc_notok "$tag: dm-crypt table for segment $s"
			lc_diag_file "$LC_WORK/dmc.err"
			continue
		fi
		lc_run "$tag: dm-crypt with key $s reads what lakecrypt wrote in segment $s" \
			lct-blk cmp /dev/mapper/lct-dmc 0 "$LC_WORK/plain" $((s * SB)) $SB
		dmsetup remove lct-dmc
	done
	# The other way: dm-crypt writes segment 5, lakecrypt reads it.
	crypt_seg lct-dmc "$C" "$(lc_keyhex $V 5 $KS)" 5 $SS || lc_notok "$tag: dm-crypt table for segment 5"
	lct-blk pwrite -d /dev/mapper/lct-dmc 0 $SB "$LC_WORK/plain2" 0 >/dev/null
	dmsetup remove lct-dmc
	lc_run "$tag: lakecrypt reads what dm-crypt wrote in segment 5" \
		lct-blk cmp /dev/mapper/$D $((5 * SB)) "$LC_WORK/plain2" 0 $SB
	lc_run "$tag: segments 4 and 6 unchanged" sh -c \
		"lct-blk cmp /dev/mapper/$D $((4 * SB)) '$LC_WORK/plain' $((4 * SB)) $SB &&
		 lct-blk cmp /dev/mapper/$D $((6 * SB)) '$LC_WORK/plain' $((6 * SB)) $SB"
	# Per-segment keys: the key of segment 1 does not decrypt segment 0.
	crypt_seg lct-dmc "$C" "$(lc_keyhex $V 1 $KS)" 0 $SS || lc_notok "$tag: dm-crypt table"
	lc_fails "$tag: the key of segment 1 does not decrypt segment 0" \
		lct-blk cmp /dev/mapper/lct-dmc 0 "$LC_WORK/plain" 0 $SB
	dmsetup remove lct-dmc
	# The IV counts from the data area, not from the segment: iv_offset 0
	# (a per-segment IV) must not decrypt segment 1.
	_o=
	[ "$SS" -ne 512 ] && _o=" 1 sector_size:$SS"
	dmsetup create lct-dmc --table "0 $SEG crypt $C $(lc_keyhex $V 1 $KS) 0 $b $((OFF + SEG))$_o" ||
		lc_notok "$tag: dm-crypt table"
	lc_fails "$tag: segment 1 with iv_offset 0 does not decrypt (IV is data-area relative)" \
		lct-blk cmp /dev/mapper/lct-dmc 0 "$LC_WORK/plain" $SB $SB
	dmsetup remove lct-dmc
	dmsetup remove $D
	keyctl clear $LC_KEYRING
}

for ss in 512 1024 2048 4096; do
	compat aes-xts-plain64 64 $ss
done
compat aes-xts-plain64 32 4096
if lc_adiantum; then
	compat xchacha12,aes-adiantum-plain64 32 512
	compat xchacha12,aes-adiantum-plain64 32 4096
else
	lc_skip "this kernel does not offer adiantum (dm-crypt cannot instantiate it)" "xchacha12,aes-adiantum-plain64 compatibility"
fi
