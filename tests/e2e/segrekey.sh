#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# DEK re-key of segments against the real kernel target, in the QEMU guest
# (self-contained: its own module, loop devices, agent and socket, so it
# runs alone with `tools/qemu/run.sh --line 6.12 --entry e2e/segrekey.sh`
# or from another entry script).  For 512- and 4096-byte sector volumes:
# format, open, write, close, `rekey-segment`, open again and read the
# same data back through dm-lakecrypt (the kernel decrypts with the new
# DEK), the ciphertext of the segment changed on the device and the
# generation advanced in `lakecryptctl --json dump`.  Then a re-key of a
# range interrupted by killing the agent (SIGKILL) in the middle of a
# segment ([test] segrekey_pause_file holds it there): the header is
# version 3, the volume refuses to open and says how to resume, a plain
# re-run is refused, `--resume` finishes it, and the data reads back.
# Last, forced writers aimed at the storage of an open volume with a
# detached header through another path are refused (storage identity).
cd "$(dirname "$0")" || exit 1
LC_CASE=e2e-segrekey
. /lakecrypt/tests/lib.sh
mkdir -p "$LC_TMP"
: >"$LC_TALLY"
export PATH=/lakecrypt/bin:$PATH
STATE=/tmp/lc-sr-state SOCK=/run/lakecrypt/agent-sr.sock AUDIT=/tmp/lc-sr-audit.log
CONF=/tmp/lc-sr-agent.conf PAUSE=/tmp/lc-sr-pause AGENT_PID=

ctl() { lakecryptctl --socket "$SOCK" --timeout 300 "$@"; }
jget() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" | head -n1; }
# expect <want-exit> <description> <command...>: output in $LC_TMP/x.out
expect() {
	_xw=$1 _xd=$2
	shift 2
	"$@" >"$LC_TMP/x.out" 2>&1
	_xg=$?
	if [ "$_xg" -eq "$_xw" ]; then
		lc_ok "$_xd (exit $_xg)"
	else
		lc_notok "$_xd: exit $_xg, expected $_xw"
		lc_diag_file "$LC_TMP/x.out"
	fi
}
start_agent() {
	lakecrypt-agent --config "$CONF" --foreground >>/tmp/agent-sr.log 2>&1 &
	AGENT_PID=$!
	i=0
	while ! ctl ping >/dev/null 2>&1 && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}
# sum <dev> <bytes>: sha256 of its first bytes
sum() { dd if="$1" bs=1M count=$(($2 / 1048576)) iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1; }
# raw <dev> <data-offset-sectors> <segment> <segment-bytes>: sha256 of the segment's ciphertext
raw() {
	dd if="$1" bs=$4 skip=$(($2 * 512 / $4 + $3)) count=1 iflag=direct 2>/dev/null |
		sha256sum | cut -d' ' -f1
}

. ./machine.sh
lc_machine
modprobe loop 2>/dev/null
mkdir -p "$STATE" /run/lakecrypt
rm -f "$PAUSE"
cat >"$CONF" <<CONF
[agent]
socket = $SOCK
state_dir = $STATE
audit_log = $AUDIT
log = stderr

[test]
segrekey_pause_file = $PAUSE
CONF
start_agent
lc_run "segrekey: agent starts and answers ping" ctl ping
K=$(ctl --json kms create --description "segment re-key" | jget key_id)
lc_run "segrekey: key configuration ksr" ctl keyconfig create ksr --key "$K"
lc_run "segrekey: workspace wss bound to ksr" ctl workspace bind wss --keyconfig ksr --devices '/dev/loop*'
head -c 8388608 /dev/urandom >"$LC_TMP/srdata"
srwant=$(sha256sum <"$LC_TMP/srdata" | cut -d' ' -f1)

