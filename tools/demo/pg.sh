#!/bin/bash
# The lakecrypt demo (make demo): PostgreSQL 15 on lakecrypt volumes, run
# inside the QEMU machine by tools/demo.sh, which attaches the PostgreSQL
# disk and two scratch disks (tools/qemu/pg-drives.sh).  Every line meant
# for the reader starts with "LC: "; the last line says whether each
# promise held.  The same story, asserted: tests/e2e/pg.sh.
#
# Args: [aws KEY_ARN CA_PEM_BASE64 ACCESS_KEY_ID SECRET_ACCESS_KEY]
#   (no args: the embedded local KMS; aws: AWS KMS emulated by local-kms on
#   the host behind stunnel, see tools/demo.sh --kms aws)
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
set -u
export PATH=/lakecrypt/bin:$PATH DM_DISABLE_UDEV=1
. /lakecrypt/e2e/pg-lib.sh

say() { echo "LC: $*"; }
step() { echo "LC:"; echo "LC: == $* =="; }
fail() { echo "LC: demo failed: $*"; echo "LC: agent log:"; tail -n 15 /tmp/agent.log | sed 's/^/LC:   /'; exit 1; }
# Show a command and its output; stop the demo if it fails.
run() {
	echo "LC: \$ $*"
	local rc=0
	"$@" >/tmp/demo.out 2>&1 || rc=$?
	sed 's/^/LC:   /' /tmp/demo.out
	[ $rc -eq 0 ] || fail "exit $rc"
}
run_fails() {
	echo "LC: \$ $*"
	local rc=0
	"$@" >/tmp/demo.out 2>&1 || rc=$?
	sed 's/^/LC:   /' /tmp/demo.out
	[ $rc -ne 0 ] || fail "that should have failed"
	echo "LC:   (exit $rc)"
}
# The same, showing only the output lines that match PATTERN (ERE).
runq() {
	local pat=$1 rc=0
	shift
	echo "LC: \$ $*"
	"$@" >/tmp/demo.out 2>&1 || rc=$?
	if [ $rc -eq 0 ]; then grep -E "$pat" /tmp/demo.out | sed 's/^/LC:   /'; else sed 's/^/LC:   /' /tmp/demo.out; fi
	[ $rc -eq 0 ] || fail "exit $rc"
}
BRIEF='^ *(Name|State|Segments|Keys loaded|Workspace|CMK id|KEK held):'
admin() { lakecryptctl --timeout 120 "$@"; }				# root: the security admin
operator() { lct-runas 1002 1002,991 lakecryptctl --timeout 120 "$@"; }	# group lakecrypt
jget() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" | head -n1; }
# KMS unwrap calls, every provider's counter added up
unwraps() { admin --json status | grep -o '"unwrap": *[0-9]*' | awk -F: '{n += $2} END {print n + 0}'; }
PROMISES=()
promise() { PROMISES+=("$1: $2"); say "promise: $1 -> $2"; }
WATCH_S=2

KMS=local
[ "${1:-}" = aws ] && KMS=aws

step "0. The machine: a Debian kernel in QEMU, PostgreSQL 15 on a read-only disk, two empty disks"
pg_machine || fail "no PostgreSQL disk"
DATA_DEV=$(pg_disk pgdata) && WAL_DEV=$(pg_disk pgwal) || fail "no scratch disks"
insmod /lakecrypt/dm-lakecrypt.ko || fail "insmod"
modprobe loop
mkdir -p /var/lib/lakecrypt /var/log/lakecrypt /etc/lakecrypt /run/lakecrypt
cat >/etc/lakecrypt/agent.conf <<CONF
[agent]
socket_mode = 0666
log = stderr

[revocation]
watch_interval_s = $WATCH_S
CONF
if [ $KMS = aws ]; then
	modprobe virtio_net
	ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 || fail "network"
	echo "$3" | base64 -d >/tmp/ca.pem
	export AWS_ACCESS_KEY_ID=$4 AWS_SECRET_ACCESS_KEY=$5
	printf '%s\n' '' '[aws-kms]' 'endpoint = https://10.0.2.100:8443' 'region = eu-west-2' \
		'ca_bundle = /tmp/ca.pem' 'credentials = env' >>/etc/lakecrypt/agent.conf
