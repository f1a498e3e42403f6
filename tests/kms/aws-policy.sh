# SPDX-License-Identifier: GPL-2.0
# Sourced by tests/kms/check.sh after aws-canary.sh (uses its docpolicy,
# setpolicy, $ckey, and check.sh's expect, field, fk, $ctx): the
# least-privilege policy of Documentation/kms-providers.md, read from the
# page, evaluated by the fake endpoint (tests/kms/fake-aws.py) on the
# agent's own requests (kms-aws-client: the agent's provider code, the
# context split by lc_context_pairs()):
#   - its volume statement lets a volume of workspace finance under key
#     configuration finance-kc be wrapped and unwrapped, and refuses any
#     other workspace or key configuration; contexts the agent never
#     sends (a key missing, a key added, none) are evaluated directly by
#     the same evaluator and refused;
#   - its canary statement lets the canary be wrapped and unwrapped;
#     once a canary exists, removing that statement makes the canary's
#     Decrypt AccessDenied, a denial (the documentation says: required
#     once canaries exist, a kill if removed).
vctx=$ctx	# workspace=finance, keyconfig=finance-kc, as the documented policy
vctx_ws=${ctx/workspace=finance/workspace=payroll}
vctx_kc=${ctx/keyconfig=finance-kc/keyconfig=other-kc}
cctx=lakecrypt:v2\;canary\;keyconfig=finance-kc
if setpolicy; then ok "policy (AWS): the documented least-privilege policy set on the fake key"
else notok "policy: set the documented policy" "$(cat "$cpol/p.json")"; fi
expect "policy (AWS): volume statement allows the volume's Encrypt (finance, finance-kc)" ok 5000 "${fk[@]}" wrap "$ckey" "$vctx"
pblob=$(field blob)
expect "policy (AWS): ... and its Decrypt" ok 5000 "${fk[@]}" unwrap "$ckey" "$vctx" "$pblob"
expect "policy (AWS): another workspace is refused" DENIED 5000 "${fk[@]}" wrap "$ckey" "$vctx_ws"
grep -q 'AccessDeniedException' <<<"$last" && ok "policy (AWS): ... as AccessDeniedException" || notok "workspace refusal type" "$last"
expect "policy (AWS): another key configuration is refused" DENIED 5000 "${fk[@]}" wrap "$ckey" "$vctx_kc"
# Contexts the agent never sends (it refuses them before any call): the
# documented policy is evaluated on them directly, by the same evaluator.
docpolicy >"$cpol/doc.json"
out=$("$py" - "$top/tests/kms/fake-aws.py" "$cpol/doc.json" <<'PY' 2>&1
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location('fake_aws', sys.argv[1])
fa = importlib.util.module_from_spec(spec); spec.loader.exec_module(fa)
d = json.load(open(sys.argv[2])); pol, key = d['policy'], d['key']
v = {'lakecrypt:volume': '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', 'lakecrypt:workspace': 'finance',
     'lakecrypt:project': 'ledger', 'lakecrypt:keyconfig': 'finance-kc'}
cases = {
    'full': (v, True),
    'no-project': ({k: x for k, x in v.items() if k != 'lakecrypt:project'}, False),
    'no-volume': ({k: x for k, x in v.items() if k != 'lakecrypt:volume'}, False),
    'extra-key': (dict(v, **{'aws:extra': 'x'}), False),
    'empty': ({}, False),
    'canary-with-volume': ({'lakecrypt:purpose': 'canary', 'lakecrypt:keyconfig': 'finance-kc',
                            'lakecrypt:volume': v['lakecrypt:volume']}, False),
}
for name, (ctx, want) in cases.items():
    for op in ('Encrypt', 'Decrypt'):
        got = fa.policy_allows(pol, op, key, ctx)
        print('%s %s %s' % ('OK' if got == want else 'WRONG', op, name))
PY
)
! grep -q WRONG <<<"$out" && [ "$(grep -c '^OK' <<<"$out")" -eq 12 ] &&
	ok "policy (AWS): the documented policy refuses a context missing lakecrypt:project or :volume, with a key added, empty, or a canary carrying a volume (12 evaluations)" ||
	notok "policy: documented policy on contexts the agent never sends" "$out"
expect "policy (AWS): canary statement allows the canary's Encrypt" ok 5000 "${fk[@]}" wrap "$ckey" "$cctx"
cblob=$(field blob)
expect "policy (AWS): ... and its Decrypt" ok 5000 "${fk[@]}" unwrap "$ckey" "$cctx" "$cblob"
expect "policy (AWS): the canary statement never allows a volume's context of another workspace" DENIED 5000 "${fk[@]}" wrap "$ckey" "$vctx_ws"
# The canary statement removed once the canary exists: its Decrypt is a
# denial (what the watcher counts towards a revocation), volumes' not.
setpolicy drop-canary
expect "policy (AWS): canary statement removed after the canary was made: its Decrypt is DENIED (a kill once confirmed)" DENIED 5000 "${fk[@]}" unwrap "$ckey" "$cctx" "$cblob"
expect "policy (AWS): ... while the volume's Decrypt still passes" ok 5000 "${fk[@]}" unwrap "$ckey" "$vctx" "$pblob"
