#!/bin/bash
# Host-side tests of the system integration (issue 11), nothing installed
# on this machine and no unit started:
#   - make install / make uninstall into a DESTDIR: the file list, the
#     paths written into the rules, units and generator, man pages render;
#   - systemd-analyze verify of the installed units and of generated ones;
#     systemd-analyze security of lakecrypt-agent.service: the exposure
#     score is printed and must stay below 3.0;
#   - the agent's sd_notify readiness (READY=1, STATUS=, STOPPING=1);
#   - lakecrypt-generator on good and bad lakecrypttab lines;
#   - the QEMU harness (tools/qemu/run.sh) against a fake QEMU: when a
#     boot is repeated and when it never is.
# TAP; ends with "N passed, N failed, N skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
pass=0 fail=0 n=0
work=$(mktemp -d)
agent_pid=
trap '[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null; rm -rf "$work"' EXIT
log=$work/log
: >"$log"
# The generators run below read no crypttab(5) of this host (its names
# would be refused): the tests that mean one set CRYPTTAB.
export CRYPTTAB=
# With a PREFIX outside /usr and /usr/local the Makefile takes udev's and
# systemd's directories from pkg-config (this host's /lib/udev, outside
# the test's trees): the installs below keep $(PREFIX)/lib/...; the tests
# that mean pkg-config set PKG_CONFIG.
export PKG_CONFIG=false

tap() {	# tap RC DESC
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then pass=$((pass + 1)); echo "ok $n - $2"
	else fail=$((fail + 1)); echo "not ok $n - $2"; sed 's/^/# /' "$log" | tail -n 40; fi
	: >"$log"
}
run() {	# run DESC CMD...
	local d=$1; shift
	"$@" >"$log" 2>&1
	tap $? "$d"
}
has() {	# has FILE REGEX: FILE has a line matching REGEX (ERE)
	grep -qE -- "$2" "$1" || { echo "no line matching /$2/ in $1:"; cat "$1"; } >>"$log"
	grep -qE -- "$2" "$1"
}

# ------------------------------------------------------------ build
run "build agent, CLI and probe" make -s -C agent
dist=$work/dist

# ------------------------------------------------------------ install into a DESTDIR
D=$work/root
run "make install DESTDIR PREFIX=/usr MODULE=dkms" \
	make -s install DESTDIR="$D" PREFIX=/usr MODULE=dkms DIST="$dist"
ver=$(awk '/LAKECRYPT_VERSION_(MAJOR|MINOR|PATCH)/ { v = v (v ? "." : "") $3 } END { print v }' include/uapi/linux/dm-lakecrypt.h)
{
	printf '%s\n' /usr/sbin/lakecrypt-agent /usr/sbin/lakecryptctl /usr/lib/lakecrypt/lakecrypt-probe \
		/usr/lib/udev/rules.d/61-lakecrypt.rules /usr/lib/systemd/system/lakecrypt-agent.service \
		/usr/lib/systemd/system/lakecrypt.target /usr/lib/systemd/system-generators/lakecrypt-generator \
		/usr/share/man/man8/lakecrypt-agent.8 /usr/share/man/man8/lakecryptctl.8 /usr/share/man/man5/lakecrypttab.5 \
		/usr/share/doc/lakecrypt/examples/agent.conf /usr/share/doc/lakecrypt/examples/lakecrypttab \
		/usr/share/doc/lakecrypt/examples/hook-signal.conf \
		/usr/src/lakecrypt-$ver/dkms.conf /usr/lib/lakecrypt/installed-dirs /usr/lib/lakecrypt/manifest
	for f in agent-protocol.md key-hierarchy.md lakecryptctl.md on-disk-format.md udev.md \
		 kms-providers.md fleet-revocation.md etcd.md dm-lakecrypt.rst; do
		echo "/usr/share/doc/lakecrypt/$f"
	done
	(find kernel include -type f \( -name '*.c' -o -name '*.h' -o -name Kbuild -o -name Makefile \)) |
		sed "s|^|/usr/src/lakecrypt-$ver/|"
} | LC_ALL=C sort >"$work/want"
(cd "$D" && find . -type f | sed 's|^\.||' | LC_ALL=C sort) >"$work/got"
diff -u "$work/want" "$work/got" >"$log" 2>&1
tap $? "installed file list is exactly the expected $(wc -l <"$work/want") files"
make -s install-list DESTDIR="$D" PREFIX=/usr MODULE=dkms DIST="$dist" >"$work/listed" 2>"$log"
diff -u "$work/want" "$work/listed" >>"$log" 2>&1
tap $? "make install-list names the same files"
find "$D/usr/sbin" "$D/usr/lib/lakecrypt" "$D/usr/lib/systemd/system-generators" -type f ! -perm 0755 \
	! -name installed-dirs ! -name manifest >"$log"
for r in installed-dirs manifest; do
	[ "$(stat -c %a "$D/usr/lib/lakecrypt/$r")" = 644 ] || echo "$r: not 0644" >>"$log"
done
[ ! -s "$log" ]; tap $? "programs are 0755 (install's records of its directories and files 0644)"
# The manifest names every file installed, and the module.
sed -n 's/^file //p' "$D/usr/lib/lakecrypt/manifest" | LC_ALL=C sort >"$work/manifest.files"
diff -u "$work/want" "$work/manifest.files" >"$log" 2>&1 &&
	[ "$(grep -v '^file ' "$D/usr/lib/lakecrypt/manifest")" = "module dkms $ver" ]
tap $? "the manifest names every installed file and 'module dkms $ver'"
find "$D/usr/share" "$D/usr/lib/udev" "$D/usr/lib/systemd/system" -type f ! -perm 0644 >"$log"
[ ! -s "$log" ]; tap $? "data files are 0644"
has "$D/usr/lib/udev/rules.d/61-lakecrypt.rules" 'IMPORT\{program\}="/usr/lib/lakecrypt/lakecrypt-probe \$devnode"' &&
	has "$D/usr/lib/udev/rules.d/61-lakecrypt.rules" 'RUN\+="/usr/sbin/lakecryptctl --timeout 20 notify-revoked' &&
	! grep -q @ "$D/usr/lib/udev/rules.d/61-lakecrypt.rules"
tap $? "rules name the installed probe and CLI, no @placeholder@ left"
has "$D/usr/lib/systemd/system/lakecrypt-agent.service" '^ExecStart=/usr/sbin/lakecrypt-agent --foreground$'
tap $? "unit runs /usr/sbin/lakecrypt-agent"
has "$D/usr/lib/systemd/system-generators/lakecrypt-generator" '^ctl="/usr/sbin/lakecryptctl"$' &&
	has "$D/usr/lib/systemd/system-generators/lakecrypt-generator" 'LAKECRYPTTAB:-\$\{cv:-"/etc/lakecrypt/lakecrypttab"\}'
tap $? "generator reads /etc/lakecrypt/lakecrypttab and runs /usr/sbin/lakecryptctl"
for m in man8/lakecrypt-agent.8 man8/lakecryptctl.8 man5/lakecrypttab.5; do
	out=$(MANWIDTH=80 man --warnings -l "$D/usr/share/man/$m" 2>"$log")
	[ ! -s "$log" ] && grep -q '^NAME' <<<"$out" && grep -q '^SYNOPSIS' <<<"$out"
	tap $? "man $m renders without warnings ($(echo "$out" | wc -l) lines, NAME and SYNOPSIS)"
done
run "make uninstall" make -s uninstall DESTDIR="$D" PREFIX=/usr MODULE=dkms DIST="$dist"
(cd "$D" && find . -type f) >"$log"
[ ! -s "$log" ]; tap $? "uninstall removed every installed file"
find "$D" -mindepth 1 >"$log"
[ -d "$D" ] && [ ! -s "$log" ]; tap $? "and every directory install made: the tree under DESTDIR is empty"
# Directories that were there before install stay (empty or not), as do
# ones install made that hold other files now; a second install keeps the
# first one's record.
D7=$work/root7
mkdir -p "$D7/usr/local/sbin" "$D7/usr/local/share/man/man5"
make -s install DESTDIR="$D7" MODULE=none DIST="$dist" >"$log" 2>&1 &&
	make -s install DESTDIR="$D7" MODULE=none DIST="$dist" >>"$log" 2>&1 &&
	touch "$D7/usr/local/share/man/man8/other.8" &&
	make -s uninstall DESTDIR="$D7" MODULE=none DIST="$dist" >>"$log" 2>&1 &&
	(cd "$D7" && find . | LC_ALL=C sort) >"$work/left7" &&
	printf '%s\n' . ./usr ./usr/local ./usr/local/sbin ./usr/local/share ./usr/local/share/man \
		./usr/local/share/man/man5 ./usr/local/share/man/man8 ./usr/local/share/man/man8/other.8 >"$work/want7" &&
	diff -u "$work/want7" "$work/left7" >>"$log" 2>&1
tap $? "uninstall keeps directories that existed before (sbin, man5) and non-empty ones (man8); reinstall keeps the record"
# make uninstall with other variables than the install: the manifest
# decides what goes (MODULE and KVER as given do not matter); under another
# PREFIX, or where nothing was installed, it fails and removes nothing.
D9=$work/root9
make -s install DESTDIR="$D9" PREFIX=/usr MODULE=dkms DIST="$dist" >"$log" 2>&1 &&
	[ -f "$D9/usr/src/lakecrypt-$ver/dkms.conf" ] &&
	! make -s uninstall DESTDIR="$D9" MODULE=dkms DIST="$dist" >"$work/un9" 2>&1 &&
	has "$work/un9" "nothing of lakecrypt is installed under PREFIX=/usr/local in DESTDIR=$D9 .*; pass the PREFIX/MODULE/KVER used for make install" &&
	[ -x "$D9/usr/sbin/lakecryptctl" ] && [ -f "$D9/usr/lib/lakecrypt/manifest" ]
tap $? "make uninstall with the PREFIX forgotten: fails, saying nothing is installed under /usr/local, removes nothing"
cat "$work/un9" >>"$log"
make -s uninstall DESTDIR="$D9" PREFIX=/usr MODULE=kbuild KVER=0.0-lcother DIST="$dist" >>"$log" 2>&1 &&
	(cd "$D9" && find . -mindepth 1) >"$work/left9" && [ ! -s "$work/left9" ]
rc=$?; cat "$work/left9" >>"$log"
tap $rc "make uninstall MODULE=kbuild KVER=other after MODULE=dkms: the manifest's files go (the DKMS source too), the tree is empty"
mkdir -p "$work/root10"
! make -s uninstall DESTDIR="$work/root10" PREFIX=/usr MODULE=none DIST="$dist" >"$work/un10" 2>&1 &&
	has "$work/un10" 'nothing of lakecrypt is installed under PREFIX=/usr in DESTDIR='
tap $? "make uninstall where nothing is installed: fails, saying so"
cat "$work/un10" >>"$log"
# A manifest names only where lakecrypt installs (final issue-11 review,
# finding 6): a path elsewhere is kept and said; a manifest others may
# write is not trusted at all.
D12=$work/root12
make -s install DESTDIR="$D12" MODULE=none DIST="$dist" >"$log" 2>&1 &&
	mkdir -p "$D12/etc" && echo secret >"$D12/etc/shadow" &&
	echo "file /etc/shadow" >>"$D12/usr/local/lib/lakecrypt/manifest" &&
	make -s uninstall DESTDIR="$D12" MODULE=none DIST="$dist" >"$work/un12" 2>&1 &&
	has "$work/un12" "manifest names /etc/shadow, where lakecrypt installs nothing: not removed" &&
	[ -f "$D12/etc/shadow" ] && [ ! -e "$D12/usr/local/sbin/lakecryptctl" ]
tap $? "uninstall: a manifest's path outside lakecrypt's directories (/etc/shadow) is kept and said; the rest removed"
cat "$work/un12" >>"$log"
make -s install DESTDIR="$D12" MODULE=none DIST="$dist" >"$log" 2>&1 &&
	chmod 666 "$D12/usr/local/lib/lakecrypt/manifest" &&
	! make -s uninstall DESTDIR="$D12" MODULE=none DIST="$dist" >"$work/un12" 2>&1 &&
	has "$work/un12" "manifest: owned by uid $(id -u) with mode 666, not this user's alone: not trusted; nothing removed" &&
	[ -x "$D12/usr/local/sbin/lakecryptctl" ]
tap $? "uninstall: a manifest writable by others is not trusted: nothing removed"
cat "$work/un12" >>"$log"
# An install from before the manifest (none there): the table's files for
# the variables given go, as before.
make -s install DESTDIR="$work/root11" MODULE=none DIST="$dist" >"$log" 2>&1 &&
	rm "$work/root11/usr/local/lib/lakecrypt/manifest" &&
	make -s uninstall DESTDIR="$work/root11" MODULE=none DIST="$dist" >>"$log" 2>&1 &&
	(cd "$work/root11" && find . -mindepth 1) >>"$log" && [ -z "$(ls -A "$work/root11")" ]
tap $? "an install without a manifest (older) is still uninstalled with the same variables"
# The default MODULE=kbuild without the kernel's headers: the message says
# which package to install, or the other MODULE= choices; nothing installed.
! make -s install DESTDIR="$work/root8" KVER=0.0-lcnone DIST="$work/dist8" >"$log" 2>&1 &&
	has "$log" 'no headers for 0\.0-lcnone in /usr/src/linux-headers-0\.0-lcnone: install them \(Debian: apt-get install linux-headers-0\.0-lcnone' &&
	has "$log" 'make install MODULE=dkms .* or MODULE=none' && ! grep -qF '(run tools/setup-deps.sh)' "$log" && [ ! -e "$work/root8" ]
tap $? "make install without the kernel's headers: names linux-headers-KVER, MODULE=dkms and MODULE=none; nothing installed"

D2=$work/root2
run "make install PREFIX=/usr/local MODULE=none (defaults)" \
	make -s install DESTDIR="$D2" MODULE=none DIST="$work/dist2"
[ -x "$D2/usr/local/sbin/lakecryptctl" ] && [ -f "$D2/usr/local/lib/udev/rules.d/61-lakecrypt.rules" ] &&
	[ -f "$D2/usr/local/lib/systemd/system/lakecrypt-agent.service" ] &&
	[ -x "$D2/usr/local/lib/systemd/system-generators/lakecrypt-generator" ] &&
	[ -f "$D2/usr/local/share/man/man8/lakecryptctl.8" ] && [ ! -e "$D2/usr/src" ] &&
	has "$D2/usr/local/lib/udev/rules.d/61-lakecrypt.rules" '/usr/local/lib/lakecrypt/lakecrypt-probe'
