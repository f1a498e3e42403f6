# SPDX-License-Identifier: GPL-2.0
# Sourced by tests/kms/azure.sh (uses its ok/notok, expect, run, field, sdk,
# $vault, $tenant, $cid, $work, $py, $top, $sec): the Azure principal bound
# to a key configuration (issue 10).  The principal is the oid and tid
# claims of the access token the provider already obtains; the fake
# identity platform issues them (tests/kms/fake-azure-kv.py), and the
# official SDK (azure-identity) reads the same claims from its own token.
# The denied principal is the fake's client ...d0 (403 ForbiddenByRbac on
# everything), which must be misconfigured for a key configuration bound
# to another principal, never a kill.
zid=$work/ident
mkdir -p "$zid/state" && chmod 700 "$zid/state"
deny_cid=00000000-0000-0000-0000-0000000000d0
claims() {	# claims MODE: the claims of tokens issued from now on
	"$py" -c 'import ssl, sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="POST"), context=ssl.create_default_context(cafile=sys.argv[2]))' \
		"$vault/_test/claims?mode=$1" "$work/ca.pem"
}
zkid=$(sdk create idk1) zkid2=$(sdk create idk2) zkid3=$(sdk create idk3)
zkey=$vault/keys/idk1 zkey2=$vault/keys/idk2 zkey3=$vault/keys/idk3
want=$(sdk claims secret | sed -n 's/^claims //p')
wdeny=$(sdk claims deny | sed -n 's/^claims //p')
[[ "$want" == oid=*";tid=$tenant" ]] && [ -n "$wdeny" ] && [ "$want" != "$wdeny" ] &&
	ok "ident (Azure): azure-identity's token names the application (oid, tid claims): $want" ||
	notok "ident (Azure): SDK token claims" "$want / $wdeny $zkid $zkid2 $zkid3"
expect "ident (Azure): the provider names its principal from its token" ok 5000 "${sec[@]}" ident "$zkey"
[ "$(field principal)" = "$want" ] && ok "ident (Azure): ... the same oid and tid as the SDK's token" ||
	notok "ident (Azure): provider principal" "$last"
for m in nooid longoid badoid intoid notjson notb64 huge opaque; do
	claims "$m"
	expect "ident (Azure): hostile token claims ($m) refused" TRANSIENT 5000 "${sec[@]}" ident "$zkey"
	[ -z "$(field principal)" ] && grep -qE 'no usable oid|not a JWT|not base64url|not one JSON|longer than|no access_token of base64url' <<<"$last" &&
		ok "ident (Azure): ... no principal taken, the error says why ($m)" || notok "ident (Azure): $m" "$last"
done
claims ok

