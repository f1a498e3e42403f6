#!/bin/bash
# Install, uninstall or list the files of lakecrypt (called by `make
# install`, `make uninstall`, `make install-list`).  One table below
# drives all three, so uninstall removes exactly what install put there.
#
#   install.sh install|uninstall|list|check   (check: the paths only)
#
# Environment (the Makefile passes them): DESTDIR PREFIX SBINDIR LIBEXECDIR
# UDEVRULESDIR UNITDIR GENERATORDIR MANDIR DOCDIR SYSCONFDIR, DIST (the
# generated files, `make dist-files`), BIN (agent, CLI and probe builds),
# MODULE (kbuild | dkms | none), KVER (kbuild), KO (the built module),
# FORCE (1: uninstall even while lakecrypt volumes are open).
#
# install records the directories it made (they did not exist before) in
# LIBEXECDIR/installed-dirs, and what it installed in LIBEXECDIR/manifest
# ("file PATH", "module kbuild KVER", "module dkms VERSION" lines, added to
# by each install); uninstall removes what the manifest names (whatever
# MODULE and KVER it is given: a kernel update changes KVER), the
# directories once empty, and never a directory that was there before.
# Without a manifest (an install older than it) uninstall removes the
# table's files for the variables given, and fails when none of them is
# there (a PREFIX other than the install's).  MODULE=dkms without DESTDIR
# registers the source with DKMS (an earlier registration of the same
# version replaced) and builds it for KVER when its headers are there
# (/lib/modules/KVER/build); otherwise DKMS builds it when they arrive.  Without DESTDIR, uninstall first
# refuses while lakecrypt volumes are open (dmsetup ls --target lakecrypt:
# their CLI, agent and module would go) unless FORCE=1, then, when systemd
# runs and its lakecrypt-agent.service is the unit being removed, stops
# and disables the agent (systemctl disable --now).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
action=${1:?usage: install.sh install|uninstall|list|check}
: "${DESTDIR:=}" "${MODULE:=none}" "${KVER:=}" "${KO:=}" "${FORCE:=}"
ver=$(awk '/LAKECRYPT_VERSION_(MAJOR|MINOR|PATCH)/ { v = v (v ? "." : "") $3 } END { print v }' \
	"$top/include/uapi/linux/dm-lakecrypt.h")

# One line per file: mode, destination, source, separated by tabs (so
# that paths may hold spaces; the check below refuses tabs and newlines).
row() { printf '%s\t%s\t%s\n' "$@"; }
table() {
	row 0755 "$SBINDIR/lakecrypt-agent" "$BIN/lakecrypt-agent"
	row 0755 "$SBINDIR/lakecryptctl" "$BIN/lakecryptctl"
	row 0755 "$LIBEXECDIR/lakecrypt-probe" "$BIN/lakecrypt-probe"
	row 0644 "$UDEVRULESDIR/61-lakecrypt.rules" "$DIST/61-lakecrypt.rules"
	row 0644 "$UNITDIR/lakecrypt-agent.service" "$DIST/lakecrypt-agent.service"
	row 0644 "$UNITDIR/lakecrypt.target" "$DIST/lakecrypt.target"
	row 0755 "$GENERATORDIR/lakecrypt-generator" "$DIST/lakecrypt-generator"
	row 0644 "$MANDIR/man8/lakecrypt-agent.8" "$DIST/man/lakecrypt-agent.8"
	row 0644 "$MANDIR/man8/lakecryptctl.8" "$DIST/man/lakecryptctl.8"
	row 0644 "$MANDIR/man5/lakecrypttab.5" "$DIST/man/lakecrypttab.5"
	for d in agent-protocol.md key-hierarchy.md lakecryptctl.md on-disk-format.md udev.md \
		 kms-providers.md fleet-revocation.md etcd.md admin-guide/dm-lakecrypt.rst; do
		row 0644 "$DOCDIR/$(basename "$d")" "$top/Documentation/$d"
	done
	row 0644 "$DOCDIR/examples/agent.conf" "$top/tools/systemd/agent.conf.example"
	row 0644 "$DOCDIR/examples/lakecrypttab" "$top/tools/systemd/lakecrypttab.example"
	row 0644 "$DOCDIR/examples/hook-signal.conf" "$top/tools/systemd/hook-signal.conf"
	case $MODULE in
	kbuild)
		row 0644 "/lib/modules/$KVER/updates/dm-lakecrypt.ko" "$KO" ;;
	dkms)
		row 0644 "/usr/src/lakecrypt-$ver/dkms.conf" "$DIST/dkms.conf"
		(cd "$top" && find kernel include -type f \( -name '*.c' -o -name '*.h' -o -name Kbuild \
			-o -name Makefile \) | LC_ALL=C sort) | while read -r f; do
			row 0644 "/usr/src/lakecrypt-$ver/$f" "$top/$f"
		done ;;
	none) ;;
	*) echo "install.sh: MODULE=$MODULE: expected kbuild, dkms or none" >&2; exit 2 ;;
	esac
}

