#!/bin/bash
# PostgreSQL benchmark, run in the QEMU guest by tools/bench-pg.sh (entry
# bench/pg.sh; make bench runs it after the fio boot).  Figures and
# ratios, asserts nothing.
#
# Arguments (key=value, all optional):
#   scale=5 clients=4 duration=30   pgbench -i -s SCALE; pgbench -c CLIENTS
#                                   -j 2 -T DURATION (TPC-B-like, default script)
#   rounds=1                        each configuration RUNS times, interleaved
#   kill=1                          the kill-switch timings (0: skip)
#
# One ext4 file system holding the whole data directory (pg_wal included)
# on the virtio disk serial "pgbench" (1,025 MiB, a host file):
#   raw       the disk itself
#   dmc       dm-crypt aes-xts-plain64, 64-byte key, default flags
#   lc-1      lakecrypt (through the agent, local KMS), 1 segment of 1 GiB
#   lc-1024   lakecrypt, 1,024 segments of 1 MiB
# Kill switch (kill=1): data directory on lakecrypt (pgbench disk), pg_wal
# on a second volume (disk "pgbwal"), a cache volume for temp files; under
# pgbench load the CMK is disabled (watch interval 1 s; the workspace's
# termination hook sends SIGQUIT to the holders): printed are the
# time from `kms disable` to the postmaster gone, and from the agent's
# decision (the watcher's denied cmk.key_state audit record) to every
# volume failing I/O (lct-failwatch).
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
set -u
export PATH=/lakecrypt/bin:$PATH DM_DISABLE_UDEV=1
. /lakecrypt/e2e/pg-lib.sh
scale=5 clients=4 duration=30 rounds=1 kill=1
for a in "$@"; do
	case $a in
	scale=*|clients=*|duration=*|rounds=*|kill=*)
		v=${a#*=}
		[[ $v =~ ^[0-9]{1,6}$ ]] || { echo "LC: bench-pg: $a: not a number"; exit 2; }
		eval "${a%%=*}=$v" ;;
	*) echo "LC: bench-pg: unknown argument $a"; exit 2 ;;
	esac
done
say() { echo "LC: $*"; }
res=/tmp/bench-pg.results
: >"$res"
pg_machine || { say "bench-pg: no PostgreSQL disk"; exit 1; }
DEV=$(pg_disk pgbench) || { say "bench-pg: no disk with serial pgbench"; exit 1; }
insmod /lakecrypt/dm-lakecrypt.ko || exit 1
modprobe dm-crypt
modprobe loop
say "bench-pg: kernel $(uname -r), $(nproc) vCPUs, $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) MiB," \
    "$(pg postgres --version | sed 's/.*) //'), pgbench scale $scale, $clients clients, ${duration} s, $rounds round(s); disk $DEV $(($(blockdev --getsize64 "$DEV") >> 20)) MiB (virtio, host file)"

mkdir -p /run/lakecrypt
printf '[agent]\nsocket_mode = 0666\nstate_dir = /tmp/agent-state\naudit_log = /tmp/audit.log\nlog = stderr\n[revocation]\nwatch_interval_s = 1\n' >/tmp/agent.conf
lakecrypt-agent --config /tmp/agent.conf --foreground >/tmp/agent.log 2>&1 &
i=0
while [ ! -S /run/lakecrypt/agent.sock ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
ctl() { lakecryptctl --timeout 300 "$@"; }
jget() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" | head -n1; }
CMK=$(ctl --json kms create --description bench | jget key_id)
ctl keyconfig create bench --key "$CMK" >/dev/null &&
	ctl workspace bind bench --keyconfig bench --devices "/dev/vd*,/dev/loop*" >/dev/null ||
	{ say "bench-pg: agent setup failed"; exit 1; }
# The termination hook of the kill-switch part: SIGQUIT to the holders.
ctl workspace hook bench --signal QUIT --timeout-ms 20000 >/dev/null || say "bench-pg: setting the hook failed"

# setup NAME: the device of configuration NAME (made now); teardown NAME
setup() {
	case $1 in
	raw) echo "$DEV" ;;
	dmc)
		echo "0 $(blockdev --getsz "$DEV") crypt aes-xts-plain64 $(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n') 0 $DEV 0" |
			dmsetup create dmc && echo /dev/mapper/dmc ;;
	lc-1|lc-1024)
		local seg=1G
		[ "$1" = lc-1024 ] && seg=1M
		ctl format "$DEV" --workspace bench --project "$1" --segment-size $seg --batch --force >/dev/null &&
			ctl open "$DEV" "$1" --workspace bench >/dev/null || return 1
		say "bench-pg: $1: $(dmsetup status "$1" | cut -d' ' -f4-6) (state segments keys)" >&2
		echo "/dev/mapper/$1" ;;
	esac
}
teardown() {
	case $1 in
	raw) ;;
	dmc) dmsetup remove dmc ;;
	*) ctl close "$1" >/dev/null ;;
	esac
}

