#!/bin/bash
# The PKCS#11 provider against SoftHSM2 (a real PKCS#11 module), with a
# private token directory made here (SOFTHSM2_CONF in a mktemp dir), keys
# made with OpenSC's pkcs11-tool as an operator would.  Faults come from
# tests/kms/pkcs11/p11-shim.c, a module in front of SoftHSM that counts
# calls and returns injected CKR_* codes or hangs.  The provider is driven
# through the provider layer (retries, deadline, counters) by
# tests/kms/kms-pkcs11-client.c, and through the agent and lakecryptctl,
# all built with ASan and UBSan.
# Run by tests/kms/check.sh; also runs alone.  TAP out; ends with
# "N passed, N failed, N skipped".  Nothing is skipped: a missing tool is
# a failure (run `make setup`).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
work=$(mktemp -d /tmp/lakecrypt-p11.XXXXXX)
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

# ---- tools and build ---------------------------------------------------
softhsm=
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do
	[ -f "$m" ] && { softhsm=$m; break; }
done
if [ -z "$softhsm" ]; then notok "SoftHSM2 module present (run make setup)"; finish; fi
for t in softhsm2-util pkcs11-tool pkg-config cc; do
	command -v "$t" >/dev/null || { notok "tool $t present (run make setup)"; finish; }
done
if ! pkg-config --exists p11-kit-1; then notok "p11-kit-1 development header present (run make setup)"; finish; fi
if out=$(make -s -C agent SAN=1 kmstest 2>&1); then ok "build the PKCS#11 test driver, agent and CLI (ASan+UBSan)"
else notok "build KMS test drivers (ASan+UBSan)" "$out"; finish; fi
shim=$work/p11-shim.so
if out=$(cc -shared -fPIC -O2 -Wall -Wextra -Werror $(pkg-config --cflags p11-kit-1) -o "$shim" \
	tests/kms/pkcs11/p11-shim.c 2>&1); then ok "build the fault-injecting PKCS#11 shim module"
else notok "build shim" "$out"; finish; fi
client=$top/build/agent-san/kmstest/kms-pkcs11-client
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

# ---- a private SoftHSM token store ----------------------------------------
mkdir -p "$work/tokens"
cat >"$work/softhsm2.conf" <<EOF
directories.tokendir = $work/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
export SOFTHSM2_CONF=$work/softhsm2.conf
PIN=1234-lakecrypt SOPIN=87654321
printf '%s\n' "$PIN" >"$work/pin" && chmod 600 "$work/pin"
printf 'wrong-pin\n' >"$work/badpin" && chmod 600 "$work/badpin"
tool() { pkcs11-tool --module "$softhsm" --token-label lc-test --login --pin "$PIN" "$@" 2>&1; }
mk() {	# mk LABEL ID EXTRA-ARGS...: an AES-256 key, as the documentation says
	tool --keygen --key-type AES:32 --label "$1" --id "$2" --usage-decrypt --sensitive --private "${@:3}"
}
if out=$(softhsm2-util --init-token --free --label lc-test --so-pin "$SOPIN" --pin "$PIN" 2>&1) &&
   out2=$(mk lc-cmk 01) && mk lc-del 02 >/dev/null && mk lc-nodec 03 >/dev/null && mk lc-noenc 04 >/dev/null &&
   mk lc-ext 05 --extractable >/dev/null && mk lc-dup 0a >/dev/null && mk lc-dup 0b >/dev/null &&
   tool --keygen --key-type GENERIC:32 --label lc-generic --id 06 --sensitive --private >/dev/null &&
   grep -q 'never extractable' <<<"$out2"; then
	ok "SoftHSM token lc-test in a private token directory; AES keys made with pkcs11-tool (sensitive, never extractable)"
else notok "token and keys" "$out $(cat "$work"/*.log 2>/dev/null)"; finish; fi
serial=$(softhsm2-util --show-slots 2>/dev/null | awk '/Serial number:/ { s = $3 } /Label:/ && $2 == "lc-test" { print s; exit }')
slot=$(softhsm2-util --show-slots 2>/dev/null | awk '/^Slot [0-9]+$/ { s = $2 } /Label:/ && $2 == "lc-test" { print s; exit }')

# ---- helpers -----------------------------------------------------------------
ctx=lakecrypt:v2\;volume=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\;workspace=finance\;project=ledger\;keyconfig=hsm-kc
ctx2=lakecrypt:v2\;volume=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\;workspace=finance\;project=other\;keyconfig=hsm-kc
P=(--module "$softhsm" --token-label lc-test --pin-file "$work/pin")
S=(--module "$shim" --token-label lc-test --pin-file "$work/pin")
export P11SHIM_MODULE=$softhsm P11SHIM_LOG=$work/shim.log P11SHIM_CTL=$work/shim.ctl

