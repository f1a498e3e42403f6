#!/bin/bash
# Boot the lakecrypt test machine (Debian kernel under QEMU/TCG) and run one
# entry script in it.
#
#   run.sh --line 6.1|6.12 --entry PATH [--args "WORDS"] [--mem MiB] [--smp N]
#          [--timeout SEC] [--log FILE] [--module FILE.ko | --no-module]
#          [--qemu "EXTRA QEMU ARGS"]
#
# Steps: kernels.sh fetch (Debian linux-image, extracted under build/kernels),
# tools/build-module.sh for that exact release (unless --module/--no-module),
# mkinitramfs.sh, then qemu-system-x86_64 -accel tcg -cpu max under timeout.
#
# Conventions
#   --entry    path of a shell script relative to /lakecrypt in the guest:
#              tests/X = repo tests/kernel/X, bench/X = tests/bench/X,
#              demo/X = tools/demo/X, e2e/X = tests/e2e/X, udev/X = tests/udev/X.  /init runs it as
#              `cd /lakecrypt && /bin/sh ENTRY ARGS...` (busybox ash; bash is
#              at /bin/bash too).
#   --args     one string of shell words, split in the guest with
#              `eval "set -- $args"` (so quoting works).  It travels on the
#              kernel command line as lakecrypt.args=<base64>, the entry as
#              lakecrypt.entry=<path>.
#   guest      PATH starts with /lakecrypt/bin (static helpers built from
#              tests/kernel/helpers/*.c); DM_DISABLE_UDEV=1; dm-mod is loaded;
#              the module is /lakecrypt/dm-lakecrypt.ko and also
#              `modprobe dm-lakecrypt`; /tmp is tmpfs; no network unless
#              --qemu adds a NIC (virtio_pci/virtio_net modules are there).
#   output     guest lines starting with "LC: " are streamed to stdout with the
#              prefix stripped; the whole console goes to the log (default
#              build/logs/<line>-<entry basename without .sh>.log).  After the
#              entry /init prints "LC-EXIT: <rc>" and powers off.  Messages
#              of this script go to stderr.
#   exit code  0   entry exited 0 and the console shows no kernel problem
#              1   entry failed (LC-EXIT not 0, or no LC-EXIT: guest died)
#              2   usage, fetch or build error
#              3   kernel problem on the console (WARNING, BUG, Oops, lockdep,
#                  hung task, panic, ...): printed after LC-KERNEL-PROBLEM:
#              124 timeout (QEMU killed)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/tools/qemu
usage() { sed -n '5,7p' "$0" >&2; exit 2; }
die() { echo "run.sh: $*" >&2; exit 2; }

line='' entry='' args='' log='' module='' nomodule='' qemu_extra=''
mem=1024 smp=2 tmo=1800
while [ $# -gt 0 ]; do
	if [ "$1" = --no-module ]; then nomodule=1; shift; continue; fi
	[ $# -ge 2 ] || usage
	case $1 in
	--line) line=$2 ;;
	--entry) entry=$2 ;;
	--args) args=$2 ;;
	--mem) mem=$2 ;;
	--smp) smp=$2 ;;
	--timeout) tmo=$2 ;;
	--log) log=$2 ;;
	--module) module=$2 ;;
	--qemu) qemu_extra=$2 ;;
	*) usage ;;
	esac
	shift 2
done
if [ -z "$line" ] || [ -z "$entry" ]; then usage; fi
[ -n "$log" ] || log=$top/build/logs/$line-$(basename "$entry" .sh).log
mkdir -p "$(dirname "$log")" "$top/build/initramfs"

kdir=$("$here/kernels.sh" fetch "$line") || die "cannot fetch the $line kernel"
kver=$(basename "$kdir")

# Build module + initrd under a lock (runs for the same release share the
# build tree), then boot a private copy of the initrd.
initrd=$(mktemp "$top/build/initramfs/.initrd.XXXXXX")
trap 'rm -f "$initrd"' EXIT
exec 9>"$top/build/initramfs/.$kver.lock"
flock 9
if [ -n "$nomodule" ]; then
	module=
elif [ -z "$module" ]; then
	module=$("$top/tools/build-module.sh" "$kver" | tail -n1) || die "module build failed for $kver"
fi
"$here/mkinitramfs.sh" ${module:+--module "$module"} "$kver" >/dev/null || die "initramfs build failed"
cp "$top/build/initramfs/$kver/initrd.img" "$initrd"
[ -f "$top/build/initramfs/$kver/payload/lakecrypt/$entry" ] ||
	die "no entry '$entry' in the guest payload (tests/X, bench/X or demo/X)"
