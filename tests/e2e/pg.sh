#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# PostgreSQL 15 on lakecrypt volumes, end to end, in the QEMU guest: the
# story of `make demo` (tools/demo/pg.sh) without the narration, every
# step asserted.  run-all.sh runs it in the same boot, after its own cases
# (tests/e2e/check.sh attaches the disks: tools/qemu/pg-drives.sh); the
# results go to the same tally ("N passed, N failed, N skipped").
#
# Data directory and pg_wal on two project volumes of workspace finance
# (virtio disks pgdata, pgwal), temp files on an ephemeral cache volume
# (loop device over a tmpfs file) as temp_tablespaces.  Asserted: one KMS
# call per open; no plaintext marker on any raw disk before, during load,
# after the kill and after recovery (and the marker is found through the
# mapping, so the scan can find it); after `kms disable` the watcher
# revokes all three volumes, the workspace's termination hook (SIGQUIT to
# the processes holding them: PostgreSQL's immediate shutdown) runs and
# PostgreSQL is down within the window (watch interval + hook timeout +
# PG_WINDOW_S); I/O fails, no key is left, the cache
# reads zeros; after `kms enable` and reopening, crash recovery brings
# back every commit the writer saw acknowledged and every transaction
# pgbench reported; pg_amcheck and pg_checksums are clean.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
cd /lakecrypt/e2e || exit 1
LC_CASE=${LC_CASE:-e2e-pg}
. /lakecrypt/tests/lib.sh
. /lakecrypt/e2e/pg-lib.sh
mkdir -p "$LC_TMP"
export PATH=/lakecrypt/bin:$PATH

SOCK=/run/lakecrypt/pg.sock STATE=/tmp/pg-state AUDIT=/tmp/pg-audit.log CONF=/tmp/pg-agent.conf
WATCH_S=2	# [revocation] watch_interval_s
HOOK_MS=20000	# the termination hook's timeout_ms
PG_WINDOW_S=${PG_WINDOW_S:-30}	# slack for a loaded TCG machine
WINDOW_S=$((WATCH_S + HOOK_MS / 1000 + PG_WINDOW_S))	# PostgreSQL is down this long after the denial
PGLOG=/tmp/pg.log
ctl() { lakecryptctl --socket "$SOCK" --timeout 120 "$@"; }
oper() { lct-runas 1002 1002,991 lakecryptctl --socket "$SOCK" --timeout 120 "$@"; }
jget() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" | head -n1; }
# expect_exit CODE DESC CMD...
expect_exit() {
	local want=$1 d=$2 st
	shift 2
	"$@" >"$LC_TMP/x.out" 2>&1
	st=$?
	if [ "$st" -eq "$want" ]; then lc_ok "$d (exit $st)"; else
		lc_notok "$d (expected exit $want, got $st)"; lc_diag_file "$LC_TMP/x.out"; fi
}
# no_plaintext WHEN: the marker is on none of the raw disks
no_plaintext() {
	local d
	for d in "$DATA_DEV" "$WAL_DEV" /tmp/pgcache.img; do
		scan "$d" "$MARK" && lc_notok "$1: plaintext marker found on raw $d" ||
			lc_ok "$1: no plaintext marker on raw $d"
	done
}

# ---------------------------------------------------------------- machine
pg_machine || lc_bail "PostgreSQL disk (serial lc-pg) not attached or not mountable"
DATA_DEV=$(pg_disk pgdata) && WAL_DEV=$(pg_disk pgwal) || lc_bail "no scratch disks pgdata/pgwal"
lc_diag "PostgreSQL $(pg postgres --version), data on $DATA_DEV, WAL on $WAL_DEV"
modprobe loop
MARK=LCPG-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')-SECRET
mkdir -p "$STATE" /run/lakecrypt
cat >"$CONF" <<CONF
[agent]
socket = $SOCK
socket_mode = 0666
state_dir = $STATE
audit_log = $AUDIT
log = stderr

[revocation]
watch_interval_s = $WATCH_S
CONF
setsid lakecrypt-agent --config "$CONF" --foreground >/tmp/pg-agent.log 2>&1 &
AGENT_PID=$!
i=0
while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
lc_run "pg: agent answers ping" ctl ping

