#!/bin/bash
# make deb, checked: the packages build with dpkg-buildpackage (debhelper,
# dh-dkms), lintian has nothing to say (tags left on purpose are listed
# with their reason in tools/debian/lintian-explained), and both packages
# install on a fresh Debian 12 (a debootstrap --variant=minbase chroot from
# the Debian mirror, $LAKECRYPT_DEB_MIRROR), the module builds through
# DKMS when kernel headers arrive, and a purge removes everything.
# Needs root and the mirror; about 5 minutes.  TAP; ends with
# "N passed, N failed, N skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
mirror=${LAKECRYPT_DEB_MIRROR:-http://deb.debian.org/debian}
pass=0 fail=0 n=0
log=$(mktemp)
root=$top/build/deb-chroot
cleanup() {
	mountpoint -q "$root/proc" && umount "$root/proc"
	rm -rf "$root" "$log"
}
trap cleanup EXIT
tap() {	# tap RC DESC
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then pass=$((pass + 1)); echo "ok $n - $2"
	else fail=$((fail + 1)); echo "not ok $n - $2"; sed 's/^/# /' "$log" | tail -n 40; fi
	: >"$log"
}
in_root() { chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C sh -c "$1"; }
finish() { echo "$pass passed, $fail failed, 0 skipped"; [ "$fail" -eq 0 ]; exit; }

ver=$(awk '/LAKECRYPT_VERSION_(MAJOR|MINOR|PATCH)/ { v = v (v ? "." : "") $3 } END { print v }' include/uapi/linux/dm-lakecrypt.h)
tools/mkdeb.sh >"$log" 2>&1
tap $? "make deb: dpkg-buildpackage builds lakecrypt and lakecrypt-dkms $ver" || finish
deb=build/deb/lakecrypt_${ver}_amd64.deb
dkmsdeb=build/deb/lakecrypt-dkms_${ver}_all.deb
grep -E '^[EWI]: ' build/deb/lintian.log >"$log"
[ ! -s "$log" ]
tap $? "lintian: no error, warning or info tag"
dpkg-deb -c "$deb" | awk '{print $6}' >"$log"
for f in ./usr/sbin/lakecrypt-agent ./usr/sbin/lakecryptctl ./usr/lib/lakecrypt/lakecrypt-probe \
	./lib/udev/rules.d/61-lakecrypt.rules ./lib/systemd/system/lakecrypt-agent.service \
	./lib/systemd/system/lakecrypt.target ./lib/systemd/system-generators/lakecrypt-generator \
	./usr/share/man/man8/lakecryptctl.8.gz ./usr/share/man/man8/lakecrypt-agent.8.gz \
	./usr/share/man/man5/lakecrypttab.5.gz; do
	grep -qxF "$f" "$log" || { echo "missing $f"; false; } || break
done >"$log.2" 2>&1
[ ! -s "$log.2" ]; rc=$?; mv "$log.2" "$log"
tap $rc "lakecrypt: agent, CLI, probe, rules, units, generator, man pages"
# The documents and examples make install puts in share/doc/lakecrypt
# (dh_compress gzips documents over 4 KiB, not examples; the rules keep
# *.md and *.rst as they are, since the man pages name them so).
dpkg-deb -c "$deb" | awk '{print $6}' >"$log.l"
for f in agent-protocol.md key-hierarchy.md lakecryptctl.md on-disk-format.md udev.md \
	kms-providers.md fleet-revocation.md etcd.md dm-lakecrypt.rst \
	examples/agent.conf examples/lakecrypttab examples/hook-signal.conf; do
	case $f in *.md | *.rst) gz= ;; *) gz='(\.gz)?' ;; esac
	grep -qxE "\./usr/share/doc/lakecrypt/${f//./\\.}$gz" "$log.l" || echo "missing /usr/share/doc/lakecrypt/$f"
done >"$log" 2>&1
rm -f "$log.l"
[ ! -s "$log" ]; tap $? "lakecrypt: documentation (kms-providers.md, fleet-revocation.md, ...) and examples (agent.conf, hook-signal.conf, ...)"
# (lists go to files first: grep -q closing a pipe early fails it under pipefail)
dpkg-deb -c "$dkmsdeb" | awk '{print $6}' >"$log.c"
dpkg-deb -I "$dkmsdeb" >"$log.i"
grep -qx "./usr/src/lakecrypt-$ver/dkms.conf" "$log.c" && grep -q 'Depends:.*dkms' "$log.i"
rc=$?; cat "$log.c" "$log.i" >"$log"; rm -f "$log.c" "$log.i"; [ $rc -eq 0 ]
tap $? "lakecrypt-dkms: /usr/src/lakecrypt-$ver with dkms.conf, depends on dkms"

