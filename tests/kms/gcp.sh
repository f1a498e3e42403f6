#!/bin/bash
# Google Cloud KMS provider (gcp-kms), called by tests/kms/check.sh (or
# alone).  No official Cloud KMS emulator exists, so:
#   1. tests/kms/fake-gcp-kms.py, the project's own Cloud KMS (REST v1,
#      TLS with a test CA made here, OAuth token endpoint verifying RS256
#      JWTs, metadata server, fault keys), is first driven by the official
#      SDK (google-cloud-kms, REST transport; google-auth's service-account
#      flow against the fake token endpoint): encrypt/decrypt with AAD and
#      CRC32C, get_crypto_key, version admin, and the errors lakecrypt maps;
#   2. then the provider, through the provider layer (retries, deadline),
#      by tests/kms/kms-gcp-client.c built with ASan and UBSan: the key's
#      life, rotation, tokens, error classes and faults;
#   3. then the agent: [gcp-kms] in agent.conf, lakecryptctl keyconfig
#      create, status counters, audit.
# TAP out; ends with "N passed, N failed, N skipped".  Nothing is skipped:
# a missing tool is a failure (run `make setup`).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
tools=${LAKECRYPT_TOOLS:-/opt/lakecrypt-tools}
py=$tools/venv/bin/python3
work=$(mktemp -d /tmp/lakecrypt-gcp.XXXXXX)
pids=()
pass=0 fail=0 n=0

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n - gcp: $1"; }
notok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - gcp: $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/# /' | tail -n 20; }
finish() { echo "$pass passed, $fail failed, 0 skipped"; [ $fail -eq 0 ]; exit $?; }

# ---- tools and build ---------------------------------------------------
for t in "$py" /usr/bin/openssl; do
	if [ ! -x "$t" ]; then notok "tool $t present (run make setup)"; finish; fi
done
if ! "$py" -c 'import google.cloud.kms, google.auth, google_crc32c, cryptography, grpc' 2>/dev/null; then
	notok "google-cloud-kms, google-auth, google-crc32c, cryptography importable (run make setup)"; finish
