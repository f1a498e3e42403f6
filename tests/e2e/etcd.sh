#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A fleet of two agents on one etcd registry, end to end, in the QEMU
# guest (tests/e2e/providers-host.sh boots it): the host runs a 3-member
# etcd cluster (tests/etcd/cluster.sh, mutual TLS) and an agent of its
# own on it; the guest's agent reaches the members through QEMU's
# restricted user network (guestfwd 10.0.2.130-132:2379).  The guest
# formats and opens a volume under a key configuration it writes to the
# shared registry; a connection to 10.0.2.133:8080 is the host's admin
# running `lakecryptctl revoke --keyconfig kc-fleet` on the host's agent,
# which holds no volume: its revocation record reaches the guest's agent
# through its etcd watch, which kills the guest's volume.
# Args: PREFIX TLS_TAR_BASE64 (the registry prefix; ca.pem, client.pem,
# client.key)
cd "$(dirname "$0")" || exit 1
LC_CASE=e2e-etcd
. /lakecrypt/tests/lib.sh
mkdir -p "$LC_TMP"
: >"$LC_TALLY"
export PATH=/lakecrypt/bin:$PATH
PREFIX=$1 TLS=$2
STATE=/tmp/lc-state SOCK=/run/lakecrypt/agent.sock AUDIT=/tmp/lc-audit.log CONF=/tmp/lc-agent.conf

ctl() { lakecryptctl --timeout 120 "$@"; }

. ./machine.sh
lc_machine_net
mkdir -p /tmp/etcd "$STATE" /run/lakecrypt
echo "$TLS" | base64 -d | tar -x -C /tmp/etcd || lc_bail "TLS files from the host"
chmod 600 /tmp/etcd/client.key
lc_run "etcd CA, client certificate and key from the host" test -s /tmp/etcd/client.key
cat >"$CONF" <<CONF
[agent]
socket = $SOCK
state_dir = $STATE
audit_log = $AUDIT
log = stderr

[registry]
backend = etcd
endpoints = https://10.0.2.130:2379,https://10.0.2.131:2379,https://10.0.2.132:2379
ca = /tmp/etcd/ca.pem
cert = /tmp/etcd/client.pem
key = /tmp/etcd/client.key
prefix = $PREFIX
watch_idle_s = 5
CONF
lakecrypt-agent --config "$CONF" --foreground >/tmp/agent.log 2>&1 &
AGENT_PID=$!
i=0
while [ ! -S "$SOCK" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
lc_run "agent with [registry] backend = etcd starts and answers ping" ctl ping
ctl status >"$LC_TMP/st.txt" 2>&1
grep -q '^Registry: etcd reachable' "$LC_TMP/st.txt"
lc_result $? "status: the registry is etcd, reachable through QEMU's network" || lc_diag_file "$LC_TMP/st.txt"

key=$(ctl --json kms create | sed -n 's/.*"key_id": "\([^"]*\)".*/\1/p')
lc_run "keyconfig kc-fleet written to etcd (a CMK of the guest's local KMS)" \
	ctl keyconfig create kc-fleet --key "$key"
lc_run "workspace wsf bound in etcd" ctl workspace bind wsf --keyconfig kc-fleet --devices /dev/ram0
lc_run "format /dev/ram0 in wsf" ctl format /dev/ram0 --workspace wsf --project pf --segment-size 16K --batch
lc_run "open pf" ctl open /dev/ram0 pf --workspace wsf
head -c 1048576 /dev/urandom >"$LC_TMP/data"
dd if="$LC_TMP/data" of=/dev/mapper/pf bs=64K oflag=direct 2>/dev/null
got=$(dd if=/dev/mapper/pf bs=64K count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
lc_eq "I/O through pf before the revocation" "$(sha256sum <"$LC_TMP/data" | cut -d' ' -f1)" "$got"

# The host's admin, on the host's agent (no volume of its own): waits
# until that agent sees kc-fleet, then revokes it.
r=$(timeout 120 nc 10.0.2.133 8080 </dev/null)
echo "$r" | grep -q 'Revocation record written for the fleet'
lc_result $? "the host's agent revokes kc-fleet and writes the revocation record" ||
	{ echo "$r" >"$LC_TMP/host.txt"; lc_diag_file "$LC_TMP/host.txt"; }
st=$(lc_wait_revoked pf 60)
lc_eq "pf revoked in the kernel by the host's record (its CMK stays enabled in the guest's KMS)" revoked "$st"
dd if=/dev/mapper/pf of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null &&
	lc_notok "I/O fails after the revocation" || lc_ok "I/O fails after the revocation"
ctl status >"$LC_TMP/st.txt" 2>&1
grep -q 'revocation records acted on 1 (volumes killed 1)' "$LC_TMP/st.txt"
lc_result $? "status: 1 revocation record acted on, 1 volume killed" || lc_diag_file "$LC_TMP/st.txt"
grep -q '"op":"registry.revocation"' "$AUDIT"
lc_result $? "the record's kill is audited (registry.revocation)" || lc_diag_file "$AUDIT" 20
grep -q "revocation record from agent .*volume(s) under CMK .* killed" /tmp/agent.log
lc_result $? "the agent's log names the record's agent and the kill" || lc_diag_file /tmp/agent.log 30

kill "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
grep -q 'PRIVATE KEY' /tmp/agent.log "$AUDIT" && lc_notok "no key material in the agent's log or audit" ||
	lc_ok "no key material in the agent's log or audit"
p=$(grep -c '^pass' "$LC_TALLY"); f=$(grep -c '^fail' "$LC_TALLY"); s=$(grep -c '^skip' "$LC_TALLY")
lc_say "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
