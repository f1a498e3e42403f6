#!/bin/sh
# lakecrypt benchmark, run in the QEMU guest by tools/bench.sh
# (entry bench/bench.sh).  Prints figures and ratios, asserts nothing.
#
# Arguments (key=value words, all optional):
#   runtime=10     seconds per fio run (time_based, after ramp=1 s)
#   ioengine=libaio iodepth=8 jobs=1   fio queueing
#   size=256       brd RAM disk size in MiB
#   parts=io,mem,revoke,detect   io: throughput table, mem: memory per loaded key,
#                  revoke: time from "lakecryptctl revoke" to every volume failing I/O,
#                  detect: time from the KMS's first denial (key policy) to
#                  detection, confirmation and every volume failing I/O, for
#                  several watch_interval_s / confirm_denials settings
#   memsegs=65536  segments (and keys) of the memory test, 8 sectors each
#                  unless size says otherwise
#
# Devices, all on the same brd RAM disk (written once first, so reads hit
# allocated pages), one 64-byte XTS key each:
#   raw        /dev/ram0
#   dmc        dm-crypt aes-xts-plain64, default flags
#   dmc-tuned  dm-crypt with no_read_workqueue no_write_workqueue
#   lc-1       lakecrypt, 1 segment
#   lc-1024    lakecrypt, 1024 segments
# Workloads: seq read/write bs=1M, random read/write bs=4k, O_DIRECT.
# For lakecrypt each run also prints its transform cache figures (hits,
# misses, evictions, hit ratio: the "stats" message), and at the end the
# memory the cache held, measured by giving it back (key wipe all).
set -eu
runtime=10 ioengine=libaio iodepth=8 jobs=1 size=256 parts=io,mem,revoke,detect memsegs=65536
for a in "$@"; do
	case $a in
	runtime=*|ioengine=*|iodepth=*|jobs=*|size=*|parts=*|memsegs=*) eval "${a%%=*}=\${a#*=}" ;;
	*) echo "LC: bench: unknown argument $a"; exit 2 ;;
	esac
done
say() { echo "LC: $*"; }
res=/tmp/bench.results
: >"$res"

say "bench: kernel $(uname -r), $(nproc) vCPUs, $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) MiB," \
    "fio $ioengine iodepth=$iodepth jobs=$jobs ${runtime}s/run, brd ${size} MiB"
