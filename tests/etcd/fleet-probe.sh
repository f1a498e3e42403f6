# shellcheck shell=bash
# Sourced by tests/etcd/check.sh after fleet.sh (the cluster is up; ok,
# notok, check, run, ctl-like helpers are defined): shared probes
# (agent/daemon/fleet-probe.c, Documentation/etcd.md "Shared probes").
#
# Three ASan/UBSan agents, P1 to P3, share one AWS KMS CMK: local-kms (the
# AWS KMS test server of tests/kms) behind stunnel4 with the cluster's
# member certificate.  The KMS is counted where it answers: local-kms logs
# one line per DescribeKey ("Key described") and per Decrypt ("Decryption
# called"), the two calls of a probe (key state, canary).  The host has no
# device-mapper, so no volume is open: [test] watch_keyconfig makes the
# watcher probe key configuration kcp's CMK as if a volume used it.
tools=${LAKECRYPT_TOOLS:-/opt/lakecrypt-tools}
vpy=$tools/venv/bin/python3
lkms=$tools/bin/local-kms
for t in "$lkms" "$vpy" /usr/bin/stunnel4; do
	[ -x "$t" ] || { notok "probe: tool $t present (run make setup)"; finish; }
done
# lkms_serve, lkms_aws_conf (also used by fleet-revocation.sh, sourced after this file)
# shellcheck source=tests/kms/lib-local-kms.sh
. "$top/tests/kms/lib-local-kms.sh"
pk=$work/probe-kms
mkdir -p "$pk"
lkms_serve "$pk" "$ETCD_MEMBER_CERT" "$ETCD_MEMBER_KEY"
check "probe: local-kms on :$LKMS_PORT behind stunnel4 TLS :$LKMS_TLS_PORT" $? "$(cat "$pk"/lkms.err 2>/dev/null)"
bgpids+=("${LKMS_PIDS[@]}")
p_ktls=$LKMS_TLS_PORT
kadmin() { "$vpy" "$top/tests/kms/kms-admin.py" "https://127.0.0.1:$p_ktls" "$ETCD_CA" "$@" 2>&1; }
pkey=$(kadmin create)
[[ "$pkey" == arn:aws:kms:eu-west-2:111122223333:key/* ]]; check "probe: a CMK in local-kms: $pkey" $? "$pkey"
export AWS_ACCESS_KEY_ID=AKIDFAKE AWS_SECRET_ACCESS_KEY=fakeSecretKey/0123456789abcdefghijklmnopqrstu
unset AWS_SESSION_TOKEN AWS_PROFILE
# KMS calls on the CMK so far (DescribeKey + Decrypt: a probe makes one of each).
kms_calls() { grep -cE "(Key described|Decryption called): $pkey" "$pk/local-kms.log"; }

probe_prefix=/lcprobe-$$-$RANDOM/
probe_interval=3 probe_ttl=4 probe_window=30
probe_conf() {	# probe_conf NAME
	local d=$work/agent-$1
	{ cat <<EOF
log_level = debug

[kms]
retry_attempts = 1
deadline_ms = 5000

[revocation]
watch_interval_s = $probe_interval
confirm_denials = 2
confirm_window_s = 120

EOF
	  lkms_aws_conf "$ETCD_CA"; echo
	  etcd_registry_conf_quick "$probe_prefix"; cat <<EOF
backstop_interval_s = 600
probe_lease_s = $probe_ttl

[test]
watch_keyconfig = kcp
watch_pause_file = $d/wpause
EOF
	} | agent_conf "$d" "$(id -gn)"
}
# pj NAME EXPR: EXPR (python, p = status's registry.probes, u = its unit
# for kcp or {}) on NAME's status; $last is the printed value.
pj() {
	ctl "$1" --json status
	last=$(python3 -c 'import json, sys
d = json.loads(sys.stdin.read())
p = d.get("registry", {}).get("probes", {})
u = next((x for x in p.get("units", []) if x.get("keyconfig") == "kcp"), {})
print(eval(sys.argv[1]))' "$2" <<<"$last" 2>&1)
}
# pj_until NAME EXPR: up to 60 s for EXPR to print True.
pj_until() { for _ in $(seq 300); do pj "$1" "$2"; [ "$last" = True ] && return 0; sleep 0.2; done; return 1; }
holders() {	# the names among $@ whose status says they hold kcp's probe
	local h=() a
	for a in "$@"; do pj "$a" 'u.get("mine", False)'; [ "$last" = True ] && h+=("$a"); done
	echo "${h[*]}"
}

# ---- one agent ----------------------------------------------------------------------
for a in P1 P2 P3; do probe_conf $a; done
out=$("$agentbin" --check-config -c "$work/agent-P1/agent.conf" 2>&1)
grep -qF "[registry] shared probes: per CMK one agent probes every $probe_interval s (lease $probe_ttl s), the others at least every 600 s" <<<"$out"
check "probe: --check-config states the shared probes' intervals and lease" $? "$out"
fleet_start P1; check "probe: agent P1 started (shared probes, interval $probe_interval s, lease $probe_ttl s)" $?
ctl P1 keyconfig create kcp --provider aws-kms --key "$pkey"; check "probe: keyconfig kcp on the local-kms CMK" $? "$last"
pj_until P1 'u.get("mine") and u.get("published", 0) >= 2'
check "probe: P1 alone takes the probe lease and publishes its results" $? "$last"
c0=$(kms_calls); sleep $probe_window; c1=$(kms_calls)
rate1=$(( (c1 - c0) * 60 / probe_window ))
echo "# KMS requests/minute on the CMK, 1 agent: $rate1 ($((c1 - c0)) in $probe_window s; interval $probe_interval s, 2 calls a probe)"

# ---- three agents: one probes, the others skip ----------------------------------------
fleet_start P2 && fleet_start P3; check "probe: agents P2 and P3 started" $?
for a in P2 P3; do
	pj_until $a 'u.get("holder", "") != "" and not u.get("mine") and u.get("skipped", 0) >= 2'
	check "probe: $a sees P1's lease and results and skips its own probe" $? "$last"
done
run "${all[@]}" prefix "${probe_prefix}probe/"
n_keys=$(grep -c '^kv key=' <<<"$last"); lease_of=$(sed -n 's/^kv .* lease=\([0-9]*\)$/\1/p' <<<"$last")
[ "$n_keys" = 1 ] && [ -n "$lease_of" ] && [ "$lease_of" != 0 ]
check "probe: etcd holds exactly one probe/<unit> key, under a lease ($lease_of)" $? "$last"
pj P1 'u.get("own_probes", 0)'; h0=$last
pj P2 'u.get("own_probes", 0)'; o20=$last
pj P3 'u.get("own_probes", 0)'; o30=$last
c0=$(kms_calls); sleep $probe_window; c1=$(kms_calls)
pj P1 'u.get("own_probes", 0)'; h1=$last
pj P2 'u.get("own_probes", 0)'; o21=$last
pj P3 'u.get("own_probes", 0)'; o31=$last
rate3=$(( (c1 - c0) * 60 / probe_window ))
echo "# KMS requests/minute on the CMK, 3 agents sharing: $rate3 ($((c1 - c0)) in $probe_window s; probes: P1 $((h1 - h0)), P2 $((o21 - o20)), P3 $((o31 - o30)))"
hs=$(holders P1 P2 P3)
[ "$hs" = P1 ]; check "probe: with 3 agents and 1 CMK exactly one holds the lease (holders: '$hs')" $?
[ $((h1 - h0)) -ge 3 ] && [ $((o21 - o20 + o31 - o30)) -le 1 ]
check "probe: over $probe_window s the holder probed $((h1 - h0)) times, the two others $((o21 - o20 + o31 - o30)) times in all" $?
# Every KMS call on the CMK in the window is the holder's (2 a probe, +2 for one in flight).
[ $((c1 - c0)) -le $((2 * (h1 - h0) + 2)) ] && [ $((c1 - c0)) -ge 2 ]
check "probe: local-kms counted $((c1 - c0)) calls: the holder's $((h1 - h0)) probes, not 3 agents' ($rate3/min vs $rate1/min alone)" $?

# ---- hostile values under probe/ and probe-result/ ------------------------------------------
pj P2 'd["registry"]["bad_values"]'; bad0=$last
fake=$(printf 'a%.0s' $(seq 64))
run "${all[@]}" put "${probe_prefix}probe/not-a-unit" '{"v":1,"agent":"x"}'
run "${all[@]}" put "${probe_prefix}probe/$fake" '{"v":1,"agent":""}'
run "${all[@]}" put "${probe_prefix}probe-result/$fake" \
	'{"v":1,"agent":"x","provider":"aws-kms","key_ref":"k","keyconfig":"kcp","outcome":"ok","verdict":"keep","time":1,"seq":1}'
run "${all[@]}" put "${probe_prefix}probe-result/$fake" '{"v":1,"agent":"x","outcome":"unlock"}'
pj_until P2 "d['registry']['bad_values'] >= $bad0 + 4"
check "probe: a unit that is not 64 hex digits, a holder without agent, a result of another unit and one with an unknown outcome: refused and counted" $? "$last"
hs=$(holders P1 P2 P3)
[ "$hs" = P1 ]; check "probe: ...and the election stands (holder '$hs')" $?

# A writer under the prefix forges "ok" results for the unit, without the
# holder's lease, several times between two of the holder's: the others
# see them but do not skip their probes on them.
pj P1 'u.get("unit")'; unit=$last
pj P2 'u.get("own_probes", 0)'; o20=$last
pj P3 'u.get("own_probes", 0)'; o30=$last
forged=0
for _ in $(seq 60); do
	run "${all[@]}" put "${probe_prefix}probe-result/$unit" \
		"{\"v\":1,\"agent\":\"forger\",\"provider\":\"aws-kms\",\"key_ref\":\"$pkey\",\"keyconfig\":\"kcp\",\"outcome\":\"ok\",\"verdict\":\"keep\",\"time\":1,\"seq\":1}"
	pj P2 "u.get('own_probes', 0) >= $o20 + 2"; f2=$last
	pj P3 "u.get('own_probes', 0) >= $o30 + 2"
	[ "$f2" = True ] && [ "$last" = True ] && { forged=1; break; }
	sleep 0.2
done
hs=$(holders P1 P2 P3)
why="probing (the last result is not under the holder's lease)"
[ $forged = 1 ] && [ "$hs" = P1 ] && grep -qF "$why" "$work/agent-P2/agent.log" &&
	grep -qF "$why" "$work/agent-P3/agent.log"
check "probe: forged 'ok' results without the holder's lease spare no probe: P2 and P3 probe by themselves, saying why (holder still '$hs')" $? \
	"forged=$forged $(grep -h 'watcher: CMK' "$work"/agent-P[23]/agent.log | tail -4)"
pj_until P2 'u.get("last_result_agent") != "forger" and u.get("last_result") == "ok"'
check "probe: the holder's own results again once it probes" $? "$last"

# ---- the holder dies: another takes over ------------------------------------------------
hs=$(holders P1 P2 P3)
[ "$hs" = P1 ]; check "probe: P1 still holds the probe before it is killed" $?
pj P1 'p.get("agent")'; p1id=$last
t0=$(date +%s%N)
kill -KILL "$pid_P1"; wait "$pid_P1" 2>/dev/null
took=""
for _ in $(seq 300); do
	hs=$(holders P2 P3)
	if [ -n "$hs" ]; then took=$(( ($(date +%s%N) - t0) / 1000000 )); break; fi
	sleep 0.1
done
[ -n "$took" ] && [ "$(wc -w <<<"$hs")" = 1 ]
check "probe: P1 killed (-9): $hs took over in $took ms (lease $probe_ttl s + interval $probe_interval s = $(( (probe_ttl + probe_interval) * 1000 )) ms)" $?
echo "# takeover after the holder's death: $took ms (lease TTL $probe_ttl s + interval $probe_interval s)"
newh=$hs other=P2; [ "$newh" = P2 ] && other=P3
grep -q "the holder of CMK $pkey, key configuration kcp ($p1id) is gone" "$work/agent-$other/agent.log" &&
	grep -q "the holder of CMK $pkey, key configuration kcp ($p1id) is gone" "$work/agent-$newh/agent.log"
check "probe: both survivors saw the holder's key go with its lease and probed at once" $? "$(grep 'probe:' "$work"/agent-P[23]/agent.log | tail -5)"
pj_until "$newh" 'u.get("published", 0) >= 2'; check "probe: the new holder $newh publishes" $? "$last"
pj_until "$other" "u.get('holder') not in ('', '$p1id') and u.get('last_result') == 'ok' and u.get('last_result_agent') not in ('', '$p1id')"
check "probe: $other follows the new holder's results" $? "$last"

# ---- etcd down: each agent probes by itself ------------------------------------------------
for m in 1 2 3; do tests/etcd/cluster.sh kill "$work" $m; done
for a in P2 P3; do
	pj_until $a 'not d["registry"]["reachable"] or not p.get("etcd_ok")'
	check "probe: every member killed: $a knows etcd is unreachable" $? "$last"
done
pj P2 'u.get("own_probes", 0)'; o20=$last
pj P3 'u.get("own_probes", 0)'; o30=$last
c0=$(kms_calls)
pj_until P2 "u.get('own_probes', 0) >= $o20 + 3"; r2=$?
pj_until P3 "u.get('own_probes', 0) >= $o30 + 3"; r3=$?
c1=$(kms_calls)
[ $r2 = 0 ] && [ $r3 = 0 ]; check "probe: etcd down: P2 and P3 each probe the CMK by themselves (3 probes each)" $?
echo "# KMS calls while etcd was down: $((c1 - c0)) for 2 agents x 3 probes"
for m in 1 2 3; do tests/etcd/cluster.sh restart "$work" $m; done
for a in P2 P3; do
	pj_until $a 'd["registry"]["reachable"] and p.get("etcd_ok")'
	check "probe: members restarted: $a reaches etcd again" $? "$last"
done
fleet_start P1; check "probe: P1 started again" $?
pj_until P1 'u.get("holder", "") != ""'
hs=""
for _ in $(seq 150); do
	hs=$(holders P1 P2 P3)
	[ "$(wc -w <<<"$hs")" = 1 ] && break
	sleep 0.2
done
[ "$(wc -w <<<"$hs")" = 1 ]; check "probe: after etcd came back, again exactly one holder ($hs) of the 3 agents" $?

# ---- a denial the holder sees kills everywhere, through the record ---------------------------
holder=$hs others=()
for a in P1 P2 P3; do [ "$a" = "$holder" ] || others+=("$a"); done
for a in "${others[@]}"; do : >"$work/agent-$a/wpause"; done	# they probe nothing now
sleep 1
[ "$(kadmin disable "$pkey")" = Disabled ]; check "probe: botocore disables the CMK" $?
for a in P1 P2 P3; do
	until_seen $a status 'revocation records acted on [1-9]'
	check "probe: agent $a acts on the revocation record of the holder's confirmed denial" $? "$last"
done
grep -q "\"op\":\"cmk.revocation\".*\"cmk_id\":\"$pkey\"" "$work/agent-$holder/audit.log" ||
	grep -q "\"cmk_id\":\"$pkey\".*\"op\":\"cmk.revocation\"" "$work/agent-$holder/audit.log"
check "probe: the holder $holder confirmed the denial itself (cmk.revocation)" $? "$(tail -n 3 "$work/agent-$holder/audit.log")"
for a in "${others[@]}"; do
	! grep -q '"op":"cmk.revocation"' "$work/agent-$a/audit.log" &&
		grep -q '"op":"registry.revocation"' "$work/agent-$a/audit.log"
	check "probe: $a (not probing) killed through the record only (registry.revocation, no cmk.revocation)" $? "$(tail -n 3 "$work/agent-$a/audit.log")"
	pj $a 'u.get("last_result")'
	[ "$last" = denied ]; check "probe: $a saw the holder's published result 'denied' and did not act on it by itself" $? "$last"
done

for a in P1 P2 P3; do kill "$(eval echo "\$pid_$a")" 2>/dev/null; done
for a in P1 P2 P3; do wait "$(eval echo "\$pid_$a")" 2>/dev/null; done
for a in P2 P3 P1; do
	! grep -qE 'Sanitizer|runtime error' "$work/agent-$a/agent.log"
	check "probe: agent $a (ASan/UBSan) ran and stopped clean" $? "$(grep -A5 -E 'Sanitizer|runtime error' "$work/agent-$a/agent.log" | head -20)"
done
