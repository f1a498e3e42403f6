#!/bin/sh
# "revoke discard" and ephemeral volumes: the data area of the backing
# device is discarded (a loop device over a tmpfs file reads zeros after a
# discard), what lies before and after it is not, status and uevent say
# "discarded".  A device without discard reports "unsupported".
. ./lib.sh
lc_begin

SEG=128
MIB=8
LEN=$((MIB * 2048))
OFF=2048
BYTES=$((MIB * 1048576))
lc_randfile "$LC_WORK/pat" $(((MIB + 2) * 1024))
lc_randfile "$LC_WORK/plain" $((MIB * 1024))

# revoke_case TAG BACKING MESSAGE EXPECT [OPTS]: fill the backing device
# with a pattern, write through lakecrypt, revoke, check.
revoke_case() {
	tag=$1 bk=$2 msg=$3 expect=$4
	shift 4
	D=lct-rd
	vol=t55$(echo "$tag" | tr -cd 'a-z0-9')
	lct-blk pwrite -d $bk 0 $(((MIB + 2) * 1048576)) "$LC_WORK/pat" 0 >/dev/null || { lc_notok "$tag: fill backing"; return; }
	lc_vol $D $vol aes-xts-plain64 64 $SEG $bk $OFF $LEN "$@" || { lc_notok "$tag: set up"; return; }
	lct-blk pwrite -d /dev/mapper/$D 0 $BYTES "$LC_WORK/plain" 0 >/dev/null || lc_notok "$tag: write data"
	rm -f "$LC_WORK/ready"
	lct-uevent -r "$LC_WORK/ready" -t 30 -n 1 -m LAKECRYPT_EVENT >"$LC_WORK/uevents" 2>&1 &
	uev=$!
	i=0
	while [ ! -e "$LC_WORK/ready" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
	lc_kmark
	if timeout 60 dmsetup message $D 0 $msg >/dev/null 2>&1; then
		lc_ok "$tag: '$msg' succeeds"
	else
		lc_notok "$tag: '$msg' succeeds"
		lc_klog >"$LC_WORK/k"
		lc_diag_file "$LC_WORK/k" 5
	fi
	lc_eq "$tag: status state" revoked "$(lc_status $D state)"
	lc_eq "$tag: status discard" "$expect" "$(lc_status $D discard)"
	lc_wait_gone $uev 10 || kill $uev 2>/dev/null
	case " $(grep LAKECRYPT_EVENT "$LC_WORK/uevents" | head -n1) " in
	*" LAKECRYPT_DISCARD=$expect "*) lc_ok "$tag: uevent LAKECRYPT_DISCARD=$expect" ;;
	*) lc_notok "$tag: uevent LAKECRYPT_DISCARD=$expect (got: $(grep LAKECRYPT "$LC_WORK/uevents" | head -n1))" ;;
	esac
	if [ "$expect" = discarded ]; then
		lc_run "$tag: backing data area reads zeros" lct-blk zero $bk $((OFF * 512)) $BYTES
	else
		lc_run "$tag: backing data area still holds the ciphertext" \
			sh -c "! lct-blk zero $bk $((OFF * 512)) 65536 >/dev/null && ! lct-blk cmp $bk $((OFF * 512)) '$LC_WORK/pat' $((OFF * 512)) 65536 >/dev/null"
	fi
	lc_run "$tag: the 1 MiB before the data area is intact" lct-blk cmp $bk 0 "$LC_WORK/pat" 0 $((OFF * 512))
	lc_run "$tag: the 1 MiB after the data area is intact" \
		lct-blk cmp $bk $(((OFF + LEN) * 512)) "$LC_WORK/pat" $(((OFF + LEN) * 512)) 1048576
	lc_fails "$tag: I/O fails after revoke" timeout 10 lct-blk pread -d /dev/mapper/$D 0 4096 "$LC_WORK/buf"
	dmsetup remove $D || lc_notok "$tag: remove"
	keyctl clear $LC_KEYRING
}

l=$(lc_loop $((MIB + 2)) a) || lc_bail "loop device"
lc_diag "loop over tmpfs: discard_max_bytes=$(cat /sys/block/${l#/dev/}/queue/discard_max_bytes)"
revoke_case "loop, revoke discard" $l "revoke discard" discarded
revoke_case "loop, ephemeral, revoke" $l "revoke" discarded ephemeral
revoke_case "loop, ephemeral, revoke discard" $l "revoke discard" discarded ephemeral
revoke_case "loop, revoke (persistent)" $l "revoke" -

losetup -d $l

# A loop device over a ramfs file has no discard: "unsupported".
l=$(lc_loop $((MIB + 2)) r ramfs) || lc_bail "loop device on ramfs"
dmb=$(cat /sys/block/${l#/dev/}/queue/discard_max_bytes)
if [ "$dmb" = 0 ]; then
	revoke_case "loop on ramfs (no discard), revoke discard" $l "revoke discard" unsupported
	revoke_case "loop on ramfs (no discard), ephemeral" $l "revoke" unsupported ephemeral
else
	lc_notok "setup: a loop device over ramfs offers no discard (discard_max_bytes=$dmb)"
fi
losetup -d $l

# revoke of an ephemeral volume while writes are in flight on a slow
# device (dm-delay, 100 ms per write): the discard must come after the last
# write, so the data area reads zeros afterwards.
lc_modprobe dm_delay
l=$(lc_loop $((MIB + 2)) d) || lc_bail "loop device"
if dmsetup create lct-delay --table "0 $(((MIB + 2) * 2048)) delay $l 0 0 $l 0 100"; then
	lc_vol lct-rd t55slow aes-xts-plain64 64 $SEG /dev/mapper/lct-delay $OFF $LEN ephemeral || lc_bail "set up"
	lct-blk pwrite -d /dev/mapper/lct-rd 0 $BYTES "$LC_WORK/plain" 0 >/dev/null
	w0=$(lc_status lct-rd writes)
	timeout 60 lct-blk stress /dev/mapper/lct-rd $BYTES 65536 4 30 "$LC_WORK/mark2" >"$LC_WORK/stress" 2>&1 &
	sp=$!
	# Writes in flight: wait until the target has counted some (100 ms
	# each on dm-delay), not a fixed time.
	i=0
	while [ "$(lc_status lct-rd writes)" -lt $((w0 + 8)) ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	lc_run "ephemeral over dm-delay: revoke under write load returns" timeout 60 dmsetup message lct-rd 0 revoke
	touch "$LC_WORK/mark2"
	lc_wait_gone $sp 60 || lc_notok "  stress finished (hung?)"
	lc_diag "stress: $(cat "$LC_WORK/stress")"
	lc_eq "  status discard" discarded "$(lc_status lct-rd discard)"
	lc_run "  backing data area reads zeros (no write landed after the discard)" lct-blk zero $l $((OFF * 512)) $BYTES
	dmsetup remove lct-rd
	dmsetup remove lct-delay
else
	lc_notok "setup: dm-delay over $l"
fi
losetup -d $l
keyctl clear $LC_KEYRING

# brd: discard support depends on the kernel (added in 6.x); status must
# say what really happened.
b=$(lc_brd $((MIB + 2))) || lc_bail "brd"
dmb=$(cat /sys/block/ram0/queue/discard_max_bytes)
if [ "$dmb" -gt 0 ]; then exp=discarded; else exp=unsupported; fi
lc_diag "brd on $(uname -r): discard_max_bytes=$dmb, so revoke discard must report '$exp'"
revoke_case "brd, revoke discard" $b "revoke discard" $exp
