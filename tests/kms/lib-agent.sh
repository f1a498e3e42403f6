# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
# A lakecrypt-agent of a KMS suite's own (the ASan/UBSan build) in one
# directory.  Shared by the cases that bind principals and probe canaries
# (tests/kms/aws-ident.sh, aws-canary.sh, azure-ident.sh, gcp-ident.sh),
# which get notok, $py, $top and the array pids (its members are killed at
# the end) from the suite that sources them.  Source it, then:
#   agent_conf DIR [GROUP] <REST
#            write DIR/agent.conf: an [agent] section with the socket, the
#            state directory (DIR/state, made here, mode 700) and the audit
#            log (no fsync) in DIR, admin group GROUP (default root); then
#            REST (the [kms] and provider sections).
#   etcd_registry_conf PREFIX
#            print a [registry] section for the etcd cluster of
#            tests/etcd/cluster.sh (its env sourced: ETCD_ENDPOINTS,
#            ETCD_CA, ETCD_CERT, ETCD_KEY) under key prefix PREFIX.
#   etcd_registry_conf_quick PREFIX
#            the same with the short timeouts of tests/etcd (connect 1 s,
#            request 3 s, watch idle 5 s, retries at most 1 s apart).
#   agent_conf_checks DIR CONFIRM <REST
#            the same with a [kms] section of one attempt in a 5 s deadline
#            and a [revocation] section whose watcher never probes by
#            itself (3600 s): only `lakecryptctl check` does, and CONFIRM
#            denials in 3960 s (two probes with jitter fit) confirm.
#   ta_start DIR LABEL [VAR=VALUE...]
#            start the agent on DIR/agent.conf with those variables in its
#            environment, its log appended to DIR/agent.log; wait at most
#            10 s for its socket, else notok "LABEL" with the log's tail.
#            Sets ta_dir and ta_pid (also appended to pids).
#   ta_stop              end the agent ta_start started last
#   ta_ctl ARG...        lakecryptctl (ASan build) on that agent, stderr
#                        into stdout
#   ta_json KEY...       from the JSON on stdin, the value at that path (a
#                        number KEY indexes a list)
#   ta_revoked KEY       true if the agent's audit log has a
#                        cmk.revocation record whose cmk_id contains KEY
agent_conf() {
	mkdir -p "$1/state" && chmod 700 "$1/state"
	{ cat <<EOC
[agent]
socket = $1/agent.sock
state_dir = $1/state
audit_log = $1/audit.log
audit_fsync = no
admin_group = ${2:-root}

EOC
	  cat; } >"$1/agent.conf"
}

etcd_registry_conf() {
	cat <<EOC
[registry]
backend = etcd
endpoints = $ETCD_ENDPOINTS
ca = $ETCD_CA
cert = $ETCD_CERT
key = $ETCD_KEY
prefix = $1
EOC
}

etcd_registry_conf_quick() {
	etcd_registry_conf "$1"
	cat <<EOC
connect_timeout_ms = 1000
timeout_ms = 3000
watch_idle_s = 5
retry_max_ms = 1000
EOC
}

agent_conf_checks() {
	{ cat <<EOC
[kms]
retry_attempts = 1
deadline_ms = 5000

[revocation]
watch_interval_s = 3600
confirm_denials = $2
confirm_window_s = 3960

EOC
	  cat; } | agent_conf "$1"
}

ta_start() {
	local dir=$1 label=$2
	shift 2
	ta_dir=$dir
	rm -f "$dir/agent.sock"
	# env execs the agent: $! is the agent itself
	env "$@" "$top/build/agent-san/lakecrypt-agent" -c "$dir/agent.conf" -f >>"$dir/agent.log" 2>&1 &
	ta_pid=$!
	pids+=("$ta_pid")
	for _ in $(seq 100); do [ -S "$dir/agent.sock" ] && break; sleep 0.1; done
	[ -S "$dir/agent.sock" ] || notok "$label" "$(tail -20 "$dir/agent.log")"
}

ta_stop() { kill "$ta_pid"; wait "$ta_pid" 2>/dev/null; }

ta_ctl() { "$top/build/agent-san/lakecryptctl" --socket "$ta_dir/agent.sock" "$@" 2>&1; }

ta_json() {
	"$py" -c 'import json, sys
d = json.load(sys.stdin)
for k in sys.argv[1:]:
    d = d[int(k)] if isinstance(d, list) else d[k]
print(d)' "$@" 2>&1
}

ta_revoked() {
	"$py" -c 'import json, sys
sys.exit(0 if any(r.get("op") == "cmk.revocation" and sys.argv[2] in (r.get("cmk_id") or "")
                  for r in map(json.loads, open(sys.argv[1]))) else 1)' "$ta_dir/audit.log" "$1"
}
