#!/bin/bash
# Host side of the KMIP end-to-end test (tests/e2e/kmip.sh in the guest),
# for one kernel line:
#   kmip-host.sh LINE
# Makes a test CA, a server certificate for 10.0.2.100 and 127.0.0.1 and a
# client certificate (clientAuth), starts PyKMIP's server (Debian's
# python3-pykmip) on loopback with client certificates required, creates
# an AES-256 key with PyKMIP's client, and boots the QEMU machine with a
# restricted user network whose only ways out are three guestfwd:
#   10.0.2.100:5696 -> PyKMIP (KMIP over mutual TLS)
#   10.0.2.101:8080 -> the key owner's console: each connection revokes
#                      the key with PyKMIP's client and answers "revoked"
#   10.0.2.102:8080 -> the guest's TLS files (CA, client certificate and
#                      key, base64 of a tar): too big for the kernel
#                      command line
# Passes the guest's summary on: "N passed, N failed, N skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
line=${1:?usage: kmip-host.sh LINE}
py=/usr/bin/python3
work=$(mktemp -d /tmp/lakecrypt-e2e-kmip.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "not ok 1 - $line: kmip e2e: $*"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }

for t in "$py" /usr/bin/pykmip-server /bin/busybox /usr/bin/openssl; do
	[ -x "$t" ] || fail "missing $t (run make setup)"
done
"$py" -c 'import kmip.pie.client' 2>/dev/null || fail "PyKMIP not importable by $py (run make setup: python3-pykmip)"
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
	for _ in $(seq 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

( cd "$work" &&
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=lc-kmip-ca -keyout ca.key -out ca.pem \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
  openssl req -newkey rsa:2048 -nodes -subj /CN=kmip -keyout server.key -out server.csr &&
  printf 'subjectAltName=IP:10.0.2.100,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext &&
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
	-extfile server.ext -out server.pem &&
  openssl req -newkey rsa:2048 -nodes -subj /CN=lakecrypt-agent -keyout client.key -out client.csr &&
  printf 'extendedKeyUsage=clientAuth\n' >client.ext &&
  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
	-extfile client.ext -out client.pem && chmod 600 client.key ) >"$work/pki.log" 2>&1 ||
	fail "test PKI: $(tail -3 "$work/pki.log")"

p_kmip=$(free_port)
mkdir -p "$work/policies"
cat >"$work/pykmip.conf" <<CONF
[server]
hostname=127.0.0.1
port=$p_kmip
certificate_path=$work/server.pem
key_path=$work/server.key
ca_path=$work/ca.pem
auth_suite=TLS1.2
policy_path=$work/policies
enable_tls_client_auth=True
database_path=$work/pykmip.db
CONF
"$py" /usr/bin/pykmip-server -f "$work/pykmip.conf" -l "$work/pykmip.log" >"$work/pykmip.out" 2>&1 &
pids+=($!)
wait_port "$p_kmip" || fail "PyKMIP did not start: $(tail -5 "$work/pykmip.out")"
admin=("$py" "$top/tests/kms/kmip-admin.py" 127.0.0.1 "$p_kmip" "$work/ca.pem" "$work/client.pem" "$work/client.key")
uid=$("${admin[@]}" create 2>&1 | tail -n1)
[[ "$uid" =~ ^[0-9]+$ ]] || fail "create key: $uid"

tar -C "$work" -cf - ca.pem client.pem client.key | base64 -w0 >"$work/bundle.b64"
# guestfwd runs its cmd through a shell, one per connection; run.sh splits
# --qemu on blanks, so each forward is a script without blanks.
printf '#!/bin/sh\nexec busybox nc 127.0.0.1 %s\n' "$p_kmip" >"$work/fwd-kmip"
printf '#!/bin/sh\nexec cat %s\n' "$work/bundle.b64" >"$work/fwd-bundle"
{ printf '#!/bin/sh\n'; printf '%q ' "${admin[@]}"; printf 'revoke %s 2>&1 | tail -n1\n' "$uid"; } >"$work/fwd-revoke"
chmod +x "$work/fwd-kmip" "$work/fwd-bundle" "$work/fwd-revoke"
net="user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:5696-cmd:$work/fwd-kmip"
net+=",guestfwd=tcp:10.0.2.101:8080-cmd:$work/fwd-revoke,guestfwd=tcp:10.0.2.102:8080-cmd:$work/fwd-bundle"
log=$(mktemp)
tools/qemu/run.sh --line "$line" --entry e2e/kmip.sh --args "$uid" --mem 1024 --timeout 900 \
	--qemu "-netdev $net -device virtio-net-pci,netdev=n0" | tee "$log"
rc=${PIPESTATUS[0]}
sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n1)
rm -f "$log"
[ -n "$sum" ] || fail "no result from the guest (run.sh exit $rc)"
if [ "$rc" -ne 0 ]; then
	echo "not ok - $line: kmip e2e: run.sh exit $rc"
	read -r p f s < <(echo "$sum" | sed -E 's/([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')
	echo "$p passed, $((f + 1)) failed, $s skipped"
	exit 1
fi
echo "$sum"
