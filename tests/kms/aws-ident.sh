# SPDX-License-Identifier: GPL-2.0
# Sourced by tests/kms/check.sh (uses its ok/notok, expect, field, run, $work,
# $p_fake, $p_motls, $py, $top, $fk): the KMS principal bound to a key
# configuration (issue 10).  An agent running as another principal than
# the one the admin set up is denied everything although nothing was
# revoked; that must be MISCONFIG, never a kill.
#   - moto (the real STS emulator): IAM users alice and bob, made with
#     botocore; its GetCallerIdentity names them (botocore and the agent's
#     provider agree);
#   - the fake endpoint (tests/kms/fake-aws.py): the KMS that denies a
#     principal (AccessDeniedException), and hostile STS answers; its
#     GetCallerIdentity is read by botocore's own STS client first;
#   - the agent: keyconfig create binds the principal (keyconfig show,
#     --json, audit); the same principal denied -> denied, revoked; another
#     one -> misconfigured, no revocation, audited, shown in status; the
#     identity check failing -> denied as before; no binding -> as before.
. tests/kms/lib-agent.sh	# agent_conf_checks, ta_start, ta_ctl, ...
id=$work/ident
mkdir -p "$id"
post() {	# post URL JSON: an unsigned admin POST to the fake endpoint
	"$py" -c 'import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
urllib.request.urlopen(urllib.request.Request(sys.argv[2], data=sys.argv[3].encode(), method="POST"), context=ctx).read()' \
		"$work/ca.pem" "$1" "$2"
}
users=$("$py" - "https://127.0.0.1:$p_motls" "$work/ca.pem" <<'PY' 2>&1
import sys, botocore.session
s = botocore.session.get_session()
def cl(svc, ak='AKIDFAKE', sk='fakeSecretKey/0123456789abcdefghijklmnopqrstu'):
    return s.create_client(svc, region_name='eu-west-2', endpoint_url=sys.argv[1], verify=sys.argv[2],
                           aws_access_key_id=ak, aws_secret_access_key=sk)
iam = cl('iam')
for u in ('alice', 'bob'):
    iam.create_user(UserName=u)
    k = iam.create_access_key(UserName=u)['AccessKey']
    arn = cl('sts', k['AccessKeyId'], k['SecretAccessKey']).get_caller_identity()['Arn']
    print(u, k['AccessKeyId'], k['SecretAccessKey'], arn)
PY
)
read -r _ a_id a_sk a_arn < <(grep '^alice ' <<<"$users")
read -r _ b_id b_sk b_arn < <(grep '^bob ' <<<"$users")
[[ "$a_arn" == arn:aws:iam::*:user/alice ]] && [[ "$b_arn" == arn:aws:iam::*:user/bob ]] &&
	ok "ident (AWS): moto: IAM users alice and bob made with botocore; its GetCallerIdentity names them" ||
	notok "ident: moto users" "$users"
post "https://127.0.0.1:$p_fake/admin/creds" "{\"akid\":\"$a_id\",\"secret\":\"$a_sk\",\"arn\":\"$a_arn\"}" &&
post "https://127.0.0.1:$p_fake/admin/creds" "{\"akid\":\"$b_id\",\"secret\":\"$b_sk\",\"arn\":\"$b_arn\"}" ||
	notok "ident: register alice and bob at the fake endpoint"
as_alice() { AWS_ACCESS_KEY_ID=$a_id AWS_SECRET_ACCESS_KEY=$a_sk "$@"; }
as_bob() { AWS_ACCESS_KEY_ID=$b_id AWS_SECRET_ACCESS_KEY=$b_sk "$@"; }
mo_sts=https://127.0.0.1:$p_motls/

# ---- the provider: GetCallerIdentity at moto, and at the fake (hostile answers)
as_alice expect "ident (AWS): GetCallerIdentity at moto, signed as the KMS calls" ok 5000 \
	"${fk[@]}" --sts "$mo_sts" ident "$(arn ok-id1)"