fi
lakecrypt-agent --foreground >/tmp/agent.log 2>&1 &
i=0
while [ ! -S /run/lakecrypt/agent.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
say "$(pg postgres --version); $DATA_DEV will hold the data directory, $WAL_DEV pg_wal."
say "The agent watches every CMK in use every $WATCH_S s ([revocation] watch_interval_s)."
run admin ping

step "1. Security admin: the CMK, a key configuration, workspace 'finance'"
if [ $KMS = aws ]; then
	say "The CMK lives in AWS KMS (local-kms, the emulator, on the host behind TLS): $2"
	CMK=$2
	run admin keyconfig create finance-kc --provider aws-kms --key "$CMK"
	# The key owner's console: local-kms itself, plain HTTP, on the host.
	owner() {
		local b="{\"KeyId\":\"$CMK\"}"
		printf 'POST / HTTP/1.1\r\nHost: kms\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: TrentService.%s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
			"$1" "${#b}" "$b" | timeout 20 nc 10.0.2.101 8080 | head -n1
	}
	disable_cmk() { run owner DisableKey; }
	enable_cmk() { run owner EnableKey; }
else
	say "The embedded local KMS stands in for AWS KMS, Azure Key Vault, GCP KMS, KMIP or an HSM."
	CMK=$(admin --json kms create --description "Finance CMK" | jget key_id)
	[ -n "$CMK" ] || fail "kms create"
	run admin kms describe "$CMK"
	run admin keyconfig create finance-kc --provider local --key "$CMK"
	disable_cmk() { run admin kms disable "$CMK"; }
	enable_cmk() { run admin kms enable "$CMK"; }
fi
run admin workspace bind finance --keyconfig finance-kc --operators lakecrypt --devices "$DATA_DEV,$WAL_DEV,/dev/loop*"
say "The termination hook: after a revocation, SIGQUIT to every process holding finance's volumes"
say "(or a file system on them) -- PostgreSQL's immediate shutdown."
run admin workspace hook finance --signal QUIT --timeout-ms 20000

step "2. Operator: a project volume for the data directory, one for pg_wal, an ephemeral cache"
run operator format "$DATA_DEV" --workspace finance --project pgdata --segment-size 1M --batch
run operator format "$WAL_DEV" --workspace finance --project pgwal --segment-size 1M --batch
u0=$(unwraps)
runq "$BRIEF" operator open "$DATA_DEV" pgdata --workspace finance
runq "$BRIEF" operator open "$WAL_DEV" pgwal --workspace finance
u1=$(unwraps)
say "KMS unwrap calls for the two opens: $((u1 - u0)) (one each, however many segments)"
[ $((u1 - u0)) -eq 2 ] && promise "one KMS call per open" held || promise "one KMS call per open" "BROKEN ($((u1 - u0)))"
truncate -s 64M /tmp/pgcache.img
CLOOP=$(losetup -f) && losetup "$CLOOP" /tmp/pgcache.img || fail "losetup"
say "The cache volume's key is random and never leaves the kernel: temp files and sort spills go there."
runq "$BRIEF" operator cache "$CLOOP" pgcache --workspace finance
run sh -c "lakecryptctl status | head -n 4"

step "3. PostgreSQL: initdb, start, pgbench"
pg_fs /dev/mapper/pgdata /pgdata data && pg_fs /dev/mapper/pgwal /pgwal wal &&
	pg_fs /dev/mapper/pgcache /pgcache spill || fail "file systems"
say "ext4 on /dev/mapper/pgdata, pgwal and pgcache; initdb with data checksums, pg_wal on its own volume:"
run pg_initdb /pgdata/data /pgwal/wal
run pg_start /pgdata/data /tmp/pg.log
say "postmaster pid $PG_PID runs as $(awk '/^Uid:/ {print $2}' /proc/$PG_PID/status) (postgres), not root."
run psql_q "CREATE TABLESPACE spill LOCATION '/pgcache/spill'" "ALTER SYSTEM SET temp_tablespaces = 'spill'" \
	"SELECT pg_reload_conf()"
VERDIR=$(ls /pgcache/spill)
MARK=LCPG-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')-SECRET
say "A known row, to look for on the disks: '$MARK'"
run psql_q "CREATE TABLE acked (n int PRIMARY KEY, t text)" "CREATE TABLE secrets (t text)" \
	"INSERT INTO secrets VALUES ('$MARK')"
run pg pgbench -i -q -s 2
run pg pgbench -n -T 5 -c 2
run psql_q "CHECKPOINT"
say "Through the mapping the row is there; on the raw disks there is only ciphertext:"
run lct-scan "$MARK" /dev/mapper/pgdata
plain=0
for d in "$DATA_DEV" "$WAL_DEV" /tmp/pgcache.img; do
	if scan "$d" "$MARK"; then say "  $d: PLAINTEXT FOUND"; plain=1; else say "  $d: not found"; fi
done

step "4. The customer disables the CMK: the kill switch"
H0=$(psql_q "SELECT count(*) FROM pgbench_history")
say "A writer inserts numbered rows, one commit each, and logs every acknowledged commit;"
say "pgbench runs beside it."
pg_writer "$MARK" /tmp/writer.out &
WPID=$!
pg pgbench -n -T 900 -c 2 >/tmp/pgb.out 2>&1 &
BPID=$!
i=0
while [ "$(acked /tmp/writer.out)" -lt 30 ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i + 1)); done
for d in "$DATA_DEV" "$WAL_DEV" /tmp/pgcache.img; do scan "$d" "$MARK" && plain=1; done
say "$(acked /tmp/writer.out) commits acknowledged so far (raw disks scanned again under load)."
t0=$(uptime_ms)
disable_cmk
say "The agent's watcher asks the KMS about the CMK every $WATCH_S s, gets an authoritative denial and"
say "revokes every volume under it: keys wiped in the kernel, I/O fails, the cache is discarded."
i=0
while ! all_revoked pgdata pgwal pgcache && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
t1=$(uptime_ms)
all_revoked pgdata pgwal pgcache || fail "not revoked: $(dmsetup status)"
say "all three volumes revoked $((t1 - t0)) ms after the disable"
say "Then the agent runs finance's termination hook: SIGQUIT to the processes holding the volumes."
while pg_alive && [ $(($(uptime_ms) - t0)) -lt $(((WATCH_S + 20 + 30) * 1000)) ]; do sleep 0.1; done
t2=$(uptime_ms)
if pg_alive; then say "PostgreSQL is still running after $((t2 - t0)) ms"; down=0; else
	say "PostgreSQL stopped $((t2 - t0)) ms after the disable"; down=1; fi