# ---------------------------------------------------------------- 1. admin
CMK=$(ctl --json kms create --description "finance CMK" | jget key_id)
[ -n "$CMK" ] && lc_ok "pg: admin creates the CMK" || lc_bail "kms create"
lc_run "pg: keyconfig finance-kc" ctl keyconfig create finance-kc --provider local --key "$CMK"
lc_run "pg: workspace finance bound, operated by group lakecrypt" \
	ctl workspace bind finance --keyconfig finance-kc --operators lakecrypt --devices "$DATA_DEV,$WAL_DEV,/dev/loop*"
lc_run "pg: admin sets finance's termination hook: SIGQUIT to the holders (PostgreSQL's immediate shutdown)" \
	ctl workspace hook finance --signal QUIT --timeout-ms $HOOK_MS
expect_exit 4 "pg: an operator may not set a hook" oper workspace hook finance --signal KILL

# ---------------------------------------------------------------- 2. operator
expect_exit 0 "pg: operator formats the data volume" \
	oper format "$DATA_DEV" --workspace finance --project pgdata --segment-size 1M --batch
expect_exit 0 "pg: operator formats the pg_wal volume" \
	oper format "$WAL_DEV" --workspace finance --project pgwal --segment-size 1M --batch
# Counted in the audit log, by project: the watcher's canary probes (every
# 2 s here, audited as cmk.canary) add KMS calls of their own meanwhile.
opens_unwraps() { grep '"op":"cmk.unwrap"' "$AUDIT" | grep -c "\"project\":\"$1\""; }
expect_exit 0 "pg: operator opens pgdata" oper open "$DATA_DEV" pgdata --workspace finance
expect_exit 0 "pg: operator opens pgwal" oper open "$WAL_DEV" pgwal --workspace finance
lc_eq "pg: one KMS unwrap for the data volume" 1 "$(opens_unwraps pgdata)"
lc_eq "pg: one KMS unwrap for the pg_wal volume" 1 "$(opens_unwraps pgwal)"
truncate -s 64M /tmp/pgcache.img
CLOOP=$(losetup -f) && losetup "$CLOOP" /tmp/pgcache.img || lc_bail "losetup cache"
expect_exit 0 "pg: operator opens the ephemeral cache volume" oper cache "$CLOOP" pgcache --workspace finance

# ---------------------------------------------------------------- 3. PostgreSQL
pg_fs /dev/mapper/pgdata /pgdata data && pg_fs /dev/mapper/pgwal /pgwal wal &&
	pg_fs /dev/mapper/pgcache /pgcache spill && lc_ok "pg: ext4 on the three volumes" ||
	lc_bail "file systems on the volumes"
lc_run "pg: initdb (data checksums, pg_wal on its own volume)" pg_initdb /pgdata/data /pgwal/wal
[ "$(readlink /pgdata/data/pg_wal)" = /pgwal/wal ] && lc_ok "pg: pg_wal links to the pgwal volume" ||
	lc_notok "pg: pg_wal links to the pgwal volume"
lc_run "pg: PostgreSQL starts as user postgres" pg_start /pgdata/data "$PGLOG" || lc_bail "pg_start: $(tail -n 5 $PGLOG)"
lc_eq "pg: the postmaster runs as uid $PG_UID" "$PG_UID" "$(awk '/^Uid:/ {print $2}' /proc/$PG_PID/status)"
lc_run "pg: temp tablespace on the cache volume" psql_q \
	"CREATE TABLESPACE spill LOCATION '/pgcache/spill'" \
	"ALTER SYSTEM SET temp_tablespaces = 'spill'" "SELECT pg_reload_conf()"
VERDIR=$(ls /pgcache/spill)
lc_run "pg: tables acked and secrets, the marker row" psql_q \
	"CREATE TABLE acked (n int PRIMARY KEY, t text); CREATE TABLE secrets (t text); INSERT INTO secrets VALUES ('$MARK');"