fi
if out=$(make -s -C agent SAN=1 kmstest 2>&1); then ok "build KMS test drivers (ASan+UBSan)"
else notok "build KMS test drivers (ASan+UBSan)" "$out"; finish; fi
client=$top/build/agent-san/kmstest/kms-gcp-client
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {	# wait_port PORT: up to 20 s
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# ---- test PKI and service-account keys ---------------------------------------
p_kms=$(free_port) p_wrong=$(free_port) p_md=$(free_port) p_hang=$(free_port)
sa_email=lakecrypt-agent@lc-test.iam.gserviceaccount.com
pki() {
	cd "$work" || return 1
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=lakecrypt-test-ca \
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
	for k in sa rogue; do
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$k.key" &&
		openssl pkey -in "$k.key" -pubout -out "$k.pub" || return 1
	done
	# Key files as the Cloud console makes them; token_uri: the fake.
	for k in sa rogue; do
		"$py" -c 'import json, sys
json.dump({"type": "service_account", "project_id": "lc-test", "private_key_id": "0123abcd",
           "private_key": open(sys.argv[1] + ".key").read(), "client_email": sys.argv[2],
           "client_id": "1234567890", "token_uri": sys.argv[3]}, open(sys.argv[1] + ".json", "w"))' \
			"$k" "$sa_email" "https://127.0.0.1:$p_kms/token" || return 1
		chmod 600 "$k.json"
	done
}
if out=$(pki 2>&1); then ok "test CA, server and wrong-name certificates, service-account key files (0600)"
else notok "test PKI" "$out"; finish; fi
cd "$top"

"$py" tests/kms/fake-gcp-kms.py --tls "$p_kms:$work/server.pem:$work/server.key" \
	--tls "$p_wrong:$work/wrongname.pem:$work/wrongname.key" --metadata "$p_md" --hang "$p_hang" \
	--sa "$sa_email=$work/sa.pub" 2>"$work/fake.log" &
pids+=($!)
if wait_port "$p_kms" && wait_port "$p_wrong" && wait_port "$p_md" && wait_port "$p_hang"; then
	ok "fake Cloud KMS on https://127.0.0.1:$p_kms, metadata server :$p_md, hanging endpoint :$p_hang"
else notok "fake Cloud KMS up" "$(cat "$work/fake.log")"; finish; fi

# ---- helpers ---------------------------------------------------------------
export REQUESTS_CA_BUNDLE=$work/ca.pem
unset GOOGLE_APPLICATION_CREDENTIALS GCE_METADATA_HOST
sdk() { "$py" tests/kms/gcp-sdk.py "127.0.0.1:$p_kms" "$work/sa.json" "$@" 2>&1; }
admin() {	# admin OP JSON
	"$py" -c 'import ssl, sys, urllib.request
c = ssl.create_default_context(cafile=sys.argv[1])
r = urllib.request.Request(sys.argv[2], data=sys.argv[3].encode(), method="POST")
print(urllib.request.urlopen(r, context=c, timeout=10).status)' "$work/ca.pem" "https://127.0.0.1:$p_kms/admin/$1" "$2" >/dev/null
}
stat() {	# stat NAME: a counter of the fake
	"$py" -c 'import json, ssl, sys, urllib.request
c = ssl.create_default_context(cafile=sys.argv[1])
print(json.load(urllib.request.urlopen(sys.argv[2], context=c, timeout=10))[sys.argv[3]])' \
		"$work/ca.pem" "https://127.0.0.1:$p_kms/admin/stats" "$1"
}
ctx=lakecrypt:v2\;volume=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\;workspace=finance\;project=ledger\;keyconfig=gcp-kc
ctx2=lakecrypt:v2\;volume=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\;workspace=finance\;project=other\;keyconfig=gcp-kc
sa=(--endpoint "https://127.0.0.1:$p_kms" --ca "$work/ca.pem" --creds service-account --key-file "$work/sa.json")
fk() { echo "projects/p/locations/global/keyRings/faults/cryptoKeys/$1"; }

last=""
run() { last=$("$client" "$@" 2>&1); echo "$last" >>"$work/client.log"; }
field() { echo "$last" | sed -n "s/^$1=//p" | head -n1; }
# expect DESC ok|CLASS MAX_MS ARGS...: the result line's class, bounded time.
expect() {
	local desc=$1 want=$2 max=$3 ms cls
	shift 3
	run "$@"
	ms=$(echo "$last" | sed -n 's/^result .* ms=\([0-9]*\).*/\1/p')
	if [ "$want" = ok ]; then
		cls=$(grep -q '^result ok' <<<"$last" && echo ok)
	else
		cls=$(echo "$last" | sed -n 's/^result error class=\([a-z_]*\).*/\1/p')
		case $want in	# lc_err_class_name()
		MISCONFIG) want=misconfigured ;;
		*) want=${want,,} ;;
		esac
	fi
	if [ "$cls" = "$want" ] && [ -n "$ms" ] && [ "$ms" -le "$max" ] &&
	   ! grep -qE 'Sanitizer|runtime error' <<<"$last"; then
		ok "$desc: $want in $ms ms (bound $max)"
	else
		notok "$desc: expected $want within $max ms" "$last"
	fi
}
has() {	# has DESC REGEX: the last output matches
	if grep -qE "$2" <<<"$last"; then ok "$1"; else notok "$1" "$last"; fi
}

# ---- 1. the official SDK against the fake: the protocol ---------------------------
key=$(sdk setup lc-test global ring-a key-a)
[ "$key" = projects/lc-test/locations/global/keyRings/ring-a/cryptoKeys/key-a ] &&
	ok "SDK (REST, token from google-auth's JWT grant) creates a key ring and key: $key" ||
	{ notok "SDK create key" "$key"; finish; }
v1=$key/cryptoKeyVersions/1
last=$(sdk prove "$key")
has "SDK encrypt with AAD and CRC32C: verified_plaintext/aad true, ciphertext CRC32C matches" \
	"^PROVE encrypt name=$v1 verified_pt=True verified_aad=True ct_crc_ok=True$"
has "SDK decrypt: same plaintext, plaintext CRC32C matches" '^PROVE decrypt same=True pt_crc_ok=True used_primary=True$'
has "SDK decrypt with other AAD: BadRequest, INVALID_ARGUMENT" '^PROVE wrong-aad BadRequest INVALID_ARGUMENT$'
has "SDK decrypt with a wrong ciphertext CRC32C: INVALID_ARGUMENT (the fake checks the field)" '^PROVE bad-crc BadRequest INVALID_ARGUMENT$'
has "SDK get_crypto_key: ENCRYPT_DECRYPT, primary version 1 ENABLED" "^PROVE get name_ok=True purpose=ENCRYPT_DECRYPT primary=$v1 state=ENABLED$"
[ "$(sdk disable "$v1")" = DISABLED ] && ok "SDK update_crypto_key_version: version 1 DISABLED" || notok "SDK disable"
last=$(sdk error "$key" encrypt)
has "SDK encrypt on a disabled version: BadRequest, status FAILED_PRECONDITION (api_core: FailedPrecondition)" \
	'^BadRequest FailedPrecondition FAILED_PRECONDITION -$'