last=""
run() { last=$("$client" "$@" 2>&1); echo "$last" >>"$work/client.log"; }
field() { echo "$last" | sed -n "s/^$1=//p" | head -n1; }
calls() { grep -c "^$1\$" "$work/shim.log" 2>/dev/null || true; }
reset_shim() { : >"$work/shim.log"; : >"$work/shim.ctl"; }
inject() { echo "$*" >>"$work/shim.ctl"; }
# expect DESC ok|CLASS ARGS...: the result line's class
expect() {
	local desc=$1 want=$2 cls
	shift 2
	run "$@"
	if [ "$want" = ok ]; then
		cls=$(grep -q '^result ok' <<<"$last" && echo ok)
	else
		cls=$(echo "$last" | sed -n 's/^result error class=\([a-z_]*\).*/\1/p')
		case $want in	# lc_err_class_name()
		MISCONFIG) want=misconfigured ;;
		*) want=${want,,} ;;
		esac
	fi
	if [ "$cls" = "$want" ] && ! grep -qE 'Sanitizer|runtime error' <<<"$last"; then
		ok "$desc: $want"
	else
		notok "$desc: expected $want" "$last"
	fi
}
says() {	# says DESC REGEX: the last output matches
	if grep -qE -- "$2" <<<"$last"; then ok "$1"; else notok "$1" "$last"; fi
}

# ---- the key's life on SoftHSM -----------------------------------------------
expect "state of lc-cmk" ok "${P[@]}" state lc-cmk
[ "$(field state)" = enabled ] && ok "key_state: enabled (CKA_ENCRYPT and CKA_DECRYPT true)" || notok "state enabled" "$last"
[ "$(field key_id)" = "pkcs11:token=lc-test;serial=$serial;object=lc-cmk;id=%01;type=secret-key" ] &&
	ok "the key's identity is an RFC 7512 URI with the token's label and serial and the key's label and id" ||
	notok "key_id URI (serial $serial)" "$last"
expect "wrap under lc-cmk with the KEK context" ok "${P[@]}" wrap lc-cmk "$ctx"
blob=$(field blob) pt=$(field pt)
hdr=$(echo "$blob" | base64 -d | head -c 4 | od -An -tx1 | tr -d ' ')
len=$(echo "$blob" | base64 -d | wc -c)
[ "$hdr" = 010c1000 ] && [ "$len" -eq $((4 + 12 + 32 + 16)) ] &&
	ok "blob: version 1, IV 12, tag 16 header; IV || 32-byte ciphertext || tag ($len bytes)" || notok "blob format: $hdr $len"
expect "unwrap by label" ok "${P[@]}" unwrap lc-cmk "$ctx" "$blob"
[ "$(field pt)" = "$pt" ] && [ -n "$pt" ] && ok "unwrapped KEK equals the wrapped one" || notok "round trip" "$last"
expect "unwrap by id:01" ok "${P[@]}" unwrap id:01 "$ctx" "$blob"
[ "$(field pt)" = "$pt" ] && ok "the same key by CKA_ID" || notok "by id" "$last"
run "${P[@]}" wrap lc-cmk "$ctx"
[ "$(field blob)" != "$blob" ] && ok "a second wrap of another KEK uses a fresh IV (blobs differ)" || notok "fresh IV" "$last"
expect "unwrap with another project in the context" INVALID "${P[@]}" unwrap lc-cmk "$ctx2" "$blob"
says "INVALID says the context did not match" 'context did not match'
tampered=$(echo "$blob" | base64 -d | od -An -tx1 -v | tr -d ' \n' | sed 's/^\(.\{40\}\)\(..\)/\1ff/' | xxd -r -p | base64 -w0)
expect "a flipped ciphertext byte" INVALID "${P[@]}" unwrap lc-cmk "$ctx" "$tampered"
v2=$(echo "$blob" | base64 -d | od -An -tx1 -v | tr -d ' \n' | sed 's/^01/02/' | xxd -r -p | base64 -w0)
expect "a blob of version 2" INVALID "${P[@]}" unwrap lc-cmk "$ctx" "$v2"
says "INVALID names the blob header" 'blob header 02 0c 10 00'
short=$(echo "$blob" | base64 -d | head -c 31 | base64 -w0)
expect "a truncated blob" INVALID "${P[@]}" unwrap lc-cmk "$ctx" "$short"
run "${P[@]}" wrap lc-del "$ctx"
dblob=$(field blob)
expect "an extractable key is refused (key_state)" MISCONFIG "${P[@]}" state lc-ext
says "the refusal says CKA_EXTRACTABLE is true" 'CKA_EXTRACTABLE is true'
expect "an extractable key is refused (wrap)" MISCONFIG "${P[@]}" wrap lc-ext "$ctx"
expect "a GENERIC secret key is refused" MISCONFIG "${P[@]}" state lc-generic
says "the refusal says it is not AES" 'not an AES key'
reset_shim
inject C_GetAttributeValue.session 1 1
expect "a key that is a session object (CKA_TOKEN false, from the shim) is refused" MISCONFIG "${S[@]}" state lc-cmk
says "the refusal says it is a session object" 'session object \(CKA_TOKEN is false\)'
reset_shim

