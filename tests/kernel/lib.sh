# SPDX-License-Identifier: GPL-2.0
# lib.sh - TAP helpers for the dm-lakecrypt selftests (busybox ash, in the
# QEMU guest).  Sourced by run-all.sh and by every case file t-*.sh.
#
# Output: every line meant to be seen starts with "LC: " (the console also
# carries kernel messages).  Results are plan-less TAP numbered across the
# whole run: "ok N - case: what", "not ok N - ...", "ok N - ... # SKIP why",
# diagnostics "# ...".  Each result is also appended to $LC_TALLY, which
# run-all.sh counts.
#
# Isolation: a case file calls lc_begin, which installs an EXIT trap that
# removes every lct-* dm device, loop device, brd, mount and key the case
# made, whether it passed, failed or was killed by run-all's timeout.

LC_ROOT=${LC_ROOT:-/lakecrypt}
LC_MODULE=${LC_MODULE:-$LC_ROOT/dm-lakecrypt.ko}
LC_TMP=${LC_TMP:-/tmp/lct}
LC_TALLY=${LC_TALLY:-$LC_TMP/tally}
LC_KEYRING=${LC_KEYRING:-@u}
LC_CASE=${LC_CASE:-$(basename "$0" .sh)}
LC_KMARK_N=0
LC_CASE_FAILS=0
export DM_DISABLE_UDEV=1
PATH=$LC_ROOT/bin:$PATH

# ---------------------------------------------------------------- output

lc_say() {
	printf '%s\n' "$*" | while IFS= read -r _l; do printf 'LC: %s\n' "$_l"; done
}

# lc_diag TEXT...: one "# " diagnostic line per line of TEXT.
lc_diag() {
	printf '%s\n' "$*" | while IFS= read -r _l; do printf 'LC: # %s\n' "$_l"; done
}

# lc_diag_file FILE [MAX]: the file as diagnostics (first MAX lines, 20).
lc_diag_file() {
	[ -s "$1" ] || return 0
	head -n "${2:-20}" "$1" | while IFS= read -r _l; do printf 'LC: #   %s\n' "$_l"; done
}

_lc_next() {
	[ -f "$LC_TALLY" ] || : >"$LC_TALLY"
	_lc_n=$(($(wc -l <"$LC_TALLY") + 1))
	echo "$1" >>"$LC_TALLY"
}

lc_ok() {
	_lc_next pass
	lc_say "ok $_lc_n - $LC_CASE: $*"
}

lc_notok() {
	_lc_next fail
	LC_CASE_FAILS=$((LC_CASE_FAILS + 1))
	lc_say "not ok $_lc_n - $LC_CASE: $*"
}

# lc_skip REASON DESC: a skip must say why.
lc_skip() {
	_lc_next skip
	lc_say "ok $_lc_n - $LC_CASE: $2 # SKIP $1"
}

# lc_result STATUS DESC: ok if STATUS is 0.
lc_result() {
	_st=$1
	shift
	if [ "$_st" -eq 0 ]; then lc_ok "$@"; else lc_notok "$@"; fi
	return "$_st"
}

# lc_run DESC CMD...: ok if CMD exits 0; its output is shown if not.
lc_run() {
	_d=$1
	shift
	"$@" >"$LC_TMP/run.out" 2>&1
	_st=$?
	if [ $_st -eq 0 ]; then
		lc_ok "$_d"
	else
		lc_notok "$_d (exit $_st: $*)"
		lc_diag_file "$LC_TMP/run.out"
	fi
	return $_st
}

# lc_eq DESC EXPECTED ACTUAL
lc_eq() {
	if [ "$2" = "$3" ]; then
		lc_ok "$1 (= $3)"
	else
		lc_notok "$1 (expected '$2', got '$3')"
		return 1
	fi
}

# lc_bail MSG: a precondition failed; the rest of the case cannot run.
lc_bail() {
	lc_notok "setup: $*"
	exit 1
}

