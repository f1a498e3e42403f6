#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# ExecStop of lakecrypt-test-shutdown.service (written by
# shutdown-prepare.sh), in the orderly shutdown of the first systemd boot.
# The unit is ordered Before=lakecrypt-agent.service, which the generated
# lakecrypt@ units are After=: systemd stops every lakecrypt@ unit, then
# the agent, then this.  A dm device outlives the agent (a restart adopts
# it), so a lakecrypt device still in the table here is one that no unit
# closed; systemd-shutdown would remove it later without the agent (no
# close, no audit), which is what this catches.
#   shutdown-check.sh STATE_DISK
# Then saves the state the second boot needs (boot2-guest.sh) as a tar
# archive on STATE_DISK (tools/qemu/mkinitramfs.sh unpacks it before
# systemd starts), prints the summary of the whole boot and LC-EXIT.
cd /lakecrypt/udev || exit 1
LC_CASE=shutdown
. /lakecrypt/tests/lib.sh
unset DM_DISABLE_UDEV
stdisk=$1

lc_eq "the system is shutting down (orderly, not poweroff -f)" stopping "$(systemctl is-system-running 2>/dev/null)"
for u in lakecrypt@atboot.service lakecrypt@wal.service lakecrypt-agent.service; do
	as=$(systemctl show -p ActiveState --value "$u")
	r=$(systemctl show -p Result --value "$u")
	[ "$as" = inactive ] && [ "$r" = success ]
	lc_result $? "$u stopped cleanly before this check (ActiveState=$as, Result=$r)"
done
dmsetup ls --target lakecrypt >"$LC_TMP/dmls.txt" 2>&1
grep -q '^No devices found' "$LC_TMP/dmls.txt"
lc_result $? "dmsetup ls --target lakecrypt: no lakecrypt volume left open once the units stopped" ||
	lc_diag_file "$LC_TMP/dmls.txt"
lc_eq "/dev/mapper/atboot and /dev/mapper/wal gone" "" "$(ls /dev/mapper/atboot /dev/mapper/wal 2>/dev/null)"
journalctl -b --no-pager -u lakecrypt@atboot.service >"$LC_TMP/jstop.txt" 2>&1
grep -q 'Stopped lakecrypt volume atboot\|Stopped lakecrypt@atboot' "$LC_TMP/jstop.txt"
lc_result $? "journal: lakecrypt@atboot.service stopped in the shutdown" || lc_diag_file "$LC_TMP/jstop.txt"

# The state of a disk-backed host: lakecrypttab, the agent's state (local
# KMS, keyconfigs, bindings), the enablement, the pattern's checksum.
tar -C / -cf "$stdisk" etc/lakecrypt var/lib/lakecrypt var/lib/lakecrypt-test \
	etc/systemd/system/multi-user.target.wants/lakecrypt-agent.service && sync
lc_result $? "state saved for the second boot on $stdisk"

p=$(grep -c pass "$LC_TALLY"); f=$(grep -c fail "$LC_TALLY"); s=$(grep -c skip "$LC_TALLY")
lc_say "$p passed, $f failed, $s skipped"
rc=0
[ "$f" -eq 0 ] || rc=1
echo "LC-EXIT: $rc"
exit 0
