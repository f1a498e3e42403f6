#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# run-all.sh - run the dm-lakecrypt selftests in the QEMU guest.
#
#   run-all.sh [PATTERN...]     (default: every t-*.sh, in order)
#
# PATTERNs select among t-*.sh and m-*.sh; m-*.sh (memory pressure) run
# only when selected, in the boot check.sh gives them (384 MiB, a virtio
# disk).  A case file may set its own timeout with a line
# "# lc-timeout: SECONDS".
#
# Each case file runs in its own shell under a timeout, then everything it
# may have left (dm devices, loops, brd, keys) is removed.  Ends with one
# line "LC: N passed, N failed, N skipped"; exit 0 only if none failed.
cd "$(dirname "$0")" || exit 1
LC_CASE=run-all
. ./lib.sh

LC_CASE_TIMEOUT=${LC_CASE_TIMEOUT:-420}
mkdir -p "$LC_TMP"
grep -q " $LC_TMP tmpfs" /proc/mounts || mount -t tmpfs -o size=90% lct "$LC_TMP"
LC_TALLY=$LC_TMP/tally
export LC_TALLY LC_TMP LC_ROOT LC_MODULE
: >"$LC_TALLY"
echo on >/proc/sys/kernel/printk_devkmsg 2>/dev/null

if [ $# -gt 0 ]; then
	cases=
	for p in "$@"; do
		for f in t-*.sh m-*.sh; do
			[ -f "$f" ] || continue
			case $f in *"$p"*) cases="$cases $f" ;; esac
		done
	done
else
	cases=$(ls t-*.sh)
fi

lc_say "# dm-lakecrypt selftests on $(uname -r), $(nproc) CPUs, $(lc_meminfo MemTotal) kB"
t_all=$(date +%s)
for t in $cases; do
	name=$(basename "$t" .sh)
	lc_say "# ---- $name"
	fails0=$(grep -c '^fail' "$LC_TALLY")
	all0=$(wc -l <"$LC_TALLY")
	t0=$(date +%s)
	tmo=$(sed -n 's/^# lc-timeout: *\([0-9][0-9]*\)$/\1/p' "$t")
	LC_CASE=$name timeout "${tmo:-$LC_CASE_TIMEOUT}" sh "./$t"
	rc=$?
	t1=$(date +%s)
	fails1=$(grep -c '^fail' "$LC_TALLY")
	all1=$(wc -l <"$LC_TALLY")
	if [ "$rc" -ne 0 ] && [ "$fails1" -eq "$fails0" ]; then
		LC_CASE=$name
		if [ "$rc" -eq 143 ] || [ "$rc" -eq 137 ]; then
			lc_notok "finished within ${tmo:-$LC_CASE_TIMEOUT}s (killed by timeout)"
		else
			lc_notok "case file exited with status $rc"
		fi
	elif [ "$rc" -eq 0 ] && [ "$all1" -eq "$all0" ]; then
		LC_CASE=$name
		lc_notok "case file reported no result"
	fi
	LC_CASE=run-all LC_WORK='' lc_cleanup
	lc_say "# $name: $((t1 - t0)) s"
done

passed=$(grep -c '^pass' "$LC_TALLY")
failed=$(grep -c '^fail' "$LC_TALLY")
skipped=$(grep -c '^skip' "$LC_TALLY")
lc_say "# total guest time $(($(date +%s) - t_all)) s"
lc_say "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
