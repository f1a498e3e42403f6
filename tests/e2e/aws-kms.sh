#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# End to end with AWS KMS, in the QEMU guest (tests/e2e/providers-host.sh
# boots it): the agent reaches local-kms on the host through stunnel4 (TLS,
# test CA) over QEMU's restricted user network (guestfwd 10.0.2.100:8443);
# 10.0.2.101:8080 is local-kms itself, plain, standing in for the key
# owner's console; 10.0.2.102:8443 is STS (moto, TLS, the same CA).
# keyconfig create binds the agent's principal (sts:GetCallerIdentity);
# format, open (one Decrypt), I/O, then the owner disables the key and the
# watcher revokes the volume.
# Args: KEY_ARN CA_PEM_BASE64 ACCESS_KEY_ID SECRET_ACCESS_KEY PRINCIPAL_ARN
cd "$(dirname "$0")" || exit 1
LC_CASE=e2e-aws
. /lakecrypt/tests/lib.sh
mkdir -p "$LC_TMP"
: >"$LC_TALLY"
export PATH=/lakecrypt/bin:$PATH
KEY=$1
export AWS_ACCESS_KEY_ID=$3 AWS_SECRET_ACCESS_KEY=$4
STATE=/tmp/lc-state SOCK=/run/lakecrypt/agent.sock AUDIT=/tmp/lc-audit.log CONF=/tmp/lc-agent.conf

ctl() { lakecryptctl --timeout 120 "$@"; }
jget() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" | head -n1; }
# kek_unwraps: KEK unwraps so far, from the audit (one cmk.unwrap record per
# call; the watcher's canary probes every 2 s are cmk.canary records, and a
# status taken in the middle of one has counted it in one counter only).
kek_unwraps() { grep -c '"op":"cmk.unwrap"' "$AUDIT"; }
# aws_calls FIELD: the aws-kms counter FIELD of status
aws_calls() { ctl --json status | sed -n '/"aws-kms"/,/}/p' | jget "$1"; }
# owner OPERATION: what the key owner does in KMS (local-kms does not check signatures)
owner() {
	_b="{\"KeyId\":\"$KEY\"}"
	printf 'POST / HTTP/1.1\r\nHost: kms\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: TrentService.%s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
		"$1" "${#_b}" "$_b" | timeout 20 nc 10.0.2.101 8080 | head -n1
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

[aws-kms]
endpoint = https://10.0.2.100:8443
region = eu-west-2
ca_bundle = /tmp/ca.pem
credentials = env
sts_endpoint = https://10.0.2.102:8443/
CONF
lakecrypt-agent --config "$CONF" --foreground >/tmp/agent.log 2>&1 &
AGENT_PID=$!
i=0
while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
lc_run "agent starts and answers ping" ctl ping

ctl keyconfig create kc-aws --provider aws-kms --key "$KEY" >"$LC_TMP/kc.out" 2>&1 &&
	lc_ok "keyconfig create --provider aws-kms (DescribeKey over TLS through QEMU's network)" ||
	{ lc_notok "keyconfig create --provider aws-kms"; lc_diag_file "$LC_TMP/kc.out" 10; }
lc_eq "keyconfig create binds the agent's principal (sts:GetCallerIdentity at STS through QEMU's network)" \
	"$5" "$(ctl --json keyconfig show kc-aws | jget kms_identity)"
ctl keyconfig show kc-aws | grep -q "KMS identity: *$5\$" && lc_ok "keyconfig show names the principal" ||
	lc_notok "keyconfig show names the principal"
! grep -qiE "unbound|not bound" "$LC_TMP/kc.out" /tmp/agent.log &&
	lc_ok "no \"unbound\" warning from lakecryptctl or the agent" ||
	{ lc_notok "no \"unbound\" warning"; lc_diag_file /tmp/agent.log 10; }
lc_run "workspace wsa bound to the AWS key configuration" \
	ctl workspace bind wsa --keyconfig kc-aws --devices /dev/ram0
lc_run "format /dev/ram0 in wsa: the KEK wrapped by AWS KMS (Encrypt)" \
	ctl format /dev/ram0 --workspace wsa --project pa --segment-size 16K --batch
lc_eq "header names provider aws-kms" aws-kms "$(ctl --json dump /dev/ram0 | jget provider)"
lc_eq "header names the key ARN" "$KEY" "$(ctl --json dump /dev/ram0 | jget cmk_id)"
u0=$(kek_unwraps)
lc_run "open pa" ctl open /dev/ram0 pa --workspace wsa
u1=$(kek_unwraps)
lc_eq "exactly one AWS KMS Decrypt for the open of 4,096 segments" 1 "$((u1 - u0))"
head -c 4194304 /dev/urandom >"$LC_TMP/data"
dd if="$LC_TMP/data" of=/dev/mapper/pa bs=1M oflag=direct 2>/dev/null
sum1=$(sha256sum <"$LC_TMP/data" | cut -d' ' -f1)
lc_run "close pa" ctl close pa
lc_run "open pa again" ctl open /dev/ram0 pa --workspace wsa
sum2=$(dd if=/dev/mapper/pa bs=1M count=4 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
lc_eq "data survives close/open through AWS KMS" "$sum1" "$sum2"
grep '"op":"cmk.unwrap"' "$AUDIT" | grep -q '"provider":"aws-kms"' && lc_ok "audit records the AWS unwrap" ||
	lc_notok "audit records the AWS unwrap"

r=$(owner DisableKey)
lc_diag "DisableKey: $r"
st=$(lc_wait_revoked pa 30)
lc_eq "pa revoked by the watcher after the key owner disabled the CMK" revoked "$st"
dd if=/dev/mapper/pa of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null &&
	lc_notok "I/O fails after revocation" || lc_ok "I/O fails after revocation"
grep -q '"op":"revoke"' "$AUDIT" && lc_ok "revocation is audited" || lc_notok "revocation audited"
ctl close pa >/dev/null 2>&1
r=$(owner EnableKey)
lc_run "the key enabled again: the volume opens again (data at rest intact)" ctl open /dev/ram0 pa --workspace wsa
sum3=$(dd if=/dev/mapper/pa bs=1M count=4 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
lc_eq "data intact after revoke and re-enable" "$sum1" "$sum3"

kill "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
lc_diag_file /tmp/agent.log 30
p=$(grep -c '^pass' "$LC_TALLY"); f=$(grep -c '^fail' "$LC_TALLY"); s=$(grep -c '^skip' "$LC_TALLY")
lc_say "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
