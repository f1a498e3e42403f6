#!/bin/bash
# Cloud KMS providers against real emulators and fault servers, all on
# loopback, all behind TLS with a test CA made here:
#   - AWS KMS: local-kms (Go, built by `make setup`) behind stunnel4, and
#     moto in server mode (DescribeKey states) behind the same stunnel4;
#     keys administered with botocore; the provider is driven through the
#     provider layer (retries, deadline) by tests/kms/kms-aws-client.c,
#     built with ASan and UBSan.
#   - PKCS#11, KMIP, Google Cloud KMS, Azure Key Vault:
#     tests/kms/pkcs11.sh (SoftHSM2), kmip.sh (PyKMIP's server), gcp.sh and
#     azure.sh (their own servers, proven with the official SDKs), each
#     case counted in this suite's total.
#   - Faults: tests/kms/fake-aws.py, which also re-signs every request
#     with botocore and requires the same Authorization byte for byte.
#   - Azure Key Vault / Managed HSM: tests/kms/azure.sh (fake vault, token
#     endpoint and IMDS checked against the official Azure SDK).
# TAP out; ends with "N passed, N failed, N skipped".  Nothing is skipped:
# a missing tool is a failure (run `make setup`).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
tools=${LAKECRYPT_TOOLS:-/opt/lakecrypt-tools}
py=$tools/venv/bin/python3
lkms=$tools/bin/local-kms
work=$(mktemp -d /tmp/lakecrypt-kms.XXXXXX)
pids=()
pass=0 fail=0 n=0

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/# /' | tail -n 20; }
finish() { echo "$pass passed, $fail failed, 0 skipped"; [ $fail -eq 0 ]; exit $?; }

# subsuite NAME SCRIPT: run another KMS suite; each of its cases counts
# here.  A suite that ran no case, or exited non-zero with no failed case,
# counts as a failure.
subsuite() {
	local line failed=0 cases=0
	while IFS= read -r line; do
		case $line in
		"ok "*) ok "$1: ${line#ok * - }"; cases=$((cases + 1)) ;;
		"not ok "*) notok "$1: ${line#not ok * - }"; failed=1; cases=$((cases + 1)) ;;
		"__exit 0") [ $cases -gt 0 ] || notok "$1: $2 ran no case" ;;
		"__exit "*) [ $failed -eq 1 ] || notok "$1: $2 exited ${line#__exit } without a failed case" ;;
		*" passed, "*" failed, "*" skipped") ;;
		*) echo "$line" ;;
		esac
	done < <(bash "$2" 2>&1; echo "__exit $?")
}

# ---- PKCS#11: SoftHSM2, tests/kms/pkcs11.sh (first: it needs none of the AWS tools)
subsuite pkcs11 tests/kms/pkcs11.sh

# ---- tools and build ---------------------------------------------------
for t in "$py" "$lkms" /usr/bin/stunnel4 /usr/bin/openssl; do
	if [ ! -x "$t" ]; then notok "tool $t present (run make setup)"; finish; fi
done
if ! "$py" -c 'import botocore' 2>/dev/null; then notok "botocore importable (run make setup)"; finish; fi
if out=$(make -s -C agent SAN=1 kmstest 2>&1); then ok "build KMS test drivers (ASan+UBSan)"
else notok "build KMS test drivers (ASan+UBSan)" "$out"; finish; fi
client=$top/build/agent-san/kmstest/kms-aws-client
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {	# wait_port PORT: up to 20 s
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# ---- test PKI ------------------------------------------------------------
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
}
if out=$(pki 2>&1); then ok "test CA, server certificate (127.0.0.1) and wrong-name certificate"
else notok "test PKI" "$out"; finish; fi
cd "$top"

# ---- servers -------------------------------------------------------------
p_fake=$(free_port) p_wrong=$(free_port) p_imds=$(free_port) p_hang=$(free_port)
p_lkms=$(free_port) p_tls=$(free_port)
"$py" tests/kms/fake-aws.py --kms-tls "$p_fake:$work/server.pem:$work/server.key" \
	--kms-tls "$p_wrong:$work/wrongname.pem:$work/wrongname.key" \
	--imds "$p_imds" --imds-hang "$p_hang" 2>"$work/fake.log" &
pids+=($!)

start_lkms() {	# start_lkms SEED DATADIR
	PORT=$p_lkms KMS_DATA_PATH=$2 KMS_SEED_PATH=$1 KMS_REGION=eu-west-2 \
		KMS_ACCOUNT_ID=111122223333 "$lkms" >>"$work/local-kms.log" 2>&1 &
	lkms_pid=$!
	pids+=($lkms_pid)
	wait_port "$p_lkms"
}
stop_lkms() { kill "$lkms_pid" 2>/dev/null; wait "$lkms_pid" 2>/dev/null; }

