#!/bin/sh
# revoke while reads and writes run on both vCPUs: the message returns, no
# I/O hangs, every I/O started after it fails, status says revoked with no
# key, "key load" is refused, a change uevent carries the LAKECRYPT_*
# variables, and (not ephemeral, no "discard") the ciphertext stays.
# busybox ash has $RANDOM.
# shellcheck disable=SC3028
. ./lib.sh
lc_begin

SEG=256          # 128 KiB segments
MIB=32
LEN=$((MIB * 2048))
OFF=2048
b=$(lc_brd $((MIB + 2))) || lc_bail "brd"
D=lct-rv
M=/dev/mapper/$D
lc_vol $D t50 aes-xts-plain64 64 $SEG $b $OFF $LEN || lc_bail "set up $D"
lc_eq "status before revoke: state" active "$(lc_status $D state)"
lc_eq "status before revoke: discard" - "$(lc_status $D discard)"
dmn=$(lc_dmdev $D)

rm -f "$LC_WORK/ready" "$LC_WORK/mark"
lct-uevent -r "$LC_WORK/ready" -t 60 -n 1 -m LAKECRYPT_EVENT >"$LC_WORK/uevents" 2>&1 &
uev=$!
# Until 16 operations per process after the mark (60 s at most): the
# operations after the revoke must happen however slow the guest is.
timeout 90 lct-blk stress $M $((MIB * 1048576)) 4096 4 60 "$LC_WORK/mark" >"$LC_WORK/stress" 2>&1 &
st1=$!
# A second, buffered reader/writer: dd loops through the page cache.
(
	while [ ! -e "$LC_WORK/mark" ]; do
		dd if=$M of=/dev/null bs=1M count=4 skip=$((RANDOM % 28)) 2>/dev/null
		dd if=/dev/urandom of=$M bs=64k count=8 seek=$((RANDOM % 400)) conv=fsync 2>/dev/null
	done
) &
st2=$!
i=0
while [ ! -e "$LC_WORK/ready" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
# The load is under way once the target has counted reads and writes (a
# few thousand a second here): wait for that, not a fixed time, which a
# slow guest may not fill (then the check below failed).
i=0
while { [ "$(lc_status $D reads)" -lt 500 ] || [ "$(lc_status $D writes)" -lt 500 ]; } &&
      [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
r0=$(lc_status $D reads)
w0=$(lc_status $D writes)
t0=$(lc_now_ms)
lc_kmark
timeout 30 dmsetup message $D 0 revoke >"$LC_WORK/msg" 2>&1
st=$?
t1=$(lc_now_ms)
touch "$LC_WORK/mark"
lc_result $st "revoke under load returns (exit $st, $((t1 - t0)) ms)"
lc_diag "kernel: $(lc_klog | grep -i lakecrypt | tail -n1)"
[ "$r0" -gt 0 ] && [ "$w0" -gt 0 ] 2>/dev/null &&
	lc_ok "reads ($r0) and writes ($w0) were running before the revoke" ||
	lc_notok "reads ($r0) and writes ($w0) were running before the revoke"

if lc_wait_gone $st1 60; then
	wait $st1
	rc=$?
	lc_result $rc "O_DIRECT stress processes finished, none hung (exit $rc)"
else
	lc_notok "O_DIRECT stress processes finished, none hung (still running 60 s after revoke)"
fi
if lc_wait_gone $st2 30; then
	lc_ok "buffered reader/writer finished"
else
	lc_notok "buffered reader/writer finished (still running 30 s after revoke)"
	kill $st2 2>/dev/null
fi
s=$(cat "$LC_WORK/stress")
lc_diag "stress: $s"
after_ok=$(echo "$s" | sed -n 's/.*after_ok=\([0-9]*\).*/\1/p')
after_err=$(echo "$s" | sed -n 's/.*after_err=\([0-9]*\).*/\1/p')
okc=$(echo "$s" | sed -n 's/^ok=\([0-9]*\).*/\1/p')
other=$(echo "$s" | sed -n 's/.* other=\([0-9]*\).*/\1/p')
[ "${okc:-0}" -gt 0 ] && lc_ok "stress did I/O before the revoke (ok=$okc)" || lc_notok "stress did I/O before the revoke (ok=$okc)"
lc_eq "no O_DIRECT I/O started after revoke returned succeeded" 0 "$after_ok"
[ "${after_err:-0}" -gt 0 ] && lc_ok "I/O after revoke fails (after_err=$after_err)" ||
	lc_notok "I/O after revoke fails (after_err=$after_err)"
lc_eq "every failure is EIO" 0 "$other"
lc_eq "no failed read left data in the reader's buffer" 0 "$(echo "$s" | sed -n 's/.*dirty_failed_reads=\([0-9]*\).*/\1/p')"

lc_eq "status: state" revoked "$(lc_status $D state)"
lc_eq "status: keys_loaded" 0 "$(lc_status $D keys)"
lc_eq "status: discard (not asked, not ephemeral)" - "$(lc_status $D discard)"
lc_diag "status: $(lc_status $D)"
lc_fails "O_DIRECT read after revoke fails" timeout 10 lct-blk pread -d $M 0 4096 "$LC_WORK/buf"
lc_fails "O_DIRECT write after revoke fails" timeout 10 lct-blk pwrite -d $M 4096 4096 "$LC_WORK/stress" 0
lc_dropcaches
lc_fails "buffered read after revoke fails" timeout 10 dd if=$M of=/dev/null bs=4096 count=1 skip=100
lc_msg_fail $D "key load all after revoke" "revoked" key load all
sleep 0.5
lc_msg_fail $D "key load 0 after revoke" "revoked" key load 0
lc_eq "  still no key loaded" 0 "$(lc_status $D keys)"
lc_eq "  still revoked" revoked "$(lc_status $D state)"
lc_fails "backing data area still holds ciphertext (not discarded)" lct-blk zero $b $((OFF * 512)) $((LEN * 512))

if lc_wait_gone $uev 10; then :; else kill $uev 2>/dev/null; fi
lc_diag "uevent: $(grep LAKECRYPT "$LC_WORK/uevents" | head -n1)"
ev=$(grep LAKECRYPT_EVENT "$LC_WORK/uevents" | head -n1)
for want in ACTION=change LAKECRYPT_EVENT=revoked LAKECRYPT_VOLUME=t50 LAKECRYPT_DISCARD=- "DEVNAME=$dmn" SUBSYSTEM=block; do
	case " $ev " in
	*" $want "*) lc_ok "revoke uevent has $want" ;;
	*) lc_notok "revoke uevent has $want" ;;
	esac
done

if dd if=/dev/null of=$M conv=fsync,notrunc >/dev/null 2>&1; then st=succeeds; else st=fails; fi
lc_diag "note: an empty flush (fsync) after revoke $st"
lc_kmark
dmsetup message $D 0 revoke >/dev/null 2>&1 && st=accepted || st="refused: $(lc_klog | tail -n1)"
lc_diag "note: a second revoke is $st"
lc_run "revoked device can be removed" timeout 30 dmsetup remove $D
