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
. tests/kms/lib-agent.sh	# agent_conf_checks, ta_start, ta_ctl, ...
zid=$work/ident
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

zconf() {	# zconf CLIENT_ID SECRET_FILE: the agent started as that client
	agent_conf_checks "$zid" 1 <<EOC
[azure-kv]
credentials = client-secret
tenant_id = $tenant
client_id = $1
client_secret_file = $2
authority = $vault
ca_bundle = $work/ca.pem
connect_timeout_ms = 2000
EOC
	ta_start "$zid" "ident (Azure): the agent starts as $1"
}

zconf "$cid" "$work/secret"
for k in same:$zkey other:$zkey2 fail:$zkey3; do
	out=$(ta_ctl --json keyconfig create "az-${k%%:*}" --provider azure-kv --key "${k#*:}")
	[ "$(ta_json kms_identity <<<"$out")" = "$want" ] &&
		ok "ident (Azure): keyconfig create az-${k%%:*} binds the application's oid and tid" ||
		notok "ident (Azure): create binds az-${k%%:*}" "$out"
done
grep -q "^KMS identity: *$want$" <<<"$(ta_ctl keyconfig show az-same)" &&
	ok "ident (Azure): keyconfig show prints it" || notok "ident (Azure): show" "$(ta_ctl keyconfig show az-same)"
# The same principal, the key disabled by its owner: a revocation.
sdk disable idk1 >/dev/null
out=$(ta_ctl --json check --cmk "$zkey")
[ "$(ta_json checks 0 outcome <<<"$out")" = denied ] && ta_revoked "$zkey" &&
	ok "ident (Azure): the bound principal, key disabled: denied, revoked" || notok "ident (Azure): same principal" "$out"
ta_stop

# Another principal (the client without a role): 403 ForbiddenByRbac on everything.
zconf "$deny_cid" "$work/denysecret"
out=$(ta_ctl --json check --cmk "$zkey2")
[ "$(ta_json checks 0 outcome <<<"$out")" = misconfigured ] &&
	[[ "$(ta_json checks 0 detail <<<"$out")" == "wrong KMS identity: bound $want, now $wdeny"* ]] && ! ta_revoked "$zkey2" &&
	ok "ident (Azure): another principal denied (ForbiddenByRbac): misconfigured, not revoked" ||
	notok "ident (Azure): other principal" "$out"
grep '"op":"cmk.identity"' "$zid/audit.log" | grep '"keyconfig":"az-other"' | grep -q '"error_class":"misconfigured"' &&
	ok "ident (Azure): ... audited (cmk.identity, misconfigured)" || notok "ident (Azure): audit" "$(tail -3 "$zid/audit.log")"
grep -q "wrong KMS identity: bound $want, now $wdeny" <<<"$(ta_ctl status)" &&
	ok "ident (Azure): status shows the wrong KMS identity" || notok "ident (Azure): status" "$(ta_ctl status)"
ta_stop
# The identity check fails (the token names nobody): the denial stands.
claims nooid
zconf "$deny_cid" "$work/denysecret"
out=$(ta_ctl --json check --cmk "$zkey3")
[ "$(ta_json checks 0 outcome <<<"$out")" = denied ] && [ "$(ta_json checks 0 identity <<<"$out")" = unknown ] && ta_revoked "$zkey3" &&
	ok "ident (Azure): the identity check fails: the denial stands (denied, revoked)" ||
	notok "ident (Azure): failing identity check" "$out"
ta_stop
claims ok
grep -qE 'Sanitizer|runtime error' "$zid/agent.log" && notok "ident (Azure): agent (ASan/UBSan) clean" "$(cat "$zid/agent.log")" ||
	ok "ident (Azure): agent (ASan/UBSan) ran clean"
grep -qE 'fake-client-secret|denied-client-secret|eyJ0eXAiOiJKV1QifQ\.' "$zid/agent.log" "$zid/audit.log" &&
	notok "ident (Azure): no secret or token in the agent's log or audit" ||
	ok "ident (Azure): no secret or token in the agent's log or audit"