# ---------------------------------------------------------------- kernel log

# lc_kmark: put a marker in the kernel log; lc_klog prints what came after.
lc_kmark() {
	LC_KMARK_N=$((LC_KMARK_N + 1))
	LC_KMARK="lctest-$$-$LC_KMARK_N"
	echo "<6>lctest: mark $LC_KMARK" >/dev/kmsg
}

lc_klog() {
	dmesg | sed -n "/lctest: mark ${1:-$LC_KMARK}\$/,\$p" | sed 1d |
		sed 's/^\[[ 0-9.]*\] //' | grep -v '^lctest: '
}

# Kernel messages that mean a kernel bug, whoever caused it.
LC_KBAD='WARNING:|BUG:|Oops|general protection|kernel BUG|lockdep|possible recursive locking|circular locking|hung_task|blocked for more than|KASAN|UBSAN|refcount_t:|list_add corruption|list_del corruption|Call Trace'

# lc_expect_fail DESC REGEX CMD...: CMD must fail and the kernel must log a
# message (after CMD started) matching the extended REGEX, case-insensitive.
# The message is shown either way, so each bad input shows its own error.
lc_expect_fail() {
	_d=$1 _re=$2
	shift 2
	lc_kmark
	"$@" >"$LC_TMP/ef.out" 2>&1
	_st=$?
	lc_klog >"$LC_TMP/ef.klog"
	# device-mapper's DMERR_LIMIT shares one ratelimit (10 per 5 s) across
	# all targets: if our message was swallowed, wait the window out and
	# ask again (bad input has no side effect), and say so.
	if [ $_st -ne 0 ] && ! grep -Eiq "$_re" "$LC_TMP/ef.klog" &&
	   { [ ! -s "$LC_TMP/ef.klog" ] || grep -q 'callbacks suppressed' "$LC_TMP/ef.klog"; }; then
		lc_diag "  (no kernel message: ratelimited? retrying after 5.5 s)"
		sleep 5.5
		lc_kmark
		"$@" >"$LC_TMP/ef.out" 2>&1
		_st=$?
		lc_klog >"$LC_TMP/ef.klog"
	fi
	if [ $_st -eq 0 ]; then
		lc_notok "$_d: accepted, must be refused"
		lc_diag "  command: $*"
		lc_diag_file "$LC_TMP/ef.klog" 5
		return 1
	fi
	if ! grep -Eiq "$_re" "$LC_TMP/ef.klog"; then
		lc_notok "$_d: refused (exit $_st) but no kernel message matching /$_re/"
		lc_diag "  command: $*"
		lc_diag "  command output:"
		lc_diag_file "$LC_TMP/ef.out" 5
		lc_diag "  kernel log:"
		lc_diag_file "$LC_TMP/ef.klog" 5
		return 1
	fi
	lc_ok "$_d: refused: $(grep -Ei "$_re" "$LC_TMP/ef.klog" | head -n1)"
	return 0
}

# lc_create_fail DESC REGEX TABLE: dmsetup create must fail with a message.
lc_create_fail() {
	_cd=$1 _cre=$2
	lc_expect_fail "$_cd" "$_cre" dmsetup create lct-bad --table "$3"
	dmsetup remove lct-bad >/dev/null 2>&1
	return 0
}

# lc_msg_fail DEV DESC REGEX MESSAGE...: dmsetup message must fail.
lc_msg_fail() {
	_md=$1
	shift
	_mdesc=$1 _mre=$2
	shift 2
	# "--": a range like -1 must reach the kernel, not dmsetup's getopt.
	lc_expect_fail "$_mdesc" "$_mre" dmsetup message -- "$_md" 0 "$@"
}

# ---------------------------------------------------------------- setup

lc_modprobe() {
	for _m in "$@"; do
		modprobe "$_m" >/dev/null 2>&1
	done
}