n=0
for ss in 512 4096; do
	n=$((n + 1))
	rm -f /tmp/sr$n.img
	dd if=/dev/zero of=/tmp/sr$n.img bs=1M count=0 seek=16 2>/dev/null || lc_bail "sr$n.img"
	L=$(losetup -f)
	losetup "$L" /tmp/sr$n.img || lc_bail "losetup $L"
	eval "L$n=$L"
	lc_run "segrekey($ss): format $L with 1 MiB segments, $ss-byte sectors" \
		ctl format "$L" --workspace wss --project sr$n --segment-size 1M --sector-size "$ss" --batch
	lc_run "segrekey($ss): open" ctl open "$L" sr$n --workspace wss
	dd if="$LC_TMP/srdata" of=/dev/mapper/sr$n bs=1M oflag=direct 2>/dev/null ||
		lc_notok "segrekey($ss): write 8 MiB"
	lc_run "segrekey($ss): close" ctl close sr$n
	ctl --json dump "$L" >"$LC_TMP/d0.json"
	off=$(jget data_offset <"$LC_TMP/d0.json")
	lc_eq "segrekey($ss): generations start at 1" 1 "$(jget generation_max <"$LC_TMP/d0.json")"
	c0=$(raw "$L" "$off" 2 1048576)
	c1=$(raw "$L" "$off" 1 1048576)
	expect 0 "segrekey($ss): rekey-segment $L --segment 2" \
		ctl rekey-segment "$L" --workspace wss --segment 2
	lc_diag_file "$LC_TMP/x.out"
	ctl --json dump "$L" >"$LC_TMP/d1.json"
	lc_eq "segrekey($ss): dump: generation advanced to 2" 2 "$(jget generation_max <"$LC_TMP/d1.json")"
	lc_eq "segrekey($ss): dump: other segments still at generation 1" 1 \
		"$(jget generation_min <"$LC_TMP/d1.json")"
	lc_eq "segrekey($ss): dump: header back to version 2" 2 "$(jget version <"$LC_TMP/d1.json")"
	[ "$(raw "$L" "$off" 2 1048576)" != "$c0" ] &&
		lc_ok "segrekey($ss): segment 2's ciphertext on the device changed" ||
		lc_notok "segrekey($ss): segment 2's ciphertext on the device changed"
	lc_eq "segrekey($ss): segment 1's ciphertext did not change" "$c1" "$(raw "$L" "$off" 1 1048576)"
	lc_run "segrekey($ss): open again" ctl open "$L" sr$n --workspace wss
	lc_eq "segrekey($ss): the kernel reads the same 8 MiB with the new DEK" "$srwant" \
		"$(sum /dev/mapper/sr$n 8388608)"
	expect 1 "segrekey($ss): rekey-segment of an open volume is refused" \
		ctl rekey-segment "$L" --workspace wss --segment 3
	grep -q "close it first\|in use" "$LC_TMP/x.out" && lc_ok "segrekey($ss): ... saying to close it" ||
		{ lc_notok "segrekey($ss): ... saying to close it"; lc_diag_file "$LC_TMP/x.out"; }
	c3=$(raw "$L" "$off" 3 1048576)
	expect 1 "segrekey($ss): rekey-segment of the loop device's backing file is refused while mapped" \
		ctl rekey-segment /tmp/sr$n.img --workspace wss --segment 3
	# Refused by the volume's uuid (open under any path: uuid-claim.c)
	# before the loop-device check would say it: either names $L.
	grep -q "is the backing file of $L\|is open as /dev/mapper/sr$n (device $L): close it first" "$LC_TMP/x.out" &&
		lc_ok "segrekey($ss): ... naming $L" ||
		{ lc_notok "segrekey($ss): ... naming $L"; lc_diag_file "$LC_TMP/x.out"; }
	lc_eq "segrekey($ss): ... and segment 3 is untouched" "$c3" "$(raw "$L" "$off" 3 1048576)"
	lc_run "segrekey($ss): close" ctl close sr$n
done
grep '"op":"rekey-segment"' "$AUDIT" | grep -q '"outcome":"success"' &&
	lc_ok "segrekey: audited as rekey-segment" || lc_notok "segrekey: audited as rekey-segment"

# ---- interrupted: the agent killed in the middle of segment 3, then resumed
L=$L1
touch "$PAUSE"
ctl rekey-segment "$L" --workspace wss --segment 3-4 >"$LC_TMP/bg.out" 2>&1 &
i=0 done=0
while [ $i -lt 300 ]; do
	ctl --json dump "$L" >"$LC_TMP/d2.json" 2>/dev/null
	done=$(jget sectors_done <"$LC_TMP/d2.json")
	[ -n "$done" ] && [ "$done" -gt 0 ] && break
	sleep 0.1
	i=$((i + 1))
done
if [ -n "$done" ] && [ "$done" -gt 0 ]; then
	lc_ok "segrekey: re-key of segment 3 held in its second zone ($done sectors done)"
else
	lc_notok "segrekey: re-key of segment 3 held in its second zone"
	lc_diag_file "$LC_TMP/d2.json"
fi
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
wait 2>/dev/null
rm -f "$PAUSE"
ctl --json dump "$L" >"$LC_TMP/d3.json"
lc_eq "segrekey: after the kill the header is version 3" 3 "$(jget version <"$LC_TMP/d3.json")"
lc_eq "segrekey: ... with the journal of segment 3" 3 \
	"$(sed -n '/"segment_rekey"/,/}/p' "$LC_TMP/d3.json" | jget segment)"
start_agent
lc_run "segrekey: agent restarted" ctl ping
expect 1 "segrekey: open of a volume with a re-key in progress is refused" \
	ctl open "$L" sr1 --workspace wss
