#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# udev tests in the QEMU guest (tests/udev/check.sh boots it): Debian's
# systemd-udevd with Debian's block and dm rules plus udev/61-lakecrypt.rules,
# on RAM disks (brd), a loop device and a virtio disk (/dev/vda), and on the
# dm devices the agent creates.  `udevadm info` and `udevadm test` show the
# properties and names; a revoke sent by hand reaches the agent through the
# rule.  TAP through tests/kernel/lib.sh; ends with
# "LC: N passed, N failed, N skipped".
cd "$(dirname "$0")" || exit 1
LC_CASE=udev
. /lakecrypt/tests/lib.sh
unset DM_DISABLE_UDEV		# udev makes the nodes and links here
mkdir -p "$LC_TMP"
: >"$LC_TALLY"
export PATH=/lakecrypt/bin:$PATH
SOCK=/run/lakecrypt/agent.sock
ctl() { lakecryptctl --timeout 120 "$@"; }
jget() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" | head -n1; }
prop() { udevadm info --query=property --name="$1" | sed -n "s/^$2=//p"; }
settle() { udevadm settle --timeout=60; }
change() { udevadm trigger --action=change --settle "$1" 2>/dev/null || { udevadm trigger --action=change "$1"; settle; }; }
link_to() { readlink -f "$1" 2>/dev/null; }

# ---------------------------------------------------------------- setup
insmod /lakecrypt/dm-lakecrypt.ko || lc_bail "insmod dm-lakecrypt"
modprobe brd rd_nr=3 rd_size=40960 || lc_bail "brd"
modprobe loop
modprobe virtio_pci
modprobe virtio_blk
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
sed 's|@PROBE@|/lakecrypt/bin/lakecrypt-probe|; s|@LAKECRYPTCTL@|/lakecrypt/bin/lakecryptctl|' \
	/lakecrypt/udev/61-lakecrypt.rules.in >/etc/udev/rules.d/61-lakecrypt.rules
