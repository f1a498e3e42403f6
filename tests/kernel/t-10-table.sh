#!/bin/sh
# Every table argument, good and bad; each bad one must be refused with
# its own kernel message (dm core prints ti->error as
# "device-mapper: table: <dev>: lakecrypt: <error>").
. ./lib.sh
lc_begin

# A large dm-error backing device costs no memory: 2^20 + 16 segments of 4 KiB.
BIG=$(((1048576 + 16) * 8))
z=$(lc_null_dev lct-null $BIG) || lc_bail "dm-error backing device"
K=:64:logon:lakecrypt:t10:
C=aes-xts-plain64

good() { # DESC TABLE
	lc_kmark
	if dmsetup create lct-good --table "$2" >"$LC_TMP/good.out" 2>&1; then
		lc_ok "accepted: $1"
		dmsetup remove lct-good >/dev/null 2>&1
	else
		lc_notok "accepted: $1"
		lc_diag "  table: $2"
		lc_diag_file "$LC_TMP/good.out" 3
		lc_klog >"$LC_TMP/good.klog"
		lc_diag_file "$LC_TMP/good.klog" 5
	fi
}
bad() { lc_create_fail "$@"; }

# --- good lines
good "minimal line" "0 128 lakecrypt $C $K 8 $z 0 t10"
good "major:minor device" "0 128 lakecrypt $C $K 8 $(dmsetup info -c --noheadings -o major,minor --separator : lct-null) 0 t10"
good "capi:xts(aes)-plain64" "0 128 lakecrypt capi:xts(aes)-plain64 $K 8 $z 0 t10"
good "aes-xts 32-byte keys" "0 128 lakecrypt $C :32:logon:lakecrypt:t10: 8 $z 0 t10"
good "offset 2048" "0 128 lakecrypt $C $K 8 $z 2048 t10"
good "segment_sectors 2^20 (512 MiB)" "0 $((1 << 21)) lakecrypt $C $K 1048576 $z 0 t10"
good "exactly 2^20 segments" "0 $((1048576 * 8)) lakecrypt $C $K 8 $z 0 t10"
good "volume id of 64 characters [A-Za-z0-9._-]" "0 128 lakecrypt $C $K 8 $z 0 $(printf 'aZ09._-%.0s' 1 2 3 4 5 6 7 8 9)v"
good "key prefix of 128 characters" "0 128 lakecrypt $C :64:logon:$(printf 'p%.0s' $(seq 1 127)): 8 $z 0 t10"
good "allow_discards" "0 128 lakecrypt $C $K 8 $z 0 t10 1 allow_discards"
good "ephemeral" "0 128 lakecrypt $C $K 8 $z 0 t10 1 ephemeral"
for ss in 512 1024 2048 4096; do
	good "sector_size:$ss" "0 128 lakecrypt $C $K 8 $z 0 t10 1 sector_size:$ss"
done
good "all three options" "0 128 lakecrypt $C $K 8 $z 8 t10 3 allow_discards sector_size:4096 ephemeral"
good "options in another order" "0 128 lakecrypt $C $K 8 $z 8 t10 3 ephemeral sector_size:4096 allow_discards"
good "#opt_params 0" "0 128 lakecrypt $C $K 8 $z 0 t10 0"
for o in no_read_workqueue no_write_workqueue no_inline_crypt same_cpu_crypt; do
	good "$o" "0 128 lakecrypt $C $K 8 $z 0 t10 1 $o"
done
good "no_read_workqueue no_write_workqueue same_cpu_crypt" "0 128 lakecrypt $C $K 8 $z 0 t10 3 no_read_workqueue no_write_workqueue same_cpu_crypt"
good "six options" "0 128 lakecrypt $C $K 8 $z 8 t10 6 allow_discards sector_size:4096 ephemeral no_read_workqueue no_write_workqueue same_cpu_crypt"
good "leading zeros are still decimal (key size 064, segment 0008)" "0 128 lakecrypt $C :064:logon:lakecrypt:t10: 0008 $z 0 t10"
if lc_adiantum; then
	good "xchacha12,aes-adiantum-plain64 32-byte keys" "0 128 lakecrypt xchacha12,aes-adiantum-plain64 :32:logon:lakecrypt:t10: 8 $z 0 t10"
else
	lc_skip "this kernel has no adiantum" "accepted: xchacha12,aes-adiantum-plain64"
fi

# --- argument count
bad "no arguments" "argument|arg" "0 128 lakecrypt"
bad "5 arguments" "argument|arg" "0 128 lakecrypt $C $K 8 $z 0"
bad "extra non-numeric argument" "argument|opt|feature|param" "0 128 lakecrypt $C $K 8 $z 0 t10 junk"

