#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Fleet revocation simulation: how fast a fleet of lakecrypt agents learns
that a CMK was revoked, and what that costs in KMS requests.

Documentation/fleet-revocation.md is the design this models.  Each node
runs an agent that

  * probes the KMS every `interval` seconds, each interval drawn uniformly
    from [interval * (1 - jitter), interval * (1 + jitter)], as the agent
    does ([revocation] watch_interval_s and jitter_pct); a probe is
    `probe_requests` KMS requests (2 with the agent's default canary = yes:
    the key-state call and the canary unwrap), so the default interval of
    130 s keeps a node under one request per minute;
  * asks a denied request again `rechecks` times, `recheck_gap` seconds
    apart, before the probe takes it as a denial (agent/daemon/probe.c):
    a denied key state must also be borne out by one canary unwrap, a
    denied canary (with the key enabled) is made again (a wrap and its
    read-back) before it stands; only every request denied makes the
    probe's denial;
  * kills only after `confirm` denials in a row (a success in between
    resets the count): while polling, the confirmation comes at its next
    probes (the agent's confirm_denials within confirm_window_s); a probe
    triggered by an event (`lakecryptctl check --cmk KEY`) is repeated
    `confirm_gap` seconds apart;
  * optionally (strategy "events") learns of the revocation early from the
    provider's key-state event stream (EventBridge, Event Grid, Pub/Sub)
    relayed through the fleet registry: a few sentinel nodes confirm with
    their own probes, the registry then publishes "confirmed" and every
    node kills.  Polling stays on as the backstop (lost events); a node
    whose registry watch is broken knows it and polls every
    `fast_interval` seconds until the watch is back.

The KMS side: the revocation happens at t = 0; because IAM / RBAC changes
propagate with a delay, a request at time t is denied with probability
min(1, t / propagation) (a ramp), and before t = 0 every request succeeds
except for stray denials (`flake` per request), which must never kill.

Strategies:
  poll         polling only
  events       event stream + sentinel confirmation + registry fan-out,
               polling as backstop
  events-all   event stream, every node confirms by itself (no sentinels):
               shows the request burst a fleet-wide probe would cause

Prints, per fleet size, detection latency percentiles (t = 0 to the node's
kill), steady-state KMS requests per node per minute, the peak request
rate during the revocation, and false kills over the simulated quiet time.

    tests/sim/fleet-sim.py [--nodes 100,1000,10000] [--seed N] [--check]

--check runs small fleets and verifies the model's own invariants (used by
tests/system/check.sh); it asserts nothing about any real system.
"""
import argparse
import heapq
import random
import statistics
import sys
from dataclasses import dataclass, field


@dataclass
class Params:
    interval: float = 130.0         # s, mean probe interval (watch_interval_s)
    jitter: float = 0.1             # fraction: interval in [i(1-j), i(1+j)]
    probe_requests: int = 2         # KMS requests per probe (state + canary)
    fast_interval: float = 5.0      # s, polling while the registry is unreachable
    confirm: int = 2                # denials in a row that kill
    confirm_gap: float = 2.0        # s between confirmation probes
    rechecks: int = 2               # a denied request asked again (probe.c)
    witness: bool = True            # a state denial must be borne out by the canary
    recheck_gap: float = 1.0        # s between those asks
    propagation: float = 10.0       # s, ramp of the KMS denial after t = 0
    flake: float = 1e-4             # stray denial probability per request
    event_median: float = 4.0       # s, event stream delivery (lognormal)
    event_sigma: float = 0.6
    event_loss: float = 0.01        # per receiver: the event never reaches it
    registry_loss: float = 0.001    # per node: registry watch broken
    fanout_median: float = 0.3      # s, registry -> node delivery
    sentinels: int = 3              # nodes that confirm for the fleet
    quorum: int = 2                 # sentinel confirmations to publish
    quiet: float = 3600.0           # s of quiet time simulated before t = 0
    horizon: float = 600.0          # s simulated after t = 0


@dataclass(order=True)
class Ev:
    t: float
    seq: int
    kind: str = field(compare=False)
    node: int = field(compare=False)


def denied(p, rng, t):
    """One KMS request at time t (s, revocation at 0): True if denied."""
    if t < 0:
        return rng.random() < p.flake
    ramp = 1.0 if p.propagation <= 0 else min(1.0, t / p.propagation)
    return rng.random() < ramp or rng.random() < p.flake


def probe(p, rng, t):
    """One probe starting at t: (denied, requests as (time, kind), end time).

    kind is "state" (the key-state call) or "canary" (unwraps, and a new
    canary's wrap: cryptographic operations).

    The key-state request, then the canary's unwrap (probe_requests = 2;
    with 1, canary = no: the state alone).  A denied request is asked
    again p.rechecks times, p.recheck_gap s apart, and stands only if every
    ask is denied.  A denied key state stands only if one canary unwrap
    (its witness) is denied too.  With the key enabled, a denied canary is
    asked again likewise, then made again (a wrap, and its read-back if
    the wrap went through) and stands only if that is refused.
    """
    times = []

    def ask(t, kind):
        times.append((t, kind))
        d = denied(p, rng, t)
        for _ in range(p.rechecks):
            if not d:
                break
            t += p.recheck_gap
            times.append((t, kind))
            d = denied(p, rng, t)
        return d, t

    state, t = ask(t, "state")
    if p.probe_requests < 2:
        return state, times, t
    if state and not p.witness:
        return True, times, t       # the agent before the witness: no canary
    if state:
        times.append((t, "canary"))
        return denied(p, rng, t), times, t
    canary, t = ask(t, "canary")
    if canary:
        times.append((t, "canary"))
        refused = denied(p, rng, t)
        if not refused:
            times.append((t, "canary"))
            refused = denied(p, rng, t)
        canary = refused
    return canary, times, t


def simulate(n, strategy, p, seed):
    """Run one fleet.  Returns a dict of figures (latencies in s)."""
    rng = random.Random(seed)
    q, seq = [], 0

    def push(t, kind, node):
        nonlocal seq
        seq += 1
        heapq.heappush(q, Ev(t, seq, kind, node))

    t0 = -p.quiet
    streak = [0] * n            # denials in a row
    killed = [None] * n         # kill time
    false_kills = 0
    requests = []               # times of all KMS requests
    confirmed_by = set()
    published = None
    disconnected = [strategy == "events" and rng.random() < p.registry_loss
                    for _ in range(n)]
    ev_mode = [False] * n       # confirming on an event, not at its ticks

    def next_poll(i):
        if disconnected[i]:
            return p.fast_interval
        return rng.uniform(p.interval * (1 - p.jitter), p.interval * (1 + p.jitter))

    def next_tick(i, start, done):
        # the watcher's timer runs from tick to tick; a tick while the
        # CMK's probe still runs (its rechecks) skips it
        t = start + next_poll(i)
        while t < done:
            t += next_poll(i)
        return t

    for i in range(n):
        push(t0 + rng.uniform(0, next_poll(i)), "poll", i)
    if strategy in ("events", "events-all"):
        for i in range(n):
            if rng.random() < p.event_loss:
                continue
            e = rng.lognormvariate(0, p.event_sigma) * p.event_median
            if strategy == "events" and i < p.sentinels:
                push(e + rng.expovariate(1 / p.fanout_median), "event", i)
            elif strategy == "events-all":
                push(e + rng.expovariate(1 / p.fanout_median), "event", i)
    end = p.horizon
    while q:
        ev = heapq.heappop(q)
        if ev.t > end:
            break
        i = ev.node
        if killed[i] is not None:
            continue
        if ev.kind == "publish":
            killed[i] = ev.t
            continue
        # poll, confirm and event are each one probe
        was_denied, times, done = probe(p, rng, ev.t)
        requests.extend(times)
        if was_denied:
            streak[i] += 1
            if streak[i] >= p.confirm:
                if ev.t < 0:
                    false_kills += 1
                    streak[i] = 0   # counted; the node is replaced
                    push(ev.t + next_poll(i), "poll", i)
                    continue
                killed[i] = done
                if strategy == "events" and i < p.sentinels:
                    confirmed_by.add(i)
                    if published is None and len(confirmed_by) >= p.quorum:
                        published = done
                        for j in range(n):
                            if j not in confirmed_by and not disconnected[j]:
                                push(done + rng.expovariate(1 / p.fanout_median),
                                     "publish", j)
                continue
            # the agent confirms at its next tick; a probe on an event
            # (lakecryptctl check) is repeated confirm_gap seconds apart
            if ev.kind == "poll" or (ev.kind == "confirm" and not ev_mode[i]):
                push(next_tick(i, ev.t, done), "confirm", i)
            else:
                ev_mode[i] = True
                push(done + p.confirm_gap, "confirm", i)
        else:
            streak[i] = 0
            if ev.kind == "poll":
                push(next_tick(i, ev.t, done), "poll", i)
            elif ev.kind in ("confirm", "event"):
                # back to the normal cadence; an event keeps probing a
                # little while the denial propagates
                if ev.kind == "event" and ev.t < p.propagation * 3:
                    push(done + p.confirm_gap, "event", i)
                else:
                    push(next_tick(i, ev.t, done), "poll", i)

    lat = sorted(k for k in killed if k is not None)
    quiet_req = sum(1 for t, _ in requests if t < 0)
    after = [(t, k) for t, k in requests if t >= 0]

    def peak_of(kinds):
        buckets = {}
        for t, k in after:
            if k in kinds:
                buckets[int(t)] = buckets.get(int(t), 0) + 1
        return max(buckets.values()) if buckets else 0

    peak = peak_of(("state", "canary"))

    def pct(x):
        if not lat:
            return float("inf")
        return lat[min(len(lat) - 1, int(round(x / 100 * (len(lat) - 1))))]

    return {
        "nodes": n, "strategy": strategy, "killed": len(lat),
        "p50": pct(50), "p90": pct(90), "p99": pct(99), "max": pct(100),
        "mean": statistics.fmean(lat) if lat else float("inf"),
        "req_per_node_min": quiet_req / n / (p.quiet / 60.0),
        "fleet_rps": quiet_req / p.quiet,
        "fleet_rps_of": {k: sum(1 for t, x in requests if t < 0 and x == k) / p.quiet
                         for k in ("state", "canary")},
        "peak_rps": peak,
        "peak_rps_of": {k: peak_of((k,)) for k in ("state", "canary")},
        "revocation_requests": len(after),
        "false_kills": false_kills,
        "disconnected": sum(disconnected),
    }


# Default request quotas as published by the providers (November 2026;
# check your own account's values: all are adjustable), in requests per
# second, and which of a probe's requests count against each: "state" (the
# key-state call), "canary" (the unwrap) or "all".
QUOTAS = [
    ("AWS KMS DescribeKey", 2000.0, "state"),
    ("AWS KMS Decrypt (shared cryptographic quota, smallest regions)", 5500.0, "canary"),
    ("Azure Key Vault, RSA-2048 software key, all operations per vault", 400.0, "all"),
    ("Azure Key Vault, RSA-2048 HSM key, all operations per vault", 200.0, "all"),
    ("Google Cloud KMS get (read requests, 300 per minute per project)", 5.0, "state"),
    ("Google Cloud KMS decrypt (60,000 per minute per project)", 1000.0, "canary"),
]


def report(sizes, p, seed):
    print(f"fleet-sim: probe every {p.interval:g} s (jitter {p.jitter:.0%}, "
          f"{p.probe_requests} requests per probe), "
          f"confirm {p.confirm} denials {p.confirm_gap:g} s apart, "
          f"a denial asked again {p.rechecks} times {p.recheck_gap:g} s apart, "
          f"IAM propagation ramp {p.propagation:g} s, stray denials {p.flake:g}/request, "
          f"events median {p.event_median:g} s (loss {p.event_loss:.0%}), "
          f"{p.sentinels} sentinels (quorum {p.quorum}), registry watch broken on "
          f"{p.registry_loss:.1%} of nodes (they poll every {p.fast_interval:g} s), seed {seed}")
    print(f"{'strategy':<11} {'nodes':>6} {'killed':>7} {'p50 s':>7} {'p90 s':>7} "
          f"{'p99 s':>7} {'max s':>7} {'req/node/min':>13} {'fleet req/s':>12} "
          f"{'peak req/s':>11} {'false kills':>12}")
    worst = {}
    for strategy in ("poll", "events", "events-all"):
        for n in sizes:
            r = simulate(n, strategy, p, seed)
            print(f"{strategy:<11} {n:>6} {r['killed']:>7} {r['p50']:>7.1f} {r['p90']:>7.1f} "
                  f"{r['p99']:>7.1f} {r['max']:>7.1f} {r['req_per_node_min']:>13.2f} "
                  f"{r['fleet_rps']:>12.1f} {r['peak_rps']:>11} {r['false_kills']:>12}")
            worst[(strategy, n)] = r
    print("the events strategy against the providers' default quotas (steady state; revocation peak):")
    for name, rps, part in QUOTAS:
        for n in sizes:
            r = worst[("events", n)]
            if part == "all":
                use, peak = r["fleet_rps"], r["peak_rps"]
            else:
                use, peak = r["fleet_rps_of"][part], r["peak_rps_of"][part]
            print(f"  {name}: {n} nodes {use:.1f} req/s = {100 * use / rps:.1f}%"
                  f" (peak {peak:.0f} req/s = {100 * peak / rps:.1f}%)")
    return worst


def check(seed):
    """Invariants of the model (small fleets, fast).  TAP lines."""
    p = Params(quiet=1800.0, horizon=400.0)
    results = {}
    n_ok = n_fail = 0

    def tap(cond, desc):
        nonlocal n_ok, n_fail
        if cond:
            n_ok += 1
            print(f"ok - {desc}")
        else:
            n_fail += 1
            print(f"not ok - {desc}")

    for strategy in ("poll", "events", "events-all"):
        results[strategy] = simulate(300, strategy, p, seed)
    poll, ev = results["poll"], results["events"]
    tap(all(r["killed"] == 300 for r in results.values()),
        "every node is killed in every strategy: "
        + ", ".join(f"{k} {r['killed']}" for k, r in results.items()))
    want = p.probe_requests * 60.0 / p.interval
    tap(abs(poll["req_per_node_min"] - want) <= 0.05 * want,
        f"polling costs {p.probe_requests} requests per node per interval: "
        f"{poll['req_per_node_min']:.2f}/min (expected {want:.2f})")
    tap(poll["req_per_node_min"] <= 1.0,
        f"with the defaults a node stays under one request per minute: {poll['req_per_node_min']:.2f}")
    # the last probe's rechecks: the state's and the canary's
    bound = p.confirm * p.interval * (1 + p.jitter) + p.propagation + 2 * p.rechecks * p.recheck_gap
    tap(poll["max"] <= bound,
        f"polling alone detects within {p.confirm} intervals after propagation: "
        f"max {poll['max']:.1f} s <= {bound:.0f} s")
    tap(ev["p99"] < poll["p50"],
        f"events beat polling: p99 {ev['p99']:.1f} s < polling p50 {poll['p50']:.1f} s")
    tap(ev["revocation_requests"] < results["events-all"]["revocation_requests"],
        "sentinels cost fewer KMS requests than every node probing: "
        f"{ev['revocation_requests']} < {results['events-all']['revocation_requests']}")
    noflake = simulate(300, "poll", Params(quiet=1800.0, horizon=400.0, flake=0.0), seed)
    tap(noflake["false_kills"] == 0, "no stray denials, no false kill")
    # Stray denials at 5 % of requests, 9,000 node-minutes of quiet.
    def stray(**kw):
        q = dict(quiet=1800.0, horizon=400.0, flake=0.05)
        q.update(kw)
        return simulate(300, "poll", Params(**q), seed)["false_kills"]

    # the agent before the rechecks: a state denial counted at once
    s1, s3 = stray(confirm=1, rechecks=0, witness=False), stray(confirm=3, rechecks=0, witness=False)
    tap(s1 > s3, f"without rechecks, confirmation cuts false kills from stray denials: "
        f"confirm=1 {s1}, confirm=3 {s3}")
    s2 = stray(rechecks=0, witness=False)
    tap(s2 > 0, f"without rechecks, stray denials at 5 % kill healthy nodes with the default "
        f"confirm={p.confirm}: {s2} false kills")
    r1, r2 = stray(confirm=1), stray()
    tap(r1 < s1 and r2 == 0,
        f"with the agent's {p.rechecks} rechecks {p.recheck_gap:g} s apart and the canary: "
        f"confirm=1 {r1} false kills (without rechecks {s1}), confirm={p.confirm} {r2}")
    r3 = stray(probe_requests=1)
    tap(r3 == 0, f"canary = no, {p.rechecks} rechecks: confirm={p.confirm} {r3} false kills")
    lossy = simulate(300, "events", Params(quiet=1800.0, horizon=400.0, registry_loss=0.2), seed)
    tap(lossy["disconnected"] > 0 and lossy["max"] <= 30.0,
        f"nodes that lost the registry ({lossy['disconnected']}) still detect within 30 s "
        f"by fast polling: max {lossy['max']:.1f} s")
    again = simulate(300, "events", p, seed)
    tap(again == ev, "same seed, same figures")
    print(f"fleet-sim: {n_ok} passed, {n_fail} failed, 0 skipped")
    return 0 if n_fail == 0 else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="100,1000,10000",
                    help="comma-separated fleet sizes (default 100,1000,10000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--interval", type=float, default=Params.interval)
    ap.add_argument("--confirm", type=int, default=Params.confirm)
    ap.add_argument("--propagation", type=float, default=Params.propagation)
    ap.add_argument("--check", action="store_true", help="verify the model's invariants")
    a = ap.parse_args()
    if a.check:
        return check(a.seed)
    try:
        sizes = [int(x) for x in a.nodes.split(",")]
    except ValueError:
        ap.error(f"--nodes {a.nodes!r}: expected comma-separated integers")
    if any(s < 1 or s > 100000 for s in sizes):
        ap.error("--nodes: each size must be 1..100000")
    if a.interval <= 0 or a.confirm < 1 or a.propagation < 0:
        ap.error("--interval > 0, --confirm >= 1, --propagation >= 0")
    p = Params(interval=a.interval, confirm=a.confirm, propagation=a.propagation)
    report(sizes, p, a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