lc_module_loaded() {
	grep -q '^dm_lakecrypt ' /proc/modules
}

lc_module_load() {
	lc_module_loaded && return 0
	lc_modprobe dm_mod dm_crypt xts aesni_intel
	insmod "$LC_MODULE" >"$LC_TMP/insmod.out" 2>&1 || {
		cat "$LC_TMP/insmod.out" >&2
		return 1
	}
}

# lc_begin: start a case.  Kernel-log marker, cleanup trap, module loaded.
lc_begin() {
	mkdir -p "$LC_TMP"
	grep -q " $LC_TMP tmpfs" /proc/mounts || mount -t tmpfs -o size=90% lct "$LC_TMP" || return 1
	LC_WORK=$LC_TMP/$LC_CASE
	rm -rf "$LC_WORK"
	mkdir -p "$LC_WORK"
	lc_kmark
	LC_CASE_MARK=$LC_KMARK
	trap 'lc_end_trap' EXIT
	trap 'exit 143' TERM INT
	lc_module_load || lc_bail "cannot load $LC_MODULE"
}

lc_end_trap() {
	_rc=$?
	lc_cleanup
	lc_klog "$LC_CASE_MARK" | grep -E "$LC_KBAD" >"$LC_TMP/kbad" 2>/dev/null
	if [ -s "$LC_TMP/kbad" ]; then
		lc_notok "kernel log clean during $LC_CASE"
		lc_diag_file "$LC_TMP/kbad" 20
		_rc=1
	fi
	[ $LC_CASE_FAILS -eq 0 ] || _rc=1
	exit $_rc
}

# lc_cleanup: remove what any case may have made.  Safe to run twice.
lc_cleanup() {
	for _mnt in $(awk '$2 ~ "^'"$LC_TMP"'/" {print $2}' /proc/mounts | sort -r); do
		umount "$_mnt" 2>/dev/null || umount -l "$_mnt" 2>/dev/null
	done
	for _pass in 1 2 3; do
		_left=
		for _dev in $(dmsetup info -c --noheadings -o name 2>/dev/null | grep '^lct'); do
			dmsetup resume "$_dev" >/dev/null 2>&1
			dmsetup remove "$_dev" >/dev/null 2>&1 || _left="$_left $_dev"
		done
		[ -z "$_left" ] && break
		sleep 1
	done
	for _dev in $_left; do
		dmsetup remove --force "$_dev" >/dev/null 2>&1
	done
	for _l in /dev/loop[0-9]*; do
		[ -b "$_l" ] && losetup -d "$_l" >/dev/null 2>&1
	done
	grep -q '^brd ' /proc/modules && rmmod brd 2>/dev/null
	keyctl clear @u >/dev/null 2>&1
	keyctl clear @s >/dev/null 2>&1
	[ -n "$LC_WORK" ] && rm -rf "$LC_WORK"
	return 0
}

# ---------------------------------------------------------------- devices

# lc_brd MIB: a fresh brd RAM disk of MIB MiB; prints /dev/ram0.
lc_brd() {
	grep -q '^brd ' /proc/modules && rmmod brd
	modprobe brd rd_nr=1 rd_size=$(($1 * 1024)) max_part=0 || return 1
	[ -b /dev/ram0 ] || mknod /dev/ram0 b 1 0
	echo /dev/ram0
}

# lc_loop MIB [NAME [ramfs]]: a loop device over a sparse file on tmpfs
# (discard punches holes, so a discarded range reads zeros), or on ramfs
# (no fallocate, so the loop device has no discard); prints the device.
# (Switching discard off with discard_max_bytes=0 instead cannot be undone
# on 6.12 and would follow the loop device into later cases.)
lc_loop() {
	lc_modprobe loop
	_dir=$LC_WORK
	if [ "$3" = ramfs ]; then
		_dir=$LC_WORK/ramfs
		mkdir -p "$_dir"
		grep -q " $_dir ramfs" /proc/mounts || mount -t ramfs ramfs "$_dir" || return 1
	fi
	_f=$_dir/${2:-loop}.img
	rm -f "$_f"
	truncate -s "$(($1 * 1024 * 1024))" "$_f" 2>/dev/null ||
		dd if=/dev/zero of="$_f" bs=1M count=0 seek="$1" 2>/dev/null || return 1
	_ld=$(losetup -f) || return 1
	losetup "$_ld" "$_f" || return 1
	echo "$_ld"
}