# --- cipher
bad "unknown cipher" "cipher|crypto|alloc" "0 128 lakecrypt foo-xts-plain64 $K 8 $z 0 t10"
bad "unknown chain mode" "cipher|crypto|alloc|mode" "0 128 lakecrypt aes-bogus-plain64 $K 8 $z 0 t10"
bad "IV plain (not plain64)" "iv|plain64" "0 128 lakecrypt aes-xts-plain $K 8 $z 0 t10"
bad "IV essiv:sha256" "iv|plain64" "0 128 lakecrypt aes-xts-essiv:sha256 $K 8 $z 0 t10"
bad "IV plain64be" "iv|plain64" "0 128 lakecrypt aes-xts-plain64be $K 8 $z 0 t10"
bad "no IV" "iv|plain64|cipher" "0 128 lakecrypt aes-xts $K 8 $z 0 t10"
bad "capi: with IV benbi" "iv|plain64" "0 128 lakecrypt capi:xts(aes)-benbi $K 8 $z 0 t10"
bad "aes-xts with a 16-byte key (invalid key size for the cipher)" "key" "0 128 lakecrypt $C :16:logon:lakecrypt:t10: 8 $z 0 t10"

# --- key spec
bad "hex key instead of a keyring spec" "key" "0 128 lakecrypt $C $(printf '%0128d' 0) 8 $z 0 t10"
bad "key spec without leading colon" "key" "0 128 lakecrypt $C 64:logon:lakecrypt:t10: 8 $z 0 t10"
bad "key spec with size only" "key" "0 128 lakecrypt $C :64 8 $z 0 t10"
bad "key spec without type separator" "key" "0 128 lakecrypt $C :64logon:lakecrypt:t10: 8 $z 0 t10"
bad "key spec without prefix" "key|prefix" "0 128 lakecrypt $C :64:logon 8 $z 0 t10"
bad "key size 0" "key size|key_size|size" "0 128 lakecrypt $C :0:logon:lakecrypt:t10: 8 $z 0 t10"
bad "key size not a number" "key size|key_size|size" "0 128 lakecrypt $C :sixty:logon:lakecrypt:t10: 8 $z 0 t10"
bad "key size negative" "key size|key_size|size" "0 128 lakecrypt $C :-64:logon:lakecrypt:t10: 8 $z 0 t10"
bad "key size 129 (> LAKECRYPT_MAX_KEY_SIZE)" "key size|key_size|size" "0 128 lakecrypt $C :129:logon:lakecrypt:t10: 8 $z 0 t10"
bad "key size 2^32+64 (overflow)" "key size|key_size|size" "0 128 lakecrypt $C :4294967360:logon:lakecrypt:t10: 8 $z 0 t10"
bad "key type user" "type|logon" "0 128 lakecrypt $C :64:user:lakecrypt:t10: 8 $z 0 t10"
bad "key type encrypted" "type|logon" "0 128 lakecrypt $C :64:encrypted:lakecrypt:t10: 8 $z 0 t10"
bad "empty key prefix" "prefix" "0 128 lakecrypt $C :64:logon: 8 $z 0 t10"
bad "key prefix without ':'" "prefix" "0 128 lakecrypt $C :64:logon:lakecrypt 8 $z 0 t10"
bad "key prefix of 129 characters" "prefix" "0 128 lakecrypt $C :64:logon:$(printf 'p%.0s' $(seq 1 128)): 8 $z 0 t10"

# --- segment size
bad "segment_sectors 0" "segment" "0 128 lakecrypt $C $K 0 $z 0 t10"
bad "segment_sectors 12 (not a power of two)" "segment" "0 128 lakecrypt $C $K 12 $z 0 t10"
bad "segment_sectors 4 (below 8)" "segment" "0 128 lakecrypt $C $K 4 $z 0 t10"
bad "segment_sectors 1" "segment" "0 128 lakecrypt $C $K 1 $z 0 t10"
bad "segment_sectors not a number" "segment" "0 128 lakecrypt $C $K 8k $z 0 t10"
bad "segment_sectors 2^64 (overflow)" "segment" "0 128 lakecrypt $C $K 18446744073709551616 $z 0 t10"
bad "2^20 + 1 segments" "segment" "0 $(((1048576 + 1) * 8)) lakecrypt $C $K 8 $z 0 t10"
bad "2^20 + 16 segments" "segment" "0 $BIG lakecrypt $C $K 8 $z 0 t10"

