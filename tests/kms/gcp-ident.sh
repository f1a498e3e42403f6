# SPDX-License-Identifier: GPL-2.0
# Sourced by tests/kms/gcp.sh (uses its ok/notok, expect, run, field, sdk,
# admin, $work, $py, $top, $p_kms, $p_md, $sa_email, $sa): the service
# account bound to a key configuration (issue 10).  The principal is the
# email of the credential in use: the key file's client_email, or the
# metadata server's default service account email; google-auth (the
# official library) reads the same from the same sources.  A second
# service account (sa2, registered with the fake) is the wrong identity:
# the fake denies every call of its tokens (403 PERMISSION_DENIED), which
# must be misconfigured for a key configuration bound to the first one.
. tests/kms/lib-agent.sh	# agent_conf_checks, ta_start, ta_ctl, ...
gid=$work/ident
sa2_email=lakecrypt-other@lc-test.iam.gserviceaccount.com
md_email=lakecrypt-vm@lc-test.iam.gserviceaccount.com
( cd "$work" && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa2.key 2>/dev/null &&
  openssl pkey -in sa2.key -pubout -out sa2.pub ) &&
"$py" -c 'import json, sys
json.dump({"type": "service_account", "project_id": "lc-test", "private_key_id": "4567cdef",
           "private_key": open(sys.argv[1] + ".key").read(), "client_email": sys.argv[2],
           "client_id": "99", "token_uri": sys.argv[3]}, open(sys.argv[1] + ".json", "w"))' \
	"$work/sa2" "$sa2_email" "https://127.0.0.1:$p_kms/token" && chmod 600 "$work/sa2.json" &&
admin sa "$("$py" -c 'import json, sys; print(json.dumps({"email": sys.argv[1], "pub": open(sys.argv[2]).read()}))' \
	"$sa2_email" "$work/sa2.pub")" && ok "ident (GCP): a second service account registered with the fake" ||
	notok "ident (GCP): second service account"
emode() { admin email-mode "{\"mode\":\"$1\"}"; }
md=(--endpoint "https://127.0.0.1:$p_kms" --ca "$work/ca.pem" --creds metadata --metadata "http://127.0.0.1:$p_md")
sa2=(--endpoint "https://127.0.0.1:$p_kms" --ca "$work/ca.pem" --creds service-account --key-file "$work/sa2.json")
gk1=$(sdk setup lc-test global ring-id1 key-id1) gk2=$(sdk setup lc-test global ring-id2 key-id2)
gk3=$(sdk setup lc-test global ring-id3 key-id3)

