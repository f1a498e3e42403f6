# SPDX-License-Identifier: GPL-2.0
# Sourced by tests/kms/check.sh (uses its ok/notok, $work, $p_fake, $top,
# $py): the revocation probe's canary on AWS KMS.  local-kms and moto do
# not evaluate key-policy conditions (moto only Deny on DescribeKey), so
# the fake endpoint (tests/kms/fake-aws.py, every request re-signed by
# botocore) evaluates the key policy Documentation/kms-providers.md gives,
# copied from the document itself: that policy must let the canary be made
# and unwrapped; taking kms:Decrypt away (DescribeKey still Enabled) must
# make the probe answer "denied"; a policy of before the canary statement
# must leave a key configuration without a canary, never a false denial.
. tests/kms/lib-agent.sh	# agent_conf_checks, ta_start, ta_ctl, ...
cpol=$work/canary
mkdir -p "$cpol"
ckey="arn:aws:kms:eu-west-2:111122223333:key/policy-canary"
# The policy as the documentation prints it, for this key.
docpolicy() {	# docpolicy [drop-decrypt|drop-canary] > policy.json
	"$py" - "$top/Documentation/kms-providers.md" "$ckey" "${1:-}" <<'PY'
import json, sys
doc = open(sys.argv[1]).read()
sec = doc[doc.index('### Least-privilege IAM policy'):]
block = sec[sec.index('\n    {') + 1:]
lines = []
for l in block.split('\n'):
    if l and not l.startswith('    '):
        break
    lines.append(l[4:])
pol = json.loads('\n'.join(lines))
for st in pol['Statement']:
    st['Resource'] = sys.argv[2]
    if sys.argv[3] == 'drop-decrypt':
        st['Action'] = [a for a in (st['Action'] if isinstance(st['Action'], list) else [st['Action']]) if a != 'kms:Decrypt']
if sys.argv[3] == 'drop-canary':
    pol['Statement'] = [s for s in pol['Statement'] if s.get('Sid') != 'LakecryptCanary']
if sys.argv[3].startswith('two-kc'):
    # a second key configuration, ops-kc, on the same key: the documented
    # statements again for its context; two-kc-drop-ops: without its canary statement
    extra = []
    for st in pol['Statement']:
        c = json.dumps(st)
        if '"kms:EncryptionContext:lakecrypt:keyconfig": "finance-kc"' in c:
            o = json.loads(c.replace('"finance-kc"', '"ops-kc"'))
            o['Sid'] = st.get('Sid', 'S') + 'Ops'
            extra.append(o)
    pol['Statement'] += extra
    if sys.argv[3] == 'two-kc-drop-ops':
        pol['Statement'] = [s for s in pol['Statement'] if s.get('Sid') != 'LakecryptCanaryOps']
print(json.dumps({'key': sys.argv[2], 'policy': pol}))
PY
}
setpolicy() {	# setpolicy [variant]: the fake endpoint's key policy for $ckey
	docpolicy "${1:-}" >"$cpol/p.json" &&
	"$py" -c 'import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
urllib.request.urlopen(urllib.request.Request(sys.argv[2], data=open(sys.argv[3], "rb").read(), method="POST"), context=ctx).read()' \
		"$work/ca.pem" "https://127.0.0.1:$p_fake/admin/policy" "$cpol/p.json"
}
# only the checks below probe; two denials confirm (the window holds two
# watcher probes, 3600 s + 10 % jitter, or the agent refuses the file)
agent_conf_checks "$cpol" 2 <<EOC
[aws-kms]
endpoint = https://127.0.0.1:$p_fake
region = eu-west-2
ca_bundle = $work/ca.pem
credentials = env
sts_endpoint = https://127.0.0.1:$p_motls/
EOC
ta_start "$cpol" "canary (AWS): the agent starts"

if setpolicy; then ok "canary (AWS): the key policy of Documentation/kms-providers.md set on the fake key"
else notok "canary: set the documented policy" "$(cat "$cpol/p.json")"; fi
out=$(ta_ctl --json keyconfig create finance-kc --provider aws-kms --key "$ckey")
grep -q '"canary": true' <<<"$out" &&
	ok "canary (AWS): keyconfig create makes the canary under the documented policy" ||
	notok "canary made under the documented policy" "$out $(grep POLICY "$work/fake.log" | tail -3)"
grep -q '"op":"cmk.canary_wrap".*"keyconfig":"finance-kc".*"provider":"aws-kms".*"outcome":"success"' "$cpol/audit.log" &&
	ok "canary (AWS): the canary wrap is audited (cmk.canary_wrap, success)" ||
	notok "canary wrap audit" "$(cat "$cpol/audit.log")"
grep -q 'POLICY DENIES' "$work/fake.log" && notok "canary: no request refused by the documented policy" "$(grep POLICY "$work/fake.log")" ||
	ok "canary (AWS): the documented policy refused none of the agent's requests"
