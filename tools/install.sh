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
# LIBEXECDIR/installed-dirs; uninstall removes those once empty, and never
# a directory that was there before.  Without DESTDIR, uninstall first
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
		 kms-providers.md fleet-revocation.md admin-guide/dm-lakecrypt.rst; do
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
# the characters udev, systemd and shell quoting cannot carry.
for v in DESTDIR PREFIX SBINDIR LIBEXECDIR UDEVRULESDIR UNITDIR GENERATORDIR MANDIR DOCDIR \
	 SYSCONFDIR DIST BIN; do
	case ${!v-} in
	*[!A-Za-z0-9\ /._+:,@=~-]*)
		echo "install.sh: $v=\"${!v}\": only letters, digits, spaces and /._+:,@=~- are allowed in paths" >&2
		exit 2 ;;
	esac
done

record=$LIBEXECDIR/installed-dirs

# The directories installing the table's files will make (each missing
# parent up to an existing one), one per line.
new_dirs() {
	local dst d
	{ table | cut -f2; echo "$record"; } | while IFS= read -r dst; do
		d=$(dirname "$dst")
		while [ "$d" != / ] && [ "$d" != . ] && [ ! -d "$DESTDIR$d" ]; do
			echo "$d"
			d=$(dirname "$d")
		done
	done | LC_ALL=C sort -u
}

# Prints the lakecrypt volumes open on this system, or why that cannot be
# told; fails when none are (or dmsetup is not there: no device-mapper).
open_volumes() {
	local out
	command -v dmsetup >/dev/null || return 1
	if ! out=$(dmsetup ls --target lakecrypt 2>&1); then
		echo "cannot tell whether lakecrypt volumes are open (dmsetup ls --target lakecrypt: $out)"
		return 0
	fi
	out=$(printf '%s\n' "$out" | awk 'NF && $0 != "No devices found" { printf "%s%s", s, $1; s = " " }')
	[ -n "$out" ] || return 1
	echo "lakecrypt volumes are open: $out"
}

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

case $action in
check) ;;	# the paths only (make dist-files)
list)
	{ table | cut -f2; echo "$record"; } | LC_ALL=C sort ;;
install)
	# Recorded first, so that a failed install's directories are known too;
	# added to the record of an earlier install.
	created=$(new_dirs)
	tmp=$(mktemp)
	trap 'rm -f "$tmp"' EXIT
	{ if [ -f "$DESTDIR$record" ]; then cat "$DESTDIR$record"; fi; printf '%s\n' "$created"; } |
		awk 'NF' | LC_ALL=C sort -u >"$tmp"
	install -D -m 0644 "$tmp" "$DESTDIR$record"
	table | while IFS=$'\t' read -r mode dst src; do
		[ -f "$src" ] || { echo "install.sh: $src is missing (run make first)" >&2; exit 1; }
		install -D -m "$mode" "$src" "$DESTDIR$dst"
	done
	if [ -z "$DESTDIR" ]; then
		case $MODULE in
		kbuild) depmod -a "$KVER" ;;
		dkms) dkms add -m lakecrypt -v "$ver" && dkms autoinstall ;;
		esac
		reload
	fi ;;
uninstall)
	if [ -z "$DESTDIR" ]; then
		if [ "$FORCE" != 1 ] && why=$(open_volumes); then
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
	if [ -f "$DESTDIR$record" ]; then made=$(awk '/^\// && !/(^|\/)\.\.(\/|$)/' "$DESTDIR$record"); fi
	rm -f "$DESTDIR$record"
	if [ -z "$DESTDIR" ] && [ "$MODULE" = dkms ]; then
		dkms remove -m lakecrypt -v "$ver" --all 2>/dev/null || true
	fi
	table | while IFS=$'\t' read -r mode dst src; do
		rm -f "$DESTDIR$dst"
	done
	# Directories only lakecrypt uses, if now empty.
	for d in "$LIBEXECDIR" "$DOCDIR/examples" "$DOCDIR" "/usr/src/lakecrypt-$ver/kernel" \
		 "/usr/src/lakecrypt-$ver/include/uapi/linux" "/usr/src/lakecrypt-$ver/include/uapi" \
		 "/usr/src/lakecrypt-$ver/include/lakecrypt" "/usr/src/lakecrypt-$ver/include" \
		 "/usr/src/lakecrypt-$ver"; do
		rmdir "$DESTDIR$d" 2>/dev/null || true
	done
	# The directories install made, once empty, deepest first.
	printf '%s\n' "$made" | awk 'NF' | LC_ALL=C sort -r | while IFS= read -r d; do
		rmdir "$DESTDIR$d" 2>/dev/null || true
	done
	if [ -z "$DESTDIR" ]; then
		[ "$MODULE" != kbuild ] || depmod -a "$KVER"
		reload	# so that the removed rules and units do not linger
	fi ;;
*)
	echo "usage: install.sh install|uninstall|list|check" >&2; exit 2 ;;
esac
