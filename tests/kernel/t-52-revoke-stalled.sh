#!/bin/sh
# The kill switch never waits for the backing device: lakecrypt over a
# dm-linear that is suspended with an O_DIRECT write in flight.  "revoke
# discard" returns while the backing device is still suspended (its time
# is printed, not asserted), new bios fail, status says
# "pending" until the outcome is known; once the backing device moves
# again the held write lands, then the discard, status and uevent say
# "discarded", and the device can be removed.
. ./lib.sh
lc_begin

SEG=128
MIB=8
LEN=$((MIB * 2048))
OFF=2048
BYTES=$((MIB * 1048576))
l=$(lc_loop $((MIB + 2)) s) || lc_bail "loop device"
dmsetup create lct-base --table "0 $(((MIB + 2) * 2048)) linear $l 0" || lc_bail "dm-linear over $l"
B=/dev/mapper/lct-base
D=lct-rs
M=/dev/mapper/$D
lc_vol $D t52 aes-xts-plain64 64 $SEG $B $OFF $LEN || lc_bail "set up $D"
lc_randfile "$LC_WORK/plain" $((MIB * 1024))
lct-blk pwrite -d $M 0 $BYTES "$LC_WORK/plain" 0 >/dev/null || lc_bail "write data"

# A bad message returns at once: the cost of running dmsetup here.
t0=$(lc_now_ms)
dmsetup message $D 0 nothing >/dev/null 2>&1
base_ms=$(($(lc_now_ms) - t0))

lc_run "suspend the backing dm-linear" timeout 30 dmsetup suspend lct-base
lct-blk pwrite -d $M 65536 65536 "$LC_WORK/plain" 0 >"$LC_WORK/held.out" 2>&1 &
held=$!
sleep 1
kill -0 $held 2>/dev/null && lc_ok "an O_DIRECT write is held by the suspended backing device" ||
	lc_notok "an O_DIRECT write is held by the suspended backing device ($(cat "$LC_WORK/held.out"))"

rm -f "$LC_WORK/ready"
lct-uevent -r "$LC_WORK/ready" -t 60 -n 1 -m LAKECRYPT_EVENT >"$LC_WORK/uevents" 2>&1 &
uev=$!
i=0
while [ ! -e "$LC_WORK/ready" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done

# In the background: the old module blocked here until the backing device
# moved again (uninterruptibly, so "timeout" could not end it).  The
# backing device stays suspended for the whole wait below, so a revoke
# that waited for it could not return at all: the 60 s only end a hung
# test.  The times are printed for the reader (the kernel's own ktime for
# the message's work, and the command's wall time next to a dmsetup that
# fails at once); speed is the benchmarks' business, not asserted here.
lc_kmark
t0=$(lc_now_ms)
dmsetup message $D 0 revoke discard >"$LC_WORK/msg.out" 2>&1 &
msg=$!
if lc_wait_gone $msg 60; then
	t1=$(lc_now_ms)
	wait $msg
	st=$?
	lc_result $st "revoke discard with the backing device stalled succeeds (exit $st)"
	lc_eq "  the backing device was still suspended when it returned" SUSPENDED \
		"$(dmsetup info lct-base | sed -n 's/^State: *//p')"
	us=$(lc_klog | sed -n 's/.*t52: revoke: I\/O refused and keys wiped in \([0-9]*\) us.*/\1/p' | head -n1)
	if [ -n "$us" ]; then
		lc_ok "  the kernel reports the revoke's work done ($us us)"
	else
		lc_notok "  the kernel reports the revoke's work done (no t52 line in the kernel log)"
	fi
	lc_diag "revoke command: $((t1 - t0)) ms; a dmsetup that fails at once: $base_ms ms"
	returned=1
else
	lc_notok "revoke discard with the backing device stalled returns (still waiting after 60 s)"
	returned=0
fi
lc_eq "  status: state" revoked "$(lc_status $D state)"
lc_eq "  status: keys" 0 "$(lc_status $D keys)"
if [ $returned = 1 ]; then
	lc_eq "  status: discard pending while the backing device is stalled" pending "$(lc_status $D discard)"
fi
t0=$(lc_now_ms)
timeout 60 lct-blk pread -d $M 0 4096 "$LC_WORK/buf" >/dev/null 2>&1
st=$?
ms=$(($(lc_now_ms) - t0))
[ $st -ne 0 ] && [ $st -ne 124 ] && lc_ok "  a new read fails while the backing device is stalled ($ms ms)" ||
	lc_notok "  a new read fails while the backing device is stalled (exit $st after $ms ms)"
kill -0 $held 2>/dev/null && lc_ok "  the held write is still held" || lc_notok "  the held write is still held"

lc_run "resume the backing dm-linear" timeout 30 dmsetup resume lct-base
lc_wait_gone $msg 30 || lc_notok "  the revoke message returned after the resume"
lc_wait_gone $held 30 && lc_ok "  the held write completes" || lc_notok "  the held write completes (hung)"
lc_diag "held write: $(cat "$LC_WORK/held.out")"
i=0
while [ "$(lc_status $D discard)" = pending ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
lc_eq "  status: discard" discarded "$(lc_status $D discard)"
lc_run "  the data area reads zeros (the held write landed before the discard)" lct-blk zero $l $((OFF * 512)) $BYTES
lc_wait_gone $uev 10 || kill $uev 2>/dev/null
ev=$(grep LAKECRYPT_EVENT "$LC_WORK/uevents" | head -n1)
lc_diag "uevent: $ev"
case " $ev " in
*" LAKECRYPT_DISCARD=discarded "*) lc_ok "  the uevent carries the outcome: LAKECRYPT_DISCARD=discarded" ;;
*) lc_notok "  the uevent carries the outcome: LAKECRYPT_DISCARD=discarded" ;;
esac
lc_run "remove works once the backing device recovered" timeout 30 dmsetup remove $D

# A persistent volume: no discard, so nothing to wait for; the uevent goes
# out at once even while the backing device is stalled.
lc_vol $D t52b aes-xts-plain64 64 $SEG $B $OFF $LEN || lc_bail "set up $D again"
lc_run "suspend the backing dm-linear" timeout 30 dmsetup suspend lct-base
lct-blk pwrite -d $M 65536 65536 "$LC_WORK/plain" 0 >"$LC_WORK/held.out" 2>&1 &
held=$!
rm -f "$LC_WORK/ready"
lct-uevent -r "$LC_WORK/ready" -t 20 -n 1 -m LAKECRYPT_EVENT >"$LC_WORK/uevents" 2>&1 &
uev=$!
i=0
while [ ! -e "$LC_WORK/ready" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.5
dmsetup message $D 0 revoke >/dev/null 2>&1 &
msg=$!
lc_wait_gone $msg 60 && lc_ok "revoke (no discard) with the backing device stalled returns" ||
	lc_notok "revoke (no discard) with the backing device stalled returns"
lc_wait_gone $uev 10 || kill $uev 2>/dev/null
case " $(grep LAKECRYPT_EVENT "$LC_WORK/uevents" | head -n1) " in
*" LAKECRYPT_DISCARD=- "*) lc_ok "  uevent LAKECRYPT_DISCARD=- while the backing device is still stalled" ;;
*) lc_notok "  uevent LAKECRYPT_DISCARD=- while the backing device is still stalled" ;;
esac
lc_run "resume the backing dm-linear" timeout 30 dmsetup resume lct-base
lc_wait_gone $held 30 || lc_notok "  the held write completes"
lc_wait_gone $msg 30 || true
lc_run "remove" timeout 30 dmsetup remove $D
dmsetup remove lct-base
