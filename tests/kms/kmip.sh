#!/bin/bash
# The KMIP provider against PyKMIP 0.10's server (Debian's python3-pykmip)
# on loopback, with a test CA, server and client certificates made here,
# and against tests/kms/fake-kmip.py for the faults a real server never
# shows (silence, truncated, malformed and foreign replies).  Keys are
# administered with PyKMIP's own client (tests/kms/kmip-admin.py); the
# provider is driven through the provider layer by
# tests/kms/kms-kmip-client.c and by the agent and lakecryptctl, all built
# with ASan and UBSan.
# TAP out, numbered from $LC_TAP_START (tests/kms/check.sh runs this and
# counts its cases); ends with "N passed, N failed, 0 skipped".  Nothing
# is skipped: a missing tool is a failure (run `make setup`).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
py=/usr/bin/python3	# Debian's interpreter: the one with python3-pykmip
work=$(mktemp -d /tmp/lakecrypt-kmip.XXXXXX)
pids=()
pass=0 fail=0 n=${LC_TAP_START:-0}

. tests/kms/lib-proc.sh	# kill_tree
cleanup() {
	for p in "${pids[@]}"; do kill_tree "$p"; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n - kmip: $1"; }
notok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - kmip: $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/# /' | tail -n 20; }
finish() { echo "$pass passed, $fail failed, 0 skipped"; [ $fail -eq 0 ]; exit $?; }

# ---- tools and build ---------------------------------------------------
for t in "$py" /usr/bin/pykmip-server /usr/bin/openssl; do
	if [ ! -x "$t" ]; then notok "tool $t present (run make setup)"; finish; fi
done
if ! "$py" -c 'import kmip.pie.client, kmip.services.server' 2>/dev/null; then
	notok "PyKMIP importable by $py (run make setup: python3-pykmip)"; finish
fi
if out=$(make -s -C agent SAN=1 kmstest 2>&1); then ok "build the KMIP test driver, agent and CLI (ASan+UBSan)"
else notok "build KMS test drivers (ASan+UBSan)" "$out"; finish; fi
client=$top/build/agent-san/kmstest/kms-kmip-client
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {	# wait_port PORT: up to 30 s
	for _ in $(seq 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# ---- test PKI ------------------------------------------------------------
pki() {
	cd "$work" || return 1
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=lakecrypt-kmip-test-ca \
		-keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign &&
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca \
		-keyout other-ca.key -out other-ca.pem -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign &&
	# name:CA:extensions
	for c in "server:ca:subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth" "server2:ca:subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth" "client:ca:extendedKeyUsage=clientAuth" \
		 "untrusted:other-ca:extendedKeyUsage=clientAuth" "noclientauth:ca:extendedKeyUsage=serverAuth"; do
		name=${c%%:*} rest=${c#*:}
		signer=${rest%%:*} ext=${rest#*:}
		openssl req -newkey rsa:2048 -nodes -subj "/CN=lakecrypt-agent" -keyout "$name.key" \
			-out "$name.csr" &&
		printf '%s\n' "$ext" >"$name.ext" &&
		openssl x509 -req -in "$name.csr" -CA "$signer.pem" -CAkey "$signer.key" \
			-CAcreateserial -days 2 -extfile "$name.ext" -out "$name.pem" || return 1
		chmod 600 "$name.key"
	done
}
if out=$(pki 2>&1); then ok "test CA, server certificate (127.0.0.1), client certificates (trusted, untrusted CA, no clientAuth)"
else notok "test PKI" "$out"; finish; fi
cd "$top"

# ---- PyKMIP's server -------------------------------------------------------------
start_pykmip() {	# start_pykmip PORT [NAME [CERT]]: key NAME.key, certificate CERT.pem (NAME), database NAME.db (server)
	local name=${2:-server} cert=${3:-${2:-server}}
	mkdir -p "$work/policies"
	cat >"$work/pykmip-$1.conf" <<EOF
[server]
hostname=127.0.0.1
port=$1
certificate_path=$work/$cert.pem
key_path=$work/$name.key
ca_path=$work/ca.pem
auth_suite=TLS1.2
policy_path=$work/policies
enable_tls_client_auth=True
database_path=$work/pykmip-$name.db
EOF
	"$py" /usr/bin/pykmip-server -f "$work/pykmip-$1.conf" -l "$work/pykmip.log" \
		>>"$work/pykmip.out" 2>&1 &
	pykmip_pid=$!
	pids+=($pykmip_pid)
	wait_port "$1"
}
p_kmip=$(free_port)
if start_pykmip "$p_kmip"; then ok "PyKMIP $("$py" -c 'import kmip; print(kmip.__version__)') server on 127.0.0.1:$p_kmip, TLS 1.2, client certificates required"
else notok "PyKMIP server up" "$(tail -20 "$work/pykmip.out" "$work/pykmip.log" 2>&1)"; finish; fi

faults="hang-tcp hang-tls close truncated garbage bad-padding deep huge wrong-batch wrong-uid http pending no-tag ok drip mixed dates skew-behind skew-ahead"
declare -A fport
listen=()
for m in $faults; do fport[$m]=$(free_port); listen+=(--listen "$m:${fport[$m]}"); done
"$py" tests/kms/fake-kmip.py --cert "$work/server.pem" --key "$work/server.key" --ca "$work/ca.pem" \
	"${listen[@]}" 2>"$work/fake.log" &
pids+=($!)
wait_port "${fport[ok]}" && ok "fake KMIP server: $(echo $faults | wc -w) fault listeners" || notok "fake KMIP server up" "$(cat "$work/fake.log")"
out=$("$py" tests/kms/fake-kmip.py --selfcheck 2>&1) && ok "PyKMIP's message classes read the fake's well-formed replies" || notok "fake selfcheck" "$out"

# ---- helpers ---------------------------------------------------------------
ctx=lakecrypt:v2\;volume=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\;workspace=finance\;project=ledger\;keyconfig=finance-kc
ctx2=lakecrypt:v2\;volume=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\;workspace=finance\;project=other\;keyconfig=finance-kc
tls=(--ca "$work/ca.pem" --cert "$work/client.pem" --key "$work/client.key")
srv=(--server "127.0.0.1:$p_kmip" "${tls[@]}")
last=""
run() { last=$("$client" "$@" 2>&1); echo "$last" >>"$work/client.log"; }
field() { echo "$last" | sed -n "s/^$1=//p" | head -n1; }
# expect DESC ok|CLASS MAX_MS ARGS...: the result line's class, a bound on its time.
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
admin_at() { "$py" tests/kms/kmip-admin.py 127.0.0.1 "$1" "$work/ca.pem" "$work/client.pem" "$work/client.key" "${@:2}" 2>&1 | tail -n 1; }
admin() { admin_at "$p_kmip" "$@"; }
# spki NAME: SHA-256 of the DER public key of NAME.pem, the server identity a bound reference names
spki() { openssl x509 -in "$work/$1.pem" -pubkey -noout | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1; }
# relabel B64 CONTEXT: the blob with the context digest of CONTEXT (bytes 8..39)
relabel() { "$py" -c 'import sys,base64,hashlib
b=bytearray(base64.b64decode(sys.argv[1])); b[8:40]=hashlib.sha256(sys.argv[2].encode()).digest()
print(base64.b64encode(b).decode())' "$1" "$2"; }
# flip B64 OFFSET-FROM-END: one ciphertext byte changed
flip() { "$py" -c 'import sys,base64
b=bytearray(base64.b64decode(sys.argv[1])); b[-int(sys.argv[2])]^=1; print(base64.b64encode(b).decode())' "$1" "$2"; }

# ---- PyKMIP: the key's life, KMIP 1.4 (AES-GCM, context as AAD) -----------------
uid=$(admin create)
if [[ "$uid" =~ ^[0-9]+$ ]]; then ok "PyKMIP's client creates and activates an AES-256 key: Unique Identifier $uid"
else notok "create key" "$uid"; finish; fi

expect "state of an Active key" ok 10000 "${srv[@]}" state "$uid"
[ "$(field state)" = enabled ] && ok "GetAttributes State Active -> enabled" || notok "state enabled" "$last"
sid=$(spki server)
bound=$(field bound_ref)
[ "$bound" = "server-sha256=$sid;uid=$uid" ] && ok "key_state binds the UID to the server's public key (SHA-256 as openssl computes it)" ||
	notok "bound reference: expected server-sha256=$sid;uid=$uid" "$last"
grep -qE "^result ok .*reqid=batch-[0-9a-f]{16}@[0-9]+ key_id=$uid\$" <<<"$last" &&
	ok "the reply names the server's Unique Identifier and the batch item id it echoed" || notok "audit ids" "$last"
expect "wrap (Encrypt)" ok 10000 "${srv[@]}" wrap "$uid" "$ctx"
blob=$(field blob) pt=$(field pt)
[ "$(field mode)" = 1 ] && ok "PyKMIP offers KMIP 1.4: the blob is AES-GCM with the context as additional data" || notok "GCM mode" "$last"
expect "unwrap (Decrypt) with the same context" ok 10000 "${srv[@]}" unwrap "$uid" "$ctx" "$blob"
[ -n "$pt" ] && [ "$(field pt)" = "$pt" ] && ok "the unwrapped KEK equals the wrapped one" || notok "round trip" "$last"
expect "unwrap with another project in the context" INVALID 10000 "${srv[@]}" unwrap "$uid" "$ctx2" "$blob"
grep -q 'context did not match' <<<"$last" && ok "INVALID says the context did not match" || notok "context message" "$last"
expect "a blob relabelled for another context goes to the server, which checks the AAD and refuses" TRANSIENT 10000 \
	--attempts 1 "${srv[@]}" unwrap "$uid" "$ctx2" "$(relabel "$blob" "$ctx2")"
grep -q 'General Failure' <<<"$last" && ! grep -q '^pt=' <<<"$last" &&
	ok "PyKMIP's GCM tag check failed (it says General Failure, a transient class): no plaintext" || notok "AAD enforced" "$last"
expect "one ciphertext byte flipped: the server refuses" TRANSIENT 10000 --attempts 1 "${srv[@]}" unwrap "$uid" "$ctx" "$(flip "$blob" 1)"
! grep -q '^pt=' <<<"$last" && ok "no plaintext from a tampered GCM blob" || notok "tampered GCM" "$last"
expect "a truncated blob is refused before any call" INVALID 2000 "${srv[@]}" unwrap "$uid" "$ctx" "${blob:0:40}"
expect "a second provider call reuses the negotiated version" ok 10000 "${srv[@]}" twice "$uid"
[ "$(grep -c 'Processing operation: DiscoverVersions' "$work/pykmip.log")" -ge 1 ] && ok "Discover Versions was asked" || notok "discover" "$(tail -5 "$work/pykmip.log")"
if grep -q 'Processing operation: Get$' "$work/pykmip.log"; then notok "the provider never uses Get" "$(grep 'Operation: Get$' "$work/pykmip.log")"
else ok "the provider never used Get (only Encrypt, Decrypt, GetAttributes, DiscoverVersions)"; fi

# ---- KMIP 1.2: AES-CBC with the context bound inside ------------------------------
expect "max_version 1.2: wrap" ok 10000 --max-version 1.2 "${srv[@]}" wrap "$uid" "$ctx"
b12=$(field blob) pt12=$(field pt)
[ "$(field mode)" = 2 ] && ok "KMIP 1.2: the blob is AES-CBC with the context bound inside" || notok "CBC mode" "$last"
expect "max_version 1.2: unwrap" ok 10000 --max-version 1.2 "${srv[@]}" unwrap "$uid" "$ctx" "$b12"
[ "$(field pt)" = "$pt12" ] && ok "KMIP 1.2 round trip" || notok "1.2 round trip" "$last"
expect "max_version 1.2: wrong context" INVALID 10000 --max-version 1.2 "${srv[@]}" unwrap "$uid" "$ctx2" "$b12"
expect "max_version 1.2: relabelled blob decrypts at the server but the binding inside does not check" INVALID 10000 \
	--max-version 1.2 "${srv[@]}" unwrap "$uid" "$ctx2" "$(relabel "$b12" "$ctx2")"
grep -q 'does not check after Decrypt' <<<"$last" && ok "the bound context is checked after Decrypt" || notok "binding message" "$last"
expect "a 1.2 blob unwraps at 1.4 too (the blob names its mode)" ok 10000 "${srv[@]}" unwrap "$uid" "$ctx" "$b12"
expect "a GCM blob with max_version 1.2 is a configuration error" MISCONFIG 10000 --max-version 1.2 "${srv[@]}" unwrap "$uid" "$ctx" "$blob"

# ---- key states: Pre-Active, Revoke, Destroy, unknown -----------------------------
pre=$(admin create-inactive)
expect "state of a Pre-Active key" ok 10000 "${srv[@]}" state "$pre"
[ "$(field state)" = disabled ] && ok "Pre-Active -> disabled" || notok "pre-active" "$last"
expect "wrap under a Pre-Active key (Permission Denied)" DENIED 10000 "${srv[@]}" wrap "$pre" "$ctx"

[ "$(admin revoke "$uid")" = revoked ] && ok "PyKMIP's client revokes the key" || notok "revoke"
[ "$(admin state "$uid")" = DEACTIVATED ] && ok "PyKMIP says the key is Deactivated" || notok "deactivated"
expect "state after Revoke" ok 10000 "${srv[@]}" state "$uid"
[ "$(field state)" = disabled ] && ok "Deactivated -> disabled (the watcher revokes)" || notok "state after revoke" "$last"
expect "unwrap after Revoke" DENIED 10000 "${srv[@]}" unwrap "$uid" "$ctx" "$blob"
grep -q 'Permission Denied' <<<"$last" && ok "DENIED names Permission Denied" || notok "revoked message" "$last"
expect "unwrap of the 1.2 blob after Revoke" DENIED 10000 "${srv[@]}" unwrap "$uid" "$ctx" "$b12"
expect "wrap after Revoke" DENIED 10000 "${srv[@]}" wrap "$uid" "$ctx"

# ---- a second server (another key pair, its own database): not the key's -----
p_kmip2=$(free_port)
p1=$pykmip_pid
if start_pykmip "$p_kmip2" server2; then ok "a second PyKMIP server on :$p_kmip2 (certificate server2, its own database)"
else notok "second PyKMIP server up" "$(tail -20 "$work/pykmip.out" 2>&1)"; fi
pykmip_pid=$p1	# "server down" below stops server 1
srv2=(--server "127.0.0.1:$p_kmip2" "${tls[@]}")
pre_b=$(admin_at "$p_kmip2" create-inactive)
[[ "$pre_b" =~ ^[0-9]+$ ]] && ok "server 2 has a Pre-Active key $pre_b" || notok "server 2 key" "$pre_b"
expect "server 2: the bound key it never held (Item Not Found)" MISCONFIG 10000 "${srv2[@]}" state "server-sha256=$sid;uid=999998"
grep -q 'is not the server key "999998" was made on' <<<"$last" && ok "server 2: the MISCONFIG says it is not the key's server" || notok "server 2 message" "$last"
expect "server 2: unwrap under the bound key of server 1" MISCONFIG 10000 "${srv2[@]}" unwrap "$bound" "$ctx" "$blob"
expect "server 2: wrap under a bound UID it holds Pre-Active (Permission Denied)" MISCONFIG 10000 "${srv2[@]}" wrap "server-sha256=$sid;uid=$pre_b" "$ctx"
expect "server 2: state of a bound UID it holds Pre-Active (disabled there)" MISCONFIG 10000 "${srv2[@]}" state "server-sha256=$sid;uid=$pre_b"
expect "server 2: an unbound UID it does not hold (Item Not Found)" MISCONFIG 10000 "${srv2[@]}" state 999998
grep -q 'not bound to a server' <<<"$last" && ok "server 2: the MISCONFIG says the reference is not bound" || notok "unbound message" "$last"
expect "server 2: a bound reference to server 2's own key works" ok 10000 "${srv2[@]}" state "server-sha256=$(spki server2);uid=$pre_b"
[ "$(field state)" = disabled ] && ok "server 2: its own Pre-Active key is disabled" || notok "server 2 own key" "$last"
expect "a bound reference of another form is refused before any call" MISCONFIG 2000 "${srv[@]}" state "server-sha256=${sid:0:63};uid=$uid"

[ "$(admin destroy "$uid")" = destroyed ] && ok "PyKMIP's client destroys the key" || notok "destroy"
expect "state after Destroy (Item Not Found)" DENIED 10000 "${srv[@]}" state "$bound"
grep -q 'Item Not Found' <<<"$last" && ok "DENIED says the key is gone" || notok "destroyed message" "$last"
expect "unwrap after Destroy" DENIED 10000 "${srv[@]}" unwrap "$bound" "$ctx" "$blob"
expect "unwrap after Destroy, unbound UID: no revocation (it cannot name the server)" MISCONFIG 10000 "${srv[@]}" unwrap "$uid" "$ctx" "$blob"
expect "a key that never existed" DENIED 10000 "${srv[@]}" state "server-sha256=$sid;uid=999999"
expect "a key that never existed, unbound UID" MISCONFIG 10000 "${srv[@]}" state 999999
expect "a key reference with a blank is refused before any call" MISCONFIG 2000 "${srv[@]}" state "1 2"

# ---- TLS and configuration -----------------------------------------------------------
uid2=$(admin create)
expect "a client certificate from a CA the server does not trust" MISCONFIG 10000 \
	--server "127.0.0.1:$p_kmip" --ca "$work/ca.pem" --cert "$work/untrusted.pem" --key "$work/untrusted.key" state "$uid2"
grep -q 'refused the TLS session' <<<"$last" && ok "the TLS alert is named, with what to check" || notok "untrusted message" "$last"
grep -q 'attempts=1 ' <<<"$last" && ok "a refused certificate is not retried" || notok "untrusted attempts" "$last"
expect "a client certificate without clientAuth (Authentication Not Successful)" MISCONFIG 10000 \
	--server "127.0.0.1:$p_kmip" --ca "$work/ca.pem" --cert "$work/noclientauth.pem" --key "$work/noclientauth.key" state "$uid2"
expect "a server certificate from another CA" MISCONFIG 10000 \
	--server "127.0.0.1:$p_kmip" --ca "$work/other-ca.pem" --cert "$work/client.pem" --key "$work/client.key" state "$uid2"
grep -q 'does not verify' <<<"$last" && ok "the server certificate failure is named" || notok "server cert message" "$last"
cp "$work/client.key" "$work/loose.key"
chmod 640 "$work/loose.key"
expect "a client key readable by its group" MISCONFIG 2000 \
	--server "127.0.0.1:$p_kmip" --ca "$work/ca.pem" --cert "$work/client.pem" --key "$work/loose.key" state "$uid2"
grep -q 'mode 0640.*chmod 600' <<<"$last" && ok "the key file's mode is named, like ssh does" || notok "key mode message" "$last"
chmod 604 "$work/loose.key"
expect "a client key readable by others" MISCONFIG 2000 \
	--server "127.0.0.1:$p_kmip" --ca "$work/ca.pem" --cert "$work/client.pem" --key "$work/loose.key" state "$uid2"
cp "$work/client.key" "$work/owned.key"
chown nobody "$work/owned.key"
expect "a client key owned by another user" MISCONFIG 2000 \
	--server "127.0.0.1:$p_kmip" --ca "$work/ca.pem" --cert "$work/client.pem" --key "$work/owned.key" state "$uid2"
grep -q 'owned by uid .*not by the agent' <<<"$last" && ok "the key file's owner is named" || notok "key owner message" "$last"
expect "a client key that is not the certificate's" MISCONFIG 2000 \
	--server "127.0.0.1:$p_kmip" --ca "$work/ca.pem" --cert "$work/client.pem" --key "$work/untrusted.key" state "$uid2"

# ---- faults (tests/kms/fake-kmip.py) ----------------------------------------------------
fk() { echo --server "127.0.0.1:${fport[$1]}" "${tls[@]}"; }
# shellcheck disable=SC2046
expect "server accepts TCP and never answers (2 attempts of 1 s)" TRANSIENT 4000 --attempts 2 --attempt-timeout 1000 $(fk hang-tcp) state 1
expect "server reads the request and never answers (2 attempts of 1 s)" TRANSIENT 4000 --attempts 2 --attempt-timeout 1000 $(fk hang-tls) state 1
expect "server closes without a reply" TRANSIENT 5000 --attempts 2 $(fk close) state 1
# A connection that breaks in the middle of a message is the network's
# (TRANSIENT, retried); a whole message that does not parse or breaks the
# protocol is INVALID: never retried (a boot unit with timeout=0 would ask
# a broken server for ever), never a denial.
expect "truncated reply (the server closes mid-message)" TRANSIENT 5000 --attempts 2 $(fk truncated) state 1
grep -q 'attempts=2 ' <<<"$last" && ok "a reply cut by the connection's end is retried" || notok "truncated attempts" "$last"
inval() {	# inval DESC MODE [MESSAGE]: INVALID after one attempt of two allowed
	expect "$1" INVALID 5000 --attempts 2 $(fk "$2") state 1
	grep -q 'attempts=1 ' <<<"$last" && { [ -z "${3:-}" ] || grep -q "$3" <<<"$last"; } &&
		ok "$2: not retried${3:+, the error says \"$3\"}" || notok "$2: attempts/message" "$last"
}
inval "random bytes for a reply" garbage "not start with a Response Message"
inval "a padding byte not zero" bad-padding padding
inval "structures nested 40 deep" deep
inval "a reply announcing 16 MiB (limit 64 KiB)" huge "too large"
inval "a reply to another batch item" wrong-batch "Batch Item ID"
inval "a reply about another key" wrong-uid "not the key asked for"
inval "an HTTP server where KMIP was expected" http "not a KMIP server"
expect "Operation Pending" TRANSIENT 5000 --attempts 2 $(fk pending) state 1
expect "AES-GCM Encrypt reply without its tag" MISCONFIG 5000 --attempts 2 $(fk no-tag) wrap 1 "$ctx"
expect "the fake's well-formed reply is read" ok 5000 $(fk ok) state 1
[ "$(field state)" = enabled ] && ok "fake: Active -> enabled" || notok "fake ok" "$last"
expect "Active, but its Deactivation Date has passed" ok 5000 $(fk dates) state 1
[ "$(field state)" = disabled ] && [ "$(field deletion_date)" -gt "$(date +%s)" ] &&
	ok "a passed Deactivation Date -> disabled; the Destroy Date is the deletion date" || notok "dates" "$last"
# Clocks: the Deactivation Date is judged by the reply's Time Stamp (the
# server's clock), never the host's, which may be hours off.
expect "Deactivation Date in the host's past, the server's future (server 6 h behind)" ok 5000 $(fk skew-behind) state 1
[ "$(field state)" = enabled ] && ok "a host clock hours ahead does not disable an Active key (no kill)" || notok "skew-behind" "$last"
expect "Deactivation Date in the host's future, the server's past (server 6 h ahead)" ok 5000 $(fk skew-ahead) state 1
[ "$(field state)" = disabled ] && ok "passed by the server's own clock: disabled (KMIP: Active -> Deactivated at that date)" || notok "skew-ahead" "$last"
expect "a reply that drips one byte every 0.3 s (2 attempts of 1 s)" TRANSIENT 4000 --attempts 2 --attempt-timeout 1000 $(fk drip) state 1
grep -q 'time limit' <<<"$last" && ok "the drip is cut by the attempt's timeout" || notok "drip message" "$last"
run --attempts 1 --attempt-timeout 3000 $(fk mixed) race hang 1
fms=$(field fast_ms)
[ -n "$fms" ] && [ "$fms" -lt 1500 ] && grep -q '^result ok' <<<"$last" && grep -q '^slow_result=-110' <<<"$last" &&
	ok "a call stalled on one key does not hold up another on the same provider (${fms} ms; the stalled one timed out)" ||
	notok "concurrent calls" "$last"
# Python's TLS 1.3 server checks the client certificate after the client's
# handshake: the refusal comes as an alert, or a reset, after it.
expect "TLS 1.3: a client certificate from a CA the fake does not trust" MISCONFIG 5000 --attempts 3 \
	--server "127.0.0.1:${fport[ok]}" --ca "$work/ca.pem" --cert "$work/untrusted.pem" --key "$work/untrusted.key" state 1
grep -q 'unknown CA' <<<"$last" && ok "TLS 1.3: the alert is read even when the server closed first" || notok "tls13 alert" "$last"

# ---- the agent: provider kind "kmip" from agent.conf, keyconfig create, status, audit ----
agent_dir=$work/agent
mkdir -p "$agent_dir/state" && chmod 700 "$agent_dir/state"
conf() {	# conf FILE [KEYFILE]
	cat >"$1" <<EOF
[agent]
socket = $agent_dir/agent.sock
state_dir = $agent_dir/state
audit_log = $agent_dir/audit.log
audit_fsync = no
admin_group = root

[kms]
retry_attempts = 2
retry_base_delay_ms = 50
deadline_ms = 10000

[kmip]
server = 127.0.0.1:$p_kmip
ca_bundle = $work/ca.pem
client_cert = $work/client.pem
client_key = ${2:-$work/client.key}
connect_timeout_ms = 3000
EOF
}
agent=$top/build/agent-san/lakecrypt-agent ctl=$top/build/agent-san/lakecryptctl
conf "$agent_dir/loose.conf" "$work/loose.key"
out=$(timeout 20 "$agent" -c "$agent_dir/loose.conf" -f 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q 'chmod 600' <<<"$out" && ok "the agent refuses to start with a client key readable by others (exit $rc)" ||
	notok "agent with loose key" "$out"
conf "$agent_dir/agent.conf"
"$agent" -c "$agent_dir/agent.conf" -f >"$agent_dir/agent.log" 2>&1 &
agent_pid=$!
pids+=($agent_pid)
for _ in $(seq 100); do [ -S "$agent_dir/agent.sock" ] && break; sleep 0.1; done
lct() { "$ctl" --socket "$agent_dir/agent.sock" "$@" 2>&1; }
if out=$(lct keyconfig create finance-kc --provider kmip --key "$uid2") && grep -q kmip <<<"$out"; then
	ok "lakecryptctl keyconfig create --provider kmip --key $uid2: GetAttributes says the key is usable"
else notok "keyconfig create kmip" "$out"; fi
grep -q "^Key reference: *server-sha256=$sid;uid=$uid2\$" <<<"$out" &&
	ok "keyconfig create stores the UID bound to the server's public key" || notok "bound key reference" "$out"
pre2=$(admin create-inactive)
out=$(lct keyconfig create kc-pre --provider kmip --key "$pre2")
grep -q "is disabled" <<<"$out" && ok "keyconfig create on a Pre-Active key says it is disabled" || notok "pre-active key message" "$out"
out=$(lct keyconfig create kc-gone --provider kmip --key 999999)
grep -q "Item Not Found" <<<"$out" && ok "keyconfig create on an unknown key says the server has no such key" || notok "unknown key message" "$out"
out=$(lct keyconfig list)
grep -q finance-kc <<<"$out" && ! grep -qE 'kc-(pre|gone)' <<<"$out" &&
	ok "only the usable key configuration was registered" || notok "keyconfig list" "$out"
out=$(lct status)
grep -E 'KMS calls \(kmip\):.*key_state=[1-9].*misconfigured=[1-9].*latency_ms_max=' <<<"$out" >/dev/null &&
	ok "status shows kmip calls, failures by class and latency" || notok "status counters" "$out"
grep '"provider":"kmip"' "$agent_dir/audit.log" | grep -q "\"request_id\":\"batch-" &&
	ok "the audit log records the kmip key_state calls with the server-echoed batch id" || notok "audit" "$(tail -3 "$agent_dir/audit.log")"
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null
grep -qE 'Sanitizer|runtime error' "$agent_dir/agent.log" && notok "agent (ASan/UBSan) clean" "$(cat "$agent_dir/agent.log")" || ok "agent (ASan/UBSan) ran clean"

# An agent without [kmip] says what to configure.
sed '/^\[kmip\]/,$d' "$agent_dir/agent.conf" >"$agent_dir/nokmip.conf"
"$agent" -c "$agent_dir/nokmip.conf" -f >"$agent_dir/agent2.log" 2>&1 &
agent_pid=$!
pids+=($agent_pid)
for _ in $(seq 100); do [ -S "$agent_dir/agent.sock" ] && break; sleep 0.1; done
out=$(lct keyconfig create kc-x --provider kmip --key "$uid2")
grep -q 'not configured: set server' <<<"$out" && ok "without [kmip] the agent says what to set" || notok "unconfigured message" "$out"
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null

# ---- the KMS principal: the client certificate (issue 10) ------------------------
. tests/kms/kmip-ident.sh

# ---- the same server with a renewed certificate (same key pair) ----------------
# The binding is the public key, not the certificate: a renewal keeps it.
kill_tree "$pykmip_pid"; wait "$pykmip_pid" 2>/dev/null
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
	-extfile "$work/server.ext" -out "$work/server-renewed.pem" 2>/dev/null
p_kmip3=$(free_port)
if [ "$(openssl x509 -in "$work/server-renewed.pem" -noout -fingerprint -sha256)" != \
     "$(openssl x509 -in "$work/server.pem" -noout -fingerprint -sha256)" ] &&
   start_pykmip "$p_kmip3" server server-renewed; then
	ok "server 1 restarted on :$p_kmip3 with a renewed certificate (another fingerprint, the same key pair)"
else notok "server 1 with a renewed certificate" "$(tail -20 "$work/pykmip.out" 2>&1)"; fi
expect "renewed certificate: the bound key is still the server's" ok 10000 --server "127.0.0.1:$p_kmip3" "${tls[@]}" state "server-sha256=$sid;uid=$uid2"
[ "$(field state)" = enabled ] && ok "renewed certificate: enabled" || notok "renewed state" "$last"
expect "renewed certificate: a destroyed bound key is still a denial" DENIED 10000 --server "127.0.0.1:$p_kmip3" "${tls[@]}" state "$bound"
kill_tree "$pykmip_pid"; wait "$pykmip_pid" 2>/dev/null

# ---- server down ----------------------------------------------------------------
expect "server down (connection refused), 2 attempts" TRANSIENT 5000 --attempts 2 "${srv[@]}" state "$uid2"
grep -q 'attempts=2 ' <<<"$last" && ok "connection refused is retried" || notok "server down attempts" "$last"

if grep -qE 'Sanitizer|runtime error' "$work/client.log"; then notok "no sanitizer report in any client run" "$(grep -E 'Sanitizer|runtime error' "$work/client.log" | head)"
else ok "no sanitizer report in any client run"; fi
if grep -q 'PRIVATE KEY' "$work/client.log" "$agent_dir"/*.log "$agent_dir/audit.log"; then notok "no private key in any output"
else ok "no private key material in the client's or the agent's output"; fi
finish
