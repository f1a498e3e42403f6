#!/bin/bash
# The etcd v3 client (agent/lib/etcd.c) against a real 3-member etcd
# cluster on loopback (Debian's etcd-server, tests/etcd/cluster.sh: mutual
# TLS, certificates made here, ephemeral ports), through the test driver
# tests/etcd/etcd-client.c built with ASan and UBSan.
# Then three lakecrypt agents sharing the cluster as their registry
# (tests/etcd/fleet.sh), and three sharing one CMK's probe through a lease
# (tests/etcd/fleet-probe.sh: local-kms behind stunnel4 as the KMS), and
# two listing and clearing revocation records (tests/etcd/fleet-revocation.sh).
# TAP out; ends with "N passed, N failed, N skipped".  Nothing is skipped:
# a missing tool is a failure (run `make setup`).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
work=$(mktemp -d /tmp/lakecrypt-etcd.XXXXXX)
pass=0 fail=0 n=0
bgpids=()

cleanup() {
	for p in "${bgpids[@]}"; do kill "$p" 2>/dev/null; done
	tests/etcd/cluster.sh stop "$work" >/dev/null 2>&1
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/# /' | tail -n 20; }
finish() { echo "$pass passed, $fail failed, 0 skipped"; [ $fail -eq 0 ]; exit $?; }
check() {	# check DESC COND-EXIT-STATUS [DETAIL]
	if [ "$2" -eq 0 ]; then ok "$1"; else notok "$1" "${3:-$last}"; fi
}

for t in /usr/bin/etcd /usr/bin/openssl /usr/bin/python3; do
	[ -x "$t" ] || { notok "tool $t present (run make setup: etcd-server)"; finish; }
done
if out=$(make -s -C agent SAN=1 etcdtest 2>&1); then ok "build the etcd test driver (ASan+UBSan)"
else notok "build the etcd test driver (ASan+UBSan)" "$out"; finish; fi
client=$top/build/agent-san/etcdtest/etcd-client
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

if out=$(tests/etcd/cluster.sh start "$work" 2>&1); then
	# shellcheck disable=SC1091
	. "$work/env"
	ok "3-member etcd $(/usr/bin/etcd --version | sed -n 's/^etcd Version: //p') on loopback, mutual TLS: $ETCD_ENDPOINTS"
else
	notok "cluster up" "$out"; finish
fi
tls=(--ca "$ETCD_CA" --cert "$ETCD_CERT" --key "$ETCD_KEY")
all=(--endpoints "$ETCD_ENDPOINTS" "${tls[@]}")

last=""
run() { last=$(timeout 120 "$client" "$@" 2>&1); echo "$last" >>"$work/client.log"; }
field() { echo "$last" | sed -n "s/^$1=//p" | head -n1; }
sane() { ! grep -qE 'Sanitizer|runtime error' <<<"$last"; }
# expect DESC ok|CLASS MAX_MS ARGS...: the result line's class, within a bound.
expect() {
	local desc=$1 want=$2 max=$3 ms cls
	shift 3
	run "$@"
	ms=$(echo "$last" | sed -n 's/^result .*ms=\([0-9]*\).*/\1/p')
	if [ "$want" = ok ]; then cls=$(grep -q '^result ok' <<<"$last" && echo ok)
	else cls=$(echo "$last" | sed -n 's/^result error class=\([a-z_]*\).*/\1/p'); fi
	if [ "$cls" = "$want" ] && [ -n "$ms" ] && [ "$ms" -le "$max" ] && sane; then
		ok "$desc: $want in $ms ms (bound $max)"
	else
		notok "$desc: expected $want within $max ms" "$last"
	fi
}
code() { echo "$last" | sed -n 's/^result error .*code=\(-\{0,1\}[0-9]*\).*/\1/p'; }
kvs() { echo "$last" | sed -n 's/^kv key=\([^ ]*\) value=\([^ ]*\) .*/\1=\2/p' | tr '\n' ' '; }
# until_ok ARGS...: the cluster is back (a leader elected): up to 30 tries.
until_ok() {
	for _ in $(seq 30); do run "$@"; grep -q '^result ok' <<<"$last" && return 0; sleep 0.5; done
	return 1
}

# ---- KV --------------------------------------------------------------------------
expect "put /lc/kc/a" ok 5000 "${all[@]}" put /lc/kc/a alpha
expect "put /lc/kc/b" ok 5000 "${all[@]}" put /lc/kc/b beta
expect "put /lc/kcx (a sibling outside the prefix)" ok 5000 "${all[@]}" put /lc/kcx other
expect "range one key" ok 5000 "${all[@]}" get /lc/kc/a
[ "$(kvs)" = "/lc/kc/a=alpha " ] && [ "$(field 'revision' | cut -d' ' -f1)" -ge 2 ]
check "range of one key gives its value and the store revision" $?
expect "range a prefix" ok 5000 "${all[@]}" prefix /lc/kc/
[ "$(kvs)" = "/lc/kc/a=alpha /lc/kc/b=beta " ] && grep -q 'count=2$' <<<"$last"
check "prefix /lc/kc/ gives exactly a and b, in key order (not /lc/kcx)" $?
# A prefix read in pages (lc_etcd_range_prefix_all, the registry's full
# read): 23 keys in pages of 5, all at one revision, nothing outside.
for i in $(seq -w 1 23); do run "${all[@]}" put "/lc/pg/k$i" "v$i"; done
run "${all[@]}" put /lc/pgx outside
want=$(for i in $(seq -w 1 23); do printf '/lc/pg/k%s=v%s ' "$i" "$i"; done)
expect "paged prefix read, pages of 5" ok 5000 "${all[@]}" prefix-paged /lc/pg/ 5
[ "$(kvs)" = "$want" ] && grep -q 'count=23$' <<<"$last"
check "pages of 5 give the 23 keys of /lc/pg/ once each, in key order (not /lc/pgx)" $?
expect "paged prefix read, pages of 1" ok 5000 "${all[@]}" prefix-paged /lc/pg/ 1
[ "$(kvs)" = "$want" ]; check "pages of 1 give the same 23 keys" $?
expect "paged prefix read, a page larger than the prefix" ok 5000 "${all[@]}" prefix-paged /lc/pg/ 100
[ "$(kvs)" = "$want" ]; check "one page of 100 gives the same 23 keys" $?
expect "paged prefix read beyond its cap of 22 keys: refused" misconfigured 5000 "${all[@]}" prefix-paged /lc/pg/ 5 22
[ "$(code)" = -7 ]; check "...with -E2BIG" $? "$last"
expect "range an absent key" ok 5000 "${all[@]}" get /lc/none
[ -z "$(kvs)" ] && grep -q 'count=0$' <<<"$last"
check "an absent key: no kv, count 0" $?
run "${all[@]}" get /lc/kc/a; mod_a=$(echo "$last" | sed -n 's/.* mod=\([0-9]*\).*/\1/p')
expect "put a again" ok 5000 "${all[@]}" put /lc/kc/a alpha2
expect "range at an older revision" ok 5000 "${all[@]}" get /lc/kc/a "$mod_a"
[ "$(kvs)" = "/lc/kc/a=alpha " ]
check "range with revision $mod_a reads the value of then" $?

# ---- transactions: compare-and-swap ---------------------------------------------------
expect "CAS from a stale mod_revision" ok 5000 "${all[@]}" cas /lc/kc/a "$mod_a" lost
grep -qx conflict <<<"$last"; check "a stale mod_revision loses: conflict, not an error" $?
run "${all[@]}" get /lc/kc/a; mod_a2=$(echo "$last" | sed -n 's/.* mod=\([0-9]*\).*/\1/p')
expect "CAS from the current mod_revision" ok 5000 "${all[@]}" cas /lc/kc/a "$mod_a2" alpha3
! grep -qx conflict <<<"$last"; check "the current mod_revision wins" $?
expect "create-only CAS (mod_revision 0) on an existing key" ok 5000 "${all[@]}" cas /lc/kc/a 0 again
grep -qx conflict <<<"$last"; check "create-only on an existing key: conflict" $?
expect "create-only CAS on a new key" ok 5000 "${all[@]}" cas /lc/kc/new 0 fresh
! grep -qx conflict <<<"$last"; check "create-only on a new key: written" $?
for k in 1 2 3; do
	expect "race $k: two writers CAS /lc/race$k from the same revision at once" ok 5000 "${all[@]}" race /lc/race$k
	grep -q '^winners=1 losers=1$' <<<"$last"; check "race $k: exactly one wins, the other sees the conflict" $?
	won=$(echo "$last" | sed -n 's/^writer \([AB]\): won$/\1/p')
	run "${all[@]}" get /lc/race$k
	[ "$(kvs)" = "/lc/race$k=writer-$won " ]; check "race $k: the stored value is the winner's (writer-$won)" $?
done

# ---- watch: order from a start revision, live, progress --------------------------------
run "${all[@]}" revision; r0=$(field revision | cut -d' ' -f1)
for op in "put /lc/w/a 1" "put /lc/w/b 2" "del /lc/w/a" "put /lc/w/a 3"; do
	# shellcheck disable=SC2086
	run "${all[@]}" $op
done
expect "watch /lc/w/ from revision $((r0 + 1))" ok 10000 "${all[@]}" watch /lc/w/ $((r0 + 1)) 4 prefix
evs=$(echo "$last" | sed -n 's/^ev \([A-Z]*\) \([^ ]*\) \([^ ]*\) \([0-9]*\)$/\1 \2 \3/p' | tr '\n' ',')
revs=$(echo "$last" | sed -n 's/^ev .* \([0-9]*\)$/\1/p' | tr '\n' ' ')
[ "$evs" = "PUT /lc/w/a 1,PUT /lc/w/b 2,DELETE /lc/w/a -,PUT /lc/w/a 3," ]
check "the watch replays put, put, delete, put in order" $?
[ "$revs" = "$((r0 + 1)) $((r0 + 2)) $((r0 + 3)) $((r0 + 4)) " ]
check "with revisions $((r0 + 1))..$((r0 + 4)), one each" $? "$last"
[ "$(field next)" = $((r0 + 5)) ]; check "next revision to watch from: $((r0 + 5))" $?

"$client" "${all[@]}" watch /lc/live/ 0 2 prefix >"$work/live.out" 2>&1 &
live=$!; bgpids+=($live)
for _ in $(seq 100); do grep -q '^created' "$work/live.out" && break; sleep 0.1; done
run "${all[@]}" put /lc/live/x 1; run "${all[@]}" del /lc/live/x
wait "$live"; rc=$?; last=$(cat "$work/live.out")
[ $rc -eq 0 ] && [ "$(grep -c '^ev ' <<<"$last")" -eq 2 ] && grep -q '^ev PUT /lc/live/x 1' <<<"$last" &&
	grep -q '^ev DELETE /lc/live/x' <<<"$last" && sane
check "a live watch from now sees the put and the delete made after it started" $?
expect "progress notification on a quiet watch" ok 10000 "${all[@]}" watch /lc/quiet/ 0 0 prefix
run2=$last; run "${all[@]}" revision; now=$(field revision | cut -d' ' -f1); last=$run2
p=$(sed -n 's/^progress //p' <<<"$last"); [ -n "$p" ] && [ "$p" -le "$now" ] && [ "$p" -ge "$r0" ]
check "the progress notification carries the store revision ($p)" $?

expect "a watch ended by its stop flag" ok 10000 --max-ms 1500 "${all[@]}" watch /lc/quiet/ 0 100 prefix
grep -q '^stopped after 1500 ms' <<<"$last" && grep -q '^progress' <<<"$last"
check "...after progress notifications, with no error" $?

# ---- leases ---------------------------------------------------------------------------
expect "lease grant (TTL 2 s)" ok 5000 "${all[@]}" lease-grant 2
lease=$(echo "$last" | sed -n 's/^lease=\([0-9]*\).*/\1/p')
expect "put under the lease" ok 5000 "${all[@]}" put-lease /lc/probe/cmk1 holder "$lease"
rl=$(field revision)
expect "keepalive of a live lease" ok 5000 "${all[@]}" keepalive "$lease"
[ "$(field ttl)" -ge 1 ]; check "keepalive renews: ttl $(field ttl) s" $?
expect "watch the leased key until its lease expires" ok 20000 "${all[@]}" watch /lc/probe/cmk1 $((rl + 1)) 1
grep -q '^ev DELETE /lc/probe/cmk1' <<<"$last"; check "lease expiry deletes the key (a DELETE event)" $?
expect "range after expiry" ok 5000 "${all[@]}" get /lc/probe/cmk1
[ -z "$(kvs)" ]; check "the leased key is gone" $?
expect "keepalive of an expired lease" invalid 5000 "${all[@]}" keepalive "$lease"
[ "$(code)" = -2 ]; check "an expired lease: -ENOENT" $?
expect "grant another lease" ok 5000 "${all[@]}" lease-grant 60
lease2=$(echo "$last" | sed -n 's/^lease=\([0-9]*\).*/\1/p')
run "${all[@]}" put-lease /lc/probe/cmk2 holder "$lease2"
expect "revoke the lease" ok 5000 "${all[@]}" revoke "$lease2"
run "${all[@]}" get /lc/probe/cmk2; [ -z "$(kvs)" ]; check "revoking the lease deletes its key at once" $?
expect "revoke it again" invalid 5000 "${all[@]}" revoke "$lease2"

# ---- compaction -----------------------------------------------------------------------
run "${all[@]}" revision; rc_now=$(field revision | cut -d' ' -f1)
expect "compact up to revision $rc_now" ok 5000 "${all[@]}" compact "$rc_now"
expect "watch from a compacted revision" invalid 10000 "${all[@]}" watch /lc/w/ $((r0 + 1)) 4 prefix
[ "$(code)" = -34 ] && grep -q "^compacted $rc_now$" <<<"$last" && grep -q 're-read' <<<"$last"
check "a compacted start revision is reported as compaction (-ERANGE, oldest kept $rc_now): re-read" $?
expect "range at a compacted revision" invalid 5000 "${all[@]}" get /lc/kc/a "$mod_a"
[ "$(code)" = -34 ]; check "range at a compacted revision: -ERANGE" $?

# ---- TLS: who may talk to the cluster --------------------------------------------------
expect "a client certificate from another CA" misconfigured 5000 --endpoints "$ETCD_ENDPOINTS" \
	--ca "$ETCD_CA" --cert "$ETCD_BAD_CERT" --key "$ETCD_BAD_KEY" get /lc/kc/a
grep -q 'refused our client certificate' <<<"$last"; check "the message says the member refused our certificate" $?
expect "no client certificate" misconfigured 5000 --endpoints "$ETCD_ENDPOINTS" --ca "$ETCD_CA" get /lc/kc/a
expect "members' certificates checked against another CA" transient 5000 --endpoints "$ETCD_ENDPOINTS" \
	--ca "$ETCD_OTHER_CA" --cert "$ETCD_CERT" --key "$ETCD_KEY" get /lc/kc/a
grep -q 'TLS handshake failed' <<<"$last"; check "...refused as a TLS handshake failure" $?
expect "an endpoint that is not https" misconfigured 1000 --endpoints "http://${ETCD_ENDPOINTS#https://}" "${tls[@]}" get /lc/kc/a
expect "a missing client key file" misconfigured 1000 --endpoints "$ETCD_ENDPOINTS" --ca "$ETCD_CA" \
	--cert "$ETCD_CERT" --key "$work/nonexistent.key" get /lc/kc/a

# ---- a hostile gateway: every reply is bad input until parsed ----------------------------
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p_fake=$(free_port)
/usr/bin/python3 tests/etcd/fake-gateway.py "$p_fake" "$ETCD_MEMBER_CERT" "$ETCD_MEMBER_KEY" "$ETCD_CA" 2>"$work/fake.log" &
bgpids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p_fake") 2>/dev/null && break; sleep 0.1; done
fake=(--endpoints "https://127.0.0.1:$p_fake" "${tls[@]}")
fake_real=(--endpoints "https://127.0.0.1:$p_fake,$ETCD_ENDPOINTS" "${tls[@]}")
# expect_code DESC CLASS CODE MAX_MS ARGS...
expect_code() {
	local desc=$1 cls=$2 c=$3 max=$4
	shift 4
	expect "$desc" "$cls" "$max" "$@"
	[ "$(code)" = "$c" ] || notok "$desc: error code $c expected" "$last"
}
expect "the fake gateway's well-formed range reply is accepted (the control case)" ok 5000 "${fake[@]}" get good
[ "$(kvs)" = "a=v b=v " ]; check "...with both keys" $?
for s in dup-names int-number negative order twice future-kv count-lt bad-b64 trailing not-json kvs-object no-header; do
	expect_code "hostile range reply '$s': refused" transient -74 5000 "${fake[@]}" get "$s"
done
expect_code "a value of 1 MiB + 1 byte: refused" transient -7 5000 "${fake[@]}" get big-value
expect_code "10,001 kvs in one range reply: refused" transient -7 5000 "${fake[@]}" get many-kvs
for s in empty back rev; do
	expect_code "hostile paged read 'pgm-$s/' (more with no kv, a page backwards, another revision): refused" \
		transient -74 5000 "${fake[@]}" prefix-paged "pgm-$s/" 1
done
expect_code "a paged read whose every page says more: stops at its cap (40 keys)" misconfigured -7 10000 \
	"${fake[@]}" prefix-paged pgm-endless/ 1 40
expect_code "a 9 MiB reply: cut off at the 8 MiB bound" transient -90 10000 "${fake[@]}" get huge
expect "a hostile reply to a read: the next member answers" ok 5000 "${fake_real[@]}" get dup-names
grep -q 'member=1' <<<"$last"; check "...member 1 (the real cluster)" $?
expect_code "a member that never answers a read: timeout" transient -110 3000 --timeout 1000 "${fake[@]}" get hang
expect "...and the read fails over" ok 5000 --timeout 1000 "${fake_real[@]}" get hang
expect_code "a member that never answers a write: outcome unknown, not sent again" transient -110 3000 \
	--timeout 1000 "${fake_real[@]}" put hang v
grep -q 'outcome unknown' <<<"$last"; check "...the message says the outcome is unknown" $?
run "${all[@]}" get hang; [ -z "$(kvs)" ]; check "...and the write did not go to the next member" $?
expect_code "the same on a connection kept from an earlier read" transient -110 3000 \
	--timeout 1000 "${fake_real[@]}" get-put good hang2 v
grep -q '^first member=0' <<<"$last" && grep -q 'outcome unknown' <<<"$last"
check "...(the read was answered by the hostile member, the write timed out there)" $?
run "${all[@]}" get hang2; [ -z "$(kvs)" ]; check "...and that write did not go to the next member either" $?
expect_code "a reply dripping a byte a second: the total timeout bounds it" transient -110 4000 --timeout 2000 "${fake[@]}" get drip
expect "an HTML 503: transient, the next member answers" ok 5000 "${fake_real[@]}" get unavailable-html
expect_code "gRPC PermissionDenied: misconfigured, never denied" misconfigured -13 5000 "${fake[@]}" get denied
expect_code "a txn reply with more responses than operations" transient -74 5000 "${fake[@]}" cas txn-responses 0 v
expect_code "a txn reply with succeeded as a string" transient -74 5000 "${fake[@]}" cas txn-succeeded-string 0 v
expect_code "a keepalive stream with two answers" transient -74 5000 "${fake[@]}" keepalive 7
expect_code "a keepalive answer for another lease" transient -74 5000 "${fake[@]}" keepalive 8
expect_code "a keepalive stream error: its gRPC code (Unavailable) counts" transient -11 5000 "${fake[@]}" keepalive 9
expect "...and a keepalive is a read: the next member answers (lease not found there)" invalid 5000 "${fake_real[@]}" keepalive 9
[ "$(code)" = -2 ] && grep -q 'has expired or was revoked' <<<"$last"; check "...-ENOENT from the real cluster" $?
expect_code "a watch whose revisions go back" transient -74 5000 "${fake[@]}" watch watch-reorder 0 5
expect_code "a watch that goes silent: the idle bound ends it" transient -110 5000 --idle 1500 "${fake[@]}" watch watch-silent 0 5
expect_code "a watch message of 9 MiB: cut at the bound" transient -7 10000 "${fake[@]}" watch watch-huge-line 0 5
expect_code "a watch stream that ends" transient -32 5000 "${fake[@]}" watch watch-ends 0 5
expect_code "a watch stream error (gRPC Unavailable)" transient -11 5000 "${fake[@]}" watch watch-error 0 5

# ---- failover ---------------------------------------------------------------------------
expect "a first member that accepts TCP and never answers: failover after the connect timeout" ok 8000 \
	--blackhole --connect-timeout 1000 "${all[@]}" get /lc/kc/a
[ "$(echo "$last" | sed -n 's/.*member=\([0-9]*\).*/\1/p')" = 1 ] && [ "$(kvs)" = "/lc/kc/a=alpha3 " ]
check "the answer came from the next member" $?
expect "a write too, since the request never left" ok 8000 --blackhole --connect-timeout 1000 "${all[@]}" put /lc/kc/bh x

"$client" --idle 30000 "${all[@]}" watch /lc/fo/ 0 100 prefix >"$work/fo.out" 2>&1 &
fo=$!; bgpids+=($fo)
for _ in $(seq 100); do grep -q '^created' "$work/fo.out" && break; sleep 0.1; done
run "${all[@]}" put /lc/fo/1 before
for _ in $(seq 100); do grep -q '^ev PUT /lc/fo/1' "$work/fo.out" && break; sleep 0.1; done
tests/etcd/cluster.sh kill "$work" 1
wait "$fo"; last=$(cat "$work/fo.out")
cls=$(echo "$last" | sed -n 's/^result error class=\([a-z]*\).*/\1/p'); fo_next=$(field next)
[ "$cls" = transient ] && [ -n "$fo_next" ] && sane
check "killing the watched member ends the watch as transient, with the revision to resume from ($fo_next)" $?
# Member 1 may have been the leader: a write sent during the election
# times out with its outcome unknown, so it is made as a create-only CAS
# and repeated until it is decided (written, or found written).
for _ in $(seq 10); do
	run "${all[@]}" cas /lc/fo/2 0 after
	grep -q '^result ok' <<<"$last" && break
	grep -q 'class=transient' <<<"$last" || break
done
grep -q '^result ok' <<<"$last" && grep -qE 'member=[12]' <<<"$last" && sane
check "member 1 killed: a create-only write is decided by another member" $?
expect "member 1 killed: range" ok 10000 "${all[@]}" prefix /lc/fo/
[ "$(kvs)" = "/lc/fo/1=before /lc/fo/2=after " ]; check "...reads both writes" $?
expect "member 1 killed: the watch resumes from $fo_next on another member" ok 10000 "${all[@]}" watch /lc/fo/ "$fo_next" 1 prefix
[ "$(grep -c '^ev ' <<<"$last")" = 1 ] && grep -q '^ev PUT /lc/fo/2 after' <<<"$last"
check "...and gets exactly the write made while it was down" $?

tests/etcd/cluster.sh kill "$work" 2; tests/etcd/cluster.sh kill "$work" 3
expect "every member killed: range fails in bounded time" transient 3000 --connect-timeout 1000 --timeout 2000 "${all[@]}" get /lc/kc/a
expect "every member killed: a write fails in bounded time" transient 3000 --connect-timeout 1000 --timeout 2000 "${all[@]}" put /lc/kc/a x
expect "every member killed: a watch fails in bounded time" transient 3000 --connect-timeout 1000 "${all[@]}" watch /lc/kc/ 0 1 prefix
for m in 1 2 3; do tests/etcd/cluster.sh restart "$work" $m; done
until_ok "${all[@]}" get /lc/kc/a; check "all members restarted: the cluster answers again" $?
[ "$(kvs)" = "/lc/kc/a=alpha3 " ]; check "...with the data written before" $?
expect "after the restart: watch catches up from $fo_next" ok 10000 "${all[@]}" watch /lc/fo/ "$fo_next" 1 prefix
grep -q '^ev PUT /lc/fo/2 after' <<<"$last"; check "...replaying the write made during the outage of member 1" $?
expect "after the restart: CAS works" ok 5000 "${all[@]}" cas /lc/kc/new 0 again
grep -qx conflict <<<"$last"; check "...and still sees the existing key" $?


# ---- agents in a fleet (tests/etcd/fleet.sh) ---------------------------------------------
. "$top/tests/etcd/fleet.sh"
# ---- shared probes (tests/etcd/fleet-probe.sh) ------------------------------------------
. "$top/tests/etcd/fleet-probe.sh"
# ---- revocation list / clear (tests/etcd/fleet-revocation.sh) ---------------------------
. "$top/tests/etcd/fleet-revocation.sh"

finish