modprobe brd rd_nr=1 rd_size=$((size * 1024))
modprobe dm-crypt
lc=
if [ -f /lakecrypt/dm-lakecrypt.ko ] && modprobe dm-lakecrypt; then lc=1; fi
[ -n "$lc" ] || say "bench: no dm-lakecrypt module: lakecrypt rows are n/a"
echo 100000000 >/proc/sys/kernel/keys/root_maxbytes
echo 1000000 >/proc/sys/kernel/keys/root_maxkeys
sectors=$(blockdev --getsz /dev/ram0)
dd if=/dev/zero of=/dev/ram0 bs=1M oflag=direct 2>/dev/null || true
hexkey() { head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# lakecrypt device NAME with N segments over the whole RAM disk, keyed from
# logon keys lakecrypt:NAME:<i>, which are unlinked once loaded.
mk_lc() {
	name=$1 n=$2
	head -c $((n * 64)) /dev/urandom >/tmp/keys.bin
	lct-addkeys "lakecrypt:$name:" 0 "$n" 64 /tmp/keys.bin
	echo "0 $sectors lakecrypt aes-xts-plain64 :64:logon:lakecrypt:$name: $((sectors / n)) /dev/ram0 0 $name" |
		dmsetup create "$name"
	dmsetup message "$name" 0 key load all
	keyctl clear @u
	say "bench: $name: $(dmsetup status "$name" | cut -d' ' -f4-)"
}

# lc_stats DEV: the "stats" reply (empty from a module without it).
lc_stats() { dmsetup message "$1" 0 stats 2>/dev/null || true; }
# stat NAME STATS: the value of NAME= in a "stats" reply (0 if absent).
stat() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | grep . || echo 0; }
# cache_delta BEFORE AFTER: the transform cache over one fio run.
cache_delta() {
	h=$(($(stat tfm_hits "$2") - $(stat tfm_hits "$1")))
	m=$(($(stat tfm_misses "$2") - $(stat tfm_misses "$1")))
	e=$(($(stat tfm_evictions "$2") - $(stat tfm_evictions "$1")))
	awk -v h="$h" -v m="$m" -v e="$e" -v st="$2" 'BEGIN {
		printf "hits %d misses %d evictions %d, hit ratio %.4f; now %s", h, m, e,
			h + m ? h / (h + m) : 0, st }'
}
kib() { awk -v f="$1:" '$1 == f {print $2}' /proc/meminfo; }
# lc_cache_mem NAME: what the device's transform cache holds, measured by
# giving it back: "key wipe all" frees the cached transforms beyond the
# reserve (and the keys, 1024 x ~105 bytes); remove frees the rest.
lc_cache_mem() {
	st=$(lc_stats "$1")
	sync; echo 3 >/proc/sys/vm/drop_caches; sleep 1
	s0=$(kib Slab) a0=$(kib MemAvailable)
	dmsetup message "$1" 0 key wipe all
	sync; echo 3 >/proc/sys/vm/drop_caches; sleep 1
	s1=$(kib Slab) a1=$(kib MemAvailable) st1=$(lc_stats "$1")
	dmsetup remove "$1"
	sync; echo 3 >/proc/sys/vm/drop_caches; sleep 1
	s2=$(kib Slab) a2=$(kib MemAvailable)
	n=$(($(stat tfm_cached "$st") - $(stat tfm_cached "$st1")))
	say "cache: $1: $st"
	say "cache: $1: key wipe all freed $n cached transforms: Slab -$((s0 - s1)) KiB, MemAvailable +$((a1 - a0)) KiB" \
	    "($(awk -v d=$((s0 - s1)) -v n="$n" 'BEGIN {printf "%.0f", n ? d * 1024 / n : 0}') bytes of Slab per transform, keys included);" \
	    "the device's remaining memory (reserve transforms, bounce page pool, bio set, workqueues): Slab -$((s1 - s2)) KiB, MemAvailable +$((a2 - a1)) KiB"
}

devs="raw dmc dmc-tuned"
if printf %s "$parts" | grep -q io; then
	echo "0 $sectors crypt aes-xts-plain64 $(hexkey) 0 /dev/ram0 0" | dmsetup create dmc
	echo "0 $sectors crypt aes-xts-plain64 $(hexkey) 0 /dev/ram0 0 2 no_read_workqueue no_write_workqueue" |
		dmsetup create dmc-tuned
	if [ -n "$lc" ]; then
		mk_lc lc-1 1
		mk_lc lc-1024 1024
		devs="$devs lc-1 lc-1024"
	fi
	for w in seqread:read:1M seqwrite:write:1M randread:randread:4k randwrite:randwrite:4k; do
		wl=${w%%:*} rw=${w#*:} bs=${rw#*:} rw=${rw%:*}
		for d in $devs; do
			dev=/dev/mapper/$d
			[ "$d" = raw ] && dev=/dev/ram0
			case $d in lc-*) st0=$(lc_stats "$d") ;; esac
			out=$(fio --name="$d-$wl" --filename="$dev" --direct=1 --ioengine="$ioengine" \
				--iodepth="$iodepth" --numjobs="$jobs" --group_reporting --rw="$rw" --bs="$bs" \
				--ramp_time=1 --runtime="$runtime" --time_based --norandommap --randrepeat=0 \
				--output-format=terse --terse-version=3 2>&1 | grep '^3;') || {
				say "bench: fio failed on $d $wl"; continue; }
			# terse v3: read KiB/s = 7, read IOPS = 8, write KiB/s = 48, write IOPS = 49
			echo "$out" | awk -F';' -v d="$d" -v w="$wl" \
				'{ bw = $7 + $48; io = $8 + $49; printf "%s %s %.1f %.0f\n", w, d, bw / 1024, io }' >>"$res"
			say "bench: $(tail -n1 "$res" | awk '{printf "%-10s %-10s %8s MiB/s %8s IOPS", $1, $2, $3, $4}')"
			case $d in lc-*) say "cache: $d $wl: $(cache_delta "$st0" "$(lc_stats "$d")")" ;; esac
		done
	done
	for d in $devs; do
		case $d in
		raw) ;;
		lc-*) lc_cache_mem "$d" ;;
		*) dmsetup remove "$d" ;;
		esac
	done

	awk -v devs="raw dmc dmc-tuned lc-1 lc-1024" '
	{ bw[$1, $2] = $3; io[$1, $2] = $4 }
	function cell(v) { return v == "" ? "n/a" : v }
	function ratio(a, b, goal,   r) {
		if (a == "" || b == "" || b == 0) return sprintf("%-12s", "n/a")
		r = a / b
		return sprintf("%5.2f %-6s", r, r >= goal ? "ok" : "MISS")
	}
	END {
		n = split(devs, D, " "); split("seqread seqwrite randread randwrite", W, " ")
		for (t = 1; t <= 2; t++) {
			printf "LC: %-10s", t == 1 ? "MiB/s" : "IOPS"
			for (i = 1; i <= n; i++) printf " %10s", D[i]
			printf "\n"
			for (j = 1; j <= 4; j++) {
				printf "LC: %-10s", W[j]
				for (i = 1; i <= n; i++) printf " %10s", cell(t == 1 ? bw[W[j], D[i]] : io[W[j], D[i]])
				printf "\n"
			}
		}
		printf "LC: %-22s", "ratio (MiB/s)"
		for (j = 1; j <= 4; j++) printf " %-12s", W[j]
		printf " goal\n"
		split("lc-1/dmc:1.05 lc-1/dmc-tuned:1.00 lc-1024/dmc:1.05 lc-1024/dmc-tuned:1.00 lc-1024/lc-1:0.95", R, " ")
		for (k = 1; k <= 5; k++) {
			split(R[k], P, ":"); split(P[1], AB, "/")
			printf "LC: %-22s", P[1]
			for (j = 1; j <= 4; j++) printf " %s", ratio(bw[W[j], AB[1]], bw[W[j], AB[2]], P[2])
			printf " >= %s\n", P[2]
		}
	}' "$res"