# ---- google-auth and the provider agree on the principal -----------------------
out=$(GCE_METADATA_HOST=127.0.0.1:$p_md "$py" -c '
import sys
import google.auth.transport.requests
from google.auth.compute_engine import _metadata
from google.oauth2 import service_account
print(service_account.Credentials.from_service_account_file(sys.argv[1]).service_account_email)
print(_metadata.get(google.auth.transport.requests.Request(), "instance/service-accounts/default/email"))' \
	"$work/sa.json" 2>&1)
[ "$out" = "$sa_email"$'\n'"$md_email" ] &&
	ok "ident (GCP): google-auth reads the key file's client_email and the metadata server's email" ||
	notok "ident (GCP): google-auth" "$out"
expect "ident (GCP): the provider names the key file's service account" ok 5000 "${sa[@]}" ident "$gk1"
[ "$(field principal)" = "$sa_email" ] && ok "ident (GCP): ... $sa_email, as google-auth" || notok "ident (GCP): key file" "$last"
expect "ident (GCP): the provider names the metadata server's service account" ok 5000 "${md[@]}" ident "$gk1"
[ "$(field principal)" = "$md_email" ] && ok "ident (GCP): ... $md_email, as google-auth" || notok "ident (GCP): metadata" "$last"
for m in html long two empty noat e404 hang; do
	emode "$m"
	cls=TRANSIENT
	[ "$m" = e404 ] && cls=MISCONFIG
	expect "ident (GCP): hostile metadata email answer ($m) refused" "$cls" 5000 --metadata-timeout 1000 "${md[@]}" ident "$gk1"
	[ -z "$(field principal)" ] && ok "ident (GCP): ... no principal taken ($m)" || notok "ident (GCP): $m" "$last"
	[ "$m" = e404 ] || continue
	grep -qF 'GCP metadata server: the service account email request answered HTTP 404' <<<"$last" &&
		! grep -qF 'no service account attached' <<<"$last" &&
		ok "ident (GCP): ... the error names the email request and the 404 (no token-request hint)" ||
		notok "ident (GCP): email 404 message" "$last"
done
emode ok

# ---- the agent ----------------------------------------------------------------------
gconf() {	# gconf CREDENTIALS-LINES...: start the agent
	{ cat <<EOC
[gcp-kms]
endpoint = https://127.0.0.1:$p_kms
ca_bundle = $work/ca.pem
metadata_endpoint = http://127.0.0.1:$p_md
metadata_timeout_ms = 1000
EOC
	  printf '%s\n' "$@"; } | agent_conf_checks "$gid" 1
	ta_start "$gid" "ident (GCP): the agent starts"
}

gconf "credentials = service-account" "key_file = $work/sa.json"
for k in same:$gk1 other:$gk2; do
	out=$(ta_ctl --json keyconfig create "gcp-${k%%:*}" --provider gcp-kms --key "${k#*:}")
	[ "$(ta_json kms_identity <<<"$out")" = "$sa_email" ] &&
		ok "ident (GCP): keyconfig create gcp-${k%%:*} binds the key file's service account" ||
		notok "ident (GCP): create gcp-${k%%:*}" "$out"
done
admin deny "{\"key\":\"$gk1\",\"deny\":true}"
out=$(ta_ctl --json check --cmk "$gk1")
[ "$(ta_json checks 0 outcome <<<"$out")" = denied ] && [ "$(ta_json checks 0 identity <<<"$out")" = same ] && ta_revoked "$gk1" &&
	ok "ident (GCP): the bound service account denied: denied, revoked" || notok "ident (GCP): same principal" "$out"
ta_stop
# Another service account (sa2), denied everything.
admin deny-principal "{\"email\":\"$sa2_email\",\"deny\":true}"
gconf "credentials = service-account" "key_file = $work/sa2.json"
out=$(ta_ctl --json check --cmk "$gk2")
[ "$(ta_json checks 0 outcome <<<"$out")" = misconfigured ] &&
	[[ "$(ta_json checks 0 detail <<<"$out")" == "wrong KMS identity: bound $sa_email, now $sa2_email"* ]] && ! ta_revoked "$gk2" &&
	ok "ident (GCP): another service account denied: misconfigured, not revoked" || notok "ident (GCP): other principal" "$out"
grep '"op":"cmk.identity"' "$gid/audit.log" | grep '"keyconfig":"gcp-other"' | grep -q '"error_class":"misconfigured"' &&
	ok "ident (GCP): ... audited (cmk.identity, misconfigured)" || notok "ident (GCP): audit" "$(tail -3 "$gid/audit.log")"
grep -q "wrong KMS identity: bound $sa_email, now $sa2_email" <<<"$(ta_ctl status)" &&
	ok "ident (GCP): status shows the wrong KMS identity" || notok "ident (GCP): status" "$(ta_ctl status)"
ta_stop
# The metadata server's account: bound at create; then the metadata
# server's email answer breaks and its account is denied: the check fails,
# the denial stands.
gconf "credentials = metadata"
out=$(ta_ctl --json keyconfig create gcp-md --provider gcp-kms --key "$gk3")
[ "$(ta_json kms_identity <<<"$out")" = "$md_email" ] && ok "ident (GCP): keyconfig create binds the metadata server's account" ||
	notok "ident (GCP): metadata binding" "$out"
ta_stop
emode html	# (a new agent: the principal asked at create is reused 30 s)
gconf "credentials = metadata"
admin deny-principal "{\"email\":\"$md_email\",\"deny\":true}"
out=$(ta_ctl --json check --cmk "$gk3")
[ "$(ta_json checks 0 outcome <<<"$out")" = denied ] && [ "$(ta_json checks 0 identity <<<"$out")" = unknown ] && ta_revoked "$gk3" &&
	ok "ident (GCP): the identity check fails (metadata answers HTML): the denial stands (denied, revoked)" ||
	notok "ident (GCP): failing identity check" "$out"
ta_stop
emode ok
admin deny-principal "{\"email\":\"$md_email\",\"deny\":false}"
admin deny-principal "{\"email\":\"$sa2_email\",\"deny\":false}"
grep -qE 'Sanitizer|runtime error' "$gid/agent.log" && notok "ident (GCP): agent (ASan/UBSan) clean" "$(cat "$gid/agent.log")" ||
	ok "ident (GCP): agent (ASan/UBSan) ran clean"
grep -qE 'ya29\.|PRIVATE KEY|Bearer' "$gid/agent.log" "$gid/audit.log" &&
	notok "ident (GCP): no token or key in the agent's log or audit" || ok "ident (GCP): no token or key in the agent's log or audit"