out=$(tool --delete-object --type secrkey --label lc-del)
# An unbound reference cannot tell a deleted key from a token re-initialised
# under the same label: never a revocation.  keyconfig create binds the
# serial (serial=<S>;...), under which the missing key is authoritative.
expect "unwrap after the key was deleted, unbound reference: no revocation" MISCONFIG "${P[@]}" unwrap lc-del "$ctx" "$dblob"
says "the MISCONFIG says the reference is not bound and what to do" 'not bound to a token serial: .*re-create the key configuration'
expect "state of the deleted key, unbound reference" MISCONFIG "${P[@]}" state lc-del
expect "unwrap after pkcs11-tool deleted the key" DENIED "${P[@]}" unwrap "serial=$serial;label:lc-del" "$ctx" "$dblob"
cmd=$(sed -n 's/.*; check \(pkcs11-tool [^(]*\)$/\1/p' <<<"$(grep '^result' <<<"$last" | sed 's/ (attempts.*//')")
read -ra argv <<<"$cmd"
out=$("${argv[@]}" --pin "$PIN" 2>&1)
grep -q 'label: *lc-cmk' <<<"$out" && ! grep -q 'label: *lc-del' <<<"$out" && ! grep -qi 'error' <<<"$out" &&
	ok "the command the message gives runs and lists the token's secret keys (lc-cmk, not the deleted lc-del)" || notok "the message's command: $cmd" "$out"
says "DENIED says which key, which token and slot, and what to check" \
	"no secret key with label \"lc-del\" on PKCS#11 token \"lc-test\" \\(serial $serial, slot $slot\\): it was deleted, or the key configuration names another key; check pkcs11-tool --module $softhsm --slot $slot --login --list-objects --type secrkey"
expect "state of the deleted key" ok "${P[@]}" state "serial=$serial;label:lc-del"
[ "$(field state)" = destroyed ] && ok "key_state of a deleted key: destroyed" || notok "destroyed" "$last"
expect "unknown id" DENIED "${P[@]}" unwrap "serial=$serial;id:7777" "$ctx" "$dblob"
says "the message names the id, the token and its slot" "no secret key with id 7777 on PKCS#11 token \"lc-test\" \\(serial $serial, slot $slot\\)"
expect "two keys labelled lc-dup" MISCONFIG "${P[@]}" state lc-dup
says "the message says several, which label, which token and slot, and what to do" \
	"several secret keys with label \"lc-dup\" on PKCS#11 token \"lc-test\" \\(serial $serial, slot $slot\\): the key must be unique: give it by id:<hex>.*--slot $slot --login --list-objects"
expect "one of them by id" ok "${P[@]}" state id:0b

run "${P[@]}" wrap lc-nodec "$ctx"
nblob=$(field blob)
run --module "$softhsm" --token-label lc-test --pin-file "$work/pin" setattr lc-nodec decrypt 0
says "CKA_DECRYPT withdrawn by the token owner" '^result ok'
expect "unwrap under a key whose CKA_DECRYPT is false" DENIED "${P[@]}" unwrap lc-nodec "$ctx" "$nblob"
says "DENIED names CKA_DECRYPT" 'CKA_DECRYPT is false'
expect "state of that key" ok "${P[@]}" state lc-nodec
[ "$(field state)" = disabled ] && ok "key_state: disabled once CKA_DECRYPT is withdrawn" || notok "disabled" "$last"
run --module "$softhsm" --token-label lc-test --pin-file "$work/pin" setattr lc-nodec decrypt 1
expect "CKA_DECRYPT given back: unwrap works again" ok "${P[@]}" unwrap lc-nodec "$ctx" "$nblob"
run --module "$softhsm" --token-label lc-test --pin-file "$work/pin" setattr lc-noenc encrypt 0
expect "wrap under a key whose CKA_ENCRYPT is false" DENIED "${P[@]}" wrap lc-noenc "$ctx"
expect "state of a key without CKA_ENCRYPT" ok "${P[@]}" state lc-noenc
[ "$(field state)" = disabled ] && ok "key_state: disabled once CKA_ENCRYPT is withdrawn" || notok "disabled (encrypt)" "$last"