[ "$(sdk enable "$v1")" = ENABLED ] && ok "SDK enables version 1" || notok "SDK enable"
admin deny "{\"key\":\"$key\",\"deny\":true}"
last=$(sdk error "$key" encrypt)
has "SDK with IAM denied: Forbidden, PERMISSION_DENIED (api_core: PermissionDenied), reason IAM_PERMISSION_DENIED" \
	'^Forbidden PermissionDenied PERMISSION_DENIED IAM_PERMISSION_DENIED$'
admin deny "{\"key\":\"$key\",\"deny\":false}"
admin deny "{\"key\":\"$key\",\"deny\":true,\"only\":\"decrypt\"}"
last=$(sdk error "$key" decrypt)
has "SDK with useToDecrypt taken away (encrypt still works): decrypt is Forbidden, PERMISSION_DENIED, IAM_PERMISSION_DENIED" \
	'^Forbidden PermissionDenied PERMISSION_DENIED IAM_PERMISSION_DENIED$'
admin deny "{\"key\":\"$key\",\"deny\":false,\"only\":\"decrypt\"}"
last=$(sdk error "$(fk ekm)" encrypt)
has "SDK with Cloud EKM unreachable: BadRequest, FAILED_PRECONDITION (api_core: FailedPrecondition)" \
	'^BadRequest FailedPrecondition FAILED_PRECONDITION -$'
has "SDK reads the google.rpc.PreconditionFailure of Cloud EKM (violation types)" \
	'^PRECONDITION KEY_STATE EXTERNAL_KEY_MANAGER_UNAVAILABLE$'
last=$(sdk error "$(fk apidisabled)" get)
has "SDK with the API disabled: PERMISSION_DENIED, ErrorInfo reason SERVICE_DISABLED (read by exc.reason)" \
	'^Forbidden PermissionDenied PERMISSION_DENIED SERVICE_DISABLED$'
last=$(sdk error "${key%/*}/nokey" get)
has "SDK get of an unknown key: NotFound, NOT_FOUND" '^NotFound NotFound NOT_FOUND -$'
[ "$(stat jwt_rejected)" = 0 ] && [ "$(stat tokens_jwt)" -ge 6 ] &&
	ok "the fake token endpoint verified every google-auth RS256 assertion ($(stat tokens_jwt) tokens)" ||
	notok "google-auth JWTs" "$(grep JWT "$work/fake.log" | tail -3)"

# ---- 2. the provider: the key's life -------------------------------------------------
expect "state (service-account token)" ok 5000 "${sa[@]}" state "$key"
[ "$(field state)" = enabled ] && [ "$(field key_version)" = "$v1" ] &&
	ok "state: enabled, primary version 1" || notok "state enabled" "$last"
expect "wrap with the context as AAD, CRC32C sent and verified" ok 5000 "${sa[@]}" wrap "$key" "$ctx"
blob=$(field blob) pt=$(field pt)
[ "$(field key_version)" = "$v1" ] && ok "wrap records the version used (the encrypt reply's name)" || notok "key_version" "$last"
expect "unwrap with the same context" ok 5000 "${sa[@]}" unwrap "$key" "$ctx" "$blob"
[ "$(field pt)" = "$pt" ] && [ -n "$pt" ] && ok "unwrapped KEK equals the wrapped one" || notok "round trip" "$last"
[ "$(stat crc_checked)" -ge 6 ] && ok "the fake checked lakecrypt's CRC32C fields with google-crc32c ($(stat crc_checked) fields)" ||
	notok "CRC32C fields checked" "$(stat crc_checked)"
expect "unwrap with another project in the context" INVALID 5000 "${sa[@]}" unwrap "$key" "$ctx2" "$blob"
has "INVALID says the context (AAD) did not match" 'encryption context\) did not match'
expect "wrap with a v1 context is refused before any call" INVALID 2000 "${sa[@]}" wrap "$key" "lakecrypt:volume:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
sdk disable "$v1" >/dev/null
expect "unwrap under a disabled version" DENIED 5000 "${sa[@]}" unwrap "$key" "$ctx" "$blob"
has "DENIED names FAILED_PRECONDITION" 'FAILED_PRECONDITION'
expect "wrap under a disabled primary version" DENIED 5000 "${sa[@]}" wrap "$key" "$ctx"
expect "state of a disabled primary version" ok 5000 "${sa[@]}" state "$key"
[ "$(field state)" = disabled ] && ok "state: disabled" || notok "state disabled" "$last"
sdk enable "$v1" >/dev/null
expect "unwrap after enable" ok 5000 "${sa[@]}" unwrap "$key" "$ctx" "$blob"