[ "$(field principal)" = "$a_arn" ] && ok "ident (AWS): the provider names alice as botocore does ($a_arn)" ||
	notok "ident: provider principal (alice)" "$last"
as_bob expect "ident (AWS): ... and bob" ok 5000 "${fk[@]}" --sts "$mo_sts" ident "$(arn ok-id1)"
[ "$(field principal)" = "$b_arn" ] && ok "ident (AWS): the provider names bob" || notok "ident: bob" "$last"
sdk=$("$py" -c '
import sys, botocore.session
c = botocore.session.get_session().create_client("sts", region_name="eu-west-2", endpoint_url=sys.argv[1],
    verify=sys.argv[2], aws_access_key_id=sys.argv[3], aws_secret_access_key=sys.argv[4])
print(c.get_caller_identity()["Arn"])' "https://127.0.0.1:$p_fake/sts/ok/" "$work/ca.pem" "$a_id" "$a_sk" 2>&1)
[ "$sdk" = "$a_arn" ] && ok "ident (AWS): botocore's STS client reads the fake GetCallerIdentity answer" ||
	notok "ident: fake STS with botocore" "$sdk"
as_alice expect "ident (AWS): the fake STS checks the provider's signature (botocore)" ok 5000 \
	"${fk[@]}" --sts "https://127.0.0.1:$p_fake/sts/ok/" ident "$(arn ok-id1)"
[ "$(field principal)" = "$a_arn" ] && grep -q "SIGV4 MATCH STS.GetCallerIdentity $a_id" "$work/fake.log" &&
	ok "ident (AWS): botocore computes the same STS signature" || notok "ident: STS signature" "$last"
expect "ident (AWS): an assumed role" ok 5000 "${fk[@]}" --sts "https://127.0.0.1:$p_fake/sts/assumed/" ident "$(arn ok-id1)"
r1=$(field principal)
run "${fk[@]}" match "$r1" "arn:aws:sts::111122223333:assumed-role/lakecrypt-node/another-session"
[ "$(field match)" = yes ] && ok "ident (AWS): an assumed role is compared on the role, not the session ($r1)" ||
	notok "ident: assumed-role match" "$r1 $last"
run "${fk[@]}" match "$r1" "arn:aws:sts::111122223333:assumed-role/other-role/${r1##*/}"
[ "$(field match)" = no ] && ok "ident (AWS): ... another role with the same session name is another principal" ||
	notok "ident: other role" "$last"
run "${fk[@]}" match "$a_arn" "$b_arn"
[ "$(field match)" = no ] && ok "ident (AWS): alice is not bob" || notok "ident: users differ" "$last"
for m in oversized:TRANSIENT:large malformed:TRANSIENT:not\ a\ GetCallerIdentityResponse \
	 noarn:TRANSIENT:no\ usable\ Arn twoarn:TRANSIENT:more\ than\ one\ Arn \
	 badarn:TRANSIENT:not\ an\ IAM\ or\ STS\ principal longarn:TRANSIENT:more\ than\ the \
	 account:TRANSIENT:Account\ does\ not\ match denied:DENIED:AccessDenied \
	 throttle:TRANSIENT:Throttling hang:TRANSIENT:; do
	mode=${m%%:*} rest=${m#*:} cls=${rest%%:*} msg=${rest#*:}
	expect "ident (AWS): hostile STS answer ($mode) refused" "$cls" 3000 --attempt-timeout 1000 \
		"${fk[@]}" --sts "https://127.0.0.1:$p_fake/sts/$mode/" ident "$(arn ok-id1)"
	[ -z "$(field principal)" ] && grep -q "$msg" <<<"$last" &&
		ok "ident (AWS): ... no principal taken, the error says why ($mode)" || notok "ident: $mode message" "$last"
done
expect "ident (AWS): sts_endpoint must be https" MISCONFIG 2000 "${fk[@]}" --sts "http://127.0.0.1:$p_fake/" ident "$(arn ok-id1)"

# ---- the agent ---------------------------------------------------------------
iconf() {	# iconf STS_URL: the agent's configuration, KMS the fake endpoint
	# only the checks below probe; one denial confirms (each case its own key)
	agent_conf_checks "$id" 1 <<EOC
[aws-kms]
endpoint = https://127.0.0.1:$p_fake
region = eu-west-2
ca_bundle = $work/ca.pem
credentials = env
sts_endpoint = $1
EOC
}
istart() {	# istart alice|bob
	local k=$a_id s=$a_sk
	[ "$1" = alice ] || k=$b_id s=$b_sk
	ta_start "$id" "ident: the agent starts as $1" AWS_ACCESS_KEY_ID="$k" AWS_SECRET_ACCESS_KEY="$s"
}
deny() { post "https://127.0.0.1:$p_fake/admin/deny" "{\"key\":\"$1\",\"akids\":[${2:+\"$2\"}]}"; }
revoked() {	# revoked KEY: a cmk.revocation record names the key
	"$py" -c 'import json, sys
sys.exit(0 if any(r.get("op") == "cmk.revocation" and r.get("cmk_id") == sys.argv[2]
                  for r in map(json.loads, open(sys.argv[1]))) else 1)' "$id/audit.log" "$1"; }
ksame=$(arn ok-idsame) kother=$(arn ok-idother) kfail=$(arn ok-idfail) kold=$(arn ok-idold)

iconf "$mo_sts"
istart alice
for k in same:$ksame other:$kother fail:$kfail; do
	out=$(ta_ctl --json keyconfig create "id-${k%%:*}" --provider aws-kms --key "${k#*:}")
	[ "$(ta_json kms_identity <<<"$out")" = "$a_arn" ] &&
		ok "ident (AWS): keyconfig create id-${k%%:*} binds the agent's principal (alice)" ||
		notok "ident: create binds id-${k%%:*}" "$out"
done
out=$(ta_ctl keyconfig show id-same)
grep -q "^KMS identity: *$a_arn$" <<<"$out" && ok "ident (AWS): keyconfig show prints the bound principal" ||
	notok "ident: keyconfig show" "$out"
[ "$(ta_ctl --json keyconfig show id-same | ta_json kms_identity)" = "$a_arn" ] &&
	ok "ident (AWS): keyconfig show --json has kms_identity" || notok "ident: show --json" "$(ta_ctl --json keyconfig show id-same)"
"$py" -c 'import json, sys
sys.exit(0 if any(r.get("op") == "cmk.identity" and r.get("keyconfig") == "id-same" and
                  r.get("outcome") == "success" and r.get("detail") == "bound " + sys.argv[2]
                  for r in map(json.loads, open(sys.argv[1]))) else 1)' "$id/audit.log" "$a_arn" &&
	ok "ident (AWS): the binding is audited (cmk.identity, success)" || notok "ident: create audit" "$(cat "$id/audit.log")"
[ "$(ta_json keyconfigs 0 kms_identity < "$id/state/registry.json")" = "$a_arn" ] &&
	ok "ident (AWS): registry.json keeps the binding" || notok "ident: registry" "$(cat "$id/state/registry.json")"

# No denial: nothing to check the principal against, and check says so.
out=$(ta_ctl --json check --cmk "$ksame")
[ "$(ta_json checks 0 outcome <<<"$out")" = ok ] && [ "$(ta_json checks 0 identity <<<"$out")" = "not checked" ] &&
	ok "ident (AWS): a check with no denial says identity not checked (not unbound)" || notok "ident: not checked" "$out"

# Same principal denied: a revocation, as before.
deny "$ksame" "$a_id"
out=$(ta_ctl --json check --cmk "$ksame")
[ "$(ta_json checks 0 outcome <<<"$out")" = denied ] && [ "$(ta_json checks 0 identity <<<"$out")" = same ] &&
	revoked "$ksame" && ok "ident (AWS): the bound principal itself denied: denied, revoked (identity same)" ||
	notok "ident: same principal denied" "$out"
ta_stop

# Another principal (bob) on the same registry: denied everywhere.
istart bob
deny "$kother" "$b_id"
out=$(ta_ctl --json check --cmk "$kother")
[ "$(ta_json checks 0 outcome <<<"$out")" = misconfigured ] &&
	[[ "$(ta_json checks 0 detail <<<"$out")" == "wrong KMS identity: bound $a_arn, now $b_arn"* ]] && ! revoked "$kother" &&
	ok "ident (AWS): another principal denied: misconfigured (wrong KMS identity: bound alice, now bob), not revoked" ||
	notok "ident: other principal denied" "$out"
grep '"op":"cmk.identity"' "$id/audit.log" | grep "\"keyconfig\":\"id-other\"" |
	grep -q '"outcome":"failure".*"error_class":"misconfigured".*wrong KMS identity' &&
	ok "ident (AWS): ... audited (cmk.identity, failure, misconfigured)" || notok "ident: misconfig audit" "$(tail -5 "$id/audit.log")"
out=$(ta_ctl status)
grep -q "wrong KMS identity: bound $a_arn, now $b_arn" <<<"$out" &&
	ok "ident (AWS): status shows the wrong KMS identity" || notok "ident: status" "$out"
out=$(ta_ctl --json check --cmk "$kother")
[ "$(ta_json checks 0 outcome <<<"$out")" = misconfigured ] && ! revoked "$kother" &&
	ok "ident (AWS): asked again: still misconfigured, still not revoked" || notok "ident: second check" "$out"
ta_stop

# The identity check fails (STS refuses): the denial stands, as before binding.
iconf "https://127.0.0.1:$p_fake/sts/denied/"
istart bob
deny "$kfail" "$b_id"
out=$(ta_ctl --json check --cmk "$kfail")
[ "$(ta_json checks 0 outcome <<<"$out")" = denied ] && [ "$(ta_json checks 0 identity <<<"$out")" = unknown ] &&
	revoked "$kfail" && ok "ident (AWS): identity check denied by STS: the KMS's denial stands (denied, revoked)" ||
	notok "ident: identity check failing" "$out"
grep '"op":"cmk.identity"' "$id/audit.log" | grep "\"keyconfig\":\"id-fail\"" | grep -q '"outcome":"failure"' &&
	ok "ident (AWS): ... the failed check is audited" || notok "ident: failed check audit" "$(tail -5 "$id/audit.log")"
# No binding (STS unanswered at create, as configurations made before
# binding): keyconfig show says unbound, a denial is a denial.
out=$(ta_ctl --json keyconfig create id-old --provider aws-kms --key "$kold")
[ "$(ta_json kms_identity <<<"$out")" = unbound ] && ok "ident (AWS): STS refused at create: the key configuration is unbound (show says so)" ||
	notok "ident: unbound create" "$out"
deny "$kold" "$b_id"
out=$(ta_ctl --json check --cmk "$kold")
[ "$(ta_json checks 0 outcome <<<"$out")" = denied ] && [ "$(ta_json checks 0 identity <<<"$out")" = unbound ] && revoked "$kold" &&
	ok "ident (AWS): an unbound key configuration denied: denied, revoked, as before" || notok "ident: unbound denied" "$out"
ta_stop
# A registry of before identity binding (no kms_identity) loads, unbound.
"$py" -c 'import json, sys
p = sys.argv[1]; d = json.load(open(p))
for k in d["keyconfigs"]:
    k.pop("kms_identity", None)
json.dump(d, open(p, "w"))' "$id/state/registry.json"
istart bob
out=$(ta_ctl keyconfig show id-other)
grep -q "^KMS identity: *unbound$" <<<"$out" && ok "ident (AWS): a registry of before binding loads; keyconfig show says unbound" ||
	notok "ident: old registry" "$out"
ta_stop
grep -qE 'Sanitizer|runtime error' "$id/agent.log" && notok "ident: agent (ASan/UBSan) clean" "$(cat "$id/agent.log")" ||
	ok "ident (AWS): agent (ASan/UBSan) ran clean"
grep -qE "$a_sk|$b_sk" "$id/agent.log" "$id/audit.log" "$work/client.log" &&
	notok "ident: no secret key in logs" || ok "ident (AWS): no secret key in the agent's or client's output"