dpkg-deb -c "$deb" | awk '{print $6}' >"$log.l"
grep -E 'installed-dirs|/usr/lib/lakecrypt/manifest' "$log.l" >"$log"; rm -f "$log.l"
[ ! -s "$log" ]; tap $? "lakecrypt: make install's records of the directories and files it made are not packaged"
# The groups of the agent's defaults (agent/lib/config.c) are made by the
# postinst before debhelper's part starts the agent (it looks the
# operator group up only at start-up).
dpkg-deb -e "$deb" "$log.ctl"
def_groups=$(sed -n 's/.*snprintf(cfg->\(operator\|admin\)_group, sizeof(cfg->[a-z]*_group), "\([^"]*\)");/\2/p' \
	agent/lib/config.c | LC_ALL=C sort | paste -sd' ')
add=$(grep -n 'addgroup --system' "$log.ctl/postinst" | head -n 1 | cut -d: -f1)
start=$(grep -n 'deb-systemd-invoke ' "$log.ctl/postinst" | head -n 1 | cut -d: -f1)
{ echo "groups of the agent's defaults: '$def_groups'; addgroup at line ${add:-none}, start at line ${start:-none}"
	cat "$log.ctl/postinst"; } >"$log"
rm -rf "$log.ctl"
[ "$def_groups" = "lakecrypt lakecrypt-admin" ] && [ -n "$add" ] && [ -n "$start" ] && [ "$add" -lt "$start" ] &&
	grep -q 'for g in lakecrypt lakecrypt-admin; do' "$log" && grep -q 'Depends:.*adduser' <(dpkg-deb -I "$deb")
tap $? "postinst: addgroup --system lakecrypt lakecrypt-admin before the agent starts; depends on adduser"

# lakecrypt-dkms's prerm: the refusal (tools/open-volumes.sh, as
# lakecrypt's) before DKMS's own part (dh_dkms: dkms remove), kept.
dpkg-deb -e "$dkmsdeb" "$log.ctl"
refuse=$(grep -n 'why=$(lakecrypt_open_volumes)' "$log.ctl/prerm" | head -n 1 | cut -d: -f1)
dkmsrm=$(grep -n 'dkms remove' "$log.ctl/prerm" | head -n 1 | cut -d: -f1)
{ echo "refusal at line ${refuse:-none}, dkms remove at line ${dkmsrm:-none}"; cat "$log.ctl/prerm"; } >"$log"
rm -rf "$log.ctl"
[ -n "$refuse" ] && [ -n "$dkmsrm" ] && [ "$refuse" -lt "$dkmsrm" ]
tap $? "lakecrypt-dkms prerm: the open-volumes refusal, then dh_dkms's dkms remove"

rm -rf "$root"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$log" 2>&1
tap $? "debootstrap a fresh Debian 12 (minbase) from $mirror" || finish
mount -t proc proc "$root/proc"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"	# start no service in the chroot
chmod 755 "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/" 2>/dev/null
cp "$deb" "$dkmsdeb" "$root/tmp/"
in_root "apt-get update -q && apt-get install -y --no-install-recommends /tmp/$(basename "$deb") /tmp/$(basename "$dkmsdeb")" >"$log" 2>&1
tap $? "apt-get install both packages (dependencies from the mirror)"
in_root "lakecryptctl --version && : >/tmp/empty && /usr/lib/lakecrypt/lakecrypt-probe /tmp/empty; [ \$? -eq 2 ] &&
	lakecrypt-agent --version && test -L /etc/systemd/system/multi-user.target.wants/lakecrypt-agent.service &&
	test -f /usr/share/man/man5/lakecrypttab.5.gz" >"$log" 2>&1
tap $? "installed: CLI, agent and probe run, agent enabled, lakecrypttab(5) installed"
in_root "getent group lakecrypt lakecrypt-admin && [ \$(getent group lakecrypt | cut -d: -f3) -lt 1000 ] &&
	[ \$(getent group lakecrypt-admin | cut -d: -f3) -lt 1000 ] && groupdel lakecrypt-admin &&
	groupadd -g 4242 lakecrypt-admin && /var/lib/dpkg/info/lakecrypt.postinst configure &&
	[ \$(getent group lakecrypt-admin | cut -d: -f3) = 4242 ] && getent group lakecrypt" >"$log" 2>&1