# --- device and offset
bad "device does not exist" "device" "0 128 lakecrypt $C $K 8 /dev/nonexistent 0 t10"
bad "device is a regular file" "device" "0 128 lakecrypt $C $K 8 /lakecrypt/tests/lib.sh 0 t10"
bad "offset not a number" "offset" "0 128 lakecrypt $C $K 8 $z 0x10 t10"
bad "offset negative" "offset" "0 128 lakecrypt $C $K 8 $z -8 t10"
bad "offset beyond the device" "too small|offset|size|device" "0 128 lakecrypt $C $K 8 $z $BIG t10"
bad "offset + length beyond the device" "too small|offset|size|device" "0 128 lakecrypt $C $K 8 $z $((BIG - 64)) t10"
bad "offset 1 with sector_size:4096 (misaligned)" "offset|align|sector" "0 128 lakecrypt $C $K 8 $z 1 t10 1 sector_size:4096"
bad "offset 4 with sector_size:4096 (misaligned)" "offset|align|sector" "0 128 lakecrypt $C $K 8 $z 4 t10 1 sector_size:4096"
bad "length 127 with sector_size:4096" "size|length|multiple|sector" "0 127 lakecrypt $C $K 8 $z 0 t10 1 sector_size:4096"

# --- volume id
bad "volume id with '/'" "volume" "0 128 lakecrypt $C $K 8 $z 0 t10/a"
bad "volume id with ':'" "volume" "0 128 lakecrypt $C $K 8 $z 0 t10:a"
bad "volume id with '\$'" "volume" "0 128 lakecrypt $C $K 8 $z 0 t10\$a"
bad "volume id with a UTF-8 letter" "volume" "0 128 lakecrypt $C $K 8 $z 0 vol$(printf '\303\251')"
bad "volume id of 65 characters" "volume" "0 128 lakecrypt $C $K 8 $z 0 $(printf 'v%.0s' $(seq 1 65))"

# --- optional parameters
bad "unknown option" "unknown|unrecognised|unrecognized|invalid|option|feature" "0 128 lakecrypt $C $K 8 $z 0 t10 1 no_such_option"
bad "duplicate allow_discards" "duplicate|twice|more than once|repeat" "0 128 lakecrypt $C $K 8 $z 0 t10 2 allow_discards allow_discards"
bad "duplicate ephemeral" "duplicate|twice|more than once|repeat" "0 128 lakecrypt $C $K 8 $z 0 t10 2 ephemeral ephemeral"
bad "duplicate sector_size" "duplicate|twice|more than once|repeat" "0 128 lakecrypt $C $K 8 $z 0 t10 2 sector_size:512 sector_size:4096"
bad "sector_size:1000 (not a power of two)" "sector" "0 128 lakecrypt $C $K 8 $z 0 t10 1 sector_size:1000"
bad "sector_size:256 (below 512)" "sector" "0 128 lakecrypt $C $K 8 $z 0 t10 1 sector_size:256"
bad "sector_size:8192 (above 4096)" "sector" "0 128 lakecrypt $C $K 8 $z 0 t10 1 sector_size:8192"
bad "sector_size:0" "sector" "0 128 lakecrypt $C $K 8 $z 0 t10 1 sector_size:0"
bad "sector_size:abc" "sector" "0 128 lakecrypt $C $K 8 $z 0 t10 1 sector_size:abc"
bad "sector_size without value" "sector|unknown|option|feature" "0 128 lakecrypt $C $K 8 $z 0 t10 1 sector_size"
bad "#opt_params 2 with one option" "opt|param|argument|feature" "0 128 lakecrypt $C $K 8 $z 0 t10 2 allow_discards"
bad "#opt_params 1 with two options" "opt|param|argument|feature" "0 128 lakecrypt $C $K 8 $z 0 t10 1 allow_discards ephemeral"
bad "#opt_params not a number" "opt|param|argument|feature" "0 128 lakecrypt $C $K 8 $z 0 t10 x allow_discards"
bad "#opt_params 4 (more than there are options)" "opt|param|argument|feature" "0 128 lakecrypt $C $K 8 $z 0 t10 4 allow_discards ephemeral sector_size:512 allow_discards"

