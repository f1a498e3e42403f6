#!/bin/sh
# Status INFO fields and their counters, `dmsetup status --target`,
# `dmsetup table` giving back a line that recreates the device and holds no
# key bytes, and the IMA measurement of the table.
. ./lib.sh
lc_begin

SEG=64
LEN=2048 # 32 segments
b=$(lc_brd 2) || lc_bail "brd"
D=lct-st
M=/dev/mapper/$D
lc_keys t75 32 64 || lc_bail "keys"
lc_create $D "$(lc_table aes-xts-plain64 64 t75 $SEG $b 16 $LEN)" || lc_bail "create $D"

# shellcheck disable=SC2046  # split on purpose
set -- $(dmsetup status $D)
lc_eq "status: start, length, target" "0 $LEN lakecrypt" "$1 $2 $3"
shift 3
lc_eq "status: 7 INFO fields" 7 $#
lc_eq "status of a new device" "active 32 0 0 0 0 -" "$(lc_status $D)"
lc_eq "dmsetup status --target lakecrypt" "0 $LEN lakecrypt active 32 0 0 0 0 -" "$(dmsetup status --target lakecrypt $D)"
lc_eq "dmsetup status --target linear shows nothing" "" "$(dmsetup status --target linear $D 2>/dev/null)"

lc_msg $D key load 0-9
lc_eq "keys_loaded after key load 0-9" 10 "$(lc_status $D keys)"
lc_msg $D key load 20
lc_eq "keys_loaded after key load 20" 11 "$(lc_status $D keys)"
lc_msg $D key load 5-20
lc_eq "keys_loaded after key load 5-20 (overlapping)" 21 "$(lc_status $D keys)"
lc_msg $D key wipe 0-4
lc_eq "keys_loaded after key wipe 0-4" 16 "$(lc_status $D keys)"

lc_randfile "$LC_WORK/plain" 64
r0=$(lc_status $D reads) w0=$(lc_status $D writes) e0=$(lc_status $D errors)
lct-blk pwrite -d $M $((6 * 32768)) 65536 "$LC_WORK/plain" 0 >/dev/null
r1=$(lc_status $D reads) w1=$(lc_status $D writes) e1=$(lc_status $D errors)
[ "$w1" -gt "$w0" ] && lc_ok "writes counter moves on a write ($w0 -> $w1)" || lc_notok "writes counter moves on a write ($w0 -> $w1)"
lc_eq "  reads counter does not move on an O_DIRECT write" "$r0" "$r1"
lc_eq "  io_errors counter does not move on a good write" "$e0" "$e1"
lct-blk pread -d $M $((6 * 32768)) 65536 "$LC_WORK/rd" >/dev/null
r2=$(lc_status $D reads) w2=$(lc_status $D writes) e2=$(lc_status $D errors)
[ "$r2" -gt "$r1" ] && lc_ok "reads counter moves on a read ($r1 -> $r2)" || lc_notok "reads counter moves on a read ($r1 -> $r2)"
lc_eq "  writes counter does not move on an O_DIRECT read" "$w1" "$w2"
lct-blk pread -d $M 0 4096 "$LC_WORK/rd" >/dev/null
e3=$(lc_status $D errors)
[ "$e3" -gt "$e2" ] && lc_ok "io_errors moves on a read of segment 0 (no key) ($e2 -> $e3)" || lc_notok "io_errors moves on a read of segment 0 (no key) ($e2 -> $e3)"
lct-blk pwrite -d $M 0 4096 "$LC_WORK/plain" 0 >/dev/null
e4=$(lc_status $D errors)
[ "$e4" -gt "$e3" ] && lc_ok "io_errors moves on a write to segment 0 (no key) ($e3 -> $e4)" || lc_notok "io_errors moves on a write to segment 0 (no key) ($e3 -> $e4)"

# dmsetup table: a line that recreates the device, without key bytes.
check_table() { # TAG OPTS...
	tag=$1
	shift
	dmsetup remove $D 2>/dev/null
	lc_create $D "$(lc_table aes-xts-plain64 64 t75 $SEG $b 16 $LEN "$@")" || { lc_notok "$tag: create"; return; }
	lc_msg $D key load all
	t1=$(dmsetup table $D)
	t1k=$(dmsetup table --showkeys $D)
	lc_diag "$tag: dmsetup table: $t1"
	leak=
	for i in 0 1 31; do
		h=$(lc_keyhex t75 $i 64)
		case "$t1 $t1k $(dmsetup status $D)" in *"$h"* | *"$(echo "$h" | cut -c1-16)"*) leak="$leak $i" ;; esac
	done
	lc_eq "$tag: table/status (also --showkeys) hold no key bytes" "" "$leak"
	case $t1 in
	*"aes-xts-plain64 :64:logon:lakecrypt:t75: $SEG "*" 16 t75"*) lc_ok "$tag: table has cipher, key spec, segment size, offset, volume id" ;;
	*) lc_notok "$tag: table has cipher, key spec, segment size, offset, volume id" ;;
	esac
	dmsetup remove $D
	if dmsetup create $D --table "$t1" >"$LC_WORK/c.out" 2>&1; then
		lc_eq "$tag: the table line recreates the same table" "$t1" "$(dmsetup table $D)"
	else
		lc_notok "$tag: the table line recreates the device"
		lc_diag_file "$LC_WORK/c.out"
	fi
}
check_table "no options"
check_table "allow_discards" allow_discards
check_table "sector_size:4096" sector_size:4096
check_table "sector_size:512 given explicitly" sector_size:512
check_table "three options" ephemeral sector_size:2048 allow_discards

# IMA: dm core measures the table (STATUSTYPE_IMA) when a policy asks for
# critical data.  The policy can be written once per boot.
ima=/sys/kernel/security/ima
grep -q securityfs /proc/mounts || mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
if [ ! -d $ima ]; then
	lc_skip "no IMA securityfs in this kernel" "IMA measurement of the table"
else
	if ! grep -q 'label=device-mapper' $ima/policy 2>/dev/null; then
		echo "measure func=CRITICAL_DATA label=device-mapper template=ima-buf" >$ima/policy 2>"$LC_WORK/ima.err"
	fi
	dmsetup remove $D 2>/dev/null
	lc_create $D "$(lc_table aes-xts-plain64 64 t75 $SEG $b 16 $LEN ephemeral)" && lc_msg $D key load all
	hexbuf=$(grep 'dm_table_load' $ima/ascii_runtime_measurements 2>/dev/null | tail -n1 | awk '{print $NF}')
	if [ -z "$hexbuf" ]; then
		lc_skip "IMA policy not writable here ($(cat "$LC_WORK/ima.err" 2>/dev/null)) or no dm_table_load measurement" "IMA measurement of the table"
	else
		txt=$(echo "$hexbuf" | lct-blk unhex | tr '\0' ' ')
		lc_diag "IMA dm_table_load: $(echo "$txt" | grep -o 'target_index=.*' | head -c 400)"
		for want in target_name=lakecrypt target_version=1.1.0 cipher_string=aes-xts-plain64 volume_id=t75 ephemeral=y; do
			case $txt in *"$want"*) lc_ok "IMA measurement has $want" ;; *) lc_notok "IMA measurement has $want" ;; esac
		done
		h=$(lc_keyhex t75 0 64 | cut -c1-16)
		case $txt in *"$h"*) lc_notok "IMA measurement holds no key bytes" ;; *) lc_ok "IMA measurement holds no key bytes" ;; esac
	fi
fi
