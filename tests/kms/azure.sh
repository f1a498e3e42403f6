#!/bin/bash
# The Azure Key Vault / Managed HSM provider ("azure-kv") against
# tests/kms/fake-azure-kv.py on loopback, behind TLS with a test CA made
# here.  No real Key Vault server can be run on this machine (lowkey-vault,
# the Java emulator, is not served by the Maven repository reached here),
# so the fake is first driven with Microsoft's official SDK
# (azure-keyvault-keys, azure-identity: tests/kms/azure-admin.py), which
# must accept its answers and raise the errors lakecrypt maps; then the
# provider is driven through the provider layer by
# tests/kms/kms-azure-client.c (ASan + UBSan), then through the agent and
# lakecryptctl keyconfig create.
# Called by tests/kms/check.sh; runs alone too.  TAP out; ends with
# "N passed, N failed, 0 skipped" (with AZ_TAP_BASE=N: numbering starts
# after N and the last line is "RESULT pass fail n").  Nothing is skipped.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
tools=${LAKECRYPT_TOOLS:-/opt/lakecrypt-tools}
py=$tools/venv/bin/python3
work=$(mktemp -d /tmp/lakecrypt-azure.XXXXXX)
pids=()
n=${AZ_TAP_BASE:-0}
pass=0 fail=0

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n - azure: $1"; }
notok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - azure: $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/# /' | tail -n 20; }
finish() {
	if [ -n "${AZ_TAP_BASE:-}" ]; then echo "RESULT $pass $fail $n"
	else echo "$pass passed, $fail failed, 0 skipped"; fi
	[ $fail -eq 0 ]; exit $?
}

# ---- tools and build -------------------------------------------------------
for t in "$py" /usr/bin/openssl; do
	if [ ! -x "$t" ]; then notok "tool $t present (run make setup)"; finish; fi
done
if out=$("$py" -c 'import azure.keyvault.keys, azure.identity, cryptography, jwt' 2>&1); then
	ok "azure-keyvault-keys, azure-identity, cryptography and PyJWT importable"
else notok "Azure SDK importable (run make setup)" "$out"; finish; fi
if out=$(make -s -C agent SAN=1 kmstest 2>&1); then ok "build KMS test drivers (ASan+UBSan)"
else notok "build KMS test drivers (ASan+UBSan)" "$out"; finish; fi
client=$top/build/agent-san/kmstest/kms-azure-client
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# ---- test PKI: CA, server (127.0.0.1), wrong name, other CA, client cert -----
pki() {
	cd "$work" || return 1
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=lakecrypt-azure-test-ca \
		-keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign &&
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca \
		-keyout other-ca.key -out other-ca.pem -addext basicConstraints=critical,CA:TRUE &&
	for c in server:IP:127.0.0.1,DNS:localhost wrongname:DNS:wrong.example; do
		name=${c%%:*} san=${c#*:}
		openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "$name.key" -out "$name.csr" &&
		printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" >"$name.ext" &&
		openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
			-extfile "$name.ext" -out "$name.pem" || return 1
	done
	# The application's certificate (registered with the fake authority),
	# and another one that is not.
	for c in client rogue; do
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=lakecrypt-$c" \
			-keyout "$c.key" -out "$c.crt" && cat "$c.key" "$c.crt" >"$c.pem" && chmod 600 "$c.pem" || return 1
	done
	cp client.crt crtonly.pem && chmod 600 crtonly.pem
	printf 'fake-client-secret~0123456789\n' >secret && chmod 600 secret
	printf 'wrong-secret\n' >badsecret && chmod 600 badsecret
	printf 'denied-client-secret~0123456789\n' >denysecret && chmod 600 denysecret
	printf 'fake-client-secret~0123456789\n' >opensecret && chmod 644 opensecret
}
if out=$(pki 2>&1); then ok "test CA, server certificate (127.0.0.1), wrong-name certificate, client certificates"
else notok "test PKI" "$out"; finish; fi
cd "$top"

# ---- servers -----------------------------------------------------------------
p_kv=$(free_port) p_wrong=$(free_port) p_imds=$(free_port) p_hang=$(free_port)
"$py" tests/kms/fake-azure-kv.py --vault "$p_kv:$work/server.pem:$work/server.key" \
	--vault "$p_wrong:$work/wrongname.pem:$work/wrongname.key" --imds "$p_imds" --hang "$p_hang" \
	--client-cert "$work/client.crt" 2>"$work/fake.log" &
pids+=($!)
if wait_port "$p_kv" && wait_port "$p_wrong" && wait_port "$p_imds" && wait_port "$p_hang"; then
	ok "fake Key Vault + token endpoint on https://127.0.0.1:$p_kv, IMDS :$p_imds, hanging port :$p_hang"
else notok "servers up" "$(cat "$work/fake.log")"; finish; fi

vault=https://127.0.0.1:$p_kv
tenant=72f988bf-86f1-41af-91ab-2d7cd011db47
cid=11111111-1111-4111-8111-111111111111
export AZ_CA=$work/ca.pem AZ_AUTHORITY=$vault AZ_CERT=$work/client.pem AZ_IMDS=http://127.0.0.1:$p_imds
sdk() { "$py" tests/kms/azure-admin.py "$vault" "$@" 2>&1 | tail -n 5; }
ctx=lakecrypt:v2\;volume=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\;workspace=finance\;project=ledger\;keyconfig=finance-kc
ctx2=lakecrypt:v2\;volume=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\;workspace=finance\;project=other\;keyconfig=finance-kc
sec=(--ca "$work/ca.pem" --creds client-secret --tenant "$tenant" --client-id "$cid"
     --secret-file "$work/secret" --authority "$vault")

last=""
run() { last=$("$client" "$@" 2>&1); echo "$last" >>"$work/client.log"; }
field() { echo "$last" | sed -n "s/^$1=//p" | head -n1; }
# expect DESC ok|CLASS MAX_MS ARGS...: the result line's class and a time bound.
expect() {
	local desc=$1 want=$2 max=$3 ms cls
	shift 3
	run "$@"
	ms=$(echo "$last" | sed -n 's/^result .* ms=\([0-9]*\).*/\1/p')
	if [ "$want" = ok ]; then
		cls=$(grep -q '^result ok' <<<"$last" && echo ok)
	else
		cls=$(echo "$last" | sed -n 's/^result error class=\([a-z_]*\).*/\1/p')
		case $want in MISCONFIG) want=misconfigured ;; *) want=${want,,} ;; esac
	fi
	if [ "$cls" = "$want" ] && [ -n "$ms" ] && [ "$ms" -le "$max" ] &&
	   ! grep -qE 'Sanitizer|runtime error' <<<"$last"; then
		ok "$desc: $want in $ms ms (bound $max)"
	else
		notok "$desc: expected $want within $max ms" "$last"
	fi
}
has() {	# has DESC REGEX: the last client output matches
	if grep -qE "$2" <<<"$last"; then ok "$1"; else notok "$1" "$last"; fi
}
tokens() { grep -c "^TOKEN $1" "$work/fake.log"; }

