# shellcheck shell=bash
# Sourced by tests/etcd/check.sh once the client's tests are done (the
# cluster is up, helpers ok/notok/check/run are defined): three agents,
# A, B and C, on this host sharing the 3-member cluster through
# [registry] backend = etcd (registry-etcd.h), built with ASan and UBSan.
#
# This host has no device-mapper, so the agents hold no volumes: what a
# revocation record does to an agent is shown by its status (records
# acted on), its audit log (registry.revocation) and its log; the kill of
# real volumes is the kill path the watcher uses (agent_revoke_matching),
# tested in tests/unit/test-agent.c with the fake kernel.

fleet_prefix=/lcfleet-$$-$RANDOM/
if out=$(make -s -C agent SAN=1 2>&1); then ok "fleet: build the agent and lakecryptctl (ASan+UBSan)"
else notok "fleet: build the agent and lakecryptctl (ASan+UBSan)" "$out"; finish; fi
agentbin=$top/build/agent-san/lakecrypt-agent ctlbin=$top/build/agent-san/lakecryptctl
fleet_pids=()

# agent_conf, etcd_registry_conf_quick (also used by fleet-probe.sh and
# fleet-revocation.sh, sourced after this file)
# shellcheck source=tests/kms/lib-agent.sh
. "$top/tests/kms/lib-agent.sh"