fi

# Memory per loaded key: meminfo (and slabinfo) around "key load all" on a
# device with memsegs segments and as many logon keys.
meminfo() { awk '/^(Slab|SUnreclaim|MemAvailable|MemFree|VmallocUsed|Percpu):/ {printf "%s=%s ", substr($1, 1, length($1) - 1), $2}' /proc/meminfo; }
slabs() { [ -r /proc/slabinfo ] && awk 'NR > 2 {print $1, $3 * $4}' /proc/slabinfo | sort; }
settle() { sync; echo 3 >/proc/sys/vm/drop_caches; sleep 2; }
if [ -n "$lc" ] && printf %s "$parts" | grep -q mem; then
	seg=$((sectors / memsegs))
	# For comparison: one keyctl process per key (was in t-80-scale).
	ms() { awk '{printf "%d\n", $1 * 1000}' /proc/uptime; }
	head -c 64 /dev/urandom >/tmp/key1.bin
	p0=$(ms) i=0
	while [ $i -lt 200 ]; do
		keyctl padd logon "lakecrypt:memx:$i" @u </tmp/key1.bin >/dev/null || break
		i=$((i + 1))
	done
	p1=$(ms)
	say "mem: keyctl padd, one process per key: $((p1 - p0)) ms for $i keys, so ~$(((p1 - p0) * memsegs / (i > 0 ? i : 1) / 1000)) s for $memsegs (lct-addkeys: see add keys below)"
	t0=$(date +%s)
	head -c $((memsegs * 64)) /dev/urandom >/tmp/keys.bin
	lct-addkeys lakecrypt:mem: 0 "$memsegs" 64 /tmp/keys.bin
	t1=$(date +%s)
	echo "0 $sectors lakecrypt aes-xts-plain64 :64:logon:lakecrypt:mem: $seg /dev/ram0 0 mem" | dmsetup create mem
	t2=$(date +%s)
	settle
	before=$(meminfo); slabs >/tmp/slab.before || true
	dmsetup message mem 0 key load all
	t3=$(date +%s)
	settle
	after=$(meminfo); slabs >/tmp/slab.after || true
	say "mem: $memsegs segments of $seg sectors: add keys $((t1 - t0)) s, create $((t2 - t1)) s, key load all $((t3 - t2)) s"
	say "mem: $(dmsetup status mem | cut -d' ' -f4-)"
	say "mem: figures below: + = used by key load all"; say "mem: before: $before"
	say "mem: after:  $after"
	for f in Slab SUnreclaim VmallocUsed Percpu MemAvailable MemFree; do
		b=$(echo "$before" | tr ' ' '\n' | sed -n "s/^$f=//p")
		a=$(echo "$after" | tr ' ' '\n' | sed -n "s/^$f=//p")
		if [ -z "$a" ] || [ -z "$b" ]; then continue; fi
		case $f in Mem*) d=$((b - a)) ;; *) d=$((a - b)) ;; esac
		say "$(awk -v f="$f" -v d="$d" -v n="$memsegs" \
			'BEGIN {printf "mem: %-12s %+8d KiB = %7.1f bytes per loaded key", f, d, d * 1024 / n}')"
	done
	if [ -s /tmp/slab.after ]; then
		say "mem: slab caches that grew most (bytes per key):"
		awk 'NR == FNR {b[$1] = $2; next} $2 > b[$1] {print $2 - b[$1], $1}' \
			/tmp/slab.before /tmp/slab.after | sort -rn | head -n 6 | while read -r d c; do
			say "$(awk -v c="$c" -v d="$d" -v n="$memsegs" 'BEGIN {printf "mem:   %-24s %7.1f", c, d / n}')"
		done
	fi
	dmsetup message mem 0 key wipe all
	settle
	say "mem: after key wipe all: $(meminfo)"
	keyctl clear @u
	dmsetup remove mem
