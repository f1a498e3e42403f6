#!/bin/sh
# The cache of keyed transforms (module parameter key_cache) and the
# "stats" message: a hot segment is keyed once and then hits; a cache
# smaller than the segments in use evicts and still encrypts every segment
# with its own key (dm-crypt reads each one); key wipe and revoke give
# back the cached transforms of the wiped keys; a key replaced while
# suspended is never served from a transform keyed with the old one;
# concurrent I/O over more segments than the cache, racing key wipe/load,
# verifies; bounce pages in use return to 0.  key_cache refuses anything
# but a plain decimal 0..65536.
# shellcheck disable=SC2154
. ./lib.sh
lc_begin

P=/sys/module/dm_lakecrypt/parameters/key_cache
[ -w $P ] || lc_bail "no writable $P"
orig=$(cat $P)
trap 'echo "$orig" >$P 2>/dev/null; lc_end_trap' EXIT
lc_eq "key_cache defaults to 1024" 1024 "$orig"
for bad in -1 +5 0x10 65537 abc "8 8" 99999999999999999999; do
	if printf '%s' "$bad" >$P 2>/dev/null; then
		lc_notok "key_cache refuses '$bad' (accepted: $(cat $P))"
		echo "$orig" >$P
	else
		lc_ok "key_cache refuses '$bad'"
	fi
done
lc_eq "key_cache unchanged by refused writes" "$orig" "$(cat $P)"
echo 8 >$P
lc_eq "key_cache takes 8" 8 "$(cat $P)"

SEG=8 # 4 KiB segments
NSEG=64
LEN=$((SEG * NSEG))
OFF=2048
b=$(lc_brd 4) || lc_bail "brd"
D=lct-cache
M=/dev/mapper/$D
V=t82
lc_vol $D $V aes-xts-plain64 64 $SEG $b $OFF $LEN || lc_bail "set up $D"

# st NAME: a figure of the "stats" reply.
st() { dmsetup message $D 0 stats | tr ' ' '\n' | sed -n "s/^$1=//p"; }
reply=$(dmsetup message $D 0 stats)
lc_diag "stats: $reply"
case $reply in
"tfm_cached="*" tfm_max="*" tfm_hits="*" tfm_misses="*" tfm_evictions="*" bounce_pages="*" bounce_max="*) lc_ok "stats replies with its 7 figures" ;;
*) lc_notok "stats replies with its 7 figures ($reply)" ;;
esac
lc_eq "tfm_max is key_cache of the time the table was loaded" 8 "$(st tfm_max)"
reserve=$(st tfm_cached)
[ "$reserve" -ge 4 ] && [ "$reserve" -le 8 ] && lc_ok "a new device holds only its reserve of transforms ($reserve)" ||
	lc_notok "a new device holds only its reserve of transforms ($reserve)"
lc_msg_fail $D "stats with an argument" 'stats.*no argument' stats now
[ "$(st bounce_max)" -ge 512 ] && lc_ok "bounce_max holds two of the largest writes ($(st bounce_max) pages)" ||
	lc_notok "bounce_max holds two of the largest writes ($(st bounce_max) pages)"

# One segment, read 50 times: keyed once at most, then hits.
lc_randfile "$LC_WORK/plain" $((LEN / 2))
lct-blk pwrite -d $M 0 $((LEN * 512)) "$LC_WORK/plain" 0 >/dev/null || lc_bail "write"
h0=$(st tfm_hits) m0=$(st tfm_misses)
i=0
while [ $i -lt 50 ]; do
	lct-blk pread -d $M $((7 * 4096)) 4096 "$LC_WORK/buf" >/dev/null || break
	i=$((i + 1))
done
h1=$(st tfm_hits) m1=$(st tfm_misses)
lc_eq "50 reads of one segment: 50 lookups" 50 $((h1 - h0 + m1 - m0))
[ $((m1 - m0)) -le 1 ] && lc_ok "  keyed at most once ($((m1 - m0)) misses, $((h1 - h0)) hits)" ||
	lc_notok "  keyed at most once ($((m1 - m0)) misses, $((h1 - h0)) hits)"

# 64 segments through 8 transforms: evictions, and every segment still
# under its own key.
e0=$(st tfm_evictions)
for pass in 1 2; do
	for s in 5 61 0 33 12 47 63 1 28 9 55 40 17 3 38 22; do
		lct-blk pread -d $M $((s * 4096)) 4096 "$LC_WORK/buf" >/dev/null
	done
done
lc_run "64 segments read back through a cache of 8" lct-blk cmp $M 0 "$LC_WORK/plain" 0 $((LEN * 512))
e1=$(st tfm_evictions)
[ $((e1 - e0)) -gt 0 ] && lc_ok "  evictions counted ($((e1 - e0)))" || lc_notok "  evictions counted ($((e1 - e0)))"
[ "$(st tfm_cached)" -le 8 ] && lc_ok "  at most key_cache transforms ($(st tfm_cached))" ||
	lc_notok "  at most key_cache transforms ($(st tfm_cached))"