# --- numbers: plain decimal only (no sign, '+', hex, junk, overflow)
bad "key size :+64:" "key size" "0 128 lakecrypt $C :+64:logon:lakecrypt:t10: 8 $z 0 t10"
bad "key size :0x40:" "key size" "0 128 lakecrypt $C :0x40:logon:lakecrypt:t10: 8 $z 0 t10"
bad "key size :64x:" "key size" "0 128 lakecrypt $C :64x:logon:lakecrypt:t10: 8 $z 0 t10"
bad "key size :18446744073709551680: (2^64 + 64)" "key size" "0 128 lakecrypt $C :18446744073709551680:logon:lakecrypt:t10: 8 $z 0 t10"
bad "segment_sectors +8" "segment_sectors" "0 128 lakecrypt $C $K +8 $z 0 t10"
bad "segment_sectors 0x8" "segment_sectors" "0 128 lakecrypt $C $K 0x8 $z 0 t10"
bad "segment_sectors 2^64 + 8 (wraps to 8)" "segment_sectors" "0 128 lakecrypt $C $K 18446744073709551624 $z 0 t10"
bad "offset 2^64 (wraps to 0)" "offset" "0 128 lakecrypt $C $K 8 $z 18446744073709551616 t10"
bad "offset 2^64 - 1 (offset + length overflows)" "offset" "0 128 lakecrypt $C $K 8 $z 18446744073709551615 t10"
bad "offset +0" "offset" "0 128 lakecrypt $C $K 8 $z +0 t10"
bad "offset 8x" "offset" "0 128 lakecrypt $C $K 8 $z 8x t10"
bad "sector_size:+4096" "sector_size" "0 128 lakecrypt $C $K 8 $z 0 t10 1 sector_size:+4096"
bad "sector_size:0x1000" "sector_size" "0 128 lakecrypt $C $K 8 $z 0 t10 1 sector_size:0x1000"
bad "sector_size:4294971392 (2^32 + 4096)" "sector_size" "0 128 lakecrypt $C $K 8 $z 0 t10 1 sector_size:4294971392"
bad "#opt_params +1" "opt_params" "0 128 lakecrypt $C $K 8 $z 0 t10 +1 allow_discards"
bad "#opt_params 0x1" "opt_params" "0 128 lakecrypt $C $K 8 $z 0 t10 0x1 allow_discards"
bad "#opt_params 4294967297 (2^32 + 1)" "opt_params" "0 128 lakecrypt $C $K 8 $z 0 t10 4294967297 allow_discards"
bad "#opt_params -1" "opt_params" "0 128 lakecrypt $C $K 8 $z 0 t10 -1 allow_discards"

# --- new options: duplicates and conflicts
bad "duplicate no_read_workqueue" "duplicate" "0 128 lakecrypt $C $K 8 $z 0 t10 2 no_read_workqueue no_read_workqueue"
bad "no_inline_crypt with no_read_workqueue" "conflict" "0 128 lakecrypt $C $K 8 $z 0 t10 2 no_inline_crypt no_read_workqueue"
bad "no_write_workqueue with no_inline_crypt" "conflict" "0 128 lakecrypt $C $K 8 $z 0 t10 2 no_write_workqueue no_inline_crypt"

# --- stream modes reuse the keystream when a sector is rewritten: refused
lc_modprobe chacha_generic ctr
bad "capi:chacha20-plain64 (a stream cipher)" "stream" "0 128 lakecrypt capi:chacha20-plain64 :32:logon:lakecrypt:t10: 8 $z 0 t10"
for m in ctr ofb cfb; do
	lc_modprobe $m
	# dm-crypt accepts these: it tells whether this kernel has the mode.
	if dmsetup create lct-probe --table "0 8 crypt aes-$m-plain64 $(printf '%064d' 0) 0 $z 0" >/dev/null 2>&1; then
		dmsetup remove lct-probe
		bad "aes-$m-plain64 (a stream mode)" "stream" "0 128 lakecrypt aes-$m-plain64 :32:logon:lakecrypt:t10: 8 $z 0 t10"
	else
		# No such mode here (6.12 dropped ofb and cfb): the line must
		# still be refused, whatever the reason.
		bad "aes-$m-plain64 (no $m mode in this kernel)" "." "0 128 lakecrypt aes-$m-plain64 :32:logon:lakecrypt:t10: 8 $z 0 t10"
	fi
done

# Header is silent on a length that is not a whole number of segments:
# report what the module does without judging it.
lc_kmark
if dmsetup create lct-partial --table "0 132 lakecrypt $C $K 8 $z 0 t10" >/dev/null 2>&1; then
	lc_diag "note: a length of 16.5 segments is accepted; status: $(lc_status lct-partial)"
	dmsetup remove lct-partial
else
	lc_diag "note: a length of 16.5 segments is refused: $(lc_klog | tail -n1)"
fi

# A prefix not ending in ':' would make "lakecrypt:t1" + "10" and
# "lakecrypt:t11" + "0" the same description: refused.
bad "key prefix not ending in ':'" "end with" "0 128 lakecrypt $C :64:logon:lakecrypt:t10 8 $z 0 t10"

lc_eq "no lct-bad/lct-good device left behind" "" "$(dmsetup info -c --noheadings -o name 2>/dev/null | grep -E '^lct-(bad|good)$')"