# one CONFIG: mkfs, initdb, pgbench -i, pgbench; appends "CONFIG tps lat_ms" to $res
one() {
	local cfg=$1 dev out tps lat
	dev=$(setup "$cfg") || { say "bench-pg: $cfg: setup failed"; return 1; }
	dev=$(echo "$dev" | tail -n1)
	pg_fs "$dev" /bench data && mkdir /bench/wal && chown $PG_UID:$PG_UID /bench/wal ||
		{ say "bench-pg: $cfg: mkfs failed"; teardown "$cfg"; return 1; }
	if pg_initdb /bench/data /bench/wal >/tmp/initdb.out 2>&1 && pg_start /bench/data /tmp/bench.log &&
	   pg pgbench -i -q -s "$scale" >/tmp/pgbi.out 2>&1; then
		psql_q "CHECKPOINT" >/dev/null
		out=$(pg pgbench -n -c "$clients" -j 2 -T "$duration" 2>&1)
		tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) (without.*/\1/p')
		lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
		if [ -n "$tps" ] && [ -n "$lat" ]; then
			echo "$cfg $tps $lat" >>"$res"
			say "$(printf 'bench-pg: %-8s %10s tps %10s ms average latency' "$cfg" "$tps" "$lat")"
		else
			say "bench-pg: $cfg: pgbench failed: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
		fi
		pg_stop /bench/data
	else
		say "bench-pg: $cfg: initdb/start/pgbench -i failed: $(tail -n 3 /tmp/initdb.out /tmp/bench.log /tmp/pgbi.out 2>/dev/null | tr '\n' ' ')"
		pg_stop /bench/data 2>/dev/null
	fi
	umount /bench
	teardown "$cfg"
}
r=1
while [ $r -le "$rounds" ]; do
	for c in raw dmc lc-1 lc-1024; do one $c; done
	r=$((r + 1))
done
awk '
{ n[$1]++; tps[$1] += $2; lat[$1] += $3 }
function avg(a, k) { return n[k] ? a[k] / n[k] : "" }
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "n/a" : sprintf("%.2fx", a / b) }
END {
	printf "LC: %-10s %12s %16s\n", "pgbench", "tps", "latency avg ms"
	split("raw dmc lc-1 lc-1024", C, " ")
	for (i = 1; i <= 4; i++)
		printf "LC: %-10s %12s %16s\n", C[i], n[C[i]] ? sprintf("%.1f", avg(tps, C[i])) : "n/a",
			n[C[i]] ? sprintf("%.2f", avg(lat, C[i])) : "n/a"
	printf "LC: %-22s %10s %14s   goal (not asserted)\n", "ratio", "tps", "latency"
	for (i = 3; i <= 4; i++)
		printf "LC: %-22s %10s %14s   tps >= 1.0x dm-crypt\n", C[i] "/dmc", ratio(avg(tps, C[i]), avg(tps, "dmc")),
			ratio(avg(lat, C[i]), avg(lat, "dmc"))
	printf "LC: %-22s %10s %14s\n", "dmc/raw", ratio(avg(tps, "dmc"), avg(tps, "raw")), ratio(avg(lat, "dmc"), avg(lat, "raw"))
}' "$res"

