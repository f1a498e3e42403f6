#!/bin/bash
# A 3-member etcd cluster on loopback for the tests, with mutual TLS on
# both the client and the peer side, certificates made here (openssl).
#   cluster.sh start DIR        make DIR/pki, start members 1..3 on
#                               ephemeral ports; writes DIR/env
#   cluster.sh kill DIR N       SIGKILL member N (1..3)
#   cluster.sh restart DIR N    start member N again on its ports and data
#   cluster.sh stop DIR         stop every member (DIR stays)
# DIR/env (sourced by tests): ETCD_ENDPOINTS=https://127.0.0.1:P1,...,
# ETCD_CA, ETCD_CERT, ETCD_KEY (the agent's client certificate),
# ETCD_BAD_CERT/ETCD_BAD_KEY (a client certificate from another CA),
# ETCD_OTHER_CA (a CA that did not sign the members).
# Members: etcd from Debian's etcd-server (3.4), --client-cert-auth,
# --peer-client-cert-auth, watch progress notifications every second.
# Never a fixed port: a system etcd.service on 2379 does not matter.
set -uo pipefail
cmd=${1:-} dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|kill|restart|stop DIR [N]" >&2; exit 2; }
ETCD=${ETCD:-/usr/bin/etcd}

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {	# wait_port PORT: up to 20 s
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

pki() {
	local d=$dir/pki
	mkdir -p "$d" && cd "$d" || return 1
	for ca in ca other-ca; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=lakecrypt-etcd-$ca" \
			-keyout $ca.key -out $ca.pem -addext basicConstraints=critical,CA:TRUE \
			-addext keyUsage=critical,keyCertSign,cRLSign || return 1
	done
	# member: server and client EKU (etcd 3.4's gateway and the peers use
	# the member certificate as a client certificate too).
	# 10.0.2.130-132: the members as the QEMU guest of tests/e2e/etcd.sh
	# reaches them (guestfwd).
	for c in member:ca:serverAuth,clientAuth:IP:127.0.0.1,DNS:localhost,IP:10.0.2.130,IP:10.0.2.131,IP:10.0.2.132 \
		 client:ca:clientAuth:DNS:lakecrypt-agent \
		 badclient:other-ca:clientAuth:DNS:lakecrypt-agent; do
		IFS=: read -r name ca eku san <<<"$c"
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" -keyout "$name.key" -out "$name.csr" &&
		printf 'subjectAltName=%s\nextendedKeyUsage=%s\nkeyUsage=critical,digitalSignature,keyEncipherment\n' \
			"$san" "$eku" >"$name.ext" &&
		openssl x509 -req -in "$name.csr" -CA $ca.pem -CAkey $ca.key -CAcreateserial -days 2 \
			-extfile "$name.ext" -out "$name.pem" || return 1
	done
}

start_member() {	# start_member N
	local n=$1
	# shellcheck disable=SC1091
	. "$dir/ports"
	local c p
	c=$(eval echo "\$C$n") p=$(eval echo "\$P$n")
	"$ETCD" --name "m$n" --data-dir "$dir/m$n" \
		--listen-client-urls "https://127.0.0.1:$c" --advertise-client-urls "https://127.0.0.1:$c" \
		--listen-peer-urls "https://127.0.0.1:$p" --initial-advertise-peer-urls "https://127.0.0.1:$p" \
		--initial-cluster "m1=https://127.0.0.1:$P1,m2=https://127.0.0.1:$P2,m3=https://127.0.0.1:$P3" \
		--initial-cluster-token "lakecrypt-test-$TOKEN" --initial-cluster-state new \
		--cert-file "$dir/pki/member.pem" --key-file "$dir/pki/member.key" \
		--trusted-ca-file "$dir/pki/ca.pem" --client-cert-auth \
		--peer-cert-file "$dir/pki/member.pem" --peer-key-file "$dir/pki/member.key" \
		--peer-trusted-ca-file "$dir/pki/ca.pem" --peer-client-cert-auth \
		--experimental-watch-progress-notify-interval 1s \
		--logger zap --log-outputs stderr >>"$dir/m$n.log" 2>&1 </dev/null &
	echo $! >"$dir/m$n.pid"
}

case $cmd in
start)
	mkdir -p "$dir" || exit 1
	if ! out=$(pki 2>&1); then echo "cluster.sh: test PKI failed: $out" >&2; exit 1; fi
	{
		for n in 1 2 3; do echo "C$n=$(free_port)"; echo "P$n=$(free_port)"; done
		echo "TOKEN=$$-$RANDOM"
	} >"$dir/ports"
	. "$dir/ports"
	for n in 1 2 3; do start_member $n; done
	for n in 1 2 3; do
		if ! wait_port "$(eval echo "\$C$n")"; then
			echo "cluster.sh: member $n did not listen" >&2; tail -n 20 "$dir/m$n.log" >&2; exit 1
		fi
	done
	cat >"$dir/env" <<EOT
ETCD_ENDPOINTS=https://127.0.0.1:$C1,https://127.0.0.1:$C2,https://127.0.0.1:$C3
ETCD_CA=$dir/pki/ca.pem
ETCD_CERT=$dir/pki/client.pem
ETCD_KEY=$dir/pki/client.key
ETCD_BAD_CERT=$dir/pki/badclient.pem
ETCD_BAD_KEY=$dir/pki/badclient.key
ETCD_OTHER_CA=$dir/pki/other-ca.pem
ETCD_MEMBER_CERT=$dir/pki/member.pem
ETCD_MEMBER_KEY=$dir/pki/member.key
EOT
	;;
kill)
	n=${3:?member}
	pid=$(cat "$dir/m$n.pid" 2>/dev/null) && kill -KILL "$pid" 2>/dev/null
	while [ -n "${pid:-}" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	;;
restart)
	n=${3:?member}
	start_member "$n"
	. "$dir/ports"
	wait_port "$(eval echo "\$C$n")"
	;;
stop)
	for n in 1 2 3; do
		pid=$(cat "$dir/m$n.pid" 2>/dev/null) || continue
		kill -TERM "$pid" 2>/dev/null
	done
	for n in 1 2 3; do
		pid=$(cat "$dir/m$n.pid" 2>/dev/null) || continue
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
		rm -f "$dir/m$n.pid"
	done
	;;
*)
	echo "usage: $0 start|kill|restart|stop DIR [N]" >&2; exit 2 ;;
esac
