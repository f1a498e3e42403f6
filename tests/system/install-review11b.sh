# Sourced by tests/system/check.sh (its tap, has, $work, $log): make
# install/uninstall against the second hostile review of issue 11 (review
# 11b, findings 2 and 3).  Each case fails without its fix.

# ---- directory variables are absolute plain paths (finding 2): checked
# before anything is written (no DIST made, nothing under DESTDIR or
# outside it).
bx=$work/box
mkdir -p "$bx/stage"
! make -s install MODULE=none DESTDIR="$bx/stage" PREFIX=/../esc DIST="$bx/dist" >"$work/esc.out" 2>&1 &&
	has "$work/esc.out" 'install.sh: PREFIX="/\.\./esc": not a plain path' &&
	[ -z "$(find "$bx" -mindepth 1 ! -path "$bx/stage")" ] && [ -z "$(ls -A "$bx/stage")" ]
tap $? "make install PREFIX=/../esc DESTDIR=...: refused, nothing written inside or outside DESTDIR"
ok=0
for v in PREFIX SBINDIR LIBEXECDIR UDEVRULESDIR UNITDIR GENERATORDIR MANDIR DOCDIR SYSCONFDIR; do
	for p in sbin ./x /usr/../x /usr/./x /usr//x /usr/x/ /usr/x/. /usr/x/..; do
		if make -s dist-files DIST="$bx/dist" "$v=$p" >"$work/var.out" 2>&1 ||
			! grep -qF "install.sh: $v=\"$p\": " "$work/var.out" || [ -e "$bx/dist" ]; then
			{ echo "$v=$p: not refused before dist-files wrote anything:"; cat "$work/var.out"; } >>"$log"
			ok=1
		fi
	done
done
[ $ok -eq 0 ]
tap $? "every directory variable relative, with '.', '..', '//' or a '/' at the end: refused by make dist-files before it writes"
ok=0
for d in rel ./rel "$bx/x/../stage" "$bx//stage" "$bx/stage/"; do
	if make -s install MODULE=none DESTDIR="$d" DIST="$bx/dist" >"$work/dd.out" 2>&1 ||
		! grep -qF "install.sh: DESTDIR=\"$d\": " "$work/dd.out" || [ -e "$bx/dist" ] || [ -e rel ]; then
		{ echo "DESTDIR=$d: not refused:"; cat "$work/dd.out"; } >>"$log"
		ok=1
	fi
done
[ $ok -eq 0 ] && [ -z "$(ls -A "$bx/stage")" ]
tap $? "a DESTDIR that is relative or not plain: refused"
# uninstall with the escaping PREFIX: refused, the files there kept
mkdir -p "$bx/esc/sbin" && : >"$bx/esc/sbin/lakecryptctl"
! make -s uninstall MODULE=none DESTDIR="$bx/stage" PREFIX=/../esc >"$work/esc.out" 2>&1 &&
	has "$work/esc.out" 'PREFIX="/\.\./esc": not a plain path' && [ -f "$bx/esc/sbin/lakecryptctl" ]
tap $? "make uninstall PREFIX=/../esc DESTDIR=...: refused, nothing removed outside DESTDIR"
# A manifest line that is not a plain path is said, not dropped silently.
D13=$work/root13
make -s install DESTDIR="$D13" MODULE=none DIST="$work/dist13" >"$log" 2>&1 &&
	mkdir -p "$D13/etc" && echo secret >"$D13/etc/shadow" &&
	echo "file /usr/local/lib/lakecrypt/../../../../etc/shadow" >>"$D13/usr/local/lib/lakecrypt/manifest" &&
	make -s uninstall DESTDIR="$D13" MODULE=none DIST="$work/dist13" >"$work/un13" 2>&1 &&
	has "$work/un13" 'manifest names /usr/local/lib/lakecrypt/\.\./\.\./\.\./\.\./etc/shadow, not a plain path: not removed' &&
	[ -f "$D13/etc/shadow" ] && [ ! -e "$D13/usr/local/sbin/lakecryptctl" ]
tap $? "uninstall: a manifest line with '..' is kept and said, the rest removed"
cat "$work/un13" >>"$log"; : >"$log"