grep -q "re-key of segment 3 in progress" "$LC_TMP/x.out" && grep -q -- "--resume" "$LC_TMP/x.out" &&
	lc_ok "segrekey: ... saying how to resume" ||
	{ lc_notok "segrekey: ... saying how to resume"; lc_diag_file "$LC_TMP/x.out"; }
expect 1 "segrekey: a re-run without --resume is refused" \
	ctl rekey-segment "$L" --workspace wss --segment 3-4
expect 0 "segrekey: rekey-segment --resume (range 1-4) finishes segment 3, then segment 4" \
	ctl --json rekey-segment "$L" --workspace wss --segment 1-4 --resume
lc_diag_file "$LC_TMP/x.out"
lc_eq "segrekey: ... reported as resumed" true "$(jget resumed <"$LC_TMP/x.out")"
lc_eq "segrekey: ... two segments re-keyed" 2 "$(jget rekeyed <"$LC_TMP/x.out")"
lc_eq "segrekey: ... reported from segment 3, not 1" 3 "$(jget first <"$LC_TMP/x.out")"
lc_eq "segrekey: ... naming 1-2 as not re-keyed" 1-2 "$(jget not_rekeyed <"$LC_TMP/x.out")"
ctl --json dump "$L" >"$LC_TMP/d4.json"
lc_eq "segrekey: header back to version 2" 2 "$(jget version <"$LC_TMP/d4.json")"
expect 1 "segrekey: --resume with nothing in progress is refused" \
	ctl rekey-segment "$L" --workspace wss --segment 3 --resume
lc_run "segrekey: open after the resumed re-key" ctl open "$L" sr1 --workspace wss
lc_eq "segrekey: the kernel reads the same 8 MiB after kill and resume" "$srwant" \
	"$(sum /dev/mapper/sr1 8388608)"
lc_run "segrekey: close" ctl close sr1

# ---- the kill switch stops a running re-key between zones (volume 2)
L=$L2
touch "$PAUSE"
ctl rekey-segment "$L" --workspace wss --segment 5-6 >"$LC_TMP/bg.out" 2>&1 &
BG=$!
i=0 done=0
while [ $i -lt 300 ]; do
	ctl --json dump "$L" >"$LC_TMP/d5.json" 2>/dev/null
	done=$(jget sectors_done <"$LC_TMP/d5.json")
	[ -n "$done" ] && [ "$done" -gt 0 ] && break
	sleep 0.1
	i=$((i + 1))
done
[ -n "$done" ] && [ "$done" -gt 0 ] && lc_ok "segrekey: re-key of segment 5 held ($done sectors done)" ||
	lc_notok "segrekey: re-key of segment 5 held"
c5=$(raw "$L" "$(jget data_offset <"$LC_TMP/d5.json")" 5 1048576)
lc_run "segrekey: revoke --keyconfig ksr while it runs" ctl revoke --keyconfig ksr
wait "$BG"
lc_eq "segrekey: ... the re-key fails with exit 5 (denied: the CMK was revoked)" 5 "$?"
grep -q "aborted: the CMK was revoked" "$LC_TMP/bg.out" && lc_ok "segrekey: ... aborted: the CMK was revoked" ||
	{ lc_notok "segrekey: ... aborted: the CMK was revoked"; lc_diag_file "$LC_TMP/bg.out"; }
# the agent answered after the re-key ended: the pause file is still there
lc_eq "segrekey: ... no further zone written" "$c5" \
	"$(raw "$L" "$(jget data_offset <"$LC_TMP/d5.json")" 5 1048576)"
grep '"op":"revoke.abort"' "$AUDIT" | grep -q 'aborted: the CMK was revoked' &&
	lc_ok "segrekey: ... audited as revoke.abort" || lc_notok "segrekey: ... audited as revoke.abort"
rm -f "$PAUSE"
expect 0 "segrekey: --resume finishes it afterwards (the local CMK still unwraps)" \
	ctl rekey-segment "$L" --workspace wss --segment 5-6 --resume
lc_diag_file "$LC_TMP/x.out"
lc_run "segrekey: open volume 2 after abort and resume" ctl open "$L" sr2 --workspace wss
lc_eq "segrekey: the kernel reads the same 8 MiB after abort and resume" "$srwant" \
	"$(sum /dev/mapper/sr2 8388608)"
lc_run "segrekey: close" ctl close sr2

# A volume with a detached header, open on a loop device: its data
# device holds no header, so no uuid says that it is in use.  Forced
# writers aimed at its storage through any path -- the backing file, the
# loop device itself, a second loop device over the same file -- are
# refused by the storage identity the agent recorded when it opened the
# volume, naming it; a format without force too (ciphertext has no
# signature); the data is intact.  Then the kernel's answer alone: a
# device-mapper device the agent does not know over the first loop
# device refuses a format of the second (sysfs holders).
rm -f /tmp/sd.img /tmp/lc-sr-sd.hdr
dd if=/dev/zero of=/tmp/sd.img bs=1M count=0 seek=16 2>/dev/null || lc_bail "sd.img"
D1=$(losetup -f)
losetup "$D1" /tmp/sd.img || lc_bail "losetup $D1"
lc_run "storage: format $D1 with a detached header" \
	ctl format "$D1" --workspace wss --project sd --header /tmp/lc-sr-sd.hdr --segment-size 1M --batch