p_moto=$(free_port) p_motls=$(free_port)
"$tools/venv/bin/moto_server" -H 127.0.0.1 -p "$p_moto" >"$work/moto.log" 2>&1 &
pids+=($!)
cat >"$work/stunnel.conf" <<EOF
foreground = yes
pid =
[kms]
accept = 127.0.0.1:$p_tls
connect = 127.0.0.1:$p_lkms
cert = $work/server.pem
key = $work/server.key
[moto]
accept = 127.0.0.1:$p_motls
connect = 127.0.0.1:$p_moto
cert = $work/server.pem
key = $work/server.key
EOF
/usr/bin/stunnel4 "$work/stunnel.conf" >"$work/stunnel.log" 2>&1 &
pids+=($!)

echo "Keys: {}" >"$work/empty.yaml"
if start_lkms "$work/empty.yaml" "$work/lkms-data" && wait_port "$p_tls" && wait_port "$p_fake" &&
   wait_port "$p_imds" && wait_port "$p_moto" && wait_port "$p_motls"; then
	ok "local-kms on 127.0.0.1:$p_lkms and moto :$p_moto behind stunnel4 TLS :$p_tls, :$p_motls; fake AWS :$p_fake"
else
	notok "servers up" "$(cat "$work"/*.log)"; finish
fi

# ---- helpers ---------------------------------------------------------------
export AWS_ACCESS_KEY_ID=AKIDFAKE AWS_SECRET_ACCESS_KEY=fakeSecretKey/0123456789abcdefghijklmnopqrstu
unset AWS_SESSION_TOKEN AWS_PROFILE
ctx=lakecrypt:v2\;volume=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\;workspace=finance\;project=ledger\;keyconfig=finance-kc
ctx2=lakecrypt:v2\;volume=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\;workspace=finance\;project=other\;keyconfig=finance-kc
lk=(--endpoint "https://127.0.0.1:$p_tls" --ca "$work/ca.pem" --creds env)
fk=(--endpoint "https://127.0.0.1:$p_fake" --region eu-west-2 --ca "$work/ca.pem" --creds env)
arn() { echo "arn:aws:kms:eu-west-2:111122223333:key/$1"; }

last=""
run() { last=$("$client" "$@" 2>&1); echo "$last" >>"$work/client.log"; }
field() { echo "$last" | sed -n "s/^$1=//p" | head -n1; }
# expect DESC ok|CLASS MAX_MS ARGS...: the result line's class and time.
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
admin() { "$py" tests/kms/kms-admin.py "https://127.0.0.1:$p_tls" "$work/ca.pem" "$@" 2>&1; }

