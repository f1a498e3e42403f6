#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# End to end with a KMIP server, in the QEMU guest (tests/e2e/providers-host.sh
# boots it): the agent reaches PyKMIP on the host over mutual TLS through
# QEMU's restricted user network (guestfwd 10.0.2.110:5696).  The TLS files
# come from 10.0.2.112:8080; a connection to 10.0.2.111:8080 is the key
# owner revoking the key in the KMIP server.  Format, open (one Decrypt),
# I/O, then Revoke and the watcher revokes the volume.
# Args: KEY_UNIQUE_IDENTIFIER
cd "$(dirname "$0")" || exit 1
LC_CASE=e2e-kmip
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
# kmip_calls FIELD: the kmip counter FIELD of status
kmip_calls() { ctl --json status | sed -n '/"kmip"/,/}/p' | jget "$1"; }

. ./machine.sh
lc_machine_net
mkdir -p /tmp/kmip "$STATE" /run/lakecrypt
timeout 30 nc 10.0.2.112 8080 </dev/null | base64 -d | tar -x -C /tmp/kmip || lc_bail "TLS files from the host"
chmod 600 /tmp/kmip/client.key
lc_run "CA, client certificate and key fetched from the host" test -s /tmp/kmip/client.key
cat >"$CONF" <<CONF
[agent]
socket = $SOCK
state_dir = $STATE
audit_log = $AUDIT
log = stderr

[revocation]
watch_interval_s = 2

[kmip]
server = 10.0.2.110:5696
ca_bundle = /tmp/kmip/ca.pem
client_cert = /tmp/kmip/client.pem
client_key = /tmp/kmip/client.key
CONF
lakecrypt-agent --config "$CONF" --foreground >/tmp/agent.log 2>&1 &
AGENT_PID=$!
i=0
while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
lc_run "agent starts and answers ping" ctl ping

lc_run "keyconfig create --provider kmip (GetAttributes over mutual TLS through QEMU's network)" \
	ctl keyconfig create kc-kmip --provider kmip --key "$KEY"
lc_run "workspace wsk bound to the KMIP key configuration" \
	ctl workspace bind wsk --keyconfig kc-kmip --devices /dev/ram0
lc_run "format /dev/ram0 in wsk: the KEK wrapped by the KMIP server (Encrypt, AES-GCM)" \
	ctl format /dev/ram0 --workspace wsk --project pk --segment-size 16K --batch
lc_eq "header names provider kmip" kmip "$(ctl --json dump /dev/ram0 | jget provider)"
lc_eq "header names the key's Unique Identifier" "$KEY" "$(ctl --json dump /dev/ram0 | jget cmk_id)"
u0=$(kek_unwraps)
lc_run "open pk" ctl open /dev/ram0 pk --workspace wsk
u1=$(kek_unwraps)
lc_eq "exactly one KMIP Decrypt for the open of 4,096 segments" 1 "$((u1 - u0))"
head -c 4194304 /dev/urandom >"$LC_TMP/data"
dd if="$LC_TMP/data" of=/dev/mapper/pk bs=1M oflag=direct 2>/dev/null
sum1=$(sha256sum <"$LC_TMP/data" | cut -d' ' -f1)
lc_run "close pk" ctl close pk
lc_run "open pk again" ctl open /dev/ram0 pk --workspace wsk
sum2=$(dd if=/dev/mapper/pk bs=1M count=4 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
lc_eq "data survives close/open through the KMIP server" "$sum1" "$sum2"
grep '"op":"cmk.unwrap"' "$AUDIT" | grep '"provider":"kmip"' | grep -q '"request_id":"batch-' &&
	lc_ok "audit records the KMIP unwrap with the server-echoed batch id" ||
	lc_notok "audit records the KMIP unwrap"

r=$(timeout 60 nc 10.0.2.111 8080 </dev/null | head -n1)
lc_eq "the key owner revokes the key in the KMIP server" revoked "$r"
st=$(lc_wait_revoked pk 30)
lc_eq "pk revoked by the watcher after Revoke in the KMIP server" revoked "$st"
dd if=/dev/mapper/pk of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null &&
	lc_notok "I/O fails after revocation" || lc_ok "I/O fails after revocation"
grep -q '"op":"revoke"' "$AUDIT" && lc_ok "revocation is audited" || lc_notok "revocation audited"
ctl close pk >/dev/null 2>&1
out=$(ctl open /dev/ram0 pk --workspace wsk 2>&1)
echo "$out" | grep -q 'Permission Denied' && lc_ok "open after Revoke is refused: the KMIP server said Permission Denied" ||
	lc_notok "open after Revoke refused ($out)"
d=$(kmip_calls denied)
[ "${d:-0}" -ge 1 ] && lc_ok "status counts the denied KMIP calls ($d)" || lc_notok "denied counter ($d)"

kill "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
grep -q 'PRIVATE KEY' /tmp/agent.log "$AUDIT" && lc_notok "no key material in the agent's log or audit" ||
	lc_ok "no key material in the agent's log or audit"
lc_diag_file /tmp/agent.log 30
p=$(grep -c '^pass' "$LC_TALLY"); f=$(grep -c '^fail' "$LC_TALLY"); s=$(grep -c '^skip' "$LC_TALLY")
lc_say "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