# ---- configuration and PIN ------------------------------------------------------
expect "module path that does not exist" MISCONFIG --module /nonexistent/libp11.so --token-label lc-test --pin-file "$work/pin" state lc-cmk
says "MISCONFIG says the module cannot be loaded" 'cannot load PKCS#11 module /nonexistent/libp11.so'
libz=$(ldconfig -p | awk '/libz\.so\.1 .*x86-64/ { print $NF; exit }')
expect "a library that is not a PKCS#11 module ($libz)" MISCONFIG --module "$libz" --token-label lc-test --pin-file "$work/pin" state lc-cmk
says "MISCONFIG says so" 'is not a PKCS#11 module'
expect "no such token label: an absent token is transient, never a denial" TRANSIENT --attempts 2 --module "$softhsm" --token-label lc-absent --pin-file "$work/pin" state lc-cmk
says "transient says no token is present, retried" 'no PKCS#11 token with label "lc-absent".*after 2 attempts'
says "the message lists the tokens present with their slots and what to check" \
	"no PKCS#11 token with label \"lc-absent\" is present \\([0-9]+ tokens present: .*\"lc-test\" \\(slot $slot\\).*check token_label / token_serial in \\[pkcs11\\] against pkcs11-tool --module $softhsm --list-token-slots"
expect "token by serial only" ok --module "$softhsm" --token-serial "$serial" --pin-file "$work/pin" state lc-cmk
expect "right label, wrong serial" TRANSIENT --attempts 1 --module "$softhsm" --token-label lc-test --token-serial 0000000000000000 --pin-file "$work/pin" state lc-cmk
chmod 644 "$work/pin"
expect "PIN file readable by others" MISCONFIG "${P[@]}" state lc-cmk
says "the refusal names the mode" 'has mode 0644: group and others must have no access'
chmod 600 "$work/pin"
ln -s "$work/pin" "$work/pin-link"
expect "PIN file that is a symlink" MISCONFIG --module "$softhsm" --token-label lc-test --pin-file "$work/pin-link" state lc-cmk
: >"$work/pin-empty"; chmod 600 "$work/pin-empty"
expect "empty PIN file" MISCONFIG --module "$softhsm" --token-label lc-test --pin-file "$work/pin-empty" state lc-cmk
if grep -q "$PIN" "$work/client.log"; then notok "the PIN never appears in any output"; else ok "the PIN never appears in any output"; fi

reset_shim
expect "wrong PIN" MISCONFIG --attempts 5 --repeat 3 "${S[@]:0:4}" --pin-file "$work/badpin" state lc-cmk
says "MISCONFIG says the PIN was refused and will not be tried again" 'refused the PIN of the PIN file: CKR_PIN_INCORRECT; the agent will not try again'
[ "$(calls C_Login)" -eq 1 ] && ok "wrong PIN: exactly one C_Login over 3 calls of 5 allowed attempts each (no lock-out)" ||
	notok "C_Login count $(calls C_Login)" "$(cat "$work/shim.log")"
reset_shim
inject C_Login 0xa4 1	# CKR_PIN_LOCKED
expect "PIN locked" MISCONFIG --repeat 2 "${S[@]}" state lc-cmk
[ "$(calls C_Login)" -eq 1 ] && ok "PIN locked: one C_Login, never again" || notok "C_Login count $(calls C_Login)"
reset_shim
inject C_GetTokenInfo.flags 0x20000 100	# CKF_USER_PIN_FINAL_TRY
expect "the token says one more wrong PIN locks it" MISCONFIG --repeat 2 "${S[@]}" state lc-cmk
says "MISCONFIG says the agent will not try" 'one failure away from locked; the agent will not try to log in'
[ "$(calls C_Login)" -eq 0 ] && ok "PIN final try: no C_Login at all" || notok "C_Login count $(calls C_Login)"
reset_shim
inject C_GetTokenInfo.flags 0x40000 100	# CKF_USER_PIN_LOCKED
expect "the token says the PIN is locked" MISCONFIG "${S[@]}" state lc-cmk
[ "$(calls C_Login)" -eq 0 ] && ok "PIN locked flag: no C_Login at all" || notok "C_Login count $(calls C_Login)"
reset_shim
inject C_Login 0x30 1	# CKR_DEVICE_ERROR: not a PIN verdict
expect "C_Login fails with CKR_DEVICE_ERROR once: retried, not latched" ok --attempts 2 "${S[@]}" state lc-cmk
[ "$(calls C_Login)" -eq 2 ] && ok "a device error at login is transient: the second attempt logs in" || notok "C_Login count $(calls C_Login)"