# lc_null_dev NAME SECTORS: a dm "error" device (built into dm-mod; no
# memory, any size, every I/O fails): a backing device for table checks.
lc_null_dev() {
	dmsetup create "$1" --table "0 $2 error" || return 1
	echo "/dev/mapper/$1"
}

lc_sectors() { blockdev --getsz "$1"; }

lc_dropcaches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# ---------------------------------------------------------------- keys

# lc_keys VOL COUNT SIZE [FIRST [TYPE]]: random keys lakecrypt:VOL:<i>,
# i = FIRST..FIRST+COUNT-1, added to $LC_KEYRING.  The key bytes stay in
# $LC_WORK/keys.VOL (logon keys cannot be read back) for dm-crypt tables.
lc_keys() {
	_kf=$LC_WORK/keys.$1
	_kn=$(($2 + ${4:-0}))
	_ks=$3
	if [ ! -f "$_kf" ] || [ "$(wc -c <"$_kf")" -lt $((_kn * _ks)) ]; then
		dd if=/dev/urandom of="$_kf" bs=$_ks count=$_kn 2>/dev/null || return 1
	fi
	lct-addkeys -t "${5:-logon}" -k "$LC_KEYRING" "lakecrypt:$1:" "${4:-0}" "$2" "$_ks" "$_kf" 2>"$LC_TMP/addkeys.out" || {
		cat "$LC_TMP/addkeys.out" >&2
		return 1
	}
}

# lc_keyhex VOL I SIZE: hex of key I of VOL, for a dm-crypt table.
lc_keyhex() {
	lct-blk hex "$LC_WORK/keys.$1" $(($2 * $3)) "$3"
}

# lc_keyid DESC [TYPE]: serial of the key with that description.
lc_keyid() {
	keyctl search "$LC_KEYRING" "${2:-logon}" "$1" 2>/dev/null
}

# ---------------------------------------------------------------- lakecrypt

# lc_table CIPHER KEYSIZE VOL SEGSECT DEV OFFSET LEN [OPTS...]
lc_table() {
	_t="0 $7 lakecrypt $1 :$2:logon:lakecrypt:$3: $4 $5 $6 $3"
	shift 7
	[ $# -gt 0 ] && _t="$_t $# $*"
	echo "$_t"
}

# lc_create NAME TABLE: create a device, showing the kernel's reason if not.
lc_create() {
	lc_kmark
	if ! dmsetup create "$1" --table "$2" >"$LC_TMP/create.out" 2>&1; then
		cat "$LC_TMP/create.out" >&2
		lc_klog >&2
		return 1
	fi
}

# lc_msg NAME MESSAGE...: dmsetup message, with the kernel's reason if it fails.
lc_msg() {
	_mn=$1
	shift
	lc_kmark
	if ! dmsetup message "$_mn" 0 "$@" >"$LC_TMP/msg.out" 2>&1; then
		cat "$LC_TMP/msg.out" >&2
		lc_klog >&2
		return 1
	fi
}

# lc_status NAME [FIELD]: the INFO fields; FIELD is one of state segments
# keys reads writes errors discard.
lc_status() {
	_f=$2
	_s=$(dmsetup status "$1" 2>/dev/null) || return 1
	set -- $_s
	case $_f in
	"") shift 3; echo "$*" ;;
	state) echo "$4" ;;
	segments) echo "$5" ;;
	keys) echo "$6" ;;
	reads) echo "$7" ;;
	writes) echo "$8" ;;
	errors) echo "$9" ;;
	discard) echo "${10}" ;;
	esac
}