# Rotation: a new primary version; old blobs still decrypt, new ones use it.
v2=$(sdk rotate "$key")
[ "$v2" = "$key/cryptoKeyVersions/2" ] && ok "SDK rotates: version 2 is primary" || notok "rotate" "$v2"
expect "rotation: the old blob unwraps" ok 5000 "${sa[@]}" unwrap "$key" "$ctx" "$blob"
[ "$(field pt)" = "$pt" ] && ok "rotation: same KEK from the old blob" || notok "rotation old blob" "$last"
expect "rotation: wrap after rotation" ok 5000 "${sa[@]}" wrap "$key" "$ctx"
blob2=$(field blob) pt2=$(field pt)
[ "$(field key_version)" = "$v2" ] && ok "rotation: the new blob is made by version 2" || notok "rotation version" "$last"
sdk disable "$v1" >/dev/null
expect "rotation: version 1 disabled, the new blob still unwraps" ok 5000 "${sa[@]}" unwrap "$key" "$ctx" "$blob2"
[ "$(field pt)" = "$pt2" ] && ok "rotation: new blob round trip" || notok "rotation new blob" "$last"
expect "rotation: version 1 disabled, its blob is denied" DENIED 5000 "${sa[@]}" unwrap "$key" "$ctx" "$blob"
expect "rotation: version 1 disabled, the key (primary 2) reads" ok 5000 "${sa[@]}" state "$key"
[ "$(field state)" = enabled ] && ok "rotation: the key's state is its primary's: enabled" || notok "primary state" "$last"
expect "rotation: the state of version 1 itself (cryptoKeyVersions.get)" ok 5000 "${sa[@]}" state "$v1"
[ "$(field state)" = disabled ] && [ "$(field key_version)" = "$v1" ] &&
	ok "rotation: version 1 reads disabled (the state the watcher asks for a volume wrapped by it)" || notok "version state" "$last"
sdk enable "$v1" >/dev/null
expect "state of version 1 re-enabled" ok 5000 "${sa[@]}" state "$v1"
[ "$(field state)" = enabled ] && ok "version 1 reads enabled again" || notok "version enabled" "$last"
expect "state of a version that does not exist" DENIED 5000 "${sa[@]}" state "$key/cryptoKeyVersions/99"
expect "state of a malformed version name: refused before any call" MISCONFIG 2000 "${sa[@]}" state "$key/cryptoKeyVersions/x"

# Destruction: scheduled, then destroyed.
sdk destroy "$v2" | grep -q '^DESTROY_SCHEDULED True$' && ok "SDK schedules destruction of version 2" || notok "SDK destroy"
expect "state: primary scheduled for destruction" ok 5000 "${sa[@]}" state "$key"
[ "$(field state)" = pending_deletion ] && [ "$(field deletion_date)" -gt "$(date +%s)" ] &&
	ok "state: pending_deletion with the destroy time" || notok "state pending" "$last"
expect "unwrap of a version scheduled for destruction" DENIED 5000 "${sa[@]}" unwrap "$key" "$ctx" "$blob2"
[ "$(sdk restore "$v2")" = DISABLED ] && ok "SDK restores version 2 (disabled)" || notok "SDK restore"
sdk destroy "$v2" >/dev/null
admin state "{\"version\":\"$v2\",\"state\":\"DESTROYED\"}"
expect "state: primary destroyed" ok 5000 "${sa[@]}" state "$key"
[ "$(field state)" = destroyed ] && ok "state: destroyed" || notok "state destroyed" "$last"
expect "unwrap of a destroyed version" DENIED 5000 "${sa[@]}" unwrap "$key" "$ctx" "$blob2"
expect "old blob of version 1 still unwraps" ok 5000 "${sa[@]}" unwrap "$key" "$ctx" "$blob"
for st in PENDING_GENERATION PENDING_IMPORT; do
	admin state "{\"version\":\"$v2\",\"state\":\"$st\"}"
	expect "state $st is passing: transient, never a denial" TRANSIENT 5000 --attempts 1 "${sa[@]}" state "$key"
done
for st in IMPORT_FAILED EXTERNAL_DESTRUCTION_FAILED; do
	admin state "{\"version\":\"$v2\",\"state\":\"$st\"}"
	expect "state $st is unknown to lakecrypt: misconfigured, never a denial" MISCONFIG 5000 "${sa[@]}" state "$key"
