#!/bin/sh
# suspend/resume: I/O is held while suspended and completes after resume,
# the data is intact and the keys survive.
. ./lib.sh
lc_begin

SEG=64
LEN=8192 # 4 MiB, 128 segments
b=$(lc_brd 5) || lc_bail "brd"
D=lct-sus
M=/dev/mapper/$D
lc_vol $D t65 aes-xts-plain64 64 $SEG $b 0 $LEN || lc_bail "set up $D"
lc_randfile "$LC_WORK/plain" 4096
lc_randfile "$LC_WORK/plain2" 64
lct-blk pwrite -d $M 0 4194304 "$LC_WORK/plain" 0 >/dev/null || lc_bail "write"
k0=$(lc_status $D keys)

lc_run "dmsetup suspend" timeout 30 dmsetup suspend $D
lc_eq "  dmsetup info says SUSPENDED" SUSPENDED "$(dmsetup info $D | awk '/^State:/ {print $2}')"
lc_eq "  status while suspended: keys" "$k0" "$(lc_status $D keys)"
lct-blk pread -d $M 65536 65536 "$LC_WORK/rd" >"$LC_WORK/rd.out" 2>&1 &
rp=$!
lct-blk pwrite -d $M 131072 65536 "$LC_WORK/plain2" 0 >"$LC_WORK/wr.out" 2>&1 &
wp=$!
sleep 3
kill -0 $rp 2>/dev/null && lc_ok "  a read is held while suspended" || lc_notok "  a read is held while suspended ($(cat "$LC_WORK/rd.out"))"
kill -0 $wp 2>/dev/null && lc_ok "  a write is held while suspended" || lc_notok "  a write is held while suspended ($(cat "$LC_WORK/wr.out"))"
lc_run "dmsetup resume" timeout 30 dmsetup resume $D
lc_wait_gone $rp 20 && lc_wait_gone $wp 20 && lc_ok "  held I/O completes after resume" || lc_notok "  held I/O completes after resume"
wait $rp
lc_result $? "  held read succeeded ($(cat "$LC_WORK/rd.out"))"
wait $wp
lc_result $? "  held write succeeded ($(cat "$LC_WORK/wr.out"))"
lc_run "  held read returned the right data" lct-blk cmp "$LC_WORK/rd" 0 "$LC_WORK/plain" 65536 65536
lct-blk pwrite "$LC_WORK/plain" 131072 65536 "$LC_WORK/plain2" 0 >/dev/null
lc_eq "keys survive suspend/resume" "$k0" "$(lc_status $D keys)"
lc_dropcaches
lc_run "data intact after resume (including the held write)" lct-blk cmp $M 0 "$LC_WORK/plain" 0 4194304

# suspend with dirty page cache: resume, then everything is on disk.
dd if="$LC_WORK/plain2" of=$M bs=64k seek=10 2>/dev/null
lc_run "suspend with dirty buffered data (flushed by suspend)" timeout 60 dmsetup suspend $D
lc_run "resume" timeout 30 dmsetup resume $D
lct-blk pwrite "$LC_WORK/plain" 655360 65536 "$LC_WORK/plain2" 0 >/dev/null
lc_dropcaches
lc_run "  data intact" lct-blk cmp $M 0 "$LC_WORK/plain" 0 4194304

# revoke while suspended: the message returns, held I/O fails on resume.
rd() { lct-blk pread -d $M 0 4096 "$LC_WORK/rd2" >"$LC_WORK/rd2.out" 2>&1; }
lc_run "suspend again" timeout 30 dmsetup suspend $D
rd &
rp=$!
sleep 1
lc_run "revoke while suspended returns" timeout 30 dmsetup message $D 0 revoke
lc_run "resume after revoke" timeout 30 dmsetup resume $D
if lc_wait_gone $rp 20; then
	wait $rp
	st=$?
	[ $st -ne 0 ] && lc_ok "  the read held across the revoke fails ($(cat "$LC_WORK/rd2.out"))" ||
		lc_notok "  the read held across the revoke fails ($(cat "$LC_WORK/rd2.out"))"
else
	lc_notok "  the read held across the revoke completes (hung)"
fi
lc_eq "  state" revoked "$(lc_status $D state)"
dmsetup remove $D
lc_vol $D t65 aes-xts-plain64 64 $SEG $b 0 $LEN || lc_bail "set up $D again"

# A reload of the same table carries the keys over (t-66 tests it under I/O).
tbl=$(dmsetup table $D)
dmsetup reload $D --table "$tbl" && dmsetup resume $D
lc_eq "after 'dmsetup reload' of the same table: keys carried over" 128 "$(lc_status $D keys)"
lc_eq "  state" active "$(lc_status $D state)"
