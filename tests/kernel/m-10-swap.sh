#!/bin/sh
# lc-timeout: 2400
# Swap on lakecrypt under memory pressure, with dm-crypt as the control in
# the same boot.  Run by check.sh in a boot of its own: a guest of 384 MiB
# RAM and a virtio disk backed by a sparse host file of 2 GiB (not brd: a
# RAM disk would eat the RAM it is meant to relieve).  For each of
# lakecrypt (1,024 segments of 1 MiB, aes-xts) on the first GiB and
# dm-crypt on the second: swap on it, then 720 MiB of pseudo-random data
# written into a tmpfs larger than RAM (most of it must go to swap), read
# back and compared by checksum; swap use at the peak, no I/O error, no
# hung task or other kernel problem in the log; the case finishing is the
# forward progress.
. ./lib.sh
lc_begin
trap 'swapoff -a 2>/dev/null; lc_end_trap' EXIT

DATA_MIB=${LC_SWAP_MIB:-720}
mem_mib=$(($(lc_meminfo MemTotal) / 1024))
[ "$mem_mib" -le 400 ] || lc_bail "this case needs a guest of 384 MiB (MemTotal $mem_mib MiB): check.sh boots it so"
lc_modprobe virtio_pci virtio_blk
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -b /dev/vda ] || lc_bail "no virtio disk /dev/vda (check.sh attaches a host file)"
disk_sect=$(lc_sectors /dev/vda)
[ "$disk_sect" -ge $((4 * 1048576)) ] || lc_bail "/dev/vda has $disk_sect sectors, 2 GiB needed"
HALF=2097152 # 1 GiB in sectors
lc_diag "guest: MemTotal $mem_mib MiB, /dev/vda $((disk_sect / 2048)) MiB, $DATA_MIB MiB of data per device"

mkdir -p "$LC_WORK/big"
mount -t tmpfs -o size=$((DATA_MIB + 200))M lct-big "$LC_WORK/big" || lc_bail "tmpfs"

# progress TAG DEV: every 60 s, how far the round is (forward progress
# shows in the log while it runs); killed at the end of the round.
progress() {
	while sleep 60; do
		f=$(($(wc -c <"$LC_WORK/big/data" 2>/dev/null || echo 0) / 1048576))
		lc_diag "$1: progress: data file $f MiB, swap used $((($(lc_meminfo SwapTotal) - $(lc_meminfo SwapFree)) / 1024)) MiB, MemFree $(($(lc_meminfo MemFree) / 1024)) MiB, $(grep -E '^(pswpin|pswpout) ' /proc/vmstat | tr '\n' ' ')$(dmsetup status "$2" 2>/dev/null | cut -d' ' -f4-)"
	done
}

# swap_round TAG DEV: swap on DEV, push DATA_MIB through tmpfs, check.
swap_round() {
	tag=$1 dev=$2
	progress "$tag" "${dev#/dev/mapper/}" &
	prog=$!
	lc_run "$tag: mkswap" mkswap "$dev" || return
	lc_run "$tag: swapon" swapon "$dev" || return
	swap_total=$(lc_meminfo SwapTotal)
	t0=$(lc_now_ms)
	dd if=/dev/urandom bs=1M count="$DATA_MIB" iflag=fullblock 2>/dev/null | tee "$LC_WORK/big/data" | md5sum >"$LC_WORK/sum.w"
	t1=$(lc_now_ms)
	used=$(((swap_total - $(lc_meminfo SwapFree)) / 1024))
	size=$(($(wc -c <"$LC_WORK/big/data") / 1048576))
	lc_eq "$tag: $DATA_MIB MiB written into tmpfs" "$DATA_MIB" "$size"
	# Most of it cannot be in RAM: at least half of what exceeds RAM is out.
	need=$(((DATA_MIB - mem_mib) / 2))
	if [ "$used" -ge "$need" ]; then
		lc_ok "$tag: swap in use after the write: $used MiB (at least $need) ($((t1 - t0)) ms)"
	else
		lc_notok "$tag: swap in use after the write: $used MiB (at least $need)"
	fi
	t0=$(lc_now_ms)
	md5sum <"$LC_WORK/big/data" >"$LC_WORK/sum.r"
	t1=$(lc_now_ms)
	lc_eq "$tag: every page reads back intact (md5 of $DATA_MIB MiB, read in $((t1 - t0)) ms)" \
		"$(cut -d' ' -f1 "$LC_WORK/sum.w")" "$(cut -d' ' -f1 "$LC_WORK/sum.r")"
	# A second pass: pages that came back in are pushed out again.
	md5sum <"$LC_WORK/big/data" >"$LC_WORK/sum.r2"
	lc_eq "$tag: and again" "$(cut -d' ' -f1 "$LC_WORK/sum.w")" "$(cut -d' ' -f1 "$LC_WORK/sum.r2")"
	lc_diag "$tag: $(grep -E '^(pswpin|pswpout) ' /proc/vmstat | tr '\n' ' ')"
	rm -f "$LC_WORK/big/data"
	lc_run "$tag: swapoff" swapoff "$dev"
	kill $prog 2>/dev/null
}

lc_kmark
lc_vol lct-swap t100 aes-xts-plain64 64 2048 /dev/vda 0 $HALF || lc_bail "set up lakecrypt on /dev/vda"
w0=$(lc_status lct-swap writes)
swap_round lakecrypt /dev/mapper/lct-swap
lc_diag "lakecrypt status: $(lc_status lct-swap)"
lc_diag "lakecrypt stats: $(dmsetup message lct-swap 0 stats)"
[ "$(lc_status lct-swap writes)" -gt "$w0" ] && lc_ok "lakecrypt: the swap writes went through the target ($(lc_status lct-swap writes) writes)" ||
	lc_notok "lakecrypt: the swap writes went through the target"
lc_eq "lakecrypt: io_errors" 0 "$(lc_status lct-swap errors)"
lc_klog | grep -Ei 'error|fail|refused|bad swap|corrupt|oom' >"$LC_WORK/klog"
[ -s "$LC_WORK/klog" ] && lc_notok "lakecrypt: no kernel message about an error, a failure or the OOM killer" ||
	lc_ok "lakecrypt: no kernel message about an error, a failure or the OOM killer"
lc_diag_file "$LC_WORK/klog" 10
dmsetup remove lct-swap || lc_notok "remove lct-swap"

lc_kmark
key=$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n')
dmsetup create lct-dmc --table "0 $HALF crypt aes-xts-plain64 $key 0 /dev/vda $HALF" || lc_bail "set up dm-crypt"
swap_round dm-crypt /dev/mapper/lct-dmc
lc_klog | grep -Ei 'error|fail|refused|bad swap|corrupt|oom' >"$LC_WORK/klog"
[ -s "$LC_WORK/klog" ] && lc_notok "dm-crypt: no kernel message about an error, a failure or the OOM killer" ||
	lc_ok "dm-crypt: no kernel message about an error, a failure or the OOM killer"
lc_diag_file "$LC_WORK/klog" 10
dmsetup remove lct-dmc || lc_notok "remove lct-dmc"