for s in 0 17 63; do
	dmsetup create lct-dmc --table "0 $SEG crypt aes-xts-plain64 $(lc_keyhex $V $s 64) $((s * SEG)) $b $((OFF + s * SEG))"
	lc_run "  dm-crypt with key $s reads segment $s" lct-blk cmp /dev/mapper/lct-dmc 0 "$LC_WORK/plain" $((s * 4096)) 4096
	dmsetup remove lct-dmc
done
lc_eq "bounce pages in use when idle" 0 "$(st bounce_pages)"

# Wipe: the cached transforms of the wiped keys go.
lct-blk cmp $M 0 "$LC_WORK/plain" 0 $((LEN * 512)) >/dev/null
lc_msg $D key wipe all || lc_notok "key wipe all"
lc_eq "key wipe all leaves only the reserve" "$reserve" "$(st tfm_cached)"
lc_fails "  a read of segment 7 fails" lct-blk pread -d $M $((7 * 4096)) 4096 "$LC_WORK/buf"
lc_msg $D key load all || lc_notok "key load all"
lc_run "  key load all: data intact" lct-blk cmp $M 0 "$LC_WORK/plain" 0 $((LEN * 512))

# A key replaced while suspended: the transform keyed with the old key
# (segment 9 was just read) must not serve the segment any more.
lct-blk pread -d $M $((9 * 4096)) 4096 "$LC_WORK/buf" >/dev/null
dd if=/dev/urandom of="$LC_WORK/k9" bs=64 count=1 2>/dev/null
keyctl padd logon lakecrypt:$V:9 $LC_KEYRING <"$LC_WORK/k9" >/dev/null
dmsetup suspend $D
lc_msg $D key load 9 || lc_notok "replace key 9 while suspended"
dmsetup resume $D
lct-blk pread -d $M $((9 * 4096)) 4096 "$LC_WORK/got9" >/dev/null
dmsetup create lct-dmc --table "0 $SEG crypt aes-xts-plain64 $(lct-blk hex "$LC_WORK/k9" 0 64) $((9 * SEG)) $b $((OFF + 9 * SEG))"
lc_run "segment 9 after its key was replaced reads as dm-crypt with the new key does" \
	lct-blk cmp /dev/mapper/lct-dmc 0 "$LC_WORK/got9" 0 4096
dmsetup remove lct-dmc
if lct-blk cmp "$LC_WORK/got9" 0 "$LC_WORK/plain" $((9 * 4096)) 4096 >/dev/null 2>&1; then
	lc_notok "  ... and not as the old key would (the old schedule served it)"
else
	lc_ok "  ... and not as the old key would"
fi
lct-blk pwrite -d $M $((9 * 4096)) 4096 "$LC_WORK/plain" $((9 * 4096)) >/dev/null # back to the old plaintext

# Concurrent I/O over 48 segments with a cache of 8, while segments 48-63
# are wiped and loaded again and read in a loop (those reads may fail).
( i=0; while [ $i -lt 40 ]; do
	dmsetup message $D 0 key wipe 48-63; dmsetup message $D 0 key load 48-63; i=$((i + 1))
  done ) >/dev/null 2>&1 &
wl=$!
( while kill -0 $wl 2>/dev/null; do lct-blk pread -d $M $((50 * 4096)) 8192 "$LC_WORK/b2" >/dev/null 2>&1; done ) &
rd=$!
fio --name=c --filename=$M --direct=1 --ioengine=libaio --iodepth=16 --rw=randrw --bs=4k-16k \
	--bs_unaligned=0 --size=96k --offset=0 --offset_increment=96k --numjobs=2 --verify=crc32c \
	--output="$LC_WORK/fio.out" >/dev/null 2>&1
stf=$?
wait $wl
wait $rd
lc_result $stf "fio randrw 4k-16k, iodepth 16, 2 jobs over 48 segments, crc32c verify, wipe/load racing on 16 others"
[ $stf -eq 0 ] || lc_diag_file "$LC_WORK/fio.out" 20
lc_diag "after: $(dmsetup message $D 0 stats)"
[ "$(st tfm_cached)" -le 8 ] && lc_ok "  at most key_cache transforms ($(st tfm_cached))" ||
	lc_notok "  at most key_cache transforms ($(st tfm_cached))"
lc_eq "  bounce pages in use when idle" 0 "$(st bounce_pages)"

# Revoke: every cached schedule goes with the keys.
lc_msg $D key load all || true
lct-blk cmp $M 0 "$LC_WORK/plain" 0 $((96 * 1024)) >/dev/null
lc_msg $D revoke || lc_notok "revoke"
lc_eq "revoke leaves only the reserve" "$reserve" "$(st tfm_cached)"
lc_run "stats works after revoke" dmsetup message $D 0 stats
dmsetup remove $D || lc_notok "remove"

# The default applies again to tables loaded after it is set back.
echo "$orig" >$P
lc_vol $D ${V}b aes-xts-plain64 64 $SEG $b $OFF $LEN || lc_bail "set up $D again"
lc_eq "key_cache set back: tfm_max of a new table" "$orig" "$(st tfm_max)"
dmsetup remove $D