# ---- sessions: reuse, reopen once, timeouts -------------------------------------------
reset_shim
expect "5 unwraps, 1 session" ok --sessions 1 --repeat 5 "${S[@]}" unwrap lc-cmk "$ctx" "$blob"
[ "$(calls C_OpenSession)" -eq 1 ] && [ "$(calls C_Login)" -eq 1 ] && [ "$(calls C_Decrypt)" -eq 5 ] &&
	ok "sessions are reused: 5 C_Decrypt, 1 C_OpenSession, 1 C_Login, 1 C_Initialize ($(calls C_Initialize))" ||
	notok "session reuse: open $(calls C_OpenSession) login $(calls C_Login) decrypt $(calls C_Decrypt)"
reset_shim
inject C_Decrypt 0x32 1	# CKR_DEVICE_REMOVED
expect "CKR_DEVICE_REMOVED once (token replugged)" ok --attempts 1 "${S[@]}" unwrap lc-cmk "$ctx" "$blob"
[ "$(calls C_OpenSession)" -eq 2 ] && [ "$(calls C_GetSlotList)" -ge 2 ] && [ "$(calls C_Decrypt)" -eq 2 ] &&
	ok "device removed: the token looked up again, a new session, the unwrap repeated once, in one attempt" ||
	notok "reopen: open $(calls C_OpenSession) slots $(calls C_GetSlotList) decrypt $(calls C_Decrypt)"
reset_shim
inject C_Decrypt 0xb3 1	# CKR_SESSION_HANDLE_INVALID
expect "CKR_SESSION_HANDLE_INVALID once" ok --attempts 1 "${S[@]}" unwrap lc-cmk "$ctx" "$blob"
[ "$(calls C_OpenSession)" -eq 2 ] && ok "session handle invalid: a new session, then success" || notok "reopen count $(calls C_OpenSession)"
reset_shim
inject C_Decrypt 0x32 2
expect "CKR_DEVICE_REMOVED twice in one attempt" TRANSIENT --attempts 1 "${S[@]}" unwrap lc-cmk "$ctx" "$blob"
says "transient after reopening once" 'after the session was opened again once'
[ "$(calls C_Decrypt)" -eq 2 ] && ok "reopened once only: 2 C_Decrypt" || notok "decrypt count $(calls C_Decrypt)"
reset_shim
inject C_Decrypt 0x32 2
expect "CKR_DEVICE_REMOVED twice, 2 attempts: the provider layer's retry succeeds" ok --attempts 2 "${S[@]}" unwrap lc-cmk "$ctx" "$blob"
says "one retry counted" 'retries=1 '
reset_shim
inject C_OpenSession 0xe0 100	# CKR_TOKEN_NOT_PRESENT
expect "token not present: key_state" TRANSIENT --attempts 2 "${S[@]}" state lc-cmk
reset_shim
inject C_FindObjectsInit 0x101 1	# CKR_USER_NOT_LOGGED_IN
expect "logged out behind our back: log in again" ok --attempts 1 "${S[@]}" state lc-cmk
[ "$(field state)" = enabled ] && [ "$(calls C_Login)" -eq 2 ] && ok "a second login after CKR_USER_NOT_LOGGED_IN, state enabled" ||
	notok "relogin: $(calls C_Login) logins" "$last"
reset_shim
inject C_Decrypt 0x150 1	# CKR_BUFFER_TOO_SMALL: SoftHSM's decryption stays active
expect "a session left with an active operation" ok --sessions 1 --attempts 1 --repeat 2 "${S[@]}" unwrap lc-cmk "$ctx" "$blob"
# Closing the application's only session on the token logs it out
# (PKCS#11 v2.40 section 5.6): the fresh session logs in again.
[ "$(calls C_OpenSession)" -eq 2 ] && [ "$(calls C_Login)" -eq 2 ] && [ "$(calls C_Decrypt)" -eq 3 ] &&
	ok "the stale session is closed and a fresh one, logged in again, serves (2 sessions, 2 logins, 3 C_Decrypt)" ||
	notok "stale session: open $(calls C_OpenSession) login $(calls C_Login)"