fi
# Revoke: the agent with 3 open volumes (loop devices on tmpfs), a reader
# hammering each; time from the revoke command to each reader's first
# failure.  Twice in the same boot (TCG figures move with the host's
# load: compare the two): quiet, then under load (issue 6) -- 64 idle
# connections of an operator, a client that never reads, and a KMS that
# never answers ([test] kms_stall_file) with an open and the watcher
# waiting in it.  /proc/uptime has a 10 ms resolution.
uptime_ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }
# rv_round KC: readers on KC's volumes, revoke KC; sets rv_cmd and rv_last (ms)
rv_round() {
	rm -f /tmp/rv/fail*
	for v in $(dmsetup ls | awk -v p="$1" 'index($1, p) == 1 {print $1}'); do
		( while dd if=/dev/mapper/$v of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null; do :; done
		  uptime_ms >/tmp/rv/fail.$v ) &
	done
	sleep 2
	t0=$(uptime_ms)
	lakecryptctl revoke --keyconfig "$1" >/dev/null || say "revoke: revoke --keyconfig $1 failed"
	t1=$(uptime_ms)
	rv_cmd=$((t1 - t0)) rv_last=0
	for v in $(dmsetup ls | awk -v p="$1" 'index($1, p) == 1 {print $1}'); do
		n=0
		while [ ! -s /tmp/rv/fail.$v ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
		f=$(cat /tmp/rv/fail.$v 2>/dev/null || echo -1)
		if [ "$f" -lt 0 ]; then rv_last=-1; break; fi
		[ $((f - t0)) -gt "$rv_last" ] && rv_last=$((f - t0))
	done
	return 0
}
if [ -n "$lc" ] && printf %s "$parts" | grep -q revoke && [ -x /lakecrypt/bin/lakecrypt-agent ]; then
	modprobe loop
	mkdir -p /tmp/rv /run/lakecrypt
	printf '[agent]\nsocket_mode = 0666\nstate_dir = /tmp/rv/state\naudit_log = /tmp/rv/audit.log\nlog = stderr\n[revocation]\nwatch_interval_s = 1\n[test]\nkms_stall_file = /tmp/rv/stall\n' >/tmp/rv/agent.conf
	lakecrypt-agent --config /tmp/rv/agent.conf --foreground >/tmp/rv/agent.log 2>&1 &
	apid=$!
	n=0
	while [ ! -S /run/lakecrypt/agent.sock ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
	say "revoke: agent up ($(lakecryptctl ping 2>&1 | head -n1))"
	for kc in qa la; do	# quiet round, loaded round
		cmk=$(lakecryptctl --json kms create | sed -n 's/.*"key_id": *"\([^"]*\)".*/\1/p')
		lakecryptctl keyconfig create $kc --key "$cmk" >/dev/null
		lakecryptctl workspace bind $kc --keyconfig $kc --devices "/dev/loop*" >/dev/null
		for i in 1 2 3 4; do
			dd if=/dev/zero of=/tmp/rv/$kc$i.img bs=1M count=0 seek=32 2>/dev/null
			l=$(losetup -f)
			losetup "$l" /tmp/rv/$kc$i.img
			lakecryptctl format "$l" --workspace $kc --project $kc$i --segment-size 64K --batch >/dev/null
			[ $i -lt 4 ] && lakecryptctl open "$l" $kc$i --workspace $kc >/dev/null
			last_loop=$l
		done
	done
	say "revoke: $(dmsetup ls | grep -c '^[ql]a') volumes open"
	rv_round qa
	say "revoke: 3 open volumes with a reader each, quiet: the revoke command took $rv_cmd ms;" \
	    "the last reader failed $rv_last ms after it started"
	lct-runas 1002 1002,991 lct-clients /run/lakecrypt/agent.sock 64 >/tmp/rv/clients.out 2>&1 &
	cpid=$!
	n=0
	while ! grep -q ready /tmp/rv/clients.out 2>/dev/null && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done
	grep -q ready /tmp/rv/clients.out || say "revoke: the load did not start: $(head -c 300 /tmp/rv/clients.out)"
	touch /tmp/rv/stall
	lakecryptctl open "$last_loop" la4 --workspace la >/tmp/rv/la4.out 2>&1 &
	opid=$!
	rv_round la
	say "revoke: 3 open volumes with a reader each, under load (idle connections of an operator: $(head -n1 /tmp/rv/clients.out), a non-reading client, a stalled KMS with an open and the watcher waiting in it): the revoke command took $rv_cmd ms;" \
	    "the last reader failed $rv_last ms after it started$([ "$rv_last" -lt 0 ] && echo ' (a reader never failed!)')"
	rm -f /tmp/rv/stall
	orc=0
	wait "$opid" || orc=$?
	sleep 1
	say "revoke: the open that waited in the KMS ended with exit $orc ($(head -n1 /tmp/rv/la4.out)); la4: $(dmsetup status la4 2>/dev/null | cut -d' ' -f4)"
	kill "$cpid" 2>/dev/null || true
	kill "$apid" 2>/dev/null
	wait "$apid" 2>/dev/null
fi
# Detection: an agent per setting ([revocation] watch_interval_s I,
# jitter 0, confirm_denials C), 3 volumes with a reader each; at t0 the
# KMS starts denying (kms deny: the key stays enabled, only the canary
# sees it).  Figures: first denial observed (status), confirmation
# (verdict revoke), every reader failing; and the KMS calls per interval.
dt_field() {	# dt_field SOCK CMK FIELD
	lakecryptctl --socket "$1" --json status 2>/dev/null | awk -v id="$2" -v k="$3" '
		index($0, "\"cmk\": \"" id "\"") { f = 1 }
		f && index($0, "\"" k "\":") { sub(/^[^:]*: */, ""); gsub(/[",]/, ""); print; exit }'
}
if [ -n "$lc" ] && printf %s "$parts" | grep -q detect && [ -x /lakecrypt/bin/lakecrypt-agent ]; then
	modprobe loop
	mkdir -p /run/lakecrypt
	round=0
	for set in 1:1 1:2 2:2 2:3; do
		iv=${set%:*} cf=${set#*:} round=$((round + 1))
		# a socket directory of its own: volumes.json lives beside it
		d=/tmp/dt$round sock=/run/lakecrypt-dt$round/agent.sock
		mkdir -p $d /run/lakecrypt-dt$round
		printf '[agent]\nsocket = %s\nsocket_mode = 0600\nstate_dir = %s/state\naudit_log = %s/audit.log\nlog = stderr\n[revocation]\nwatch_interval_s = %s\njitter_pct = 0\nconfirm_denials = %s\nconfirm_window_s = 600\n' \
			"$sock" $d $d "$iv" "$cf" >$d/agent.conf
		lakecrypt-agent --config $d/agent.conf --foreground >$d/agent.log 2>&1 &
		apid=$!
		n=0
		while [ ! -S $sock ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
		L="lakecryptctl --socket $sock"
		cmk=$($L --json kms create | sed -n 's/.*"key_id": *"\([^"]*\)".*/\1/p')
		$L keyconfig create dk --key "$cmk" >/dev/null
		$L workspace bind dw --keyconfig dk >/dev/null
		vols=
		for i in 1 2 3; do
			dd if=/dev/zero of=$d/v$i.img bs=1M count=0 seek=16 2>/dev/null
			l=$(losetup -f)
			losetup "$l" $d/v$i.img
			$L format "$l" --workspace dw --project d$round$i --segment-size 64K --batch >/dev/null
			$L open "$l" d$round$i --workspace dw >/dev/null
			vols="$vols d$round$i"
		done
		n=0	# a few quiet intervals: the KMS calls they cost
		c0=$(dt_field $sock "$cmk" state_calls); k0=$(dt_field $sock "$cmk" canary_calls)
		p0=$(dt_field $sock "$cmk" probes)
		sleep $((iv * 4))
		c1=$(dt_field $sock "$cmk" state_calls); k1=$(dt_field $sock "$cmk" canary_calls)
		p1=$(dt_field $sock "$cmk" probes)
		rm -f $d/fail*
		for v in $vols; do
			( while dd if=/dev/mapper/$v of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null; do :; done
			  uptime_ms >$d/fail.$v ) &
		done
		sleep 1
		t0=$(uptime_ms)
		$L kms deny "$cmk" >/dev/null
		first=-1 conf=-1 n=0
		while [ $n -lt 1200 ]; do
			now=$(uptime_ms)
			[ $first -lt 0 ] && [ "$(dt_field $sock "$cmk" denials)" -ge 1 ] 2>/dev/null && first=$((now - t0))
			[ "$(dt_field $sock "$cmk" verdict)" = revoke ] && { conf=$((now - t0)); [ $first -lt 0 ] && first=$conf; break; }
			n=$((n + 1))
		done
		last=0
		for v in $vols; do
			n=0
			while [ ! -s $d/fail.$v ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
			f=$(cat $d/fail.$v 2>/dev/null || echo -1)
			if [ "$f" -lt 0 ]; then last=-1; break; fi
			[ $((f - t0)) -gt "$last" ] && last=$((f - t0))
		done
		# The agent's own clock (audit "time", ms): KMS starts denying
		# (kms.deny), first denied canary, confirmation (cmk.revocation),
		# each volume's revoke confirmed by the kernel (revoke).
		awk '
			function ms(l,   t) { match(l, /"time":"[^"]*"/); t = substr(l, RSTART + 19, 12)
				split(t, p, ":"); return ((p[1] * 60 + p[2]) * 60 + p[3]) * 1000 }
			/"op":"kms.deny"/ { d = ms($0) }
			d && !c1 && /"op":"cmk.canary".*"outcome":"failure"/ { c1 = ms($0) }
			/"op":"cmk.revocation"/ { r = ms($0) }
			r && /"op":"revoke"/ { k = ms($0) > k ? ms($0) : k; n++ }
			END { if (d && r && k) printf "LC: detect: (agent clock) first denial observed +%d ms, confirmed +%d ms, %d volumes revoked by +%d ms: kill after confirmation %d ms (goal <= 1000)\n", c1 - d, r - d, n, k - d, k - r }' $d/audit.log
		say "detect: watch_interval_s=$iv confirm_denials=$cf: first denial seen +$first ms," \
		    "confirmed +$conf ms, every volume failing I/O +$last ms" \
		    "(kill after confirmation: $([ $conf -ge 0 ] && [ $last -ge 0 ] && echo $((last - conf)) || echo n/a) ms, goal <= 1000;" \
		    "expected detection <= $((iv * cf)) s + one probe)"
		[ "$p1" -gt "$p0" ] 2>/dev/null &&
			say "detect: KMS calls per interval for 1 CMK with 3 volumes: $(awk -v n=$((c1 - c0 + k1 - k0)) -v p=$((p1 - p0)) 'BEGIN { printf "%.1f", n / p }')" \
			    "($((c1 - c0)) state + $((k1 - k0)) canary calls over $((p1 - p0)) probes)"
		kill "$apid" 2>/dev/null
		wait "$apid" 2>/dev/null
		for v in $vols; do dmsetup remove $v 2>/dev/null; done
	done
fi
say "bench: done"