lc_run "pg: pgbench -i -s 2" pg pgbench -i -q -s 2
spill() { psql_q "SET work_mem = '64kB'; SELECT count(*) FROM (SELECT md5(g::text) || '$MARK' AS t FROM generate_series(1, 20000) g ORDER BY 1) s;"; }
lc_eq "pg: a sort that spills" 20000 "$(spill)"
[ -d "/pgcache/spill/$VERDIR/pgsql_tmp" ] && lc_ok "pg: its temp files went to the cache volume" ||
	lc_notok "pg: temp files on the cache volume (no /pgcache/spill/$VERDIR/pgsql_tmp)"
pg pgbench -n -T 5 -c 2 >"$LC_TMP/pgb0.out" 2>&1 && lc_ok "pg: pgbench 5 s ($(grep -m1 '^tps' "$LC_TMP/pgb0.out"))" ||
	{ lc_notok "pg: pgbench 5 s"; lc_diag_file "$LC_TMP/pgb0.out"; }
psql_q "CHECKPOINT" >/dev/null
scan /dev/mapper/pgdata "$MARK" && lc_ok "pg: the marker is readable through the data volume (the scan finds it)" ||
	lc_notok "pg: marker through /dev/mapper/pgdata"
no_plaintext "pg: after load"

# ---------------------------------------------------------------- 4. kill switch
H0=$(psql_q "SELECT count(*) FROM pgbench_history")
pg_writer "$MARK" "$LC_TMP/writer.out" &
WPID=$!
pg pgbench -n -T 900 -c 2 >"$LC_TMP/pgb.out" 2>&1 &
BPID=$!
i=0
while [ "$(acked "$LC_TMP/writer.out")" -lt 30 ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i + 1)); done
lc_diag "writer: $(acked "$LC_TMP/writer.out") commits acknowledged before the denial"
no_plaintext "pg: under load"
t0=$(uptime_ms)
lc_run "pg: admin disables the CMK" ctl kms disable "$CMK"
i=0
while ! all_revoked pgdata pgwal pgcache && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
t1=$(uptime_ms)
all_revoked pgdata pgwal pgcache && lc_ok "pg: the watcher revoked pgdata, pgwal and pgcache" ||
	lc_notok "pg: all three revoked ($(dmsetup status))"
i=0
while pg_alive && [ $(($(uptime_ms) - t0)) -lt $((WINDOW_S * 1000)) ]; do sleep 0.1; done
t2=$(uptime_ms)
pg_alive && lc_notok "pg: PostgreSQL stopped within $WINDOW_S s of the denial" ||
	lc_ok "pg: PostgreSQL stopped within $WINDOW_S s of the denial"
lc_diag "kms disable -> all revoked $((t1 - t0)) ms, -> postmaster gone $((t2 - t0)) ms (figures: make bench)"
# The clients end with the server; bounded in case it is not down.
for p in $WPID $BPID; do
	i=0
	while kill -0 $p 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
	kill $p 2>/dev/null
done
wait $WPID $BPID 2>/dev/null
ACK=$(acked "$LC_TMP/writer.out")
P=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$LC_TMP/pgb.out")
lc_diag "writer acknowledged $ACK commits; pgbench reported ${P:-?} transactions"
lc_diag_file "$LC_TMP/pgb.out" 6
grep -E 'PANIC|FATAL|immediate shutdown|terminat|shut down' "$PGLOG" >"$LC_TMP/down.txt"
[ -s "$LC_TMP/down.txt" ] && lc_ok "pg: the server log shows it going down" || lc_notok "pg: server log"
lc_diag_file "$LC_TMP/down.txt" 8
for v in pgdata pgwal pgcache; do
	dd if=/dev/mapper/$v of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null &&
		lc_notok "pg: $v: I/O fails" || lc_ok "pg: $v: I/O fails"
done
for v in pgdata pgwal pgcache; do
	set -- $(dmsetup status $v)
	lc_eq "pg: $v: revoked, no key loaded in the kernel" "revoked 0" "$4 $6"
done
lc_eq "pg: no lakecrypt key left in the kernel keyrings" 0 "$(grep -c ' logon .*lakecrypt:' /proc/keys)"
lc_eq "pg: the cache's disk reads zeros" 0 "$(nonzero /tmp/pgcache.img)"
no_plaintext "pg: after the kill"
grep -q '"op":"cmk.key_state".*"error_class":"denied"' "$AUDIT" && lc_ok "pg: audit: the watcher's denial" ||
	lc_notok "pg: audit: the watcher's denial"
