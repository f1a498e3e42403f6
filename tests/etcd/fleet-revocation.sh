# shellcheck shell=bash
# Sourced by tests/etcd/check.sh after fleet-probe.sh (the cluster, and
# local-kms behind stunnel4 with kadmin, are up; ok, notok, check, run,
# fleet_start, ctl, until_seen are defined): `lakecryptctl revocation list`
# and `revocation clear` (agent/daemon/ops-revocation.c,
# agent/lib/revocation-admin.c; Documentation/etcd.md "Revocation
# records").
#
# Two ASan/UBSan agents, R1 (the admin's node, A) and R2 (B), on a prefix
# of their own, with one AWS KMS CMK in local-kms that both can ask.  This
# host has no device-mapper, so the agents hold no volume: that R2 acts on
# a record is shown by its status ("revocation records acted on N"), its
# audit log (registry.revocation) and its log; the kill of a real volume
# by a record is tests/e2e/etcd.sh (QEMU).  A full re-read of the registry
# is forced as fleet.sh does: R2's watch paused, the revision compacted.

rev_prefix=/lcrev-$$-$RANDOM/
# agent_conf, etcd_registry_conf_quick (tests/kms/lib-agent.sh, sourced by
# fleet.sh); lkms_aws_conf and the KMS (lib-local-kms.sh, fleet-probe.sh)
rev_conf() {	# rev_conf NAME
	local d=$work/agent-$1
	{ cat <<EOF
[kms]
retry_attempts = 1
deadline_ms = 5000

[revocation]
confirm_denials = 5
confirm_window_s = 3600

EOF
	  lkms_aws_conf "$ETCD_CA"; echo
	  etcd_registry_conf_quick "$rev_prefix"; cat <<EOF

[test]
registry_pause_file = $d/pause
EOF
	} | agent_conf "$d" "$(id -gn)"
}
# rj NAME EXPR: EXPR (python; d = the JSON of `revocation list --json`,
# r = its first record or {}) on NAME; $last is the printed value.
rj() {
	ctl "$1" --json revocation list
	last=$(python3 -c 'import json, sys
d = json.loads(sys.stdin.read())
r = (d.get("records") or [{}])[0]
print(eval(sys.argv[1]))' "$2" <<<"$last" 2>&1)
}
acted() {	# acted NAME: R's "records_acted" from status
	ctl "$1" --json status
	python3 -c 'import json, sys; print(json.loads(sys.stdin.read())["registry"]["records_acted"])' <<<"$last" 2>&1
}
# reread NAME: force a full read of the registry on NAME (its watch paused,
# one write, the revision compacted, the watch let go) and wait for it.
rev_compactions=0
reread() {
	local d=$work/agent-$1 reads rnow
	ctl "$1" --json status
	reads=$(python3 -c 'import json, sys; print(json.loads(sys.stdin.read())["registry"]["full_reads"])' <<<"$last")
	: >"$d/pause"; sleep 2
	# The message that finds the pause file is applied, the next are not.
	run "${all[@]}" put "${rev_prefix}other/tick" "$RANDOM"; sleep 1
	run "${all[@]}" put "${rev_prefix}other/tick" "$RANDOM"
	run "${all[@]}" prefix "${rev_prefix}"; rnow=$(field revision | cut -d' ' -f1)
	run "${all[@]}" compact "$rnow"
	rm -f "$d/pause"
	rev_compactions=$((rev_compactions + 1))
	until_seen "$1" --json status "\"full_reads\": $((reads + 1))"
}

rev_conf R1; rev_conf R2
fleet_start R1 && fleet_start R2; check "revocation: agents R1 and R2 started on prefix $rev_prefix" $?
rkey=$(kadmin create)
[[ "$rkey" == arn:aws:kms:* ]]; check "revocation: a CMK in local-kms for both: $rkey" $? "$rkey"
ctl R1 keyconfig create kcr --provider aws-kms --key "$rkey"; check "revocation: keyconfig kcr on R1" $? "$last"
until_seen R2 keyconfig list 'kcr'; check "revocation: R2 sees kcr" $?

# ---- empty, then A revokes and B acts --------------------------------------------------------
ctl R2 revocation list
grep -qF "No revocation records under ${rev_prefix}revocations/" <<<"$last"
check "revocation: list on R2 with no record says so" $? "$last"
ctl R1 revoke --keyconfig kcr; check "revocation: R1 revokes kcr (the record goes to etcd)" $? "$last"
until_seen R2 status 'revocation records acted on 1 '; check "revocation: R2 acts on R1's record" $?
rhash=$(printf '%s' "$rkey" | sha256sum | cut -d' ' -f1)
ctl R2 revocation list
grep -qE "^Id: +$rhash\$" <<<"$last" && grep -qE '^Provider: +aws-kms$' <<<"$last" &&
	grep -qF "$rkey" <<<"$last" && grep -qE '^Key configuration: +-$' <<<"$last" &&
	grep -qE '^Scope: +whole CMK$' <<<"$last" && grep -qE "^Agent: +$(hostname)\$" <<<"$last" &&
	grep -qE '^Cause: +revoked by uid 0 \(key configuration kcr' <<<"$last" &&
	grep -qE '^Time: +20[0-9-]+ [0-9:]+ UTC$' <<<"$last" && grep -qE '^Mod revision: +[0-9]+$' <<<"$last" &&
	grep -qF "1 record(s) at etcd revision" <<<"$last"
check "revocation: list on R2 shows the record: id (SHA-256 of the CMK), provider, CMK, scope (revoke --keyconfig writes the whole CMK's), agent, cause, time, mod_revision" $? "$last"
rj R2 'r["mod_revision"]'; mod1=$last
rj R2 'r["id"] == "'"$rhash"'" and r["valid"] and r["hash_ok"] and r["key"] == "'"${rev_prefix}revocations/$rhash"'" and r["keyconfig"] == "" and r["scope"] == "whole CMK" and r["key_ref"] == "'"$rkey"'" and d["revision"] >= r["mod_revision"]'
[ "$last" = True ]; check "revocation: list --json: id, key, valid, hash_ok, key_ref, keyconfig, mod_revision ($mod1) at the read's revision" $? "$last"

# Until cleared, every full read acts on it again.
a0=$(acted R2)
reread R2; check "revocation: a full re-read on R2 (compaction while its watch waited)" $? "$last"
a1=$(acted R2)
[ "$a1" = $((a0 + 1)) ]; check "revocation: ...acts on the record again (records acted on $a0 -> $a1)" $?

# ---- clear: a stale revision is refused ----------------------------------------------------
ctl R1 revoke --keyconfig kcr; check "revocation: R1 revokes kcr again: the record is written again" $?
until_seen R2 --json revocation list '"mod_revision": [0-9]+' && rj R2 'r["mod_revision"]'
for _ in $(seq 100); do rj R2 'r["mod_revision"]'; [ "$last" != "$mod1" ] && break; sleep 0.1; done
mod2=$last
[ "$mod2" -gt "$mod1" ]; check "revocation: list shows the new mod_revision ($mod1 -> $mod2)" $?
ctl R2 revocation clear "$rhash" --revision "$mod1"; rc=$?
[ $rc = 1 ] && grep -qF "was written again since revision $mod1 (now revision $mod2, by agent $(hostname)" <<<"$last" &&
	grep -qF "nothing deleted" <<<"$last"
check "revocation: clear at the revision seen before (stale): refused, exit 1, the revision now named" $? "exit $rc: $last"
run "${all[@]}" get "${rev_prefix}revocations/$rhash"
grep -q "^kv key=${rev_prefix}revocations/$rhash .* mod=$mod2 " <<<"$last"
check "revocation: ...and etcd still holds the record" $? "$last"

# ---- clear while the KMS denies: refused unless forced ---------------------------------------
[ "$(kadmin disable "$rkey")" = Disabled ]; check "revocation: botocore disables the CMK" $?
ctl R2 revocation clear "$rhash" --revision "$mod2"; rc=$?
[ $rc = 5 ] && grep -qF "the KMS still denies CMK" <<<"$last" && grep -qF "stays" <<<"$last" &&
	grep -qF -- "--force" <<<"$last"
check "revocation: clear while the KMS denies the CMK: refused (exit 5), --force named" $? "exit $rc: $last"
rj R2 'len(d["records"]) == 1 and r["id"] == "'"$rhash"'"'
[ "$last" = True ]; check "revocation: ...the record stays" $? "$last"
[ "$(kadmin enable "$rkey")" = Enabled ]; check "revocation: botocore enables the CMK again" $?

# ---- clear at the right revision ------------------------------------------------------------
rj R2 'r["mod_revision"]'; mod3=$last
ctl R2 revocation clear "$rhash" --revision "$mod3"; rc=$?
[ $rc = 0 ] && grep -qF "Cleared ${rev_prefix}revocations/$rhash (it was at mod_revision $mod3)" <<<"$last" &&
	grep -qF "KMS check: granted" <<<"$last" && grep -qF "Nothing was reopened" <<<"$last" &&
	! grep -q "Warning" <<<"$last"
check "revocation: clear at the revision shown, the KMS granting: deleted, KMS check granted" $? "exit $rc: $last"
run "${all[@]}" prefix "${rev_prefix}revocations/"
! grep -q '^kv key=' <<<"$last"; check "revocation: etcd holds no record any more" $? "$last"
ctl R1 revocation list; grep -qF "No revocation records" <<<"$last"
check "revocation: R1's list agrees" $? "$last"
a2=$(acted R2)
reread R2; check "revocation: another full re-read on R2" $? "$last"
a3=$(acted R2)
[ "$a3" = "$a2" ]; check "revocation: ...no longer acts on it (records acted on stays $a2)" $? "$a2 -> $a3"
grep -c '"op":"registry.revocation"' "$work/agent-R2/audit.log" >"$work/rev-n"
[ "$(cat "$work/rev-n")" = "$a3" ]; check "revocation: R2's audit has one registry.revocation per record acted on ($a3)" $? "$(cat "$work/rev-n")"
grep '"op":"registry.revocation.clear"' "$work/agent-R2/audit.log" | grep '"outcome":"success"' | grep -qF "deleted at mod_revision $mod3"
check "revocation: the clear is audited (registry.revocation.clear, success, the revision)" $? "$(tail -n 3 "$work/agent-R2/audit.log")"
[ "$(grep '"op":"registry.revocation.clear"' "$work/agent-R2/audit.log" | grep -c '"outcome":"failure"')" = 2 ]
check "revocation: ...and so are the two refusals (stale, KMS denied)" $? "$(grep revocation.clear "$work/agent-R2/audit.log")"
ctl R2 revocation clear "$rhash"; rc=$?
[ $rc = 1 ] && grep -qF "there is no revocation record ${rev_prefix}revocations/$rhash" <<<"$last"
check "revocation: clearing it again: there is none (exit 1)" $? "exit $rc: $last"

# ---- clear without --revision; a CMK no key configuration names --------------------------------
ctl R1 revoke --cmk other-cmk-7; check "revocation: R1 revokes a CMK no key configuration names" $? "$last"
ohash=$(printf '%s' other-cmk-7 | sha256sum | cut -d' ' -f1)
until_seen R2 revocation list "$ohash"; check "revocation: R2 lists it" $?
ctl R2 revocation clear "${rev_prefix}revocations/$ohash"; rc=$?
[ $rc = 0 ] && grep -qE "Cleared ${rev_prefix}revocations/$ohash \(it was at mod_revision [0-9]+\)" <<<"$last" &&
	grep -qF "KMS check: not checked (no key configuration in the registry names CMK other-cmk-7" <<<"$last" &&
	grep -qF "Warning: the CMK was not confirmed at the KMS" <<<"$last"
check "revocation: clear by its whole key, no --revision: reads it, says the revision it deleted and warns the CMK was not checked" $? "exit $rc: $last"

# ---- hostile records and bad ids -------------------------------------------------------------
run "${all[@]}" put "${rev_prefix}revocations/forged-1" 'not json'
until_seen R2 revocation list 'forged-1'
grep -qE '^Valid: +no$' <<<"$last" && grep -qE '^Error: +value is not a JSON object$' <<<"$last"
check "revocation: a value that is no record is listed as not valid, with why" $? "$last"
ctl R2 --json revocation clear forged-1; rc=$?
[ $rc = 0 ] && grep -q '"kms_check": "not checked"' <<<"$last" && grep -q 'the record is not valid' <<<"$last"
check "revocation: ...and can be cleared" $? "exit $rc: $last"
for bad in "../x" "a/b" "$(printf 'a%.0s' $(seq 257))"; do
	ctl R2 revocation clear "$bad"; rc=$?
	[ $rc = 1 ] && grep -qF "is not a revocation record: expected its id" <<<"$last"
	check "revocation: clear '${bad:0:20}': not a record id (exit 1)" $? "exit $rc: $last"
done
ctl R2 revocation clear 0123; rc=$?
[ $rc = 1 ] && grep -qF "there is no revocation record ${rev_prefix}revocations/0123" <<<"$last"
check "revocation: clear of an id with no record: exit 1" $? "exit $rc: $last"
ctl R2 revocation clear 0123 --revision 0; rc=$?
[ $rc = 2 ]; check "revocation: --revision 0 is a usage error (exit 2)" $? "exit $rc: $last"
# Every clear, done or refused, is audited (Documentation/etcd.md): the
# bad ids and the missing records too.
clear_fail=$(grep '"op":"registry.revocation.clear"' "$work/agent-R2/audit.log" | grep '"outcome":"failure"')
grep -qF "record a/b not deleted" <<<"$clear_fail" && grep -qF "record ../x not deleted" <<<"$clear_fail" &&
	grep -qF "record ${rev_prefix}revocations/0123 not deleted" <<<"$clear_fail" &&
	grep -qF "not deleted: there is no revocation record ${rev_prefix}revocations/$rhash" <<<"$clear_fail"
check "revocation: refusals for bad ids and missing records are audited too" $? "$clear_fail"

for a in R1 R2; do kill "$(eval echo "\$pid_$a")" 2>/dev/null; done
for a in R1 R2; do wait "$(eval echo "\$pid_$a")" 2>/dev/null; done
for a in R1 R2; do
	! grep -qE 'Sanitizer|runtime error' "$work/agent-$a/agent.log"
	check "revocation: agent $a (ASan/UBSan) ran and stopped clean" $? "$(grep -A5 -E 'Sanitizer|runtime error' "$work/agent-$a/agent.log" | head -20)"
done