zconf() {	# zconf CLIENT_ID SECRET_FILE
	cat >"$zid/agent.conf" <<EOC
[agent]
socket = $zid/agent.sock
state_dir = $zid/state
audit_log = $zid/audit.log
audit_fsync = no
admin_group = root

[kms]
retry_attempts = 1
deadline_ms = 5000

[revocation]
watch_interval_s = 3600
confirm_denials = 1
confirm_window_s = 3960

[azure-kv]
credentials = client-secret
tenant_id = $tenant
client_id = $1
client_secret_file = $2
authority = $vault
ca_bundle = $work/ca.pem
connect_timeout_ms = 2000
EOC
	rm -f "$zid/agent.sock"
	"$top/build/agent-san/lakecrypt-agent" -c "$zid/agent.conf" -f >>"$zid/agent.log" 2>&1 &
	zpid=$!
	pids+=($zpid)
	for _ in $(seq 100); do [ -S "$zid/agent.sock" ] && break; sleep 0.1; done
	[ -S "$zid/agent.sock" ] || notok "ident (Azure): the agent starts as $1" "$(tail -20 "$zid/agent.log")"
}
zstop() { kill "$zpid"; wait "$zpid" 2>/dev/null; }
zct() { "$top/build/agent-san/lakecryptctl" --socket "$zid/agent.sock" "$@" 2>&1; }
zget() { "$py" -c 'import json, sys
d = json.load(sys.stdin)
for k in sys.argv[1:]:
    d = d[int(k)] if isinstance(d, list) else d[k]
print(d)' "$@" 2>&1; }
zrevoked() {	# zrevoked KEY: a cmk.revocation record names the key
	"$py" -c 'import json, sys
sys.exit(0 if any(r.get("op") == "cmk.revocation" and sys.argv[2] in (r.get("cmk_id") or "")
                  for r in map(json.loads, open(sys.argv[1]))) else 1)' "$zid/audit.log" "$1"; }

zconf "$cid" "$work/secret"
for k in same:$zkey other:$zkey2 fail:$zkey3; do
	out=$(zct --json keyconfig create "az-${k%%:*}" --provider azure-kv --key "${k#*:}")
	[ "$(zget kms_identity <<<"$out")" = "$want" ] &&
		ok "ident (Azure): keyconfig create az-${k%%:*} binds the application's oid and tid" ||
		notok "ident (Azure): create binds az-${k%%:*}" "$out"
done
grep -q "^KMS identity: *$want$" <<<"$(zct keyconfig show az-same)" &&
	ok "ident (Azure): keyconfig show prints it" || notok "ident (Azure): show" "$(zct keyconfig show az-same)"
# The same principal, the key disabled by its owner: a revocation.
sdk disable idk1 >/dev/null
out=$(zct --json check --cmk "$zkey")
[ "$(zget checks 0 outcome <<<"$out")" = denied ] && zrevoked "$zkey" &&
	ok "ident (Azure): the bound principal, key disabled: denied, revoked" || notok "ident (Azure): same principal" "$out"
zstop

# Another principal (the client without a role): 403 ForbiddenByRbac on everything.
zconf "$deny_cid" "$work/denysecret"
out=$(zct --json check --cmk "$zkey2")
[ "$(zget checks 0 outcome <<<"$out")" = misconfigured ] &&
	[[ "$(zget checks 0 detail <<<"$out")" == "wrong KMS identity: bound $want, now $wdeny"* ]] && ! zrevoked "$zkey2" &&
	ok "ident (Azure): another principal denied (ForbiddenByRbac): misconfigured, not revoked" ||
	notok "ident (Azure): other principal" "$out"
grep '"op":"cmk.identity"' "$zid/audit.log" | grep '"keyconfig":"az-other"' | grep -q '"error_class":"misconfigured"' &&
	ok "ident (Azure): ... audited (cmk.identity, misconfigured)" || notok "ident (Azure): audit" "$(tail -3 "$zid/audit.log")"
grep -q "wrong KMS identity: bound $want, now $wdeny" <<<"$(zct status)" &&
	ok "ident (Azure): status shows the wrong KMS identity" || notok "ident (Azure): status" "$(zct status)"
zstop
# The identity check fails (the token names nobody): the denial stands.
claims nooid
zconf "$deny_cid" "$work/denysecret"
out=$(zct --json check --cmk "$zkey3")
[ "$(zget checks 0 outcome <<<"$out")" = denied ] && [ "$(zget checks 0 identity <<<"$out")" = unknown ] && zrevoked "$zkey3" &&
	ok "ident (Azure): the identity check fails: the denial stands (denied, revoked)" ||
	notok "ident (Azure): failing identity check" "$out"
zstop
claims ok
grep -qE 'Sanitizer|runtime error' "$zid/agent.log" && notok "ident (Azure): agent (ASan/UBSan) clean" "$(cat "$zid/agent.log")" ||
	ok "ident (Azure): agent (ASan/UBSan) ran clean"
grep -qE 'fake-client-secret|denied-client-secret|eyJ0eXAiOiJKV1QifQ\.' "$zid/agent.log" "$zid/audit.log" &&
	notok "ident (Azure): no secret or token in the agent's log or audit" ||
	ok "ident (Azure): no secret or token in the agent's log or audit"