tap $? "installed: system groups lakecrypt and lakecrypt-admin exist; postinst again keeps an existing group"
in_root "lakecrypt-agent --check-config --config /usr/share/doc/lakecrypt/examples/agent.conf" >"$log" 2>&1
tap $? "installed: the example agent.conf passes lakecrypt-agent --check-config"
# apt-get remove while lakecrypt volumes are open is refused by the prerm
# (as make uninstall): dmsetup, replaced for the while by one that lists
# a volume (apt runs dpkg with its own PATH, /usr/sbin:/usr/bin:/sbin:/bin,
# so the real one's place); nothing removed, the package stays installed.
mv "$root/usr/sbin/dmsetup" "$root/usr/sbin/dmsetup.lc-real"
printf '#!/bin/sh\n[ "$*" = "ls --target lakecrypt" ] || exit 1\nprintf "ledger\\t(253:3)\\n"\n' >"$root/usr/sbin/dmsetup"
chmod 755 "$root/usr/sbin/dmsetup"
in_root "dmsetup ls --target lakecrypt | grep -q ledger || exit 1
	apt-get remove -y lakecrypt >/tmp/remove.out 2>&1; rc=\$?; cat /tmp/remove.out
	[ \$rc -ne 0 ] && grep -q 'lakecrypt volumes are open: ledger; close them first' /tmp/remove.out &&
	test -x /usr/sbin/lakecrypt-agent && test -f /lib/systemd/system/lakecrypt-agent.service &&
	dpkg-query -W -f '\${db:Status-Status}\n' lakecrypt | grep -qx installed" >"$log" 2>&1
tap $? "apt-get remove with a lakecrypt volume open: refused by the prerm, naming it; nothing removed"
# The module's package alone, the same (its prerm from the same
# tools/open-volumes.sh): the DKMS source and registration stay.
in_root "apt-get remove -y lakecrypt-dkms >/tmp/remove.out 2>&1; rc=\$?; cat /tmp/remove.out
	[ \$rc -ne 0 ] && grep -q 'lakecrypt-dkms: lakecrypt volumes are open: ledger; close them first' /tmp/remove.out &&
	test -f /usr/src/lakecrypt-$ver/dkms.conf && dkms status -m lakecrypt -v $ver | grep -q 'lakecrypt/$ver: added' &&
	dpkg-query -W -f '\${db:Status-Status}\n' lakecrypt-dkms | grep -qx installed" >"$log" 2>&1
tap $? "apt-get remove lakecrypt-dkms with a lakecrypt volume open: refused by its prerm, naming it; DKMS source and registration kept"
mv "$root/usr/sbin/dmsetup.lc-real" "$root/usr/sbin/dmsetup"
rm -f "$root/tmp/remove.out"
in_root "apt-get install -y --no-install-recommends linux-headers-amd64 && dkms status lakecrypt &&
	ls /lib/modules/*/updates/dkms/dm-lakecrypt.ko" >"$log" 2>&1
tap $? "kernel headers installed: DKMS builds and installs dm-lakecrypt.ko"
# With the volume still "open" (the fake dmsetup again):
# LAKECRYPT_FORCE_REMOVE=1 reaches both prerms through apt and dpkg.
mv "$root/usr/sbin/dmsetup" "$root/usr/sbin/dmsetup.lc-real"
printf '#!/bin/sh\n[ "$*" = "ls --target lakecrypt" ] || exit 1\nprintf "ledger\\t(253:3)\\n"\n' >"$root/usr/sbin/dmsetup"
chmod 755 "$root/usr/sbin/dmsetup"
in_root "LAKECRYPT_FORCE_REMOVE=1 apt-get purge -y lakecrypt lakecrypt-dkms && ! ls /usr/sbin/lakecrypt* /lib/udev/rules.d/61-lakecrypt.rules \
	/lib/systemd/system/lakecrypt* /usr/src/lakecrypt-* /lib/modules/*/updates/dkms/dm-lakecrypt.ko 2>/dev/null" \
	>"$log" 2>&1
tap $? "LAKECRYPT_FORCE_REMOVE=1 apt-get purge (a volume open) removes the files and the DKMS module"
mv "$root/usr/sbin/dmsetup.lc-real" "$root/usr/sbin/dmsetup"
finish