# ---- the official SDK against the fake: its protocol --------------------------
out=$(sdk token secret)
[ "$out" = "token https://vault.azure.net/.default" ] &&
	ok "SDK: ClientSecretCredential (authority=fake, no instance discovery) gets a token" || notok "SDK secret token" "$out"
out=$(sdk token cert)
[ "$out" = "token https://vault.azure.net/.default" ] && grep -q "^JWT OK 22222222" "$work/fake.log" &&
	ok "SDK: CertificateCredential's RS256 assertion (x5t) verified by the fake authority" || notok "SDK cert token" "$out"
out=$(sdk token imds)
[ "$out" = "token https://vault.azure.net/.default" ] &&
	ok "SDK: ManagedIdentityCredential gets a token from the fake IMDS" || notok "SDK IMDS token" "$out"
kid=$(sdk create lk1)
if [[ "$kid" =~ ^$vault/keys/lk1/[0-9a-f]{32}$ ]]; then ok "SDK: KeyClient.create_rsa_key (challenge auth, 2048-bit RSA): $kid"
else notok "SDK create key" "$kid"; finish; fi
out=$(sdk roundtrip lk1)
[[ "$out" == "roundtrip ok $kid" ]] && ok "SDK: CryptographyClient wrap_key/unwrap_key RSA-OAEP-256 round trip" || notok "SDK roundtrip" "$out"
[ "$(sdk disable lk1)" = disabled ] && [ "$(sdk state lk1)" = disabled ] &&
	ok "SDK: update_key_properties(enabled=False), get_key reads it disabled" || notok "SDK disable"
out=$(sdk error unwrap lk1)
[ "$out" = "HttpResponseError 403 Forbidden KeyDisabled" ] && ok "SDK: unwrap of a disabled key raises 403 Forbidden/KeyDisabled" || notok "SDK disabled error" "$out"
[ "$(sdk enable lk1)" = enabled ] && ok "SDK: enable again" || notok "SDK enable"
out=$(sdk error get nosuchkey)
[ "$out" = "ResourceNotFoundError 404 KeyNotFound -" ] && ok "SDK: get of an unknown key raises 404 KeyNotFound" || notok "SDK not found" "$out"
out=$(sdk error get lk1 deny)
[ "$out" = "HttpResponseError 403 Forbidden ForbiddenByRbac" ] && ok "SDK: an identity without a role gets 403 ForbiddenByRbac" || notok "SDK rbac" "$out"
out=$(sdk error get policy-1)
[ "$out" = "HttpResponseError 403 Forbidden ForbiddenByPolicy" ] && ok "SDK: access policy denial 403 ForbiddenByPolicy" || notok "SDK policy" "$out"
hsmkid=$(sdk create hk1 oct-hsm)
[[ "$hsmkid" =~ ^$vault/keys/hk1/[0-9a-f]{32}$ ]] && ok "SDK: create_oct_key(hardware_protected=True): a Managed HSM style oct-HSM key" || notok "SDK oct key" "$hsmkid"