# ---- the Debian package's files are dpkg's (finding 3): its rules drop
# make's manifest and write installed-by-dpkg (shipped with
# usr/lib/lakecrypt); make uninstall with the package's paths refuses.
D14=$work/root14
P14='PREFIX=/usr UNITDIR=/lib/systemd/system GENERATORDIR=/lib/systemd/system-generators UDEVRULESDIR=/lib/udev/rules.d'
# shellcheck disable=SC2086
make -s install DESTDIR="$D14" MODULE=none DIST="$work/dist14" $P14 >"$log" 2>&1
rm -f "$D14/usr/lib/lakecrypt/installed-dirs" "$D14/usr/lib/lakecrypt/manifest"
# the marker as tools/debian/rules writes it (its printf line and the next)
sed -n '/installed-by-dpkg$/{x;G;p};h' tools/debian/rules | sed 's/\\$//; s|debian/tmp/|./|' | tr -d '\n\t' >"$work/marker.sh"
(cd "$D14" && sh "$work/marker.sh") >>"$log" 2>&1
n14=$(find "$D14" -type f | wc -l)
# shellcheck disable=SC2086
! make -s uninstall DESTDIR="$D14" MODULE=none DIST="$work/dist14" $P14 >"$work/un14" 2>&1 &&
	has "$work/un14" "installed by the Debian package \\($D14/usr/lib/lakecrypt/installed-by-dpkg\\): use apt-get remove lakecrypt; nothing removed" &&
	[ "$(find "$D14" -type f | wc -l)" -eq "$n14" ] && [ "$n14" -gt 20 ] &&
	grep -qx 'usr/lib/lakecrypt' tools/debian/lakecrypt.install
tap $? "make uninstall where the Debian package installed lakecrypt (its installed-by-dpkg marker): refused, nothing removed"
cat "$work/un14" "$work/marker.sh" >>"$log"; : >"$log"

# ---- the package's postinst and an existing group named lakecrypt
# (finding 6): a system group (gid 100..999) is reused quietly; a group
# made for something else is reused with a loud warning naming its
# members (by the list and by primary gid); no group: made.  getent and
# addgroup are fakes ($FAKE_GROUPS, $FAKE_PASSWD), adduser.conf is the
# host's (Debian's defaults when absent).
pf=$work/postinst-fake
mkdir -p "$pf"
printf '#!/bin/sh\ncase $1 in\ngroup) grep "^$2:" "$FAKE_GROUPS" ;;\npasswd) cat "$FAKE_PASSWD" ;;\nesac\n' >"$pf/getent"
printf '#!/bin/sh\necho "addgroup $*" >>"%s/calls"\n' "$pf" >"$pf/addgroup"
# udevadm too: the postinst's trigger (udev.md, "Installing") must not
# reach this host's udev.
printf '#!/bin/sh\necho "udevadm $*" >>"%s/udevadm-calls"\n' "$pf" >"$pf/udevadm"
chmod +x "$pf/getent" "$pf/addgroup" "$pf/udevadm"
printf 'alice:x:1000:1000::/home/alice:/bin/sh\ncarol:x:1001:1500::/home/carol:/bin/sh\n' >"$pf/passwd"
postinst() {	# postinst GROUP-LINES: runs configure; output in $pf/out, addgroup calls in $pf/calls
	printf '%s\n' "$@" >"$pf/groups"; rm -f "$pf/calls"
	FAKE_GROUPS=$pf/groups FAKE_PASSWD=$pf/passwd PATH=$pf:$PATH sh tools/debian/lakecrypt.postinst configure >"$pf/out" 2>&1
}
ok=0
postinst 'lakecrypt:x:1500:bob,alice' 'lakecrypt-admin:x:998:' || ok=1
grep -q 'WARNING: the group "lakecrypt" already exists (gid 1500) and is not a' "$pf/out" &&
	grep -q 'its members (bob alice carol ) are' "$pf/out" && grep -q 'operators of the agent' "$pf/out" &&
	grep -q 'operator_group' "$pf/out" && ! grep -q 'lakecrypt-admin' "$pf/out" && [ ! -e "$pf/calls" ] || ok=1
cat "$pf/out" >>"$log"
postinst 'lakecrypt:x:120:' || ok=1
[ ! -s "$pf/out" ] && grep -qx 'addgroup --system --quiet lakecrypt-admin' "$pf/calls" || ok=1
# Existing disks get their links: the trigger, where udev runs.
if [ -d /run/udev ]; then
	grep -qx 'udevadm trigger --subsystem-match=block --action=change' "$pf/udevadm-calls" || ok=1
else
	[ ! -e "$pf/udevadm-calls" ] || ok=1
fi
cat "$pf/out" >>"$log"
[ $ok -eq 0 ]
tap $? "postinst: an existing non-system group lakecrypt is reused with a loud warning naming its members; a system group quietly; a missing one made; udevadm trigger where udev runs (a fake here)"