reset_shim
inject C_DecryptInit 0x90 1	# CKR_OPERATION_ACTIVE
expect "CKR_OPERATION_ACTIVE: a fresh session" ok --sessions 1 --attempts 1 "${S[@]}" unwrap lc-cmk "$ctx" "$blob"
reset_shim
inject C_DecryptInit 0x30 1	# CKR_DEVICE_ERROR
expect "CKR_DEVICE_ERROR is retried" ok --attempts 2 "${S[@]}" unwrap lc-cmk "$ctx" "$blob"
reset_shim
inject C_DecryptInit 0x68 1	# CKR_KEY_FUNCTION_NOT_PERMITTED
expect "CKR_KEY_FUNCTION_NOT_PERMITTED" DENIED "${S[@]}" unwrap lc-cmk "$ctx" "$blob"
reset_shim
inject C_EncryptInit 0x71 1	# CKR_MECHANISM_PARAM_INVALID (a token that wants to make the IV)
expect "the token refuses the GCM parameters" MISCONFIG "${S[@]}" wrap lc-cmk "$ctx"
reset_shim
inject C_Decrypt hang "$work/hang"
touch "$work/hang"
expect "C_Decrypt hangs: 2 sessions" ok --sessions 2 --attempts 1 --attempt-timeout 1500 "${S[@]}" hang lc-cmk "$ctx" "$blob" "$work/hang"
[ "$(field state_result)" = ok ] && ok "a key_state call runs on the other session while one C_Decrypt hangs" || notok "parallel session" "$last"
[ "$(field hung_result)" = transient ] && grep -q 'did not answer within 1500 ms' <<<"$last" &&
	ok "the hung unwrap gives up at its attempt timeout: transient" || notok "hung unwrap" "$last"
[ "$(field after_result)" = ok ] && ok "once the module answers, unwraps work again" || notok "after" "$last"
touch "$work/hang"
expect "C_Decrypt hangs: 1 session" ok --sessions 1 --attempts 1 --attempt-timeout 1500 "${S[@]}" hang lc-cmk "$ctx" "$blob" "$work/hang"
[ "$(field state_result)" = transient ] && grep -q 'no PKCS#11 session was free within 1500 ms' <<<"$last" &&
	ok "with the only session stuck, another call waits at most its timeout: transient" || notok "no free session" "$last"
[ "$(field after_result)" = ok ] && ok "the stuck session serves again afterwards" || notok "after (1 session)" "$last"
reset_shim
expect "another token takes the label's place (device removed, new serial)" MISCONFIG --attempts 1 "${S[@]}" \
	then lc-cmk "C_FindObjectsInit 0x32 1
C_GetTokenInfo.serial 0x1234 1000"
[ "$(field first_result)" = ok ] && grep -q "now has serial 0000000000001234, not $serial" <<<"$last" &&
	ok "a replaced token is refused by serial, never read as the key's destruction" || notok "replaced token" "$last"
reset_shim

# ---- a token replaced under the same label (deleted, a new one initialised) ----
# key_state binds the reference to the token's serial; the new token has
# another serial and lacks the key: MISCONFIG naming both serials, never a
# destroyed key.  (SoftHSM2 keeps the serial when a token is re-initialised
# in place: that case is indistinguishable from deleting the key.)
swap() { softhsm2-util --show-slots 2>/dev/null | awk -v want="$1" '/^Slot [0-9]+$/ { s = $2 } /Serial number:/ { n = $3 } /Label:/ && $2 == "lc-swap" { print (want == "slot" ? s : n); exit }'; }
W=(--module "$softhsm" --token-label lc-swap --pin-file "$work/pin")
if softhsm2-util --init-token --free --label lc-swap --so-pin "$SOPIN" --pin "$PIN" >/dev/null 2>&1 &&
   pkcs11-tool --module "$softhsm" --token-label lc-swap --login --pin "$PIN" --keygen --key-type AES:32 \
	--label lc-k --id 21 --usage-decrypt --sensitive --private >/dev/null 2>&1; then
	ok "token lc-swap with key lc-k"
