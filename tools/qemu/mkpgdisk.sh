#!/bin/bash
# The PostgreSQL disk of the QEMU test machine: an ext4 image holding the
# host's PostgreSQL 15 (Debian's postgresql-15 and postgresql-client-15),
# the shared libraries its programs need (found with ldd) and the time zone
# data, attached read-only as a virtio disk (tools/qemu/pg-qemu-args).
#
#   mkpgdisk.sh        build build/pgdisk/pg.img if its inputs changed;
#                      print its path
#
# Image layout (the guest mounts it at /pg, see tests/e2e/pg-lib.sh):
#   /usr/lib/postgresql/15/{bin,lib}   Debian's layout, so the programs
#   /usr/share/postgresql/15           find their share and lib directories
#                                      relative to bin (no JIT bitcode)
#   /usr/share/zoneinfo                Debian builds with system tzdata
#   /lib/                              every library of bin/* and lib/*.so
#                                      (LD_LIBRARY_PATH=/pg/lib)
# The image is rebuilt when this script, a package version or a file's
# modification time changes (cache key in build/pgdisk/pg.key).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
die() { echo "mkpgdisk: $*" >&2; exit 1; }

PG=/usr/lib/postgresql/15
SHARE=/usr/share/postgresql/15
[ -x "$PG/bin/postgres" ] && [ -x "$PG/bin/pgbench" ] && [ -x "$PG/bin/pg_amcheck" ] ||
	die "PostgreSQL 15 is not installed (make setup installs postgresql-15)"
out=$top/build/pgdisk
mkdir -p "$out"
exec 7>"$out/.lock"
flock 7	# parallel runs build once

key=$( { sha256sum "$0"
	dpkg-query -W -f='${Package} ${Version}\n' postgresql-15 postgresql-client-15 libpq5 tzdata 2>/dev/null
	find "$PG" "$SHARE" /usr/share/zoneinfo -path "$PG/lib/bitcode" -prune -o -printf '%p %T@ %s\n' | LC_ALL=C sort
      } | sha256sum | cut -c1-16)
if [ "$(cat "$out/pg.key" 2>/dev/null)" = "$key" ] && [ -f "$out/pg.img" ]; then
	echo "$out/pg.img"
	exit 0
fi
echo "mkpgdisk: building $out/pg.img" >&2
stage=$(mktemp -d "$out/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage$PG" "$stage/usr/share/postgresql" "$stage/usr/share" "$stage/lib"
cp -a "$PG/bin" "$stage$PG/"
mkdir -p "$stage$PG/lib"
# Every module but the JIT (llvmjit needs LLVM; jit is off in the guest).
find "$PG/lib" -maxdepth 1 -name '*.so' ! -name 'llvmjit*' -exec cp -L {} "$stage$PG/lib/" \;
cp -aL "$SHARE" "$stage/usr/share/postgresql/"
cp -aL /usr/share/zoneinfo "$stage/usr/share/"
for f in "$stage$PG"/bin/* "$stage$PG"/lib/*.so; do
	ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}'
done | sort -u | while read -r lib; do
	cp -L "$lib" "$stage/lib/"
done
[ -f "$stage/lib/libpq.so.5" ] || die "no libpq among the libraries of $PG/bin"
mb=$(du -sm "$stage" | cut -f1)
rm -f "$out/pg.img.tmp"
# Room for the files plus a fifth; mke2fs copies the tree (-d), owned by root.
mke2fs -q -t ext4 -L lc-pg -E root_owner=0:0 -d "$stage" "$out/pg.img.tmp" "$((mb + mb / 5 + 16))M" >&2 ||
	die "mke2fs -d failed"
mv "$out/pg.img.tmp" "$out/pg.img"
echo "$key" >"$out/pg.key"
echo "$out/pg.img"