mkdir -p /run/udev /run/lakecrypt /tmp/lc-state
/lib/systemd/systemd-udevd --daemon --resolve-names=never 2>/tmp/udevd.log
i=0
while [ ! -S /run/udev/control ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
lc_run "systemd-udevd runs (Debian's, $(udevadm --version))" test -S /run/udev/control
cat >/tmp/agent.conf <<CONF
[agent]
socket = $SOCK
state_dir = /tmp/lc-state
audit_log = /tmp/lc-audit.log
log = stderr

[revocation]
# the watcher stays out of the way; the window must hold two of its
# probes (3600 s + 10 % jitter) or the agent refuses the file
watch_interval_s = 3600
confirm_window_s = 3960
CONF
lakecrypt-agent --config /tmp/agent.conf --foreground >/tmp/agent.log 2>&1 &
i=0
while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
lc_run "agent answers" ctl ping
CMK=$(ctl --json kms create --description "udev CMK" | jget key_id)
ctl keyconfig create kc1 --key "$CMK" >/dev/null && ctl workspace bind fin --keyconfig kc1 >/dev/null ||
	lc_bail "admin setup"

# ---------------------------------------------------------------- backing devices
dd if=/dev/zero of=/tmp/loop.img bs=1M count=40 2>/dev/null
LOOP=$(losetup -f) && losetup "$LOOP" /tmp/loop.img || lc_bail "losetup"
ctl format /dev/ram0 --workspace fin --project ledger --segment-size 1M --force --batch >/dev/null &&
ctl format /dev/ram1 --workspace fin --project broken-a --segment-size 1M --force --batch >/dev/null &&
ctl format "$LOOP" --workspace fin --project on-loop --segment-size 1M --force --batch >/dev/null &&
ctl format /dev/vda --workspace fin --project on-virtio --segment-size 1M --force --batch >/dev/null ||
	lc_bail "format"
dd if=/dev/zero of=/tmp/ext4.img bs=1M count=16 2>/dev/null
mkfs.ext4 -q -F /tmp/ext4.img >/dev/null 2>&1
LOOP2=$(losetup -f) && losetup "$LOOP2" /tmp/ext4.img || lc_bail "losetup ext4"
# The writer closing the device makes the change event (inotify watch);
# trigger anyway so the test does not depend on timing.
for d in /dev/ram0 /dev/ram1 /dev/ram2 "$LOOP" "$LOOP2" /dev/vda; do change "$d"; done
settle

U0=$(lakecrypt-probe /dev/ram0 | sed -n 's/^ID_FS_UUID=//p')
lc_eq "ram0: ID_FS_TYPE" lakecrypt "$(prop /dev/ram0 ID_FS_TYPE)"
lc_eq "ram0: ID_FS_USAGE" crypto "$(prop /dev/ram0 ID_FS_USAGE)"
lc_eq "ram0: ID_FS_UUID" "$U0" "$(prop /dev/ram0 ID_FS_UUID)"
lc_eq "ram0: ID_FS_VERSION" "$(lakecrypt-probe /dev/ram0 | sed -n 's/^ID_FS_VERSION=//p')" "$(prop /dev/ram0 ID_FS_VERSION)"
lc_eq "ram0: LAKECRYPT_WORKSPACE" fin "$(prop /dev/ram0 LAKECRYPT_WORKSPACE)"
lc_eq "ram0: LAKECRYPT_PROJECT" ledger "$(prop /dev/ram0 LAKECRYPT_PROJECT)"
lc_eq "ram0: /dev/disk/by-lakecrypt/fin/ledger" /dev/ram0 "$(link_to /dev/disk/by-lakecrypt/fin/ledger)"
lc_eq "ram0: /dev/disk/by-uuid/$U0" /dev/ram0 "$(link_to "/dev/disk/by-uuid/$U0")"
lc_eq "loop: by-lakecrypt/fin/on-loop" "$LOOP" "$(link_to /dev/disk/by-lakecrypt/fin/on-loop)"
lc_eq "virtio: by-lakecrypt/fin/on-virtio" /dev/vda "$(link_to /dev/disk/by-lakecrypt/fin/on-virtio)"
lc_eq "virtio: LAKECRYPT_HEADER_COPY" A "$(prop /dev/vda LAKECRYPT_HEADER_COPY)"
lc_eq "ext4 loop disk: ID_FS_TYPE from blkid, not lakecrypt" ext4 "$(prop "$LOOP2" ID_FS_TYPE)"
lc_eq "ext4 loop disk: no LAKECRYPT_ property" "" "$(udevadm info --query=property --name="$LOOP2" | grep '^LAKECRYPT_')"
lc_eq "zeroed disk (ram2): no ID_FS_TYPE" "" "$(prop /dev/ram2 ID_FS_TYPE)"
lc_eq "zeroed disk (ram2): no LAKECRYPT_ property" "" "$(udevadm info --query=property --name=/dev/ram2 | grep '^LAKECRYPT_')"
lc_eq "nothing else in /dev/disk/by-lakecrypt/fin" "broken-a ledger on-loop on-virtio" "$(ls /dev/disk/by-lakecrypt/fin | tr '\n' ' ' | sed 's/ $//')"

# A reused md 1.0 member (superblock 8 KiB before the end, outside the
# header area; md10-40M.bin is tests/udev/mk-md10.py's output for 40 MiB):
# format --force wipes it, so udev's blkid leaves ID_FS_TYPE to the
# lakecrypt probe and the links appear.  A loop device: 60-persistent-storage
# does not run blkid on ram*.
dd if=/dev/zero of=/tmp/md.img bs=1M count=40 2>/dev/null
dd if=/lakecrypt/udev/md10-40M.bin of=/tmp/md.img bs=512 seek=81904 conv=notrunc 2>/dev/null
LOOPMD=$(losetup -f) && losetup "$LOOPMD" /tmp/md.img || lc_bail "losetup md"
change "$LOOPMD"
lc_eq "md 1.0 member: udev ID_FS_TYPE before format" linux_raid_member "$(prop "$LOOPMD" ID_FS_TYPE)"
lc_eq "md 1.0 member: udev's builtin blkid before format" ID_FS_TYPE=linux_raid_member \
	"$(udevadm test-builtin blkid "/sys/class/block/${LOOPMD#/dev/}" 2>/dev/null | grep '^ID_FS_TYPE=')"
ctl format "$LOOPMD" --workspace fin --project oldraid --segment-size 1M --batch >/dev/null 2>&1
lc_eq "md 1.0 member: format without --force refused (exit)" 1 "$?"
ctl format "$LOOPMD" --workspace fin --project oldraid --segment-size 1M --force --batch >/dev/null
lc_result $? "md 1.0 member: format --force"
change "$LOOPMD"
UMD=$(lakecrypt-probe "$LOOPMD" | sed -n 's/^ID_FS_UUID=//p')
lc_eq "md 1.0 member after format --force: udev's builtin blkid finds nothing" "" \
	"$(udevadm test-builtin blkid "/sys/class/block/${LOOPMD#/dev/}" 2>/dev/null | grep '^ID_FS_TYPE=')"
lc_eq "md 1.0 member after format --force: udev ID_FS_TYPE" lakecrypt "$(prop "$LOOPMD" ID_FS_TYPE)"
lc_eq "md 1.0 member after format --force: by-uuid/$UMD" "$LOOPMD" "$(link_to "/dev/disk/by-uuid/$UMD")"
lc_eq "md 1.0 member after format --force: by-lakecrypt/fin/oldraid" "$LOOPMD" \
	"$(link_to /dev/disk/by-lakecrypt/fin/oldraid)"
lc_eq "md 1.0 member: the audit record names what was wiped" 1 \
	"$(grep -c 'wiped signatures.*linux_raid_member@41934848' /tmp/lc-audit.log)"
losetup -d "$LOOPMD"
settle

# copy A damaged: copy B still probes
dd if=/dev/zero of=/dev/ram1 bs=4096 count=4 conv=notrunc 2>/dev/null
change /dev/ram1
lc_eq "ram1, copy A zeroed: ID_FS_TYPE" lakecrypt "$(prop /dev/ram1 ID_FS_TYPE)"
lc_eq "ram1, copy A zeroed: LAKECRYPT_HEADER_COPY" B "$(prop /dev/ram1 LAKECRYPT_HEADER_COPY)"
lc_eq "ram1, copy A zeroed: LAKECRYPT_COPY_A" damaged "$(prop /dev/ram1 LAKECRYPT_COPY_A)"
lc_eq "ram1, copy A zeroed: by-lakecrypt/fin/broken-a" /dev/ram1 "$(link_to /dev/disk/by-lakecrypt/fin/broken-a)"

# both copies gone: the properties and the link go with them
dd if=/dev/zero of=/dev/ram1 bs=1M count=2 conv=notrunc 2>/dev/null
change /dev/ram1
lc_eq "ram1 wiped: no ID_FS_TYPE" "" "$(prop /dev/ram1 ID_FS_TYPE)"
lc_eq "ram1 wiped: by-lakecrypt link removed" "" "$(ls /dev/disk/by-lakecrypt/fin/broken-a 2>/dev/null)"

# A volume on a partition: udev gives partitions their disk's
# ID_PART_TABLE_TYPE (60-persistent-storage.rules, IMPORT{parent}); only a
# whole disk with a partition table is skipped.  A DOS table with one
# partition (sectors 2048 to 43007), written by hand (no sfdisk here).
dd if=/dev/zero of=/tmp/part.img bs=1M count=48 2>/dev/null
printf '\000\000\002\000\203\000\000\000\000\010\000\000\000\240\000\000' |
	dd of=/tmp/part.img bs=1 seek=446 conv=notrunc 2>/dev/null
printf '\125\252' | dd of=/tmp/part.img bs=1 seek=510 conv=notrunc 2>/dev/null
LOOP3=$(losetup -f) && losetup -P "$LOOP3" /tmp/part.img || lc_bail "losetup -P"
settle
i=0
while [ ! -b "${LOOP3}p1" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
ctl format "${LOOP3}p1" --workspace fin --project on-part --segment-size 1M --force --batch >/dev/null
lc_result $? "format the partition ${LOOP3}p1"
change "${LOOP3}p1"
lc_eq "partitioned disk: ID_PART_TABLE_TYPE" dos "$(prop "$LOOP3" ID_PART_TABLE_TYPE)"
lc_eq "partitioned disk: not probed as lakecrypt" "" "$(prop "$LOOP3" LAKECRYPT_WORKSPACE)"
lc_eq "partition: ID_FS_TYPE" lakecrypt "$(prop "${LOOP3}p1" ID_FS_TYPE)"
lc_eq "partition: by-lakecrypt/fin/on-part" "${LOOP3}p1" "$(link_to /dev/disk/by-lakecrypt/fin/on-part)"

# udevadm test shows the rule at work (the program and the link)
udevadm test --action=add /sys/class/block/ram0 >/tmp/udevtest.out 2>&1
grep -q "lakecrypt-probe" /tmp/udevtest.out && grep -q "^ID_FS_TYPE=lakecrypt" /tmp/udevtest.out &&
	grep -q "by-lakecrypt/fin/ledger" /tmp/udevtest.out
lc_result $? "udevadm test /sys/class/block/ram0: probe run, ID_FS_TYPE=lakecrypt, by-lakecrypt link" ||
	lc_diag_file /tmp/udevtest.out
udevadm test --action=add "/sys/class/block/${LOOP2#/dev/}" >/tmp/udevtest2.out 2>&1
grep -q "^ID_FS_TYPE=ext4" /tmp/udevtest2.out && ! grep -q "lakecrypt-probe" /tmp/udevtest2.out
lc_result $? "udevadm test $LOOP2 (ext4): blkid answers, the probe is not even run" ||
	lc_diag_file /tmp/udevtest2.out

# ---------------------------------------------------------------- a copy of a header
# A copy of ram0's header on ram2 (dd, as anyone who can write a disk can)
# competes for /dev/disk/by-uuid/$U0 and by-lakecrypt/fin/ledger: an open
# by uuid or through those links is refused while two disks carry the
# uuid, naming both, before any KMS call (Documentation/udev.md, "Copies
# of a header"); the agent sees them in udev's records.
dd if=/dev/ram0 of=/dev/ram2 bs=1M 2>/dev/null
change /dev/ram2
settle
lc_eq "copy on ram2: udev gives it the same ID_FS_UUID" "$U0" "$(prop /dev/ram2 ID_FS_UUID)"
# Any other link too (review 11b #3: by-partuuid, by-label, by-id/lvm-*,
# /dev/VG/LV are named by what a disk holds): here a plain symlink.
ln -sf /dev/ram0 /dev/lc-ram0-link
for dev in "/dev/disk/by-uuid/$U0" /dev/disk/by-lakecrypt/fin/ledger /dev/lc-ram0-link; do
	ctl open "$dev" squat --workspace fin >/tmp/squat.out 2>&1
	lc_eq "open through $dev with a copy on ram2: refused (exit)" 1 "$?"
	grep -q "volume $U0 is on more than one block device" /tmp/squat.out && grep -q "/dev/ram2" /tmp/squat.out &&
		grep -q "open the disk by its own node" /tmp/squat.out
	lc_result $? "open through $dev: the message names the devices and what to do" || lc_diag_file /tmp/squat.out
done
rm -f /dev/lc-ram0-link
ctl open "/dev/disk//by-uuid/$U0" squat --workspace fin >/tmp/squat.out 2>&1
lc_eq "open through /dev/disk//by-uuid/$U0: refused (exit)" 1 "$?"
grep -q "is not a plain path" /tmp/squat.out
lc_result $? "open through /dev/disk//by-uuid/: the message says why" || lc_diag_file /tmp/squat.out
lc_eq "refused opens mapped nothing" "" "$(ls /dev/mapper/squat 2>/dev/null)"
grep '"op": *"open"' /tmp/lc-audit.log | grep -q '"outcome": *"refused"'
lc_result $? "audit log: the refused open" || lc_diag_file /tmp/lc-audit.log
dd if=/dev/zero of=/dev/ram2 bs=1M count=4 conv=notrunc 2>/dev/null
change /dev/ram2
settle
lc_eq "copy wiped: by-uuid/$U0 is ram0's again" /dev/ram0 "$(link_to "/dev/disk/by-uuid/$U0")"

# ---------------------------------------------------------------- a suspended dm backing device
# A volume on a dm device (an LVM volume, here dm-linear over ram2, away
# from ram2's first and last 4 MiB so that ram2 carries no header copy of
# its own): a change event while it is suspended (55-dm.rules sets
# DM_UDEV_DISABLE_OTHER_RULES_FLAG) is not probed, but keeps the last
# probe's properties, so its by-lakecrypt and by-uuid links stay and a unit
# bound to them (BindsTo=) is not stopped (rev11a finding 4).
SZ=$(blockdev --getsz /dev/ram2)
dmsetup create lc-lv --table "0 $((SZ - 16384)) linear /dev/ram2 8192" || lc_bail "dmsetup create lc-lv"
settle
ctl format /dev/mapper/lc-lv --workspace fin --project onlv --segment-size 1M --force --batch >/dev/null ||
	lc_bail "format /dev/mapper/lc-lv"
DMN=$(link_to /dev/mapper/lc-lv)
change "$DMN"
UL=$(prop "$DMN" ID_FS_UUID)
lc_eq "dm backing device: by-lakecrypt/fin/onlv" "$DMN" "$(link_to /dev/disk/by-lakecrypt/fin/onlv)"
lc_eq "dm backing device: by-uuid/$UL" "$DMN" "$(link_to "/dev/disk/by-uuid/$UL")"
dmsetup suspend lc-lv
udevadm trigger --action=change "$DMN"
settle
lc_eq "suspended, change event: DM_UDEV_DISABLE_OTHER_RULES_FLAG set" 1 "$(prop "$DMN" DM_UDEV_DISABLE_OTHER_RULES_FLAG)"
lc_eq "suspended, change event: ID_FS_TYPE kept" lakecrypt "$(prop "$DMN" ID_FS_TYPE)"
lc_eq "suspended, change event: LAKECRYPT_PROJECT kept" onlv "$(prop "$DMN" LAKECRYPT_PROJECT)"
lc_eq "suspended, change event: by-lakecrypt/fin/onlv stays" "$DMN" "$(link_to /dev/disk/by-lakecrypt/fin/onlv)"
lc_eq "suspended, change event: by-uuid/$UL stays" "$DMN" "$(link_to "/dev/disk/by-uuid/$UL")"
dmsetup resume lc-lv
settle
lc_eq "resumed: by-lakecrypt/fin/onlv" "$DMN" "$(link_to /dev/disk/by-lakecrypt/fin/onlv)"
dmsetup remove lc-lv
settle
lc_eq "dm backing device removed: by-lakecrypt/fin/onlv gone" "" "$(ls /dev/disk/by-lakecrypt/fin/onlv 2>/dev/null)"
dd if=/dev/zero of=/dev/ram2 bs=1M count=40 conv=notrunc 2>/dev/null
change /dev/ram2

# ---------------------------------------------------------------- mapped devices
ctl open /dev/disk/by-lakecrypt/fin/ledger ledger --workspace fin >/dev/null
lc_result $? "open through /dev/disk/by-lakecrypt/fin/ledger"
settle
DM=$(link_to /dev/mapper/ledger)
case $DM in /dev/dm-*) lc_ok "/dev/mapper/ledger made by udev -> $DM" ;; *) lc_notok "/dev/mapper/ledger: '$DM'" ;; esac
lc_eq "dm: DM_UUID" "LAKECRYPT-$U0" "$(prop /dev/mapper/ledger DM_UUID)"
lc_eq "dm: by-id/dm-uuid-LAKECRYPT-$U0" "$DM" "$(link_to "/dev/disk/by-id/dm-uuid-LAKECRYPT-$U0")"
lc_eq "dm: by-id/dm-name-ledger" "$DM" "$(link_to /dev/disk/by-id/dm-name-ledger)"
lc_eq "dm: LAKECRYPT_MAPPED" 1 "$(prop /dev/mapper/ledger LAKECRYPT_MAPPED)"
mkfs.ext4 -q -F /dev/mapper/ledger >/dev/null 2>&1
change /dev/mapper/ledger
FSU=$(prop /dev/mapper/ledger ID_FS_UUID)
lc_eq "dm: blkid sees the filesystem inside" ext4 "$(prop /dev/mapper/ledger ID_FS_TYPE)"
lc_eq "dm: by-uuid of the filesystem inside" "$DM" "$(link_to "/dev/disk/by-uuid/$FSU")"
lc_eq "backing device still lakecrypt" lakecrypt "$(prop /dev/ram0 ID_FS_TYPE)"
# Opened again with the filesystem already inside (as at every boot): udev
# probes it only once its keys are in, with no change event by hand.
ctl close ledger >/dev/null 2>&1
settle
[ ! -e "/dev/disk/by-uuid/$FSU" ]
lc_result $? "dm: closed: the filesystem's by-uuid link gone"
ctl open /dev/disk/by-lakecrypt/fin/ledger ledger --workspace fin >/dev/null
lc_result $? "open again, the filesystem already inside"
settle
DM=$(link_to /dev/mapper/ledger)
lc_eq "dm: reopened: blkid sees the filesystem inside, with no change event by hand" ext4 \
	"$(prop /dev/mapper/ledger ID_FS_TYPE)"
lc_eq "dm: reopened: by-uuid of the filesystem inside" "$DM" "$(link_to "/dev/disk/by-uuid/$FSU")"
lc_eq "dm: reopened: SYSTEMD_READY not 0" "" "$(prop /dev/mapper/ledger SYSTEMD_READY | grep -x 0)"
lc_eq "dm: reopened: no I/O error (udev did not read before the keys were in)" 0 \
	"$(ctl --json status ledger | jget io_errors)"

# notify-revoked for a device that is not revoked is refused
lakecryptctl notify-revoked ledger >/tmp/nr.out 2>&1
lc_eq "notify-revoked on an active device is refused (exit)" 1 "$?"
lc_eq "status still active" active "$(ctl --json status ledger | jget state)"

# revoke by hand, past the agent: the uevent reaches the agent via udev
udevadm monitor --kernel --udev --property --subsystem-match=block >/tmp/monitor.out 2>&1 &
MON=$!
sleep 0.5
dmsetup message ledger 0 revoke
settle
i=0
while [ "$(ctl --json status ledger | jget state)" != revoked ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
kill $MON 2>/dev/null
grep -q "LAKECRYPT_EVENT=revoked" /tmp/monitor.out
lc_result $? "udevadm monitor: change uevent with LAKECRYPT_EVENT=revoked" || lc_diag_file /tmp/monitor.out
ctl --json status ledger >/tmp/st.json
lc_eq "agent status: revoked" revoked "$(jget state </tmp/st.json)"
grep -q "revoked in the kernel, not through the agent" /tmp/st.json
lc_result $? "agent status: revoke_cause says it came from the kernel" || lc_diag_file /tmp/st.json
grep '"op": *"revoke"' /tmp/lc-audit.log | grep '"outcome": *"success"' |
	grep '"project": *"' | grep -q "\"volume\": *\"$(jget uuid </tmp/st.json)\""
lc_result $? "audit log: a revoke record naming the project and the volume" || lc_diag_file /tmp/lc-audit.log
lc_eq "no lakecrypt key left in the kernel keyrings" 0 "$(grep -c ' logon .*lakecrypt:' /proc/keys)"
grep -q "volume.revoked" /tmp/agent.log
lc_result $? "agent log: volume.revoked served" || lc_diag_file /tmp/agent.log
lakecryptctl notify-revoked ledger >/dev/null 2>&1
lc_eq "a repeated notification is harmless (exit)" 0 "$?"

ctl close ledger >/dev/null 2>&1
settle
lc_eq "closed: /dev/mapper/ledger gone" "" "$(ls /dev/mapper/ledger 2>/dev/null)"
losetup -d "$LOOP"
losetup -d "$LOOP2"
losetup -d "$LOOP3"
udevadm control --exit
kill %1 2>/dev/null

p=$(grep -c pass "$LC_TALLY"); f=$(grep -c fail "$LC_TALLY"); s=$(grep -c skip "$LC_TALLY")
lc_say "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