done

# A second key for the identity and configuration errors.
key2=$(sdk setup lc-test global ring-b key-b)
admin deny "{\"key\":\"$key2\",\"deny\":true}"
expect "IAM deny: PERMISSION_DENIED" DENIED 5000 "${sa[@]}" state "$key2"
has "DENIED says no permission" 'no permission'
admin deny "{\"key\":\"$key2\",\"deny\":false}"
expect "unknown key in an existing key ring (ResourceInfo names the key)" DENIED 5000 "${sa[@]}" state "${key2%/*}/nokey"
has "DENIED says the key does not exist" 'the key does not exist'
expect "unknown key ring: a wrong reference, not a revocation" MISCONFIG 5000 "${sa[@]}" state "projects/lc-test/locations/global/keyRings/noring/cryptoKeys/key-b"
expect "unknown project/location: misconfigured" MISCONFIG 5000 "${sa[@]}" state "projects/other/locations/europe-west1/keyRings/ring-b/cryptoKeys/key-b"
expect "not a key name" MISCONFIG 2000 "${sa[@]}" state "projects/lc-test/keyRings/ring-b"
admin service '{"project":"lc-test","enabled":false}'
expect "Cloud KMS API disabled in the project (ErrorInfo SERVICE_DISABLED)" MISCONFIG 5000 "${sa[@]}" unwrap "$key" "$ctx" "$blob"
has "MISCONFIG says the API is not enabled" 'Cloud KMS API is not enabled'
admin service '{"project":"lc-test","enabled":true}'
expect "USER_PROJECT_DENIED: misconfigured" MISCONFIG 5000 "${sa[@]}" state "$(fk userproject)"
expect "INVALID_ARGUMENT on encrypt: misconfigured" MISCONFIG 5000 "${sa[@]}" wrap "$(fk invalidarg)" "$ctx"
expect "Cloud EKM unreachable (FAILED_PRECONDITION with PreconditionFailure) on wrap: transient, never a kill" TRANSIENT 10000 --attempts 2 "${sa[@]}" wrap "$(fk ekm)" "$ctx"
has "the EKM error domain is named" 'Cloud EKM EXTERNAL_KEY_MANAGER_UNAVAILABLE'
expect "Cloud EKM unreachable on unwrap: transient" TRANSIENT 10000 --attempts 2 "${sa[@]}" unwrap "$(fk ekm)" "$ctx" "$blob"
expect "Cloud EKM key: its version is enabled meanwhile" ok 5000 "${sa[@]}" state "$(fk ekm)"
expect "a server whose error message echoes the bearer token" MISCONFIG 5000 "${sa[@]}" state "$(fk echo)"
has "the echoed token is withheld from the error" 'message withheld'

# ---- tokens -----------------------------------------------------------------------
j0=$(stat tokens_jwt)
expect "three calls in one process" ok 8000 "${sa[@]}" repeat "$key2" 3 100
[ $(($(stat tokens_jwt) - j0)) -eq 1 ] && ok "the access token is cached: one JWT grant for three calls" ||
	notok "token cache: $(($(stat tokens_jwt) - j0)) grants"
j0=$(stat tokens_jwt) u0=$(stat unauthenticated)
expect "token expired mid-operation (401): refreshed once, then ok" ok 5000 --attempts 1 "${sa[@]}" state "$(fk expire)"
[ $(($(stat tokens_jwt) - j0)) -eq 2 ] && [ $(($(stat unauthenticated) - u0)) -eq 1 ] &&
	ok "401 -> one new token and one retry" || notok "401 refresh" "jwt +$(($(stat tokens_jwt) - j0)) 401 +$(($(stat unauthenticated) - u0))"
admin token-mode '{"mode":"bogus"}'
j0=$(stat tokens_jwt)
expect "tokens the API never accepts: misconfigured after one refresh" MISCONFIG 5000 --attempts 1 "${sa[@]}" state "$key2"
[ $(($(stat tokens_jwt) - j0)) -eq 2 ] && ok "401 twice: refreshed exactly once (no loop)" || notok "refresh once" "+$(($(stat tokens_jwt) - j0))"
admin token-mode '{"mode":"short"}'
j0=$(stat tokens_jwt)
expect "tokens of 2 s: fetched again at half life" ok 8000 "${sa[@]}" repeat "$key2" 2 1500
[ $(($(stat tokens_jwt) - j0)) -eq 2 ] && ok "a token near expiry is replaced before use" || notok "short tokens" "+$(($(stat tokens_jwt) - j0))"
admin token-mode '{"mode":"e500"}'
expect "token endpoint HTTP 500: transient" TRANSIENT 8000 --attempts 2 "${sa[@]}" state "$key2"
admin token-mode '{"mode":"hang"}'
expect "token endpoint accepts and never answers: bounded, transient" TRANSIENT 5000 --attempts 2 --attempt-timeout 1000 "${sa[@]}" state "$key2"
admin token-mode '{"mode":"ok"}'
expect "a key the token endpoint does not know (invalid_grant): misconfigured" MISCONFIG 5000 \
	--endpoint "https://127.0.0.1:$p_kms" --ca "$work/ca.pem" --creds service-account --key-file "$work/rogue.json" state "$key2"
