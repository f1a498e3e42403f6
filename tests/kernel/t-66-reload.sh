#!/bin/sh
# Reload: a new table of the same volume takes over the live table's keys
# when it is resumed, so fio writing through "reload + resume" (the same
# table, then a grow of the length, then a shrink) sees no error and its
# data verifies; new segments start without a key.  A table of the same
# volume that cannot take the keys (another key size) is refused at
# reload while the live table goes on serving; if keys appear in the live
# table after such a reload, the resume is refused with a reason.
. ./lib.sh
lc_begin

SEG=2048        # 1 MiB segments
b=$(lc_brd 66) || lc_bail "brd"
D=lct-rl
M=/dev/mapper/$D
LEN=$((32 * 2048))
lc_keys t66 64 64 || lc_bail "keys"
lc_vol $D t66 aes-xts-plain64 64 $SEG $b 2048 $LEN || lc_bail "set up $D"
lc_eq "32 keys loaded" 32 "$(lc_status $D keys)"

fio --name=rl --filename=$M --direct=1 --ioengine=psync --rw=randwrite --bs=4k \
	--size=32M --verify=crc32c --verify_backlog=64 --loops=100000 --runtime=25 \
	--output="$LC_WORK/fio.out" >/dev/null 2>&1 &
fp=$!
sleep 4
w0=$(lc_status $D writes)
tbl=$(dmsetup table $D)
lc_run "reload the same table under fio" sh -c "dmsetup reload $D --table '$tbl' && dmsetup resume $D"
lc_eq "  keys carried over" 32 "$(lc_status $D keys)"
sleep 3
grown=$(echo "$tbl" | awk -v l=$((48 * 2048)) '{$2 = l; print}')
lc_run "reload with the length grown to 48 MiB under fio" sh -c "dmsetup reload $D --table '$grown' && dmsetup resume $D"
lc_eq "  segments" 48 "$(lc_status $D segments)"
lc_eq "  the 32 old segments keep their keys, the new ones have none" 32 "$(lc_status $D keys)"
lc_fails "  a new segment has no key yet" lct-blk pread -d $M $((40 * 1048576)) 4096 "$LC_WORK/buf"
lc_run "  key load all: same bytes for the old segments, keys for the new" lc_msg $D key load all
lc_eq "  48 keys loaded" 48 "$(lc_status $D keys)"
sleep 3
if lc_wait_gone $fp 90; then
	wait $fp
	st=$?
else
	kill $fp
	st=124
fi
w1=$(lc_status $D writes)
lc_result $st "fio randwrite with crc32c verify through reload, grow and key load: exit $st, $((w1 - w0)) writes"
grep -q 'err= *[1-9]' "$LC_WORK/fio.out" && lc_notok "  fio saw an error" || lc_ok "  fio saw no error"
[ $st -eq 0 ] || lc_diag_file "$LC_WORK/fio.out" 20
lc_eq "  io_errors: only the deliberate read of a keyless segment" 1 "$(lc_status $D errors)"

# A table of the same volume with another key size: refused at reload.
bad=$(echo "$grown" | sed 's/ :64:logon:/ :32:logon:/')
lc_expect_fail "reload of the same volume with another key size" "key size|live table" dmsetup reload $D --table "$bad"
lc_eq "  no inactive table left" "" "$(dmsetup info $D | grep -o 'Tables present:.*INACTIVE')"
lc_run "  the live table still serves" lct-blk pread -d $M 0 4096 "$LC_WORK/buf"
lc_eq "  48 keys loaded" 48 "$(lc_status $D keys)"

# Shrink to 16 MiB: the first 16 segments keep their keys.
small=$(echo "$tbl" | awk -v l=$((16 * 2048)) '{$2 = l; print}')
lc_run "reload with the length shrunk to 16 MiB" sh -c "dmsetup reload $D --table '$small' && dmsetup resume $D"
lc_eq "  16 keys" 16 "$(lc_status $D keys)"
lc_randfile "$LC_WORK/plain" 1024
lc_run "  write and read back" sh -c "lct-blk pwrite -d $M 0 1048576 '$LC_WORK/plain' 0 && lct-blk cmp $M 0 '$LC_WORK/plain' 0 1048576"

# Keys appear in the live table after an incompatible table was loaded:
# the resume is refused and says why.
lc_run "key wipe all" lc_msg $D key wipe all
lc_run "  reload with another key size is accepted (the live table holds no key)" dmsetup reload $D --table "$(echo "$small" | sed 's/ :64:logon:/ :32:logon:/')"
lc_run "  key load all on the live table" lc_msg $D key load all
lc_expect_fail "  resume with keys that cannot be carried over" "resume refused" dmsetup resume $D
lc_run "  reload the old table" dmsetup reload $D --table "$small"
lc_expect_fail "  resume of a table whose keys were not carried over" "resume refused|key load" dmsetup resume $D
lc_run "  key load all on the suspended device" lc_msg $D key load all
lc_run "  then resume" dmsetup resume $D
lc_run "  data intact" lct-blk cmp $M 0 "$LC_WORK/plain" 0 1048576
lc_run "remove" dmsetup remove $D
