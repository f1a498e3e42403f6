#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# End to end with Google Cloud KMS, in the QEMU guest (tests/e2e/providers-host.sh
# boots it): the agent reaches the project's fake Cloud KMS
# (tests/kms/fake-gcp-kms.py) on the host over TLS (test CA) through QEMU's
# restricted user network (guestfwd 10.0.2.120:8443), and takes its access
# token from the fake GCE metadata server (10.0.2.122:80), as on a GCE VM.
# 10.0.2.121:8080 is the same Cloud KMS API over plain HTTP, standing in for
# the key owner's console.  Format, open (one decrypt), I/O, then the owner
# disables the key version and the watcher revokes the volume.
# Args: KEY_NAME CA_PEM_BASE64
cd "$(dirname "$0")" || exit 1
LC_CASE=e2e-gcp
. /lakecrypt/tests/lib.sh
mkdir -p "$LC_TMP"
: >"$LC_TALLY"
export PATH=/lakecrypt/bin:$PATH
KEY=$1
STATE=/tmp/lc-state SOCK=/run/lakecrypt/agent.sock AUDIT=/tmp/lc-audit.log CONF=/tmp/lc-agent.conf

ctl() { lakecryptctl --timeout 120 "$@"; }
jget() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" | head -n1; }
# kek_unwraps: KEK unwraps so far, from the audit (one cmk.unwrap record per
# call; the watcher's canary probes every 2 s are cmk.canary records, and a
# status taken in the middle of one has counted it in one counter only).
kek_unwraps() { grep -c '"op":"cmk.unwrap"' "$AUDIT"; }
# gcp_calls FIELD: the gcp-kms counter FIELD of status
gcp_calls() { ctl --json status | sed -n '/"gcp-kms"/,/}/p' | jget "$1"; }
# owner STATE: what the key owner does in Cloud KMS: PATCH the primary
# version's state (REST v1, updateMask=state) with a token of the metadata server.
owner() {
	_t=$(printf 'GET /computeMetadata/v1/instance/service-accounts/default/token HTTP/1.1\r\nHost: metadata\r\nMetadata-Flavor: Google\r\nConnection: close\r\n\r\n' |
		timeout 20 nc 10.0.2.122 80 | sed -n 's/.*"access_token": *"\([^"]*\)".*/\1/p')
	_b="{\"state\":\"$1\"}"
	printf 'PATCH /v1/%s/cryptoKeyVersions/1?updateMask=state HTTP/1.1\r\nHost: cloudkms\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
		"$KEY" "$_t" "${#_b}" "$_b" | timeout 20 nc 10.0.2.121 8080 | head -n1
}

. ./machine.sh
lc_machine_net
echo "$2" | base64 -d >/tmp/ca.pem || lc_bail "CA"
mkdir -p "$STATE" /run/lakecrypt
cat >"$CONF" <<CONF
[agent]
socket = $SOCK
state_dir = $STATE
audit_log = $AUDIT
log = stderr

[revocation]
watch_interval_s = 2

[gcp-kms]
endpoint = https://10.0.2.120:8443
ca_bundle = /tmp/ca.pem
credentials = metadata
metadata_endpoint = http://10.0.2.122:80
CONF
lakecrypt-agent --config "$CONF" --foreground >/tmp/agent.log 2>&1 &
AGENT_PID=$!
i=0
while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
lc_run "agent starts and answers ping" ctl ping

lc_run "keyconfig create --provider gcp-kms (token from the metadata server, get over TLS through QEMU's network)" \
	ctl keyconfig create kc-gcp --provider gcp-kms --key "$KEY"
lc_run "workspace wsg bound to the Cloud KMS key configuration" \
	ctl workspace bind wsg --keyconfig kc-gcp --devices /dev/ram0
lc_run "format /dev/ram0 in wsg: the KEK wrapped by Cloud KMS (encrypt, AAD and CRC32C)" \
	ctl format /dev/ram0 --workspace wsg --project pg --segment-size 16K --batch
lc_eq "header names provider gcp-kms" gcp-kms "$(ctl --json dump /dev/ram0 | jget provider)"
lc_eq "header names the key" "$KEY" "$(ctl --json dump /dev/ram0 | jget cmk_id)"
u0=$(kek_unwraps)
lc_run "open pg" ctl open /dev/ram0 pg --workspace wsg
u1=$(kek_unwraps)
lc_eq "exactly one Cloud KMS decrypt for the open of 4,096 segments" 1 "$((u1 - u0))"
head -c 4194304 /dev/urandom >"$LC_TMP/data"
dd if="$LC_TMP/data" of=/dev/mapper/pg bs=1M oflag=direct 2>/dev/null
sum1=$(sha256sum <"$LC_TMP/data" | cut -d' ' -f1)
lc_run "close pg" ctl close pg
lc_run "open pg again" ctl open /dev/ram0 pg --workspace wsg
sum2=$(dd if=/dev/mapper/pg bs=1M count=4 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
lc_eq "data survives close/open through Cloud KMS" "$sum1" "$sum2"
grep '"op":"cmk.unwrap"' "$AUDIT" | grep -q '"provider":"gcp-kms"' && lc_ok "audit records the Cloud KMS unwrap" ||
	lc_notok "audit records the Cloud KMS unwrap"
grep '"op":"cmk.wrap"' "$AUDIT" | grep -q "cryptoKeyVersions/1" && lc_ok "audit records the key version that wrapped the KEK" ||
	lc_notok "audit records the key version (cmk.wrap)"

r=$(owner DISABLED)
lc_diag "PATCH state DISABLED: $r"
st=$(lc_wait_revoked pg 30)
lc_eq "pg revoked by the watcher after the key owner disabled the key version" revoked "$st"
dd if=/dev/mapper/pg of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null &&
	lc_notok "I/O fails after revocation" || lc_ok "I/O fails after revocation"
grep -q '"op":"revoke"' "$AUDIT" && lc_ok "revocation is audited" || lc_notok "revocation audited"
ctl close pg >/dev/null 2>&1
r=$(owner ENABLED)
lc_diag "PATCH state ENABLED: $r"
lc_run "the key version enabled again: the volume opens again (data at rest intact)" ctl open /dev/ram0 pg --workspace wsg
sum3=$(dd if=/dev/mapper/pg bs=1M count=4 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
lc_eq "data intact after revoke and re-enable" "$sum1" "$sum3"

kill "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
grep -qE 'ya29\.|Bearer' /tmp/agent.log "$AUDIT" && lc_notok "no access token in the agent's log or audit" ||
	lc_ok "no access token in the agent's log or audit"
lc_diag_file /tmp/agent.log 30
p=$(grep -c '^pass' "$LC_TALLY"); f=$(grep -c '^fail' "$LC_TALLY"); s=$(grep -c '^skip' "$LC_TALLY")
lc_say "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