out=$(ta_ctl --json check --cmk "$ckey")
grep -q '"outcome": "ok"' <<<"$out" && grep -q '"canary": "ok"' <<<"$out" &&
	ok "canary (AWS): check unwraps the canary under the documented policy: ok" ||
	notok "canary probe ok" "$out"

# kms:Decrypt taken away from every statement; DescribeKey and Encrypt stay.
setpolicy drop-decrypt
out=$(ta_ctl --json check --cmk "$ckey")
grep -q '"state": "enabled"' <<<"$out" && grep -q '"canary": "denied"' <<<"$out" &&
	grep -q '"outcome": "denied"' <<<"$out" && grep -q 'AccessDeniedException' <<<"$out" &&
	ok "canary (AWS): Decrypt taken away while DescribeKey says Enabled: the probe says denied" ||
	notok "canary sees the removed Decrypt" "$out"
grep -q '"op":"cmk.canary".*"outcome":"failure".*"error_class":"denied"' "$cpol/audit.log" &&
	ok "canary (AWS): the denied canary unwrap is audited" || notok "canary denial audit" "$(tail -3 "$cpol/audit.log")"

# Two key configurations on the key, each with its own statements: each
# is probed with its own canary; taking one's canary statement away is a
# denial for that configuration only, the other's canary still unwraps.
# A second check seconds later shows the denial but does not count it.
kcrows() {	# kcrows: "keyconfig outcome counted" per row of check --json
	"$py" -c 'import json, sys
for c in json.load(sys.stdin)["checks"]:
    print(c.get("keyconfig"), c.get("outcome"), str(c.get("counted")).lower())'
}
if setpolicy two-kc; then ok "canary (AWS): the documented statements for a second key configuration, ops-kc"
else notok "set the two-keyconfig policy" "$(cat "$cpol/p.json")"; fi
out=$(ta_ctl --json keyconfig create ops-kc --provider aws-kms --key "$ckey")
grep -q '"canary": true' <<<"$out" && ok "canary (AWS): ops-kc made with its own canary" || notok "ops-kc canary" "$out"
out=$(ta_ctl --json check --cmk "$ckey" | kcrows)
grep -qx 'finance-kc ok false' <<<"$out" && grep -qx 'ops-kc ok false' <<<"$out" &&
	ok "canary (AWS): check probes each key configuration with its own canary: both ok" ||
	notok "two canaries ok" "$out"
setpolicy two-kc-drop-ops
out=$(ta_ctl --json check --cmk "$ckey" | kcrows)
grep -qx 'finance-kc ok false' <<<"$out" && grep -qx 'ops-kc denied true' <<<"$out" &&
	ok "canary (AWS): ops-kc's canary statement removed: ops-kc denied (counted), finance-kc still ok" ||
	notok "per-keyconfig denial" "$out"
out=$(ta_ctl --json check --cmk "$ckey" | kcrows)
grep -qx 'ops-kc denied false' <<<"$out" &&
	ok "canary (AWS): a second check seconds later shows the denial, not counted" ||
	notok "second check not counted" "$out"
out=$(ta_ctl --json status)
"$py" -c 'import json, sys
rows = {c["keyconfig"]: c for c in json.load(sys.stdin)["cmks"]}
assert rows["ops-kc"]["verdict"] == "pending" and rows["ops-kc"]["denials"] == 1 and rows["ops-kc"]["uncounted"] == 1, rows
assert rows["finance-kc"]["verdict"] == "keep" and rows[""]["verdict"] == "keep", rows' <<<"$out" 2>/dev/null &&
	ok "canary (AWS): status: ops-kc pending (1 counted, 1 not), finance-kc and the key keep" ||
	notok "status per keyconfig" "$out"
setpolicy

# A policy written before the canary statement existed: no canary, no kill.
setpolicy drop-canary
out=$(ta_ctl --json keyconfig create old-kc --provider aws-kms --key "$ckey")
grep -q '"canary": false' <<<"$out" &&
	ok "canary (AWS): a policy without the canary statement: key configuration made without a canary" ||
	notok "old policy keyconfig" "$out"
grep -q '"op":"cmk.canary_wrap".*"keyconfig":"old-kc".*"outcome":"failure".*"error_class":"denied"' "$cpol/audit.log" &&
	ok "canary (AWS): the refused canary wrap is audited (failure, denied)" ||
	notok "refused canary wrap audit" "$(cat "$cpol/audit.log")"
out=$(ta_ctl keyconfig create "bad kc" --provider aws-kms --key "$ckey")
grep -q '"op":"keyconfig.create".*"outcome":"failure"' "$cpol/audit.log" &&
	ok "canary (AWS): a failed keyconfig create leaves an audit record" || notok "failed keyconfig.create audit" "$out"
ta_stop
grep -qE 'Sanitizer|runtime error' "$cpol/agent.log" && notok "agent (ASan/UBSan) clean (canary)" "$(cat "$cpol/agent.log")" ||
	ok "canary (AWS): agent (ASan/UBSan) ran clean"
