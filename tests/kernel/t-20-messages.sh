#!/bin/sh
# Malformed messages: each fails, logs its own reason, and changes nothing.
. ./lib.sh
lc_begin

z=$(lc_null_dev lct-null 2048) || lc_bail "dm-error device"
D=lct-msg
lc_vol $D t20 aes-xts-plain64 64 64 "$z" 0 1024 || lc_bail "create $D"
lc_run "key wipe 4-15 (4 keys stay loaded)" lc_msg $D key wipe 4-15
lc_eq "  4 keys loaded" 4 "$(lc_status $D keys)"

R="range|segment|invalid|number"
bad() { lc_msg_fail $D "$@"; sleep 0.5; }  # paced: DMERR_LIMIT allows 10 per 5 s
bad "unknown verb 'foo'" "unknown|unrecognised|unrecognized|invalid|message|foo" foo
bad "'key' without an action" "key|argument|missing|action|load|wipe" key
bad "'key frob all'" "unknown|unrecognised|unrecognized|invalid|frob" key frob all
U='expected .key load.wipe <all.n.first-last>'  # the usage line is accepted too
bad "'key load' without a range" "range|argument|missing|$U" key load
bad "'key wipe' without a range" "range|argument|missing|$U" key wipe
bad "'key load 5-2' (first > last)" "$R" key load 5-2
bad "'key load 16' (16 segments: 0..15)" "$R|16" key load 16
bad "'key load 0-16'" "$R|16" key load 0-16
bad "'key wipe 99'" "$R|99" key wipe 99
bad "'key load 4294967296' (2^32)" "$R" key load 4294967296
bad "'key load 18446744073709551617' (overflow)" "$R" key load 18446744073709551617
bad "'key load abc'" "$R" key load abc
bad "'key load -1'" "$R" key load -1
bad "'key load 1-'" "$R" key load 1-
bad "'key load -'" "$R" key load -
bad "'key load 1x'" "$R" key load 1x
bad "'key load 1--2'" "$R" key load 1--2
bad "'key load 0x3'" "$R" key load 0x3
bad "'key load all extra'" "argument|extra|too many|$U" key load all extra
bad "'key wipe 1 2'" "argument|extra|too many|$U" key wipe 1 2
bad "'key load +1' (a sign)" "$R" key load +1
bad "'key load +1-2'" "$R" key load +1-2
bad "'key load 1-+2'" "$R" key load 1-+2
bad "'key wipe 4294967297-4294967298' (wraps to 1-2)" "$R" key wipe 4294967297-4294967298
bad "'revoke foo'" "revoke|discard|argument|unknown|foo" revoke foo
# The error names the word that does not belong, not "discard".
bad "'revoke discard now'" "unexpected .now." revoke discard now

lc_eq "state still active after the bad messages" active "$(lc_status $D state)"
lc_eq "still 4 keys loaded after the bad messages" 4 "$(lc_status $D keys)"
lc_run "'key load 15' (last segment) is in range" lc_msg $D key load 15
lc_run "'key load 0-0' is a valid range" lc_msg $D key load 0-0
lc_eq "  5 keys loaded" 5 "$(lc_status $D keys)"
# Header silent on case; dm-crypt matches its message words case-insensitively.
lc_kmark
if dmsetup message $D 0 KEY LOAD ALL >/dev/null 2>&1; then st=accepted; else st="refused: $(lc_klog | tail -n1)"; fi
lc_diag "note: 'KEY LOAD ALL' (upper case) is $st"