tap $? "PREFIX=/usr/local: paths udev and systemd search (/usr/local/lib/...), no module"
# A PREFIX udev and systemd do not search (rev11a finding 6): the rules,
# units and generator go where pkg-config's udev.pc and systemd.pc say,
# with a note; without pkg-config's answer, where PREFIX says, with a
# warning naming each directory nobody reads.
fpc=$work/fake-pkg-config
printf '#!/bin/sh\ncase "$*" in\n"--variable=udevdir udev") echo /pc/udev ;;\n"--variable=systemdsystemunitdir systemd") echo /pc/systemd/system ;;\n"--variable=systemdsystemgeneratordir systemd") echo /pc/systemd/system-generators ;;\n*) exit 1 ;;\nesac\n' >"$fpc"
chmod +x "$fpc"
Dpc=$work/root-pc
make -s install DESTDIR="$Dpc" PREFIX=/opt/lakecrypt MODULE=none DIST="$work/dist-pc" PKG_CONFIG="$fpc" >"$work/pc.out" 2>&1 &&
	[ -f "$Dpc/pc/udev/rules.d/61-lakecrypt.rules" ] && [ -f "$Dpc/pc/systemd/system/lakecrypt-agent.service" ] &&
	[ -x "$Dpc/pc/systemd/system-generators/lakecrypt-generator" ] && [ -x "$Dpc/opt/lakecrypt/sbin/lakecryptctl" ] &&
	[ ! -e "$Dpc/opt/lakecrypt/lib/udev" ] && [ ! -e "$Dpc/opt/lakecrypt/lib/systemd" ] &&
	has "$work/pc.out" 'note: udev and systemd read nothing under PREFIX=/opt/lakecrypt \(not read by them\): the rules, units and generator go to /pc/udev/rules.d, /pc/systemd/system, /pc/systemd/system-generators' &&
	! grep -q warning "$work/pc.out"
tap $? "PREFIX=/opt/lakecrypt: rules, units and generator where pkg-config's udev.pc and systemd.pc say, with a note"
make -s install DESTDIR="$work/root-nopc" PREFIX=/opt/lakecrypt MODULE=none DIST="$work/dist-pc" >"$work/pc.out" 2>&1 &&
	[ -f "$work/root-nopc/opt/lakecrypt/lib/udev/rules.d/61-lakecrypt.rules" ] &&
	has "$work/pc.out" 'warning: UDEVRULESDIR=/opt/lakecrypt/lib/udev/rules.d is not read by udev' &&
	has "$work/pc.out" 'warning: UNITDIR=/opt/lakecrypt/lib/systemd/system is not read by systemd' &&
	has "$work/pc.out" 'warning: GENERATORDIR=/opt/lakecrypt/lib/systemd/system-generators is not read by systemd' &&
	make -s install DESTDIR="$work/root-nopc2" MODULE=none DIST="$work/dist-pc" >"$work/pc.out" 2>&1 &&
	! grep -q 'warning\|note' "$work/pc.out"
tap $? "no pkg-config answer: PREFIX=/opt/lakecrypt installs with a warning for each directory udev or systemd do not read; PREFIX=/usr/local none"
# Every document the installed man pages and example configurations name
# (*.md, *.rst) is installed, in DOCDIR; the man pages name that DOCDIR
# (here /usr/local/share/doc/lakecrypt), not another.
doc2=$D2/usr/local/share/doc/lakecrypt
: >"$work/docrefs"
for f in "$D2"/usr/local/share/man/man*/* "$doc2"/examples/*; do
	sed -e 's/\\-/-/g' -e 's/\\f.//g' -e 's/\\&//g' "$f" |
		grep -oE '[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.(md|rst)\b' | sed "s|^|$(basename "$f") |" >>"$work/docrefs"
done
while read -r f ref; do
	case $ref in
	/*) [ -f "$D2$ref" ] || echo "$f names $ref: not installed" ;;
	*/*) echo "$f names $ref: a path in the source tree, not an installed file" ;;
	*) [ -f "$doc2/$ref" ] || echo "$f names $ref: not in $doc2" ;;
	esac
