# SPDX-License-Identifier: GPL-2.0
# Sourced at the end of systemd-guest.sh (first boot): the machine is left
# the way an admin leaves a host that opens volumes at boot (lakecrypttab
# naming a volume on the virtio disk "lakecrypt-vol", `systemctl enable
# lakecrypt-agent`), the volumes open, then an orderly `systemctl poweroff`.
# lakecrypt-test-shutdown.service is ordered before the agent, so systemd
# stops it after the agent and after every lakecrypt@ unit: its ExecStop
# (shutdown-check.sh) sees what the units left, saves the state for the
# second boot (boot2-guest.sh) on the disk "lakecrypt-state", prints the
# summary of the whole boot and LC-EXIT.
vol=$(serial_dev lakecrypt-vol)
stdisk=$(serial_dev lakecrypt-state)
[ -n "$vol" ] && [ -n "$stdisk" ] ||
	lc_bail "no virtio disks with serials lakecrypt-vol and lakecrypt-state (tests/udev/check.sh adds them)"

timeout 120 systemctl enable --now lakecrypt-agent.service
lc_result $? "systemctl enable --now lakecrypt-agent (WantedBy=multi-user.target)" || diag_unit lakecrypt-agent
lc_run "enabled: multi-user.target wants lakecrypt-agent.service" \
	test -L /etc/systemd/system/multi-user.target.wants/lakecrypt-agent.service
ctl workspace bind sys --keyconfig kc1 >/dev/null &&
	ctl format "$vol" --workspace sys --project boot --segment-size 1M --force --batch >/dev/null
lc_result $? "format $vol (virtio disk lakecrypt-vol) for workspace sys" || diag_unit lakecrypt-agent
udevadm trigger --action=change "$vol"
udevadm settle --timeout=60
UB=$(lakecrypt-probe "$vol" | sed -n 's/^ID_FS_UUID=//p')
cat >/etc/lakecrypt/lakecrypttab <<TAB
# name    device                            workspace  options
atboot    UUID=$UB    sys        timeout=120
wal       /dev/disk/by-lakecrypt/fin/wal    fin        nofail
TAB
systemctl daemon-reload
timeout 300 systemctl start lakecrypt.target
lc_result $? "new lakecrypttab (atboot on $vol, wal): systemctl start lakecrypt.target"
for v in atboot wal; do
	i=0
	while { [ -n "$(systemctl show -p Job --value lakecrypt@$v.service)" ] ||
		[ "$(state lakecrypt@$v.service)" = activating ]; } && [ $i -lt 300 ]; do sleep 0.2; i=$((i + 1)); done
	lc_eq "lakecrypt@$v.service active before the shutdown" active "$(state lakecrypt@$v.service)" ||
		diag_unit "lakecrypt@$v.service"
done
lc_run "/dev/mapper/atboot open" test -b /dev/mapper/atboot
# A pattern the second boot reads back through the volume opened at boot.
mkdir -p /var/lib/lakecrypt-test
dd if=/dev/urandom of=/tmp/bootpat bs=64K count=8 2>/dev/null
dd if=/tmp/bootpat of=/dev/mapper/atboot bs=64K count=8 conv=fsync 2>/dev/null
sha256sum </tmp/bootpat | cut -d' ' -f1 >/var/lib/lakecrypt-test/atboot.sha256
lc_run "pattern written to /dev/mapper/atboot" test -s /var/lib/lakecrypt-test/atboot.sha256

cat >/etc/systemd/system/lakecrypt-test-shutdown.service <<UNIT
[Unit]
Description=lakecrypt test: what the lakecrypt units left at shutdown
DefaultDependencies=no
After=local-fs.target
Before=lakecrypt-agent.service shutdown.target
Conflicts=shutdown.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop=/bin/sh /lakecrypt/udev/shutdown-check.sh $stdisk
TimeoutStopSec=300
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
Environment=PATH=/lakecrypt/bin:/usr/sbin:/usr/bin:/sbin:/bin
UNIT
systemctl daemon-reload && systemctl start lakecrypt-test-shutdown.service
lc_result $? "lakecrypt-test-shutdown.service (ExecStop after the agent's stop) started" ||
	diag_unit lakecrypt-test-shutdown.service
lc_say "# orderly shutdown (systemctl poweroff): shutdown-check.sh reports during it"
: >/run/lakecrypt-test.orderly
systemctl poweroff --no-block