else notok "token lc-swap"; fi
s1=$(swap serial)
expect "lc-swap: state binds the reference" ok "${W[@]}" state lc-k
bref=$(field bound_ref)
[ "$bref" = "serial=$s1;label:lc-k" ] && ok "lc-swap: the bound reference names the token serial: $bref" || notok "bound ref" "$last"
expect "lc-swap: wrap under the bound reference" ok "${W[@]}" wrap "$bref" "$ctx"
sblob=$(field blob)
if softhsm2-util --delete-token --token lc-swap >/dev/null 2>&1 &&
   softhsm2-util --init-token --free --label lc-swap --so-pin "$SOPIN" --pin "$PIN" >/dev/null 2>&1; then
	s2=$(swap serial)
	[ -n "$s2" ] && [ "$s2" != "$s1" ] && ok "lc-swap deleted and a new token initialised under its label: serial $s1 -> $s2" ||
		notok "new token serial: $s1 -> $s2"
else notok "replace lc-swap"; fi
expect "replaced token: state of the bound key" MISCONFIG "${W[@]}" state "$bref"
says "the MISCONFIG names both serials" "token label \"lc-swap\" now has serial $s2, the key was made on serial $s1: a re-initialised or different token"
expect "replaced token: unwrap under the bound key" MISCONFIG "${W[@]}" unwrap "$bref" "$ctx" "$sblob"
expect "replaced token: wrap under the bound key" MISCONFIG "${W[@]}" wrap "$bref" "$ctx"
expect "replaced token: unbound reference" MISCONFIG "${W[@]}" state lc-k

# ---- two tokens with the same label ------------------------------------------------
if softhsm2-util --init-token --free --label lc-test --so-pin "$SOPIN" --pin "$PIN" >/dev/null 2>&1; then
	expect "two tokens labelled lc-test" MISCONFIG "${P[@]}" state lc-cmk
	says "MISCONFIG asks for token_serial" 'set token_serial'
	expect "... picked by serial" ok --module "$softhsm" --token-label lc-test --token-serial "$serial" --pin-file "$work/pin" state lc-cmk
else notok "second token"; fi
P=(--module "$softhsm" --token-label lc-test --token-serial "$serial" --pin-file "$work/pin")

# ---- the agent: [pkcs11] in agent.conf, keyconfig create, status, audit -----------
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

[pkcs11]
module = $softhsm
token_label = lc-test
token_serial = $serial
pin_file = $work/pin
sessions = 2
EOF
agent=$top/build/agent-san/lakecrypt-agent ctl=$top/build/agent-san/lakecryptctl
"$agent" -c "$agent_dir/agent.conf" -f >"$agent_dir/agent.log" 2>&1 &
agent_pid=$!
pids+=($agent_pid)
for _ in $(seq 100); do [ -S "$agent_dir/agent.sock" ] && break; sleep 0.1; done
lct() { "$ctl" --socket "$agent_dir/agent.sock" "$@" 2>&1; }
if out=$(lct keyconfig create hsm-kc --provider pkcs11 --key lc-cmk) && grep -q pkcs11 <<<"$out"; then
	ok "lakecryptctl keyconfig create --provider pkcs11 --key lc-cmk"
else notok "keyconfig create pkcs11" "$out $(tail -5 "$agent_dir/agent.log")"; fi
grep -q "^Key reference: *serial=$serial;label:lc-cmk\$" <<<"$out" &&
	ok "keyconfig create stores the reference bound to the token serial" || notok "bound key reference" "$out"
out=$(lct --json keyconfig list)
grep -q "pkcs11:token=lc-test;serial=$serial;object=lc-cmk;id=%01" <<<"$out" &&
	ok "the key configuration's cmk_id is the key's PKCS#11 URI" || notok "cmk_id" "$out"
out=$(lct keyconfig create hsm-id --provider pkcs11 --key id:01) && ok "keyconfig create by id:01" || notok "by id" "$out"
out=$(lct keyconfig create hsm-ext --provider pkcs11 --key lc-ext)
grep -q 'must never leave the token' <<<"$out" && ok "keyconfig create refuses an extractable key, saying why" || notok "extractable refused" "$out"
out=$(lct keyconfig create hsm-del --provider pkcs11 --key lc-del)
grep -q 'key lc-del not found or not usable by this identity at pkcs11: check the key id' <<<"$out" &&
	grep -q 'no secret key with label "lc-del"' <<<"$out" &&
	ok "keyconfig create on a deleted key: not found or not usable, check the key id" || notok "deleted key" "$out"