for p in $WPID $BPID; do
	i=0
	while kill -0 $p 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
	kill $p 2>/dev/null
done
wait $WPID $BPID 2>/dev/null
say "The hook's runs (audit log) and the database going down (its log):"
grep '"op":"workspace.terminate"' /var/log/lakecrypt/audit.log | sed -n 's/.*"time":"\([^"]*\)".*"detail":"\([^"]*\)".*/LC:   \1 hook: \2/p'
grep -E 'PANIC|FATAL|immediate shutdown|terminat|shut down|could not' /tmp/pg.log | head -n 8 | sed 's/^/LC:   /'
ACK=$(acked /tmp/writer.out)
P=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' /tmp/pgb.out)
say "The writer saw $ACK commits acknowledged; pgbench reported ${P:-0} transactions:"
grep -E 'aborted|processed' /tmp/pgb.out | head -n 3 | sed 's/^/LC:   /'
say "Every volume fails I/O, no key is loaded in the kernel:"
io=1
for v in pgdata pgwal pgcache; do
	dd if=/dev/mapper/$v of=/dev/null bs=4096 count=1 iflag=direct 2>/tmp/dd.err && io=0
	say "  $v: $(dmsetup status $v | cut -d' ' -f4-6) | read: $(tail -n1 /tmp/dd.err)"
done
keys=$(grep -c ' logon .*lakecrypt:' /proc/keys)
for v in pgdata pgwal pgcache; do set -- $(dmsetup status $v); [ "$6" = 0 ] || keys=$((keys + $6)); done
say "lakecrypt keys left in the kernel: $keys"
nz=$(nonzero /tmp/pgcache.img)
say "The cache's disk reads zeros (bytes other than zero: $nz)"
for d in "$DATA_DEV" "$WAL_DEV"; do scan "$d" "$MARK" && plain=1; done
[ "$io" = 1 ] && [ "$keys" = 0 ] && promise "revoking the CMK kills every volume under it" held ||
	promise "revoking the CMK kills every volume under it" BROKEN
