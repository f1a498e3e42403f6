#!/bin/bash
# Host-side checks of the kernel module's craft, as TAP:
#   W=1 build with -Werror, sparse (C=2) and a DKMS build for every kernel
#   line the tests boot; checkpatch.pl --strict on kernel/ and include/.
# Ends with "N passed, N failed, N skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
n=0 pass=0 fail=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

result() {	# result <rc> <description>
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		pass=$((pass + 1)); echo "ok $n - $2"
	else
		fail=$((fail + 1)); echo "not ok $n - $2"
		sed 's/^/# /' "$out" | head -n 40
	fi
}

# checkpatch.pl is not in the headers package: take it from linux-source.
cp_dir=$top/build/checkpatch
if [ ! -x "$cp_dir/scripts/checkpatch.pl" ]; then
	src=$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | sort -V | tail -n1)
	mkdir -p "$cp_dir"
	tar -xJf "$src" -C "$cp_dir" --strip-components=1 --wildcards \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
		'*/scripts/const_structs.checkpatch' >"$out" 2>&1
fi
perl "$cp_dir/scripts/checkpatch.pl" --strict --no-tree --terse --show-types -f \
	kernel/*.c kernel/*.h include/uapi/linux/*.h >"$out" 2>&1
grep -qE '(ERROR|WARNING|CHECK):' "$out"; [ $? -eq 1 ]
result $? "checkpatch.pl --strict: kernel/ and include/ are clean"

for line in 6.1 6.12; do
	kver=$(tools/qemu/kernels.sh kver "$line" 2>"$out")
	if [ -z "$kver" ]; then
		result 1 "$line: resolve the kernel release"
		continue
	fi
	tools/qemu/kernels.sh fetch "$line" >"$out" 2>&1 || true
	tools/build-module.sh "$kver" W=1 KCFLAGS=-Werror >"$out" 2>&1
	rc=$?
	grep -v 'Skipping BTF' "$out" | grep -qE 'warning|error' && rc=1
	result $rc "$kver: builds with W=1 and no warning"

	touch kernel/*.c
	tools/build-module.sh "$kver" C=2 >"$out" 2>&1
	rc=$?
	grep -v 'Skipping BTF' "$out" | grep -qE 'warning:|error:' && rc=1
	result $rc "$kver: sparse (C=2) reports nothing"

	tools/dkms-install.sh --build-only "$kver" >"$out" 2>&1
	result $? "$kver: dkms build"
done

echo "$pass passed, $fail failed, 0 skipped"
[ $fail -eq 0 ]