# A mistyped label at keyconfig create: nothing uses it yet, so a creation
# error (misconfigured, exit 1), not "destroyed" nor a denial (exit 5).
out=$(lct keyconfig create hsm-typo --provider pkcs11 --key lc-cnk); rc=$?
[ $rc -eq 1 ] && grep -q 'key lc-cnk not found or not usable by this identity at pkcs11: check the key id and its policy/permissions' <<<"$out" &&
	! grep -qiE 'is destroyed|denied' <<<"$out" &&
	ok "keyconfig create with a mistyped label: not found or not usable (exit 1), never destroyed/denied" ||
	notok "mistyped label at keyconfig create" "exit $rc: $out"
grep 'keyconfig.create failed' "$agent_dir/agent.log" | grep -q 'lc-cnk not found or not usable' &&
	! grep 'lc-cnk' "$agent_dir/agent.log" | grep -qF "$PIN" &&
	ok "the agent's log line for it says the same, without the PIN" || notok "log line of the mistyped label" "$(grep lc-cnk "$agent_dir/agent.log")"
out=$(lct keyconfig create hsm-nodec --provider pkcs11 --key lc-noenc)
grep -q 'is disabled' <<<"$out" && ok "keyconfig create on a key without CKA_ENCRYPT says it is disabled" || notok "disabled key" "$out"
out=$(lct keyconfig create hsm-badid --provider pkcs11 --key id:0g)
grep -q 'not hexadecimal' <<<"$out" && ok "keyconfig create with a bad id says so" || notok "bad id" "$out"
out=$(lct keyconfig list)
grep -q hsm-kc <<<"$out" && ! grep -qE 'hsm-(ext|del|nodec|badid)' <<<"$out" &&
	ok "only the usable key configurations were registered" || notok "keyconfig list" "$out"
out=$(lct status)
grep -E 'KMS calls \(pkcs11\):.*key_state=[1-9].*misconfigured=[1-9].*latency_ms_max=' <<<"$out" >/dev/null &&
	ok "status shows pkcs11 calls, failures by class and latency" || notok "status counters" "$out"
grep '"provider":"pkcs11"' "$agent_dir/audit.log" | grep -q "pkcs11:token=lc-test;serial=$serial" &&
	ok "audit log records the pkcs11 key_state calls with the token and key" || notok "audit" "$(tail -3 "$agent_dir/audit.log")"
grep -q "$PIN" "$agent_dir/audit.log" "$agent_dir/agent.log" && notok "no PIN in the agent's log or audit" || ok "no PIN in the agent's log or audit"
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null
grep -qE 'Sanitizer|runtime error' "$agent_dir/agent.log" && notok "agent (ASan/UBSan) clean" "$(cat "$agent_dir/agent.log")" || ok "agent (ASan/UBSan) ran clean"

# A PIN file others may read: --check-config says so (exit 1); the agent
# starts with pkcs11 unavailable for that reason (never reading the PIN),
# and the local KMS keeps working.
chmod 640 "$work/pin"
out=$("$agent" --check-config --config "$agent_dir/agent.conf" 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q '\[pkcs11\] unusable: .*has mode 0640' <<<"$out" &&
	ok "--check-config: a PIN file others may read makes [pkcs11] unusable (exit 1)" || notok "--check-config 0640 PIN" "exit $rc: $out"
rm -f "$agent_dir/agent.sock"
"$agent" -c "$agent_dir/agent.conf" -f >"$agent_dir/agent2.log" 2>&1 &
agent_pid=$!
pids+=($agent_pid)
for _ in $(seq 100); do [ -S "$agent_dir/agent.sock" ] && break; kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
out=$(lct status)
if grep -q 'Provider pkcs11 UNAVAILABLE: .*has mode 0640' <<<"$out" && grep -q 'has mode 0640' "$agent_dir/agent2.log"; then
	ok "with a 0640 PIN file the agent starts, pkcs11 unavailable, and says why"
else notok "agent start with a 0640 PIN file" "$out $(cat "$agent_dir/agent2.log")"; fi
out=$(lct keyconfig create hsm-kc2 --provider pkcs11 --key lc-cmk); rc=$?
[ $rc -eq 1 ] && grep -q 'provider "pkcs11" is unavailable' <<<"$out" &&
	ok "... keyconfig create under pkcs11 fails misconfigured with the reason" || notok "create under unavailable pkcs11" "exit $rc: $out"
lct kms create >/dev/null && ok "... and the local KMS works" || notok "local KMS with pkcs11 unavailable"
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null
chmod 600 "$work/pin"
finish