[ "$nz" = 0 ] && promise "the cache is unrecoverable after the kill" held ||
	promise "the cache is unrecoverable after the kill" BROKEN
hooked=0
grep '"op":"workspace.terminate"' /var/log/lakecrypt/audit.log 2>/dev/null | grep -q '[1-9][0-9]* signalled' && hooked=1
# Which came first: under load the failed WAL flush usually PANICs the
# server before the hook's SIGQUIT arrives (tests/e2e/pg.sh also shows the
# hook alone stopping an idle server).
how="the hook's SIGQUIT"
grep -q 'PANIC' /tmp/pg.log && how="a failed WAL flush (PANIC) first, then the hook's SIGQUIT"
[ $hooked = 1 ] || how="the I/O errors alone: the hook signalled no process"
[ $down = 1 ] && promise "PostgreSQL stops after the denial" "held, $((t2 - t0)) ms after the disable, by $how" ||
	promise "PostgreSQL stops after the denial" "BROKEN (still running)"

step "5. The customer enables the CMK again: reopen, crash recovery, count the commits"
for m in /pgdata /pgwal /pgcache; do umount "$m" 2>/dev/null || umount -l "$m"; done
for v in pgdata pgwal pgcache; do run operator close $v; done
say "While the CMK is disabled the data volume cannot be opened:"
run_fails operator open "$DATA_DEV" pgdata --workspace finance
enable_cmk
runq "$BRIEF" operator open "$DATA_DEV" pgdata --workspace finance
runq "$BRIEF" operator open "$WAL_DEV" pgwal --workspace finance
runq "$BRIEF" operator cache "$CLOOP" pgcache --workspace finance
mount -t ext4 /dev/mapper/pgdata /pgdata && mount -t ext4 /dev/mapper/pgwal /pgwal || fail "mount"
say "The cache is new and empty: a file system and the tablespace's directory again."
pg_fs /dev/mapper/pgcache /pgcache spill && mkdir "/pgcache/spill/$VERDIR" && chown $PG_UID "/pgcache/spill/$VERDIR"
: >/tmp/pg2.log
chown $PG_UID /tmp/pg2.log
run pg_start /pgdata/data /tmp/pg2.log
say "Its log: crash recovery"
grep -E 'not properly shut down|automatic recovery|redo|ready to accept' /tmp/pg2.log | sed 's/^/LC:   /'
present=$(psql_q "SELECT count(*) FROM acked WHERE n <= $ACK")
extra=$(psql_q "SELECT count(*) FROM acked WHERE n > $ACK")
H1=$(psql_q "SELECT count(*) FROM pgbench_history")
say "writer: $ACK acknowledged, $present of them present after recovery ($extra committed but not yet acknowledged)"
say "pgbench: ${P:-0} reported, $((H1 - H0)) history rows present"
[ "$present" = "$ACK" ] && [ "$extra" -le 1 ] && [ -n "$P" ] && [ $((H1 - H0)) -ge "$P" ] &&
	promise "every acknowledged commit survives the kill" "held ($ACK + $P)" ||
	promise "every acknowledged commit survives the kill" BROKEN
run pg pg_amcheck -d postgres --install-missing --heapallindexed --parent-check
say "pg_amcheck: clean"
for d in "$DATA_DEV" "$WAL_DEV" /tmp/pgcache.img; do scan "$d" "$MARK" && plain=1; done
[ $plain = 0 ] && promise "no plaintext on any raw disk (scanned 4 times)" held ||
	promise "no plaintext on any raw disk" BROKEN

step "6. The audit trail (one JSON line per CMK use and event)"
run sh -c "lakecryptctl audit --lines 60 | grep -E 'key_state|revoke|terminate|open|format|close' | tail -n 18"
run pg_stop /pgdata/data
for m in /pgdata /pgwal /pgcache; do umount "$m"; done
for v in pgdata pgwal pgcache; do operator close $v; done

say
say "Promises:"
for p in "${PROMISES[@]}"; do say "  $p"; done
broken=0
for p in "${PROMISES[@]}"; do case $p in *BROKEN*) broken=$((broken + 1)) ;; esac; done
if [ $broken = 0 ]; then say "RESULT: every promise held (${#PROMISES[@]} of ${#PROMISES[@]})"; else
	say "RESULT: $broken of ${#PROMISES[@]} promises BROKEN"; exit 1; fi
