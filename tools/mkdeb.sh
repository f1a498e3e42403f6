#!/bin/bash
# make deb: Debian packages lakecrypt and lakecrypt-dkms with
# dpkg-buildpackage (debhelper, dh-dkms), from the committed tree (git
# archive HEAD) plus debian/ generated from tools/debian/, then lintian.
# Output in build/deb/.  The top-level layout stays as it is: debian/
# exists only in the build copy.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
ver=$(awk '/LAKECRYPT_VERSION_(MAJOR|MINOR|PATCH)/ { v = v (v ? "." : "") $3 } END { print v }' \
	"$top/include/uapi/linux/dm-lakecrypt.h")
out=$top/build/deb
src=$out/lakecrypt-$ver
rm -rf "$out"
mkdir -p "$src"
git -C "$top" archive --format=tar HEAD | tar -x -C "$src"
mkdir -p "$src/debian/source"
cp "$top"/tools/debian/{control,rules,copyright,lakecrypt.install,lakecrypt-dkms.install,lakecrypt.postinst} "$src/debian/"
# Both packages' prerm refuse a removal under open volumes (mkprerm.sh).
for p in lakecrypt lakecrypt-dkms; do
	"$top/tools/debian/mkprerm.sh" "$p" >"$src/debian/$p.prerm"
done
chmod 755 "$src/debian/rules"
echo "3.0 (native)" >"$src/debian/source/format"
# The DKMS configuration, as tools/install.sh lays the source out.
sed "s/@VERSION@/$ver/" "$top/kernel/dkms.conf" >"$src/debian/lakecrypt-dkms.dkms"
date=$(git -C "$top" log -1 --format=%cD)
cat >"$src/debian/changelog" <<CL
lakecrypt ($ver) unstable; urgency=medium

  * Build of $(git -C "$top" rev-parse --short HEAD).

 -- lakecrypt developers <lakecrypt-devel@lists.lakecrypt.org>  $date
CL
(cd "$src" && dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1 ||
	{ tail -n 40 "$out/build.log" >&2; echo "mkdeb: dpkg-buildpackage failed (log $out/build.log)" >&2; exit 1; }
ls "$out"/*.deb
lintian --info --suppress-tags-from-file "$top/tools/debian/lintian-explained" \
	"$out"/lakecrypt_"$ver"_*.changes >"$out/lintian.log" 2>&1 || true
cat "$out/lintian.log"