done <"$work/docrefs" >"$log"
grep -l '/usr/share/doc/lakecrypt' "$D2"/usr/local/share/man/man*/* >>"$log"
grep -q '/usr/local/share/doc/lakecrypt' "$D2/usr/local/share/man/man8/lakecrypt-agent.8" ||
	echo "lakecrypt-agent.8 does not name /usr/local/share/doc/lakecrypt" >>"$log"
grep -q 'etcd\.md' "$work/docrefs" || echo "no reference to etcd.md found (the check itself is broken)" >>"$log"
[ ! -s "$log" ]
tap $? "the $(wc -l <"$work/docrefs") documents named in the installed man pages and examples are installed in DOCDIR, which the man pages name"

# A PREFIX and a DESTDIR with spaces: every file lands where the list
# says, the rules, units and generator quote the paths they run (udev
# keeps a '...' word whole, systemd a "..." one), uninstall removes it all.
D5="$work/root five"
P5="/opt/lake crypt"
run "make install DESTDIR and PREFIX with spaces" \
	make -s install DESTDIR="$D5" PREFIX="$P5" MODULE=none DIST="$work/dist five"
make -s install-list DESTDIR="$D5" PREFIX="$P5" MODULE=none DIST="$work/dist five" >"$work/listed5" 2>"$log"
(cd "$D5" && find . -type f | sed 's|^\.||' | LC_ALL=C sort) >"$work/got5"
[ "$(wc -l <"$work/got5")" -eq 24 ] && grep -qxF "$P5/sbin/lakecryptctl" "$work/got5" &&
	diff -u "$work/listed5" "$work/got5" >>"$log" 2>&1
tap $? "PREFIX with a space: the $(wc -l <"$work/got5") files installed are the ones listed, under '$P5'"
r5="$D5$P5/lib/udev/rules.d/61-lakecrypt.rules"
has "$r5" "^IMPORT\{program\}=\"'$P5/lib/lakecrypt/lakecrypt-probe' \\\$devnode\"\$" &&
	has "$r5" "RUN\+=\"'$P5/sbin/lakecryptctl' --timeout 20 notify-revoked" &&
	has "$D5$P5/lib/systemd/system/lakecrypt-agent.service" "^ExecStart=\"$P5/sbin/lakecrypt-agent\" --foreground\$" &&
	has "$D5$P5/lib/systemd/system-generators/lakecrypt-generator" "^ctl=\"$P5/sbin/lakecryptctl\"\$"
tap $? "the rule, the unit and the generator quote the paths with a space"
printf 'vol1 UUID=3f2c9d1e-8a4b-4c6d-9e0f-1a2b3c4d5e6f finance\n' >"$work/tab5"
mkdir -p "$work/gen5"
LAKECRYPTTAB=$work/tab5 "$D5$P5/lib/systemd/system-generators/lakecrypt-generator" "$work/gen5" >"$log" 2>&1 &&
	has "$work/gen5/lakecrypt@vol1.service" "^ExecStart=\"$P5/sbin/lakecryptctl\" --timeout 90 open /dev/disk/by-uuid/" &&
	has "$work/gen5/lakecrypt@vol1.service" "^ExecStop=\"$P5/sbin/lakecryptctl\" --timeout 90 close --if-open vol1" &&
	[ "$(readlink "$work/gen5/multi-user.target.wants/lakecrypt.target")" = "$P5/lib/systemd/system/lakecrypt.target" ]
tap $? "the generator writes the quoted command into the units it makes"
# systemd reads the quoted command as one path: the programs copied into
# a directory with a space, the unit and a generated unit verified.
S5="$work/s bin"
mkdir -p "$S5" && cp build/agent/lakecrypt-agent build/agent/lakecryptctl "$S5/"
make -s dist-files DIST="$work/dist5b" PREFIX=/usr SBINDIR="$S5" >"$log" 2>&1 &&
	MANPATH="$D5$P5/share/man" systemd-analyze verify "$work/dist5b/lakecrypt-agent.service" >>"$log" 2>&1
tap $? "systemd-analyze verify: ExecStart=\"$S5/lakecrypt-agent\" is found"
rm -rf "$work/gen5b"; mkdir -p "$work/gen5b" "$work/units5"
cp "$work/dist5b/lakecrypt-agent.service" "$work/dist5b/lakecrypt.target" "$work/units5/"
LAKECRYPTTAB=$work/tab5 "$work/dist5b/lakecrypt-generator" "$work/gen5b" >"$log" 2>&1 &&
	MANPATH="$D5$P5/share/man" SYSTEMD_UNIT_PATH="$work/gen5b:$work/units5:" systemd-analyze verify "$work/gen5b/lakecrypt@vol1.service" >>"$log" 2>&1
tap $? "systemd-analyze verify: a generated unit running \"$S5/lakecryptctl\""
printf 'x\n' >"$log"
! make -s dist-files DIST="$work/dist5c" PREFIX='/opt/lake"crypt' >"$log" 2>&1 &&
	has "$log" 'PREFIX="/opt/lake"crypt": only letters, digits, spaces' && [ ! -e "$work/dist5c" ]
tap $? "a PREFIX with characters no quoting carries is refused, saying which"
run "make uninstall DESTDIR and PREFIX with spaces" \
	make -s uninstall DESTDIR="$D5" PREFIX="$P5" MODULE=none DIST="$work/dist five"
(cd "$D5" && find . -mindepth 1) >"$log"
[ -d "$D5" ] && [ ! -s "$log" ]
tap $? "uninstall with spaces removed every file and directory it made: the tree under DESTDIR is empty"

# On the running system (no DESTDIR; here a PREFIX in the test directory),
# install and uninstall have udevd and systemd reread their rules and
# units: fake udevadm and systemctl on PATH record each call (but
# systemctl's questions) and whether the files were still there.  systemctl
# answers is-system-running with $FAKE_STATE (offline: no systemd) and
# FragmentPath with $FAKE_FRAGMENT; dmsetup ls prints $FAKE_DM (exit
# status $FAKE_DM_RC).
fb=$work/fakebin
mkdir -p "$fb"
for tool in udevadm systemctl; do
	cat >"$fb/$tool" <<FAKE
#!/bin/bash
case "\$*" in
is-system-running) echo "\${FAKE_STATE:-offline}"; [ "\${FAKE_STATE:-offline}" = running ]; exit ;;
"show --property=FragmentPath --value lakecrypt-agent.service") echo "\${FAKE_FRAGMENT:-}"; exit 0 ;;
esac
if [ -e "\$FAKE_WATCH" ]; then there=present; else there=absent; fi
echo "$tool \$* (\$there)" >>"\$FAKE_LOG"
FAKE
	chmod +x "$fb/$tool"
done
cat >"$fb/dmsetup" <<'FAKE'
#!/bin/bash
[ "$*" = "ls --target lakecrypt" ] || { echo "fake dmsetup: $*" >&2; exit 1; }
printf '%b\n' "${FAKE_DM:-No devices found}"
exit "${FAKE_DM_RC:-0}"
FAKE
chmod +x "$fb/dmsetup"
P6="$work/pre six"
export FAKE_LOG=$work/fake.log FAKE_WATCH="$P6/lib/udev/rules.d/61-lakecrypt.rules"
: >"$FAKE_LOG"
PATH=$fb:$PATH make -s install PREFIX="$P6" MODULE=none DIST="$work/dist6" >"$log" 2>&1 &&
	grep -qxF 'udevadm control --reload (present)' "$FAKE_LOG" &&
	grep -qxF 'systemctl daemon-reload (present)' "$FAKE_LOG" &&
	grep -qxF 'udevadm trigger --subsystem-match=block --action=change (present)' "$FAKE_LOG"
tap $? "install (no DESTDIR): udevadm control --reload, systemctl daemon-reload, then a change event for every block device (links for the disks already there), files in place"
cat "$FAKE_LOG" >>"$log"; : >"$FAKE_LOG"
PATH=$fb:$PATH make -s uninstall PREFIX="$P6" MODULE=none DIST="$work/dist6" >>"$log" 2>&1 &&
	[ ! -e "$FAKE_WATCH" ] && [ "$(cat "$FAKE_LOG")" = "udevadm control --reload (absent)
systemctl daemon-reload (absent)" ]
tap $? "uninstall (no DESTDIR): the same reloads, after the files are gone"
cat "$FAKE_LOG" >>"$log"; : >"$FAKE_LOG"
# With systemd running and the agent's unit the one being removed: the
# agent is stopped and disabled first; refused (nothing removed, nothing
# stopped) while lakecrypt volumes are open, unless FORCE=1.
uninstall6() { PATH=$fb:$PATH make -s uninstall PREFIX="$P6" MODULE=none DIST="$work/dist6" "$@"; }
install6() { PATH=$fb:$PATH make -s install PREFIX="$P6" MODULE=none DIST="$work/dist6" >>"$log" 2>&1 && : >"$FAKE_LOG"; }
export FAKE_STATE=degraded FAKE_FRAGMENT="$P6/lib/systemd/system/lakecrypt-agent.service"
install6 && uninstall6 >>"$log" 2>&1 && [ ! -e "$FAKE_WATCH" ] && [ "$(cat "$FAKE_LOG")" = "systemctl disable --now lakecrypt-agent.service (present)
udevadm control --reload (absent)
systemctl daemon-reload (absent)" ]
tap $? "uninstall with systemd running: systemctl disable --now lakecrypt-agent first, then the files"
cat "$FAKE_LOG" >>"$log"; : >"$FAKE_LOG"
FAKE_FRAGMENT=/lib/systemd/system/lakecrypt-agent.service install6 &&
	FAKE_FRAGMENT=/lib/systemd/system/lakecrypt-agent.service uninstall6 >>"$log" 2>&1 &&
	[ ! -e "$FAKE_WATCH" ] && ! grep -q disable "$FAKE_LOG"
tap $? "an agent from another unit file (a package's) is not stopped"
cat "$FAKE_LOG" >>"$log"; : >"$FAKE_LOG"
install6 && ! FAKE_DM='ledger\t(253:3)\nvol2\t(253:4)' uninstall6 >"$work/refused" 2>&1 &&
	has "$work/refused" 'lakecrypt volumes are open: ledger vol2; close them first .*FORCE=1.*; nothing removed' &&
	[ -e "$FAKE_WATCH" ] && [ -x "$P6/sbin/lakecryptctl" ] && [ -f "$P6/lib/lakecrypt/installed-dirs" ] && [ ! -s "$FAKE_LOG" ]
tap $? "uninstall refused while lakecrypt volumes are open: nothing removed, agent not stopped"
mkdir -p "$work/sysmod/dm_lakecrypt"
! FAKE_DM='dmsetup: permission denied' FAKE_DM_RC=1 LAKECRYPT_SYS_MODULE=$work/sysmod uninstall6 >"$work/refused" 2>&1 &&
	has "$work/refused" 'cannot tell whether lakecrypt volumes are open \(dmsetup ls --target lakecrypt: dmsetup: permission denied\)' &&
	[ -e "$FAKE_WATCH" ] && [ ! -s "$FAKE_LOG" ]
tap $? "uninstall refused when dmsetup cannot tell while dm-lakecrypt is loaded: nothing removed"
FAKE_DM='dmsetup: permission denied' FAKE_DM_RC=1 LAKECRYPT_SYS_MODULE=$work/nosysmod uninstall6 >>"$log" 2>&1 &&
	[ ! -e "$FAKE_WATCH" ] && [ ! -e "$P6" ]
tap $? "dmsetup cannot tell and dm-lakecrypt is not loaded (nothing can be open): uninstalled"
cat "$FAKE_LOG" >>"$log"; : >"$FAKE_LOG"
install6
FAKE_DM='ledger\t(253:3)' uninstall6 FORCE=1 >>"$log" 2>&1 && [ ! -e "$FAKE_WATCH" ] && [ ! -e "$P6" ] &&
	grep -qxF "systemctl disable --now lakecrypt-agent.service (present)" "$FAKE_LOG"
tap $? "FORCE=1: uninstalled with volumes open, the agent stopped first"
cat "$FAKE_LOG" >>"$log"; : >"$FAKE_LOG"
# The Debian packages' prerm (tools/debian/mkprerm.sh), both from the
# lakecrypt_open_volumes that make uninstall uses: apt-get remove of
# lakecrypt or of lakecrypt-dkms alone is refused while volumes are open
# or dmsetup cannot tell with dm-lakecrypt loaded, naming them; not on an
# upgrade, not with LAKECRYPT_FORCE_REMOVE=1.  (tests/deb runs them in
# apt-get on a debootstrapped Debian 12.)
ok=0
for pkg in lakecrypt lakecrypt-dkms; do
	tools/debian/mkprerm.sh "$pkg" >"$work/$pkg.prerm" && chmod 755 "$work/$pkg.prerm" || ok=1
	prerm() { env PATH="$fb:$PATH" "$work/$pkg.prerm" "$@" 2>"$work/prerm.err"; }
	{ ! FAKE_DM='ledger\t(253:3)\nvol2\t(253:4)' prerm remove &&
		grep -qxF "$pkg: lakecrypt volumes are open: ledger vol2; close them first (lakecryptctl close NAME), or sudo LAKECRYPT_FORCE_REMOVE=1 apt-get remove $pkg to remove $pkg anyway; nothing removed" "$work/prerm.err"; } ||
		{ echo "$pkg: open volumes not refused"; ok=1; }
	{ ! FAKE_DM='dmsetup: permission denied' FAKE_DM_RC=1 LAKECRYPT_SYS_MODULE=$work/sysmod prerm remove &&
		grep -qF "$pkg: cannot tell whether lakecrypt volumes are open (dmsetup ls --target lakecrypt: dmsetup: permission denied)" "$work/prerm.err"; } ||
		{ echo "$pkg: cannot tell, module loaded: not refused"; ok=1; }
	FAKE_DM='dmsetup: permission denied' FAKE_DM_RC=1 LAKECRYPT_SYS_MODULE=$work/nosysmod prerm remove ||
		{ echo "$pkg: cannot tell, module not loaded: refused"; ok=1; }
	prerm remove || { echo "$pkg: no volume open: refused"; ok=1; }
	FAKE_DM='ledger\t(253:3)' prerm upgrade 0.9 || { echo "$pkg: upgrade refused"; ok=1; }
	FAKE_DM='ledger\t(253:3)' LAKECRYPT_FORCE_REMOVE=1 prerm remove || { echo "$pkg: LAKECRYPT_FORCE_REMOVE=1 refused"; ok=1; }
	cat "$work/prerm.err"
done >>"$log" 2>&1
[ $ok -eq 0 ]
tap $? "Debian prerm of lakecrypt and of lakecrypt-dkms: remove refused while volumes are open (named) or dmsetup cannot tell with dm-lakecrypt loaded; an upgrade and LAKECRYPT_FORCE_REMOVE=1 are not"
unset FAKE_STATE FAKE_FRAGMENT
PATH=$fb:$PATH make -s install DESTDIR="$work/root6" PREFIX=/usr MODULE=none DIST="$work/dist6" >>"$log" 2>&1 &&
	PATH=$fb:$PATH make -s uninstall DESTDIR="$work/root6" PREFIX=/usr MODULE=none DIST="$work/dist6" >>"$log" 2>&1 &&
	[ ! -s "$FAKE_LOG" ]
tap $? "with a DESTDIR (a staging root) nothing is reloaded"
# Without udevadm and systemctl at all: uninstall still succeeds.
mkdir -p "$work/minbin"
for t in bash sh make rm rmdir install cut sort awk sed mkdir cp chmod cat dirname env find basename printf tr stat id; do
	p=$(command -v "$t") && ln -sf "$p" "$work/minbin/$t"
done
PATH=$fb:$PATH make -s install PREFIX="$P6" MODULE=none DIST="$work/dist6" >>"$log" 2>&1 &&
	PATH=$work/minbin make -s uninstall PREFIX="$P6" MODULE=none DIST="$work/dist6" >>"$log" 2>&1 &&
	[ ! -e "$FAKE_WATCH" ]
tap $? "uninstall where neither udevadm nor systemctl exists: succeeds"
unset FAKE_LOG FAKE_WATCH

# make install MODULE=dkms on the running system (no DESTDIR), in a mount
# namespace with tmpfs over /var/lib/dkms, /usr/src and /lib/modules (the
# host's DKMS state is never touched): without the kernel's headers the
# source is registered and install succeeds; a second install (a git pull
# keeps the version) replaces the registration and succeeds too; with a
# kernel whose headers are there but broken, the failed dkms install
# fails make install; uninstall (any MODULE) unregisters it.
dk=$work/dkms
mkdir -p "$dk"
cat >"$dk/run.sh" <<'NS'
set -u
mount --make-rprivate / && mount -t tmpfs none /var/lib/dkms && mount -t tmpfs none /usr/src &&
	mount -t tmpfs none /lib/modules || { echo "namespace set-up failed"; exit 1; }
export FAKE_LOG=$DK/fake.log FAKE_WATCH=/nonexistent
inst() { PATH=$FB:$PATH make -s install MODULE=dkms PREFIX="$DK/px" DIST="$DK/dist" "$@"; }
for i in 1 2; do
	inst KVER=0.0-lcnone >"$DK/install$i.out" 2>&1; echo "install $i: exit $?"
	cat "$DK/install$i.out"
	echo "status $i: $(dkms status -m lakecrypt 2>&1)"
	echo "source $i: $(readlink "/var/lib/dkms/lakecrypt/$VER/source")"
done
mkdir -p /lib/modules/0.0-lcbroken/build
inst KVER=0.0-lcbroken >"$DK/install3.out" 2>&1; echo "install broken headers: exit $?"
cat "$DK/install3.out"
PATH=$FB:$PATH make -s uninstall MODULE=none PREFIX="$DK/px" DIST="$DK/dist" 2>&1; echo "uninstall: exit $?"
echo "status after: $(dkms status -m lakecrypt 2>&1)"
echo "usr/src after: $(ls -A /usr/src)"
NS
DK=$dk FB=$fb VER=$ver unshare -m bash "$dk/run.sh" >"$dk/out" 2>&1
cat "$dk/out" >"$log"
grep -qx 'install 1: exit 0' "$dk/out" && grep -qx 'install 2: exit 0' "$dk/out" &&
	grep -qx "status 1: lakecrypt/$ver: added" "$dk/out" && grep -qx "status 2: lakecrypt/$ver: added" "$dk/out" &&
	grep -qx "source 2: /usr/src/lakecrypt-$ver" "$dk/out" &&
	has "$dk/out" "lakecrypt $ver registered with DKMS; no headers for 0\.0-lcnone .* DKMS builds the module when headers arrive" &&
	! grep -q 'already contains' "$dk/out"
tap $? "make install MODULE=dkms without headers, twice: both exit 0, registered (dkms status: added), the second replaces the first"
grep -qE '^install broken headers: exit [1-9]' "$dk/out" &&
	has "$dk/out" "dkms install -m lakecrypt -v $ver -k 0\.0-lcbroken failed"
tap $? "make install MODULE=dkms where dkms install fails: make install fails, naming it"
grep -qx 'uninstall: exit 0' "$dk/out" && grep -qx 'status after: ' "$dk/out" && grep -qx 'usr/src after: ' "$dk/out"
tap $? "make uninstall (MODULE=none given; the manifest says dkms): unregistered from DKMS, /usr/src/lakecrypt-$ver gone"

# SYSCONFDIR reaches the agent's built-in paths (agent.conf, lakecrypttab),
# the generator and the man pages alike: the agent and the generator read
# the same lakecrypttab.  The CLI has no path of its own under it.
X8=$work/etc8
mkdir -p "$X8/lakecrypt"
printf '[agent]\nsocket = %s/a.sock\nstate_dir = %s/state\naudit_log = %s/audit.log\nlog = stderr\n' \
	"$work" "$work" "$work" >"$X8/lakecrypt/agent.conf"
D8=$work/root8s
make -s install DESTDIR="$D8" PREFIX=/usr MODULE=none SYSCONFDIR="$X8" BIN="$work/bin8" DIST="$work/dist8s" >"$log" 2>&1
tap $? "make install SYSCONFDIR=$X8 (the agent built into its own BIN)"
"$D8/usr/sbin/lakecrypt-agent" --help >"$work/help8" 2>&1
"$D8/usr/sbin/lakecrypt-agent" --check-config >"$work/check8" 2>&1
cat "$work/help8" "$work/check8" >>"$log"
has "$work/help8" "default $X8/lakecrypt/agent\.conf" &&
	has "$work/check8" "^$X8/lakecrypt/agent\.conf: syntax valid\$" &&
	has "$work/check8" "^$X8/lakecrypt/agent\.conf: lakecrypttab $X8/lakecrypt/lakecrypttab\$" &&
	has "$D8/usr/lib/systemd/system-generators/lakecrypt-generator" "LAKECRYPTTAB:-\\\$\\{cv:-\"$X8/lakecrypt/lakecrypttab\"" &&
	has "$D8/usr/share/man/man8/lakecrypt-agent.8" "$X8/lakecrypt/agent\.conf" &&
	has "$D8/usr/share/man/man5/lakecrypttab.5" "$X8/lakecrypt/lakecrypttab" &&
	! grep -l '/etc/lakecrypt' "$D8/usr/sbin/lakecrypt-agent" "$D8/usr/sbin/lakecryptctl" "$D8"/usr/share/man/man*/* >>"$log"
tap $? "SYSCONFDIR: the agent reads $X8/lakecrypt/agent.conf and lakecrypttab, as the generator and the man pages say; no /etc/lakecrypt left in the agent, the CLI or the man pages"
make -s -C agent O="$work/bin8" SYSCONFDIR='/etc/lake"crypt' >"$log" 2>&1
[ $? -ne 0 ] && has "$log" "SYSCONFDIR=\"/etc/lake\"crypt\": only letters, digits"
tap $? "a SYSCONFDIR with characters no quoting carries is refused by the agent's build"

kver=$(tools/qemu/kernels.sh kver 6.1 2>/dev/null)
if [ -n "$kver" ] && [ -f "/usr/src/linux-headers-$kver/Makefile" ]; then
	D3=$work/root3
	run "make install MODULE=kbuild KVER=$kver" \
		make -s install DESTDIR="$D3" PREFIX=/usr MODULE=kbuild KVER="$kver" DIST="$work/dist3"
	[ -f "$D3/lib/modules/$kver/updates/dm-lakecrypt.ko" ]
	tap $? "module installed as /lib/modules/$kver/updates/dm-lakecrypt.ko"
	run "make uninstall MODULE=kbuild" make -s uninstall DESTDIR="$D3" PREFIX=/usr MODULE=kbuild KVER="$kver" DIST="$work/dist3"
	(cd "$D3" && find . -type f) >"$log"; [ ! -s "$log" ]; tap $? "uninstall removed the module too"
else
	echo "no headers for the 6.1 line ($kver): run make setup" >"$log"
	tap 1 "make install MODULE=kbuild (needs the 6.1 headers)"
fi

# ------------------------------------------------------------ units
R=$work/root4
make -s install DESTDIR="$R" PREFIX=/usr MODULE=none DIST="$work/dist4" >"$log" 2>&1
tap $? "install a root for the unit checks"
unit=$R/usr/lib/systemd/system/lakecrypt-agent.service
# verify checks that ExecStart= programs exist and Documentation=man: pages
# are found: the same files generated with SBINDIR = the build, the man
# pages of the installed root.
B=$work/distb
make -s dist-files DIST="$B" PREFIX=/usr SBINDIR="$top/build/agent" >"$log" 2>&1
tap $? "dist-files with SBINDIR=build/agent (for systemd-analyze verify)"
mkdir -p "$work/units"
cp "$B/lakecrypt-agent.service" "$B/lakecrypt.target" "$work/units/"
export MANPATH=$R/usr/share/man
run "systemd-analyze verify lakecrypt-agent.service (programs, man pages, dependencies)" \
	systemd-analyze verify "$work/units/lakecrypt-agent.service"