lc_eq "pg: audit: three volumes revoked" 3 "$(grep '"op":"revoke"' "$AUDIT" | grep -c '"outcome":"success"')"
# The hook ran for finance.  Under load the failed WAL flush may have
# stopped PostgreSQL before the hook looked (0 holders then), and its
# outcome may say failure when a holder exited before its signal: the run
# is asserted here, what it signalled in section 6 (an idle server).
grep '"op":"workspace.terminate"' "$AUDIT" | grep '"workspace":"finance"' >"$LC_TMP/term.txt"
grep -q '"detail":"signal QUIT: ' "$LC_TMP/term.txt" &&
	lc_ok "pg: audit: finance's termination hook ran after the revocation" ||
	{ lc_notok "pg: audit: finance's termination hook ran"; lc_diag_file "$AUDIT" 60; }
lc_diag_file "$LC_TMP/term.txt" 3
ctl --json status | grep -A3 '"workspace": "finance"' | grep -q '"runs": [1-9]' && lc_ok "pg: status shows the hook's runs" ||
	lc_notok "pg: status shows the hook's last run"

# ---------------------------------------------------------------- 5. recovery
for m in /pgdata /pgwal /pgcache; do umount "$m" 2>/dev/null || umount -l "$m"; done
for v in pgdata pgwal pgcache; do expect_exit 0 "pg: operator closes revoked $v" oper close $v; done
expect_exit 5 "pg: the data volume does not open while the CMK is disabled" \
	oper open "$DATA_DEV" pgdata --workspace finance
lc_run "pg: admin enables the CMK" ctl kms enable "$CMK"
expect_exit 0 "pg: operator reopens pgdata" oper open "$DATA_DEV" pgdata --workspace finance
expect_exit 0 "pg: operator reopens pgwal" oper open "$WAL_DEV" pgwal --workspace finance
expect_exit 0 "pg: operator opens a fresh cache" oper cache "$CLOOP" pgcache --workspace finance
mount -t ext4 /dev/mapper/pgdata /pgdata && mount -t ext4 /dev/mapper/pgwal /pgwal &&
	lc_ok "pg: data and WAL file systems mount (journal replayed)" || lc_bail "mount after reopen"
# The cache is new and empty: its file system and the tablespace's
# directory are made again.
pg_fs /dev/mapper/pgcache /pgcache spill && mkdir "/pgcache/spill/$VERDIR" &&
	chown $PG_UID:$PG_UID "/pgcache/spill/$VERDIR" || lc_notok "pg: cache file system made again"
: >"$PGLOG.2"
chown $PG_UID "$PGLOG.2"
lc_run "pg: PostgreSQL starts on the reopened volumes" pg_start /pgdata/data "$PGLOG.2" ||
	lc_bail "restart: $(tail -n 5 $PGLOG.2)"
grep -E 'not properly shut down|automatic recovery|redo (starts|done)' "$PGLOG.2" >"$LC_TMP/redo.txt"
grep -q 'redo done\|redo starts' "$LC_TMP/redo.txt" && lc_ok "pg: it ran crash recovery" || lc_notok "pg: crash recovery in the log"
lc_diag_file "$LC_TMP/redo.txt"
lc_eq "pg: every acknowledged commit of the writer is there (rows 1..$ACK)" "$ACK" \
	"$(psql_q "SELECT count(*) FROM acked WHERE n <= $ACK")"
extra=$(psql_q "SELECT count(*) FROM acked WHERE n > $ACK")
[ "$extra" -le 1 ] && lc_ok "pg: at most the one unacknowledged commit beyond them ($extra)" ||
	lc_notok "pg: rows beyond the acknowledged ($extra)"