has "the refusal names invalid_grant" 'invalid_grant'
[ "$(stat jwt_rejected)" -ge 1 ] && ok "the fake rejected the rogue key's JWT signature" || notok "rogue JWT"
cp "$work/sa.json" "$work/sa-open.json"; chmod 644 "$work/sa-open.json"
expect "key file readable by others: refused" MISCONFIG 2000 \
	--endpoint "https://127.0.0.1:$p_kms" --ca "$work/ca.pem" --creds service-account --key-file "$work/sa-open.json" state "$key2"
has "the refusal says chmod 600" 'chmod 600'
GOOGLE_APPLICATION_CREDENTIALS=$work/sa.json expect "auto: GOOGLE_APPLICATION_CREDENTIALS" ok 5000 \
	--endpoint "https://127.0.0.1:$p_kms" --ca "$work/ca.pem" state "$key2"
m0=$(stat tokens_metadata)
expect "metadata server token (Metadata-Flavor: Google)" ok 5000 \
	--endpoint "https://127.0.0.1:$p_kms" --ca "$work/ca.pem" --creds metadata --metadata "http://127.0.0.1:$p_md" state "$key2"
[ $(($(stat tokens_metadata) - m0)) -eq 1 ] && ok "one token from the metadata server" || notok "metadata token"
expect "auto without a key file: the metadata server" ok 5000 \
	--endpoint "https://127.0.0.1:$p_kms" --ca "$work/ca.pem" --metadata "http://127.0.0.1:$p_md" state "$key2"
expect "metadata server accepts and never answers: bounded by the metadata timeout" TRANSIENT 5000 --attempts 2 \
	--endpoint "https://127.0.0.1:$p_kms" --ca "$work/ca.pem" --creds metadata --metadata "http://127.0.0.1:$p_hang" \
	--metadata-timeout 1000 state "$key2"
expect "no metadata server at all: transient" TRANSIENT 5000 --attempts 2 \
	--endpoint "https://127.0.0.1:$p_kms" --ca "$work/ca.pem" --creds metadata --metadata "http://127.0.0.1:1" state "$key2"
# A metadata server with no token for the instance (HTTP 404; here a path
# the fake does not serve): misconfigured, and the error says what it
# likely means.
expect "metadata server answers the token request 404: misconfigured" MISCONFIG 5000 \
	--endpoint "https://127.0.0.1:$p_kms" --ca "$work/ca.pem" --creds metadata --metadata "http://127.0.0.1:$p_md/none" state "$key2"
grep -qF 'GCP metadata server: token request answered HTTP 404 (no service account attached to the instance?)' <<<"$last" &&
	ok "... the error names the token request, the 404 and its likely cause" || notok "metadata token 404 message" "$last"

