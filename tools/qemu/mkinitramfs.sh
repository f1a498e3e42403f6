#!/bin/bash
# Build the initramfs of the QEMU test machine for kernel release KVER
# (extracted by kernels.sh fetch into build/kernels/KVER).
#
#   mkinitramfs.sh [--module FILE.ko] KVER
#
# Prints the path of the initrd.  It is two concatenated gzip cpio archives
# (the kernel unpacks both, the second overwriting the first):
#   base.cpio.gz     tools, their libraries, kernel modules; cached in
#                    build/initramfs/KVER/ and rebuilt only when this script,
#                    the kernel or a host binary in it changes
#   payload.cpio.gz  /init, /lakecrypt (module, tests, bench, demo, helpers)
#                    and the modules.dep that includes the module; rebuilt
#                    on every call (a second or two)
# Guest layout:
#   /lakecrypt/dm-lakecrypt.ko   the module (also lib/modules/KVER/extra/,
#                                so `modprobe dm-lakecrypt` works)
#   /lakecrypt/tests/            tests/kernel/ of the repo
#   /lakecrypt/bench/            tests/bench/
#   /lakecrypt/demo/             tools/demo/
#   /lakecrypt/e2e/              tests/e2e/
#   /lakecrypt/udev/             tests/udev/ and the rules templates udev/*.in
#   /lakecrypt/bin/              tests/*/helpers/*.c, built static
#                                (-I include/uapi), first on PATH, and
#                                lakecrypt-agent, lakecryptctl, lakecrypt-probe from
#                                build/agent (with their libraries)
# /init is described in run.sh.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
die() { echo "mkinitramfs: $*" >&2; exit 1; }

module=
if [ "${1:-}" = --module ]; then module=$2; shift 2; fi
kver=${1:?usage: mkinitramfs.sh [--module FILE.ko] KVER}
kdir=$top/build/kernels/$kver
[ -f "$kdir/.complete" ] || die "no kernel in $kdir (run tools/qemu/kernels.sh fetch)"
out=$top/build/initramfs/$kver
mkdir -p "$out"

# Modules wanted in the guest; their dependencies come along.
MODULES="dm-mod dm-crypt dm-flakey dm-delay xts ecb cbc aesni-intel cryptd crypto_simd
	adiantum xchacha12 chacha_generic chacha-x86_64 nhpoly1305 nhpoly1305-sse2
	nhpoly1305-avx2 poly1305-x86_64 aes_generic brd loop null_blk ext4 jbd2
	mbcache crc16 crc32c_generic crc32c-intel virtio_pci virtio_net virtio_blk
	af_alg algif_skcipher"
BINARIES="/usr/sbin/dmsetup /usr/bin/keyctl /usr/sbin/cryptsetup /usr/bin/fio
	/usr/sbin/mke2fs /usr/sbin/e2fsck /usr/sbin/blkdiscard /usr/sbin/losetup /usr/bin/nsenter
	/usr/bin/kmod /bin/bash /bin/udevadm
	/usr/bin/softhsm2-util /usr/bin/pkcs11-tool /usr/lib/softhsm/libsofthsm2.so"
# Debian's udev rules for block and device-mapper devices (systemd-udevd is
# /bin/udevadm under another name; the udev tests start it, nothing else does).
UDEV_RULES="50-udev-default 55-dm 60-block 60-persistent-storage
	60-persistent-storage-dm 95-dm-notify 99-systemd"
# systemd as PID 1, for entries marked "# lakecrypt-init: systemd" (the
# units, the generator and the hardened agent tested for real); Debian's
# unit files come along, the programs of most of them do not.
SYSTEMD_BINARIES="/lib/systemd/systemd /lib/systemd/systemd-journald /lib/systemd/systemd-shutdown
	/lib/systemd/systemd-cgroups-agent /bin/systemctl /bin/journalctl /usr/bin/systemd-escape"

# Copy module NAME (a name or alias) and its dependencies from the kernel
# tree into ROOT, decompressed.
add_module() {
	local root=$1 name=$2 line path dst deps
	deps=$(modprobe -d "$kdir" -S "$kver" --show-depends "$name" 2>/dev/null) ||
		die "module $name not found in $kver"
	while read -r line; do
		case $line in
		insmod\ *) path=${line#insmod }; path=${path%% *} ;;
		*) continue ;;  # builtin
		esac
		dst=$root/${path#"$kdir"/}
		dst=${dst%.xz}; dst=${dst%.zst}; dst=${dst%.gz}
		[ -e "$dst" ] && continue
		mkdir -p "$(dirname "$dst")"
		case $path in
		*.ko.xz)  xz -dc "$path" >"$dst" ;;
		*.ko.zst) zstd -qdc "$path" >"$dst" ;;
		*.ko.gz)  gzip -dc "$path" >"$dst" ;;
		*)        cp "$path" "$dst" ;;
		esac
	done <<<"$deps"
}

