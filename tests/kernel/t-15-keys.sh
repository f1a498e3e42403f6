#!/bin/sh
# Loading keys from the keyring: missing, wrong size, wrong type (a "user"
# key with the right description), revoked.  Each refusal gives its own
# message and loads nothing (all or nothing); good loads, replace, wipe.
. ./lib.sh
lc_begin

b=$(lc_brd 4) || lc_bail "brd"
D=lct-keys
SEG=64
LEN=1024 # 16 segments of 32 KiB
lc_create $D "$(lc_table aes-xts-plain64 64 t15 $SEG $b 128 $LEN)" || lc_bail "create $D"
lc_eq "new device: no key loaded" 0 "$(lc_status $D keys)"

lc_msg_fail $D "key load all with an empty keyring" "lakecrypt:t15:|key|not found|missing" key load all
lc_eq "  nothing loaded" 0 "$(lc_status $D keys)"

# Keys 0..15 except 7.
dd if=/dev/urandom of="$LC_WORK/keys.t15" bs=64 count=16 2>/dev/null
lct-addkeys "lakecrypt:t15:" 0 7 64 "$LC_WORK/keys.t15" 2>/dev/null &&
	lct-addkeys "lakecrypt:t15:" 8 8 64 "$LC_WORK/keys.t15" 2>/dev/null || lc_bail "add keys"
lc_msg_fail $D "key load all with key 7 missing" "lakecrypt:t15:7|segment 7|key 7|not found|missing" key load all
lc_eq "  all or nothing: no key loaded" 0 "$(lc_status $D keys)"
lc_msg_fail $D "key load 5-9 with key 7 missing" "lakecrypt:t15:7|segment 7|key 7|not found|missing" key load 5-9
lc_eq "  all or nothing: no key loaded" 0 "$(lc_status $D keys)"

lc_run "key load 0-6" lc_msg $D key load 0-6
lc_eq "  7 keys loaded" 7 "$(lc_status $D keys)"
lc_run "key load 8-15" lc_msg $D key load 8-15
lc_eq "  15 keys loaded" 15 "$(lc_status $D keys)"

# Key 7 with the wrong size (32 bytes for a 64-byte key spec).
dd if=/dev/urandom of="$LC_WORK/short" bs=32 count=1 2>/dev/null
id=$(keyctl padd logon lakecrypt:t15:7 $LC_KEYRING <"$LC_WORK/short") || lc_bail "keyctl padd"
lc_msg_fail $D "key 7 of 32 bytes where 64 are expected" "size|length|bytes|32|64" key load 7
lc_eq "  still 15 keys loaded" 15 "$(lc_status $D keys)"
lc_msg_fail $D "key load all with key 7 of 32 bytes" "size|length|bytes|32|64" key load all
lc_eq "  still 15 keys loaded" 15 "$(lc_status $D keys)"
keyctl unlink "$id" $LC_KEYRING >/dev/null

dd if=/dev/urandom of="$LC_WORK/long" bs=65 count=1 2>/dev/null
id=$(keyctl padd logon lakecrypt:t15:7 $LC_KEYRING <"$LC_WORK/long") || lc_bail "keyctl padd"
lc_msg_fail $D "key 7 of 65 bytes where 64 are expected" "size|length|bytes|65|64" key load 7
lc_eq "  still 15 keys loaded" 15 "$(lc_status $D keys)"
keyctl unlink "$id" $LC_KEYRING >/dev/null

# A "user" key with the right description and size is not a logon key.
id=$(dd if="$LC_WORK/keys.t15" bs=64 skip=7 count=1 2>/dev/null | keyctl padd user lakecrypt:t15:7 $LC_KEYRING) ||
	lc_bail "keyctl padd user"
lc_msg_fail $D "key 7 is a user key, not logon" "lakecrypt:t15:7|logon|type|not found|missing" key load 7
lc_eq "  still 15 keys loaded" 15 "$(lc_status $D keys)"
keyctl unlink "$id" $LC_KEYRING >/dev/null

# A revoked logon key.
lct-addkeys "lakecrypt:t15:" 7 1 64 "$LC_WORK/keys.t15" 2>/dev/null || lc_bail "add key 7"
id=$(lc_keyid lakecrypt:t15:7) || lc_bail "find key 7"
keyctl revoke "$id" || lc_bail "keyctl revoke"
lc_msg_fail $D "key 7 revoked in the keyring" "revoked|lakecrypt:t15:7|key 7|segment 7" key load 7
lc_eq "  still 15 keys loaded" 15 "$(lc_status $D keys)"