run "systemd-analyze verify lakecrypt.target" systemd-analyze verify "$work/units/lakecrypt.target"
systemd-analyze security --offline=yes "$work/units/lakecrypt-agent.service" >"$work/security" 2>"$log"
score=$(sed -n 's/.*Overall exposure level for lakecrypt-agent.service: \([0-9.]*\).*/\1/p' "$work/security")
echo "# systemd-analyze security lakecrypt-agent.service: exposure $score"
grep -E '^✗' "$work/security" | sed 's/^/#   /'
[ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s < 3.0) }'
tap $? "exposure score of lakecrypt-agent.service below 3.0 (${score:-none})"
for k in Type=notify NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes LimitCORE=0 \
	MemoryDenyWriteExecute=yes 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' \
	'SystemCallFilter=@system-service' 'CapabilityBoundingSet=CAP_SYS_ADMIN CAP_IPC_LOCK CAP_CHOWN' \
	RuntimeDirectory=lakecrypt RuntimeDirectoryPreserve=yes StateDirectory=lakecrypt LogsDirectory=lakecrypt; do
	grep -qxF -- "$k" "$unit" || echo "missing: $k" >>"$log"
done
[ ! -s "$log" ]; tap $? "unit sets Type=notify and the hardening the issue lists"
# TasksMax: headroom over the agent's most threads at its largest settings
# (agent.h: requests at LC_AGENT_CONN_MAX, the watcher and
# LC_AGENT_MAX_CHECKS checks, each with a libcurl resolver thread; the loop
# and the reserve thread), and 1024 more for revocation jobs and hooks.
conn_max=$(awk '$2 == "LC_AGENT_CONN_MAX" { print $3 }' agent/daemon/agent.h)
checks=$(awk '$2 == "LC_AGENT_MAX_CHECKS" { print $3 }' agent/daemon/agent.h)
tasks=$(sed -n 's/^TasksMax=\([0-9]*\)$/\1/p' "$unit")
need=$((2 + 2 * (${conn_max:-0} + 1 + ${checks:-0}) + 1024))
echo "TasksMax=${tasks:-none}, fixed threads at the largest settings + 1024: $need" >"$log"
[ -n "$conn_max" ] && [ -n "$checks" ] && [ -n "$tasks" ] && [ "$tasks" -ge "$need" ]
tap $? "unit sets TasksMax=${tasks:-none}, at least the agent's threads at max_clients 1024 plus 1024 ($need)"

# ------------------------------------------------------------ fstab
# lakecrypttab(5)'s fstab line (_netdev) boots without an ordering cycle;
# the line without _netdev has one (the agent is After=local-fs.target):
# the check can fail.  systemd's own fstab generator makes the mount.
fsg=/lib/systemd/system-generators/systemd-fstab-generator
mkdir -p "$work/fsgen"
printf 'ledger UUID=3f2c9d1e-8a4b-4c6d-9e0f-1a2b3c4d5e6f finance\n' >"$work/fstab-tab"
LAKECRYPTTAB=$work/fstab-tab "$B/lakecrypt-generator" "$work/fsgen" >"$log" 2>&1
tap $? "generator for the fstab checks"
fstab_cycle() {	# fstab_cycle OPTIONS: 0 when systemd-analyze finds an ordering cycle
	rm -rf "$work/fsmnt"; mkdir -p "$work/fsmnt"
	printf '/dev/mapper/ledger /srv/ledger ext4 %s 0 2\n' "$1" >"$work/fstab"
	SYSTEMD_FSTAB=$work/fstab "$fsg" "$work/fsmnt" "$work/fsmnt" "$work/fsmnt" >>"$log" 2>&1
	[ -f "$work/fsmnt/srv-ledger.mount" ] || { echo "no srv-ledger.mount from $fsg" >>"$log"; return 2; }
	SYSTEMD_UNIT_PATH="$work/fsmnt:$work/fsgen:$work/units:" systemd-analyze verify srv-ledger.mount \
		>"$work/fsverify" 2>&1
	cat "$work/fsverify" >>"$log"
	grep -q 'ordering cycle' "$work/fsverify"
}
fstab_cycle "defaults,x-systemd.requires=lakecrypt@ledger.service"
[ $? -eq 0 ]; tap $? "fstab without _netdev: systemd-analyze finds the ordering cycle (the check can fail)"
doc_opts=$(sed -n 's|^    /dev/mapper/ledger  */srv/ledger  *ext4  *\([^ ]*\)  *0 2$|\1|p' Documentation/lakecrypttab.md)
[ -n "$doc_opts" ] || echo "no fstab example line in Documentation/lakecrypttab.md" >>"$log"
[ -n "$doc_opts" ] && fstab_cycle "$doc_opts"
[ $? -eq 1 ]; tap $? "lakecrypttab(5)'s fstab line ($doc_opts): no ordering cycle"

# ------------------------------------------------------------ example agent.conf
# The shipped example must parse with the agent's own parser
# (lakecrypt-agent --check-config), as it is and with each commented
# "#[section]" block (up to its blank line) uncommented in turn, and name
# every key the parser knows (agent/lib/config.c, [test] aside).
agentbin=build/agent/lakecrypt-agent
ex=tools/systemd/agent.conf.example
"$agentbin" --check-config --config "$ex" >"$log" 2>&1 && has "$log" "configuration valid"
tap $? "example agent.conf is valid as shipped (lakecrypt-agent --check-config)"
blocks=$(grep -n '^#\[' "$ex" | cut -d: -f1)
[ "$(wc -w <<<"$blocks")" -ge 7 ]
tap $? "example has commented provider sections ($(wc -w <<<"$blocks") #[section] blocks)"
for start in $blocks; do
	sec=$(sed -n "${start}s/^#\[\(.*\)\]$/\1/p" "$ex")
	awk -v s="$start" 'NR >= s && !done && /^$/ { done = 1 }
		NR >= s && !done && /^#(\[|[a-z_]+ *=)/ { sub(/^#/, ""); n++ }
		{ print } END { if (n < 2) exit 1 }' "$ex" >"$work/ex-$start.conf"
	rc=$?
	[ $rc -eq 0 ] || echo "block at line $start uncommented fewer than 2 lines" >>"$log"
	# The parser accepts it; the provider set-up (run by --check-config
	# as at start) may find only [$sec]'s example files missing here.
	"$agentbin" --check-config --config "$work/ex-$start.conf" >"$work/ex.out" 2>&1
	cat "$work/ex.out" >>"$log"
	grep -q "syntax valid" "$work/ex.out" && ! grep '\] unusable: ' "$work/ex.out" | grep -vqF "[$sec] unusable: " &&
		[ $rc -eq 0 ]
	tap $? "example with [$sec] (line $start) uncommented is valid (syntax; only its own files may be missing)"
done
grep -oE '^[[:space:]]*\{ "[a-z0-9-]+", "[a-z_]+"' agent/lib/config.c |
	sed -E 's/.*"([a-z0-9-]+)", "([a-z_]+)"/\1 \2/' | grep -v '^test ' | LC_ALL=C sort -u >"$work/keys.parser"
