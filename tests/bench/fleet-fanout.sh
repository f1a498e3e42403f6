#!/bin/bash
# Revocation fan-out on etcd (issue 13's benchmark; figures, asserts
# nothing): for each N, N agent processes on this host share a 3-member
# etcd cluster on loopback (tests/etcd/cluster.sh, mutual TLS) through
# [registry] backend = etcd; one more agent, the admin's, runs `lakecryptctl
# revoke --keyconfig` and so writes the revocation record.  Printed per N:
# the time from the start of that command to each agent's
# registry.revocation audit record (p50, p99, max; the audit's
# millisecond clock, the same host clock for all), and the agents that
# acted on it.  The agents hold no volumes (no device-mapper needed): the
# time is the record's way through etcd's watch and each agent's handling,
# which is what fan-out adds to a kill; the kill itself is measured by
# tests/bench/bench.sh (revoke).
#   tests/bench/fleet-fanout.sh [N ...]     (default: 10 100)
# Needs etcd (make setup) and a built agent (make -C agent).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
ns=("$@")
[ ${#ns[@]} -gt 0 ] || ns=(10 100)
for n in "${ns[@]}"; do
	case $n in '' | *[!0-9]* | 0) echo "fleet-fanout: N must be a positive number, not '$n'" >&2; exit 2 ;; esac
done
make -s -C agent >/dev/null || exit 1
agentbin=$top/build/agent/lakecrypt-agent ctlbin=$top/build/agent/lakecryptctl
work=$(mktemp -d /tmp/lakecrypt-fanout.XXXXXX)
pids=()
cleanup() {
	[ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null
	wait 2>/dev/null
	tests/etcd/cluster.sh stop "$work/cluster" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
tests/etcd/cluster.sh start "$work/cluster" >"$work/cluster.err" 2>&1 ||
	{ echo "fleet-fanout: etcd cluster: $(tail -5 "$work/cluster.err")" >&2; exit 1; }
# shellcheck disable=SC1091
. "$work/cluster/env"

# shellcheck source=tests/kms/lib-agent.sh
. tests/kms/lib-agent.sh	# agent_conf, etcd_registry_conf
conf() {	# conf DIR PREFIX
	etcd_registry_conf "$2" | agent_conf "$1" "$(id -gn)"
}
start() {	# start DIR: the agent's pid in $!
	"$agentbin" -c "$1/agent.conf" -f >>"$1/agent.out" 2>&1 &
}
wait_sock() {	# wait_sock DIR: up to 60 s
	for _ in $(seq 600); do [ -S "$1/agent.sock" ] && return 0; sleep 0.1; done
	return 1
}
now_ms() { date +%s%3N; }

echo "Revocation fan-out on etcd $(etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p'), 3 members on loopback, $(nproc) CPU(s)"
printf '%-7s %-10s %-8s %-8s %-8s %s\n' agents acted p50_ms p99_ms max_ms "start of N agents (s)"
for n in "${ns[@]}"; do
	prefix=/lcfanout-$$-$n/
	d=$work/n$n
	conf "$d/admin" "$prefix"
	start "$d/admin"
	pids+=($!)
	wait_sock "$d/admin" || { echo "fleet-fanout: the admin's agent did not start" >&2; exit 1; }
	key=$("$ctlbin" --socket "$d/admin/agent.sock" --json kms create | sed -n 's/.*"key_id": "\([^"]*\)".*/\1/p')
	"$ctlbin" --socket "$d/admin/agent.sock" keyconfig create kcf --key "$key" >/dev/null ||
		{ echo "fleet-fanout: keyconfig create" >&2; exit 1; }
	t0=$SECONDS
	for i in $(seq "$n"); do
		conf "$d/a$i" "$prefix"
		start "$d/a$i"
		pids+=($!)
	done
	for i in $(seq "$n"); do
		wait_sock "$d/a$i" || { echo "fleet-fanout: agent $i of $n did not start: $(tail -3 "$d/a$i/agent.out")" >&2; exit 1; }
	done
	# every agent has read the registry (sees kcf) before the record
	for i in $(seq "$n"); do
		for _ in $(seq 300); do
			"$ctlbin" --socket "$d/a$i/agent.sock" keyconfig list 2>/dev/null | grep -q kcf && break
			sleep 0.1
		done
	done
	up=$((SECONDS - t0))
	w0=$(now_ms)
	"$ctlbin" --socket "$d/admin/agent.sock" revoke --keyconfig kcf >/dev/null ||
		{ echo "fleet-fanout: revoke" >&2; exit 1; }
	# each agent's registry.revocation record, up to 120 s
	for _ in $(seq 1200); do
		got=$(grep -l '"op":"registry.revocation"' "$d"/a[0-9]*/audit.log 2>/dev/null | wc -l)
		[ "$got" -ge "$n" ] && break
		sleep 0.1
	done
	grep -h '"op":"registry.revocation"' "$d"/a[0-9]*/audit.log 2>/dev/null |
		sed -n 's/.*"time":"\([^"]*\)".*/\1/p' |
		while read -r t; do echo $(( $(date -d "$t" +%s%3N) - w0 )); done | sort -n >"$d/lat"
	acted=$(wc -l <"$d/lat")
	pct() { awk -v p="$1" '{ a[NR] = $1 } END { if (NR == 0) { print "-"; exit } i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; print a[i] }' "$d/lat"; }
	printf '%-7s %-10s %-8s %-8s %-8s %s\n' "$n" "$acted/$n" "$(pct 50)" "$(pct 99)" "$(pct 100)" "$up"
	kill "${pids[@]}" 2>/dev/null
	wait 2>/dev/null
	pids=()
	rm -rf "$d"
done
echo "Goal (issue 13): 1,000 agents within 2 s at p99."
