# SPDX-License-Identifier: GPL-2.0
# Sourced by systemd-guest.sh (first boot) before shutdown-prepare.sh,
# with the agent stopped and lakecrypttab the one written above:
#  - a hot-plugged copy of a volume's header (a clone on a loop device)
#    takes /dev/disk/by-uuid/<uuid> from the open volume's disk, then is
#    removed (loop detach: the loop device stays, empty, and udev and
#    systemd see it gone, SYSTEMD_READY=0): the lakecrypt@ unit of the
#    UUID= line and its open volume stay as they are (Documentation/udev.md,
#    "Copies of a header");
#  - _netdev on real systemd: a oneshot unit ordered before
#    network-online.target sleeps, then leaves a marker; the _netdev
#    volume's unit started after it (systemd's own monotonic timestamps,
#    and a drop-in that fails the unit's start without the marker).
# Leaves the agent running, the loop devices detached, lakecrypttab as it
# was (shutdown-prepare.sh writes its own).

timeout 120 systemctl start lakecrypt-agent.service
lc_result $? "hot-plug: agent started again" || diag_unit lakecrypt-agent
ctl workspace bind hot --keyconfig kc1 >/dev/null
truncate -s 24M /tmp/hp.img /tmp/netv.img
# (busybox's losetup: -f prints the next free device; no --show)
attach() { _l=$(losetup -f) && losetup "$_l" "$1" && echo "$_l"; }
LOOPA=$(attach /tmp/hp.img) && LOOPN=$(attach /tmp/netv.img) ||
	lc_bail "losetup for the hot-plug tests"
ctl format "$LOOPA" --workspace hot --project hp --segment-size 1M --force --batch >/dev/null &&
	ctl format "$LOOPN" --workspace hot --project netv --segment-size 1M --force --batch >/dev/null
lc_result $? "hot-plug: format $LOOPA (hp) and $LOOPN (netv)" || diag_unit lakecrypt-agent
# The copy: the whole disk cloned, as dd or a snapshot would.
cp /tmp/hp.img /tmp/hp-copy.img
udevadm trigger --action=change "$LOOPA" "$LOOPN"
udevadm settle --timeout=60
UH=$(lakecrypt-probe "$LOOPA" | sed -n 's/^ID_FS_UUID=//p')
cp /etc/lakecrypt/lakecrypttab /tmp/lakecrypttab.before-hotplug
cat >>/etc/lakecrypt/lakecrypttab <<TAB
hp        UUID=$UH    hot   noauto
netv      /dev/disk/by-lakecrypt/hot/netv   hot   noauto,_netdev
TAB
# devunit UUID: systemd's unit of /dev/disk/by-uuid/UUID
devunit() { systemd-escape --path --suffix=device "/dev/disk/by-uuid/$1"; }
# settled_gone LOOPDEV: udev and systemd both handled the detach of
# LOOPDEV (systemd handles a uevent's device unit and its links' units
# at once; the stop jobs BindsTo= queues follow), and no job of UNIT is
# left.
settled_gone() {
	udevadm settle --timeout=60
	_i=0
	while [ "$(systemctl show -p ActiveState --value "$(systemd-escape --path --suffix=device "$1")")" = active ] &&
		[ $_i -lt 150 ]; do sleep 0.2; _i=$((_i + 1)); done
	_i=0
	while [ -n "$(systemctl show -p Job --value "$2")" ] && [ $_i -lt 300 ]; do sleep 0.2; _i=$((_i + 1)); done
}

# ---------------------------------------------------------------- copy appears, then vanishes
systemctl daemon-reload
timeout 120 systemctl start lakecrypt@hp.service
lc_eq "hot-plug: lakecrypt@hp (UUID=) active, opened from $LOOPA" active "$(state lakecrypt@hp.service)" ||
	diag_unit lakecrypt@hp.service
lc_eq "hot-plug: /dev/disk/by-uuid/$UH is $LOOPA before the copy" "$LOOPA" "$(readlink -f "/dev/disk/by-uuid/$UH")"
dd if=/dev/urandom of=/tmp/hp-pattern bs=64K count=4 2>/dev/null
dd if=/tmp/hp-pattern of=/dev/mapper/hp bs=64K count=4 conv=fsync 2>/dev/null
LOOPC=$(attach /tmp/hp-copy.img) || lc_bail "losetup copy"
udevadm settle --timeout=60
i=0	# systemd has handled the copy's appearance
while [ "$(systemctl show -p ActiveState --value "$(systemd-escape --path --suffix=device "$LOOPC")")" != active ] &&
	[ $i -lt 150 ]; do sleep 0.2; i=$((i + 1)); done