# ---- faults: each a bounded time, the right class, never a kill ------------------------
expect "429 RESOURCE_EXHAUSTED retried, then transient" TRANSIENT 10000 --attempts 3 "${sa[@]}" wrap "$(fk e429)" "$ctx"
has "429: 3 attempts" 'attempts=3 '
expect "a burst of three 503 then success" ok 10000 --attempts 5 "${sa[@]}" wrap "$(fk burst-a)" "$ctx"
has "503 burst: 4 attempts" 'attempts=4 '
expect "500 INTERNAL" TRANSIENT 10000 --attempts 2 "${sa[@]}" state "$(fk e500)"
expect "504 DEADLINE_EXCEEDED" TRANSIENT 10000 --attempts 2 "${sa[@]}" state "$(fk deadline)"
expect "502 with an HTML body" TRANSIENT 10000 --attempts 2 "${sa[@]}" state "$(fk html)"
expect "malformed JSON" TRANSIENT 10000 --attempts 2 "${sa[@]}" wrap "$(fk malformed)" "$ctx"
expect "truncated body" TRANSIENT 10000 --attempts 2 "${sa[@]}" wrap "$(fk truncated)" "$ctx"
expect "2 MiB body (limit 64 KiB)" TRANSIENT 10000 --attempts 2 "${sa[@]}" wrap "$(fk oversized)" "$ctx"
has "oversized body named" 'too large'
expect "Cloud KMS accepts and never answers (2 x 1 s attempts)" TRANSIENT 4000 --attempts 2 --attempt-timeout 1000 "${sa[@]}" state "$(fk hang)"
expect "wrong ciphertextCrc32c in the encrypt reply: not accepted" TRANSIENT 10000 --attempts 2 "${sa[@]}" wrap "$(fk badcrc)" "$ctx"
has "the CRC32C mismatch is named" 'ciphertextCrc32c'
expect "encrypt reply without verifiedPlaintextCrc32c: not accepted" TRANSIENT 10000 --attempts 2 "${sa[@]}" wrap "$(fk noverify)" "$ctx"
expect "badptcrc: wrap" ok 5000 "${sa[@]}" wrap "$(fk badptcrc)" "$ctx"
expect "wrong plaintextCrc32c in the decrypt reply: not accepted" TRANSIENT 10000 --attempts 2 "${sa[@]}" unwrap "$(fk badptcrc)" "$ctx" "$(field blob)"
has "the plaintext CRC32C mismatch is named" 'plaintextCrc32c'
expect "TLS with a CA that did not sign the server" TRANSIENT 5000 --attempts 1 \
	--endpoint "https://127.0.0.1:$p_kms" --ca "$work/other-ca.pem" --creds service-account --key-file "$work/sa.json" state "$key2"
has "wrong CA named as a TLS failure" 'TLS'
expect "TLS certificate for another name" TRANSIENT 5000 --attempts 1 \
	--endpoint "https://127.0.0.1:$p_wrong" --ca "$work/ca.pem" --creds service-account --key-file "$work/sa.json" state "$key2"
expect "nothing listening" TRANSIENT 5000 --attempts 2 \
	--endpoint "https://127.0.0.1:1" --ca "$work/ca.pem" --creds service-account --key-file "$work/sa.json" state "$key2"
expect "plain http:// endpoint refused" MISCONFIG 2000 \
	--endpoint "http://127.0.0.1:$p_kms" --ca "$work/ca.pem" --creds service-account --key-file "$work/sa.json" state "$key2"

# ---- 3. the agent: [gcp-kms], keyconfig create, status, audit --------------------
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

[gcp-kms]
endpoint = https://127.0.0.1:$p_kms
ca_bundle = $work/ca.pem
credentials = service-account
key_file = $work/sa.json
EOF
agent=$top/build/agent-san/lakecrypt-agent ctl=$top/build/agent-san/lakecryptctl
"$agent" -c "$agent_dir/agent.conf" -f >"$agent_dir/agent.log" 2>&1 &
agent_pid=$!
pids+=($agent_pid)
for _ in $(seq 100); do [ -S "$agent_dir/agent.sock" ] && break; sleep 0.1; done
lct() { "$ctl" --socket "$agent_dir/agent.sock" "$@" 2>&1; }
if out=$(lct keyconfig create gcp-kc --provider gcp-kms --key "$key2") && grep -q gcp-kms <<<"$out"; then
	ok "lakecryptctl keyconfig create --provider gcp-kms: the key is usable"
else notok "keyconfig create gcp-kms" "$out"; fi
out=$(lct keyconfig create kc-unknown --provider gcp-kms --key "${key2%/*}/nokey")
grep -q "the key does not exist" <<<"$out" && ok "keyconfig create on an unknown key says it does not exist" || notok "unknown key message" "$out"
out=$(lct keyconfig create kc-ring --provider gcp-kms --key "projects/lc-test/locations/us-east1/keyRings/ring-b/cryptoKeys/key-b")
grep -q "project, location or key ring" <<<"$out" && ok "keyconfig create with a wrong location says the project, location or key ring does not exist" || notok "wrong location message" "$out"
admin deny "{\"key\":\"$key2\",\"deny\":true}"
out=$(lct keyconfig create kc-denied --provider gcp-kms --key "$key2")
grep -q "no permission" <<<"$out" && ok "keyconfig create without permission says so" || notok "no permission message" "$out"
admin deny "{\"key\":\"$key2\",\"deny\":false}"
sdk disable "$key2/cryptoKeyVersions/1" >/dev/null
out=$(lct keyconfig create kc-disabled --provider gcp-kms --key "$key2")
grep -q "is disabled" <<<"$out" && ok "keyconfig create on a disabled version says it is disabled" || notok "disabled message" "$out"
sdk enable "$key2/cryptoKeyVersions/1" >/dev/null
admin service '{"project":"lc-test","enabled":false}'
out=$(lct keyconfig create kc-api --provider gcp-kms --key "$key2")
grep -q "Cloud KMS API is not enabled" <<<"$out" && ok "keyconfig create with the API disabled says so" || notok "API disabled message" "$out"
admin service '{"project":"lc-test","enabled":true}'
out=$(lct keyconfig create kc-bad --provider gcp-kms --key "projects/lc-test/keyRings/r")
grep -q "is not a key name" <<<"$out" && ok "keyconfig create with a malformed key name says so" || notok "bad name message" "$out"
out=$(lct keyconfig list)
grep -q gcp-kc <<<"$out" && ! grep -qE 'kc-(unknown|ring|denied|disabled|api|bad)' <<<"$out" &&
	ok "only the usable key configuration was registered" || notok "keyconfig list" "$out"