# Paths may hold spaces (the rules, units and generator quote them), not
# the characters udev, systemd and shell quoting cannot carry.  Every
# directory variable, and DESTDIR when given, is an absolute plain path
# (review 11b, finding 2): no "//", no "." or ".." component, no '/' at
# the end (lakecrypttab's plain-path rule, agent/lib/crypttab.h): a ".."
# in PREFIX would put files outside DESTDIR (and uninstall would remove
# files there), a relative SBINDIR would be written into the units as
# ExecStart=sbin/lakecrypt-agent.  Checked before anything is written
# (make dist-files runs `install.sh check` first).
for v in DESTDIR PREFIX SBINDIR LIBEXECDIR UDEVRULESDIR UNITDIR GENERATORDIR MANDIR DOCDIR \
	 SYSCONFDIR DIST BIN; do
	case $v in
	DESTDIR | DIST | BIN) ;;
	*) [ -n "${!v-}" ] || { echo "install.sh: $v is empty: a directory is needed" >&2; exit 2; } ;;
	esac
	case ${!v-} in
	*[!A-Za-z0-9\ /._+:,@=~-]*)
		echo "install.sh: $v=\"${!v}\": only letters, digits, spaces and /._+:,@=~- are allowed in paths" >&2
		exit 2 ;;
	esac
	case $v in DIST | BIN) continue ;; esac
	[ "$v" = DESTDIR ] && [ -z "$DESTDIR" ] && continue
	case ${!v} in
	/*) ;;
	*) echo "install.sh: $v=\"${!v}\": an absolute path is needed (starting with '/')" >&2; exit 2 ;;
	esac
	case ${!v} in
	*//* | */./* | */. | */../* | */.. | ?*/)
		echo "install.sh: $v=\"${!v}\": not a plain path: no \"//\", no \".\" or \"..\" component, no '/' at the end" >&2
		exit 2 ;;
	esac
done

record=$LIBEXECDIR/installed-dirs
manifest=$LIBEXECDIR/manifest

# The directories installing the table's files will make (each missing
# parent up to an existing one), one per line.
new_dirs() {
	local dst d
	{ table | cut -f2; echo "$record"; echo "$manifest"; } | while IFS= read -r dst; do
		d=$(dirname "$dst")
		while [ "$d" != / ] && [ "$d" != . ] && [ ! -d "$DESTDIR$d" ]; do
			echo "$d"
			d=$(dirname "$d")
		done
	done | LC_ALL=C sort -u
}

