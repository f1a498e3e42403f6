#!/bin/sh
# "key wipe" racing reads in flight: reads go through a dm-delay device
# (40 ms per read), so a wipe often lands between a read's submission and
# its decryption.  Such a read must fail and hand back no data (its buffer
# stays as the reader left it, or zeros; never ciphertext); later reads
# with the key loaded again return the data intact.
. ./lib.sh
lc_begin

lc_modprobe dm_delay
b=$(lc_brd 2) || lc_bail "brd"
dmsetup create lct-delay --table "0 2048 delay $b 0 40 $b 0 0" || lc_bail "dm-delay (40 ms reads)"
D=lct-race
M=/dev/mapper/$D
lc_vol $D t45 aes-xts-plain64 64 128 /dev/mapper/lct-delay 0 1024 || lc_bail "set up $D"  # 8 x 64 KiB
lc_randfile "$LC_WORK/plain" 512
lct-blk pwrite -d $M 0 524288 "$LC_WORK/plain" 0 >/dev/null || lc_bail "write"

timeout 60 lct-blk stress -r $M 131072 16384 4 8 >"$LC_WORK/stress" 2>&1 &
sp=$!
n=0
t_end=$(($(date +%s) + 7))
while [ "$(date +%s)" -lt $t_end ]; do
	dmsetup message $D 0 key wipe 0-1 || break
	sleep 0.03
	dmsetup message $D 0 key load 0-1 || break
	sleep 0.05
	n=$((n + 1))
done
lc_wait_gone $sp 50 && lc_ok "readers finished ($n wipe/load cycles)" || lc_notok "readers finished (hung?)"
s=$(cat "$LC_WORK/stress")
lc_diag "stress: $s"
# A read that fails after >= 20 ms went to the (delayed) device with its key
# loaded and lost the key before decryption: that is the race.
slow=$(echo "$s" | sed -n 's/.*slow_err=\([0-9]*\).*/\1/p')
[ "${slow:-0}" -gt 0 ] && lc_ok "wipes hit reads in flight ($slow failed after reaching the device): the race was exercised" ||
	lc_notok "wipes hit reads in flight ($slow failed after reaching the device): the race was exercised"
lc_eq "no failed read left data (ciphertext) in the reader's buffer" 0 "$(echo "$s" | sed -n 's/.*dirty_failed_reads=\([0-9]*\).*/\1/p')"
lc_eq "every failure is EIO" 0 "$(echo "$s" | sed -n 's/.* other=\([0-9]*\).*/\1/p')"
lc_msg $D key load all
lc_dropcaches
lc_run "data intact afterwards" lct-blk cmp $M 0 "$LC_WORK/plain" 0 524288
