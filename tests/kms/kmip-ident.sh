# SPDX-License-Identifier: GPL-2.0
# Sourced by tests/kms/kmip.sh (uses its ok/notok, expect, field, run, admin,
# $work, $py, $top, $p_kmip, $sid, $client, pids): the KMS principal bound
# to a KMIP key configuration (issue 10).  At a KMIP server the client is
# its TLS client certificate; PyKMIP 0.10 makes the certificate's common
# name the owner of what it creates and refuses (Permission Denied) the
# objects of another owner.  An agent that runs with another certificate
# than the one the admin set up is refused everything although nothing
# was revoked: that must be MISCONFIG, never a kill.
#   - the provider: the principal is "subject=<RFC 4514>;issuer=<RFC 4514>"
#     exactly as openssl(1) prints the names (-nameopt RFC2253); a renewed
#     certificate (new key, serial) for the same subject is the same
#     principal, another subject another one; no request is made;
#   - the agent with PyKMIP: keyconfig create binds certificate A's
#     principal (show, --json, audit, registry); run with B: refused ->
#     misconfigured, audited, "wrong KMS identity: bound A, now B" in check
#     and status, not revoked; run with A renewed: the key is usable; A's
#     own refusal (the key destroyed) is a denial (identity "same"), revoked.
ki=$work/kmip-ident
mkdir -p "$ki/state" && chmod 700 "$ki/state"
kpki() {	# client-b (another subject), client-renewed (A's subject, a new key), by the test CA
	cd "$work" || return 1
	for c in client-b:lakecrypt-agent-b client-renewed:lakecrypt-agent; do
		name=${c%%:*} cn=${c#*:}
		openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$name.key" -out "$name.csr" &&
		printf 'extendedKeyUsage=clientAuth\n' >"$name.ext" &&
		openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
			-extfile "$name.ext" -out "$name.pem" || return 1
		chmod 600 "$name.key"
	done
}
if out=$(kpki 2>&1); then ok "ident (KMIP): client certificates B (another subject) and A renewed (a new key, the same subject)"
else notok "ident: test PKI" "$out"; fi
cd "$top" || exit 1
# want NAME: the principal as openssl(1) prints the certificate's names
want() {
	local s i
	s=$(openssl x509 -in "$work/$1.pem" -noout -subject -nameopt RFC2253) || return 1
	i=$(openssl x509 -in "$work/$1.pem" -noout -issuer -nameopt RFC2253) || return 1
	echo "subject=${s#subject=};issuer=${i#issuer=}"
}
ctls() { echo --ca "$work/ca.pem" --cert "$work/$1.pem" --key "$work/$1.key"; }

# ---- the provider ------------------------------------------------------------
# shellcheck disable=SC2046
expect "ident (KMIP): the identity of certificate A" ok 2000 --server "127.0.0.1:$p_kmip" $(ctls client) ident 1
pa=$(field principal)
[ -n "$pa" ] && [ "$pa" = "$(want client)" ] &&
	ok "ident (KMIP): A's principal is its subject and issuer as openssl prints them ($pa)" ||
	notok "ident: A's principal, expected $(want client)" "$last"
# shellcheck disable=SC2046
expect "ident (KMIP): the identity of A renewed" ok 2000 --server "127.0.0.1:$p_kmip" $(ctls client-renewed) ident 1
[ "$(field principal)" = "$pa" ] &&
	[ "$(openssl x509 -in "$work/client.pem" -noout -fingerprint -sha256)" != \
	  "$(openssl x509 -in "$work/client-renewed.pem" -noout -fingerprint -sha256)" ] &&
	ok "ident (KMIP): a renewed certificate (another key and fingerprint) is the same principal" ||
	notok "ident: renewed principal" "$last"
# shellcheck disable=SC2046
expect "ident (KMIP): the identity of B" ok 2000 --server "127.0.0.1:$p_kmip" $(ctls client-b) ident 1
pb=$(field principal)
[ "$pb" = "$(want client-b)" ] && [ "$pb" != "$pa" ] && ok "ident (KMIP): B is another principal ($pb)" ||
	notok "ident: B's principal" "$last"
# shellcheck disable=SC2046
expect "ident (KMIP): the identity names no request: a server that is not there" ok 2000 \
	--server "127.0.0.1:$(free_port)" $(ctls client) ident 1
[ "$(field principal)" = "$pa" ] &&
	ok "ident (KMIP): no server call (the certificate the TLS context presents)" || notok "ident: offline" "$last"

# ---- the agent ---------------------------------------------------------------------
kconf() {	# kconf CERT: the agent's configuration with client certificate CERT
	cat >"$ki/agent.conf" <<EOC
[agent]
socket = $ki/agent.sock
state_dir = $ki/state
audit_log = $ki/audit.log
audit_fsync = no
admin_group = root

[kms]
retry_attempts = 1
deadline_ms = 5000

[revocation]
# only the checks below probe; one denial confirms
watch_interval_s = 3600
confirm_denials = 1
confirm_window_s = 3960

[kmip]
server = 127.0.0.1:$p_kmip
ca_bundle = $work/ca.pem
client_cert = $work/$1.pem
client_key = $work/$1.key
connect_timeout_ms = 3000
EOC
}
kstart() {	# kstart CERT
	rm -f "$ki/agent.sock"
	kconf "$1"
	"$top/build/agent-san/lakecrypt-agent" -c "$ki/agent.conf" -f >>"$ki/agent.log" 2>&1 &
	kpid=$!
	pids+=($kpid)
	for _ in $(seq 100); do [ -S "$ki/agent.sock" ] && break; sleep 0.1; done
	[ -S "$ki/agent.sock" ] || notok "ident (KMIP): the agent starts with $1" "$(tail -20 "$ki/agent.log")"
}
kstop() { kill "$kpid"; wait "$kpid" 2>/dev/null; }
kct() { "$top/build/agent-san/lakecryptctl" --socket "$ki/agent.sock" "$@" 2>&1; }
jget() { "$py" -c 'import json, sys
d = json.load(sys.stdin)
for k in sys.argv[1:]:
    d = d[int(k)] if isinstance(d, list) else d[k]
print(d)' "$@" 2>&1; }
krevoked() {	# krevoked UID: a cmk.revocation record names the key
	"$py" -c 'import json, sys
sys.exit(0 if any(r.get("op") == "cmk.revocation" and sys.argv[2] in (r.get("cmk_id"), r.get("cmk_ref"))
                  for r in map(json.loads, open(sys.argv[1]))) else 1)' "$ki/audit.log" "$1"; }

kother=$(admin create) ksame=$(admin create)	# owned by A (kmip-admin.py uses client.pem)
[[ "$kother" =~ ^[0-9]+$ ]] && [[ "$ksame" =~ ^[0-9]+$ ]] && ok "ident (KMIP): keys $kother and $ksame made by A with PyKMIP's client" ||
	notok "ident: keys" "$kother $ksame"
kstart client
for k in other:$kother same:$ksame; do
	out=$(kct --json keyconfig create "kid-${k%%:*}" --provider kmip --key "${k#*:}")
	[ "$(jget kms_identity <<<"$out")" = "$pa" ] && [ "$(jget key_ref <<<"$out")" = "server-sha256=$sid;uid=${k#*:}" ] &&
		ok "ident (KMIP): keyconfig create kid-${k%%:*} binds A's principal and the server" ||
		notok "ident: create binds kid-${k%%:*}" "$out"
done
out=$(kct keyconfig show kid-other)
grep -qF "KMS identity: $pa" <<<"$(sed 's/  */ /g' <<<"$out")" && ok "ident (KMIP): keyconfig show prints the bound principal" ||
	notok "ident: keyconfig show" "$out"
"$py" -c 'import json, sys
sys.exit(0 if any(r.get("op") == "cmk.identity" and r.get("keyconfig") == "kid-other" and r.get("provider") == "kmip" and
                  r.get("outcome") == "success" and r.get("detail") == "bound " + sys.argv[2]
                  for r in map(json.loads, open(sys.argv[1]))) else 1)' "$ki/audit.log" "$pa" &&
	ok "ident (KMIP): the binding is audited (cmk.identity, success)" || notok "ident: create audit" "$(tail -5 "$ki/audit.log")"
grep -q 'not bound to a KMS principal' "$ki/agent.log" && notok "ident (KMIP): no unbound warning" "$(cat "$ki/agent.log")" ||
	ok "ident (KMIP): no \"not bound\" warning at create"
kstop

# B: PyKMIP refuses A's objects to B (Permission Denied): no revocation.
kstart client-b
out=$(kct --json check --cmk "server-sha256=$sid;uid=$kother")
[ "$(jget checks 0 outcome <<<"$out")" = misconfigured ] &&
	[[ "$(jget checks 0 detail <<<"$out")" == "wrong KMS identity: bound $pa, now $pb"* ]] && ! krevoked "$kother" &&
	ok "ident (KMIP): B refused (Permission Denied): misconfigured (wrong KMS identity: bound A, now B), not revoked" ||
	notok "ident: B refused" "$out
$(grep -i 'permission\|identity' "$ki/agent.log" | tail -5)"
grep -q "Session client identity: lakecrypt-agent-b" "$work/pykmip.log" &&
	grep '"op":"cmk.key_state"' "$ki/audit.log" | grep '"keyconfig":"kid-other"' | grep -q '"error_class":"denied"' &&
	ok "ident (KMIP): ... PyKMIP saw B and denied the key's state (the raw answer, audited as denied)" ||
	notok "ident: PyKMIP refused B" "$(grep 'client identity' "$work/pykmip.log" | tail -3; tail -5 "$ki/audit.log")"
grep '"op":"cmk.identity"' "$ki/audit.log" | grep '"keyconfig":"kid-other"' |
	grep -q '"outcome":"failure".*"error_class":"misconfigured".*wrong KMS identity' &&
	ok "ident (KMIP): ... audited (cmk.identity, failure, misconfigured)" || notok "ident: misconfig audit" "$(tail -5 "$ki/audit.log")"
out=$(kct status)
grep -qF "wrong KMS identity: bound $pa, now $pb" <<<"$out" &&
	ok "ident (KMIP): status shows the wrong KMS identity" || notok "ident: status" "$out"
kill -0 "$kpid" 2>/dev/null && ! krevoked "$ksame" && ok "ident (KMIP): the agent runs on, nothing revoked" ||
	notok "ident: agent alive" "$(tail -20 "$ki/agent.log")"
kstop

# A renewed: the same principal; the key is usable.  A's own refusal (the
# key destroyed: Item Not Found from the bound server) is a denial.
kstart client-renewed
out=$(kct --json check --cmk "server-sha256=$sid;uid=$kother")
[ "$(jget checks 0 outcome <<<"$out")" = ok ] && ok "ident (KMIP): A renewed: the key is usable (ok)" || notok "ident: renewed check" "$out"
[ "$(admin revoke "$ksame")" = revoked ] && [ "$(admin destroy "$ksame")" = destroyed ] || notok "ident: revoke and destroy $ksame"
out=$(kct --json check --cmk "server-sha256=$sid;uid=$ksame")
[ "$(jget checks 0 outcome <<<"$out")" = denied ] && [ "$(jget checks 0 identity <<<"$out")" = same ] && krevoked "$ksame" &&
	ok "ident (KMIP): A renewed refused (key destroyed): the same principal, denied, revoked" ||
	notok "ident: same principal refused" "$out
$(tail -3 "$ki/audit.log")"
kstop
grep -qE 'Sanitizer|runtime error' "$ki/agent.log" && notok "ident (KMIP): agent (ASan/UBSan) clean" "$(cat "$ki/agent.log")" ||
	ok "ident (KMIP): agent (ASan/UBSan) ran clean"
