#!/bin/bash
# Install, uninstall or list the files of lakecrypt (called by `make
# install`, `make uninstall`, `make install-list`).  One table below
# drives all three, so uninstall removes exactly what install put there.
#
#   install.sh install|uninstall|list
#
# Environment (the Makefile passes them): DESTDIR PREFIX SBINDIR LIBEXECDIR
# UDEVRULESDIR UNITDIR GENERATORDIR MANDIR DOCDIR SYSCONFDIR, DIST (the
# generated files, `make dist-files`), BIN (agent, CLI and probe builds),
# MODULE (kbuild | dkms | none), KVER (kbuild), KO (the built module).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
action=${1:?usage: install.sh install|uninstall|list}
: "${DESTDIR:=}" "${MODULE:=none}" "${KVER:=}" "${KO:=}"
ver=$(awk '/LAKECRYPT_VERSION_(MAJOR|MINOR|PATCH)/ { v = v (v ? "." : "") $3 } END { print v }' \
	"$top/include/uapi/linux/dm-lakecrypt.h")

# mode destination source
table() {
	echo "0755 $SBINDIR/lakecrypt-agent $BIN/lakecrypt-agent"
	echo "0755 $SBINDIR/lakecryptctl $BIN/lakecryptctl"
	echo "0755 $LIBEXECDIR/lakecrypt-probe $BIN/lakecrypt-probe"
	echo "0644 $UDEVRULESDIR/61-lakecrypt.rules $DIST/61-lakecrypt.rules"
	echo "0644 $UNITDIR/lakecrypt-agent.service $DIST/lakecrypt-agent.service"
	echo "0644 $UNITDIR/lakecrypt.target $DIST/lakecrypt.target"
	echo "0755 $GENERATORDIR/lakecrypt-generator $DIST/lakecrypt-generator"
	echo "0644 $MANDIR/man8/lakecrypt-agent.8 $DIST/man/lakecrypt-agent.8"
	echo "0644 $MANDIR/man8/lakecryptctl.8 $DIST/man/lakecryptctl.8"
	echo "0644 $MANDIR/man5/lakecrypttab.5 $DIST/man/lakecrypttab.5"
	for d in agent-protocol.md key-hierarchy.md lakecryptctl.md on-disk-format.md udev.md \
		 kms-providers.md fleet-revocation.md admin-guide/dm-lakecrypt.rst; do
		echo "0644 $DOCDIR/$(basename "$d") $top/Documentation/$d"
	done
	echo "0644 $DOCDIR/examples/agent.conf $top/tools/systemd/agent.conf.example"
	echo "0644 $DOCDIR/examples/lakecrypttab $top/tools/systemd/lakecrypttab.example"
	echo "0644 $DOCDIR/examples/hook-signal.conf $top/tools/systemd/hook-signal.conf"
	case $MODULE in
	kbuild)
		echo "0644 /lib/modules/$KVER/updates/dm-lakecrypt.ko $KO" ;;
	dkms)
		echo "0644 /usr/src/lakecrypt-$ver/dkms.conf $DIST/dkms.conf"
		(cd "$top" && find kernel include -type f \( -name '*.c' -o -name '*.h' -o -name Kbuild \
			-o -name Makefile \) | LC_ALL=C sort) | while read -r f; do
			echo "0644 /usr/src/lakecrypt-$ver/$f $top/$f"
		done ;;
	none) ;;
	*) echo "install.sh: MODULE=$MODULE: expected kbuild, dkms or none" >&2; exit 2 ;;
	esac
}

case $action in
list)
	table | awk '{print $2}' | LC_ALL=C sort ;;
install)
	table | while read -r mode dst src; do
		[ -f "$src" ] || { echo "install.sh: $src is missing (run make first)" >&2; exit 1; }
		install -D -m "$mode" "$src" "$DESTDIR$dst"
	done
	if [ -z "$DESTDIR" ]; then
		case $MODULE in
		kbuild) depmod -a "$KVER" ;;
		dkms) dkms add -m lakecrypt -v "$ver" && dkms autoinstall ;;
		esac
		command -v udevadm >/dev/null && udevadm control --reload 2>/dev/null || true
		command -v systemctl >/dev/null && systemctl daemon-reload 2>/dev/null || true
	fi ;;
uninstall)
	if [ -z "$DESTDIR" ] && [ "$MODULE" = dkms ]; then
		dkms remove -m lakecrypt -v "$ver" --all 2>/dev/null || true
	fi
	table | while read -r mode dst src; do
		rm -f "$DESTDIR$dst"
	done
	# Directories only lakecrypt uses, if now empty.
	for d in "$LIBEXECDIR" "$DOCDIR/examples" "$DOCDIR" "/usr/src/lakecrypt-$ver/kernel" \
		 "/usr/src/lakecrypt-$ver/include/uapi/linux" "/usr/src/lakecrypt-$ver/include/uapi" \
		 "/usr/src/lakecrypt-$ver/include/lakecrypt" "/usr/src/lakecrypt-$ver/include" \
		 "/usr/src/lakecrypt-$ver"; do
		rmdir "$DESTDIR$d" 2>/dev/null || true
	done
	[ -n "$DESTDIR" ] || [ "$MODULE" != kbuild ] || depmod -a "$KVER" ;;
*)
	echo "usage: install.sh install|uninstall|list" >&2; exit 2 ;;
esac