# Copy BIN to DEST in ROOT (default: the same path) with the libraries it
# needs that neither ROOT nor SKIP (a tree that already has them) holds.
add_binary() {
	local root=$1 bin=$2 dest=${3:-$2} skip=${4:-/nonexistent} lib
	mkdir -p "$root$(dirname "$dest")"
	cp -L "$bin" "$root$dest"
	ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' |
	while read -r lib; do
		[ -e "$root$lib" ] || [ -e "$skip$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}

mkcpio() {  # DIR OUT
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
		gzip -6 >"$2.tmp"
	mv "$2.tmp" "$2"
}

# ---- base, cached ----------------------------------------------------------
# shellcheck disable=SC2086  # word lists
key=$( { sha256sum "$0"; stat -L -c '%n %Y' "$kdir/.complete" /bin/busybox $BINARIES $SYSTEMD_BINARIES \
	$(for r in $UDEV_RULES; do echo "/lib/udev/rules.d/$r.rules"; done); } |
      sha256sum | cut -c1-16)
if [ "$(cat "$out/base.key" 2>/dev/null)" != "$key" ] || [ ! -f "$out/base.cpio.gz" ]; then
	echo "mkinitramfs: building base for $kver" >&2
	root=$out/base
	rm -rf "$root"
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc,proc,sys,dev,tmp,run,root,mnt,lakecrypt/bin}
	cp /bin/busybox "$root/bin/busybox"
	for a in $(/bin/busybox --list-full); do
		[ -e "$root/$a" ] || ln -s /bin/busybox "$root/$a"
	done
	for b in $BINARIES; do
		rm -f "$root$b"
		add_binary "$root" "$b"
	done
	for a in modprobe insmod rmmod lsmod modinfo depmod; do
		ln -sf /usr/bin/kmod "$root/sbin/$a"
	done
	mkdir -p "$root/lib/systemd" "$root/lib/udev/rules.d" "$root/etc/udev/rules.d"
	ln -sf /bin/udevadm "$root/lib/systemd/systemd-udevd"
	ln -sf /usr/sbin/dmsetup "$root/sbin/dmsetup"	# the dm rules call /sbin/dmsetup
	for r in $UDEV_RULES; do cp "/lib/udev/rules.d/$r.rules" "$root/lib/udev/rules.d/"; done
	for b in $SYSTEMD_BINARIES; do rm -f "$root$b"; add_binary "$root" "$b"; done
	cp -a /lib/systemd/system "$root/lib/systemd/"
	# Debian's systemd runs generators from /lib/systemd/system-generators
	# only, which is /usr/lib/... on a merged-/usr system: the same here.
	mkdir -p "$root/usr/lib/systemd/system-generators"
	ln -s /usr/lib/systemd/system-generators "$root/lib/systemd/system-generators"
	cp /etc/os-release "$root/etc/os-release" 2>/dev/null || cp /usr/lib/os-release "$root/etc/os-release"
	: >"$root/etc/machine-id"
	mkdir -p "$root/var/tmp" "$root/var/lib" "$root/var/log" "$root/etc/systemd/system"
	ln -sf mke2fs "$root/usr/sbin/mkfs.ext4"
	ln -sf e2fsck "$root/usr/sbin/fsck.ext4"
	cp /etc/mke2fs.conf "$root/etc/"
	# Users and groups of the agent's roles, for the end-to-end tests.
	# operator works in workspaces granted to lakecrypt-ws1, operator3 in
	# those granted to lakecrypt-ws3.
	printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'admin:x:1001:1001::/tmp:/bin/sh' \
		'operator:x:1002:1002::/tmp:/bin/sh' 'operator3:x:1003:1003::/tmp:/bin/sh' \
		'nobody:x:65534:65534::/tmp:/bin/sh' >"$root/etc/passwd"
	printf '%s\n' 'root:x:0:' 'disk:x:6:' 'admin:x:1001:' 'operator:x:1002:' 'operator3:x:1003:' \
		'nogroup:x:65534:' 'lakecrypt-admin:x:990:admin' 'lakecrypt:x:991:operator,operator3' \
		'lakecrypt-ws1:x:992:operator' 'lakecrypt-ws3:x:993:operator3' >"$root/etc/group"
	mkdir -p "$root/lib/modules/$kver"
	for f in modules.builtin modules.builtin.modinfo modules.order; do
		[ -f "$kdir/lib/modules/$kver/$f" ] && cp "$kdir/lib/modules/$kver/$f" "$root/lib/modules/$kver/"
	done
	for m in $MODULES; do add_module "$root" "$m"; done
	depmod -b "$root" "$kver"
	mkcpio "$root" "$out/base.cpio.gz"
	echo "$key" >"$out/base.key"
fi

# ---- payload, every time ---------------------------------------------------
root=$out/payload
rm -rf "$root"
mkdir -p "$root/lakecrypt/bin"
[ -d "$top/tests/kernel" ] && cp -a "$top/tests/kernel" "$root/lakecrypt/tests"
[ -d "$top/tests/bench" ] && cp -a "$top/tests/bench" "$root/lakecrypt/bench"
[ -d "$top/tools/demo" ] && cp -a "$top/tools/demo" "$root/lakecrypt/demo"
[ -d "$top/tests/e2e" ] && cp -a "$top/tests/e2e" "$root/lakecrypt/e2e"
if [ -d "$top/tests/udev" ]; then
	cp -a "$top/tests/udev" "$root/lakecrypt/udev"
	cp "$top"/udev/*.rules.in "$root/lakecrypt/udev/"
	# The installed layout (make install PREFIX=/usr), for the systemd tests.
	if [ -x "$top/build/agent/lakecrypt-probe" ]; then
		make -s -C "$top" install DESTDIR="$root" PREFIX=/usr MODULE=none \
			DIST="$out/dist" >/dev/null || die "make install into the payload failed"
	fi
fi
for b in lakecrypt-agent lakecryptctl lakecrypt-probe; do
	[ -x "$top/build/agent/$b" ] && add_binary "$root" "$top/build/agent/$b" "/lakecrypt/bin/$b" "$out/base"
done
for c in "$top"/tests/*/helpers/*.c; do
	[ -e "$c" ] || continue
	gcc -static -O2 -Wall -Wextra -Werror -I"$top/include/uapi" \
		-o "$root/lakecrypt/bin/$(basename "$c" .c)" "$c" || die "cannot build $c"
done
if [ -n "$module" ]; then
	[ -f "$module" ] || die "no module $module"
	cp "$module" "$root/lakecrypt/dm-lakecrypt.ko"
	# modules.dep of base + the module and whatever it needs beyond base.
	tree=$out/modtree
	rm -rf "$tree"
	mkdir -p "$tree/lib/modules/$kver/extra"
	cp -a "$out/base/lib/modules/$kver/." "$tree/lib/modules/$kver/"
	cp "$module" "$tree/lib/modules/$kver/extra/dm-lakecrypt.ko"
	for d in $(modinfo -F depends "$module" | tr , ' '); do add_module "$tree" "$d"; done
	depmod -b "$tree" "$kver"
	mkdir -p "$root/lib/modules"
	# Only what base lacks: new modules and the regenerated indexes.
	(cd "$tree" && find . -type f) | while read -r f; do
		cmp -s "$tree/$f" "$out/base/$f" && continue
		mkdir -p "$root/$(dirname "$f")"
		cp "$tree/$f" "$root/$f"
	done
	rm -rf "$tree"
fi
cat >"$root/init" <<'EOF'
#!/bin/sh
# lakecrypt test machine init: see tools/qemu/run.sh for the conventions.
export PATH=/lakecrypt/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DM_DISABLE_UDEV=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mapper
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
hostname lakecrypt
modprobe dm-mod
entry=
args=
watchdog=420
for w in $(cat /proc/cmdline); do
	case $w in
	lakecrypt.entry=*) entry=${w#*=} ;;
	lakecrypt.args=*) args=$(echo "${w#*=}" | base64 -d) ;;
	lakecrypt.watchdog=*) watchdog=${w#*=} ;;
	esac
done
cd /lakecrypt
# An entry marked "# lakecrypt-init: systemd" runs as a unit under systemd
# as PID 1, once multi-user.target is reached (default target
# lakecrypt-test.target, which requires it); it prints LC-EXIT and powers
# off itself, or, if it created /run/lakecrypt-test.orderly, it has asked
# for an orderly shutdown and a unit of its own prints LC-EXIT during it.
# State across boots: a virtio disk with serial "lakecrypt-state" holds a
# tar archive (written by such an entry, e.g. at shutdown) that is
# unpacked over / before systemd starts, so that its generators and units
# see the files (/etc/lakecrypt/lakecrypttab, /var/lib/lakecrypt, ...) the
# way a booting disk-backed system does.  A disk of zeros restores nothing.
if [ -n "$entry" ] && grep -q '^# lakecrypt-init: systemd' "$entry" 2>/dev/null; then
	# multi-user.target's units whose programs the image lacks: masked, or
	# systemd-logind (Restart=always) fails and restarts for ever under a
	# slow TCG (never 5 starts in 10 s) and its start job holds the target;
	# the gettys (no agetty; Debian's getty-static starts tty2..6 when
	# logind is absent) restart for ever too, filling the journal.
	for u in systemd-logind.service dbus.service systemd-user-sessions.service \
		systemd-update-utmp-runlevel.service getty.target getty-static.service \
		getty@.service serial-getty@.service; do
		ln -sf /dev/null "/etc/systemd/system/$u"
	done
	case $watchdog in '' | *[!0-9]*) watchdog=420 ;; esac
	modprobe -q virtio_pci
	modprobe -q virtio_blk
	for s in /sys/block/vd*/serial; do
		[ "$(cat "$s" 2>/dev/null)" = lakecrypt-state ] || continue
		d=${s%/serial}
		tar -xf "/dev/${d##*/}" -C / || echo "LC: init: cannot restore the state from /dev/${d##*/}"
	done
	printf '#!/bin/sh\n: >/run/lakecrypt-test.started\ncd /lakecrypt\nset -- %s\n/bin/sh %s "$@"\nrc=$?\n[ -e /run/lakecrypt-test.orderly ] && exit $rc\necho "LC-EXIT: $rc"\nsync\npoweroff -f\n' \
		"$args" "$entry" >/run/lakecrypt-entry.sh
	printf '%s\n' '[Unit]' 'Description=lakecrypt test entry' 'Requires=basic.target' \
		'After=basic.target multi-user.target' '[Service]' 'Type=oneshot' 'StandardOutput=tty' \
		'StandardError=tty' 'TTYPath=/dev/console' 'Environment=PATH=/lakecrypt/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		'ExecStart=/bin/sh /run/lakecrypt-entry.sh' >/etc/systemd/system/lakecrypt-test.service
	# A boot that never reaches the entry (a start job that waits for
	# ever, an emergency shell) says so with systemd's own view, instead
	# of the host's timeout killing a silent guest.
	cat >/run/lakecrypt-watchdog.sh <<'WD'
#!/bin/sh
n=0
while [ $n -lt "$1" ]; do
	[ -e /run/lakecrypt-test.started ] && exit 0
	sleep 5
	n=$((n + 5))
done
{
	echo "LC: not ok - boot: the test entry did not start within $1 s of systemd's start (systemd's jobs, failed units and journal follow)"
	systemctl list-jobs --no-pager 2>&1 | sed 's/^/LC: # jobs: /'
	systemctl --failed --no-pager 2>&1 | sed 's/^/LC: # failed: /'
	journalctl -b --no-pager -n 120 2>&1 | sed 's/^/LC: # journal: /'
	echo "LC: 0 passed, 1 failed, 0 skipped"
	echo "LC-EXIT: 1"
} >/dev/console 2>&1
sync
poweroff -f
WD
	printf '%s\n' '[Unit]' 'Description=lakecrypt test: boot watchdog' 'DefaultDependencies=no' \
		'Conflicts=shutdown.target' 'Before=shutdown.target' '[Service]' \
		"ExecStart=/bin/sh /run/lakecrypt-watchdog.sh $watchdog" >/etc/systemd/system/lakecrypt-test-watchdog.service
	printf '%s\n' '[Unit]' 'Description=lakecrypt test' 'Requires=multi-user.target' \
		'Wants=lakecrypt-test.service lakecrypt-test-watchdog.service' 'After=multi-user.target' \
		>/etc/systemd/system/lakecrypt-test.target
	ln -sf /etc/systemd/system/lakecrypt-test.target /etc/systemd/system/default.target
	umount /tmp
	exec /lib/systemd/systemd
fi
if [ -z "$entry" ] || [ ! -f "$entry" ]; then
	echo "LC: init: no entry script '$entry' in /lakecrypt"
	rc=127
else
	eval "set -- $args"
	/bin/sh "$entry" "$@"
	rc=$?
fi
echo "LC-EXIT: $rc"
sync
poweroff -f
EOF
chmod 755 "$root/init"
mkcpio "$root" "$out/payload.cpio.gz"
cat "$out/base.cpio.gz" "$out/payload.cpio.gz" >"$out/initrd.img.tmp"
mv "$out/initrd.img.tmp" "$out/initrd.img"
echo "$out/initrd.img"