awk 'match($0, /^#?\[[a-z0-9-]+\]$/) { sec = $0; gsub(/[#\[\]]/, "", sec); next }
	match($0, /^#?[a-z_]+ *=/) { k = $0; sub(/^#/, "", k); sub(/ *=.*/, "", k); print sec, k }' "$ex" |
	LC_ALL=C sort -u >"$work/keys.example"
[ "$(wc -l <"$work/keys.parser")" -gt 50 ] && diff -u "$work/keys.parser" "$work/keys.example" >"$log" 2>&1
tap $? "example names exactly the $(wc -l <"$work/keys.parser") keys config.c knows (every section but [test])"
# What the example says about comments is what the parser does.
printf '[agent]\nlog = syslog\t# a comment\nsocket = /tmp/a#b.sock   # another\n' >"$work/c1.conf"
"$agentbin" --check-config --config "$work/c1.conf" >"$log" 2>&1
tap $? "a '#' after a blank ends the value; one after a non-blank is part of it"
printf '[agent]\nsocket_mode = 0660 ; not a comment\n' >"$work/c2.conf"
! "$agentbin" --check-config --config "$work/c2.conf" >"$log" 2>&1 &&
	has "$log" "c2.conf:2: socket_mode = \"0660 ; not a comment\" is not an octal"
tap $? "a ';' after a value is part of the value (FILE:LINE error, exit 1)"
printf '; a comment\n  # another\n[agent]   # no\n' >"$work/c3.conf"
! "$agentbin" --check-config --config "$work/c3.conf" >"$log" 2>&1 && has "$log" "c3.conf:3: malformed section header"
tap $? "';' and '#' start comment lines; a [section] line takes no comment"
printf '[aws-kms]\nregion = eu-west-1\nendpiont = https://x\n' >"$work/c4.conf"
! "$agentbin" --check-config --config "$work/c4.conf" >"$log" 2>&1 &&
	has "$log" "c4.conf:3: unknown key \"endpiont\" in \[aws-kms\]"
tap $? "--check-config: an unknown key fails with FILE:LINE"
! "$agentbin" --check-config --config "$work/none.conf" >"$log" 2>&1 && has "$log" "cannot open config file"
tap $? "--check-config: a missing --config file fails"
mkfifo "$work/fifo.conf"
# (timeout only guards against a hang: the open of a FIFO used to block)
! timeout 20 "$agentbin" --check-config --config "$work/fifo.conf" >"$log" 2>&1 && has "$log" "must be a regular file"
tap $? "--check-config: a FIFO as the config is refused at once, not waited on"

# ------------------------------------------------------------ sd_notify
cat >"$work/notify.py" <<'PY'
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(20)
with open(sys.argv[2], "w") as out:
    try:
        while True:
            out.write(s.recv(4096).decode() + "\n--\n")
            out.flush()
    except socket.timeout:
        pass
PY
mkdir -p "$work/agent"
cat >"$work/agent/agent.conf" <<CONF
[agent]
socket = $work/agent/agent.sock
state_dir = $work/agent/state
audit_log = $work/agent/audit.log
log = stderr
CONF
python3 "$work/notify.py" "$work/notify.sock" "$work/notify.out" &
npid=$!
i=0; while [ ! -S "$work/notify.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
NOTIFY_SOCKET=$work/notify.sock DM_DISABLE_UDEV=1 build/agent/lakecrypt-agent \
	--config "$work/agent/agent.conf" --foreground >"$work/agent/log" 2>&1 &
agent_pid=$!
i=0
while ! grep -q READY=1 "$work/notify.out" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -S "$work/agent/agent.sock" ] && has "$work/notify.out" '^READY=1$' &&
	has "$work/notify.out" "^STATUS=listening on $work/agent/agent.sock" && has "$work/notify.out" "^MAINPID=$agent_pid\$"
tap $? "agent sends READY=1, STATUS= and MAINPID= once the socket listens"
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null; agent_pid=
i=0
while ! grep -q STOPPING=1 "$work/notify.out" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
has "$work/notify.out" '^STOPPING=1$'
tap $? "agent sends STOPPING=1 on SIGTERM"
kill "$npid" 2>/dev/null; wait "$npid" 2>/dev/null
env -u NOTIFY_SOCKET DM_DISABLE_UDEV=1 build/agent/lakecrypt-agent --config "$work/agent/agent.conf" \
	--foreground >"$work/agent/log2" 2>&1 &
agent_pid=$!
i=0; while [ ! -S "$work/agent/agent.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
build/agent/lakecryptctl --socket "$work/agent/agent.sock" ping >"$log" 2>&1 && ! grep -qi notify "$work/agent/log2"
tap $? "without NOTIFY_SOCKET the agent starts as before (no warning)"
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null; agent_pid=
# An operator group that does not exist (yet): the agent is looked up at
# start-up only, so the warning tells the admin to restart it once created.
nogroup=lcnogroup$$
printf 'operator_group = %s\n' "$nogroup" >>"$work/agent/agent.conf"
rm -f "$work/agent/agent.sock"
env -u NOTIFY_SOCKET DM_DISABLE_UDEV=1 build/agent/lakecrypt-agent --config "$work/agent/agent.conf" \
	--foreground >"$work/agent/log3" 2>&1 &
agent_pid=$!
i=0; while [ ! -S "$work/agent/agent.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
# (a reply means start-up, and the lookup in it, is over)
! getent group "$nogroup" >"$log" && build/agent/lakecryptctl --socket "$work/agent/agent.sock" ping >>"$log" 2>&1 &&
	has "$work/agent/log3" "group $nogroup does not exist: only root can reach $work/agent/agent.sock; create the group \(groupadd --system $nogroup\), then restart the agent \(systemctl restart lakecrypt-agent\)"
tap $? "operator group missing at start-up: the warning says to create it and restart the agent"
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null; agent_pid=

# ------------------------------------------------------------ hook --signal and its drop-in
# The agent with exactly the unit's capability bounding set (setpriv), as
# systemd runs it: workspace hook --signal is refused, naming the drop-in;
# with the drop-in's capabilities added, it is accepted.  Both sets come
# from the shipped files.
dropin=tools/systemd/hook-signal.conf
capset() { sed -n 's/^CapabilityBoundingSet=//p' "$@" | tr ' ' '\n' | sed -n 's/^CAP_/+/p' |
	tr 'A-Z' 'a-z' | paste -sd, -; }
unitcaps=$(capset "$unit")
dropcaps=$(capset "$dropin")
[ "$unitcaps" = "+sys_admin,+ipc_lock,+chown" ] && [ "$dropcaps" = "+kill,+sys_ptrace,+dac_read_search" ]
tap $? "the unit grants $unitcaps; the drop-in adds $dropcaps"
hookagent() {	# hookagent CAPS: start the agent bounded to CAPS
	rm -rf "$work/hk"; mkdir -p "$work/hk"
	cat >"$work/hk/agent.conf" <<CONF
[agent]
socket = $work/hk/agent.sock
state_dir = $work/hk/state
audit_log = $work/hk/audit.log
log = stderr
CONF
	DM_DISABLE_UDEV=1 setpriv --bounding-set "-all,$1" --inh-caps=-all build/agent/lakecrypt-agent \
		--config "$work/hk/agent.conf" --foreground >"$work/hk/log" 2>&1 &
	agent_pid=$!
	i=0; while [ ! -S "$work/hk/agent.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	hctl() { build/agent/lakecryptctl --socket "$work/hk/agent.sock" "$@"; }
	k=$(hctl --json kms create | sed -n 's/.*"key_id": "\([^"]*\)".*/\1/p') &&
		hctl keyconfig create kc --key "$k" >/dev/null && hctl workspace bind ws1 --keyconfig kc >/dev/null
}
stopagent() { kill "$agent_pid"; wait "$agent_pid" 2>/dev/null; agent_pid=; }
hookagent "$unitcaps" >"$log" 2>&1
tap $? "agent bounded to the unit's capabilities: workspace bound" || cat "$work/hk/log" >>"$log"
hctl workspace hook ws1 --signal TERM >"$work/hk/out" 2>"$work/hk/err"; rc=$?
cat "$work/hk/out" "$work/hk/err" >"$log"
[ $rc -eq 1 ] && has "$work/hk/err" "the agent lacks CAP_KILL,CAP_SYS_PTRACE,CAP_DAC_READ_SEARCH" &&
	has "$work/hk/err" "/etc/systemd/system/lakecrypt-agent.service.d/hook-signal.conf" &&
	! hctl --json workspace list | grep -q '"signal"'
tap $? "--signal without the drop-in: refused (exit 1), the message names the capabilities and the drop-in"
hctl workspace hook ws1 --stop-units app.service >"$log" 2>&1
tap $? "--stop-units needs no extra capability: accepted"
stopagent
hookagent "$unitcaps,$dropcaps" >"$log" 2>&1
tap $? "agent bounded to the unit's and the drop-in's capabilities" || cat "$work/hk/log" >>"$log"
hctl workspace hook ws1 --signal TERM >"$log" 2>&1 && hctl --json workspace list | grep -q '"signal": "TERM"'
tap $? "--signal with the drop-in: accepted"
stopagent
# The drop-in as systemd reads it: verified, and the exposure it costs.
mkdir -p "$work/units/lakecrypt-agent.service.d"
cp "$dropin" "$work/units/lakecrypt-agent.service.d/"
run "systemd-analyze verify lakecrypt-agent.service with the hook-signal drop-in" \
	systemd-analyze verify "$work/units/lakecrypt-agent.service"
systemd-analyze security --offline=yes "$work/units/lakecrypt-agent.service" >"$work/security2" 2>"$log"
score2=$(sed -n 's/.*Overall exposure level for lakecrypt-agent.service: \([0-9.]*\).*/\1/p' "$work/security2")
echo "# systemd-analyze security with hook-signal.conf: exposure $score2 (without: $score)"
grep -q '^✗ CapabilityBoundingSet=~CAP_KILL ' "$work/security2" && ! grep -q '^✗ CapabilityBoundingSet=~CAP_KILL ' "$work/security"
tap $? "systemd reads the drop-in beside the unit: CAP_KILL granted with it only (exposure ${score2:-none})"
rm -rf "$work/units/lakecrypt-agent.service.d"

# ------------------------------------------------------------ generator
gen=$R/usr/lib/systemd/system-generators/lakecrypt-generator
G=$work/gen
tab=$work/lakecrypttab
U1=3f2c9d1e-8a4b-4c6d-9e0f-1a2b3c4d5e6f
cat >"$tab" <<TAB
# name  device  workspace  options
ledger   UUID=${U1^^}   finance   _netdev,timeout=120
   wal   /dev/disk/by-lakecrypt/finance/wal   finance
bad-1    /dev/sdb   fin\$ance   -
scratch  /dev/disk/by-id/nvme-Example_SSD_1234   finance   cache,segment-size=1M,nofail
bad-2    sdb   finance
ledger   /dev/sdc   finance
bad-3    /dev/sdd   finance   nofail,bogus
bad-4    /dev/sd%i   finance
bad-5    /dev/sde   finance   timeout=forever
bad-6    /dev/sdf
-bad7    /dev/sdg   finance
archive  /dev/disk/by-id/wwn-0x5000c500a1b2c3d4   finance   noauto,header=/etc/lakecrypt/archive.hdr,timeout=0
bad-8    UUID=nope   finance
bad-9    /dev/sdh   finance   cache,header=/x
pg-wal   /dev/disk/by-id/virtio-pg-wal   finance   header=pg-wal-hdr
TAB
printf 'crlf     /dev/disk/by-lakecrypt/finance/crlf   finance   nofail\r\n' >>"$tab"
rm -rf "$G"; mkdir -p "$G"
LAKECRYPTTAB=$tab "$gen" "$G" "$G" "$G" >"$work/gen.out" 2>"$work/gen.err"
tap $? "generator exits 0 with bad lines present"
cat "$work/gen.err" | sed 's/^/# generator: /'
ok=0
for want in \
	"$tab:4: workspace \"fin\\\$ance\" is not valid" \
	"$tab:6: device \"sdb\" is neither UUID=<uuid> nor a path under /dev" \
	"$tab:7: volume name \"ledger\" is already used by an earlier line" \
	"$tab:8: unknown option \"bogus\"" \
	"$tab:9: device \"/dev/sd%i\" has characters" \
	"$tab:10: option \"timeout=forever\": timeout= takes a time span such as 90, 90s, 2min or 1min30s" \
	"$tab:11: expected NAME DEVICE WORKSPACE \[OPTIONS\], found 2 field" \
	"$tab:12: volume name \"-bad7\" is not valid" \
	"$tab:14: device \"UUID=nope\": UUID= needs a uuid" \
	"$tab:15: option header= is for project volumes"; do
	grep -q -- "lakecrypt-generator: $want" "$work/gen.err" || { echo "missing message: $want" >>"$log"; ok=1; }
done
[ "$(grep -c 'line skipped' "$work/gen.err")" -eq 2 ] || { echo "expected 2 skipped lines (a duplicate, a nofail line)" >>"$log"; ok=1; }
grep -q -- "$tab:8: unknown option .*; line skipped (nofail)\$" "$work/gen.err" || { echo "nofail line not skipped" >>"$log"; ok=1; }
[ "$(grep -c 'fails at start (not opened)$' "$work/gen.err")" -eq 8 ] || { echo "expected 8 failing units" >>"$log"; ok=1; }
tap $ok "each bad line reported once as FILE:LINE: what is wrong; a unit that fails, or (nofail, a duplicate) line skipped"
(cd "$G" && find . | LC_ALL=C sort) >"$work/gen.files"
for f in './lakecrypt@ledger.service' './lakecrypt@wal.service' './lakecrypt@scratch.service' \
	'./lakecrypt@archive.service' './lakecrypt@pg-wal.service' './lakecrypt@crlf.service' \
	'./lakecrypt.target.requires/lakecrypt@ledger.service' \
	'./lakecrypt.target.requires/lakecrypt@wal.service' './lakecrypt.target.wants/lakecrypt@scratch.service' \
	'./lakecrypt.target.requires/lakecrypt@pg-wal.service' './lakecrypt.target.wants/lakecrypt@crlf.service' \
	'./multi-user.target.wants/lakecrypt.target'; do
	grep -qxF "$f" "$work/gen.files" || echo "missing $f" >>"$log"
done
[ "$(grep -l '^ExecStart=/usr/sbin/lakecryptctl ' "$G"/lakecrypt@*.service | wc -l)" -eq 6 ] || echo "not exactly 6 units that open" >>"$log"
! grep -q 'archive' <(grep 'target\.' "$work/gen.files") || echo "noauto volume pulled in" >>"$log"
[ ! -s "$log" ]; tap $? "the 6 good volumes are generated; required, wanted (nofail), not pulled (noauto)"
# A bad line without nofail: a unit that only fails, with the message,
# required by lakecrypt.target (systemctl --failed shows it).
for v in bad-1 bad-2 bad-4 bad-5 bad-6 'line:12' bad-8 bad-9; do
	u=$G/lakecrypt@$v.service
	{ [ -f "$u" ] && has "$u" '^ExecStart=/bin/false$' && ! grep -q lakecryptctl "$u" &&
		[ -L "$G/lakecrypt.target.requires/lakecrypt@$v.service" ] &&
		has "$u" "^ExecStartPre=/bin/echo \"$tab:[0-9]*: .*; fix the line \\(lakecrypttab\\(5\\)\\), then systemctl daemon-reload\"\$"; } ||
		echo "lakecrypt@$v.service: not a failing unit" >>"$log"
done
[ ! -e "$G/lakecrypt@bad-3.service" ] || echo "nofail bad line has a unit" >>"$log"
has "$G/lakecrypt@bad-4.service" "^ExecStartPre=/bin/echo \"$tab:9: device '/dev/sd\\?i' has characters" || echo "bad-4: '%' and '\"' not kept" >>"$log"
[ ! -s "$log" ]; tap $? "bad lines without nofail: lakecrypt@NAME.service fails at start with the message (quotes, '%' replaced), required by lakecrypt.target; with nofail: no unit"
has "$G/lakecrypt@pg-wal.service" '^ExecStart=/usr/sbin/lakecryptctl --timeout 90 open /dev/disk/by-id/virtio-pg-wal pg-wal --workspace finance --header pg-wal-hdr$' &&
	has "$G/lakecrypt@pg-wal.service" '^ExecStop=/usr/sbin/lakecryptctl --timeout 90 close --if-open pg-wal --workspace finance$' &&
	has "$G/lakecrypt@pg-wal.service" '^Wants=blockdev@dev-mapper-pg\\x2dwal\.target$' &&
	has "$G/lakecrypt@pg-wal.service" '^Before=blockdev@dev-mapper-pg\\x2dwal\.target umount\.target$'
tap $? "pg-wal: a name with '-' is the unit lakecrypt@pg-wal.service as typed; a header by name; ordered before blockdev@ (mounts of /dev/mapper/pg-wal come after)"
# As systemd-cryptsetup-generator: no volume is ordered before
# remote-fs-pre.target (a nofail one still waiting would hold back
# remote-fs.target and logins); _netdev ones come after it; lakecrypt.target
# sits where remote-cryptsetup.target does.
! grep -l '^Before=.*remote-fs' "$G"/lakecrypt@*.service >"$log" &&
	has "$G/lakecrypt@ledger.service" '^After=network-online\.target remote-fs-pre\.target$' &&
	! grep -q 'remote-fs' "$G/lakecrypt@scratch.service" &&
	has tools/systemd/lakecrypt.target '^After=lakecrypt-agent\.service remote-fs-pre\.target$' &&
	has tools/systemd/lakecrypt.target '^Before=remote-fs\.target$'
tap $? "ordering as remote-cryptsetup: no unit before remote-fs-pre.target, _netdev after it, lakecrypt.target before remote-fs.target"
has "$G/lakecrypt@crlf.service" '^ExecStart=/usr/sbin/lakecryptctl --timeout 90 open /dev/disk/by-lakecrypt/finance/crlf crlf --workspace finance$'
tap $? "a line saved with CRLF: the carriage return is not part of the options (nofail read)"
cat "$work/gen.files" >>"$log"; : >"$log"
u=$G/lakecrypt@ledger.service
has "$u" "^ExecStart=/usr/sbin/lakecryptctl --timeout 120 open /dev/disk/by-uuid/$U1 ledger --workspace finance\$" &&
	has "$u" '^ExecStop=/usr/sbin/lakecryptctl --timeout 90 close --if-open ledger --workspace finance$' &&
	has "$u" '^BindsTo=dev-disk-by\\x2duuid-3f2c9d1e\\x2d8a4b\\x2d4c6d\\x2d9e0f\\x2d1a2b3c4d5e6f\.device$' &&
	has "$u" '^After=network-online.target remote-fs-pre.target$' && has "$u" '^TimeoutStartSec=130$' &&
	has "$u" '^Before=lakecrypt.target$' && has "$u" "^SourcePath=$tab\$" &&
	has "$u" '^Wants=lakecrypt-agent.service$' && ! grep -q '^Requires=lakecrypt-agent' "$u" &&
	has "$G/dev-disk-by\\x2duuid-3f2c9d1e\\x2d8a4b\\x2d4c6d\\x2d9e0f\\x2d1a2b3c4d5e6f.device.d/50-lakecrypt.conf" '^JobRunningTimeoutSec=120$'
tap $? "ledger: open by uuid (lower-cased), _netdev, timeout=120 on the open and the device wait"
u=$G/lakecrypt@scratch.service
has "$u" '^ExecStart=/usr/sbin/lakecryptctl --timeout 90 cache /dev/disk/by-id/nvme-Example_SSD_1234 scratch --workspace finance --segment-size 1M$' &&
	! grep -q '^Before=lakecrypt.target' "$u" && ! grep -q network-online "$u" && has "$u" '^TimeoutStartSec=100$' &&
	[ ! -e "$G/dev-disk-by\\x2did-nvme\\x2dExample_SSD_1234.device.d" ]
tap $? "scratch: a cache, nofail (not ordered before lakecrypt.target), no timeout=: 90 s (a oneshot has none of its own)"
has "$G/lakecrypt@archive.service" '^ExecStart=/usr/sbin/lakecryptctl --timeout 0 open /dev/disk/by-id/wwn-0x5000c500a1b2c3d4 archive --workspace finance --header /etc/lakecrypt/archive.hdr$' &&
	has "$G/lakecrypt@archive.service" '^TimeoutStartSec=infinity$' &&
	has "$G/dev-disk-by\\x2did-wwn\\x2d0x5000c500a1b2c3d4.device.d/50-lakecrypt.conf" '^JobRunningTimeoutSec=infinity$'
tap $? "archive: detached header, timeout=0 means no limit (the open and the device wait)"
G2=$work/gen2
mkdir -p "$G2"
LAKECRYPTTAB=$tab "$B/lakecrypt-generator" "$G2" "$G2" "$G2" 2>/dev/null
for v in ledger wal scratch archive pg-wal crlf; do
	SYSTEMD_UNIT_PATH="$G2:$work/units:" systemd-analyze verify "$G2/lakecrypt@$v.service" >"$log" 2>&1
	tap $? "systemd-analyze verify lakecrypt@$v.service (generated)"
done
rm -rf "$G"; mkdir -p "$G"
LAKECRYPTTAB=$work/none "$gen" "$G" 2>"$log" && [ -z "$(ls "$G")" ] && [ ! -s "$log" ]
tap $? "no lakecrypttab: nothing generated, nothing said"
printf '# only comments\n\n' >"$tab"
LAKECRYPTTAB=$tab "$gen" "$G" 2>"$log" && [ -z "$(ls "$G")" ]
tap $? "only comments: nothing generated (lakecrypt.target not pulled in)"
# file_failed DIR TEXT: the only units in DIR are the failing
# lakecrypt@file:lakecrypttab.service, whose message has TEXT, required by
# lakecrypt.target, which multi-user.target wants (rev11a finding 3: a
# refused file made no unit, a clean-looking boot).
file_failed() {
	local fu=$1/lakecrypt@file:lakecrypttab.service
	[ "$(cd "$1" && find . -name '*.service' | LC_ALL=C sort | tr '\n' ' ')" = \
		"./lakecrypt.target.requires/lakecrypt@file:lakecrypttab.service ./lakecrypt@file:lakecrypttab.service " ] &&
		[ -f "$fu" ] && has "$fu" '^ExecStart=/bin/false$' && grep -qF -- "$2" "$fu" &&
		has "$fu" '^ExecStartPre=/bin/echo ".*; fix it \(lakecrypttab\(5\)\), then systemctl daemon-reload"$' &&
		[ "$(readlink "$1/lakecrypt.target.requires/lakecrypt@file:lakecrypttab.service")" = ../lakecrypt@file:lakecrypttab.service ] &&
		[ -L "$1/multi-user.target.wants/lakecrypt.target" ]
}
mkdir -p "$work/tabdir"
rm -rf "$G"; mkdir -p "$G"
LAKECRYPTTAB=$work/tabdir "$gen" "$G" 2>"$log"; [ $? -eq 0 ] && file_failed "$G" "tabdir: not a regular file" &&
	grep -q "lakecrypt-generator: $work/tabdir: not a regular file; refused" "$log"
tap $? "lakecrypttab is a directory: said; only lakecrypt@file:lakecrypttab.service, failing with the message"
ln -sf "$work/nowhere" "$work/tablink"
rm -rf "$G"; mkdir -p "$G"
LAKECRYPTTAB=$work/tablink "$gen" "$G" 2>"$log"; [ $? -eq 0 ] && file_failed "$G" "tablink: a symbolic link; refused" &&
	grep -q "lakecrypt-generator: $work/tablink: a symbolic link; refused" "$log"
tap $? "lakecrypttab is a dangling symbolic link: said; only a failing lakecrypt@file:lakecrypttab.service"
cp "$tab" "$work/tab000"; chmod 000 "$work/tab000"; chmod o+x "$work"
rm -rf "$work/nobody-gen"; mkdir -p "$work/nobody-gen"; chown 65534 "$work/nobody-gen"
setpriv --reuid=65534 --regid=65534 --clear-groups env LAKECRYPTTAB="$work/tab000" "$gen" "$work/nobody-gen" 2>"$log"
[ $? -eq 0 ] && grep -q "lakecrypt-generator: $work/tab000: cannot be read; no volume opened at boot" "$log" &&
	file_failed "$work/nobody-gen" "tab000: cannot be read"
tap $? "lakecrypttab unreadable: said (not 'say: not found'); only a failing lakecrypt@file:lakecrypttab.service"

# lakecrypttab is root's (review 11b, finding 1): one who can write
# /etc/lakecrypt but is not root must not make the generator read a
# root-only file (unit names are world-readable, messages reach the
# journal).  A symbolic link (to a 0600 file holding SECRET lines), a
# file with a second hard link, one writable by group or others, one owned
# by another user: refused, said, nothing generated, no SECRET anywhere.
sec=$work/secret
printf 'root:SECRETHASH:19000:0:99999:7:::\naws_secret_access_key=SECRETVALUE\nSECRETNAME /dev/sda SECRETWS\nSECRET$ /dev/sda ws1\n' >"$sec"
chmod 600 "$sec"
ln -sf "$sec" "$work/tabsym"
ln -f "$sec" "$work/tabhard"
cp "$sec" "$work/tabgw"; chmod 620 "$work/tabgw"
cp "$sec" "$work/tabow"; chmod 602 "$work/tabow"
cp "$sec" "$work/tabown"; chmod 600 "$work/tabown"; chown 65534 "$work/tabown"
for c in "tabsym:a symbolic link" "tabhard:2 hard links" "tabgw:writable by group or others" \
	"tabow:writable by group or others" "tabown:owned by uid 65534, not root"; do
	f=$work/${c%%:*} why=${c#*:}
	rm -rf "$G"; mkdir -p "$G"; : >"$work/kmsg"
	LAKECRYPTTAB=$f SYSTEMD_SCOPE=system LAKECRYPT_KMSG=$work/kmsg "$gen" "$G" 2>"$log"; rc=$?
	cp "$log" "$work/refuse.err"
	ok=0
	{ [ $rc -eq 0 ] && file_failed "$G" "$why; refused" &&
		grep -qF "lakecrypt-generator: $f: $why; refused (lakecrypttab must be a regular file owned by root, not writable by group or others, with one link" "$work/refuse.err" &&
		grep -qF "<3>lakecrypt-generator: $f: $why; refused" "$work/kmsg" &&
		! grep -rq SECRET "$G" "$work/refuse.err" "$work/kmsg" && ! find "$G" | grep -q SECRET; } ||
		{ ok=1; echo "rc $rc; generated:"; find "$G"; echo "kmsg:"; cat "$work/kmsg"; } >>"$log"
	tap $ok "lakecrypttab ${c%%:*} ($why): refused, said on stderr and the kernel log, only a failing lakecrypt@file:lakecrypttab.service, no SECRET in any"
done
rm -f "$work/tabhard"
# The same SECRET file as a plain root-owned 0600 lakecrypttab: read (the
# admin's own), and a line whose NAME is not valid names its unit by line
# number, never by its bytes (a valid NAME, SECRETNAME, is a unit name).
rm -rf "$G"; mkdir -p "$G"
LAKECRYPTTAB=$sec "$gen" "$G" 2>"$log"
ls "$G" >>"$log"
[ -f "$G/lakecrypt@line:1.service" ] && [ -f "$G/lakecrypt@line:2.service" ] && [ -f "$G/lakecrypt@line:4.service" ] &&
	[ -L "$G/lakecrypt.target.requires/lakecrypt@line:4.service" ] &&
	[ "$(ls "$G" | grep SECRET)" = 'lakecrypt@SECRETNAME.service' ]
tap $? "a bad line whose NAME is not valid: lakecrypt@line:N.service, no byte of the NAME in a unit name"

# The kernel log through one descriptor (review 11b, finding 2): reopening
# /dev/kmsg per message escapes the kernel's rate limit of a writer.
for i in $(seq 20); do echo "bad$i /dev/sda w\$s"; done >"$work/tabkmsg"
rm -rf "$G"; mkdir -p "$G"; : >"$work/kmsg"
LAKECRYPTTAB=$work/tabkmsg SYSTEMD_SCOPE=system LAKECRYPT_KMSG=$work/kmsg \
	strace -f -qq -e trace=open,openat -o "$work/kmsg.strace" "$gen" "$G" 2>"$log"
opens=$(grep -cF "\"$work/kmsg\"" "$work/kmsg.strace")
[ "$opens" -eq 1 ] && [ "$(grep -c '^<3>lakecrypt-generator: .*tabkmsg:[0-9]*: workspace' "$work/kmsg")" -eq 20 ]
tap $? "20 bad lines: 20 messages in the kernel log through one open of it ($opens opens)"

# Killed halfway (systemd's generator timeout): lakecrypt.target is still
# wanted by multi-user.target, so the volumes linked so far start at boot.
for i in $(seq 200); do echo "v$i /dev/disk/by-id/wwn-0x$i ws1"; done >"$work/tabkill"
rm -rf "$G"; mkdir -p "$G"
LAKECRYPTTAB=$work/tabkill setsid "$gen" "$G" 2>"$log" &
gpid=$!
while [ ! -L "$G/lakecrypt.target.requires/lakecrypt@v1.service" ] && kill -0 $gpid 2>/dev/null; do :; done
kill -KILL -- -$gpid 2>/dev/null; wait $gpid 2>/dev/null; rc=$?
linked=$(ls "$G/lakecrypt.target.requires" 2>/dev/null | wc -l)
echo "# killed with $linked of 200 units linked (exit $rc)"
[ $rc -eq 137 ] && [ "$linked" -lt 200 ] && [ -L "$G/lakecrypt.target.requires/lakecrypt@v1.service" ] &&
	[ "$(readlink "$G/multi-user.target.wants/lakecrypt.target")" = /usr/lib/systemd/system/lakecrypt.target ]
tap $? "generator killed after its first unit: multi-user.target already wants lakecrypt.target"

# At most 256 lines other than comments: the 257th and later are said,
# not read (the generator must end well before systemd's 90 s).
{ echo '# comments do not count'; for i in $(seq 257); do echo "v$i /dev/disk/by-id/wwn-0x$i ws1"; done; echo 'bad$ x'; } >"$work/tabmax"
rm -rf "$G"; mkdir -p "$G"
LAKECRYPTTAB=$work/tabmax "$gen" "$G" 2>"$log"; rc=$?
[ $rc -eq 0 ] && [ "$(ls "$G/lakecrypt.target.requires" | wc -l)" -eq 257 ] && [ -f "$G/lakecrypt@v256.service" ] &&
	[ ! -e "$G/lakecrypt@v257.service" ] && [ "$(ls "$G" | grep -c line:)" -eq 1 ] &&
	grep -q "tabmax:258: more than 256 lines that are not comments (the most the generator reads, lakecrypttab(5)); this line and the rest not read" "$log" &&
	has "$G/lakecrypt@line:258.service" '^ExecStart=/bin/false$' &&
	has "$G/lakecrypt@line:258.service" 'more than 256 lines' &&
	[ -L "$G/lakecrypt.target.requires/lakecrypt@line:258.service" ] &&
	[ -L "$G/multi-user.target.wants/lakecrypt.target" ]
tap $? "257 volume lines: the first 256 generated; the rest said, not read, and lakecrypt@line:258.service fails at start (systemctl --failed shows it)"

# One grammar with the agent (agent/lib/crypttab.h): the agent's side of
# the same lines is tests/unit/test-agent.c test_tab_bad_lines.  A bad
# line's NAME is still taken (a later line with it is a duplicate), a NUL
# byte anywhere makes only its own line bad, names and workspaces are at
# most 63 characters (lc_name_check()).
w63=$(printf 'w%.0s' $(seq 63)) w64=$(printf 'w%.0s' $(seq 64))
{
	printf '# a comment with a \000 NUL\n'
	printf 'ok1 UUID=%s finance\n' "$U1"
	printf 'nul1 /dev/sda finance \000x\n'
	printf 'ledger UUID=not-a-uuid ws1\nledger UUID=%s ws2\n' "$U1"
	printf 'w64 /dev/sdb %s\n' "$w64"
	printf 'n63 /dev/sdc %s\n' "$w63"
	printf 'ctl /dev/sdd finance\001\n'
	printf 'cr /dev/sde finance\r\r\n'
	printf 'five /dev/sdf finance nofail x\n'
	printf '%s /dev/sdg finance\n' "$w64"
	printf 'nul1 /dev/sdh finance\n'
} >"$work/tab6"
rm -rf "$G"; mkdir -p "$G"
LAKECRYPTTAB=$work/tab6 "$gen" "$G" 2>"$work/gen6.err"
gen_rc=$?
ok=0
for want in \
	"tab6:3: a NUL byte or another control character" \
	"tab6:4: device \"UUID=not-a-uuid\": UUID= needs a uuid" \
	"tab6:5: volume name \"ledger\" is already used by an earlier line" \
	"tab6:6: workspace \"$w64\" is not valid.*at most 63" \
	"tab6:8: a NUL byte or another control character" \
	"tab6:9: a NUL byte or another control character" \
	"tab6:10: expected NAME DEVICE WORKSPACE \[OPTIONS\], found 5 field" \
	"tab6:11: volume name \"$w64\" is not valid.*at most 63" \
	"tab6:12: volume name \"nul1\" is already used by an earlier line"; do
	grep -q -- "lakecrypt-generator: .*$want" "$work/gen6.err" || { echo "missing message: $want" >>"$log"; ok=1; }
done
[ "$(grep -c 'line skipped' "$work/gen6.err")" -eq 3 ] || { echo "expected 3 skipped lines" >>"$log"; ok=1; }
[ "$(grep -c 'fails at start' "$work/gen6.err")" -eq 6 ] || { echo "expected 6 failing units" >>"$log"; ok=1; }
(cd "$G" && grep -l '^ExecStart=/usr/sbin/lakecryptctl ' lakecrypt@*.service) >"$work/gen6.units" 2>>"$log"
[ "$(cat "$work/gen6.units")" = "$(printf 'lakecrypt@n63.service\nlakecrypt@ok1.service')" ] ||
	{ echo "units:"; cat "$work/gen6.units"; } >>"$log"
cat "$work/gen6.err" >>"$log"
[ "$gen_rc" -eq 0 ] && [ "$ok" -eq 0 ] && [ "$(cat "$work/gen6.units")" = "$(printf 'lakecrypt@n63.service\nlakecrypt@ok1.service')" ]
tap $? "the agent's grammar: a NUL byte spoils only its line, a bad line's name is taken (no unit for ws2's ledger), 63 characters at most"

# crypttab(5) options (lakecrypttab(5), "Differences from crypttab(5)"):
# time spans, x-systemd.device-timeout=, x-* ignored with a warning,
# discard refused, whole-line comments only.
cat >"$work/tab8" <<TAB
span    /dev/sda   finance   timeout=2min30s,x-systemd.device-timeout=10,x-initrd.attach,_netdev
dto     /dev/sdb   finance   x-systemd.device-timeout=0
days    /dev/sdc   finance   timeout=1d,nofail
disc    /dev/sdd   finance   discard
disc2   /dev/sde   finance   nofail,discard
tc      /dev/sdf   finance   # trailing comment
big     /dev/sdg   finance   timeout=24h1s
ms      /dev/sdh   finance   noauto,timeout=500ms
TAB
rm -rf "$G"; mkdir -p "$G"
LAKECRYPTTAB=$work/tab8 "$gen" "$G" 2>"$work/gen8.err"
gen_rc=$?
sed 's/^/# generator: /' "$work/gen8.err"
: >"$log"
ok=0
u=$G/lakecrypt@span.service
{ has "$u" '^ExecStart=/usr/sbin/lakecryptctl --timeout 150 open /dev/sda span --workspace finance$' &&
	has "$u" '^TimeoutStartSec=160$' &&
	has "$G/dev-sda.device.d/50-lakecrypt.conf" '^JobRunningTimeoutSec=10$'; } || ok=1
{ has "$G/lakecrypt@dto.service" '^TimeoutStartSec=100$' &&
	has "$G/dev-sdb.device.d/50-lakecrypt.conf" '^JobRunningTimeoutSec=infinity$'; } || ok=1
{ has "$G/lakecrypt@days.service" '^TimeoutStartSec=86410$' &&
	has "$G/dev-sdc.device.d/50-lakecrypt.conf" '^JobRunningTimeoutSec=86400$'; } || ok=1
grep -q "tab8:1: option \"x-initrd.attach\" ignored" "$work/gen8.err" || { echo "x-* not warned" >>"$log"; ok=1; }
grep -q "tab8:4: option \"discard\": lakecrypt does not pass discards.*lakecrypt@disc.service fails at start" "$work/gen8.err" &&
	has "$G/lakecrypt@disc.service" '^ExecStart=/bin/false$' || { echo "discard" >>"$log"; ok=1; }
grep -q "tab8:5: option \"discard\".*line skipped (nofail)" "$work/gen8.err" && [ ! -e "$G/lakecrypt@disc2.service" ] ||
	{ echo "nofail,discard" >>"$log"; ok=1; }
grep -q "tab8:6: a comment must be a line of its own.*lakecrypt@tc.service fails at start" "$work/gen8.err" || { echo "comment" >>"$log"; ok=1; }
grep -q "tab8:7: option \"timeout=24h1s\": timeout= is at most 86400 seconds" "$work/gen8.err" || { echo "24h1s" >>"$log"; ok=1; }
grep -q "tab8:8: option \"timeout=500ms\": timeout= takes a time span" "$work/gen8.err" &&
	has "$G/lakecrypt@ms.service" '^ExecStart=/bin/false$' && [ ! -e "$G/lakecrypt.target.requires/lakecrypt@ms.service" ] ||
	{ echo "ms (noauto: a failing unit, not pulled in)" >>"$log"; ok=1; }
cat "$work/gen8.err" >>"$log"
[ "$gen_rc" -eq 0 ] && [ "$ok" -eq 0 ]
tap $? "crypttab(5) options: time spans, x-systemd.device-timeout= (the device wait), x-* ignored with a warning, discard refused, no trailing comments"
G3=$work/gen3
rm -rf "$G3"; mkdir -p "$G3"
LAKECRYPTTAB=$work/tab8 "$B/lakecrypt-generator" "$G3" 2>/dev/null
for v in span disc tc; do
	SYSTEMD_UNIT_PATH="$G3:$work/units:" systemd-analyze verify "$G3/lakecrypt@$v.service" >"$log" 2>&1
	tap $? "systemd-analyze verify lakecrypt@$v.service (generated from tab8)"
done
head -c 1048577 /dev/zero | tr '\000' '#' >"$work/tab7"
rm -rf "$G"; mkdir -p "$G"
LAKECRYPTTAB=$work/tab7 "$gen" "$G" 2>"$log"; [ $? -eq 0 ] && file_failed "$G" "tab7: larger than 1 MiB" &&
	grep -q "lakecrypt-generator: $work/tab7: larger than 1 MiB; no volume opened at boot" "$log"
tap $? "lakecrypttab over 1 MiB (the agent refuses every open then): said; only a failing lakecrypt@file:lakecrypttab.service"
# "control" is device-mapper's /dev/mapper/control: no name, workspace or
# header name (lc_name_check() refuses it too; test_tab_agrees_with_generator).
printf 'control /dev/sdz finance\nok2 /dev/sdy control\nok3 /dev/sdx finance header=control\nok4 /dev/sdw finance header=control0\n' >"$work/tab8"
rm -rf "$G"; mkdir -p "$G"
LAKECRYPTTAB=$work/tab8 "$gen" "$G" 2>"$log"; rc=$?
# A bad line without nofail becomes a unit that fails at start (lakecrypttab(5)).
[ $rc -eq 0 ] && grep -q "tab8:1: volume name \"control\" is reserved: /dev/mapper/control is device-mapper's own device; lakecrypt@line:1.service fails at start" "$log" &&
	grep -q 'tab8:2: workspace "control" is not valid' "$log" && grep -q 'tab8:3: option "header=control": header= takes' "$log" &&
	[ "$(grep -l '^ExecStart=/bin/false$' "$G"/lakecrypt@*.service | xargs -n1 basename | tr '\n' ' ')" = "lakecrypt@line:1.service lakecrypt@ok2.service lakecrypt@ok3.service " ] &&
	grep -q '^ExecStart=.* open /dev/sdw ok4 --workspace finance --header control0$' "$G/lakecrypt@ok4.service"
tap $? "volume name, workspace or header name \"control\": said as reserved or not valid, its unit fails at start"

# header= or cache with a device named by its lakecrypt header (UUID=,
# by-uuid, by-lakecrypt): a detached header's data device and a cache
# carry none, so udev never makes the link; refused with the agent's
# message (agent/lib/crypttab.c; issue 11 review, finding 4).
cat >"$work/tab9" <<TAB
h1   UUID=$U1   finance   header=h1
h2   /dev/disk/by-uuid/$U1   finance   _netdev,header=/etc/lakecrypt/h2.hdr
h3   /dev/disk/by-lakecrypt/finance/h3   finance   header=h3
c1   UUID=$U1   finance   cache
c2   /dev/disk/by-lakecrypt/finance/c2   finance   cache,nofail
ok9  /dev/disk/by-id/virtio-ok9   finance   header=ok9
ok10 /dev/disk/by-lakecrypt/finance/ok10   finance
ok11 /dev/disk/by-id/virtio-ok11   finance   cache
TAB
rm -rf "$G"; mkdir -p "$G"
LAKECRYPTTAB=$work/tab9 "$gen" "$G" 2>"$log"; rc=$?
hdrmsg="a detached header's data device carries no lakecrypt header, so udev gives it no by-uuid or by-lakecrypt link: name it by /dev/disk/by-id/..."
cachemsg="a cache's device carries no lakecrypt header, so udev gives it no by-uuid or by-lakecrypt link: name it by /dev/disk/by-id/..."
[ $rc -eq 0 ] &&
	grep -qF "tab9:1: device \"UUID=$U1\": $hdrmsg; lakecrypt@h1.service fails at start" "$log" &&
	grep -qF "tab9:2: device \"/dev/disk/by-uuid/$U1\": $hdrmsg;" "$log" &&
	grep -qF "tab9:3: device \"/dev/disk/by-lakecrypt/finance/h3\": $hdrmsg;" "$log" &&
	grep -qF "tab9:4: device \"UUID=$U1\": $cachemsg; lakecrypt@c1.service fails at start" "$log" &&
	grep -qF "tab9:5: device \"/dev/disk/by-lakecrypt/finance/c2\": $cachemsg; line skipped (nofail)" "$log" &&
	[ "$(grep -l '^ExecStart=/bin/false$' "$G"/lakecrypt@*.service | xargs -n1 basename | tr '\n' ' ')" = "lakecrypt@c1.service lakecrypt@h1.service lakecrypt@h2.service lakecrypt@h3.service " ] &&
	[ "$(grep -l '^ExecStart=/usr/sbin/lakecryptctl ' "$G"/lakecrypt@*.service | xargs -n1 basename | tr '\n' ' ')" = "lakecrypt@ok10.service lakecrypt@ok11.service lakecrypt@ok9.service " ]
tap $? "header= or cache with UUID=, by-uuid or by-lakecrypt: refused with the agent's message (udev makes no such link for them)"

# A NAME that crypttab(5) lists is systemd-cryptsetup's: the agent refuses
# it to everyone, and the generator says so with the agent's message (issue
# 11 review, finding 10).  The file is the agent's [agent] crypttab
# (agent.conf), /etc/crypttab by default; CRYPTTAB overrides both.
printf '# <name> <device> <key> <options>\n# ledger /dev/sdx none\n\n \tdata\tUUID=%s none luks,discard\r\nswap /dev/sda2 /dev/urandom swap\n"quoted"\t/dev/sdb2 none\nswap /dev/sda3 none\n' "$U1" >"$work/crypttab"
printf 'ledger /dev/sdz finance\ndata /dev/sdy finance\nswap /dev/sdx finance nofail\nquoted /dev/sdw finance\ndat /dev/sdv finance\n' >"$work/tab10"
rm -rf "$G"; mkdir -p "$G"
CRYPTTAB=$work/crypttab LAKECRYPTTAB=$work/tab10 "$gen" "$G" 2>"$log"; rc=$?
ctmsg="(a dm-crypt volume systemd-cryptsetup opens under it): no lakecrypt volume may be opened under it; choose another name"
[ $rc -eq 0 ] &&
	grep -qF "tab10:2: the name \"data\" is listed in $work/crypttab line 4 $ctmsg; lakecrypt@data.service fails at start" "$log" &&
	grep -qF "tab10:3: the name \"swap\" is listed in $work/crypttab line 5 $ctmsg; line skipped (nofail)" "$log" &&
	grep -qF "tab10:4: the name \"quoted\" is listed in $work/crypttab line 6 " "$log" &&
	has "$G/lakecrypt@data.service" '^ExecStart=/bin/false$' &&
	has "$G/lakecrypt@ledger.service" '^ExecStart=/usr/sbin/lakecryptctl .* open /dev/sdz ledger ' &&
	has "$G/lakecrypt@dat.service" '^ExecStart=/usr/sbin/lakecryptctl .* open /dev/sdv dat ' &&
	[ "$(grep -c 'is listed in' "$log")" -eq 3 ]
tap $? "a name crypttab(5) lists: its line refused with the agent's message (quotes removed, comments and prefixes not names)"
printf '[agent]\n; the crypttab of the agent\ncrypttab = %s   # comment\n[kms]\ncrypttab = /nonexistent\n' "$work/crypttab" >"$work/ct-agent.conf"
rm -rf "$G"; mkdir -p "$G"
env -u CRYPTTAB LAKECRYPT_AGENT_CONF=$work/ct-agent.conf LAKECRYPTTAB=$work/tab10 "$gen" "$G" 2>"$log" &&
	grep -qF "tab10:2: the name \"data\" is listed in $work/crypttab line 4 " "$log" &&
	has "$G/lakecrypt@data.service" '^ExecStart=/bin/false$'
tap $? "the generator reads the agent's [agent] crypttab from agent.conf"
# [agent] lakecrypttab: the file the agent reserves names from is the one
# the boot opens (final issue-11 review, finding 1).
printf 'alt1 /dev/sdq finance\n' >"$work/tab-alt" && chmod 644 "$work/tab-alt"
printf '[agent]\nlakecrypttab = %s  # the boot volumes\n' "$work/tab-alt" >"$work/lt-agent.conf"
rm -rf "$G"; mkdir -p "$G"
env -u LAKECRYPTTAB CRYPTTAB=/nonexistent LAKECRYPT_AGENT_CONF=$work/lt-agent.conf "$gen" "$G" 2>"$log" &&
	has "$G/lakecrypt@alt1.service" '^ExecStart=/usr/sbin/lakecryptctl .* open /dev/sdq alt1 --workspace finance$'
tap $? "the generator reads the agent's [agent] lakecrypttab from agent.conf"
printf 'alt2 /dev/sdr finance\n' >"$work/tab-alt2" && chmod 644 "$work/tab-alt2"
printf '[agent]\r\n lakecrypttab\t= %s \t\r\n' "$work/tab-alt" >"$work/lt2-agent.conf"
rm -rf "$G"; mkdir -p "$G"
CRYPTTAB=/nonexistent LAKECRYPT_AGENT_CONF=$work/lt2-agent.conf LAKECRYPTTAB=$work/tab-alt2 "$gen" "$G" 2>"$log" &&
	[ -f "$G/lakecrypt@alt2.service" ] && [ ! -e "$G/lakecrypt@alt1.service" ] &&
	rm -rf "$G" && mkdir -p "$G" &&
	env -u LAKECRYPTTAB CRYPTTAB=/nonexistent LAKECRYPT_AGENT_CONF=$work/lt2-agent.conf "$gen" "$G" 2>>"$log" &&
	[ -f "$G/lakecrypt@alt1.service" ]
tap $? "LAKECRYPTTAB overrides agent.conf's lakecrypttab; blanks and CRs around the key and value are dropped as the agent drops them"
# The same units with busybox's tools only (the QEMU guest's, and those
# of small systems): busybox's stat has no "-" for standard input, its ln
# no -t (the guest boot found both).
bb=$work/bbpath
mkdir -p "$bb"
for a in $(/bin/busybox --list); do ln -sf /bin/busybox "$bb/$a"; done
ln -sf "$(command -v systemd-escape)" "$bb/systemd-escape"
printf 'v1 /dev/disk/by-id/wwn-0x1 finance timeout=30\nv2 UUID=3f2c9d1e-8a4b-4c6d-9e0f-1a2b3c4d5e6f finance nofail\nbad$ /dev/sdb finance\n' >"$work/tab-bb"
rm -rf "$G" "$work/G-bb"; mkdir -p "$G" "$work/G-bb"
env -u LAKECRYPTTAB CRYPTTAB=/nonexistent LAKECRYPTTAB=$work/tab-bb "$gen" "$G" 2>"$work/gen-cu.err" &&
	env CRYPTTAB=/nonexistent LAKECRYPTTAB=$work/tab-bb PATH=$bb /bin/busybox sh "$gen" "$work/G-bb" 2>"$work/gen-bb.err" &&
	[ -f "$G/lakecrypt@v1.service" ] && diff -r --no-dereference "$G" "$work/G-bb" >>"$log" 2>&1 &&
	diff "$work/gen-cu.err" "$work/gen-bb.err" >>"$log" 2>&1
tap $? "the generator makes the same units and messages with busybox's tools only (sh, stat, ln, ...)"
# Bad lines' values as the messages quote them (lakecrypttab(5),
# "Messages"): escape sequences, a 5,000-byte field and binary bytes reach
# neither stderr nor the kernel log (the journal) as they are: bytes
# outside printable ASCII (and '"', '\') as \xNN, at most 64 bytes then
# "..."; the same with busybox's tools; the same quoting as the agent's
# (tests/unit/test-agent.c, test_tab_quoted_values).
long=$(printf '%5000s' '' | tr ' ' w)
{
	printf 'e1 /dev/sda finance x-\033]0;pwned\007\n'
	printf 'e2 /dev/sd\302\233[2J\033[31m finance\n'
	printf 'e3 /dev/sd\302\233[2J finance\n'
	printf 'e4 /dev/sda %s\n' "$long"
	printf 'e5 /dev/sda finance bogus\377\376"\\x\n'
	printf 'e6 /dev/sda finance x-\233\n'
	printf 'e7 /dev/sda%s finance\n' "$long"
} >"$work/tab-q"
w64=$(printf '%64s' '' | tr ' ' w)
ok=0
for how in coreutils busybox; do
	rm -rf "$G"; mkdir -p "$G"; : >"$work/kmsg"
	if [ $how = busybox ]; then
		env CRYPTTAB=/nonexistent LAKECRYPTTAB=$work/tab-q SYSTEMD_SCOPE=system LAKECRYPT_KMSG=$work/kmsg \
			PATH=$bb /bin/busybox sh "$gen" "$G" 2>"$work/q-$how.err"
	else
		CRYPTTAB=/nonexistent LAKECRYPTTAB=$work/tab-q SYSTEMD_SCOPE=system LAKECRYPT_KMSG=$work/kmsg \
			"$gen" "$G" 2>"$work/q-$how.err"
	fi
	[ $? -eq 0 ] || { echo "$how: exit $?"; ok=1; }
	cp "$work/kmsg" "$work/q-$how.kmsg"
	for want in "tab-q:1: a NUL byte or another control character" \
		"tab-q:2: a NUL byte or another control character" \
		"tab-q:3: device \"/dev/sd\\xc2\\x9b[2J\" has characters that are not allowed" \
		"tab-q:4: workspace \"$w64...\" is not valid" \
		"tab-q:5: unknown option \"bogus\\xff\\xfe\\x22\\x5cx\" (expected" \
		"tab-q:6: option \"x-\\x9b\" ignored" \
		"tab-q:7: device \"/dev/sda${w64:8}...\" has characters"; do
		grep -qF -- "$want" "$work/q-$how.err" || { echo "$how: missing message: $want"; ok=1; }
		grep -qF -- "$want" "$work/kmsg" || { echo "$how: not in the kernel log: $want"; ok=1; }
	done
	# Nothing but printable ASCII and newlines, no line over 400 bytes, in
	# the messages, the kernel log and the units.
	for f in "$work/q-$how.err" "$work/kmsg" "$G"/*.service; do
		LC_ALL=C grep -n '[^ -~]' "$f" && { echo "$how: $f: a byte outside printable ASCII"; ok=1; }
		awk -v f="$f" 'length($0) > 400 { print f ":" NR ": " length($0) " bytes"; bad = 1 } END { exit bad }' "$f" ||
			{ echo "$how: $f: a line over 400 bytes"; ok=1; }
	done
done >>"$log" 2>&1
diff "$work/q-coreutils.err" "$work/q-busybox.err" >>"$log" 2>&1 || ok=1
diff "$work/q-coreutils.kmsg" "$work/q-busybox.kmsg" >>"$log" 2>&1 || ok=1
[ $ok -eq 0 ]
tap $? "bad lines with ESC sequences, a 5,000-byte field, binary bytes: messages and units printable ASCII, values as \\xNN, at most 64 bytes then '...'; the same with busybox's tools"
cp "$work/tab-bb" "$work/tab-bb664"; chmod 664 "$work/tab-bb664"
rm -rf "$G" "$work/G-bb"; mkdir -p "$G" "$work/G-bb"
CRYPTTAB=/nonexistent LAKECRYPTTAB=$work/tab-bb664 "$gen" "$G" 2>"$work/gen-cu.err" &&
	env CRYPTTAB=/nonexistent LAKECRYPTTAB=$work/tab-bb664 PATH=$bb /bin/busybox sh "$gen" "$work/G-bb" 2>"$work/gen-bb.err" &&
	file_failed "$work/G-bb" "tab-bb664: writable by group or others; refused" &&
	diff -r --no-dereference "$G" "$work/G-bb" >>"$log" 2>&1 && diff "$work/gen-cu.err" "$work/gen-bb.err" >>"$log" 2>&1
tap $? "a refused lakecrypttab with busybox's tools only: the same failing lakecrypt@file:lakecrypttab.service"
has tools/systemd/lakecrypt-generator.in '^agentconf=\$\{LAKECRYPT_AGENT_CONF:-"@SYSCONFDIR@/lakecrypt/agent\.conf"\}$' &&
	grep -q '^	ct=/etc/crypttab$' tools/systemd/lakecrypt-generator.in &&
	grep -q 'snprintf(cfg->crypttab, sizeof(cfg->crypttab), "/etc/crypttab");' agent/lib/config.c
tap $? "without [agent] crypttab, generator and agent both read /etc/crypttab"
mkdir -p "$work/ctdir"
rm -rf "$G"; mkdir -p "$G"
CRYPTTAB=$work/ctdir LAKECRYPTTAB=$work/tab10 "$gen" "$G" 2>"$log"; rc=$?
[ $rc -eq 0 ] && file_failed "$G" "ctdir: not a regular file: lakecrypt-agent cannot check volume names" &&
	grep -qF "lakecrypt-generator: $work/ctdir: not a regular file: lakecrypt-agent cannot check volume names against it and refuses every open; no volume opened at boot" "$log"
tap $? "a crypttab that cannot be read (the agent refuses every open): said; only a failing lakecrypt@file:lakecrypttab.service"
# `crypttab =` empty in agent.conf (lakecrypt-agent(8), a host without
# dm-crypt volumes): no crypttab, as the agent reads it, not /etc/crypttab
# (rev11a finding 2); the test points the unset default at one that would
# refuse the name.
printf '[agent]\ncrypttab =\n' >"$work/ct-empty.conf"
printf 'data /dev/sdy finance\n' >"$work/tab-cte"; chmod 600 "$work/tab-cte"
rm -rf "$G"; mkdir -p "$G"
sed 's|^\tct=/etc/crypttab$|\tct='"$work"'/crypttab|' "$gen" >"$work/gen-ct"; chmod +x "$work/gen-ct"
env -u CRYPTTAB LAKECRYPT_AGENT_CONF=$work/ct-empty.conf LAKECRYPTTAB=$work/tab-cte "$work/gen-ct" "$G" 2>"$log" &&
	has "$G/lakecrypt@data.service" '^ExecStart=/usr/sbin/lakecryptctl .* open /dev/sdy data ' &&
	rm -rf "$G" && mkdir -p "$G" &&
	env -u CRYPTTAB LAKECRYPT_AGENT_CONF=/nonexistent LAKECRYPTTAB=$work/tab-cte "$work/gen-ct" "$G" 2>>"$log" &&
	has "$G/lakecrypt@data.service" '^ExecStart=/bin/false$'
tap $? "agent.conf \`crypttab =\` empty: the generator reads no crypttab (unset: the default one)"
# Messages are written as they are (rev11a finding 5): dash's echo made
# "\n" in a field a forged line and "\c" cut the message short.
printf '%s\n' 'a /dev/vdb finance x\nlakecrypt-generator:FORGED' 'b /dev/vdb finance y\cCUT' >"$work/tab-bs"; chmod 600 "$work/tab-bs"
rm -rf "$G"; mkdir -p "$G"; : >"$work/kmsg"
CRYPTTAB=/nonexistent LAKECRYPTTAB=$work/tab-bs SYSTEMD_SCOPE=system LAKECRYPT_KMSG=$work/kmsg "$gen" "$G" 2>"$log"
! grep -q '^lakecrypt-generator:FORGED' "$log" && ! grep -q '^lakecrypt-generator:FORGED' "$work/kmsg" &&
	grep -q 'tab-bs:2: unknown option .*CUT' "$log" && grep -q 'tab-bs:2: .*fails at start' "$log" &&
	grep -q '^<3>.*tab-bs:2: .*fails at start' "$work/kmsg"
tap $? "a backslash in a field is written as it is: no forged line, no message cut short (stderr and kernel log)"

# The generator starts no program per good line (issue 11 review, finding
# 11b: systemd-escape cost ~20 ms of CPU a line): its own escaping is
# systemd-escape --path's.
fk=$work/fakebin
mkdir -p "$fk"
printf '#!/bin/sh\necho "$*" >>"%s/escape.calls"\nexec /usr/bin/systemd-escape "$@"\n' "$work" >"$fk/systemd-escape"
chmod +x "$fk/systemd-escape"
devs='/dev/disk/by-id/wwn-0x5000c500a1b2c3d4 /dev/disk/by-id/virtio-a:b+c@d=e_f.g-h /dev/disk/by-id/.x /dev/sda/ /dev/disk/by-path/pci-0000:00:1f.2-ata-1'
i=0
for d in $devs; do i=$((i + 1)); echo "e$i $d finance timeout=10"; done >"$work/tab11"
echo "u1 UUID=${U1^^} finance" >>"$work/tab11"
rm -rf "$G" "$work/escape.calls"; mkdir -p "$G"
PATH=$fk:$PATH LAKECRYPTTAB=$work/tab11 "$gen" "$G" 2>"$log"; rc=$?
ok=$rc
i=0
for d in $devs /dev/disk/by-uuid/$U1; do
	i=$((i + 1)); v=e$i; [ "$d" = "/dev/disk/by-uuid/$U1" ] && v=u1
	e=$(systemd-escape --path "$d").device
	grep -qxF "BindsTo=$e" "$G/lakecrypt@$v.service" || { echo "$v ($d): not BindsTo=$e"; ok=1; } >>"$log"
	[ "$v" = u1 ] || [ -f "$G/$e.d/50-lakecrypt.conf" ] || { echo "no $e.d"; ok=1; } >>"$log"
done
grep -qxF 'Wants=blockdev@dev-mapper-e1.target' "$G/lakecrypt@e1.service" || { echo "blockdev@"; ok=1; } >>"$log"
[ ! -e "$work/escape.calls" ] || { echo "systemd-escape called: $(cat "$work/escape.calls")"; ok=1; } >>"$log"
[ "$(ls "$G/lakecrypt.target.requires" | wc -l)" -eq 6 ] || { echo "not 6 links"; ok=1; } >>"$log"
[ "$(readlink "$G/lakecrypt.target.requires/lakecrypt@e1.service")" = ../lakecrypt@e1.service ] || { echo "link target"; ok=1; } >>"$log"
[ $ok -eq 0 ]
tap $? "good lines: no systemd-escape started; device and blockdev@ units as systemd-escape --path names them; one link per volume"
printf 'bad%s1 /dev/sda finance\n' '$' >"$work/tab12"
rm -rf "$G"; mkdir -p "$G"
LAKECRYPTTAB=$work/tab12 "$gen" "$G" 2>"$log" && [ -f "$G/lakecrypt@line:1.service" ] &&
	[ -L "$G/lakecrypt.target.requires/lakecrypt@line:1.service" ] && ! grep -rq 'bad\$1' "$G"/*.service
tap $? "a bad line's name that is no unit name: lakecrypt@line:1.service, linked into lakecrypt.target"

# The second hostile review of issue 11 (review 11b): glob characters,
# long device unit names, one device twice, the stop timeout; install's
# directory variables, uninstall of the Debian package's files.
. tests/system/generator-review11b.sh
. tests/system/install-review11b.sh

# ------------------------------------------------------------ the QEMU harness
# tools/qemu/run.sh boots once more only when the guest kernel died in its
# own boot, before dm-lakecrypt was loaded and before the entry printed a
# line (QEMU TCG's stale int3 of live code patching); never after.  A fake
# qemu-system-x86_64 plays boot N from $fq/bootN (or $fq/boot).
fq=$work/fakeqemu
mkdir -p "$fq"
cat >"$fq/qemu-system-x86_64" <<'FAKE'
#!/bin/bash
n=$(( $(cat "$FAKE_QEMU_DIR/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$FAKE_QEMU_DIR/count"
cat "$FAKE_QEMU_DIR/boot$n" 2>/dev/null || cat "$FAKE_QEMU_DIR/boot"
FAKE
chmod +x "$fq/qemu-system-x86_64"
oops='[    7.581293] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI
[    7.582270] RIP: 0010:sched_clock_tick+0x5/0xb0
[    7.591570] Kernel panic - not syncing: Fatal exception in interrupt'
# harness CASE BOOT1 [BOOT]: run run.sh against the fake; sets hrc, boots
harness() {
	rm -f "$fq/count" "$fq/boot1" "$fq/boot" "$fq/log" "$fq/log.boot1"
	printf '%s\n' "$2" >"$fq/boot1"
	printf '%s\n' "${3:-LC: ok 1 - fake
LC-EXIT: 0}" >"$fq/boot"
	FAKE_QEMU_DIR=$fq PATH=$fq:$PATH tools/qemu/run.sh --line 6.12 --no-module --entry e2e/providers.sh \
		--log "$fq/log" >"$log" 2>&1
	hrc=$? boots=$(cat "$fq/count" 2>/dev/null || echo 0)
}
harness died-in-boot "$oops"
[ "$hrc" -eq 0 ] && [ "$boots" -eq 2 ] && [ -s "$fq/log.boot1" ] &&
	grep -q 'died in its own boot.*Oops: int3.*booting again, once' "$log"
tap $? "run.sh: a guest that died in its own boot is booted once more, saying so (exit $hrc, $boots boots)"
harness died-twice "$oops" "$oops"
[ "$hrc" -ne 0 ] && [ "$boots" -eq 2 ]
tap $? "run.sh: it dies again: no third boot, the run fails (exit $hrc, $boots boots)"
harness died-in-entry "LC: ok 1 - fake
$oops"
[ "$hrc" -eq 3 ] && [ "$boots" -eq 1 ] && grep -q 'LC-KERNEL-PROBLEM: .*Oops: int3' "$log"
tap $? "run.sh: an oops after the entry printed is a kernel problem, never booted again (exit $hrc, $boots boots)"
harness died-after-insmod "[    8.397169] dm_lakecrypt: loading out-of-tree module taints kernel.
$oops"
[ "$hrc" -eq 3 ] && [ "$boots" -eq 1 ]
tap $? "run.sh: an oops after dm-lakecrypt was loaded is a kernel problem, never booted again (exit $hrc, $boots boots)"

echo "$pass passed, $fail failed, 0 skipped"
[ "$fail" -eq 0 ]