# ---- lakecrypt: the key's life ---------------------------------------------------
key=$vault/keys/lk1
expect "state of an enabled key (client secret)" ok 5000 "${sec[@]}" state "$key"
[ "$(field state)" = enabled ] && [ "$(field key_version)" = "$kid" ] && ok "state enabled, key_version is the versioned kid" || notok "state enabled" "$last"
expect "wrap (GET key, then wrapkey RSA-OAEP-256)" ok 5000 "${sec[@]}" wrap "$key" "$ctx"
blob=$(field blob) pt=$(field pt)
[ "$(field key_version)" = "$kid" ] && ok "wrap reports the versioned kid the vault answered" || notok "wrap key_version" "$last"
expect "unwrap with the same context" ok 5000 "${sec[@]}" unwrap "$key" "$ctx" "$blob"
[ -n "$pt" ] && [ "$(field pt)" = "$pt" ] && ok "unwrapped KEK equals the wrapped one" || notok "round trip" "$last"
# What lakecrypt sent to wrapkey is what the SDK gets back: magic, SHA-256(context), KEK.
wrapped=$("$py" -c '
import base64, sys
b = base64.b64decode(sys.argv[1]); k = b[6] << 8 | b[7]
print(base64.urlsafe_b64encode(b[10 + k:]).rstrip(b"=").decode())' "$blob")
out=$(sdk unwrap-kid "$kid" "$wrapped")
want=$("$py" -c '
import base64, hashlib, sys
print(base64.urlsafe_b64encode(b"LCAZctx1" + hashlib.sha256(sys.argv[1].encode()).digest() + bytes.fromhex(sys.argv[2])).rstrip(b"=").decode())' "$ctx" "$pt")
[ "$out" = "$want" ] && ok "SDK unwraps lakecrypt's blob to LCAZctx1 || SHA-256(context) || KEK" || notok "SDK unwrap of lakecrypt blob" "$out / $want"
expect "unwrap with another project in the context" INVALID 5000 "${sec[@]}" unwrap "$key" "$ctx2" "$blob"
has "INVALID says the context did not match" 'encryption context did not match'
forge() {	# forge B64BLOB NEWKID: the same wrapped bytes under another kid
	"$py" -c '
import base64, sys
b = base64.b64decode(sys.argv[1]); k = b[6] << 8 | b[7]; kid = sys.argv[2].encode()
print(base64.b64encode(b[:6] + len(kid).to_bytes(2, "big") + kid + b[8 + k:]).decode())' "$1" "$2"
}
for other in "$vault/keys/hk1/${hsmkid##*/}" "https://evil.vault.azure.net/keys/lk1/${kid##*/}" \
	     "https://127.0.0.1:$p_wrong/keys/lk1/${kid##*/}" "$vault/keys/lk1"; do
	expect "a blob naming $other is refused before any call" INVALID 2000 "${sec[@]}" unwrap "$key" "$ctx" "$(forge "$blob" "$other")"
done
has "the refusal names a key that is not a version of the configured key" 'not a version of the configured key'
# Bytes wrapped by the right key, but not by lakecrypt (no bound context).
for plain in "$(printf 'x%.0s' $(seq 64))" "$(printf 'LCAZctx1%.0s' $(seq 23))"; do
	fw=$(sdk wrap-kid "$kid" "$("$py" -c 'import base64,sys; print(base64.urlsafe_b64encode(sys.argv[1].encode()).rstrip(b"=").decode())' "$plain")")
	fb=$("$py" -c '
import base64, sys
b = base64.b64decode(sys.argv[1]); k = b[6] << 8 | b[7]
w = base64.urlsafe_b64decode(sys.argv[2] + "=" * (-len(sys.argv[2]) % 4))
print(base64.b64encode(b[:10 + k - 2] + len(w).to_bytes(2, "big") + w).decode())' "$blob" "$fw")
	expect "a blob wrapped by the right key but not by lakecrypt (${#plain} bytes)" INVALID 5000 "${sec[@]}" unwrap "$key" "$ctx" "$fb"
	has "the refusal says it is not lakecrypt's bound format" "not in lakecrypt's bound format"
done
expect "a blob of another provider (no LCAZ magic)" INVALID 2000 "${sec[@]}" unwrap "$key" "$ctx" "QUJDREVGR0hJSktMTU5PUA=="
trunc=$("$py" -c 'import base64,sys; b=base64.b64decode(sys.argv[1]); print(base64.b64encode(b[:-1]).decode())' "$blob")
expect "a truncated blob" INVALID 2000 "${sec[@]}" unwrap "$key" "$ctx" "$trunc"
expect "wrap of 33 bytes (not a multiple of 8) refused" INVALID 2000 --pt-len 33 "${sec[@]}" wrap "$key" "$ctx"

sdk disable lk1 >/dev/null
expect "state of a disabled key" ok 5000 "${sec[@]}" state "$key"
[ "$(field state)" = disabled ] && ok "key_state says disabled" || notok "state disabled" "$last"
expect "unwrap under a disabled key (403 KeyDisabled)" DENIED 5000 "${sec[@]}" unwrap "$key" "$ctx" "$blob"
has "DENIED names KeyDisabled" 'KeyDisabled: the key is disabled'
expect "wrap under a disabled key (the GET says enabled false)" DENIED 5000 "${sec[@]}" wrap "$key" "$ctx"
sdk enable lk1 >/dev/null
expect "unwrap after enable" ok 5000 "${sec[@]}" unwrap "$key" "$ctx" "$blob"

# ---- clocks: exp / nbf are the vault's business, judged by the vault's clock --------
# The host's clock is never used (kms-azure.h "Clocks"): a host hours off
# (lost NTP, resumed VM) must not read a healthy key as disabled, which
# would arm the kill switch.  Key Vault refuses wrapKey outside nbf..exp
# and still unwraps, so the window never disables a key.
vclock() {	# vclock OFFSET: the fake vault's clock runs OFFSET s off the host's
	"$py" -c 'import ssl, sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="POST"), context=ssl.create_default_context(cafile=sys.argv[2]))' \
		"$vault/_test/clock?offset=$1" "$work/ca.pem"
}
wkid=$(sdk create clk1)
[[ "$wkid" == "$vault/keys/clk1/"* ]] || notok "SDK create clk1" "$wkid"
expect "clock: wrap under clk1 before any window" ok 5000 "${sec[@]}" wrap "$vault/keys/clk1" "$ctx"
wblob=$(field blob) wpt=$(field pt)
now=$(date +%s)
# exp 3 h before the host's clock, the vault's clock 6 h behind the host's:
# by the vault, the key has 3 h left.
out=$(sdk window clk1 - $((now - 3 * 3600)))
[ "$out" = "window - $((now - 3 * 3600))" ] && ok "SDK: update_key_properties(expires_on) sets exp" || notok "SDK window" "$out"
vclock -21600
expect "clock: exp in the host's past, the vault's future: state" ok 5000 "${sec[@]}" state "$vault/keys/clk1"
[ "$(field state)" = enabled ] && ok "clock: host 6 h ahead of the vault: the key stays enabled (no kill)" || notok "skewed host: state" "$last"
expect "clock: exp in the host's past, the vault's future: wrap" ok 5000 "${sec[@]}" wrap "$vault/keys/clk1" "$ctx"
expect "clock: ... and unwrap" ok 5000 "${sec[@]}" unwrap "$vault/keys/clk1" "$ctx" "$wblob"
[ "$(field pt)" = "$wpt" ] && ok "clock: same KEK" || notok "clock pt" "$last"
# The reverse: exp 3 h after the host's clock, the vault's clock 6 h ahead:
# expired by the vault.  Still enabled (Key Vault unwraps), wrap refused
# as MISCONFIG (never a kill), and the vault agrees: its wrapkey is 403.
out=$(sdk window clk1 - $((now + 3 * 3600)))
vclock 21600
expect "clock: exp in the host's future, the vault's past: state" ok 5000 "${sec[@]}" state "$vault/keys/clk1"
[ "$(field state)" = enabled ] && grep -q "expired (attributes.exp" <<<"$last" &&
	ok "clock: expired by the vault: still enabled, warned" || notok "expired by vault: state" "$last"
expect "clock: expired by the vault: wrap refused before wrapkey" MISCONFIG 5000 "${sec[@]}" wrap "$vault/keys/clk1" "$ctx"
has "clock: the message says expired by the vault's clock and what to do" "expired \(attributes.exp [0-9]+ is [0-9]+ s before the vault's clock\).*extend exp"
expect "clock: expired by the vault: unwrap still works (as Key Vault does)" ok 5000 "${sec[@]}" unwrap "$vault/keys/clk1" "$ctx" "$wblob"
out=$(sdk error wrap clk1)
[ "$out" = "HttpResponseError 403 Forbidden -" ] && ok "SDK: the fake vault refuses wrap_key of a key expired by its clock (403 Forbidden)" || notok "SDK expired wrap" "$out"
# nbf 3 h before the host's clock, the vault 6 h behind: not yet valid by the vault.
out=$(sdk window clk1 $((now - 3 * 3600)) $((now + 30 * 86400)))
vclock -21600
expect "clock: nbf ahead of the vault's clock: state" ok 5000 "${sec[@]}" state "$vault/keys/clk1"
[ "$(field state)" = enabled ] && ok "clock: not yet valid by the vault: still enabled" || notok "nbf state" "$last"
expect "clock: not yet valid by the vault: wrap refused" MISCONFIG 5000 "${sec[@]}" wrap "$vault/keys/clk1" "$ctx"
has "clock: the message says not yet valid" "not yet valid \(attributes.nbf"
vclock 0
expect "clock: the vault's clock right again: wrap" ok 5000 "${sec[@]}" wrap "$vault/keys/clk1" "$ctx"
# A hostile or broken clock never kills: without a Date header (or with
# one that is not a date) nothing is judged and the vault decides; a vault
# whose Date says 2099 refuses nothing the agent would not, and the key
# stays enabled.
out=$(sdk window clk1 - $((now - 3600)))
vclock 0\&date=none
expect "clock: no Date header, key expired: state" ok 5000 "${sec[@]}" state "$vault/keys/clk1"
[ "$(field state)" = enabled ] && ok "clock: no Date header: still enabled" || notok "no Date: state" "$last"
expect "clock: no Date header: the wrap is sent and the vault's 403 is misconfigured (never denied)" MISCONFIG 5000 "${sec[@]}" wrap "$vault/keys/clk1" "$ctx"
has "clock: that refusal is the vault's (wrapkey was sent)" "wrapkey: HTTP 403 Forbidden"
vclock 0\&date=garbage
expect "clock: a Date header that is not a date: the vault decides" MISCONFIG 5000 "${sec[@]}" wrap "$vault/keys/clk1" "$ctx"
has "clock: ... wrapkey was sent" "wrapkey: HTTP 403 Forbidden"
expect "clock: ... and the key stays enabled" ok 5000 "${sec[@]}" state "$vault/keys/clk1"
[ "$(field state)" = enabled ] && ok "clock: garbage Date: still enabled" || notok "garbage Date: state" "$last"
out=$(sdk window clk1 - $((now + 30 * 86400)))
vclock $((2300000000 - now))
expect "clock: a vault whose Date says 2042: state" ok 5000 "${sec[@]}" state "$vault/keys/clk1"
[ "$(field state)" = enabled ] && ok "clock: a vault clock years ahead never disables the key" || notok "2042: state" "$last"
expect "clock: ... its wrap is refused early (misconfigured, not denied)" MISCONFIG 5000 "${sec[@]}" wrap "$vault/keys/clk1" "$ctx"
expect "clock: ... and unwraps" ok 5000 "${sec[@]}" unwrap "$vault/keys/clk1" "$ctx" "$wblob"
vclock 0

# A new key version: old blobs still unwrap (their kid names their version),
# new blobs use the new version.
kid2=$(sdk create lk1)
[ "$kid2" != "$kid" ] && [[ "$kid2" == "$key/"* ]] && ok "SDK: a new version of lk1: ${kid2##*/}" || notok "new version" "$kid2"
expect "rotation: the old blob unwraps after a new version" ok 5000 "${sec[@]}" unwrap "$key" "$ctx" "$blob"
[ "$(field pt)" = "$pt" ] && ok "rotation: same KEK from the old blob" || notok "rotation pt" "$last"
expect "rotation: wrap uses the new version" ok 5000 "${sec[@]}" wrap "$key" "$ctx"
blob2=$(field blob)
[ "$(field key_version)" = "$kid2" ] && ok "rotation: new blob under $kid2" || notok "rotation new kid" "$last"
expect "rotation: the new blob unwraps" ok 5000 "${sec[@]}" unwrap "$key" "$ctx" "$blob2"
expect "a key URL pinned to the old version still wraps with it" ok 5000 "${sec[@]}" wrap "$kid" "$ctx"
[ "$(field key_version)" = "$kid" ] && ok "pinned version honoured" || notok "pinned version" "$last"

# Managed HSM style octet key: A256KW.
expect "oct-HSM key: wrap with A256KW" ok 5000 "${sec[@]}" wrap "$vault/keys/hk1" "$ctx"
hblob=$(field blob) hpt=$(field pt)
expect "oct-HSM key: unwrap" ok 5000 "${sec[@]}" unwrap "$vault/keys/hk1" "$ctx" "$hblob"
[ "$(field pt)" = "$hpt" ] && ok "oct-HSM key: round trip" || notok "hsm round trip" "$last"
algbyte=$("$py" -c 'import base64,sys; print(base64.b64decode(sys.argv[1])[5])' "$hblob")
[ "$algbyte" = 2 ] && grep -q 'REQ POST /keys/hk1/[0-9a-f]*/wrapkey' "$work/fake.log" && ok "oct-HSM blob records A256KW (2)" || notok "hsm alg byte $algbyte"
expect "oct-HSM key: context mismatch" INVALID 5000 "${sec[@]}" unwrap "$vault/keys/hk1" "$ctx2" "$hblob"

# Delete: pending deletion while recoverable, KeyNotFound for the operations.
out=$(sdk delete lk1)
[ "$out" = "deleted True True" ] && ok "SDK: begin_delete_key (soft delete, purge date)" || notok "SDK delete" "$out"
expect "state of a deleted (recoverable) key" ok 5000 "${sec[@]}" state "$key"
[ "$(field state)" = pending_deletion ] && [ "$(field deletion_date)" -gt 0 ] &&
	ok "key_state says pending_deletion with the purge date" || notok "state pending" "$last"
expect "unwrap of a deleted key (404 KeyNotFound)" DENIED 5000 "${sec[@]}" unwrap "$key" "$ctx" "$blob"
has "DENIED names KeyNotFound" 'KeyNotFound'
[[ "$(sdk recover lk1)" == "$key/"* ]] && ok "SDK: recover the deleted key" || notok "SDK recover"
expect "unwrap after recovery" ok 5000 "${sec[@]}" unwrap "$key" "$ctx" "$blob"
expect "key never created: key_state DENIED (authoritative KeyNotFound)" DENIED 5000 "${sec[@]}" state "$vault/keys/nosuchkey"

# ---- tokens ------------------------------------------------------------------------
before=$(tokens imds)
expect "managed identity (IMDS) token" ok 5000 --ca "$work/ca.pem" --imds "http://127.0.0.1:$p_imds" state "$key"
[ $(( $(tokens imds) - before )) -eq 1 ] && ok "IMDS was asked once, with Metadata: true" || notok "IMDS count"
grep -q '^IMDS /metadata/identity/oauth2/token' "$work/fake.log" && ok "IMDS path /metadata/identity/oauth2/token" || notok "IMDS path"
expect "user-assigned managed identity (client_id in the IMDS request)" ok 5000 --ca "$work/ca.pem" --imds "http://127.0.0.1:$p_imds" \
	--client-id 33333333-3333-4333-8333-333333333333 state "$key"
grep -q '^TOKEN imds 33333333-3333-4333-8333-333333333333 https://vault.azure.net$' "$work/fake.log" &&
	ok "IMDS was asked for the user-assigned identity and resource https://vault.azure.net" || notok "IMDS client_id" "$(grep '^TOKEN imds' "$work/fake.log")"
expect "a certificate file without its private key" MISCONFIG 2000 --ca "$work/ca.pem" --creds client-certificate \
	--tenant "$tenant" --client-id 22222222-2222-4222-8222-222222222222 --cert-file "$work/crtonly.pem" --authority "$vault" state "$key"
has "the refusal says what the file must hold" 'must hold a PEM certificate and its unencrypted private key'
expect "an unknown credentials kind" MISCONFIG 2000 "${sec[@]}" --creds password state "$key"
has "the refusal lists the kinds" "expected managed-identity, client-secret or client-certificate"
expect "client-secret without tenant_id" MISCONFIG 2000 --ca "$work/ca.pem" --creds client-secret --client-id "$cid" \
	--secret-file "$work/secret" state "$key"
has "the refusal names tenant_id and client_id" 'need tenant_id .* and client_id'
before=$(tokens 'certificate 22222222') jwts=$(grep -c '^JWT OK 22222222.* alg=RS256 x5t=' "$work/fake.log")
expect "client certificate (RS256 assertion with x5t)" ok 5000 --ca "$work/ca.pem" --creds client-certificate \
	--tenant "$tenant" --client-id 22222222-2222-4222-8222-222222222222 --cert-file "$work/client.pem" --authority "$vault" state "$key"
[ $(( $(tokens 'certificate 22222222') - before )) -eq 1 ] && [ $(( $(grep -c '^JWT OK 22222222.* alg=RS256 x5t=' "$work/fake.log") - jwts )) -eq 1 ] &&
	ok "the fake authority verified lakecrypt's RS256 assertion (x5t header)" || notok "cert token count" "$(grep JWT "$work/fake.log")"
expect "a certificate the authority does not know" MISCONFIG 5000 --ca "$work/ca.pem" --creds client-certificate \
	--tenant "$tenant" --client-id 22222222-2222-4222-8222-222222222222 --cert-file "$work/rogue.pem" --authority "$vault" state "$key"
has "the refusal names the token endpoint and AADSTS code" 'token endpoint refused a token \(HTTP 401 invalid_client/AADSTS700027\)'
expect "a wrong client secret" MISCONFIG 5000 "${sec[@]:0:8}" --secret-file "$work/badsecret" --authority "$vault" state "$key"
has "wrong secret: AADSTS7000215 named" 'AADSTS7000215'
expect "a secret file readable by others is refused" MISCONFIG 2000 "${sec[@]:0:8}" --secret-file "$work/opensecret" --authority "$vault" state "$key"
has "the refusal says chmod 600" 'chmod 600'
expect "resource override (e.g. a sovereign cloud)" ok 5000 --resource https://vault.example.test "${sec[@]}" state "$key"
grep -q '^TOKEN secret 11111111-1111-4111-8111-111111111111 https://vault.example.test$' "$work/fake.log" &&
	ok "the token was requested for the configured resource (scope RESOURCE/.default)" || notok "resource override" "$(grep ^TOKEN "$work/fake.log" | tail -3)"
before=$(tokens secret)
run "${sec[@]}" twice "$key"
[ $(( $(tokens secret) - before )) -eq 1 ] && grep -q '^result ok' <<<"$last" && ok "a token is cached across calls (one fetch for two calls)" || notok "token cache" "$last"
before=$(tokens secret)
"$py" -c 'import ssl, sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="POST"), context=ssl.create_default_context(cafile=sys.argv[2]))' \
	"$vault/_test/expire-next" "$work/ca.pem"
expect "a token expired mid-operation: 401, one refresh, retried" ok 5000 "${sec[@]}" unwrap "$key" "$ctx" "$blob"
[ $(( $(tokens secret) - before )) -eq 2 ] && grep -q '^EXPIRED' "$work/fake.log" && ok "exactly one new token after the 401 (two fetches in this process)" || notok "refresh count"
before=$(tokens secret)
expect "401 again after the refresh" MISCONFIG 5000 --attempts 1 "${sec[@]}" state "$vault/keys/unauth-1"
[ $(( $(tokens secret) - before )) -eq 2 ] && ok "401 -> refresh once, then misconfigured (two fetches, no loop)" || notok "401 refresh count"
expect "an identity without a role (403 ForbiddenByRbac)" DENIED 5000 --ca "$work/ca.pem" --creds client-secret \
	--tenant "$tenant" --client-id 00000000-0000-0000-0000-0000000000d0 --secret-file "$work/denysecret" --authority "$vault" state "$key"
has "DENIED names ForbiddenByRbac" 'ForbiddenByRbac: no permission'

# ---- faults: right class, bounded, never DENIED ---------------------------------------
f=(--base-delay 50 --max-delay 3000 "${sec[@]}")
expect "429 with Retry-After: 1, retried, then transient" TRANSIENT 10000 --attempts 3 "${f[@]}" state "$vault/keys/throttle-1"
has "throttling made 3 attempts" 'attempts=3 '
ms=$(echo "$last" | sed -n 's/^result .* ms=\([0-9]*\).*/\1/p')
[ "${ms:-0}" -ge 2000 ] && ok "Retry-After honoured: 2 waits of >= 1 s (base delay 50 ms) took $ms ms" || notok "Retry-After not honoured: $ms ms" "$last"
expect "Retry-After capped by the policy's max delay (200 ms)" TRANSIENT 10000 --attempts 3 --max-delay 200 "${f[@]:0:2}" "${sec[@]}" state "$vault/keys/throttle-2"
sdk create burst-1 >/dev/null
expect "token endpoint 429 with Retry-After: 1" TRANSIENT 10000 --attempts 2 --base-delay 50 --max-delay 3000 "${sec[@]}" \
	--client-id 44444444-4444-4444-8444-444444444444 state "$key"
ms=$(echo "$last" | sed -n 's/^result .* ms=\([0-9]*\).*/\1/p')
[ "${ms:-0}" -ge 1000 ] && grep -q 'attempts=2 ' <<<"$last" && ok "the token endpoint's Retry-After was honoured ($ms ms for 2 attempts)" || notok "token Retry-After" "$last"
expect "a burst of three 503, then success" ok 10000 --attempts 5 "${f[@]}" state "$vault/keys/burst-1"
has "503 burst took 4 attempts" 'attempts=4 '
expect "500" TRANSIENT 10000 --attempts 2 "${f[@]}" state "$vault/keys/e5xx-1"
expect "malformed JSON" TRANSIENT 10000 --attempts 2 "${f[@]}" state "$vault/keys/malformed-1"
expect "truncated body" TRANSIENT 10000 --attempts 2 "${f[@]}" state "$vault/keys/truncated-1"
expect "2 MiB body (limit 64 KiB)" TRANSIENT 10000 --attempts 2 "${f[@]}" state "$vault/keys/oversized-1"
has "oversized body named" 'too large'
expect "vault accepts and never answers (2 x 1 s attempts)" TRANSIENT 4000 --attempts 2 --attempt-timeout 1000 "${f[@]}" state "$vault/keys/hang-1"
expect "403 without an error code (firewall): not a kill" MISCONFIG 5000 "${f[@]}" state "$vault/keys/nocode-1"
expect "403 ForbiddenByPolicy" DENIED 5000 "${f[@]}" state "$vault/keys/policy-1"
expect "404 text/html (wrong host or path): not a kill" MISCONFIG 5000 "${f[@]}" state "$vault/keys/html404-1"
expect "400 BadParameter" MISCONFIG 5000 "${f[@]}" state "$vault/keys/badparam-1"
expect "IMDS accepts and never answers: bounded by imds_timeout_ms" TRANSIENT 5000 --attempts 2 --imds-timeout 1000 \
	--ca "$work/ca.pem" --imds "http://127.0.0.1:$p_hang" state "$key"
expect "token endpoint accepts and never answers (TLS never starts)" TRANSIENT 5000 --attempts 2 --attempt-timeout 1000 \
	"${sec[@]:0:8}" --secret-file "$work/secret" --authority "https://127.0.0.1:$p_hang" state "$key"
expect "nothing listening at IMDS" TRANSIENT 5000 --attempts 2 --ca "$work/ca.pem" --imds "http://127.0.0.1:1" state "$key"
expect "TLS with a CA that did not sign the server" TRANSIENT 5000 --attempts 1 \
	--ca "$work/other-ca.pem" --creds client-secret --tenant "$tenant" --client-id "$cid" \
	--secret-file "$work/secret" --authority "$vault" state "$key"
has "wrong CA named as a TLS failure" 'TLS|certificate'
expect "TLS certificate for another name" TRANSIENT 5000 --attempts 1 "${sec[@]}" state "https://127.0.0.1:$p_wrong/keys/lk1"
sdk create hugekid-1 >/dev/null
expect "wrapkey answering a kid of another vault is refused" MISCONFIG 5000 "${sec[@]}" wrap "$vault/keys/hugekid-1" "$ctx"
has "the refusal says the answer is not a version of the key" 'wrapkey answered with key .*not a version of'
expect "key URL that is a secret, not a key" MISCONFIG 2000 "${sec[@]}" state "$vault/secrets/lk1"
has "the message says it is not a key" 'no /keys/NAME path'
expect "key URL over http" MISCONFIG 2000 "${sec[@]}" state "http://127.0.0.1:$p_kv/keys/lk1"
if grep -qE 'fake-client-secret|eyJ0eXAiOiJKV1QifQ\.|client_assertion=|Bearer ' "$work/client.log"; then
	notok "no secret, token or assertion in the client's output" "$(grep -E 'fake-client-secret|eyJ0|Bearer' "$work/client.log" | head -3)"
else ok "no secret, token or assertion in the client's output"; fi
! grep -qE 'Sanitizer|runtime error' "$work/client.log" && ok "no ASan/UBSan report in any run" || notok "sanitizer report" "$(grep -B2 -A10 Sanitizer "$work/client.log" | head -30)"

# ---- the agent: [azure-kv] in agent.conf, lakecryptctl keyconfig create ----------------
agent_dir=$work/agent
mkdir -p "$agent_dir/state" && chmod 700 "$agent_dir/state"
cat >"$agent_dir/agent.conf" <<EOF
[agent]
socket = $agent_dir/agent.sock
state_dir = $agent_dir/state
audit_log = $agent_dir/audit.log
audit_fsync = no
admin_group = root

[kms]
retry_attempts = 2
retry_base_delay_ms = 50
deadline_ms = 5000

[azure-kv]
credentials = client-secret
tenant_id = $tenant
client_id = $cid
client_secret_file = $work/secret
authority = $vault
ca_bundle = $work/ca.pem
connect_timeout_ms = 2000
EOF
agent=$top/build/agent-san/lakecrypt-agent ctl=$top/build/agent-san/lakecryptctl
"$agent" -c "$agent_dir/agent.conf" -f >"$agent_dir/agent.log" 2>&1 &
agent_pid=$!
pids+=($agent_pid)
for _ in $(seq 100); do [ -S "$agent_dir/agent.sock" ] && break; sleep 0.1; done
lct() { "$ctl" --socket "$agent_dir/agent.sock" "$@" 2>&1; }
if out=$(lct keyconfig create azure-kc --provider azure-kv --key "$key") && grep -q azure-kv <<<"$out"; then
	ok "lakecryptctl keyconfig create --provider azure-kv: the key is usable"
else notok "keyconfig create azure-kv" "$out"; fi
sdk disable lk1 >/dev/null
out=$(lct keyconfig create kc-disabled --provider azure-kv --key "$key")
grep -q "is disabled" <<<"$out" && ok "keyconfig create on a disabled key says it is disabled" || notok "disabled key message" "$out"
sdk enable lk1 >/dev/null
out=$(lct keyconfig create kc-unknown --provider azure-kv --key "$vault/keys/nosuchkey")
grep -q "KeyNotFound: the key does not exist" <<<"$out" && ok "keyconfig create on an unknown key says it does not exist" || notok "unknown key message" "$out"
out=$(lct keyconfig create kc-secret --provider azure-kv --key "$vault/secrets/lk1")
grep -q "not a key" <<<"$out" && ok "keyconfig create with a secret URL says it is not a key" || notok "secret URL message" "$out"
out=$(lct keyconfig create kc-rbac --provider azure-kv --key "$vault/keys/policy-1")
grep -q "access policy does not allow" <<<"$out" && ok "keyconfig create without permission names the access policy" || notok "policy message" "$out"
out=$(lct keyconfig list)
grep -q azure-kc <<<"$out" && ! grep -qE 'kc-(disabled|unknown|secret|rbac)' <<<"$out" &&
	ok "only the usable key configuration was registered" || notok "keyconfig list" "$out"
out=$(lct status)
grep -E 'KMS calls \(azure-kv\):.*key_state=[1-9].*denied=[1-9].*misconfigured=[1-9]' <<<"$out" >/dev/null &&
	ok "status shows azure-kv calls and failures by class" || notok "status counters" "$out"
grep -q '"provider":"azure-kv"' "$agent_dir/audit.log" && ok "audit log records the azure-kv key_state calls" || notok "audit" "$(tail -3 "$agent_dir/audit.log")"
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null
if grep -qE 'Sanitizer|runtime error' "$agent_dir/agent.log"; then notok "agent (ASan/UBSan) clean" "$(cat "$agent_dir/agent.log")"
else ok "agent (ASan/UBSan) ran clean"; fi
grep -qE 'fake-client-secret|eyJ0eXAiOiJKV1QifQ\.' "$agent_dir/agent.log" "$agent_dir/audit.log" &&
	notok "no secret or token in the agent's log or audit" || ok "no secret or token in the agent's log or audit"
. tests/kms/azure-ident.sh	# the principal (token oid/tid) bound to a key configuration
finish
