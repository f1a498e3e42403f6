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
gid=$work/ident
mkdir -p "$gid/state" && chmod 700 "$gid/state"
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
done
emode ok

# ---- the agent ----------------------------------------------------------------------
gconf() {	# gconf CREDENTIALS-LINES...: start the agent
	{ cat <<EOC
[agent]
socket = $gid/agent.sock
state_dir = $gid/state
audit_log = $gid/audit.log
audit_fsync = no
admin_group = root

[kms]
retry_attempts = 1
deadline_ms = 5000

[revocation]
watch_interval_s = 3600
confirm_denials = 1
confirm_window_s = 3960

[gcp-kms]
endpoint = https://127.0.0.1:$p_kms
ca_bundle = $work/ca.pem
metadata_endpoint = http://127.0.0.1:$p_md
metadata_timeout_ms = 1000
EOC
	  printf '%s\n' "$@"; } >"$gid/agent.conf"
	rm -f "$gid/agent.sock"
	"$top/build/agent-san/lakecrypt-agent" -c "$gid/agent.conf" -f >>"$gid/agent.log" 2>&1 &
	gpid=$!
	pids+=($gpid)
	for _ in $(seq 100); do [ -S "$gid/agent.sock" ] && break; sleep 0.1; done
	[ -S "$gid/agent.sock" ] || notok "ident (GCP): the agent starts" "$(tail -20 "$gid/agent.log")"
}
gstop() { kill "$gpid"; wait "$gpid" 2>/dev/null; }
gct() { "$top/build/agent-san/lakecryptctl" --socket "$gid/agent.sock" "$@" 2>&1; }
gget() { "$py" -c 'import json, sys
d = json.load(sys.stdin)
for k in sys.argv[1:]:
    d = d[int(k)] if isinstance(d, list) else d[k]
print(d)' "$@" 2>&1; }
grevoked() {
	"$py" -c 'import json, sys
sys.exit(0 if any(r.get("op") == "cmk.revocation" and sys.argv[2] in (r.get("cmk_id") or "")
                  for r in map(json.loads, open(sys.argv[1]))) else 1)' "$gid/audit.log" "$1"; }

gconf "credentials = service-account" "key_file = $work/sa.json"
for k in same:$gk1 other:$gk2; do
	out=$(gct --json keyconfig create "gcp-${k%%:*}" --provider gcp-kms --key "${k#*:}")
	[ "$(gget kms_identity <<<"$out")" = "$sa_email" ] &&
		ok "ident (GCP): keyconfig create gcp-${k%%:*} binds the key file's service account" ||
		notok "ident (GCP): create gcp-${k%%:*}" "$out"
done
admin deny "{\"key\":\"$gk1\",\"deny\":true}"
out=$(gct --json check --cmk "$gk1")
[ "$(gget checks 0 outcome <<<"$out")" = denied ] && [ "$(gget checks 0 identity <<<"$out")" = same ] && grevoked "$gk1" &&
	ok "ident (GCP): the bound service account denied: denied, revoked" || notok "ident (GCP): same principal" "$out"
gstop
# Another service account (sa2), denied everything.
admin deny-principal "{\"email\":\"$sa2_email\",\"deny\":true}"
gconf "credentials = service-account" "key_file = $work/sa2.json"
out=$(gct --json check --cmk "$gk2")
[ "$(gget checks 0 outcome <<<"$out")" = misconfigured ] &&
	[[ "$(gget checks 0 detail <<<"$out")" == "wrong KMS identity: bound $sa_email, now $sa2_email"* ]] && ! grevoked "$gk2" &&
	ok "ident (GCP): another service account denied: misconfigured, not revoked" || notok "ident (GCP): other principal" "$out"
grep '"op":"cmk.identity"' "$gid/audit.log" | grep '"keyconfig":"gcp-other"' | grep -q '"error_class":"misconfigured"' &&
	ok "ident (GCP): ... audited (cmk.identity, misconfigured)" || notok "ident (GCP): audit" "$(tail -3 "$gid/audit.log")"
grep -q "wrong KMS identity: bound $sa_email, now $sa2_email" <<<"$(gct status)" &&
	ok "ident (GCP): status shows the wrong KMS identity" || notok "ident (GCP): status" "$(gct status)"
gstop
# The metadata server's account: bound at create; then the metadata
# server's email answer breaks and its account is denied: the check fails,
# the denial stands.
gconf "credentials = metadata"
out=$(gct --json keyconfig create gcp-md --provider gcp-kms --key "$gk3")
[ "$(gget kms_identity <<<"$out")" = "$md_email" ] && ok "ident (GCP): keyconfig create binds the metadata server's account" ||
	notok "ident (GCP): metadata binding" "$out"
gstop
emode html	# (a new agent: the principal asked at create is reused 30 s)
gconf "credentials = metadata"
admin deny-principal "{\"email\":\"$md_email\",\"deny\":true}"
out=$(gct --json check --cmk "$gk3")
[ "$(gget checks 0 outcome <<<"$out")" = denied ] && [ "$(gget checks 0 identity <<<"$out")" = unknown ] && grevoked "$gk3" &&
	ok "ident (GCP): the identity check fails (metadata answers HTML): the denial stands (denied, revoked)" ||
	notok "ident (GCP): failing identity check" "$out"
gstop
emode ok
admin deny-principal "{\"email\":\"$md_email\",\"deny\":false}"
admin deny-principal "{\"email\":\"$sa2_email\",\"deny\":false}"
grep -qE 'Sanitizer|runtime error' "$gid/agent.log" && notok "ident (GCP): agent (ASan/UBSan) clean" "$(cat "$gid/agent.log")" ||
	ok "ident (GCP): agent (ASan/UBSan) ran clean"
grep -qE 'ya29\.|PRIVATE KEY|Bearer' "$gid/agent.log" "$gid/audit.log" &&
	notok "ident (GCP): no token or key in the agent's log or audit" || ok "ident (GCP): no token or key in the agent's log or audit"
