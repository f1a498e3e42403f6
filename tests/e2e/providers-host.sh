#!/bin/bash
# Host side of the KMS providers' end-to-end tests, for one kernel line, in
# one boot of the QEMU machine (tests/e2e/providers.sh in the guest):
#   providers-host.sh LINE [PROVIDER...]      (default: aws kmip gcp etcd pkcs11)
# Starts on loopback what the named network providers talk to, each with a
# test CA made on the spot, and boots the guest on a restricted user
# network whose only ways out are these guestfwd:
#   AWS KMS   local-kms (Go, make setup) behind stunnel4; a key made with
#             botocore.  10.0.2.100:8443 -> stunnel (TLS); 10.0.2.101:8080
#             -> local-kms itself (the key owner's console).
#             STS: moto (server mode, make setup) behind stunnel4 with the
#             same certificate; an IAM user made there with botocore is
#             the guest's credentials (local-kms checks no signature), its
#             ARN the principal keyconfig create must bind.
#             10.0.2.102:8443 -> stunnel (TLS) -> moto.
#   KMIP      PyKMIP's server (Debian's python3-pykmip), client
#             certificates required; an AES-256 key made with PyKMIP's
#             client.  10.0.2.110:5696 -> PyKMIP (mutual TLS);
#             10.0.2.111:8080 -> the key owner's console (each connection
#             revokes the key); 10.0.2.112:8080 -> the guest's TLS files
#             (CA, client certificate and key, base64 of a tar).
#   Cloud KMS the project's fake (tests/kms/fake-gcp-kms.py, proven against
#             google-cloud-kms in tests/kms/gcp.sh); a key ring and key made
#             with the official SDK.  10.0.2.120:8443 -> Cloud KMS (TLS);
#             10.0.2.121:8080 -> the same API over plain HTTP (the key
#             owner's console); 10.0.2.122:80 -> the GCE metadata server.
#   etcd      not a KMS: a 3-member cluster as the shared registry and an
#             agent of the host's on it (etcd_setup below, tests/e2e/etcd.sh).
#   PKCS#11   nothing on the host: SoftHSM2 runs in the guest.
#   10.0.2.99:8080 -> the guest's arguments, one line "NAME ARG..." per
#             network provider (key references, CAs, credentials).
# Passes the guest's summary on: "N passed, N failed, N skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
line=${1:?usage: providers-host.sh LINE [aws] [kmip] [gcp] [etcd] [pkcs11]}
shift
provs=("$@")
[ ${#provs[@]} -gt 0 ] || provs=(aws kmip gcp etcd pkcs11)
tools=${LAKECRYPT_TOOLS:-/opt/lakecrypt-tools}
work=$(mktemp -d /tmp/lakecrypt-e2e-prov.XXXXXX)
pids=()
. tests/kms/lib-proc.sh	# kill_tree
# shellcheck source=tests/kms/lib-agent.sh
. tests/kms/lib-agent.sh	# agent_conf, etcd_registry_conf
cleanup() {
	for p in "${pids[@]}"; do kill_tree "$p"; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "not ok 1 - $line: providers e2e: $*"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {	# wait_port PORT: up to 30 s
	for _ in $(seq 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# fwd NAME ADDR:PORT CMD...: a guestfwd to ADDR:PORT whose each connection
# runs CMD (guestfwd runs it through a shell, and run.sh splits --qemu on
# blanks: so a script without blanks).
net="user,id=n0,restrict=on"
fwd() {
	local name=$1 to=$2
	shift 2
	{ printf '#!/bin/sh\nexec '; printf '%q ' "$@"; printf '\n'; } >"$work/fwd-$name"
	chmod +x "$work/fwd-$name"
	net+=",guestfwd=tcp:$to-cmd:$work/fwd-$name"
}
# ca_pki DIR CN SANS: an EC P-256 test CA in DIR/ca.pem and a server
# certificate DIR/server.pem (key DIR/server.key) for SANS.
ca_pki() {
	mkdir -p "$1"
	( cd "$1" &&
	  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=$2-ca" -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE &&
	  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
		-keyout server.key -out server.csr &&
	  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$3" >server.ext &&
	  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-extfile server.ext -out server.pem ) >"$1/pki.log" 2>&1 || { tail -3 "$1/pki.log"; return 1; }
}

[ -x /bin/busybox ] || fail "missing /bin/busybox (run make setup)"
: >"$work/args"

aws_setup() {
	local w=$work/aws key
	mkdir -p "$w"
	. tests/kms/lib-local-kms.sh
	lkms_start "$w" IP:10.0.2.100,IP:10.0.2.102,IP:127.0.0.1 || fail "AWS: $(cat "$w/lkms.err")"
	pids+=("${LKMS_PIDS[@]}")
	key=$(lkms_create "$w" 2>&1) || fail "AWS: create key: $key"
	fwd aws-tls 10.0.2.100:8443 busybox nc 127.0.0.1 "$LKMS_TLS_PORT"
	fwd aws-kms 10.0.2.101:8080 busybox nc 127.0.0.1 "$LKMS_PORT"
	# STS (identity binding): moto in the key's account, behind stunnel4
	local p_moto p_sts creds
	[ -x "$tools/venv/bin/moto_server" ] || fail "AWS: missing $tools/venv/bin/moto_server (run make setup)"
	p_moto=$(free_port) p_sts=$(free_port)
	MOTO_ACCOUNT_ID=111122223333 "$tools/venv/bin/moto_server" -H 127.0.0.1 -p "$p_moto" >"$w/moto.log" 2>&1 &
	pids+=($!)
	printf 'foreground = yes\npid =\n[sts]\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\ncert = %s\nkey = %s\n' \
		"$p_sts" "$p_moto" "$w/server.pem" "$w/server.key" >"$w/stunnel-sts.conf"
	/usr/bin/stunnel4 "$w/stunnel-sts.conf" >"$w/stunnel-sts.log" 2>&1 &
	pids+=($!)
	wait_port "$p_moto" && wait_port "$p_sts" ||
		fail "AWS: moto or its stunnel did not start: $(tail -3 "$w/moto.log" "$w/stunnel-sts.log")"
	creds=$("$tools/venv/bin/python3" - "https://127.0.0.1:$p_sts" "$w/ca.pem" <<'PY' 2>&1
import sys, botocore.session
s = botocore.session.get_session()
def cl(svc, ak='AKIDADMIN', sk='adminSecretKey/0123456789abcdefghijklmnopqrs'):
    return s.create_client(svc, region_name='eu-west-2', endpoint_url=sys.argv[1], verify=sys.argv[2],
                           aws_access_key_id=ak, aws_secret_access_key=sk)
cl('iam').create_user(UserName='lakecrypt-e2e')
k = cl('iam').create_access_key(UserName='lakecrypt-e2e')['AccessKey']
arn = cl('sts', k['AccessKeyId'], k['SecretAccessKey']).get_caller_identity()['Arn']
print(k['AccessKeyId'], k['SecretAccessKey'], arn)
PY
) || fail "AWS: an IAM user in moto: $creds"
	[[ "$creds" == *" arn:aws:iam::111122223333:user/lakecrypt-e2e" ]] || fail "AWS: moto's IAM user: $creds"
	fwd aws-sts 10.0.2.102:8443 busybox nc 127.0.0.1 "$p_sts"
	echo "aws $key $(base64 -w0 "$w/ca.pem") $creds" >>"$work/args"
}

kmip_setup() {
	local w=$work/kmip py=/usr/bin/python3 port uid
	[ -x /usr/bin/pykmip-server ] || fail "KMIP: missing /usr/bin/pykmip-server (run make setup)"
	"$py" -c 'import kmip.pie.client' 2>/dev/null || fail "KMIP: PyKMIP not importable by $py (run make setup: python3-pykmip)"
	mkdir -p "$w/policies"
	( cd "$w" &&
	  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=lc-kmip-ca -keyout ca.key -out ca.pem \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
	  openssl req -newkey rsa:2048 -nodes -subj /CN=kmip -keyout server.key -out server.csr &&
	  printf 'subjectAltName=IP:10.0.2.110,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext &&
	  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-extfile server.ext -out server.pem &&
	  openssl req -newkey rsa:2048 -nodes -subj /CN=lakecrypt-agent -keyout client.key -out client.csr &&
	  printf 'extendedKeyUsage=clientAuth\n' >client.ext &&
	  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-extfile client.ext -out client.pem && chmod 600 client.key ) >"$w/pki.log" 2>&1 ||
		fail "KMIP: test PKI: $(tail -3 "$w/pki.log")"
	port=$(free_port)
	cat >"$w/pykmip.conf" <<CONF
[server]
hostname=127.0.0.1
port=$port
certificate_path=$w/server.pem
key_path=$w/server.key
ca_path=$w/ca.pem
auth_suite=TLS1.2
policy_path=$w/policies
enable_tls_client_auth=True
database_path=$w/pykmip.db
CONF
	"$py" /usr/bin/pykmip-server -f "$w/pykmip.conf" -l "$w/pykmip.log" >"$w/pykmip.out" 2>&1 &
	pids+=($!)
	wait_port "$port" || fail "KMIP: PyKMIP did not start: $(tail -5 "$w/pykmip.out")"
	local admin=("$py" "$top/tests/kms/kmip-admin.py" 127.0.0.1 "$port" "$w/ca.pem" "$w/client.pem" "$w/client.key")
	uid=$("${admin[@]}" create 2>&1 | tail -n1)
	[[ "$uid" =~ ^[0-9]+$ ]] || fail "KMIP: create key: $uid"
	tar -C "$w" -cf - ca.pem client.pem client.key | base64 -w0 >"$w/bundle.b64"
	fwd kmip 10.0.2.110:5696 busybox nc 127.0.0.1 "$port"
	{ printf '#!/bin/sh\n'; printf '%q ' "${admin[@]}"; printf 'revoke %s 2>&1 | tail -n1\n' "$uid"; } >"$work/fwd-kmip-revoke"
	chmod +x "$work/fwd-kmip-revoke"
	net+=",guestfwd=tcp:10.0.2.111:8080-cmd:$work/fwd-kmip-revoke"
	fwd kmip-tls 10.0.2.112:8080 cat "$w/bundle.b64"
	echo "kmip $uid" >>"$work/args"
}

gcp_setup() {
	local w=$work/gcp py=$tools/venv/bin/python3 p_tls p_plain p_md key
	local sa_email=lakecrypt-e2e@lc-e2e.iam.gserviceaccount.com
	[ -x "$py" ] || fail "Cloud KMS: missing $py (run make setup)"
	"$py" -c 'import google.cloud.kms, google_crc32c' 2>/dev/null ||
		fail "Cloud KMS: google-cloud-kms not importable (run make setup)"
	p_tls=$(free_port) p_plain=$(free_port) p_md=$(free_port)
	ca_pki "$w" kms IP:10.0.2.120,IP:127.0.0.1 >"$w.err" || fail "Cloud KMS: test PKI: $(cat "$w.err")"
	( cd "$w" &&
	  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key &&
	  openssl pkey -in sa.key -pubout -out sa.pub &&
	  "$py" -c 'import json, sys
json.dump({"type": "service_account", "project_id": "lc-e2e", "private_key_id": "e2e",
           "private_key": open("sa.key").read(), "client_email": sys.argv[1],
           "token_uri": sys.argv[2]}, open("sa.json", "w"))' "$sa_email" "https://127.0.0.1:$p_tls/token" &&
	  chmod 600 sa.json ) >"$w/sa.log" 2>&1 || fail "Cloud KMS: service account: $(tail -3 "$w/sa.log")"
	"$py" tests/kms/fake-gcp-kms.py --tls "$p_tls:$w/server.pem:$w/server.key" --plain "$p_plain" \
		--metadata "$p_md" --sa "$sa_email=$w/sa.pub" 2>"$w/fake.log" &
	pids+=($!)
	wait_port "$p_tls" && wait_port "$p_plain" && wait_port "$p_md" ||
		fail "Cloud KMS: the fake did not start: $(cat "$w/fake.log")"
	key=$(REQUESTS_CA_BUNDLE=$w/ca.pem "$py" tests/kms/gcp-sdk.py "127.0.0.1:$p_tls" "$w/sa.json" \
		setup lc-e2e global ring-e2e key-e2e 2>&1) || fail "Cloud KMS: create key: $key"
	fwd gcp-tls 10.0.2.120:8443 busybox nc 127.0.0.1 "$p_tls"
	fwd gcp-plain 10.0.2.121:8080 busybox nc 127.0.0.1 "$p_plain"
	fwd gcp-md 10.0.2.122:80 busybox nc 127.0.0.1 "$p_md"
	echo "gcp $key $(base64 -w0 "$w/ca.pem")" >>"$work/args"
}

# etcd: the 3-member cluster (tests/etcd/cluster.sh; members reached as
# 10.0.2.130-132:2379, in the members' certificate) and an agent of the
# host's on it, holding no volume.  10.0.2.133:8080 -> the host's admin:
# waits (up to 60 s) until that agent sees kc-fleet, then revoke
# --keyconfig kc-fleet on it (tests/e2e/etcd.sh).
etcd_setup() {
	local w=$work/etcd prefix=/lce2e-$$-$RANDOM/ n c
	[ -x /usr/bin/etcd ] || fail "etcd: missing /usr/bin/etcd (run make setup: etcd-server)"
	mkdir -p "$w/agent/state" && chmod 700 "$w/agent/state"
	tests/etcd/cluster.sh start "$w/cluster" >"$w/cluster.err" 2>&1 ||
		fail "etcd: cluster: $(tail -5 "$w/cluster.err")"
	for n in 1 2 3; do pids+=("$(cat "$w/cluster/m$n.pid")"); done
	# shellcheck disable=SC1091
	. "$w/cluster/env"
	{ etcd_registry_conf "$prefix"; echo "watch_idle_s = 5"; } | agent_conf "$w/agent" "$(id -gn)"
	build/agent/lakecrypt-agent -c "$w/agent/agent.conf" -f >>"$w/agent/agent.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 300); do [ -S "$w/agent/agent.sock" ] && break; sleep 0.1; done
	[ -S "$w/agent/agent.sock" ] || fail "etcd: the host's agent did not start: $(tail -5 "$w/agent/agent.log")"
	c="$top/build/agent/lakecryptctl --timeout 60 --socket $w/agent/agent.sock"
	printf '#!/bin/sh
for i in $(seq 60); do %s keyconfig list 2>/dev/null | grep -q kc-fleet && break; sleep 1; done
%s revoke --keyconfig kc-fleet 2>&1
' \
		"$c" "$c" >"$work/fwd-etcd-revoke"
	chmod +x "$work/fwd-etcd-revoke"
	net+=",guestfwd=tcp:10.0.2.133:8080-cmd:$work/fwd-etcd-revoke"
	for n in 1 2 3; do
		fwd "etcd$n" "10.0.2.13$((n - 1)):2379" busybox nc 127.0.0.1 \
			"$(sed -n "s/^C$n=//p" "$w/cluster/ports")"
	done
	echo "etcd $prefix $(tar -C "$w/cluster/pki" -cf - ca.pem client.pem client.key | base64 -w0)" >>"$work/args"
}

netted=
for p in "${provs[@]}"; do
	case $p in
	aws) aws_setup; netted=1 ;;
	kmip) kmip_setup; netted=1 ;;
	gcp) gcp_setup; netted=1 ;;
	etcd) etcd_setup; netted=1 ;;
	pkcs11) ;;
	*) fail "unknown provider '$p' (aws, kmip, gcp, etcd, pkcs11)" ;;
	esac
done
qemu=()
if [ -n "$netted" ]; then
	fwd args 10.0.2.99:8080 cat "$work/args"
	qemu=(--qemu "-netdev $net -device virtio-net-pci,netdev=n0")
fi

log=$(mktemp)
tools/qemu/run.sh --line "$line" --entry e2e/providers.sh --args "${provs[*]}" --mem 1024 --timeout 1500 \
	"${qemu[@]}" | tee "$log"
rc=${PIPESTATUS[0]}
sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n1)
rm -f "$log"
[ -n "$sum" ] || fail "no result from the guest (run.sh exit $rc)"
if [ "$rc" -ne 0 ]; then
	echo "not ok - $line: providers e2e: run.sh exit $rc"
	read -r p f s < <(echo "$sum" | sed -E 's/([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')
	echo "$p passed, $((f + 1)) failed, $s skipped"
	exit 1
fi
echo "$sum"