# lc_has_cipher NAME: does the kernel offer this crypto algorithm?
lc_has_cipher() {
	grep -q "^name *: $1\$" /proc/crypto
}

# lc_adiantum: load adiantum's pieces; 0 if the kernel offers it.
lc_adiantum() {
	lc_modprobe adiantum xchacha12 chacha20 chacha_x86_64 nhpoly1305 nhpoly1305_avx2 nhpoly1305_sse2 poly1305_x86_64 aes_generic
	# Instantiating the template is what proves it; a throwaway dm-crypt does that.
	_z=$(lc_null_dev lct-adiantum-probe 8) || return 1
	dmsetup create lct-adiantum-probe2 --table "0 8 crypt xchacha12,aes-adiantum-plain64 $(printf '%064d' 0) 0 $_z 0" >/dev/null 2>&1
	_st=$?
	dmsetup remove lct-adiantum-probe2 >/dev/null 2>&1
	dmsetup remove lct-adiantum-probe >/dev/null 2>&1
	return $_st
}

# lc_meminfo FIELD: value in kB from /proc/meminfo.
lc_meminfo() {
	awk -v f="$1:" '$1 == f {print $2}' /proc/meminfo
}

# lc_slab_lakecrypt: active objects * size summed over slab caches whose
# name mentions lakecrypt (0 if none or no /proc/slabinfo), in bytes.
lc_slab_lakecrypt() {
	[ -r /proc/slabinfo ] || { echo 0; return; }
	awk '/lakecrypt/ {s += $2 * $4} END {print s + 0}' /proc/slabinfo
}

# lc_vol NAME VOL CIPHER KEYSIZE SEGSECT DEV OFFSET LEN [OPTS...]: keys for
# every segment, the device, and "key load all".
lc_vol() {
	_vn=$1 _vv=$2 _vc=$3 _vk=$4 _vs=$5 _vd=$6 _vo=$7 _vl=$8
	shift 8
	lc_keys "$_vv" $(((_vl + _vs - 1) / _vs)) "$_vk" || return 1
	lc_create "$_vn" "$(lc_table "$_vc" "$_vk" "$_vv" "$_vs" "$_vd" "$_vo" "$_vl" "$@")" || return 1
	lc_msg "$_vn" key load all
}

# lc_randfile PATH KIB: a file of random bytes.
lc_randfile() {
	dd if=/dev/urandom of="$1" bs=1024 count="$2" 2>/dev/null
}

# lc_dmdev NAME: the dm-N kernel name of a mapped device.
lc_dmdev() {
	basename "$(readlink -f "/sys/dev/block/$(dmsetup info -c --noheadings -o major,minor --separator : "$1")")"
}

# lc_wait_gone PID SECONDS: 0 if PID has exited within SECONDS.
lc_wait_gone() {
	_i=0
	while kill -0 "$1" 2>/dev/null; do
		[ $_i -ge $(($2 * 10)) ] && return 1
		sleep 0.1
		_i=$((_i + 1))
	done
	return 0
}

# lc_now_ms: monotonic-enough milliseconds (uptime).
lc_now_ms() {
	awk '{printf "%d\n", $1 * 1000}' /proc/uptime
}

# lc_fails DESC CMD...: ok if CMD fails (exit status not 0).
lc_fails() {
	_d=$1
	shift
	"$@" >"$LC_TMP/run.out" 2>&1
	_st=$?
	if [ $_st -ne 0 ]; then
		lc_ok "$_d ($(head -n1 "$LC_TMP/run.out"))"
		return 0
	fi
	lc_notok "$_d: succeeded, must fail ($*)"
	lc_diag_file "$LC_TMP/run.out" 5
	return 1
}
