#!/bin/bash
# lakecryptctl end to end against a fake agent (tests/cli/fake-agent.py) on
# a temporary socket: output, the JSON sent, and exit codes.  No root, no
# kernel.  TAP out; ends with "N passed, N failed, N skipped".
#   LAKECRYPTCTL=path  binary to test (default: build/agent/lakecryptctl,
#                      built with make -C agent if missing)
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
pass=0 fail=0 skip=0 n=0
work=$(mktemp -d)
agent_pid=
cleanup() {
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

ok()   { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n - $1"; }
nok()  { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
skip() { n=$((n + 1)); skip=$((skip + 1)); echo "ok $n - $1 # SKIP $2"; }

ctl=${LAKECRYPTCTL:-build/agent/lakecryptctl}
if [ ! -x "$ctl" ]; then
	make -s -C agent >"$work/build.log" 2>&1 || { nok "build lakecryptctl" "$(tail -n 20 "$work/build.log")"; }
fi
if [ ! -x "$ctl" ] || ! command -v python3 >/dev/null; then
	nok "lakecryptctl binary ($ctl) and python3 are there (make setup installs them)"
	echo "$pass passed, $fail failed, 0 skipped"
	exit 1
fi

sock="$work/agent.sock" log="$work/requests.log"
python3 tests/cli/fake-agent.py "$sock" "$log" 2>"$work/agent.err" &
agent_pid=$!
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { nok "fake agent listens" "$(cat "$work/agent.err")"; echo "$pass passed, $fail failed, $skip skipped"; exit 1; }

# run <want-rc> <description> <args...>: stdout in $out, stderr in $err
run() {
	local want=$1 desc=$2; shift 2
	"$ctl" --socket "$sock" "$@" >"$work/out" 2>"$work/err"
	rc=$?
	out=$(cat "$work/out"); err=$(cat "$work/err")
	if [ "$rc" -eq "$want" ]; then ok "$desc (exit $rc)"
	else nok "$desc: exit $rc, expected $want" "cmd: $*" "stdout: $out" "stderr: $err"; fi
}
# has <description> <text> <needle>
has() {
	if grep -qF -- "$3" <<<"$2"; then ok "$1"; else nok "$1" "missing: $3" "in: $2"; fi
}
# sent <description> <exact JSON of the last request, keys sorted>
sent() {
	local last; last=$(tail -n 1 "$log" | python3 -c 'import json,sys; r=json.load(sys.stdin); r.pop("id"); print(json.dumps(r, sort_keys=True))')
	if [ "$last" = "$2" ]; then ok "$1"; else nok "$1" "sent:     $last" "expected: $2"; fi
}

# --- success, human and JSON ---
run 0 "kms create" kms create --description "db root"
has "kms create: key: value output" "$out" "Key ID:          k-1"
sent "kms create sends its args" '{"args": {"description": "db root"}, "op": "kms.create"}'
run 0 "kms list" kms list
has "kms list: table header" "$out" "KEY ID  STATE     VERSION  CREATED                  DESCRIPTION"
has "kms list: second row" "$out" "k-22    disabled  1        2023-11-14 22:13:20 UTC  -"
run 0 "kms list --json" --json kms list
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert [k["key_id"] for k in d["keys"]]==["k-1","k-22"]' "$work/out"; then
	ok "kms list --json is the agent's result"; else nok "kms list --json is the agent's result" "$out"; fi
run 0 "kms schedule-deletion" kms schedule-deletion k-9 --days 7
sent "schedule-deletion sends days as a number" '{"args": {"days": 7, "key_id": "k-9"}, "op": "kms.schedule-deletion"}'
has "schedule-deletion shows the state" "$out" "State:           pending_deletion"
run 0 "kms destroy --now" kms destroy k-9 --now
sent "destroy sends now" '{"args": {"key_id": "k-9", "now": true}, "op": "kms.destroy"}'
run 0 "keyconfig create" keyconfig create kc1 --provider local --key k-1
sent "keyconfig create args" '{"args": {"key_ref": "k-1", "name": "kc1", "provider": "local"}, "op": "keyconfig.create"}'
run 0 "workspace bind" workspace bind ws1 --keyconfig kc1
has "workspace bind output" "$out" "Key configuration: kc1"
run 0 "workspace hook --signal" workspace hook ws1 --signal QUIT
sent "workspace hook sends the signal name" '{"args": {"signal": "QUIT", "workspace": "ws1"}, "op": "workspace.hook"}'
run 0 "workspace hook, every step" workspace hook ws1 --signal KILL --stop-units pg.service,w@1.service --command /usr/local/sbin/stop-node --timeout-ms 2500
sent "workspace hook args" '{"args": {"command": "/usr/local/sbin/stop-node", "signal": "KILL", "stop_units": ["pg.service", "w@1.service"], "timeout_ms": 2500, "workspace": "ws1"}, "op": "workspace.hook"}'
run 0 "workspace hook --clear" workspace hook ws1 --clear
sent "workspace hook --clear args" '{"args": {"clear": true, "workspace": "ws1"}, "op": "workspace.hook"}'
nreq=$(wc -l <"$log")
run 2 "workspace hook --clear with --signal" workspace hook ws1 --clear --signal KILL
has "clear alone is explained" "$err" "--clear removes the hook: give it alone"
run 2 "workspace hook without a step" workspace hook ws1 --timeout-ms 500
has "a hook needs a step" "$err" "expected --signal SIG"
run 2 "workspace hook --timeout-ms out of range" workspace hook ws1 --signal KILL --timeout-ms 5
if [ "$(wc -l <"$log")" -eq "$nreq" ]; then ok "refused hooks send nothing"; else nok "refused hooks send nothing"; fi
run 0 "check" check
sent "check without --cmk sends no argument" '{"args": {}, "op": "check"}'
has "check shows the canary's answer" "$out" "denied"
has "check shows the KMS calls" "$out" "KMS calls: 2"
has "check shows the key configuration probed and whether the denial counted" "$out" "KEYCONFIG   STATE    CANARY  OUTCOME  VERDICT  DENIALS  COUNTED"
run 0 "check --cmk" check --cmk k-7
sent "check --cmk args" '{"args": {"cmk": "k-7"}, "op": "check"}'
run 0 "kms deny" kms deny k-1
sent "kms deny args" '{"args": {"key_id": "k-1"}, "op": "kms.deny"}'
run 0 "kms allow" kms allow k-1
sent "kms allow args" '{"args": {"key_id": "k-1"}, "op": "kms.allow"}'
run 0 "workspace unbind prints nothing" workspace unbind ws1
if [ -z "$out" ]; then ok "result-less op is quiet"; else nok "result-less op is quiet" "$out"; fi
run 0 "format --batch --force" format /dev/sdb --workspace ws1 --project db1 --segment-size 1M --sector-size 4096 --batch --force
sent "format args (size in bytes, force)" '{"args": {"device": "/dev/sdb", "force": true, "project": "db1", "sector_size": 4096, "segment_size": 1048576, "workspace": "ws1"}, "op": "volume.format"}'
run 0 "format --batch" format /dev/sdb --workspace ws1 --project db1 --batch
sent "--batch is not sent, and does not mean force" '{"args": {"device": "/dev/sdb", "project": "db1", "workspace": "ws1"}, "op": "volume.format"}'
nreq=$(wc -l <"$log")
run 2 "format with --force but no --batch and no terminal" format /dev/sdb --workspace ws1 --project db1 --force </dev/null
has "format refusal says what to do" "$err" "pass --batch"
if [ "$(wc -l <"$log")" -eq "$nreq" ]; then ok "format without confirmation sends nothing"; else nok "format without confirmation sends nothing"; fi
run 0 "open" open /dev/sdb db1 --workspace ws1
has "open shows the mapped device" "$out" "Mapped device:     /dev/mapper/db1"
run 0 "cache" cache /dev/nvme0n1 c1 --workspace ws1 --segment-size 64M
sent "cache args" '{"args": {"device": "/dev/nvme0n1", "name": "c1", "segment_size": 67108864, "workspace": "ws1"}, "op": "cache.open"}'
run 0 "status" status
has "status table" "$out" "NAME  KIND     STATE   SEGMENTS  KEYS"
has "status kms calls" "$out" "KMS calls: unwrap=1"
has "status: CMK table header, aligned" "$out" "PROVIDER  CMK                                                                          KEYCONFIG   STATE    LAST PROBE               OUTCOME  DENIALS  FAIL-CLOSED AT           DETAIL"
has "status: a CMK in an outage with fail-closed armed" "$out" "aws-kms   arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab  -           keep     2024-05-01 12:00:00 UTC  unknown  0        2024-05-01 12:58:00 UTC  connect timed out"
has "status: a CMK with a denial counted, no deadline" "$out" "local     lk-0123456789abcdef0123456789abcdef                                          -           pending  2024-05-01 12:01:00 UTC  denied   1        -                        key is disabled"
has "status: a key configuration's own row (its canary) under the CMK" "$out" "local     lk-0123456789abcdef0123456789abcdef                                          finance-kc  revoke   2024-05-01 12:01:00 UTC  denied   2        -                        canary unwrap: denied"
run 0 "status --json" --json status
has "status --json carries the same CMK fields" "$out" '"fail_closed_at": 1714568280'
run 0 "status NAME" status db1
has "status NAME in detail" "$out" "Segment size:      1 MiB"
run 0 "rewrap" rewrap db1
run 0 "resize to a size" resize db1 --size 3G
sent "resize args: bytes" '{"args": {"name": "db1", "size": 3221225472}, "op": "volume.resize"}'
run 0 "resize to the whole device" resize db1
sent "resize without --size sends no size" '{"args": {"name": "db1"}, "op": "volume.resize"}'
run 2 "resize: a size that is not whole sectors" resize db1 --size 1000
has "resize: the message says what is expected" "$err" "a multiple of 512"
run 2 "resize: size 0" resize db1 --size 0
run 2 "resize: junk" resize db1 --size 12Q
run 0 "close" close db1
sent "close args" '{"args": {"name": "db1"}, "op": "volume.close"}'
run 0 "close --workspace (lakecrypttab units)" close db1 --workspace ws1
sent "close --workspace args" '{"args": {"name": "db1", "workspace": "ws1"}, "op": "volume.close"}'
# close --if-open, as lakecrypttab units stop (issue 11 review, finding 6):
# nothing open under the name is success, said; other failures stay.
run 0 "close --if-open of an open volume" close --if-open db1 --workspace ws1
sent "close --if-open args" '{"args": {"if_open": true, "name": "db1", "workspace": "ws1"}, "op": "volume.close"}'
[ -z "$out$err" ] && ok "close --if-open of an open volume: nothing said" || nok "close --if-open said something" "$out" "$err"
run 0 "close --if-open of a name nothing is open under" close notopen --workspace ws1 --if-open
has "close --if-open: said on stderr" "$err" 'lakecryptctl: close: no open volume is called "notopen": nothing to close (--if-open)'
run 1 "close --if-open: another failure is still one" close --if-open invalid-x --workspace ws1
run 4 "close --if-open: a refusal is still one" close --if-open refused-x
run 2 "close --if-open takes no value" close db1 --if-open=yes
"$ctl" close --help >"$work/out" 2>&1; has "close --help lists --if-open" "$(cat "$work/out")" "--if-open"
run 0 "revoke" revoke --cmk k-1
has "revoke lists the volumes" "$out" "Revoked cache1"
run 0 "revocation clear" revocation clear 0a1b --revision 5 --force
sent "revocation clear sends the record, the revision and force" '{"args": {"force": true, "record": "0a1b", "revision": 5}, "op": "revocation.clear"}'
run 0 "revocation list" revocation list
sent "revocation list sends no argument" '{"args": {}, "op": "revocation.list"}'
run 2 "revocation clear without RECORD" revocation clear
has "revocation clear without RECORD: what is expected" "$err" "missing RECORD: expected 'lakecryptctl revocation clear RECORD [--revision N] [--force]'"
run 0 "audit" audit --lines 5
has "audit table" "$out" "2024-05-01T12:00:00.000Z  0    open  success  workspace=ws1"
run 0 "--version" --version
has "--version output (the release in <linux/dm-lakecrypt.h>, as the packages)" "$out" "lakecryptctl $(awk '/LAKECRYPT_VERSION_(MAJOR|MINOR|PATCH)/ { v = v (v ? "." : "") $3 } END { print v }' "$top/include/uapi/linux/dm-lakecrypt.h")"
run 0 "format --help" format --help
has "format --help lists exit codes" "$out" "6  KMS unavailable"
# Each command whose synopsis in lakecryptctl(8) takes --header NAME|FILE
# says so in its --help (a name in the agent's header directory or a file).
hdr_cmds=$(sed -n 's/^    lakecryptctl \([a-z-]*\) .*\[--header NAME|FILE\].*/\1/p' Documentation/lakecryptctl.md | LC_ALL=C sort -u | paste -sd' ')
[ "$hdr_cmds" = "format migrate open rekey rekey-segment" ] || nok "lakecryptctl(8) synopsis: commands with --header NAME|FILE" "found: $hdr_cmds"
for c in $hdr_cmds; do
	run 0 "$c --help" "$c" --help
	if grep -qE -- '--header NAME\|FILE ' <<<"$out"; then ok "$c --help: --header NAME|FILE, as lakecryptctl(8)"
	else nok "$c --help: --header NAME|FILE, as lakecryptctl(8)" "$(grep -- --header <<<"$out")"; fi
done

# --- key lifecycle: rewrap --all, rotate-kek, shred, workspace rekey ---
run 0 "rewrap --all --keyconfig" rewrap --all --keyconfig kc1
sent "rewrap --all sends all and the filter" '{"args": {"all": true, "keyconfig": "kc1"}, "op": "volume.rewrap"}'
has "rewrap --all: one line per volume" "$out" "db2   rewrapped"
has "rewrap --all: totals" "$out" "2 done, 0 already, 0 failed"
run 1 "rewrap --all with a failed volume -> 1" rewrap --all --keyconfig partial-kc
has "the failed volume and why" "$out" "no header copy is authenticated"
has "the failure is said on stderr" "$err" "some volumes failed"
nreq=$(wc -l <"$log")
run 2 "rewrap with neither NAME nor --all" rewrap
run 2 "rewrap with NAME and --all" rewrap db1 --all
run 2 "rewrap NAME --keyconfig (needs --all)" rewrap db1 --keyconfig kc1
if [ "$(wc -l <"$log")" -eq "$nreq" ]; then ok "rewrap usage errors send nothing"; else nok "rewrap usage errors send nothing"; fi
run 0 "rotate-kek" rotate-kek db1
sent "rotate-kek args" '{"args": {"name": "db1"}, "op": "volume.rotate-kek"}'
has "rotate-kek shows the volume" "$out" "Mapped device:     /dev/mapper/db1"
run 0 "shred --batch" shred db1 --segment 2-4 --batch
sent "shred sends the range as given" '{"args": {"name": "db1", "segments": "2-4"}, "op": "volume.shred"}'
has "shred reports the zeroed range" "$out" "Zeroed:"
nreq=$(wc -l <"$log")
run 2 "shred without confirmation (no terminal)" shred db1 --segment 2 </dev/null
has "shred refusal says what to do" "$err" "pass --batch"
for bad in 4-2 x 1- -1 2-3-4 99999999999; do
	run 2 "shred --segment $bad is refused" shred db1 --segment "$bad" --batch
done
run 2 "shred without --segment" shred db1 --batch
if [ "$(wc -l <"$log")" -eq "$nreq" ]; then ok "shred usage errors send nothing"; else nok "shred usage errors send nothing"; fi
run 0 "workspace rekey" workspace rekey ws1 --keyconfig kc2
sent "workspace rekey args" '{"args": {"keyconfig": "kc2", "workspace": "ws1"}, "op": "workspace.rekey"}'
has "workspace rekey: per volume" "$out" "db1   rekeyed"
run 1 "workspace rekey with a failed volume -> 1" workspace rekey partial-ws --keyconfig kc2
run 2 "workspace rekey without --keyconfig" workspace rekey ws1
run 0 "rekey of a closed volume" rekey /dev/sdc --workspace ws1 --from kc1 --header h1
sent "rekey args" '{"args": {"device": "/dev/sdc", "from": "kc1", "header": "h1", "workspace": "ws1"}, "op": "volume.rekey"}'
run 2 "rekey without --from" rekey /dev/sdc --workspace ws1
run 0 "rekey-segment" rekey-segment /dev/sdc --workspace ws1 --segment 2-3
sent "rekey-segment args" '{"args": {"device": "/dev/sdc", "resume": false, "segments": "2-3", "workspace": "ws1"}, "op": "volume.rekey-segment"}'
has "rekey-segment reports the generation" "$out" "Generation:"
run 0 "rekey-segment --resume with a detached header" rekey-segment /dev/sdc --workspace ws1 --segment 2 --resume --header h1
sent "rekey-segment --resume args" '{"args": {"device": "/dev/sdc", "header": "h1", "resume": true, "segments": "2", "workspace": "ws1"}, "op": "volume.rekey-segment"}'
run 0 "rekey-segment --resume --accept-damaged-journal-sector" rekey-segment /dev/sdc --workspace ws1 --segment 2 --resume --accept-damaged-journal-sector 20
sent "rekey-segment --accept-damaged-journal-sector args" '{"args": {"accept_damaged_sector": 20, "device": "/dev/sdc", "resume": true, "segments": "2", "workspace": "ws1"}, "op": "volume.rekey-segment"}'
run 0 "rekey-segment --json" --json rekey-segment /dev/sdc --workspace ws1 --segment 2
has "rekey-segment JSON" "$out" '"rekeyed": 2'
nreq=$(wc -l <"$log")
for bad in 4-2 x 1- -1 2-3-4 99999999999 ""; do
	run 2 "rekey-segment --segment '$bad' is refused" rekey-segment /dev/sdc --workspace ws1 --segment "$bad"
	has "rekey-segment --segment '$bad': says what is wrong" "$err" "rekey-segment: --segment"
done
run 2 "rekey-segment without --segment" rekey-segment /dev/sdc --workspace ws1
has "rekey-segment without --segment: says so" "$err" "--segment N|A-B is required"
run 2 "rekey-segment without --workspace" rekey-segment /dev/sdc --segment 1
has "rekey-segment without --workspace: says so" "$err" "--workspace W is required"
run 2 "rekey-segment without DEVICE" rekey-segment --workspace ws1 --segment 1
has "rekey-segment without DEVICE: says so" "$err" "missing DEVICE"
run 2 "rekey-segment with a relative DEVICE" rekey-segment sdc --workspace ws1 --segment 1
has "rekey-segment relative DEVICE: says so" "$err" "must be an absolute path"
run 2 "rekey-segment --resume=yes" rekey-segment /dev/sdc --workspace ws1 --segment 1 --resume=yes
has "rekey-segment --resume takes no value" "$err" "--resume takes no value"
run 2 "rekey-segment with two DEVICEs" rekey-segment /dev/sdc /dev/sdd --workspace ws1 --segment 1
has "rekey-segment extra argument named" "$err" "unexpected argument \"/dev/sdd\""
run 2 "rekey-segment --segment twice" rekey-segment /dev/sdc --workspace ws1 --segment 1 --segment 2
run 2 "rekey-segment --accept-damaged-journal-sector without --resume" rekey-segment /dev/sdc --workspace ws1 --segment 1 --accept-damaged-journal-sector 20
has "rekey-segment --accept-damaged-journal-sector needs --resume: says so" "$err" "give it with --resume"
run 2 "rekey-segment --accept-damaged-journal-sector x" rekey-segment /dev/sdc --workspace ws1 --segment 1 --resume --accept-damaged-journal-sector x
run 2 "rekey-segment unknown option" rekey-segment /dev/sdc --workspace ws1 --segment 1 --force
has "rekey-segment unknown option named" "$err" "unknown option \"--force\""
if [ "$(wc -l <"$log")" -eq "$nreq" ]; then ok "rekey-segment usage errors send nothing"; else nok "rekey-segment usage errors send nothing"; fi

# --- agent errors map to exit codes ---
run 5 "denied by the KMS -> 5" kms describe denied-k
has "denied message" "$err" "lakecryptctl: kms describe: the KMS denied the use of key denied-k"
run 6 "KMS transient -> 6" kms describe transient-k
has "transient hint" "$err" "retry later"
# open and cache retry a transient error until --timeout runs out (review
# 11b #5): the boot units run them once, without Restart=.
nreq=$(wc -l <"$log")
run 6 "open: transient until --timeout runs out -> 6" --timeout 1 open /dev/sdb transient-x --workspace ws1
has "open: each retry is said" "$err" "lakecryptctl: open: attempt 1 failed; retrying in 0.250 s"
has "open: giving up is said" "$err" "lakecryptctl: open: giving up after"
if [ $(($(wc -l <"$log") - nreq)) -ge 2 ]; then ok "open: the transient error was retried"
else nok "open: the transient error was retried" "requests: $(($(wc -l <"$log") - nreq))"; fi
nreq=$(wc -l <"$log")
run 0 "open: a transient KMS error, then success" open /dev/sdb flaky-open --workspace ws1
has "open: the transient error and the retry are said" "$err" "the KMS did not answer for transient-flaky-open"
has "open: the retry is said" "$err" "open: attempt 1 failed; retrying in"
has "open: then the volume" "$out" "Mapped device:     /dev/mapper/db1"
if [ $(($(wc -l <"$log") - nreq)) -eq 2 ]; then ok "open: two requests (one retry)"
else nok "open: two requests (one retry)" "requests: $(($(wc -l <"$log") - nreq))"; fi
# An agent that hangs up mid-request (restarted, crashed): open is
# idempotent, so it is tried again (final issue-11 review, finding 8).
nreq=$(wc -l <"$log")
run 0 "open: the agent hangs up once, then answers" open /dev/sdb hangup-open --workspace ws1
has "open: the hang-up and the retry are said" "$err" "the agent closed the connection without answering"
if [ $(($(wc -l <"$log") - nreq)) -eq 2 ]; then ok "open after a hang-up: two requests (one retry)"
else nok "open after a hang-up: two requests (one retry)" "requests: $(($(wc -l <"$log") - nreq))"; fi
nreq=$(wc -l <"$log")
run 3 "open: the agent hangs up to the end of --timeout -> 3" --timeout 1 open /dev/sdb hangup --workspace ws1
if [ $(($(wc -l <"$log") - nreq)) -ge 2 ]; then ok "open: a hang-up is retried until --timeout"
else nok "open: a hang-up is retried until --timeout" "requests: $(($(wc -l <"$log") - nreq))"; fi
run 3 "kms describe: a hang-up is not retried (not open or cache) -> 3" kms describe hangup
run 0 "cache: a transient KMS error, then success" cache /dev/nvme0n1 flaky-cache --workspace ws1
has "cache: the retry is said" "$err" "cache: attempt 1 failed; retrying in"
run 0 "open --json: a transient error, then success" --json open /dev/sdb flaky-json --workspace ws1
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["name"]=="flaky-json"' "$work/out"; then
	ok "open --json: stdout is the result alone, no error object of the retried attempt"
else nok "open --json: stdout is the result alone" "$out"; fi
run 6 "open --json: transient to the end: the last error object" --json --timeout 1 open /dev/sdb transient-j --workspace ws1
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["class"]=="transient"' "$work/out"; then
	ok "open --json: one error object on stdout after the retries"
else nok "open --json: one error object on stdout after the retries" "$out"; fi
for c in "open /dev/sdb denied-x --workspace ws1:5" "open /dev/sdb invalid-x --workspace ws1:1" \
	"open /dev/sdb refused-x --workspace ws1:4" "cache /dev/sdb denied-c --workspace ws1:5" \
	"open /dev/sdb garbage --workspace ws1:1"; do
	nreq=$(wc -l <"$log")
	# shellcheck disable=SC2086  # the command and its arguments
	run "${c##*:}" "${c%% *}: ${c#* * }: fails at once, not retried" ${c%:*}
	if [ $(($(wc -l <"$log") - nreq)) -eq 1 ] && ! grep -q "retrying" <<<"$err"; then
		ok "${c%% *} ${c#* * }: one request, no retry"
	else nok "${c%% *} ${c#* * }: one request, no retry" "requests: $(($(wc -l <"$log") - nreq))" "$err"; fi
done
run 4 "refused (role) -> 4" kms disable refused-k
has "refused hint" "$err" "your role does not allow"
run 1 "invalid -> 1" close invalid-x
# The agent's lakecrypttab/uuid refusals are class invalid (issue 11): no role hint.
if grep -q "your role" <<<"$err"; then nok "invalid: no role hint" "in: $err"; else ok "invalid: no role hint"; fi
run 5 "--json error object on stdout" --json kms describe denied-k
has "--json error has the class" "$out" '"class": "denied"'
run 1 "malformed reply -> 1" close garbage
run 1 "reply with a wrong id -> 1" close wrongid
has "wrong id message" "$err" "wrong \"id\""
run 3 "agent hangs up -> 3" close hangup
has "hangup message" "$err" "closed the connection without answering"
run 3 "agent too slow for --timeout -> 3" --timeout 1 close slow

# --- usage errors ---
run 2 "unknown command" frobnicate
has "unknown command hint" "$err" "Try 'lakecryptctl --help'."
run 2 "bad --days" kms schedule-deletion k-1 --days 90
has "bad --days message" "$err" "--days must be a whole number from 7 to 30, got \"90\""
has "bad --days hint" "$err" "Try 'lakecryptctl kms schedule-deletion --help'."
run 2 "bad size" format /dev/sdb --workspace w --project p --segment-size 1.5M --batch
# Volume names the agent would refuse (lc_name_check(): 1 to 63 characters)
# are refused here with the agent's message and never sent; `table --name`
# takes any device-mapper name (1 to 127), since it only prints a table.
name63=$(printf 'v%.0s' $(seq 63)) name64=$(printf 'v%.0s' $(seq 64))
nreq=$(wc -l <"$log")
for c in "open /dev/sdb @ --workspace ws1" "cache /dev/sdb @ --workspace ws1" "close @" \
	"status @" "rewrap @" "rotate-kek @" "resize @" "shred @ --segment 0" "notify-revoked @"; do
	# shellcheck disable=SC2086  # the command and its arguments, @ the name
	set -- ${c/@/$name64}
	run 2 "${c%% *}: a 64-character volume name" "$@"
	has "${c%% *}: the agent's message for a 64-character name" "$err" "volume name \"$name64\" must be 1 to 63 characters long"
done
run 2 "open: a 127-character volume name" open /dev/sdb "$name64$name63" --workspace ws1
has "open: the agent's message for a 127-character name" "$err" "must be 1 to 63 characters long"
run 2 "open: a name the agent's grammar refuses" open /dev/sdb "it's" --workspace ws1
has "open: the agent's message for a bad character" "$err" "is not a valid name: expected characters from A-Z a-z 0-9 . _ -"
run 2 "open: the name control (/dev/mapper/control)" open /dev/sdb control --workspace ws1
has "open: control is reserved, said so (not the kernel's 'creating device control failed')" "$err" \
	"volume name \"control\" is reserved: /dev/mapper/control is device-mapper's own device"
if [ "$(wc -l <"$log")" -eq "$nreq" ]; then ok "refused volume names send nothing"; else nok "refused volume names send nothing" "$(tail -n 1 "$log")"; fi
run 0 "open: a 63-character volume name is sent" open /dev/sdb "$name63" --workspace ws1
sent "open: the 63-character name as given" "{\"args\": {\"device\": \"/dev/sdb\", \"name\": \"$name63\", \"workspace\": \"ws1\"}, \"op\": \"volume.open\"}"
"$ctl" --socket "$work/none.sock" table "$work/nothing" --name "$name64$name63" >"$work/out" 2>"$work/err"
if ! grep -q "characters" "$work/err"; then ok "table --name takes a 127-character device-mapper name"
else nok "table --name takes a 127-character device-mapper name" "$(cat "$work/err")"; fi

# --- agent unreachable ---
"$ctl" --socket "$work/none.sock" status >/dev/null 2>"$work/err"; rc=$?
if [ $rc -eq 3 ]; then ok "no agent -> 3"; else nok "no agent -> 3" "exit $rc" "$(cat "$work/err")"; fi
has "no agent message" "$(cat "$work/err")" "is lakecrypt-agent running?"

# --- open/cache started before the agent: they wait for it (review 11b #5) ---
# The open runs first, with --timeout 0 (lakecrypttab's timeout=0: no
# limit); once it has said its first retry (the event waited for), a fake
# agent comes up on the socket and the open succeeds.  Once on a missing
# socket (ENOENT: RuntimeDirectory not made yet), once on a stale one
# nobody listens on (ECONNREFUSED: RuntimeDirectoryPreserve= kept it while
# the agent restarts).  Bounded: 60 s for each event, then a failure.
late_agent_open() {	# late_agent_open <tag> <stale: 0|1> <command...>
	local tag=$1 stale=$2 lsock=$work/late-$1.sock cpid apid rc _; shift 2
	if [ "$stale" = 1 ]; then
		python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()' "$lsock"
		[ -S "$lsock" ] && ok "$tag: a stale socket nobody listens on" || nok "$tag: a stale socket nobody listens on"
	fi
	"$ctl" --socket "$lsock" --timeout 0 "$@" >"$work/late.out" 2>"$work/late.err" &
	cpid=$!
	for _ in $(seq 600); do grep -q "retrying in" "$work/late.err" && break; kill -0 $cpid 2>/dev/null || break; sleep 0.1; done
	if grep -q "retrying in" "$work/late.err"; then ok "$tag: lakecryptctl $1 waits for the agent, saying so"
	else nok "$tag: lakecryptctl $1 waits for the agent, saying so" "$(cat "$work/late.err")"; fi
	python3 tests/cli/fake-agent.py "$lsock" "$work/late.log" 2>"$work/late-agent.err" &
	apid=$!
	for _ in $(seq 600); do kill -0 $cpid 2>/dev/null || break; sleep 0.1; done
	if kill -0 $cpid 2>/dev/null; then
		kill $cpid; wait $cpid 2>/dev/null
		nok "$tag: lakecryptctl $1 finishes once the agent is up" "$(cat "$work/late.err")"
	else
		wait $cpid; rc=$?
		if [ $rc -eq 0 ] && grep -q "Mapped device:" "$work/late.out"; then ok "$tag: lakecryptctl $1 succeeds once the agent is up"
		else nok "$tag: lakecryptctl $1 succeeds once the agent is up" "exit $rc" "$(cat "$work/late.out" "$work/late.err")"; fi
	fi
	kill $apid 2>/dev/null; wait $apid 2>/dev/null
}
late_agent_open "open, socket missing" 0 open /dev/sdb db1 --workspace ws1
has "open, socket missing: the reason is said" "$(cat "$work/late.err")" "No such file or directory; is lakecrypt-agent running?"
late_agent_open "open, stale socket" 1 open /dev/sdb db1 --workspace ws1
has "open, stale socket: the reason is said" "$(cat "$work/late.err")" "Connection refused; is lakecrypt-agent running?"
late_agent_open "cache, stale socket" 1 cache /dev/nvme0n1 c1 --workspace ws1
"$ctl" --socket "$work/none.sock" --timeout 1 open /dev/sdb db1 --workspace ws1 >/dev/null 2>"$work/err"; rc=$?
if [ $rc -eq 3 ] && grep -q "giving up after" "$work/err"; then ok "open, no agent within --timeout -> 3, giving up said"
else nok "open, no agent within --timeout -> 3, giving up said" "exit $rc" "$(cat "$work/err")"; fi
: >"$work/file.sock"	# connect() to a regular file: ECONNREFUSED too
timeout 60 "$ctl" --socket "$work/file.sock" --timeout 0 open /dev/sdb db1 --workspace ws1 >/dev/null 2>"$work/err"; rc=$?
if [ $rc -ne 0 ] && ! grep -q "retrying" "$work/err"; then ok "open: a socket path that is no socket fails at once, even with --timeout 0 (exit $rc)"
else nok "open: a socket path that is no socket fails at once" "exit $rc" "$(cat "$work/err")"; fi

# --- local commands need no agent ---
"$ctl" --socket "$work/none.sock" dump "$work/nothing" >"$work/out" 2>"$work/err"; rc=$?
if [ $rc -eq 1 ]; then ok "dump of a missing file -> 1"; else nok "dump of a missing file -> 1" "exit $rc"; fi
if [ -s "$work/err" ]; then ok "dump error is explained"; else nok "dump error is explained"; fi

# --- lakecrypt-agent --check-config agrees with start-up -----------------------
# Each provider section the agent cannot set up: --check-config exits 1
# naming the section and why; the real agent, started on the same file,
# runs, shows that provider UNAVAILABLE with the same reason, refuses
# keyconfig create under it (misconfigured, not a denial: exit 1, never
# 5) and serves the local KMS.
agentbin=${LAKECRYPT_AGENT:-$(dirname "$ctl")/lakecrypt-agent}
cc_conf() {	# cc_conf <name> <section text>: a config under $work/cc-<name>
	local d=$work/cc-$1
	mkdir -p "$d/state" && chmod 700 "$d/state"
	printf '[agent]\nsocket = %s/agent.sock\nstate_dir = %s/state\naudit_log = %s/audit.log\naudit_fsync = no\nadmin_group = %s\n\n%b' \
		"$d" "$d" "$d" "$(id -gn)" "$2" >"$d/agent.conf"
	echo "$d"
}
# check_agrees <name> <section> <key_ref> <section text> <reason>
check_agrees() {
	local d rc apid out
	d=$(cc_conf "$1" "$4")
	"$agentbin" --check-config --config "$d/agent.conf" >"$d/cc.out" 2>"$d/cc.err"; rc=$?
	if [ $rc -eq 1 ] && grep -qF -- "[$2] unusable: " "$d/cc.err" && grep -qF -- "$5" "$d/cc.err" &&
	   grep -qF "syntax valid" "$d/cc.out"; then
		ok "--check-config: $1: exit 1, [$2] unusable: $5"
	else nok "--check-config: $1: exit 1, [$2] unusable: $5" "exit $rc" "$(cat "$d/cc.out" "$d/cc.err")"; fi
	"$agentbin" -c "$d/agent.conf" -f >"$d/agent.log" 2>&1 &
	apid=$!
	for _ in $(seq 100); do [ -S "$d/agent.sock" ] && break; kill -0 $apid 2>/dev/null || break; sleep 0.1; done
	out=$("$ctl" --socket "$d/agent.sock" status 2>&1)
	if grep -qF -- "Provider $2 UNAVAILABLE: " <<<"$out" && grep -qF -- "$5" <<<"$out"; then
		ok "agent with $1 starts; status: Provider $2 UNAVAILABLE: $5"
	else nok "agent with $1 starts; status names $2 unavailable" "$out" "$(cat "$d/agent.log")"; fi
	grep -qF -- "provider $2 is unavailable" "$d/agent.log" && grep -qF -- "$5" "$d/agent.log" &&
		ok "agent with $1: the start-up log says why $2 is unavailable" ||
		nok "agent with $1: the start-up log says why $2 is unavailable" "$(cat "$d/agent.log")"
	out=$("$ctl" --socket "$d/agent.sock" keyconfig create kc --provider "$2" --key "$3" 2>&1); rc=$?
	if [ $rc -eq 1 ] && grep -qF -- "provider \"$2\" is unavailable" <<<"$out" && grep -qF -- "$5" <<<"$out"; then
		ok "agent with $1: keyconfig create under $2 fails misconfigured (exit 1), with the reason"
	else nok "agent with $1: keyconfig create under $2 fails misconfigured (exit 1), with the reason" "exit $rc" "$out"; fi
	"$ctl" --socket "$d/agent.sock" kms create >/dev/null 2>&1 &&
		ok "agent with $1: the local KMS still works" || nok "agent with $1: the local KMS still works"
	kill $apid 2>/dev/null; wait $apid 2>/dev/null
	! grep -qE 'Sanitizer|runtime error' "$d/agent.log" "$d/cc.err" &&
		ok "agent with $1: no sanitizer report (ASan builds: LAKECRYPTCTL=build/agent-san/lakecryptctl)" ||
		nok "agent with $1: sanitizer report" "$(cat "$d/agent.log" "$d/cc.err")"
}
if [ -x "$agentbin" ]; then
	d=$(cc_conf valid '[kmip]\n# no server: not configured\n')
	"$agentbin" --check-config --config "$d/agent.conf" >"$d/cc.out" 2>&1 &&
		grep -qF "configuration valid" "$d/cc.out" && grep -qF "[kmip] not configured" "$d/cc.out" &&
		ok "--check-config: a usable file is valid, providers listed" || nok "--check-config valid" "$(cat "$d/cc.out")"
	# [revocation] whose watcher can never confirm (hostile review R5:
	# 600 s probes, the default 300 s window): --check-config and start-up
	# refuse it alike, naming the keys and what would work.
	rmsg="[revocation] confirm_denials = 2, watch_interval_s = 600, jitter_pct = 10: the watcher's denials span up to 660.00 s ((confirm_denials - 1) * watch_interval_s * (1 + jitter_pct/100)), more than confirm_window_s = 300: a revocation would never be confirmed; set watch_interval_s to at most 272 or confirm_window_s to at least 660"
	d=$(cc_conf revoke-never '[revocation]\nwatch_interval_s = 600\n')
	"$agentbin" --check-config --config "$d/agent.conf" >"$d/cc.out" 2>"$d/cc.err"; rc=$?
	if [ $rc -eq 1 ] && grep -qF -- "$d/agent.conf:9: $rmsg" "$d/cc.err" && ! grep -qF "valid" "$d/cc.out"; then
		ok "--check-config: watch_interval_s = 600 with a 300 s window: exit 1, keys and advice named"
	else nok "--check-config: watch_interval_s = 600 with a 300 s window: exit 1, keys and advice named" "exit $rc" "$(cat "$d/cc.out" "$d/cc.err")"; fi
	timeout 30 "$agentbin" -c "$d/agent.conf" -f >"$d/agent.log" 2>&1; rc=$?
	if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -qF -- "$rmsg" "$d/agent.log" && [ ! -S "$d/agent.sock" ]; then
		ok "agent start-up refuses the same file with the same message (exit $rc)"
	else nok "agent start-up refuses the same file with the same message" "exit $rc" "$(cat "$d/agent.log")"; fi
	d=$(cc_conf revoke-never7 '[revocation]\nconfirm_denials = 7\n')
	"$agentbin" --check-config --config "$d/agent.conf" >"$d/cc.out" 2>"$d/cc.err"; rc=$?
	if [ $rc -eq 1 ] && grep -qF -- "confirm_denials = 7, watch_interval_s = 60, jitter_pct = 10: the watcher's denials span up to 396.00 s" "$d/cc.err" &&
	   grep -qF -- "set watch_interval_s to at most 45 or confirm_window_s to at least 396" "$d/cc.err"; then
		ok "--check-config: confirm_denials = 7 with the default interval and window: exit 1, advice named"
	else nok "--check-config: confirm_denials = 7 with the default interval and window: exit 1" "exit $rc" "$(cat "$d/cc.out" "$d/cc.err")"; fi
	d=$(cc_conf revoke-edge '[revocation]\nwatch_interval_s = 250\njitter_pct = 20\n[kmip]\n# not configured\n')
	"$agentbin" --check-config --config "$d/agent.conf" >"$d/cc.out" 2>&1 && grep -qF "configuration valid" "$d/cc.out" &&
		ok "--check-config: the boundary (250 s + 20 % = exactly the 300 s window) is valid" ||
		nok "--check-config: the boundary is valid" "$(cat "$d/cc.out")"
	check_agrees azure-no-tenant azure-kv https://v.vault.azure.net/keys/k \
		'[azure-kv]\ncredentials = client-certificate\nclient_certificate_file = /nonexistent/az.pem\n' \
		"credentials client-certificate need tenant_id"
	check_agrees pkcs11-no-module pkcs11 lc-cmk \
		'[pkcs11]\nmodule = /nonexistent/libp11-x.so\ntoken_label = t\npin_file = /nonexistent/pin\n' \
		"[pkcs11] module /nonexistent/libp11-x.so cannot be loaded"
	: >"$work/some.pem"
	check_agrees kmip-no-key kmip 1 \
		"[kmip]\nserver = 127.0.0.1:5696\nca_bundle = $work/some.pem\nclient_cert = $work/some.pem\nclient_key = $work/no-such.key\n" \
		"[kmip] client_key $work/no-such.key cannot be read: No such file or directory"
	check_agrees gcp-no-key-file gcp-kms projects/p/locations/l/keyRings/r/cryptoKeys/k \
		"[gcp-kms]\ncredentials = service-account\nkey_file = $work/no-sa.json\n" \
		"[gcp-kms] key_file $work/no-sa.json cannot be read"
	# A name crypttab(5) or lakecrypttab(5) gives away: the real agent
	# refuses root's open as invalid (exit 1), with no "your role" hint,
	# since no role may (issue 11 review, finding 7).
	d=$(cc_conf names "[agent]\ncrypttab = $work/cc-names/crypttab\nlakecrypttab = $work/cc-names/lakecrypttab\n")
	printf 'data /dev/sdx none luks\n' >"$d/crypttab"
	printf 'ledger /dev/sdy other\n' >"$d/lakecrypttab"
	"$agentbin" -c "$d/agent.conf" -f >"$d/agent.log" 2>&1 &
	apid=$!
	for _ in $(seq 100); do [ -S "$d/agent.sock" ] && break; kill -0 $apid 2>/dev/null || break; sleep 0.1; done
	k=$("$ctl" --socket "$d/agent.sock" --json kms create 2>&1 | sed -n 's/.*"key_id": *"\([^"]*\)".*/\1/p')
	"$ctl" --socket "$d/agent.sock" keyconfig create kc --provider local --key "$k" >"$d/setup.log" 2>&1 &&
		"$ctl" --socket "$d/agent.sock" workspace bind ws1 --keyconfig kc >>"$d/setup.log" 2>&1 ||
		nok "names: key configuration and workspace set up" "$(cat "$d/setup.log" "$d/agent.log")"
	for c in "data:is listed in $d/crypttab line 1 (a dm-crypt volume systemd-cryptsetup opens under it)" \
		"ledger:belongs to workspace \"other\" ($d/lakecrypttab line 1)"; do
		out=$("$ctl" --socket "$d/agent.sock" open /dev/null "${c%%:*}" --workspace ws1 2>&1); rc=$?
		if [ $rc -eq 1 ] && grep -qF -- "${c#*:}" <<<"$out" && ! grep -q "your role" <<<"$out"; then
			ok "open under a name ${c#*:}: exit 1, no role hint"
		else nok "open under a name ${c#*:}: exit 1, no role hint" "exit $rc" "$out"; fi
	done
	# Revocation records are etcd's: the real agent on the file backend says so.
	for args in "revocation list" "revocation clear 0a1b --revision 4"; do
		# shellcheck disable=SC2086
		out=$("$ctl" --socket "$d/agent.sock" $args 2>&1); rc=$?
		if [ $rc -eq 1 ] && grep -qF "revocation records exist only with [registry] backend = etcd; this agent's registry is the file $d/state/registry.json" <<<"$out"; then
			ok "$args on the file backend: exit 1, records exist only with etcd"
		else nok "$args on the file backend: exit 1, records exist only with etcd" "exit $rc" "$out"; fi
	done
	kill $apid 2>/dev/null; wait $apid 2>/dev/null
	# `crypttab =` empty (lakecrypt-agent(8): a host without dm-crypt
	# volumes) is accepted and means none; and lakecryptctl without
	# --socket finds the agent at [agent] socket of the agent.conf the
	# generator's units and the udev rule share (LAKECRYPT_AGENT_CONF
	# here), an explicit --socket still winning (rev11a findings 2, 1).
	d=$(cc_conf sockconf "[agent]\ncrypttab =\n")
	sed -i "s|^socket = .*|socket = $d/moved.sock|" "$d/agent.conf"
	out=$("$agentbin" --check-config --config "$d/agent.conf" 2>&1); rc=$?
	if [ $rc -eq 0 ] && grep -qF "crypttab (none)" <<<"$out"; then
		ok "--check-config: \`crypttab =\` empty is accepted, as none"
	else nok "--check-config: \`crypttab =\` empty is accepted, as none" "exit $rc" "$out"; fi
	"$agentbin" -c "$d/agent.conf" -f >"$d/agent.log" 2>&1 &
	apid=$!
	for _ in $(seq 100); do [ -S "$d/moved.sock" ] && break; kill -0 $apid 2>/dev/null || break; sleep 0.1; done
	out=$(LAKECRYPT_AGENT_CONF=$d/agent.conf "$ctl" --timeout 5 ping 2>&1); rc=$?
	if [ $rc -eq 0 ]; then ok "no --socket: lakecryptctl uses [agent] socket of agent.conf"
	else nok "no --socket: lakecryptctl uses [agent] socket of agent.conf" "exit $rc" "$out" "$(cat "$d/agent.log")"; fi
	out=$(LAKECRYPT_AGENT_CONF=$d/agent.conf "$ctl" --timeout 1 --socket "$d/agent.sock" ping 2>&1); rc=$?
	if [ $rc -eq 3 ] && grep -qF "$d/agent.sock" <<<"$out"; then ok "an explicit --socket wins over agent.conf (exit 3)"
	else nok "an explicit --socket wins over agent.conf (exit 3)" "exit $rc" "$out"; fi
	kill $apid 2>/dev/null; wait $apid 2>/dev/null
	printf '[agent]\nsocket = relative\n' >"$d/bad.conf"
	out=$(LAKECRYPT_AGENT_CONF=$d/bad.conf "$ctl" --timeout 1 ping 2>&1); rc=$?
	if [ $rc -eq 1 ] && grep -qF "bad.conf:2" <<<"$out" && grep -qF -- "--socket" <<<"$out"; then
		ok "an agent.conf lakecryptctl cannot parse is named, with --socket as the way out"
	else nok "an agent.conf lakecryptctl cannot parse is named, with --socket as the way out" "exit $rc" "$out"; fi
	out=$(LAKECRYPT_AGENT_CONF=$d/none.conf "$ctl" --timeout 1 ping 2>&1); rc=$?
	if [ $rc -eq 3 ] && grep -qF "/run/lakecrypt/agent.sock" <<<"$out"; then
		ok "no agent.conf: the built-in socket"
	else nok "no agent.conf: the built-in socket" "exit $rc" "$out"; fi
else
	nok "lakecrypt-agent binary ($agentbin) is there (make -C agent builds it)"
fi

echo "1..$n"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