lc_run "storage: open it as sd" ctl open "$D1" sd --workspace wss --header /tmp/lc-sr-sd.hdr
dd if="$LC_TMP/srdata" of=/dev/mapper/sd bs=1M count=8 oflag=direct 2>/dev/null ||
	lc_notok "storage: write 8 MiB to sd"
D2=$(losetup -f)
losetup "$D2" /tmp/sd.img || lc_bail "losetup $D2 (a second loop device over sd.img)"
raw0=$(sum "$D1" 16777216)
for target in /tmp/sd.img "$D1" "$D2"; do
	expect 1 "storage: format --force $target refused while sd is open" \
		ctl format "$target" --workspace wss --project x --segment-size 1M --force --batch
	grep -q "open as /dev/mapper/sd): close it first (formatting over it destroys it)" "$LC_TMP/x.out" &&
		lc_ok "storage: ... the refusal names sd and says to close it first" ||
		{ lc_notok "storage: ... refusal text"; lc_diag_file "$LC_TMP/x.out"; }
done
expect 1 "storage: cache --force $D2 refused while sd is open" \
	ctl cache "$D2" sdc --workspace wss --segment-size 1M --force
grep -q "open as /dev/mapper/sd): close it first (a cache over it destroys it)" "$LC_TMP/x.out" &&
	lc_ok "storage: ... the refusal names sd" || { lc_notok "storage: ... refusal text"; lc_diag_file "$LC_TMP/x.out"; }
[ -e /dev/mapper/sdc ] && lc_notok "storage: no cache device sdc" || lc_ok "storage: no cache device sdc"
expect 1 "storage: format $D2 without --force refused while sd is open" \
	ctl format "$D2" --workspace wss --project x --segment-size 1M --batch
grep -q "is storage in use" "$LC_TMP/x.out" && lc_ok "storage: ... says the storage is in use" ||
	{ lc_notok "storage: ... refusal text"; lc_diag_file "$LC_TMP/x.out"; }
# An agent restarted while sd is open knows its storage from the
# kernel's table (the mapping's device number), not from a path.
kill "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
start_agent
expect 1 "storage: after an agent restart, format --force $D2 is still refused" \
	ctl format "$D2" --workspace wss --project x --segment-size 1M --force --batch
grep -q "shares its backing file with .*open as /dev/mapper/sd): close it first" "$LC_TMP/x.out" &&
	lc_ok "storage: ... by the storage the restarted agent recorded" ||
	{ lc_notok "storage: ... refusal text after the restart"; lc_diag_file "$LC_TMP/x.out"; }
lc_eq "storage: the ciphertext on $D1 is unchanged" "$raw0" "$(sum "$D1" 16777216)"
lc_eq "storage: sd reads back its 8 MiB" "$srwant" "$(sum /dev/mapper/sd 8388608)"
lc_run "storage: close sd" ctl close sd
dmsetup create lc-foreign --table "0 32768 linear $D1 0" || lc_bail "dmsetup create lc-foreign"
expect 1 "storage: format --force $D2 refused while $D1 is mapped by dmsetup" \
	ctl format "$D2" --workspace wss --project x --segment-size 1M --force --batch
grep -q "/dev/mapper/lc-foreign): release it first" "$LC_TMP/x.out" &&
	lc_ok "storage: ... the kernel's answer names the holder" ||
	{ lc_notok "storage: ... refusal text"; lc_diag_file "$LC_TMP/x.out"; }
dmsetup remove lc-foreign
lc_eq "storage: the ciphertext on $D1 is still unchanged" "$raw0" "$(sum "$D1" 16777216)"
expect 0 "storage: closed and released, format --force $D2 is the admin's decision" \
	ctl format "$D2" --workspace wss --project x --segment-size 1M --force --batch
lc_diag_file "$LC_TMP/x.out"
losetup -d "$D2"
losetup -d "$D1"
rm -f /tmp/sd.img /tmp/lc-sr-sd.hdr

kill "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
losetup -d "$L1"
losetup -d "$L2"
rm -f /tmp/sr1.img /tmp/sr2.img
lc_diag_file /tmp/agent-sr.log 30
p=$(grep -c '^pass' "$LC_TALLY"); f=$(grep -c '^fail' "$LC_TALLY"); s=$(grep -c '^skip' "$LC_TALLY")
lc_say "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
