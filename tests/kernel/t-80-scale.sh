#!/bin/sh
# 65,536 segments, every key loaded: "key load all" succeeds, status shows
# 65536 keys, I/O works at the first and last segments (and dm-crypt reads
# the last one with key 65535), "key wipe all" gives the memory back.
# Prints the memory per loaded key measured from SUnreclaim/Slab/MemAvailable.
# mem() sets m<N>_a, m<N>_s, m<N>_u with eval.
# shellcheck disable=SC2154
. ./lib.sh
lc_begin

N=65536
SEG=8
LEN=$((N * SEG)) # 256 MiB, 4 KiB segments
b=$(lc_brd 257) || lc_bail "brd"
D=lct-big
M=/dev/mapper/$D

mem() { # label -> sets ${label}_a, _s, _u (kB)
	sync
	echo 3 >/proc/sys/vm/drop_caches
	sleep 1
	eval "${1}_a=$(lc_meminfo MemAvailable) ${1}_s=$(lc_meminfo Slab) ${1}_u=$(lc_meminfo SUnreclaim)"
}
per_key() { # kB delta -> bytes per key
	echo $(($1 * 1024 / N))
}

dd if=/dev/urandom of="$LC_WORK/keys.t80" bs=64 count=$N 2>/dev/null
mem m0
t0=$(lc_now_ms)
lct-addkeys -k $LC_KEYRING "lakecrypt:t80:" 0 $N 64 "$LC_WORK/keys.t80" 2>"$LC_WORK/add.out"
st=$?
t1=$(lc_now_ms)
lc_result $st "add $N logon keys with add_key(2) ($((t1 - t0)) ms)"
[ $st -eq 0 ] || { lc_diag_file "$LC_WORK/add.out"; lc_bail "keys"; }
mem m1
# (The comparison with one keyctl process per key is a benchmark, not a
# test: tests/bench/bench.sh, part mem.)
lc_diag "keyring: $(per_key $((m1_u - m0_u))) bytes/key SUnreclaim, $(per_key $((m0_a - m1_a))) bytes/key MemAvailable"

lc_create $D "$(lc_table aes-xts-plain64 64 t80 $SEG $b 0 $LEN)" || lc_bail "create $D"
mem m2
lc_eq "status: segments" $N "$(lc_status $D segments)"
lc_diag "device with $N segments, no key: $((m2_u - m1_u)) kB SUnreclaim, $((m1_a - m2_a)) kB MemAvailable"

t0=$(lc_now_ms)
lc_kmark
timeout 600 dmsetup message $D 0 key load all >"$LC_WORK/load.out" 2>&1
st=$?
t1=$(lc_now_ms)
lc_result $st "key load all of $N keys ($((t1 - t0)) ms)"
[ $st -eq 0 ] || { lc_klog >"$LC_WORK/k"; lc_diag_file "$LC_WORK/k" 5; }
mem m3
lc_eq "status: keys_loaded" $N "$(lc_status $D keys)"
ku=$(per_key $((m3_u - m2_u)))
ks=$(per_key $((m3_s - m2_s)))
ka=$(per_key $((m2_a - m3_a)))
lc_diag "memory per loaded key: $ku bytes (SUnreclaim), $ks bytes (Slab), $ka bytes (MemAvailable); $N keys: $(((m3_u - m2_u) / 1024)) MiB SUnreclaim, $(((m2_a - m3_a) / 1024)) MiB MemAvailable"
lc_say "# memory-per-key: $(uname -r) ${ka} bytes/key MemAvailable, ${ku} bytes/key SUnreclaim"

lc_randfile "$LC_WORK/plain" 16
for s in 0 1 32768 $((N - 2)) $((N - 1)); do
	lct-blk pwrite -d $M $((s * 4096)) 4096 "$LC_WORK/plain" $((s % 4 * 4096)) >/dev/null &&
		lct-blk cmp $M $((s * 4096)) "$LC_WORK/plain" $((s % 4 * 4096)) 4096 >/dev/null
	lc_result $? "write + read segment $s"
done
lc_run "O_DIRECT write straddling the last two segments" sh -c \
	"lct-blk pwrite -d $M $(((N - 2) * 4096 + 2048)) 4096 '$LC_WORK/plain' 0 >/dev/null &&
	 lct-blk cmp $M $(((N - 2) * 4096 + 2048)) '$LC_WORK/plain' 0 4096"
dmsetup create lct-dmc --table "0 8 crypt aes-xts-plain64 $(lc_keyhex t80 $((N - 1)) 64) $(((N - 1) * SEG)) $b $(((N - 1) * SEG))"
lc_run "dm-crypt with key $((N - 1)) reads segment $((N - 1))" lct-blk cmp /dev/mapper/lct-dmc 0 $M $(((N - 1) * 4096)) 4096
dmsetup remove lct-dmc
lc_fails "reading past the end fails" lct-blk pread -d $M $((N * 4096)) 4096 "$LC_WORK/buf"

t0=$(lc_now_ms)
lc_run "key wipe all" timeout 300 dmsetup message $D 0 key wipe all
t1=$(lc_now_ms)
lc_diag "key wipe all: $((t1 - t0)) ms"
mem m4
lc_eq "status: keys_loaded after wipe" 0 "$(lc_status $D keys)"
back=$((m3_u - m4_u))
grew=$((m3_u - m2_u))
# At least 90% of what the load took must come back (slab pages may stay
# partially used).
[ $((back * 10)) -ge $((grew * 9)) ] && lc_ok "key wipe all frees the key memory ($back of $grew kB SUnreclaim back)" ||
	lc_notok "key wipe all frees the key memory ($back of $grew kB SUnreclaim back)"
lc_run "remove the device" timeout 120 dmsetup remove $D