flock -u 9

# no_timer_check: on a loaded host the guest's boot-time check of the
# IO-APIC timer can miss its ticks and panic ("IO-APIC + timer doesn't
# work"); the check proves nothing under KVM's emulated PIT.
cmdline="console=ttyS0 panic=-1 quiet loglevel=5 no_timer_check lakecrypt.entry=$entry"
[ -z "$args" ] || cmdline+=" lakecrypt.args=$(printf %s "$args" | base64 -w0)"
# seconds a systemd entry's boot may take to reach the entry (mkinitramfs.sh)
case ${LAKECRYPT_BOOT_WATCHDOG:-} in
'') ;;
*[!0-9]*) die "LAKECRYPT_BOOT_WATCHDOG: seconds, digits only" ;;
*) cmdline+=" lakecrypt.watchdog=$LAKECRYPT_BOOT_WATCHDOG" ;;
esac
read -ra extra <<<"$qemu_extra"  # --qemu: a list of words
# A guest kernel that dies in its own boot, before dm-lakecrypt is loaded
# and before the entry prints a line, is booted once more (saying so; the
# first log is kept as LOG.boot1): no lakecrypt code ran, so nothing of
# ours is hidden.  This happens under QEMU's multi-threaded TCG, which can
# run a stale int3 of the kernel's live code patching (text_poke_bp, e.g.
# the sched_clock static key at late_initcall) on the other vCPU: "Oops:
# int3" in sched_clock_tick, then a panic, about one boot in ten on a
# loaded host (2026-11-29, QEMU 7.2, both kernel lines).
for boot in 1 2; do
	echo "run.sh: booting $kver (line $line), entry $entry, log $log" >&2
	start=$(date +%s)
	set +e
	timeout -k 10 "$tmo" qemu-system-x86_64 -accel tcg -cpu max -m "$mem" -smp "$smp" \
		-nographic -no-reboot -nic none -kernel "$kdir/boot/vmlinuz-$kver" \
		-initrd "$initrd" -append "$cmdline" "${extra[@]}" </dev/null 2>&1 |
		sed -u 's/\r$//' | tee "$log" | sed -u -n 's/^LC: //p'
	qrc=${PIPESTATUS[0]}
	set -e
	[ "$boot" -eq 1 ] || break
	grep -aqE 'Oops|Kernel panic|BUG: ' "$log" || break
	grep -aqE '^LC|dm_lakecrypt|device-mapper: lakecrypt' "$log" && break
	cp "$log" "$log.boot1"
	echo "run.sh: the guest kernel died in its own boot, before dm-lakecrypt was loaded and before the entry ran: $(grep -aoE '(Oops|Kernel panic|BUG): .*' "$log" | head -n1) (log $log.boot1); booting again, once" >&2
done
echo "run.sh: QEMU ran $(( $(date +%s) - start )) s" >&2

rc=0
# Kernel problems; guest output lines (LC...) are not looked at.
pat='WARNING: |BUG: |kernel BUG at|Oops|general protection fault|possible circular locking|'
pat+='possible recursive locking|inconsistent lock state|blocked for more than|Kernel panic|'
pat+='UBSAN:|KASAN:|sleeping function called from invalid context|scheduling while atomic|'
pat+='Call Trace:|RIP: '
hits=$(grep -anE "$pat" "$log" | grep -avE '^[0-9]+:LC' || true)
if [ -n "$hits" ]; then
	first=${hits%%:*}
	echo "LC-KERNEL-PROBLEM: $(printf '%s\n' "$hits" | head -n1 | cut -d: -f2-)"
	printf '%s\n' "$hits" | head -n 20 | sed 's/^/LC-KERNEL-PROBLEM: line /'
	echo "LC-KERNEL-PROBLEM: context ($log from line $((first > 3 ? first - 3 : 1))):"
	sed -n "$((first > 3 ? first - 3 : 1)),$((first + 30))p" "$log"
	rc=3
fi
if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
	echo "run.sh: timeout after $tmo s (log $log); its last 40 lines:" >&2
	# where the guest stopped, also when only this output is kept (CI)
	tail -n 40 "$log" | LC_ALL=C tr -d '\000-\010\013-\037' | sed 's/^/run.sh: | /' >&2
	exit 124
fi
exit_line=$(grep -a '^LC-EXIT: ' "$log" | tail -n1 || true)
if [ "$exit_line" != "LC-EXIT: 0" ]; then
	echo "run.sh: entry failed: ${exit_line:-no LC-EXIT line (guest died?)}, QEMU status $qrc (log $log)" >&2
	[ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