# ---- local-kms: the key's life -------------------------------------------------
key=$(admin create)
if [[ "$key" == arn:aws:kms:eu-west-2:111122223333:key/* ]]; then ok "botocore creates a key in local-kms through stunnel: $key"
else notok "create key" "$key"; finish; fi

expect "local-kms: describe" ok 5000 "${lk[@]}" state "$key"
[ "$(field state)" = enabled ] && ok "local-kms: DescribeKey says enabled" || notok "state enabled" "$last"
expect "local-kms: wrap under the split EncryptionContext" ok 5000 "${lk[@]}" wrap "$key" "$ctx"
blob=$(field blob) pt=$(field pt)
expect "local-kms: unwrap with the same context" ok 5000 "${lk[@]}" unwrap "$key" "$ctx" "$blob"
[ "$(field pt)" = "$pt" ] && [ -n "$pt" ] && ok "local-kms: unwrapped KEK equals the wrapped one" || notok "round trip" "$last"
expect "local-kms: unwrap with another project in the context" INVALID 5000 "${lk[@]}" unwrap "$key" "$ctx2" "$blob"
grep -q 'context did not match' <<<"$last" && ok "local-kms: INVALID says the context did not match" || notok "context message" "$last"
expect "local-kms: wrap with a v1 context is refused before any call" INVALID 2000 "${lk[@]}" wrap "$key" "lakecrypt:volume:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

[ "$(admin disable "$key")" = Disabled ] && ok "botocore disables the key" || notok "disable"
expect "local-kms: unwrap of a disabled key" DENIED 5000 "${lk[@]}" unwrap "$key" "$ctx" "$blob"
grep -q 'DisabledException' <<<"$last" && ok "local-kms: DENIED names DisabledException" || notok "disabled message" "$last"
expect "local-kms: wrap under a disabled key" DENIED 5000 "${lk[@]}" wrap "$key" "$ctx"
expect "local-kms: describe a disabled key" ok 5000 "${lk[@]}" state "$key"
[ "$(field state)" = disabled ] && ok "local-kms: DescribeKey says disabled" || notok "state disabled" "$last"
[ "$(admin enable "$key")" = Enabled ] && ok "botocore enables the key" || notok "enable"
expect "local-kms: unwrap after enable" ok 5000 "${lk[@]}" unwrap "$key" "$ctx" "$blob"
[ "$(admin schedule "$key")" = PendingDeletion ] && ok "botocore schedules deletion" || notok "schedule"
# KMSInvalidStateException is also AWS's answer for a custom key store that
# is down: never a kill by itself; DescribeKey's state below is the denial.
expect "local-kms: unwrap of a key pending deletion (not a kill by itself)" TRANSIENT 10000 --attempts 2 "${lk[@]}" unwrap "$key" "$ctx" "$blob"
grep -q 'KMSInvalidStateException' <<<"$last" && ok "local-kms: the error names KMSInvalidStateException" || notok "state message" "$last"
expect "local-kms: describe a key pending deletion" ok 5000 "${lk[@]}" state "$key"
[ "$(field state)" = pending_deletion ] && [ "$(field deletion_date)" -gt 0 ] &&
	ok "local-kms: DescribeKey says pending_deletion with a date" || notok "state pending" "$last"
st=$(admin cancel "$key")
# AWS leaves a cancelled key Disabled; local-kms re-enables it.
case $st in Disabled|Enabled) ok "botocore cancels deletion: $st" ;; *) notok "cancel: $st" ;; esac
admin enable "$key" >/dev/null
expect "local-kms: unwrap after cancel and enable" ok 5000 "${lk[@]}" unwrap "$key" "$ctx" "$blob"
expect "local-kms: unknown key in the endpoint's region" DENIED 5000 "${lk[@]}" state "$(arn 00000000-0000-0000-0000-000000000000)"
expect "local-kms: ARN of another region than the endpoint (region set)" MISCONFIG 5000 \
	--region eu-west-2 "${lk[@]}" state "arn:aws:kms:us-east-1:111122223333:key/${key##*/}"
# A bare key id names no region: keyconfig create binds it to the ARN, and a
# NotFound for a bare id (another region after a config change) never kills.
expect "local-kms: describe by bare key id" ok 5000 --region eu-west-2 "${lk[@]}" state "${key##*/}"
[ "$(field bound_ref)" = "$key" ] && ok "local-kms: a bare key id is bound to the key ARN DescribeKey answers" ||
	notok "bare id bound to the ARN" "$last"
expect "local-kms: describe by ARN binds nothing more" ok 5000 "${lk[@]}" state "$key"
[ -z "$(field bound_ref)" ] && ok "local-kms: an ARN is already bound" || notok "ARN bound_ref" "$last"
expect "local-kms: unknown bare key id (a region change, not a deletion)" MISCONFIG 5000 \
	--region eu-west-2 "${lk[@]}" state 00000000-0000-0000-0000-000000000000
grep -q 'bare key id' <<<"$last" && ok "local-kms: the MISCONFIG names the bare key id and the fix" || notok "bare id message" "$last"
expect "local-kms: the ARN after a region change (us-east-1 configured)" MISCONFIG 5000 \
	--region us-east-1 "${lk[@]}" state "$key"
grep -q 'but the endpoint serves us-east-1' <<<"$last" && ok "local-kms: the MISCONFIG names both regions" || notok "region change message" "$last"

# ---- the agent: provider kind "aws-kms" from agent.conf, keyconfig create ----------
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

[aws-kms]
endpoint = https://127.0.0.1:$p_tls
region = eu-west-2
ca_bundle = $work/ca.pem
credentials = env
sts_endpoint = https://127.0.0.1:$p_motls/
EOF
agent=$top/build/agent-san/lakecrypt-agent ctl=$top/build/agent-san/lakecryptctl
"$agent" -c "$agent_dir/agent.conf" -f >"$agent_dir/agent.log" 2>&1 &
agent_pid=$!
pids+=($agent_pid)
for _ in $(seq 100); do [ -S "$agent_dir/agent.sock" ] && break; sleep 0.1; done
lct() { "$ctl" --socket "$agent_dir/agent.sock" "$@" 2>&1; }
if out=$(lct keyconfig create finance-kc --provider aws-kms --key "$key") &&
   grep -q aws-kms <<<"$out"; then
	ok "lakecryptctl keyconfig create --provider aws-kms: DescribeKey says the key is usable"
else notok "keyconfig create aws-kms" "$out"; fi
out=$(lct keyconfig create kc-bare --provider aws-kms --key "${key##*/}")
grep -q "^Key reference: *$key$" <<<"$out" && ok "keyconfig create with a bare key id stores the key ARN" ||
	notok "keyconfig create bare id" "$out"
out=$(lct workspace bind finance --keyconfig finance-kc) && ok "workspace bound to the AWS key configuration" || notok "workspace bind" "$out"
admin disable "$key" >/dev/null
out=$(lct keyconfig create kc-disabled --provider aws-kms --key "$key")
grep -q "is disabled" <<<"$out" && ok "keyconfig create on a disabled key says it is disabled" || notok "disabled key message" "$out"
admin enable "$key" >/dev/null
out=$(lct keyconfig create kc-unknown --provider aws-kms --key "$(arn 00000000-0000-4000-8000-000000000000)")
grep -q "does not exist in region eu-west-2" <<<"$out" && ok "keyconfig create on an unknown key says it does not exist" || notok "unknown key message" "$out"
# (keyconfig create, nothing exists yet: a creation error, misconfigured
# (exit 1), never "destroyed"/"denied by the KMS" (exit 5); its log line
# names the key, never a credential.)
out=$(lct keyconfig create kc-typo --provider aws-kms --key "$(arn 00000000-0000-4000-8000-00000000beef)"); rc=$?
[ $rc -eq 1 ] && grep -q "not found or not usable by this identity at aws-kms: check the key id and its policy/permissions" <<<"$out" &&
	! grep -q "denied by the KMS" <<<"$out" &&
	ok "keyconfig create with a mistyped key: not found or not usable, check the key id (exit 1)" ||
	notok "mistyped key at keyconfig create" "exit $rc: $out"
grep 'keyconfig.create failed' "$agent_dir/agent.log" | grep -q '00000000beef.*not found or not usable' &&
	! grep -qE "$AWS_SECRET_ACCESS_KEY|AKIDFAKE|X-Amz-Security-Token|Authorization" "$agent_dir/agent.log" &&
	ok "its agent log line says the same and holds no credential" || notok "log line of the mistyped key" "$(grep beef "$agent_dir/agent.log")"
out=$(lct keyconfig create kc-region --provider aws-kms --key "arn:aws:kms:us-east-1:111122223333:key/${key##*/}")
grep -q "region us-east-1 but the endpoint serves eu-west-2" <<<"$out" && ok "keyconfig create with an ARN of another region says so" || notok "wrong region message" "$out"
out=$(lct keyconfig create kc-bad --provider aws-kms --key "arn:aws:s3:::bucket")
grep -q "is not a KMS key ARN" <<<"$out" && ok "keyconfig create with a non-KMS ARN says so" || notok "bad ARN message" "$out"
for ref in alias/lakecrypt "arn:aws:kms:eu-west-2:111122223333:alias/lakecrypt"; do
	out=$(lct keyconfig create kc-alias --provider aws-kms --key "$ref")
	grep -q "is an alias, which can be repointed or deleted: give the key ARN" <<<"$out" &&
		ok "keyconfig create with an alias ($ref) is refused: the watcher must follow the key" ||
		notok "alias refusal" "$out"
done
out=$(lct keyconfig create kc-nope --provider nope-kms --key x)
grep -q 'expected "local"' <<<"$out" && ok "an unknown provider is refused by lakecryptctl" || notok "unknown provider" "$out"
out=$(lct keyconfig list)
grep -q finance-kc <<<"$out" && ! grep -qE 'kc-(disabled|unknown|region|bad)' <<<"$out" &&
	ok "only the usable key configuration was registered" || notok "keyconfig list" "$out"
out=$(lct status)
grep -E 'KMS calls \(aws-kms\):.*key_state=[1-9].*denied=[1-9].*misconfigured=[1-9].*latency_ms_max=' <<<"$out" >/dev/null &&
	ok "status shows aws-kms calls, failures by class and latency" || notok "status counters" "$out"
grep -q '"provider":"aws-kms"' "$agent_dir/audit.log" && ok "audit log records the aws-kms key_state calls" || notok "audit" "$(tail -3 "$agent_dir/audit.log")"
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null
grep -qE 'Sanitizer|runtime error' "$agent_dir/agent.log" && notok "agent (ASan/UBSan) clean" "$(cat "$agent_dir/agent.log")" || ok "agent (ASan/UBSan) ran clean"

# Rotation: a new backing key (as AWS rotation adds one) keeps old blobs
# decryptable, and new blobs use it.  local-kms rotates only on a yearly
# date, so the store is re-seeded with the same key and one more backing key.
kid=6f1c2a3b-0000-4000-8000-00000000a0a0
k1=$(openssl rand -hex 32) k2=$(openssl rand -hex 32)
seed() {	# seed FILE BACKINGKEY...
	{ echo "Keys:"; echo "  Symmetric:"; echo "    Aes:"; echo "      - Metadata:"
	  echo "          KeyId: $kid"; echo "        BackingKeys:"
	  for b in "${@:2}"; do echo "          - $b"; done; } >"$1"
}
seed "$work/seed1.yaml" "$k1"
seed "$work/seed2.yaml" "$k1" "$k2"
stop_lkms; start_lkms "$work/seed1.yaml" "$work/rot1"
expect "rotation: wrap under backing key 1" ok 5000 "${lk[@]}" wrap "$(arn $kid)" "$ctx"
b1=$(field blob) pt1=$(field pt)
stop_lkms; start_lkms "$work/seed2.yaml" "$work/rot2"
expect "rotation: old blob unwraps after rotation" ok 5000 "${lk[@]}" unwrap "$(arn $kid)" "$ctx" "$b1"
[ "$(field pt)" = "$pt1" ] && ok "rotation: same KEK from the old blob" || notok "rotation old blob" "$last"
expect "rotation: wrap after rotation" ok 5000 "${lk[@]}" wrap "$(arn $kid)" "$ctx"
b2=$(field blob)
stop_lkms; start_lkms "$work/seed1.yaml" "$work/rot3"
expect "rotation: the new blob needs the new backing key (proof it rotated)" INVALID 5000 "${lk[@]}" unwrap "$(arn $kid)" "$ctx" "$b2"
stop_lkms

# ---- moto (server mode): the same requests, DescribeKey states ----------------
mo=(--endpoint "https://127.0.0.1:$p_motls" --ca "$work/ca.pem" --creds env)
madmin() { "$py" tests/kms/kms-admin.py "https://127.0.0.1:$p_motls" "$work/ca.pem" "$@" 2>&1; }
mkey=$(madmin create)
[[ "$mkey" == arn:aws:kms:eu-west-2:* ]] && ok "botocore creates a key in moto: $mkey" || notok "moto create key" "$mkey"
expect "moto: describe" ok 5000 "${mo[@]}" state "$mkey"
[ "$(field state)" = enabled ] && ok "moto: enabled" || notok "moto enabled" "$last"
expect "moto: wrap with the split EncryptionContext" ok 5000 "${mo[@]}" wrap "$mkey" "$ctx"
mb=$(field blob) mpt=$(field pt)
expect "moto: unwrap" ok 5000 "${mo[@]}" unwrap "$mkey" "$ctx" "$mb"
[ "$(field pt)" = "$mpt" ] && ok "moto: round trip" || notok "moto round trip" "$last"
mstate() {	# mstate ADMIN-OP WANT
	madmin "$1" "$mkey" >/dev/null
	expect "moto: describe after $1" ok 5000 "${mo[@]}" state "$mkey"
	[ "$(field state)" = "$2" ] && ok "moto: $1 -> DescribeKey reads $2" || notok "moto $1 -> $2" "$last"
}
mstate disable disabled
mstate enable enabled
mstate schedule pending_deletion
[ "$(field deletion_date)" -gt 0 ] && ok "moto: pending deletion carries its date" || notok "moto deletion date" "$last"
mstate cancel disabled

# ---- fake endpoint: botocore signatures, faults -------------------------------
expect "fake: wrap (request re-signed by botocore)" ok 5000 "${fk[@]}" wrap "$(arn ok-1)" "$ctx"
fb=$(field blob) fpt=$(field pt)
expect "fake: unwrap" ok 5000 "${fk[@]}" unwrap "$(arn ok-1)" "$ctx" "$fb"
[ "$(field pt)" = "$fpt" ] && ok "fake: round trip" || notok "fake round trip" "$last"
expect "fake: describe" ok 5000 "${fk[@]}" state "$(arn ok-1)"
grep -q '^result ok.*reqid=fake-' <<<"$last" && ok "fake: the provider's request id is reported" || notok "reqid" "$last"
AWS_SESSION_TOKEN=bogus expect "fake: a session token is signed (botocore disagrees on a wrong token)" MISCONFIG 5000 "${fk[@]}" state "$(arn ok-2)"

expect "fault: ThrottlingException (HTTP 400) retried, then transient" TRANSIENT 10000 --attempts 3 "${fk[@]}" wrap "$(arn throttle)" "$ctx"
grep -q 'attempts=3 ' <<<"$last" && ok "fault: throttling made 3 attempts" || notok "throttle attempts" "$last"
expect "fault: a burst of three 503 then success" ok 10000 --attempts 5 "${fk[@]}" wrap "$(arn burst-a)" "$ctx"
grep -q 'attempts=4 ' <<<"$last" && ok "fault: 503 burst took 4 attempts" || notok "burst attempts" "$last"
ports=$(grep "^CONN $(arn burst-a) " "$work/fake.log" | sed 's/.*port=//' | sort -u | wc -l)
[ "$ports" -eq 1 ] && ok "the 4 attempts reused one connection (libcurl keep-alive)" ||
	notok "connection reuse: $ports client ports" "$(grep "^CONN" "$work/fake.log" | tail -5)"
expect "fault: 500 KMSInternalException" TRANSIENT 10000 --attempts 2 "${fk[@]}" state "$(arn e5xx)"
expect "fault: malformed JSON" TRANSIENT 10000 --attempts 2 "${fk[@]}" wrap "$(arn malformed)" "$ctx"
expect "fault: truncated body" TRANSIENT 10000 --attempts 2 "${fk[@]}" wrap "$(arn truncated)" "$ctx"
expect "fault: 2 MiB body (limit 64 KiB)" TRANSIENT 10000 --attempts 2 "${fk[@]}" wrap "$(arn oversized)" "$ctx"
grep -q 'too large' <<<"$last" && ok "fault: oversized body named" || notok "oversized message" "$last"
expect "fault: KMS accepts and never answers (2 x 1 s attempts)" TRANSIENT 4000 --attempts 2 --attempt-timeout 1000 "${fk[@]}" state "$(arn hang)"
run --attempts 1 --attempt-timeout 3000 "${fk[@]}" race "$(arn hang-race)" "$(arn ok-race)"
fms=$(field fast_ms)
[ -n "$fms" ] && [ "$fms" -lt 1500 ] && grep -q '^result ok' <<<"$last" &&
	ok "a call stalled on one key does not hold up another on the same provider (${fms} ms)" ||
	notok "concurrent calls" "$last"
# A metadata service that accepts and never answers, with a long metadata
# timeout (20 s): the credential fetch is bounded by the attempt's deadline
# (1.5 s), and a second call does not wait on the first one's fetch past
# its own deadline (the provider lock is not held across the fetch).
t0=$(date +%s%N)
last=$(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$client" --attempts 1 --attempt-timeout 1500 \
	--creds imds --imds "http://127.0.0.1:$p_hang" --imds-timeout 20000 "${fk[@]:0:6}" \
	race "$(arn ok-imds-a)" "$(arn ok-imds-b)" 2>&1)
t1=$(date +%s%N); echo "$last" >>"$work/client.log"
fms=$(field fast_ms) tms=$(( (t1 - t0) / 1000000 ))
[ -n "$fms" ] && [ "$fms" -lt 3000 ] && [ "$tms" -lt 6000 ] && grep -q '^result error class=transient' <<<"$last" &&
	ok "stalled metadata service: each call bounded by its own deadline, none waits on the other's fetch (second ${fms} ms, both ${tms} ms, metadata timeout 20 s)" ||
	notok "stalled metadata service and the provider lock (second ${fms} ms, both ${tms} ms)" "$last"
expect "fault: DisabledException" DENIED 5000 "${fk[@]}" unwrap "$(arn disabled)" "$ctx" "$fb"
# A bare key id is bound only to the ARN of that key in the endpoint's region.
expect "fake: describe a bare key id" ok 5000 "${fk[@]}" state okarn-1
[ "$(field bound_ref)" = "$(arn okarn-1)" ] && ok "fake: a bare key id is bound to its own ARN" || notok "okarn" "$last"
for m in wrongregion wrongkey aliasarn; do
	expect "fake: DescribeKey answers an ARN that is not the key's ($m)" ok 5000 "${fk[@]}" state "$m-1"
	[ -z "$(field bound_ref)" ] && ok "fake: that ARN ($m) is not taken as the key's" || notok "$m bound" "$last"
done
expect "fault: NotFoundException for a bare key id" MISCONFIG 5000 "${fk[@]}" unwrap notfound-1 "$ctx" "$fb"
expect "fault: NotFoundException for a key ARN of the endpoint's region" DENIED 5000 "${fk[@]}" unwrap "$(arn notfound-2)" "$ctx" "$fb"
expect "fault: InvalidCiphertextException" INVALID 5000 "${fk[@]}" unwrap "$(arn invalid)" "$ctx" "$fb"
expect "fault: TLS with a CA that did not sign the server" TRANSIENT 5000 --attempts 1 \
	--endpoint "https://127.0.0.1:$p_fake" --region eu-west-2 --ca "$work/other-ca.pem" --creds env state "$(arn ok-3)"
grep -q 'TLS' <<<"$last" && ok "fault: wrong CA named as a TLS failure" || notok "wrong CA message" "$last"
expect "fault: TLS certificate for another name" TRANSIENT 5000 --attempts 1 \
	--endpoint "https://127.0.0.1:$p_wrong" --region eu-west-2 --ca "$work/ca.pem" --creds env state "$(arn ok-4)"
expect "fault: nothing listening" TRANSIENT 5000 --attempts 2 \
	--endpoint "https://127.0.0.1:1" --region eu-west-2 --ca "$work/ca.pem" --creds env state "$(arn ok-5)"

# ---- credentials ---------------------------------------------------------------
( unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  expect "IMDSv2 credentials (token first, session token signed)" ok 8000 --imds "http://127.0.0.1:$p_imds" \
	--creds imds "${fk[@]:0:6}" state "$(arn ok-6)"
  echo "RESULT $pass $fail $n" ) >"$work/sub.out"
cat "$work/sub.out" | grep -v '^RESULT'
read -r _ pass fail n < <(grep '^RESULT' "$work/sub.out")
. tests/kms/aws-canary.sh	# the revocation probe's canary under the documented key policy
. tests/kms/aws-policy.sh	# the documented policy's statements on the agent's requests
. tests/kms/aws-ident.sh	# the KMS principal bound to a key configuration (moto's STS)
grep -q 'SIGV4 MATCH TrentService.DescribeKey AKIDIMDS' "$work/fake.log" && ok "IMDS credentials signed the KMS request (botocore agrees)" || notok "IMDS signature" "$(tail "$work/fake.log")"

( unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  expect "IMDS accepts and never answers: bounded by the metadata timeout" TRANSIENT 6000 --attempts 2 \
	--imds "http://127.0.0.1:$p_hang" --imds-timeout 1000 --creds imds "${fk[@]:0:6}" state "$(arn ok-7)"
  printf '[default]\naws_access_key_id = AKIDNONE\n\n[profile lc]\naws_access_key_id = AKIDFAKE\naws_secret_access_key = %s\n' \
	"fakeSecretKey/0123456789abcdefghijklmnopqrstu" >"$work/config"
  printf '[default]\naws_access_key_id=AKIDFAKE\naws_secret_access_key=fakeSecretKey/0123456789abcdefghijklmnopqrstu\n' >"$work/credentials"
  AWS_CONFIG_FILE=$work/config AWS_SHARED_CREDENTIALS_FILE=$work/credentials \
	expect "shared credentials file, default profile" ok 5000 --creds profile "${fk[@]:0:6}" state "$(arn ok-8)"
  AWS_CONFIG_FILE=$work/config AWS_SHARED_CREDENTIALS_FILE=$work/credentials \
	expect "config file, [profile lc]" ok 5000 --creds profile --profile lc "${fk[@]:0:6}" state "$(arn ok-9)"
  AWS_CONFIG_FILE=$work/config AWS_SHARED_CREDENTIALS_FILE=$work/credentials \
	expect "unknown profile" MISCONFIG 5000 --creds profile --profile nope "${fk[@]:0:6}" state "$(arn ok-10)"
  AWS_CONFIG_FILE=$work/config AWS_SHARED_CREDENTIALS_FILE=$work/credentials AWS_PROFILE=lc \
	expect "auto: AWS_PROFILE when the environment has no keys" ok 5000 "${fk[@]:0:6}" state "$(arn ok-11)"
  # lakecrypt-agent.service's ProtectHome=yes mounts an empty directory
  # of mode 0000 over /root: ~/.aws is not there for the agent.  The
  # message says so and names the way out (issue 11 review, finding 3);
  # AWS_SHARED_CREDENTIALS_FILE (the documented drop-in) then signs.
  mkdir -p "$work/hidden-home" && chmod 000 "$work/hidden-home"
  HOME=$work/hidden-home AWS_CONFIG_FILE= AWS_SHARED_CREDENTIALS_FILE= \
	expect "profile, home hidden as ProtectHome=yes hides it" MISCONFIG 5000 --creds profile "${fk[@]:0:6}" state "$(arn ok-19)"
  grep -qF "cannot read $work/hidden-home/.aws/credentials or $work/hidden-home/.aws/config (No such file or directory): is $work/hidden-home hidden by the unit's ProtectHome=yes? Give the agent a file outside the home directory: a drop-in with Environment=AWS_SHARED_CREDENTIALS_FILE=/etc/lakecrypt/aws-credentials" <<<"$last" &&
	ok "profile, hidden home: the message names ProtectHome=yes and the drop-in" || notok "hidden home message" "$last"
  HOME=$work/hidden-home AWS_CONFIG_FILE= AWS_SHARED_CREDENTIALS_FILE=$work/credentials \
	expect "profile, hidden home, AWS_SHARED_CREDENTIALS_FILE (the drop-in): signed" ok 5000 --creds profile "${fk[@]:0:6}" state "$(arn ok-20)"
  HOME=$work/hidden-home AWS_CONFIG_FILE= AWS_SHARED_CREDENTIALS_FILE=$work/nonexistent \
	expect "profile, AWS_SHARED_CREDENTIALS_FILE not there: no home hint" MISCONFIG 5000 --creds profile "${fk[@]:0:6}" state "$(arn ok-21)"
  ! grep -q "ProtectHome" <<<"$last" && grep -qF "$work/nonexistent" <<<"$last" &&
	ok "AWS_SHARED_CREDENTIALS_FILE not there: named, no ProtectHome hint" || notok "no hint with the variable set" "$last"
  chmod 700 "$work/hidden-home"
  AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:$p_imds/container-creds AWS_CONTAINER_AUTHORIZATION_TOKEN=container-auth-token-42 \
	expect "container credentials (full URI, authorization token)" ok 5000 --creds container "${fk[@]:0:6}" state "$(arn ok-12)"
  echo container-auth-token-42 >"$work/ctoken"
  AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:$p_imds/container-creds AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=$work/ctoken \
	AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_CONFIG_FILE=/nonexistent \
	expect "auto: container credentials (token file) when no keys or files" ok 5000 "${fk[@]:0:6}" state "$(arn ok-13)"
  AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:$p_imds/container-creds AWS_CONTAINER_AUTHORIZATION_TOKEN=wrong \
	expect "container credentials refused (HTTP 401)" MISCONFIG 5000 --creds container "${fk[@]:0:6}" state "$(arn ok-14)"
  AWS_CONTAINER_CREDENTIALS_FULL_URI=http://192.0.2.1/creds \
	expect "container credentials over plain HTTP to a foreign host refused" MISCONFIG 2000 --creds container "${fk[@]:0:6}" state "$(arn ok-15)"
  # Web identity: botocore's own STS client proves the fake STS speaks the protocol.
  sts=$("$py" -c '
import sys, botocore.session
c = botocore.session.get_session().create_client("sts", region_name="eu-west-2",
    endpoint_url=sys.argv[1], verify=sys.argv[2])
r = c.assume_role_with_web_identity(RoleArn="arn:aws:iam::111122223333:role/lakecrypt",
    RoleSessionName="botocore", WebIdentityToken="web-identity-jwt-42")
print(r["Credentials"]["AccessKeyId"], r["Credentials"]["Expiration"].year > 2000)' \
	"https://127.0.0.1:$p_fake/" "$work/ca.pem" 2>&1)
  [ "$sts" = "AKIDIMDS True" ] && ok "botocore's STS client reads the fake STS answer" || notok "fake STS with botocore" "$sts"
  echo web-identity-jwt-42 >"$work/wi-token"
  AWS_WEB_IDENTITY_TOKEN_FILE=$work/wi-token AWS_ROLE_ARN=arn:aws:iam::111122223333:role/lakecrypt \
	AWS_ENDPOINT_URL_STS=https://127.0.0.1:$p_fake/ \
	expect "web identity (AssumeRoleWithWebIdentity at STS, then signed KMS call)" ok 5000 --creds web-identity "${fk[@]:0:6}" state "$(arn ok-17)"
  echo wrong-token >"$work/wi-bad"
  AWS_WEB_IDENTITY_TOKEN_FILE=$work/wi-bad AWS_ROLE_ARN=arn:aws:iam::111122223333:role/lakecrypt \
	AWS_ENDPOINT_URL_STS=https://127.0.0.1:$p_fake/ AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_CONFIG_FILE=/nonexistent \
	expect "auto: web identity refused by STS (InvalidIdentityToken): misconfigured, never a kill" MISCONFIG 5000 "${fk[@]:0:6}" state "$(arn ok-18)"
  AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_CONFIG_FILE=/nonexistent \
	expect "auto: nothing anywhere, metadata service hangs: bounded" TRANSIENT 6000 --attempts 2 \
	--imds "http://127.0.0.1:$p_hang" --imds-timeout 1000 "${fk[@]:0:6}" state "$(arn ok-16)"
  echo "RESULT $pass $fail $n" ) >"$work/sub.out"
cat "$work/sub.out" | grep -v '^RESULT'
read -r _ pass fail n < <(grep '^RESULT' "$work/sub.out")

# Every request the fake endpoint saw was signed as botocore signs it,
# except the one with the deliberately wrong session token.
m=$(grep -c 'SIGV4 MATCH' "$work/fake.log") x=$(grep -c 'SIGV4 MISMATCH' "$work/fake.log")
[ "$m" -ge 15 ] && [ "$x" -eq 1 ] && ok "botocore computes the same Authorization for $m requests (1 deliberate mismatch)" ||
	notok "botocore signature comparison: $m match, $x mismatch" "$(grep -A2 MISMATCH "$work/fake.log")"
# No secret in any output.
if grep -qE 'fakeSecretKey|imdsSecretKey|IQoJb3JpZ2lu|imds-token-|container-auth-token|web-identity-jwt' "$work/client.log"; then
	notok "no secret in the client's output"
else ok "no secret key, session token, metadata or container token in the client's output"; fi

# ---- KMIP (PyKMIP's server), Google Cloud KMS and Azure Key Vault (their
# own test servers, proven with the official SDKs): their cases count here.
subsuite kmip tests/kms/kmip.sh
subsuite gcp-kms tests/kms/gcp.sh
subsuite azure-kv tests/kms/azure.sh
finish
