#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# End to end with a PKCS#11 HSM, in the QEMU guest (tests/e2e/providers.sh
# runs it): SoftHSM2 with a token made here by softhsm2-util and an AES
# key made by pkcs11-tool, the agent with [pkcs11]; keyconfig create,
# format (C_Encrypt), open (one C_Decrypt for the whole volume), I/O,
# close and open again; then the token's owner deletes the key and the
# watcher revokes the volume; a later open is refused.
cd "$(dirname "$0")" || exit 1
LC_CASE=e2e-pkcs11
. /lakecrypt/tests/lib.sh
mkdir -p "$LC_TMP"
: >"$LC_TALLY"
export PATH=/lakecrypt/bin:$PATH
STATE=/tmp/lc-p11-state SOCK=/run/lakecrypt/agent-p11.sock AUDIT=/tmp/lc-p11-audit.log
CONF=/tmp/lc-p11-agent.conf MOD=/usr/lib/softhsm/libsofthsm2.so PIN=e2e-pin-4711

ctl() { lakecryptctl --socket "$SOCK" --timeout 120 "$@"; }
jget() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" | head -n1; }
# p11_calls FIELD: the pkcs11 counter FIELD of status
p11_calls() { ctl --json status | sed -n '/"pkcs11"/,/}/p' | jget "$1"; }

. ./machine.sh
lc_machine
mkdir -p "$STATE" /run/lakecrypt /tmp/tokens
printf 'directories.tokendir = /tmp/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' >/tmp/softhsm2.conf
export SOFTHSM2_CONF=/tmp/softhsm2.conf
lc_run "softhsm2-util initialises token lc-e2e" \
	softhsm2-util --module "$MOD" --init-token --free --label lc-e2e --so-pin 12345678 --pin "$PIN"
lc_run "pkcs11-tool makes AES-256 key e2e-cmk (sensitive, never extractable)" \
	pkcs11-tool --module "$MOD" --token-label lc-e2e --login --pin "$PIN" --keygen \
	--key-type AES:32 --label e2e-cmk --id 0e2e --usage-decrypt --sensitive --private
printf '%s\n' "$PIN" >/tmp/pkcs11.pin
chmod 600 /tmp/pkcs11.pin
cat >"$CONF" <<CONF
[agent]
socket = $SOCK
state_dir = $STATE
audit_log = $AUDIT
log = stderr

[revocation]
watch_interval_s = 2

[pkcs11]
module = $MOD
token_label = lc-e2e
pin_file = /tmp/pkcs11.pin
CONF
lakecrypt-agent --config "$CONF" --foreground >/tmp/agent-p11.log 2>&1 &
AGENT_PID=$!
i=0
while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
lc_run "agent with [pkcs11] starts and answers ping" ctl ping

lc_run "keyconfig create --provider pkcs11 --key e2e-cmk" \
	ctl keyconfig create kc-hsm --provider pkcs11 --key e2e-cmk
lc_run "workspace wsh bound to the HSM key configuration" \
	ctl workspace bind wsh --keyconfig kc-hsm --devices /dev/ram0
lc_run "format /dev/ram0 in wsh: the KEK wrapped by the token (C_Encrypt, AES-GCM)" \
	ctl format /dev/ram0 --workspace wsh --project ph --segment-size 16K --batch
lc_eq "header names provider pkcs11" pkcs11 "$(ctl --json dump /dev/ram0 | jget provider)"
cmk=$(ctl --json dump /dev/ram0 | jget cmk_id)
case $cmk in
"pkcs11:token=lc-e2e;serial="*";object=e2e-cmk;id=%0e%2e;type=secret-key") lc_ok "header's cmk_id is the key's PKCS#11 URI ($cmk)" ;;
*) lc_notok "header's cmk_id is the key's PKCS#11 URI (got $cmk)" ;;
esac
# KEK unwraps from the audit (the watcher's canary probes, every 2 s, are
# cmk.canary records; the status counter counts them too).
u0=$(grep -c '"op":"cmk.unwrap"' "$AUDIT")
lc_run "open ph" ctl open /dev/ram0 ph --workspace wsh
u1=$(grep -c '"op":"cmk.unwrap"' "$AUDIT")
lc_eq "exactly one C_Decrypt for the open of 4,096 segments" 1 "$((u1 - u0))"
head -c 4194304 /dev/urandom >"$LC_TMP/data"
dd if="$LC_TMP/data" of=/dev/mapper/ph bs=1M oflag=direct 2>/dev/null
sum1=$(sha256sum <"$LC_TMP/data" | cut -d' ' -f1)
lc_run "close ph" ctl close ph
lc_run "open ph again" ctl open /dev/ram0 ph --workspace wsh
sum2=$(dd if=/dev/mapper/ph bs=1M count=4 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
lc_eq "data survives close/open through the HSM" "$sum1" "$sum2"
grep '"op":"cmk.unwrap"' "$AUDIT" | grep '"provider":"pkcs11"' | grep -q 'pkcs11:token=lc-e2e' &&
	lc_ok "audit records the HSM unwrap with the token and key" || lc_notok "audit records the HSM unwrap"
grep -q "$PIN" "$AUDIT" /tmp/agent-p11.log && lc_notok "no PIN in the audit log or agent log" ||
	lc_ok "no PIN in the audit log or agent log"

lc_run "the token's owner deletes the key (pkcs11-tool --delete-object)" \
	pkcs11-tool --module "$MOD" --token-label lc-e2e --login --pin "$PIN" --delete-object \
	--type secrkey --label e2e-cmk
st=$(lc_wait_revoked ph 30)
lc_eq "ph revoked by the watcher once the key is gone from the token" revoked "$st"
dd if=/dev/mapper/ph of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null &&
	lc_notok "I/O fails after revocation" || lc_ok "I/O fails after revocation"
grep -q '"op":"revoke"' "$AUDIT" &&
	grep '"op":"cmk.key_state"' "$AUDIT" | grep '"provider":"pkcs11"' | grep -q '"error_class":"denied"' &&
	lc_ok "audited: the watcher's key_state (denied) and the revocation" || lc_notok "revocation audited"
ctl close ph >/dev/null 2>&1
ctl open /dev/ram0 ph --workspace wsh >"$LC_TMP/o.out" 2>&1
st=$?
if [ $st -ne 0 ] && grep -q 'no secret key with label "e2e-cmk" on PKCS#11 token "lc-e2e"' "$LC_TMP/o.out"; then
	lc_ok "open after the key was deleted is refused, saying so (exit $st)"
else
	lc_notok "open after the key was deleted is refused (exit $st)"
	lc_diag_file "$LC_TMP/o.out"
fi

kill "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
lc_diag_file /tmp/agent-p11.log 30
p=$(grep -c '^pass' "$LC_TALLY"); f=$(grep -c '^fail' "$LC_TALLY"); s=$(grep -c '^skip' "$LC_TALLY")
lc_say "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