out=$(lct status)
grep -E 'KMS calls \(gcp-kms\):.*key_state=[1-9].*denied=[1-9].*misconfigured=[1-9].*latency_ms_max=' <<<"$out" >/dev/null &&
	ok "status shows gcp-kms calls, failures by class and latency" || notok "status counters" "$out"
grep -q '"provider":"gcp-kms"' "$agent_dir/audit.log" && ok "audit log records the gcp-kms key_state calls" || notok "audit" "$(tail -3 "$agent_dir/audit.log")"
# The revocation probe's canary: made at keyconfig create with the AAD
# lakecrypt:v2;canary;keyconfig=gcp-kc, unwrapped at each probe; taking
# useToDecrypt away (get and encrypt still allowed) is seen as a denial.
out=$(lct --json keyconfig list)
grep -q '"canary": true' <<<"$out" && ok "canary (GCP): keyconfig create made the canary" || notok "GCP canary made" "$out"
grep -q '"op":"cmk.canary_wrap".*"keyconfig":"gcp-kc".*"provider":"gcp-kms".*"outcome":"success"' "$agent_dir/audit.log" &&
	ok "canary (GCP): the canary wrap is audited with its key version" || notok "GCP canary wrap audit" "$(grep canary "$agent_dir/audit.log")"
grep -q '"op":"keyconfig.create".*"keyconfig":"kc-denied".*"outcome":"failure"' "$agent_dir/audit.log" &&
	ok "canary (GCP): a refused keyconfig create leaves an audit record" || notok "failed keyconfig.create audit" "$(grep keyconfig "$agent_dir/audit.log")"
out=$(lct --json check --cmk "$key2")
grep -q '"canary": "ok"' <<<"$out" && grep -q '"outcome": "ok"' <<<"$out" &&
	ok "canary (GCP): check unwraps the canary: ok" || notok "GCP canary ok" "$out"
admin deny "{\"key\":\"$key2\",\"deny\":true,\"only\":\"decrypt\"}"
out=$(lct --json check --cmk "$key2")
grep -q '"state": "enabled"' <<<"$out" && grep -q '"canary": "denied"' <<<"$out" && grep -q '"outcome": "denied"' <<<"$out" &&
	ok "canary (GCP): useToDecrypt taken away while the key reads enabled: the probe says denied" || notok "GCP canary denial" "$out"
admin deny "{\"key\":\"$key2\",\"deny\":false,\"only\":\"decrypt\"}"
out=$(lct --json check --cmk "$key2")
grep -q '"outcome": "ok"' <<<"$out" && ok "canary (GCP): permission given back: ok again" || notok "GCP canary back" "$out"
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null
grep -qE 'Sanitizer|runtime error' "$agent_dir/agent.log" && notok "agent (ASan/UBSan) clean" "$(cat "$agent_dir/agent.log")" || ok "agent (ASan/UBSan) ran clean"

. tests/kms/gcp-ident.sh	# the service account bound to a key configuration

# ---- no secret anywhere -------------------------------------------------------------
if grep -qE 'ya29\.|PRIVATE KEY|eyJhbGciOi|Bearer' "$work/client.log" "$agent_dir/agent.log" "$agent_dir/audit.log"; then
	notok "no token, JWT or private key in any output" "$(grep -E 'ya29\.|PRIVATE KEY|eyJhbGciOi|Bearer' "$work/client.log" "$agent_dir/agent.log" | head -3)"
else ok "no access token, JWT or private key in the client's output, the agent's log or the audit log"; fi
finish
