#!/bin/bash
# KMS requests per minute at fleet sizes (issue 13's benchmark; figures,
# asserts nothing): for each N, N agent processes on this host share a
# 3-member etcd cluster on loopback (tests/etcd/cluster.sh, mutual TLS)
# and one AWS KMS CMK in local-kms (the AWS KMS test server of tests/kms)
# behind stunnel4.  Each N runs twice:
#   shared    [registry] backstop_interval_s = 600: one agent per CMK holds
#             the probe lease and probes, the others skip (fleet-probe.c)
#   per-node  backstop_interval_s = 0: every agent probes by itself
# The requests are counted where the KMS answers: local-kms logs one line
# per DescribeKey and per Decrypt on the CMK, the two requests of a probe.
# Counting starts once every agent is up and WARM_S more seconds have
# passed (the start-up probes are left out) and lasts WINDOW_S seconds.
# The host has no device-mapper: [test] watch_keyconfig makes each
# agent's watcher probe the CMK as if an open volume used it.
#   tests/bench/fleet-kms-rate.sh [N ...]      (default: 10 100)
#   WINDOW_S (default 150), WARM_S (default 20), INTERVAL_S (the agents'
#   [revocation] watch_interval_s, default 3), LEASE_S ([registry]
#   probe_lease_s, default 10), MODES ("shared per-node"), BATCH (agents
#   started at once, default 50: each agent probes once when it starts, so
#   the next batch starts when the last one listens)
# Needs etcd, stunnel4, local-kms and the venv (make setup) and a built
# agent (make -C agent).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
ns=("$@")
[ ${#ns[@]} -gt 0 ] || ns=(10 100)
for n in "${ns[@]}"; do
	case $n in '' | *[!0-9]* | 0) echo "fleet-kms-rate: N must be a positive number, not '$n'" >&2; exit 2 ;; esac
done
window=${WINDOW_S:-150} warm=${WARM_S:-20} interval=${INTERVAL_S:-3} lease=${LEASE_S:-10} batch=${BATCH:-50}
read -r -a modes <<<"${MODES:-shared per-node}"
for v in "$window" "$warm" "$interval" "$lease" "$batch"; do
	case $v in '' | *[!0-9]* | 0) echo "fleet-kms-rate: WINDOW_S, WARM_S, INTERVAL_S, LEASE_S and BATCH must be positive numbers" >&2; exit 2 ;; esac
done
for m in "${modes[@]}"; do
	case $m in shared | per-node) ;; *) echo "fleet-kms-rate: MODES: shared and/or per-node, not '$m'" >&2; exit 2 ;; esac
done
tools=${LAKECRYPT_TOOLS:-/opt/lakecrypt-tools}
vpy=$tools/venv/bin/python3 lkms=$tools/bin/local-kms
for t in "$lkms" "$vpy" /usr/bin/stunnel4 /usr/bin/etcd; do
	[ -x "$t" ] || { echo "fleet-kms-rate: $t is missing (make setup)" >&2; exit 1; }