# An expired logon key.
keyctl unlink "$id" $LC_KEYRING >/dev/null
lct-addkeys "lakecrypt:t15:" 7 1 64 "$LC_WORK/keys.t15" 2>/dev/null || lc_bail "add key 7"
id=$(lc_keyid lakecrypt:t15:7) || lc_bail "find key 7"
keyctl timeout "$id" 1 || lc_bail "keyctl timeout"
# Until /proc/keys shows it expired ("expd"), not a fixed 2 s.
i=0
while [ "$(awk -v k="$(printf %08x "$id")" '$1 == k {print $4}' /proc/keys)" != expd ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
lc_msg_fail $D "key 7 expired in the keyring" "expired|lakecrypt:t15:7" key load 7
lc_eq "  still 15 keys loaded" 15 "$(lc_status $D keys)"
keyctl unlink "$id" $LC_KEYRING >/dev/null 2>&1
lct-addkeys "lakecrypt:t15:" 7 1 64 "$LC_WORK/keys.t15" 2>/dev/null || lc_bail "add key 7"
id=$(lc_keyid lakecrypt:t15:7) || lc_bail "find key 7"
keyctl revoke "$id" || lc_bail "keyctl revoke"

# All or nothing after a wipe: with key 7 revoked, "key load all" loads nothing.
lc_run "key wipe all" lc_msg $D key wipe all
lc_eq "  no key loaded" 0 "$(lc_status $D keys)"
lc_msg_fail $D "key load all with key 7 revoked" "revoked|lakecrypt:t15:7|key 7|segment 7" key load all
lc_eq "  all or nothing: no key loaded" 0 "$(lc_status $D keys)"
lc_fails "  segment 0 is not readable after the failed load (nothing was loaded)" \
	lct-blk pread -d /dev/mapper/$D 0 4096 "$LC_WORK/r"

keyctl unlink "$id" $LC_KEYRING >/dev/null
lct-addkeys "lakecrypt:t15:" 7 1 64 "$LC_WORK/keys.t15" 2>/dev/null || lc_bail "add key 7"
lc_run "key load all with every key good" lc_msg $D key load all
lc_eq "  16 keys loaded" 16 "$(lc_status $D keys)"

# Data written now must read back after wipe + load.
lc_randfile "$LC_WORK/data" 512
lc_run "write 512 KiB" lct-blk pwrite -d /dev/mapper/$D 0 524288 "$LC_WORK/data" 0
lc_run "  read back" lct-blk cmp /dev/mapper/$D 0 "$LC_WORK/data" 0 524288

lc_run "key wipe 3" lc_msg $D key wipe 3
lc_eq "  15 keys loaded" 15 "$(lc_status $D keys)"
lc_kmark
if dmsetup message $D 0 key wipe 3 >/dev/null 2>&1; then st=accepted; else st="refused: $(lc_klog | tail -n1)"; fi
lc_diag "note: wiping a segment that has no key is $st"
lc_eq "  still 15 keys loaded" 15 "$(lc_status $D keys)"
lc_run "key wipe 10-15" lc_msg $D key wipe 10-15
lc_eq "  9 keys loaded" 9 "$(lc_status $D keys)"
lc_run "key load 3" lc_msg $D key load 3
lc_run "key load all while 10 are loaded (reload)" lc_msg $D key load all
lc_eq "  16 keys loaded" 16 "$(lc_status $D keys)"
lc_run "  data intact after wipe and reload" lct-blk cmp /dev/mapper/$D 0 "$LC_WORK/data" 0 524288

# Exact key semantics.  Loading the same bytes again is a no-op; loading
# different bytes over a loaded key is refused (EBUSY, "wipe first or
# suspend") and changes nothing, since it would turn the segment's data
# into garbage without an error; wipe + load, or a load while suspended,
# really replaces the key.
lc_run "key load 4-6 again with the same bytes: accepted" lc_msg $D key load 4-6
lc_eq "  16 keys loaded" 16 "$(lc_status $D keys)"
lc_run "  data intact" lct-blk cmp /dev/mapper/$D 0 "$LC_WORK/data" 0 524288
dd if=/dev/urandom of="$LC_WORK/new5" bs=64 count=1 2>/dev/null
keyctl padd logon lakecrypt:t15:5 $LC_KEYRING <"$LC_WORK/new5" >/dev/null || lc_bail "update key 5"
lc_msg_fail $D "key load 5 with different bytes over the loaded key" "segment 5.*wipe.*suspend" key load 5
dmsetup message $D 0 key load 4-6 >"$LC_WORK/busy.out" 2>&1
grep -qi busy "$LC_WORK/busy.out" && lc_ok "  the error is EBUSY ($(head -n1 "$LC_WORK/busy.out"))" ||
	lc_notok "  the error is EBUSY ($(head -n1 "$LC_WORK/busy.out"))"
lc_eq "  16 keys loaded" 16 "$(lc_status $D keys)"
lc_dropcaches
lc_run "  segments 4-6 still decrypt with the old keys (all or nothing)" \
	lct-blk cmp /dev/mapper/$D $((4 * 32768)) "$LC_WORK/data" $((4 * 32768)) $((3 * 32768))
lc_run "key wipe 5, then key load 5 with the new key" sh -c "dmsetup message $D 0 key wipe 5 && dmsetup message $D 0 key load 5"
lc_eq "  16 keys loaded" 16 "$(lc_status $D keys)"
lc_dropcaches
lc_fails "  segment 5 no longer decrypts to the old plaintext" \
	lct-blk cmp /dev/mapper/$D $((5 * 32768)) "$LC_WORK/data" $((5 * 32768)) 32768
lc_run "  segment 4 unchanged" lct-blk cmp /dev/mapper/$D $((4 * 32768)) "$LC_WORK/data" $((4 * 32768)) 32768
lct-addkeys "lakecrypt:t15:" 5 1 64 "$LC_WORK/keys.t15" 2>/dev/null || lc_bail "restore key 5"
lc_run "suspend, key load 5 with the old key (replace while suspended), resume" \
	sh -c "dmsetup suspend $D && dmsetup message $D 0 key load 5 && dmsetup resume $D"
lc_run "  segment 5 decrypts again" lct-blk cmp /dev/mapper/$D $((5 * 32768)) "$LC_WORK/data" $((5 * 32768)) 32768

# The key needs to be in the keyring only while it is loaded.
keyctl clear $LC_KEYRING
lc_dropcaches
lc_run "keys stay loaded after the keyring is cleared" lct-blk cmp /dev/mapper/$D 0 "$LC_WORK/data" 0 524288
lc_eq "  16 keys loaded" 16 "$(lc_status $D keys)"