lc_eq "pg: the writer's rows are numbered without a gap" "$((ACK + extra))" "$(psql_q "SELECT coalesce(max(n), 0) FROM acked")"
H1=$(psql_q "SELECT count(*) FROM pgbench_history")
if [ -n "$P" ] && [ "$P" -gt 0 ] && [ $((H1 - H0)) -ge "$P" ] && [ $((H1 - H0)) -le $((P + 2)) ]; then
	lc_ok "pg: every transaction pgbench reported is there ($P reported, $((H1 - H0)) history rows)"
else
	lc_notok "pg: pgbench's reported transactions ($P reported, $((H1 - H0)) history rows)"
fi
lc_eq "pg: the marker row survived" 1 "$(psql_q "SELECT count(*) FROM secrets WHERE t = '$MARK'")"
lc_eq "pg: a sort spills again" 20000 "$(spill)"
[ -d "/pgcache/spill/$VERDIR/pgsql_tmp" ] && lc_ok "pg: to the fresh cache volume" || lc_notok "pg: temp files on the fresh cache"
pg pg_amcheck -d postgres --install-missing --heapallindexed --parent-check >"$LC_TMP/amcheck.out" 2>&1 &&
	lc_ok "pg: pg_amcheck --heapallindexed --parent-check is clean" ||
	{ lc_notok "pg: pg_amcheck"; lc_diag_file "$LC_TMP/amcheck.out"; }
psql_q "CHECKPOINT" >/dev/null
no_plaintext "pg: after recovery"
lc_run "pg: clean shutdown" pg_stop /pgdata/data
pg pg_checksums --check -D /pgdata/data >"$LC_TMP/cks.out" 2>&1 && lc_ok "pg: pg_checksums --check is clean" ||
	{ lc_notok "pg: pg_checksums"; lc_diag_file "$LC_TMP/cks.out"; }

# ---------------------------------------------------------------- 6. the hook alone
# Under load the failed WAL flush usually PANICs the server before the
# hook's signal arrives.  An idle server does no I/O that could fail: here
# only the hook can stop it (its log then says "immediate shutdown").
: >"$PGLOG.3"
chown $PG_UID "$PGLOG.3"
lc_run "pg: PostgreSQL starts again, idle" pg_start /pgdata/data "$PGLOG.3"
n0=$(grep -c '"op":"workspace.terminate"' "$AUDIT")
t0=$(uptime_ms)
lc_run "pg: admin revokes finance-kc by hand" ctl revoke --keyconfig finance-kc
while pg_alive && [ $(($(uptime_ms) - t0)) -lt $(((HOOK_MS / 1000 + PG_WINDOW_S) * 1000)) ]; do sleep 0.1; done
pg_alive && lc_notok "pg: the hook stopped the idle server" ||
	lc_ok "pg: the hook stopped the idle server ($(($(uptime_ms) - t0)) ms after the revoke command)"
# The hook's records of this revoke (written once its run ends).
i=0
while [ $i -lt 300 ]; do
	grep '"op":"workspace.terminate"' "$AUDIT" | tail -n +$((n0 + 1)) >"$LC_TMP/term2.txt"
	grep -q '[1-9][0-9]* signalled' "$LC_TMP/term2.txt" && break
	sleep 0.1
	i=$((i + 1))
done
grep -q 'signal QUIT: [1-9][0-9]* holder(s), [1-9][0-9]* signalled' "$LC_TMP/term2.txt" &&
	lc_ok "pg: audit: the hook signalled the idle server's processes" ||
	{ lc_notok "pg: audit: the hook signalled the idle server's processes"; lc_diag_file "$LC_TMP/term2.txt"; }
lc_diag_file "$LC_TMP/term2.txt"
grep -q 'received immediate shutdown request' "$PGLOG.3" &&
	lc_ok "pg: by its SIGQUIT (the log: received immediate shutdown request)" ||
	{ lc_notok "pg: the idle server's log shows the hook's SIGQUIT"; lc_diag_file "$PGLOG.3"; }
lc_diag "$(grep -c PANIC "$PGLOG.3") PANIC line(s) in the idle server's log"
for m in /pgdata /pgwal /pgcache; do umount "$m" 2>/dev/null || umount -l "$m"; done
for v in pgdata pgwal pgcache; do ctl close $v >/dev/null || lc_notok "pg: close $v"; done
losetup -d "$CLOOP"
kill "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
