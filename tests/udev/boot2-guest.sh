# SPDX-License-Identifier: GPL-2.0
# Sourced by systemd-guest.sh with the argument boot2: the second boot of
# the disks the first boot left (tests/udev/check.sh).  /init unpacked the
# saved state (lakecrypttab, /var/lib/lakecrypt, the enabled agent) before
# systemd started, so systemd ran lakecrypt-generator at boot and reached
# multi-user.target through lakecrypt.target; this entry runs after
# multi-user.target and only looks: the volume atboot was opened at boot,
# before multi-user.target, by lakecrypt@atboot.service, with dm-lakecrypt
# loaded on demand; the missing nofail volume (wal was on a RAM disk) did
# not hold the boot.  Ends with the summary line.
LC_CASE=boot
[ -f /etc/lakecrypt/lakecrypttab ] && [ -s /var/lib/lakecrypt-test/atboot.sha256 ] ||
	lc_bail "the first boot's state is not here (disk lakecrypt-state, restored by /init)"
lc_eq "default target: multi-user.target reached" active "$(state multi-user.target)"
lc_eq "lakecrypt-agent.service (enabled) active" active "$(state lakecrypt-agent.service)"
lc_eq "generator at boot: multi-user.target wants lakecrypt.target" yes \
	"$(systemctl show -p Wants --value multi-user.target | tr ' ' '\n' | grep -qx lakecrypt.target && echo yes)"
lc_eq "lakecrypt.target active" active "$(state lakecrypt.target)"
lc_eq "lakecrypt@atboot.service active (started at boot, not by this test)" active \
	"$(state lakecrypt@atboot.service)" || diag_unit lakecrypt@atboot.service
ta=$(ts lakecrypt@atboot.service)
tt=$(ts lakecrypt.target)
tm=$(ts multi-user.target)
te=$(systemctl show -p ExecMainStartTimestampMonotonic --value lakecrypt-test.service)
[ -n "$ta" ] && [ "$ta" -gt 0 ] && [ "$ta" -le "$tt" ] && [ "$tt" -le "$tm" ] && [ "$tm" -le "$te" ]
lc_result $? "order of the boot: lakecrypt@atboot ($ta us) <= lakecrypt.target ($tt) <= multi-user.target ($tm) <= this test ($te)"
modloaded
lc_result $? "dm-lakecrypt loaded on demand at boot (nothing in this boot ran insmod or modprobe for it)"
dmsetup ls --target lakecrypt >"$LC_TMP/dmls.txt" 2>&1
grep -q '^atboot[[:space:]]' "$LC_TMP/dmls.txt"
lc_result $? "dmsetup ls --target lakecrypt lists atboot" || lc_diag_file "$LC_TMP/dmls.txt"
ctl --json status >"$LC_TMP/st.json" 2>&1
grep -q '"name": "atboot"' "$LC_TMP/st.json"
lc_result $? "agent status lists atboot" || lc_diag_file "$LC_TMP/st.json"
got=$(dd if=/dev/mapper/atboot bs=64K count=8 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
lc_eq "the first boot's pattern reads back through /dev/mapper/atboot" "$(cat /var/lib/lakecrypt-test/atboot.sha256)" "$got"
lc_eq "wal (nofail, its RAM disk is gone) not open" "" "$(ls /dev/mapper/wal 2>/dev/null)"
[ "$(state lakecrypt@wal.service)" != active ] && [ "$(state multi-user.target)" = active ]
lc_result $? "nofail: multi-user.target reached without wal"
timeout 120 systemctl stop lakecrypt@atboot.service
lc_eq "systemctl stop lakecrypt@atboot: closed" "" "$(ls /dev/mapper/atboot 2>/dev/null)"

p=$(grep -c pass "$LC_TALLY"); f=$(grep -c fail "$LC_TALLY"); s=$(grep -c skip "$LC_TALLY")
lc_say "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