done
make -s -C agent >/dev/null || exit 1
work=$(mktemp -d /tmp/lakecrypt-kmsrate.XXXXXX)
# Copies: a rebuild while the benchmark runs does not change its agents.
cp "$top/build/agent/lakecrypt-agent" "$top/build/agent/lakecryptctl" "$work/" || exit 1
agentbin=$work/lakecrypt-agent ctlbin=$work/lakecryptctl
pids=() side=()
cleanup() {
	[ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null
	[ ${#side[@]} -eq 0 ] || kill "${side[@]}" 2>/dev/null
	# stunnel4 holding a thousand connections may not heed SIGTERM
	for _ in $(seq 100); do
		alive=0; for p in "${side[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break; sleep 0.1
	done
	[ ${#side[@]} -eq 0 ] || kill -KILL "${side[@]}" 2>/dev/null
	wait 2>/dev/null
	tests/etcd/cluster.sh stop "$work/cluster" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
tests/etcd/cluster.sh start "$work/cluster" >"$work/cluster.err" 2>&1 ||
	{ echo "fleet-kms-rate: etcd cluster: $(tail -5 "$work/cluster.err")" >&2; exit 1; }
# shellcheck disable=SC1091
. "$work/cluster/env"

# shellcheck source=tests/kms/lib-local-kms.sh
. tests/kms/lib-local-kms.sh	# lkms_serve, lkms_aws_conf
# shellcheck source=tests/kms/lib-agent.sh
. tests/kms/lib-agent.sh	# agent_conf, etcd_registry_conf
mkdir -p "$work/kms"
lkms_serve "$work/kms" "$ETCD_MEMBER_CERT" "$ETCD_MEMBER_KEY"; rc=$?
side+=("${LKMS_PIDS[@]}")
[ $rc = 0 ] || { echo "fleet-kms-rate: $(cat "$work/kms/lkms.err")" >&2; exit 1; }
p_ktls=$LKMS_TLS_PORT
export AWS_ACCESS_KEY_ID=AKIDFAKE AWS_SECRET_ACCESS_KEY=fakeSecretKey/0123456789abcdefghijklmnopqrstu
unset AWS_SESSION_TOKEN AWS_PROFILE

conf() {	# conf DIR PREFIX BACKSTOP
	{ cat <<EOF
[kms]
retry_attempts = 1
deadline_ms = 10000

[revocation]
watch_interval_s = $interval

EOF
	  lkms_aws_conf "$ETCD_CA"; echo
	  etcd_registry_conf "$2"; cat <<EOF
backstop_interval_s = $3
probe_lease_s = $lease

[test]
watch_keyconfig = kcb
EOF
	} | agent_conf "$1" "$(id -gn)"
}
wait_sock() { for _ in $(seq 600); do [ -S "$1/agent.sock" ] && return 0; sleep 0.1; done; return 1; }
pss_mb() {	# the agents' memory, MiB: the sum of their proportional set sizes
	local t=0 p r	# (shared pages counted once in all, unlike RSS)
	for p in "${pids[@]}"; do r=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null); t=$((t + ${r:-0})); done
	echo $((t / 1024))
}

echo "KMS requests per minute on one CMK, etcd $(etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p') (3 members on loopback), local-kms behind stunnel4, $(nproc) CPU(s)"
echo "watch_interval_s = $interval (2 requests a probe), probe_lease_s = $lease, warm-up $warm s, window $window s"
printf '%-7s %-9s %-10s %-12s %-9s %-9s %s\n' agents mode requests req_per_min holders pss_mib "start (s)"
declare -A rate
for n in "${ns[@]}"; do
	for mode in "${modes[@]}"; do
		backstop=600; [ "$mode" = per-node ] && backstop=0
		prefix=/lckmsrate-$$-$n-$mode/
		d=$work/n$n-$mode
		pkey=$("$vpy" "$top/tests/kms/kms-admin.py" "https://127.0.0.1:$p_ktls" "$ETCD_CA" create 2>&1)
		[[ "$pkey" == arn:aws:kms:* ]] || { echo "fleet-kms-rate: CMK: $pkey" >&2; exit 1; }
		t0=$SECONDS
		for i in $(seq "$n"); do
			conf "$d/a$i" "$prefix" "$backstop"
			"$agentbin" -c "$d/a$i/agent.conf" -f >>"$d/a$i/agent.out" 2>&1 &
			pids+=($!)
			if [ $((i % batch)) = 0 ] && [ "$i" != "$n" ]; then
				for j in $(seq $((i - batch + 1)) "$i"); do
					wait_sock "$d/a$j" || { echo "fleet-kms-rate: agent $j of $n did not start: $(tail -3 "$d/a$j/agent.out")" >&2; exit 1; }
				done
			fi
			if [ "$i" = 1 ]; then
				wait_sock "$d/a1" || { echo "fleet-kms-rate: agent 1 did not start: $(tail -3 "$d/a1/agent.out")" >&2; exit 1; }
				"$ctlbin" --socket "$d/a1/agent.sock" keyconfig create kcb --provider aws-kms --key "$pkey" >"$d/kc.out" 2>&1 ||
					{ echo "fleet-kms-rate: keyconfig create: $(cat "$d/kc.out")" >&2; exit 1; }
			fi
		done
		for i in $(seq "$n"); do
			wait_sock "$d/a$i" || { echo "fleet-kms-rate: agent $i of $n did not start: $(tail -3 "$d/a$i/agent.out")" >&2; exit 1; }
		done
		up=$((SECONDS - t0))
		sleep "$warm"
		calls() { grep -cE "(Key described|Decryption called): $pkey" "$work/kms/local-kms.log"; }
		c0=$(calls); s0=$(date +%s%N)
		sleep "$window"
		c1=$(calls); s1=$(date +%s%N)
		# agents whose status says they hold the CMK's probe lease
		holders=0
		for i in $(seq "$n"); do
			"$ctlbin" --socket "$d/a$i/agent.sock" --json status 2>/dev/null |
				python3 -c 'import json, sys
u = json.load(sys.stdin).get("registry", {}).get("probes", {}).get("units", [])
sys.exit(0 if any(x.get("mine") for x in u) else 1)' && holders=$((holders + 1))
		done
		mem=$(pss_mb)
		req=$((c1 - c0))
		per_min=$(awk -v r="$req" -v ns="$((s1 - s0))" 'BEGIN { printf "%.0f", r * 60e9 / ns }')
		rate[$n-$mode]=$per_min
		printf '%-7s %-9s %-10s %-12s %-9s %-9s %s\n' "$n" "$mode" "$req" "$per_min" "$holders" "$mem" "$up"
		kill "${pids[@]}" 2>/dev/null
		wait "${pids[@]}" 2>/dev/null
		pids=()
		rm -rf "$d"
	done
done
if [ ${#modes[@]} -eq 2 ]; then
	echo "Ratio per-node / shared (shared should stay flat as N grows; per-node grows with N):"
	for n in "${ns[@]}"; do
		awk -v n="$n" -v s="${rate[$n-shared]}" -v p="${rate[$n-per-node]}" \
			'BEGIN { printf "  N=%-6s shared %s/min, per-node %s/min, ratio %.1f\n", n, s, p, s ? p / s : 0 }'
	done
fi
echo "One agent probing alone: $((120 / interval)) requests/min (2 a probe every $interval s)."
