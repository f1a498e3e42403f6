# SPDX-License-Identifier: GPL-2.0
# Key lifecycle in the QEMU guest: revocation detected right, killed
# completely.  Sourced by run-all.sh after its agent stopped (same boot,
# same TAP tally); runs an agent of its own with its own state, socket and
# [revocation] settings.  No timed assertion: every wait is bounded
# generously and the assertion is on states and counts afterwards.
#
#   w1 (CMK L1): lp1 (ext4, a writer on it) and the ephemeral cache lc1,
#                hook: SIGKILL to the holders      -> killed by "disable"
#   w2 (CMK L2): lp2, hook: a command              -> killed by a key policy
#                                                     denial (canary), state
#                                                     still enabled
#   w3 (CMK L3): lp3, hook: a command              -> revoked by hand in the
#                                                     kernel, reported as
#                                                     udev would
# Before any kill: an unreachable KMS, a flaky one and stray denials
# followed by successes kill nothing.

LSTATE=/tmp/lc-life-state
LSOCK=/run/lakecrypt-life/agent.sock	# its own volumes.json beside it
LAUDIT=/tmp/lc-life-audit.log
LCONF=/tmp/lc-life.conf
LFAULT=/tmp/lc-life-fault
lctl() { lakecryptctl --socket "$LSOCK" --timeout 120 "$@"; }
# wait_for N CMD...: run CMD every 0.2 s until it succeeds, at most N times.
wait_for() {
	_n=$1
	shift
	while [ "$_n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
		_n=$((_n - 1))
	done
	return 1
}
dm_state() { set -- $(dmsetup status "$1" 2>/dev/null); echo "${4:-none}"; }
is_revoked() { [ "$(dm_state "$1")" = revoked ]; }
# running PID: alive and not a zombie (a child of this shell stays one until waited)
running() { [ -e /proc/$1/stat ] && ! grep -q ') [ZX] ' /proc/$1/stat; }
not_running() { ! running "$1"; }
io_ok() { dd if=/dev/mapper/$1 of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null; }
loopdev() {	# loopdev IMG MIB: a new loop device over a new file
	truncate -s "$2"M "$1"
	_l=$(losetup -f)
	losetup "$_l" "$1" || lc_bail "losetup $_l"
	echo "$_l"
}
# cmkf CMK FIELD: FIELD of CMK in status's "cmks" (the agent's own view)
cmkf() {
	lctl --json status | awk -v id="$1" -v k="$2" '
		index($0, "\"cmk\": \"" id "\"") { f = 1 }
		f && index($0, "\"" k "\":") { sub(/^[^:]*: */, ""); gsub(/[",]/, ""); print; exit }'
}
cmk_at_least() { _v=$(cmkf "$1" "$2"); [ -n "$_v" ] && [ "$_v" -ge "$3" ]; }
cmk_is() { [ "$(cmkf "$1" "$2")" = "$3" ]; }
all_active() {
	for _v in lp1 lc1 lp2 lp3; do
		[ "$(dm_state $_v)" = active ] || { echo "$_v is $(dm_state $_v)"; return 1; }
	done
}

mkdir -p "$LSTATE" /mnt/lp1 /run/lakecrypt-life
rm -f "$LFAULT" /tmp/life-hook.out
# confirm_denials = 3 over 4 s intervals: a stray denial undone within a
# few seconds can never be confirmed (it would take two more probes).
cat >"$LCONF" <<CONF
[agent]
socket = $LSOCK
socket_mode = 0666
state_dir = $LSTATE
audit_log = $LAUDIT
log = stderr

[kms]
retry_attempts = 2
retry_base_delay_ms = 50

[revocation]
watch_interval_s = 4
jitter_pct = 10
confirm_denials = 3
confirm_window_s = 120

[test]
kms_fault_file = $LFAULT
watch_pause_file = /tmp/lc-life-pause
CONF
setsid lakecrypt-agent --config "$LCONF" --foreground >/tmp/life-agent.log 2>&1 &
LPID=$!
wait_for 100 test -S "$LSOCK"
lc_run "lifecycle: agent starts" lctl ping
grep -q '"op":"revocation.policy".*confirm_denials=3.*fail-closed off' "$LAUDIT" &&
	lc_ok "lifecycle: the [revocation] settings are audited at start (fail-closed off)" ||
	lc_notok "lifecycle: [revocation] settings audited"

L1=$(lctl --json kms create --description "life 1" | jget key_id)
L2=$(lctl --json kms create --description "life 2" | jget key_id)
L3=$(lctl --json kms create --description "life 3" | jget key_id)
ok=0
for i in 1 2 3; do
	eval "k=\$L$i"
	lctl keyconfig create l$i --key "$k" >/dev/null && lctl workspace bind w$i --keyconfig l$i >/dev/null ||
		ok=1
done
[ $ok -eq 0 ] && lc_ok "lifecycle: w1, w2, w3 under CMKs $L1, $L2, $L3" || lc_notok "lifecycle: key configurations"
lctl --json keyconfig list | grep -c '"canary": true' | grep -qx 3 &&
	lc_ok "lifecycle: each key configuration got its canary at create" || lc_notok "lifecycle: canaries made"

LP1=$(loopdev /tmp/lp1.img 32)
LC1=$(loopdev /tmp/lc1.img 16)
LP2=$(loopdev /tmp/lp2.img 16)
LP3=$(loopdev /tmp/lp3.img 16)
lctl format "$LP1" --workspace w1 --project lp1 --segment-size 1M --batch >/dev/null &&
	lctl open "$LP1" lp1 --workspace w1 >/dev/null &&
	lctl cache "$LC1" lc1 --workspace w1 >/dev/null &&
	lctl format "$LP2" --workspace w2 --project lp2 --segment-size 1M --batch >/dev/null &&
	lctl open "$LP2" lp2 --workspace w2 >/dev/null &&
	lctl format "$LP3" --workspace w3 --project lp3 --segment-size 1M --batch >/dev/null &&
	lctl open "$LP3" lp3 --workspace w3 >/dev/null &&
	lc_ok "lifecycle: lp1 and cache lc1 open in w1, lp2 in w2, lp3 in w3" || lc_notok "lifecycle: open volumes"
# busybox ash runs its own mke2fs applet first: name the e2fsprogs one.
/usr/sbin/mke2fs -q -t ext4 -F /dev/mapper/lp1 >/dev/null 2>&1 && mount -t ext4 /dev/mapper/lp1 /mnt/lp1 &&
	lc_ok "lifecycle: ext4 on lp1, mounted" || lc_notok "lifecycle: ext4 on lp1"
head -c 1048576 /dev/urandom >/mnt/lp1/keep
KEEP=$(sha256sum </mnt/lp1/keep)
sync
dd if=/dev/urandom of=/dev/mapper/lc1 bs=1M count=2 oflag=direct 2>/dev/null

# ---- hooks: admins only, checked, kept with the binding
expect_exit 4 "lifecycle: an operator may not set a hook" \
	$OPER lakecryptctl --socket "$LSOCK" workspace hook w1 --signal KILL
expect_exit 2 "lifecycle: --clear with --signal is a usage error" lctl workspace hook w1 --clear --signal KILL
expect_exit 1 "lifecycle: a relative hook command is refused" lctl workspace hook w1 --command stop.sh
lc_run "lifecycle: admin sets w1's hook: SIGKILL to the holders" \
	lctl workspace hook w1 --signal KILL --timeout-ms 5000
lctl --json workspace list | grep -q '"signal": "KILL"' && lc_ok "lifecycle: workspace list shows the hook" ||
	lc_notok "lifecycle: workspace list shows the hook"
cat >/tmp/life-hook.sh <<'EOF'
#!/bin/sh
echo "ws=$LAKECRYPT_WORKSPACE vols=$LAKECRYPT_VOLUMES why=$LAKECRYPT_REASON n=$#" >>/tmp/life-hook.out
EOF
chmod 700 /tmp/life-hook.sh
lc_run "lifecycle: w2's hook runs a command" lctl workspace hook w2 --command /tmp/life-hook.sh
lc_run "lifecycle: w3's hook runs a command" lctl workspace hook w3 --command /tmp/life-hook.sh

# ---- a process writing to lp1 (cwd and an open file on its ext4)
(cd /mnt/lp1 && exec sh -c 'exec 3>>log; while :; do echo x >&3; sleep 0.1; done') &
WPID=$!
sleep 0.5
running "$WPID" && lc_ok "lifecycle: a writer runs on lp1's file system" || lc_notok "lifecycle: writer runs"

# ---- check: every CMK probed now, with what it cost
lctl check >"$LC_TMP/check.out" 2>&1
lc_diag_file "$LC_TMP/check.out"
grep -q "KMS calls: 6" "$LC_TMP/check.out" &&
	lc_ok "lifecycle: check probes 3 CMKs with 6 KMS calls (state + canary each)" ||
	lc_notok "lifecycle: check reports 6 KMS calls"
[ "$(grep -c ' ok ' "$LC_TMP/check.out")" -eq 3 ] && lc_ok "lifecycle: every CMK answers ok" ||
	lc_notok "lifecycle: every CMK answers ok"

# ---- the KMS unreachable for many intervals: no kill, I/O continues
p0=$(cmkf "$L1" probes)
echo transient >"$LFAULT"
wait_for 600 cmk_at_least "$L1" probes $((p0 + 4))
lc_eq "lifecycle: KMS unreachable: the last probe of L1 had no answer" unknown "$(cmkf "$L1" last)"
lc_diag "L1: $(cmkf "$L1" probes) probes, outage $(cmkf "$L1" outage_s) s, $(cmkf "$L1" state_calls) state calls"
all_active && lc_ok "lifecycle: KMS unreachable for 4+ intervals: nothing revoked" ||
	lc_notok "lifecycle: KMS unreachable: nothing revoked ($(all_active))"
echo more >/mnt/lp1/during-outage && sync && lc_ok "lifecycle: lp1 takes writes during the outage" ||
	lc_notok "lifecycle: writes during the outage"
io_ok lp2 && io_ok lp3 && lc_ok "lifecycle: lp2 and lp3 serve I/O during the outage" ||
	lc_notok "lifecycle: I/O during the outage"

# ---- transient errors mixed with successes: no kill
p0=$(cmkf "$L1" probes)
echo flaky >"$LFAULT"
wait_for 600 cmk_at_least "$L1" probes $((p0 + 4))
rm -f "$LFAULT"
all_active && lc_ok "lifecycle: a flaky KMS (every other call fails) revokes nothing" ||
	lc_notok "lifecycle: flaky KMS revokes nothing ($(all_active))"

# ---- a stray denial followed by successes, twice: no kill.  The watcher
# is paused ([test] watch_pause_file) so that exactly the checks here
# probe: however slow the machine, the denial is one, then a success.
touch /tmp/lc-life-pause
no_probe() { lctl --json status | grep -q '"probes_running": 0'; }
wait_for 600 no_probe	# a probe that started before the pause ends
for round in 1 2; do
	lctl kms deny "$L1" >/dev/null
	lctl --json check --cmk "$L1" >"$LC_TMP/stray.json"
	lctl kms allow "$L1" >/dev/null
	grep -q '"outcome": "denied"' "$LC_TMP/stray.json" && grep -q '"verdict": "pending"' "$LC_TMP/stray.json" &&
		lc_ok "lifecycle: stray denial $round observed, pending confirmation" ||
		{ lc_notok "lifecycle: stray denial $round observed"; lc_diag_file "$LC_TMP/stray.json"; }
	lctl --json check --cmk "$L1" | grep -q '"outcome": "ok"' &&
		lc_ok "lifecycle: the next probe succeeds" || lc_notok "lifecycle: the next probe succeeds"
	lc_eq "lifecycle: a success after stray denial $round resets the count" 0 "$(cmkf "$L1" denials)"
done
rm -f /tmp/lc-life-pause
all_active && lc_ok "lifecycle: stray denials followed by successes revoke nothing" ||
	lc_notok "lifecycle: stray denials revoke nothing ($(all_active))"

# ---- CMK disabled: the watcher kills w1's volumes, the hook the writer
lc_run "lifecycle: admin disables w1's CMK" lctl kms disable "$L1"
wait_for 600 is_revoked lp1
wait_for 600 is_revoked lc1
lc_eq "lifecycle: lp1 revoked by the watcher" revoked "$(dm_state lp1)"
lc_eq "lifecycle: cache lc1 revoked by the watcher" revoked "$(dm_state lc1)"
lc_eq "lifecycle: the revocation came after 3 confirmed denials" revoke "$(cmkf "$L1" verdict)"
io_ok lp1 && lc_notok "lifecycle: lp1 I/O fails" || lc_ok "lifecycle: lp1 I/O fails"
wait_for 300 not_running "$WPID"
if running "$WPID"; then
	lc_notok "lifecycle: the hook stopped the writer"
	kill -9 "$WPID"
else
	lc_ok "lifecycle: the hook stopped the writer (SIGKILL to the holder of lp1's file system)"
fi
wait "$WPID" 2>/dev/null
lc_eq "lifecycle: the writer died of SIGKILL" 137 "$?"
lctl --json status >"$LC_TMP/life-st.json"
awk '/"workspace": "w1"/ { f = 1 } f' "$LC_TMP/life-st.json" | grep -m1 '"outcome"' | grep -q success &&
	lc_ok "lifecycle: status shows w1's hook run succeeded" ||
	{ lc_notok "lifecycle: status shows w1's hook run"; lc_diag_file "$LC_TMP/life-st.json" 80; }
grep -q '"op":"workspace.terminate","workspace":"w1".*"outcome":"success".*signal KILL: [1-9]' "$LAUDIT" &&
	lc_ok "lifecycle: the hook run is audited with what it did" || lc_notok "lifecycle: hook run audited"
grep -q '"op":"cmk.revocation".*"detail":"revoke: denials=3' "$LAUDIT" &&
	lc_ok "lifecycle: the confirmed revocation is audited" || lc_notok "lifecycle: revocation audited"
# The other workspaces' volumes are untouched.
io_ok lp2 && io_ok lp3 && lc_ok "lifecycle: lp2 and lp3 (other CMKs) still serve I/O" ||
	lc_notok "lifecycle: lp2 and lp3 still serve I/O"
[ "$(dm_state lp2) $(dm_state lp3)" = "active active" ] && lc_ok "lifecycle: lp2 and lp3 active" ||
	lc_notok "lifecycle: lp2 and lp3 active"
[ -e /tmp/life-hook.out ] && lc_notok "lifecycle: no other workspace's hook ran" ||
	lc_ok "lifecycle: no other workspace's hook ran"
nz=$(tr -d '\000' </tmp/lc1.img | wc -c)
lc_eq "lifecycle: the ephemeral cache's backing file reads zeros (discarded)" 0 "$nz"

# ---- access denied by key policy while the key stays enabled: the canary
lc_run "lifecycle: admin denies w2's CMK by key policy" lctl kms deny "$L2"
lctl --json kms describe "$L2" | grep -q '"state": "enabled"' &&
	lc_ok "lifecycle: the CMK still says enabled" || lc_notok "lifecycle: CMK still enabled"
wait_for 600 is_revoked lp2
lc_eq "lifecycle: lp2 revoked though its CMK is enabled (canary unwrap denied)" revoked "$(dm_state lp2)"
# (the canary's denial is on the row of key configuration l2, not the key's)
lctl --json status | grep -A12 "\"cmk\": \"$L2\"" | grep -q '"last_detail": "canary unwrap: denied' &&
	lc_ok "lifecycle: the canary's denial is what status shows" ||
	lc_notok "lifecycle: status shows the canary's denial ($(lctl --json status | grep -A12 "\"cmk\": \"$L2\""))"
wait_for 300 grep -q "vols=lp2" /tmp/life-hook.out
grep -q "ws=w2 vols=lp2 why=KMS denied CMK .* n=0" /tmp/life-hook.out &&
	lc_ok "lifecycle: w2's hook command ran with its environment, no arguments" ||
	{ lc_notok "lifecycle: w2's hook command"; lc_diag_file /tmp/life-hook.out; }
grep -q '"op":"cmk.canary".*"outcome":"failure".*"error_class":"denied"' "$LAUDIT" &&
	lc_ok "lifecycle: the denied canary unwrap is audited" || lc_notok "lifecycle: canary audited"
lc_eq "lifecycle: lp3 untouched" active "$(dm_state lp3)"

# ---- a revoke made by hand in the kernel, reported as udev would: same hook
dmsetup message lp3 0 revoke && lc_ok "lifecycle: dmsetup message lp3 0 revoke" || lc_notok "dmsetup revoke lp3"
lc_run "lifecycle: notify-revoked lp3 (what udev runs)" lctl notify-revoked lp3
wait_for 300 grep -q "vols=lp3" /tmp/life-hook.out
grep -q "ws=w3 vols=lp3 why=revoked in the kernel.* n=0" /tmp/life-hook.out &&
	lc_ok "lifecycle: a kernel revoke runs w3's hook too" ||
	{ lc_notok "lifecycle: w3's hook after a kernel revoke"; lc_diag_file /tmp/life-hook.out; }

# ---- the key is enabled again: the persistent volume opens with its data
umount -l /mnt/lp1 2>/dev/null
lc_run "lifecycle: admin enables w1's CMK again" lctl kms enable "$L1"
lc_run "lifecycle: close revoked lp1" lctl close lp1
lc_run "lifecycle: open lp1 again" lctl open "$LP1" lp1 --workspace w1
mount -t ext4 /dev/mapper/lp1 /mnt/lp1 2>/dev/null
lc_eq "lifecycle: lp1's data is intact" "$KEEP" "$(sha256sum </mnt/lp1/keep 2>/dev/null)"
[ -s /mnt/lp1/during-outage ] && lc_ok "lifecycle: what was written during the outage is there" ||
	lc_notok "lifecycle: writes of the outage kept"
umount /mnt/lp1 2>/dev/null
lc_run "lifecycle: close revoked cache lc1 (its data is gone with its key)" lctl close lc1
lctl --json status lp1 | grep -q '"state": "active"' && lc_ok "lifecycle: lp1 active again" ||
	lc_notok "lifecycle: lp1 active again"
sleep 5	# two watcher intervals: the re-enabled CMK is not revoked again
lc_eq "lifecycle: lp1 stays active under the re-enabled CMK" active "$(dm_state lp1)"

for v in lp1 lp2 lp3; do lctl close $v >/dev/null 2>&1; done
kill "$LPID"
wait "$LPID" 2>/dev/null
lc_diag_file /tmp/life-agent.log 40