# ---- the kill switch under load
WDEV=$(pg_disk pgbwal) || kill=0
if [ "$kill" = 1 ]; then
	ctl format "$DEV" --workspace bench --project kdata --segment-size 1M --batch --force >/dev/null &&
	ctl format "$WDEV" --workspace bench --project kwal --segment-size 1M --batch --force >/dev/null &&
	ctl open "$DEV" kdata --workspace bench >/dev/null && ctl open "$WDEV" kwal --workspace bench >/dev/null ||
		{ say "kill: volumes failed"; exit 1; }
	truncate -s 64M /tmp/kcache.img
	KL=$(losetup -f) && losetup "$KL" /tmp/kcache.img && ctl cache "$KL" kcache --workspace bench >/dev/null ||
		{ say "kill: cache failed"; exit 1; }
	pg_fs /dev/mapper/kdata /kdata data && pg_fs /dev/mapper/kwal /kwal wal && pg_fs /dev/mapper/kcache /kcache spill &&
		pg_initdb /kdata/data /kwal/wal >/dev/null 2>&1 && pg_start /kdata/data /tmp/kill.log &&
		psql_q "CREATE TABLESPACE spill LOCATION '/kcache/spill'" "ALTER SYSTEM SET temp_tablespaces = 'spill'" \
			"SELECT pg_reload_conf()" >/dev/null && pg pgbench -i -q -s "$scale" >/dev/null 2>&1 ||
		{ say "kill: PostgreSQL setup failed: $(tail -n 3 /tmp/kill.log)"; exit 1; }
	pg pgbench -n -c "$clients" -j 2 -T 900 >/tmp/kill-pgb.out 2>&1 &
	bpid=$!
	lct-failwatch 120 /dev/mapper/kdata /dev/mapper/kwal /dev/mapper/kcache >/tmp/failwatch.out 2>&1 &
	fpid=$!
	sleep 5
	t0=$(now_ms)
	ctl kms disable "$CMK" >/dev/null
	i=0
	while pg_alive && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
	t_down=$(now_ms)
	wait $fpid
	kill $bpid 2>/dev/null
	wait $bpid 2>/dev/null
	# The watcher's decision: its denied cmk.key_state record (UTC, ms).
	dt=$(grep '"op":"cmk.key_state"' /tmp/audit.log | grep '"denied"' | head -n1 | sed -n 's/.*"time":"\([^"]*\)".*/\1/p')
	dec=
	if [ -n "$dt" ]; then
		s=$(date -u -d "$(echo "${dt%.*}" | tr T ' ')" +%s 2>/dev/null)
		m=${dt##*.}; m=${m%Z}
		[ -n "$s" ] && dec=$((s * 1000 + 10#$m))
	fi
	last=0 never=0
	while read -r d t; do
		[ "$t" = never ] && { never=1; continue; }
		[ "$t" -gt "$last" ] && last=$t
	done </tmp/failwatch.out
	say "kill: 3 volumes (data, pg_wal, cache), pgbench $clients clients running, watch_interval_s = 1"
	say "kill: kms disable -> the watcher's decision: $([ -n "$dec" ] && echo "$((dec - t0)) ms" || echo "n/a (no audit record)")"
	if [ -n "$dec" ] && [ $never = 0 ]; then
		say "kill: the watcher's decision -> every volume failing I/O: $((last - dec)) ms"
	else
		say "kill: the watcher's decision -> every volume failing I/O: n/a ($(tr '\n' ' ' </tmp/failwatch.out))"
	fi
	if pg_alive; then
		say "kill: kms disable -> PostgreSQL stopped: not within 60 s (still running)"
	else
		say "kill: kms disable -> PostgreSQL stopped: $((t_down - t0)) ms (termination hook runs: $(grep '"op":"workspace.terminate"' /tmp/audit.log | sed -n 's/.*"detail":"\([^"]*\)".*/\1/p' | sed 's/, [0-9]* still running after [0-9]* ms//' | tr '\n' ';'))"
	fi
	say "kill: the server's last words: $(grep -E 'PANIC' /tmp/kill.log | head -n1 | cut -c1-160)"
fi
say "bench-pg: done"
