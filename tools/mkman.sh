#!/bin/bash
# Documentation/<name>.md (the "# name(S)" / "## Section" layout of
# lakecryptctl.md) to a man page, with go-md2man (Debian package
# go-md2man).  The Markdown stays the single source.
#   mkman.sh FILE.md SECTION > name.SECTION
# Environment: DOCDIR (default /usr/share/doc/lakecrypt) and SYSCONFDIR
# (default /etc) of the install, written into the page where the Markdown
# names /usr/share/doc/lakecrypt and /etc/lakecrypt; a document named as
# a link or as Documentation/X becomes its installed name in DOCDIR.
set -euo pipefail
src=${1:?usage: mkman.sh FILE.md SECTION}
sec=${2:?usage: mkman.sh FILE.md SECTION}
top=$(cd "$(dirname "$0")/.." && pwd)
docdir=${DOCDIR:-/usr/share/doc/lakecrypt}
sysconfdir=${SYSCONFDIR:-/etc}
for v in "$docdir" "$sysconfdir"; do
	case $v in
	/*[!A-Za-z0-9\ /._+:,@=~-]*|[!/]*) echo "mkman.sh: \"$v\": an absolute path of letters, digits, spaces and /._+:,@=~- expected" >&2; exit 2 ;;
	esac
done
name=$(basename "$src" .md)
ver=$(awk '/LAKECRYPT_VERSION_(MAJOR|MINOR|PATCH)/ { v = v (v ? "." : "") $3 } END { print v }' \
	"$top/include/uapi/linux/dm-lakecrypt.h")
# The date of the last change of the page, for reproducible output.
date=$(git -C "$top" log -1 --format=%cd --date=format:'%B %Y' -- "$src" 2>/dev/null || true)
[ -n "$date" ] || date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" '+%B %Y')
case $sec in 5) manual="File Formats" ;; *) manual="System Administration" ;; esac
{
	printf '%% %s %s "%s" "lakecrypt %s" "%s"\n\n' "${name^^}" "$sec" "$date" "$ver" "$manual"
	# Drop the "# name(S)" title; "## X" become sections, "### X" subsections;
	# relative links to other documents, and Documentation/X, become the
	# names they are installed under in DOCDIR; the install's DOCDIR and
	# SYSCONFDIR are written in.  whatis(1) wants "name - description" in NAME.
	sed -e '1{/^# /d}' -e '/^## Name$/,/^## /s/ — / - /' -e 's/^## \(.*\)$/# \U\1/' -e 's/^### /## /' \
	    -e 's/\[[^]]*\](\([^)]*\/\)\{0,1\}\([^)/]*\.\(md\|rst\)\))/`\2`/g' \
	    -e 's|Documentation/\([a-z-]*/\)\{0,1\}\([a-z-]*\.\(md\|rst\)\)|\2|g' \
	    -e "s|/usr/share/doc/lakecrypt|$docdir|g" \
	    -e "s#\\(^\\|[^A-Za-z0-9_.-]\\)/etc/lakecrypt\\b#\\1$sysconfdir/lakecrypt#g" "$src"
} | go-md2man
