# SPDX-License-Identifier: GPL-2.0
# pg-lib.sh - PostgreSQL in the QEMU guest, on lakecrypt volumes.  Sourced
# (bash) by tests/e2e/pg.sh, tools/demo/pg.sh and tests/bench/pg.sh.
#
# The host attaches (tools/qemu/pg-drives.sh):
#   serial lc-pg     tools/qemu/mkpgdisk.sh's image, read-only: PostgreSQL 15
#                    and its libraries, mounted at /pg
#   serial pgdata    scratch disks for the volumes (host files, sparse)
#   serial pgwal
# PostgreSQL runs as the guest user postgres (uid/gid 1010), never root.

PG_UID=1010
PGBIN=/usr/lib/postgresql/15/bin
export PGHOST=/run/postgresql PGUSER=postgres PGDATABASE=postgres TZ=UTC PGTZ=UTC

uptime_ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }
# wall clock in ms (bash 5: EPOCHREALTIME), comparable with the audit's time
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# pg_disk SERIAL: the /dev/vdX whose virtio serial is SERIAL
pg_disk() {
	local d
	for d in /sys/block/vd*; do
		[ -r "$d/serial" ] && [ "$(cat "$d/serial")" = "$1" ] && { echo "/dev/${d##*/}"; return 0; }
	done
	return 1
}

# pg_machine: virtio disks, the PostgreSQL image at /pg (Debian's paths
# point into it), the postgres user, /dev/shm and the socket directory.
pg_machine() {
	local i=0 dev
	modprobe virtio_pci && modprobe virtio_blk || return 1
	until dev=$(pg_disk lc-pg); do
		i=$((i + 1)); [ $i -lt 100 ] || { echo "pg_machine: no virtio disk with serial lc-pg" >&2; return 1; }
		sleep 0.1
	done
	mkdir -p /pg && mount -t ext4 -o ro "$dev" /pg || return 1
	mkdir -p /usr/lib /usr/share
	ln -sfn /pg/usr/lib/postgresql /usr/lib/postgresql
	ln -sfn /pg/usr/share/postgresql /usr/share/postgresql
	ln -sfn /pg/usr/share/zoneinfo /usr/share/zoneinfo
	grep -q '^postgres:' /etc/passwd ||
		echo "postgres:x:$PG_UID:$PG_UID:PostgreSQL:/tmp:/bin/sh" >>/etc/passwd
	grep -q '^postgres:' /etc/group || echo "postgres:x:$PG_UID:" >>/etc/group
	mkdir -p /dev/shm && { grep -q ' /dev/shm ' /proc/mounts || mount -t tmpfs -o mode=1777 tmpfs /dev/shm; }
	mkdir -p /run/postgresql && chown $PG_UID:$PG_UID /run/postgresql
}

# pg CMD ARGS...: a PostgreSQL program as the postgres user
pg() {
	local p=$1
	shift
	LD_LIBRARY_PATH=/pg/lib lct-runas $PG_UID $PG_UID "$PGBIN/$p" "$@"
}
# psql_q SQL...: each SQL on its own (-c each, so outside a transaction
# block); values unadorned
psql_q() {
	local a=()
	for s in "$@"; do a+=(-c "$s"); done
	pg psql -X -q -A -t -v ON_ERROR_STOP=1 "${a[@]}"
}

# pg_fs DEV MOUNTPOINT DIR: ext4 on DEV mounted at MOUNTPOINT, with DIR
# (relative) made for postgres, mode 0700
pg_fs() {
	mkfs.ext4 -q -F "$1" >/dev/null 2>&1 || return 1
	mkdir -p "$2" && mount -t ext4 "$1" "$2" || return 1
	mkdir -p "$2/$3" && chown $PG_UID:$PG_UID "$2/$3" && chmod 700 "$2/$3"
}

# pg_initdb DATADIR WALDIR: a cluster with data checksums, WAL in WALDIR
pg_initdb() {
	pg initdb -D "$1" -X "$2" --no-locale -E UTF8 -U postgres --auth=trust \
		--data-checksums --wal-segsize=4 || return 1
	cat >>"$1/postgresql.conf" <<-CONF
	listen_addresses = ''
	unix_socket_directories = '/run/postgresql'
	shared_buffers = 32MB
	max_connections = 20
	dynamic_shared_memory_type = posix
	jit = off
	max_wal_size = 64MB
	min_wal_size = 32MB
	checkpoint_timeout = 300s
	log_line_prefix = '%m [%p] '
	log_min_messages = warning
	log_checkpoints = off
	# A backend that PANICs (a failed WAL flush) takes the server down
	# instead of a restart loop on a revoked volume.
	restart_after_crash = off
	CONF
}

# pg_start DATADIR LOG: start, wait until it accepts connections; sets PG_PID
pg_start() {
	pg pg_ctl -D "$1" -l "$2" -w -t 300 start >/dev/null || return 1
	PG_PID=$(head -n1 "$1/postmaster.pid")
}
pg_stop() { pg pg_ctl -D "$1" -m fast -w -t 120 stop >/dev/null; }

# pg_alive: is the postmaster PG_PID still running?
pg_alive() { [ -n "${PG_PID:-}" ] && [ -d "/proc/$PG_PID" ] && ! grep -q '^State:.*Z' "/proc/$PG_PID/status" 2>/dev/null; }

# scan DEV_OR_FILE TEXT: does TEXT occur anywhere in it?  (lct-scan: O_DIRECT
# on devices, so no stale page cache; exit 2, an unreadable disk, is
# reported and counts as found: a scan that did not look is no proof.)
scan() {
	local r=0
	lct-scan "$2" "$1" >/dev/null || r=$?
	[ $r -ne 2 ] || echo "scan: cannot read $1" >&2
	[ $r -ne 1 ]
}

# nonzero FILE: how many bytes of FILE are not zero (empty: unreadable)
nonzero() { lct-scan --nonzero "$1"; }

# pg_writer MARKER OUT: one psql session inserting numbered rows
# (n, MARKER text), one transaction each; after each acknowledged COMMIT
# it prints "ack N" to OUT.  Runs until the server goes away.
pg_writer() {
	awk -v m="$1" 'BEGIN { for (n = 1; n <= 10000000; n++)
		printf "INSERT INTO acked VALUES (%d, %c%s row %d%c);\n\\echo ack %d\n", n, 39, m, n, 39, n }' |
		pg psql -X -q -v ON_ERROR_STOP=1 -f - >"$2" 2>&1
}
# acked OUT: the last acknowledged row number in a writer's output (0: none)
acked() { local a; a=$(grep '^ack ' "$1" | tail -n1 | cut -d' ' -f2); echo "${a:-0}"; }

# all_revoked NAME...: is every named mapping revoked in the kernel?
all_revoked() {
	local v
	for v in "$@"; do
		set -- $(dmsetup status "$v" 2>/dev/null)
		[ "${4:-}" = revoked ] || return 1
	done
}