# Whether @1 is where lakecrypt installs a file: a lakecrypt file in the
# directories of the variables given (none of them empty: refused above),
# the kernel module, or DKMS sources.
installable() {
	case $1 in
	"$SBINDIR"/lakecrypt* | "$LIBEXECDIR"/* | "$UDEVRULESDIR"/*lakecrypt* | \
	"$UNITDIR"/lakecrypt* | "$GENERATORDIR"/lakecrypt* | "$MANDIR"/man[0-9]/lakecrypt* | \
	"$DOCDIR"/* | /lib/modules/*/updates/dm-lakecrypt.ko | /usr/src/lakecrypt-[0-9]*/*) return 0 ;;
	esac
	return 1
}

# Whether @1 (a path of uninstall's records) is a file of this user's
# alone: not trusted otherwise (a PREFIX another user owns).
own_file() {
	local u m
	read -r u m < <(stat -c '%u %a' -- "$1")
	[ "$u" = "$(id -u)" ] && [ $((0$m & 022)) -eq 0 ] ||
		die "$1: owned by uid $u with mode $m, not this user's alone: not trusted; nothing removed"
}

# lakecrypt_open_volumes (the lakecrypt volumes open on this system, or
# why that cannot be told): one function for make uninstall and the
# Debian packages' prerm (tools/debian/mkprerm.sh).
# shellcheck source=tools/open-volumes.sh
. "$top/tools/open-volumes.sh"

# systemd is the running init (not: no systemctl, a container or chroot
# without it, where is-system-running says offline).
systemd_running() {
	local state
	command -v systemctl >/dev/null || return 1
	state=$(systemctl is-system-running 2>/dev/null) || true
	case $state in ''|offline|unknown) return 1 ;; esac
}

# On the running system (no DESTDIR): udevd and systemd reread their rules
# and units, where they are installed (a failure, e.g. no systemd running
# in a container, is not an error of the installation).
reload() {
	if command -v udevadm >/dev/null; then udevadm control --reload 2>/dev/null || true; fi
	if command -v systemctl >/dev/null; then systemctl daemon-reload 2>/dev/null || true; fi
}

die() { echo "install.sh: $*" >&2; exit 1; }

# Says which of UDEVRULESDIR, UNITDIR, GENERATORDIR udev or systemd do
# not read (udev(7), systemd.unit(5), systemd.generator(7): /etc, /run,
# /usr/local/lib, /usr/lib, /lib, and pkg-config's udevdir and
# systemdsystem*dir), and where they went when PREFIX is not searched
# (the Makefile took them from pkg-config).
search_dirs_warn() {
	local v d ok pc
	case $PREFIX in
	/usr | /usr/local) ;;
	*) case $UDEVRULESDIR in "$PREFIX"/*) ;; *)
		echo "install.sh: note: udev and systemd read nothing under PREFIX=$PREFIX (not read by them): the rules, units and generator go to $UDEVRULESDIR, $UNITDIR, $GENERATORDIR (pkg-config)" ;;
	   esac ;;
	esac
	for v in UDEVRULESDIR:udev/rules.d:udev:udevdir:/rules.d \
		 UNITDIR:systemd/system:systemd:systemdsystemunitdir: \
		 GENERATORDIR:systemd/system-generators:systemd:systemdsystemgeneratordir:; do
		IFS=: read -r var sub pkg pcvar pcsub <<<"$v"
		d=${!var%/}
		pc=$(${PKG_CONFIG:-pkg-config} --variable="$pcvar" "$pkg" 2>/dev/null || true)
		ok=0
		case $d in
		"/etc/$sub" | "/run/$sub" | "/usr/local/lib/$sub" | "/usr/lib/$sub" | "/lib/$sub") ok=1 ;;
		esac
		[ -z "$pc" ] || [ "$d" != "$pc$pcsub" ] || ok=1
		[ $ok = 1 ] || echo "install.sh: warning: $var=$d is not read by ${pkg}: its files there do nothing (set $var=/usr/lib/$sub, or PREFIX=/usr or /usr/local)" >&2
	done
}

# DKMS knows lakecrypt VERSION (added, built or installed for some kernel).
dkms_has() {
	local out
	out=$(dkms status -m lakecrypt -v "$1" 2>&1) || die "dkms status -m lakecrypt -v $1 failed: $out"
	[ -n "$out" ]
}

# Registers /usr/src/lakecrypt-$ver with DKMS, replacing an earlier
# registration of the same version (its source may be older: a git pull
# keeps the version), and builds and installs it for $KVER when that
# kernel's headers are there; DKMS builds it when they arrive otherwise.
dkms_register() {
	if dkms_has "$ver"; then
		dkms remove -m lakecrypt -v "$ver" --all ||
			die "dkms remove -m lakecrypt -v $ver --all failed (the earlier registration stays)"
	fi
	dkms add -m lakecrypt -v "$ver" || die "dkms add -m lakecrypt -v $ver failed"
	if [ -e "/lib/modules/$KVER/build" ]; then
		dkms install -m lakecrypt -v "$ver" -k "$KVER" ||
			die "dkms install -m lakecrypt -v $ver -k $KVER failed (registered: dkms status; the build log is named above)"
	else
		echo "install.sh: lakecrypt $ver registered with DKMS; no headers for $KVER (/lib/modules/$KVER/build), so DKMS builds the module when headers arrive (Debian: apt-get install linux-headers-$KVER)"
	fi
}

case $action in
check) ;;	# the paths only (make dist-files)
list)
	{ table | cut -f2; echo "$record"; echo "$manifest"; } | LC_ALL=C sort ;;
install)
	# Recorded first, so that a failed install's directories are known too;
	# added to the record of an earlier install.
	created=$(new_dirs)
	tmp=$(mktemp)
	trap 'rm -f "$tmp"' EXIT
	{ if [ -f "$DESTDIR$record" ]; then cat "$DESTDIR$record"; fi; printf '%s\n' "$created"; } |
		awk 'NF' | LC_ALL=C sort -u >"$tmp"
	install -D -m 0644 "$tmp" "$DESTDIR$record"
	# The manifest, also first (a failed install is uninstalled too).
	{ if [ -f "$DESTDIR$manifest" ]; then cat "$DESTDIR$manifest"; fi
	  table | cut -f2 | sed 's/^/file /'
	  echo "file $record"; echo "file $manifest"
	  case $MODULE in kbuild) echo "module kbuild $KVER" ;; dkms) echo "module dkms $ver" ;; esac
	} | awk 'NF' | LC_ALL=C sort -u >"$tmp"
	install -D -m 0644 "$tmp" "$DESTDIR$manifest"
	search_dirs_warn
	table | while IFS=$'\t' read -r mode dst src; do
		[ -f "$src" ] || { echo "install.sh: $src is missing (run make first)" >&2; exit 1; }
		install -D -m "$mode" "$src" "$DESTDIR$dst"
	done
	if [ -z "$DESTDIR" ]; then
		case $MODULE in
		kbuild) depmod -a "$KVER" ;;
		dkms) dkms_register ;;
		esac
		reload
		# Disks already there get their by-lakecrypt and by-uuid links
		# now, not at their next change event.
		if command -v udevadm >/dev/null; then
			udevadm trigger --subsystem-match=block --action=change 2>/dev/null || true
		fi
	fi ;;
uninstall)
	# The Debian package's files are dpkg's (review 11b, finding 3): its
	# rules drop make's manifest and ship this marker instead.
	if [ -e "$DESTDIR$LIBEXECDIR/installed-by-dpkg" ]; then
		die "lakecrypt under PREFIX=$PREFIX${DESTDIR:+ in DESTDIR=$DESTDIR} was installed by the Debian package ($DESTDIR$LIBEXECDIR/installed-by-dpkg): use apt-get remove lakecrypt; nothing removed"
	fi
	# What to remove: the manifest's files and modules, or (an install
	# without one) the table's for the variables given.
	if [ -f "$DESTDIR$manifest" ]; then
		# Only a manifest of this user's, not writable by others, and
		# only paths where lakecrypt installs (a hostile manifest
		# under a PREFIX another user owns names nothing else).
		own_file "$DESTDIR$manifest"
		files=$(sed -n 's|^file \(/.*\)$|\1|p' "$DESTDIR$manifest" |
			while IFS= read -r f; do
				case $f in
				*//* | */./* | */. | */../* | */..)
					echo "install.sh: $DESTDIR$manifest names $f, not a plain path: not removed" >&2 ;;
				*)
					if installable "$f"; then echo "$f"
					else echo "install.sh: $DESTDIR$manifest names $f, where lakecrypt installs nothing: not removed" >&2; fi ;;
				esac
			done)
		kbuild_kvers=$(awk '$1 == "module" && $2 == "kbuild" && $3 ~ /^[A-Za-z0-9._+~-]+$/ { print $3 }' "$DESTDIR$manifest")
		dkms_vers=$(awk '$1 == "module" && $2 == "dkms" && $3 ~ /^[0-9.]+$/ { print $3 }' "$DESTDIR$manifest")
	else
		files=$(table | cut -f2; echo "$record")
		kbuild_kvers= dkms_vers=
		case $MODULE in kbuild) kbuild_kvers=$KVER ;; dkms) dkms_vers=$ver ;; esac
		# (the module's files do not depend on PREFIX: not counted)
		there=$(MODULE=none table | cut -f2 | while IFS= read -r f; do
			if [ -e "$DESTDIR$f" ]; then echo "$f"; fi; done)
		[ -n "$there" ] ||
			die "nothing of lakecrypt is installed under PREFIX=$PREFIX${DESTDIR:+ in DESTDIR=$DESTDIR} (no $DESTDIR$manifest, none of its files); pass the PREFIX/MODULE/KVER used for make install"
	fi
	if [ -z "$DESTDIR" ]; then
		if [ "$FORCE" != 1 ] && why=$(lakecrypt_open_volumes); then
			echo "install.sh: $why; close them first (lakecryptctl close NAME), or make uninstall FORCE=1 to remove lakecrypt anyway; nothing removed" >&2
			exit 1
		fi
		unit=$UNITDIR/lakecrypt-agent.service
		if [ -e "$unit" ] && systemd_running; then
			frag=$(systemctl show --property=FragmentPath --value lakecrypt-agent.service 2>/dev/null) || frag=
			if [ -n "$frag" ] && [ "$frag" -ef "$unit" ]; then
				systemctl disable --now lakecrypt-agent.service ||
					{ echo "install.sh: systemctl disable --now lakecrypt-agent failed; nothing removed" >&2; exit 1; }
			fi
		fi
	fi
	made=
	if [ -f "$DESTDIR$record" ]; then
		own_file "$DESTDIR$record"
		# only directories above what lakecrypt installs
		made=$(awk '/^\// && !/(^|\/)\.\.(\/|$)/' "$DESTDIR$record" | while IFS= read -r d; do
			case $d in
			/usr | /usr/src | /usr/src/lakecrypt-[0-9]* | /lib | /lib/modules | /lib/modules/*)
				echo "$d"; continue ;;
			esac
			if printf '%s\n' "$SBINDIR" "$LIBEXECDIR" "$UDEVRULESDIR" "$UNITDIR" "$GENERATORDIR" \
				"$MANDIR/man5" "$MANDIR/man8" "$DOCDIR/examples" |
				awk -v d="$d" 'index($0 "/", d "/") == 1 { f = 1 } END { exit !f }'; then echo "$d"; fi
		done)
	fi
	rm -f "$DESTDIR$record"
	if [ -z "$DESTDIR" ]; then
		for v in $dkms_vers; do
			if dkms_has "$v"; then
				dkms remove -m lakecrypt -v "$v" --all || die "dkms remove -m lakecrypt -v $v --all failed; nothing else removed"
			fi
		done
	fi
	rm -f "$DESTDIR$manifest"
	printf '%s\n' "$files" | while IFS= read -r f; do
		if [ -n "$f" ]; then rm -f "$DESTDIR$f"; fi
	done
	# Directories only lakecrypt uses, if now empty.
	for d in "$LIBEXECDIR" "$DOCDIR/examples" "$DOCDIR"; do
		rmdir "$DESTDIR$d" 2>/dev/null || true
	done
	for v in $dkms_vers; do
		for d in kernel include/uapi/linux include/uapi include/lakecrypt include ""; do
			rmdir "$DESTDIR/usr/src/lakecrypt-$v/$d" 2>/dev/null || true
		done
	done
	# The directories install made, once empty, deepest first.
	printf '%s\n' "$made" | awk 'NF' | LC_ALL=C sort -r | while IFS= read -r d; do
		rmdir "$DESTDIR$d" 2>/dev/null || true
	done
	if [ -z "$DESTDIR" ]; then
		for k in $kbuild_kvers; do
			if [ -d "/lib/modules/$k" ]; then depmod -a "$k"; fi
		done
		reload	# so that the removed rules and units do not linger
	fi ;;
*)
	echo "usage: install.sh install|uninstall|list|check" >&2; exit 2 ;;
esac