fleet_conf() {	# fleet_conf NAME: $work/agent-NAME/agent.conf
	local d=$work/agent-$1
	{ etcd_registry_conf_quick "$fleet_prefix"; cat <<EOF

[test]
registry_pause_file = $d/pause
EOF
	} | agent_conf "$d" "$(id -gn)"
}
fleet_start() {	# fleet_start NAME
	local d=$work/agent-$1
	rm -f "$d/agent.sock"
	"$agentbin" -c "$d/agent.conf" -f >>"$d/agent.log" 2>&1 &
	eval "pid_$1=$!"
	fleet_pids+=($!); bgpids+=($!)
	for _ in $(seq 200); do [ -S "$d/agent.sock" ] && return 0; sleep 0.1; done
	return 1
}
ctl() {	# ctl NAME ARGS...: $last is the output, the exit code returned
	local a=$1; shift
	last=$(timeout 60 "$ctlbin" --socket "$work/agent-$a/agent.sock" "$@" 2>&1)
}
# until_seen NAME ARGS... REGEX: up to 30 s for ctl's output to match
until_seen() {
	local a=$1 re=${!#}
	local args=("${@:2:$#-2}")
	for _ in $(seq 300); do
		ctl "$a" "${args[@]}"
		grep -qE -- "$re" <<<"$last" && return 0
		sleep 0.1
	done
	return 1
}
# until_gone NAME ARGS... REGEX: up to 30 s for ctl's output to stop matching
until_gone() {
	local a=$1 re=${!#}
	local args=("${@:2:$#-2}")
	for _ in $(seq 300); do
		ctl "$a" "${args[@]}"
		grep -qE -- "$re" <<<"$last" || return 0
		sleep 0.1
	done
	return 1
}

# ---- --check-config -----------------------------------------------------------------
fleet_conf A; fleet_conf B; fleet_conf C
out=$("$agentbin" --check-config -c "$work/agent-A/agent.conf" 2>&1)
grep -qF "[registry] etcd: $ETCD_ENDPOINTS, prefix $fleet_prefix (files read; no member contacted)" <<<"$out" &&
	grep -qF "configuration valid" <<<"$out"
check "fleet: --check-config reads [registry] (certificate, key, CA) without contacting etcd" $? "$out"
mkdir -p "$work/agent-bad"
sed "s|^ca = .*|ca = $work/nonexistent-ca.pem|" "$work/agent-A/agent.conf" >"$work/agent-bad/agent.conf"
out=$("$agentbin" --check-config -c "$work/agent-bad/agent.conf" 2>&1); rc=$?
[ $rc -eq 1 ] && grep -qF "[registry] unusable: [registry]: " <<<"$out" && grep -qF "nonexistent-ca.pem" <<<"$out" &&
	grep -qF "the agent would not start" <<<"$out"
check "fleet: --check-config with an unreadable CA: exit 1, [registry] unusable, the file named" $? "exit $rc: $out"
timeout 30 "$agentbin" -c "$work/agent-bad/agent.conf" -f >"$work/agent-bad/agent.log" 2>&1; rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -qF "nonexistent-ca.pem" "$work/agent-bad/agent.log"
check "fleet: the agent refuses to start on the same file, with the same reason (exit $rc)" $? "$(cat "$work/agent-bad/agent.log")"

# ---- three agents ---------------------------------------------------------------------
fleet_start A && fleet_start B && fleet_start C
check "fleet: agents A, B and C started on the cluster" $? "$(tail -n 5 "$work"/agent-*/agent.log)"
for a in A B C; do
	until_seen $a status 'Registry: etcd reachable, watch revision [0-9]+, last full read [0-9T:-]+Z, full reads 1,'
	check "fleet: agent $a status: etcd reachable, watch revision, last full read" $?
done

ctl A --json kms create; k1=$(sed -n 's/.*"key_id": "\([^"]*\)".*/\1/p' <<<"$last")
ctl A --json kms create; k2=$(sed -n 's/.*"key_id": "\([^"]*\)".*/\1/p' <<<"$last")
ctl A keyconfig create kc1 --key "$k1"; check "fleet: keyconfig create kc1 on A" $?
ctl A keyconfig create kc2 --key "$k2"; check "fleet: keyconfig create kc2 on A" $?
ctl A workspace bind ws1 --keyconfig kc1 --operators lakecrypt --devices '/dev/vd[b-z]'
check "fleet: workspace bind ws1 on A" $?
for a in B C; do
	until_seen $a keyconfig list 'kc1.*' && grep -q kc2 <<<"$last" && grep -qF "$k1" <<<"$last"
	check "fleet: agent $a sees A's key configurations kc1 and kc2 (same key references)" $?
	until_seen $a --json workspace list '"workspace": "ws1"' && grep -q '"keyconfig": "kc1"' <<<"$last" &&
		grep -qF '/dev/vd[b-z]' <<<"$last" && grep -q '"lakecrypt"' <<<"$last"
	check "fleet: agent $a sees A's binding ws1 -> kc1 with its operators and devices" $?
done
ctl B keyconfig create kc1 --key "$k1"; rc=$?
[ $rc -ne 0 ] && grep -q 'already exists' <<<"$last"
check "fleet: B cannot create kc1 again: it already exists (fleet-wide names)" $?
ctl C keyconfig delete kc1; rc=$?
[ $rc -ne 0 ] && grep -q 'bound to 1 workspace(s) (ws1)' <<<"$last"
check "fleet: C cannot delete kc1 while A's binding ws1 names it" $?
ctl C workspace unbind ws1; check "fleet: C unbinds ws1" $?
until_gone A workspace list 'ws1'; check "fleet: ...and A sees it gone" $?

# ---- racing admins ----------------------------------------------------------------------
# A stale copy (B's watch paused): B's bind of a workspace A just bound is
# refused as a conflict, nothing written; once B catches up it succeeds.
: >"$work/agent-B/pause"
sleep 2	# B's watch stops at its next message (progress every second)
ctl A workspace bind wsr --keyconfig kc1; check "fleet: A binds wsr -> kc1 while B's copy is stale" $?
ctl B workspace bind wsr --keyconfig kc2; rc=$?
[ $rc -ne 0 ] && grep -q "conflict: workspace \"wsr\"'s binding" <<<"$last" &&
	grep -q 'was changed on another node at the same time; nothing was written' <<<"$last"
check "fleet: B's bind of wsr on its stale copy: a clear conflict error, nothing written" $?
run "${all[@]}" get "${fleet_prefix}bindings/wsr"
grep -q '"keyconfig":"kc1"' <<<"$last"; check "fleet: etcd still holds A's binding wsr -> kc1" $?
rm -f "$work/agent-B/pause"
until_seen B --json workspace list '"keyconfig": "kc1"'; check "fleet: B catches up after its pause" $?
ctl B workspace bind wsr --keyconfig kc2; check "fleet: B's bind again, on a fresh copy: done" $?
until_seen A --json workspace list '"keyconfig": "kc2"'; check "fleet: ...and A sees wsr -> kc2" $?
ctl C --json kms create; kc_c=$(sed -n 's/.*"key_id": "\([^"]*\)".*/\1/p' <<<"$last")
: >"$work/agent-C/pause"; sleep 2
ctl A keyconfig create kc3 --key "$k1"; check "fleet: A creates kc3 while C's copy is stale" $?
ctl C keyconfig create kc3 --key "$kc_c"; rc=$?
[ $rc -ne 0 ] && grep -q 'conflict: key configuration "kc3" was created on another node at the same time' <<<"$last"
check "fleet: C's create of kc3 on its stale copy: a conflict, A's kc3 kept" $?
ctl A workspace bind ws3 --keyconfig kc3; check "fleet: A binds ws3 -> kc3" $?
rm -f "$work/agent-C/pause"; until_seen C --json workspace list '"workspace": "ws3"'
check "fleet: C catches up (kc3, ws3)" $?
# Racing for real: A and B bind 8 workspaces each at the same time, and
# both bind the same 8 others; none is lost, and where both bound the same
# workspace each either won or got a conflict.
races=8
for i in $(seq $races); do
	( ctl A workspace bind "ra-$i" --keyconfig kc1 >/dev/null; echo "$?:$last" >"$work/ra-$i" ) &
	( ctl B workspace bind "rb-$i" --keyconfig kc2 >/dev/null; echo "$?:$last" >"$work/rb-$i" ) &
	( ctl A workspace bind "same-$i" --keyconfig kc1; echo "$?" >"$work/sa-$i"; echo "$last" >"$work/sa-$i.out" ) &
	( ctl B workspace bind "same-$i" --keyconfig kc2; echo "$?" >"$work/sb-$i"; echo "$last" >"$work/sb-$i.out" ) &
done
wait_ok=0
for _ in $(seq 600); do
	nd=0; for f in "$work"/ra-* "$work"/rb-* "$work"/sa-? "$work"/sb-?; do [ -s "$f" ] && nd=$((nd + 1)); done
	[ $nd -eq $((4 * races)) ] && { wait_ok=1; break; }
	sleep 0.1
done
[ $wait_ok = 1 ]; check "fleet: the $((4 * races)) racing binds all answered" $?
run "${all[@]}" prefix "${fleet_prefix}bindings/"
lost=0
for i in $(seq $races); do
	grep -q "bindings/ra-$i=" <<<"$(kvs)" || lost=$((lost + 1))
	grep -q "bindings/rb-$i=" <<<"$(kvs)" || lost=$((lost + 1))
done
[ $lost = 0 ]; check "fleet: racing binds of different workspaces on A and B: none lost ($((2 * races)) in etcd)" $? "$last"
bad=0 conflicts=0
for i in $(seq $races); do
	ra=$(cat "$work/sa-$i") rb=$(cat "$work/sb-$i")
	v=$(echo "$last" | sed -n "s|^kv key=${fleet_prefix}bindings/same-$i value=\([^ ]*\) .*|\1|p")
	for s in a b; do
		rc=$(cat "$work/s$s-$i")
		if [ "$rc" != 0 ] && ! grep -q 'conflict: ' "$work/s$s-$i.out"; then bad=$((bad + 1)); fi
		[ "$rc" != 0 ] && conflicts=$((conflicts + 1))
	done
	# Both failed: lost. One failed: the other's keyconfig is in etcd.
	if [ "$ra" != 0 ] && [ "$rb" != 0 ]; then bad=$((bad + 1)); fi
	if [ "$ra" = 0 ] && [ "$rb" != 0 ] && ! grep -q '"keyconfig":"kc1"' <<<"$v"; then bad=$((bad + 1)); fi
	if [ "$rb" = 0 ] && [ "$ra" != 0 ] && ! grep -q '"keyconfig":"kc2"' <<<"$v"; then bad=$((bad + 1)); fi
	[ -n "$v" ] || bad=$((bad + 1))
done
[ $bad = 0 ]
check "fleet: A and B binding the same $races workspaces at once: each ends bound, a loser always gets a conflict error ($conflicts conflict(s))" $? "$last"

# ---- revocation records ------------------------------------------------------------------
ctl A revoke --cmk "$k1"; rc=$?
[ $rc = 0 ] && grep -qE "Revocation record written for the fleet: ${fleet_prefix}revocations/[0-9a-f]{64}" <<<"$last"
check "fleet: revoke --cmk on A (no volume of its own under it) writes the revocation record" $? "$last"
for a in B C; do
	until_seen $a status 'revocation records acted on 1 '
	check "fleet: agent $a acts on A's record (status: records acted on 1)" $?
	grep -q "\"op\":\"registry.revocation\".*\"cmk_id\":\"$k1\"" "$work/agent-$a/audit.log" ||
		grep -q "\"cmk_id\":\"$k1\".*\"op\":\"registry.revocation\"" "$work/agent-$a/audit.log"
	check "fleet: agent $a's audit log has registry.revocation for the CMK" $? "$(tail -n 3 "$work/agent-$a/audit.log")"
	grep -q "revocation record from agent .*volume(s) under CMK $k1 killed" "$work/agent-$a/agent.log"
	check "fleet: agent $a's log says it killed its volumes under the CMK" $? "$(tail -n 5 "$work/agent-$a/agent.log")"
done
ctl B --json status
grep -q "\"key_ref\": \"$k1\"" <<<"$last" && grep -q '"revocations_seen": 1' <<<"$last" &&
	grep -q '"records_acted": 1' <<<"$last"
check "fleet: B's status lists the record (the CMK as revoke --cmk named it)" $? "$last"
ctl A revoke --keyconfig kc2; check "fleet: revoke --keyconfig kc2 on A" $?
until_seen C status 'revocation records acted on 2 '; check "fleet: C acts on the second record" $?

# A forged or malformed record is refused and counted; it changes nothing.
run "${all[@]}" put "${fleet_prefix}keyconfigs/evil" '{"v":1,"name":"other","provider":"local","key_ref":"x","cmk_id":"x","created":1}'
run "${all[@]}" put "${fleet_prefix}bindings/evil2" 'not json'
until_seen C --json status '"bad_values": 2'; check "fleet: values that do not match their key or do not parse are refused and counted" $?
ctl C keyconfig list; ! grep -qE 'evil|other' <<<"$last"; check "fleet: ...and are not in the copy" $?

# ---- members killed -----------------------------------------------------------------------
tests/etcd/cluster.sh kill "$work" 1
ctl A workspace bind wk1 --keyconfig kc1
for _ in $(seq 10); do grep -q 'outcome unknown\|not written' <<<"$last" || break; sleep 1; ctl A workspace bind wk1 --keyconfig kc1; done
until_seen B --json workspace list '"workspace": "wk1"'
check "fleet: member 1 killed: a bind on A still reaches B" $?
ctl C status; grep -q 'Registry: etcd reachable' <<<"$last"; check "fleet: member 1 killed: C still says etcd reachable" $? "$last"
tests/etcd/cluster.sh kill "$work" 2; tests/etcd/cluster.sh kill "$work" 3
for a in A B C; do
	until_seen $a status 'Registry: etcd UNREACHABLE'
	check "fleet: every member killed: agent $a's status says etcd unreachable" $?
done
grep -q 'Registry etcd unreachable since [0-9]* (epoch s): .*the agent works on its copy' <<<"$last"
check "fleet: ...with since when and why" $? "$last"
ctl B keyconfig list; grep -q kc1 <<<"$last"; check "fleet: etcd down: B still answers from its copy" $?
ctl B workspace bind wdown --keyconfig kc1; rc=$?
[ $rc -ne 0 ] && grep -q 'registry (etcd): the binding of workspace "wdown" not written' <<<"$last"
check "fleet: etcd down: a bind fails with what was not written (exit $rc)" $? "$last"
for m in 1 2 3; do tests/etcd/cluster.sh restart "$work" $m; done
for a in A B C; do
	until_seen $a status 'Registry: etcd reachable'
	check "fleet: members restarted: agent $a reachable again" $?
done
ctl A workspace bind wup --keyconfig kc1
for _ in $(seq 10); do grep -q 'not written' <<<"$last" || break; sleep 1; ctl A workspace bind wup --keyconfig kc1; done
until_seen C --json workspace list '"workspace": "wup"'; check "fleet: after the restart, C's watch catches up (A's new binding)" $?

# ---- compaction -----------------------------------------------------------------------------
: >"$work/agent-C/pause"; sleep 2
ctl A workspace bind wc1 --keyconfig kc1; ctl A workspace bind wc2 --keyconfig kc2; ctl A workspace unbind wup
run "${all[@]}" prefix "${fleet_prefix}"; rnow=$(field revision | cut -d' ' -f1)
run "${all[@]}" compact "$rnow"; grep -q '^result ok' <<<"$last"; check "fleet: compacted up to $rnow while C's watch waits" $?
rm -f "$work/agent-C/pause"
until_seen C --json status '"compactions": 1'; check "fleet: C's watch finds its revision compacted" $?
# The count goes up before the re-read: wait for the read itself.
until_seen C --json status '"full_reads": 2'; check "fleet: ...and reads everything again (full reads 2)" $? "$last"
ctl C --json workspace list
grep -q '"workspace": "wc1"' <<<"$last" && grep -q '"workspace": "wc2"' <<<"$last" && ! grep -q '"workspace": "wup"' <<<"$last"
check "fleet: after the re-read C has wc1 and wc2, and wup is gone" $?

# ---- the file backend is untouched; the agents stop cleanly ------------------------------
for p in "${fleet_pids[@]}"; do kill "$p" 2>/dev/null; done
for p in "${fleet_pids[@]}"; do wait "$p" 2>/dev/null; done
for a in A B C; do
	! grep -qE 'Sanitizer|runtime error' "$work/agent-$a/agent.log"
	check "fleet: agent $a (ASan/UBSan) ran and stopped clean" $? "$(grep -A5 -E 'Sanitizer|runtime error' "$work/agent-$a/agent.log" | head -20)"
done
[ ! -e "$work/agent-A/state/registry.json" ]; check "fleet: with etcd, no registry.json is written" $?