link=$(readlink -f "/dev/disk/by-uuid/$UH")
lc_ok "hot-plug: copy on $LOOPC; /dev/disk/by-uuid/$UH now -> $link; systemd's $(devunit "$UH"): $(systemctl show -p SysFSPath --value "$(devunit "$UH")")"
lc_eq "hot-plug: copy present: lakecrypt@hp still active" active "$(state lakecrypt@hp.service)"
losetup -d "$LOOPC"
settled_gone "$LOOPC" lakecrypt@hp.service
systemctl status --no-pager -l lakecrypt@hp.service "$(devunit "$UH")" >"$LC_TMP/hp.txt" 2>&1
journalctl -b --no-pager -u lakecrypt@hp.service >>"$LC_TMP/hp.txt" 2>&1
lc_eq "hot-plug: copy removed: lakecrypt@hp not stopped by its BindsTo= device" active "$(state lakecrypt@hp.service)" ||
	lc_diag_file "$LC_TMP/hp.txt"
lc_run "hot-plug: copy removed: /dev/mapper/hp still open" test -b /dev/mapper/hp
dd if=/dev/mapper/hp of=/tmp/hp-back bs=64K count=4 iflag=direct 2>/dev/null
lc_run "hot-plug: copy removed: the data still reads back through /dev/mapper/hp" cmp /tmp/hp-pattern /tmp/hp-back
lc_eq "hot-plug: copy removed: /dev/disk/by-uuid/$UH is $LOOPA again" "$LOOPA" "$(readlink -f "/dev/disk/by-uuid/$UH")"
lc_eq "hot-plug: copy removed: $(devunit "$UH") active" active \
	"$(systemctl show -p ActiveState --value "$(devunit "$UH")")" || lc_diag_file "$LC_TMP/hp.txt"
timeout 120 systemctl stop lakecrypt@hp.service
lc_eq "hot-plug: systemctl stop lakecrypt@hp closes it" "" "$(ls /dev/mapper/hp 2>/dev/null)"

# ---------------------------------------------------------------- _netdev ordering
# network-online.target is reached only once lc-netwait.service has run
# (Before=, oneshot); nothing else in this guest pulls it in.
printf '%s\n' '[Unit]' 'DefaultDependencies=no' 'Before=network-online.target' \
	'[Service]' 'Type=oneshot' 'RemainAfterExit=yes' \
	"ExecStart=/bin/sh -c 'sleep 3; : >/run/lc-netwait.done'" >/etc/systemd/system/lc-netwait.service
mkdir -p /etc/systemd/system/network-online.target.wants /etc/systemd/system/lakecrypt@netv.service.d
ln -sf ../lc-netwait.service /etc/systemd/system/network-online.target.wants/lc-netwait.service
printf '%s\n' '[Service]' "ExecStartPre=/bin/sh -c 'test -e /run/lc-netwait.done'" \
	>/etc/systemd/system/lakecrypt@netv.service.d/lc-marker.conf
rm -f /run/lc-netwait.done
systemctl stop network-online.target lc-netwait.service 2>/dev/null
systemctl daemon-reload
lc_eq "_netdev: network-online.target not active before" inactive "$(state network-online.target)"
grep -q '^After=network-online.target' /run/systemd/generator/lakecrypt@netv.service
lc_result $? "_netdev: the generated unit orders after network-online.target"
timeout 120 systemctl start lakecrypt@netv.service
lc_eq "_netdev: lakecrypt@netv active (its start found the marker)" active "$(state lakecrypt@netv.service)" ||
	diag_unit lakecrypt@netv.service
mark=$(systemctl show -p ActiveEnterTimestampMonotonic --value lc-netwait.service)
online=$(systemctl show -p ActiveEnterTimestampMonotonic --value network-online.target)
began=$(systemctl show -p InactiveExitTimestampMonotonic --value lakecrypt@netv.service)
[ "${mark:-0}" -gt 0 ] && [ "${online:-0}" -ge "$mark" ] && [ "${began:-0}" -ge "$online" ]
lc_result $? "_netdev: the marker unit done (${mark:-?} us), network-online.target reached (${online:-?} us), then lakecrypt@netv started (${began:-?} us)"
timeout 120 systemctl stop lakecrypt@netv.service
lc_eq "_netdev: systemctl stop lakecrypt@netv closes it" "" "$(ls /dev/mapper/netv 2>/dev/null)"

rm -rf /etc/systemd/system/lc-netwait.service /etc/systemd/system/network-online.target.wants/lc-netwait.service \
	/etc/systemd/system/lakecrypt@netv.service.d
cp /tmp/lakecrypttab.before-hotplug /etc/lakecrypt/lakecrypttab
systemctl daemon-reload
losetup -d "$LOOPA"
losetup -d "$LOOPN"
rm -f /tmp/hp.img /tmp/hp-copy.img /tmp/netv.img /tmp/hp-pattern /tmp/hp-back
