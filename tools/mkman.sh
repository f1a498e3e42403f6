#!/bin/bash
# Documentation/<name>.md (the "# name(S)" / "## Section" layout of
# lakecryptctl.md) to a man page, with go-md2man (Debian package
# go-md2man).  The Markdown stays the single source.
#   mkman.sh FILE.md SECTION > name.SECTION
set -euo pipefail
src=${1:?usage: mkman.sh FILE.md SECTION}
sec=${2:?usage: mkman.sh FILE.md SECTION}
top=$(cd "$(dirname "$0")/.." && pwd)
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
	# relative links to other documents become their names.
	# whatis(1) wants "name - description" in NAME.
	sed -e '1{/^# /d}' -e '/^## Name$/,/^## /s/ — / - /' -e 's/^## \(.*\)$/# \U\1/' -e 's/^### /## /' \
	    -e 's/\[\([^]]*\)\]([^)]*\.\(md\|rst\))/`\1`/g' "$src"
} | go-md2man
