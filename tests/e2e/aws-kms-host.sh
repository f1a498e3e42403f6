#!/bin/bash
# Host side of the AWS KMS end-to-end test (tests/e2e/aws-kms.sh in the
# guest), for one kernel line:
#   aws-kms-host.sh LINE
# Makes a test CA (EC P-256: it travels on the kernel command line) and a
# server certificate for 10.0.2.100 and 127.0.0.1, starts local-kms and
# stunnel4 in front of it on loopback, creates a key with botocore, and
# boots the QEMU machine with a restricted user network whose only ways
# out are two guestfwd: 10.0.2.100:8443 -> stunnel (TLS), 10.0.2.101:8080
# -> local-kms (the key owner's console).  Passes the guest's summary on:
# "N passed, N failed, N skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
line=${1:?usage: aws-kms-host.sh LINE}
tools=${LAKECRYPT_TOOLS:-/opt/lakecrypt-tools}
py=$tools/venv/bin/python3
work=$(mktemp -d /tmp/lakecrypt-e2e-aws.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "not ok 1 - $line: aws-kms e2e: $*"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }

for t in "$py" "$tools/bin/local-kms" /usr/bin/stunnel4 /bin/busybox; do
	[ -x "$t" ] || fail "missing $t (run make setup)"
done
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

( cd "$work" &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=lc-ca -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kms \
	-keyout server.key -out server.csr &&
  printf 'subjectAltName=IP:10.0.2.100,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext &&
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
	-extfile server.ext -out server.pem ) >"$work/pki.log" 2>&1 || fail "test PKI: $(tail -3 "$work/pki.log")"

p_lkms=$(free_port) p_tls=$(free_port)
PORT=$p_lkms KMS_DATA_PATH=$work/lkms KMS_REGION=eu-west-2 KMS_ACCOUNT_ID=111122223333 \
	"$tools/bin/local-kms" >"$work/local-kms.log" 2>&1 &
pids+=($!)
cat >"$work/stunnel.conf" <<EOF
foreground = yes
pid =
[kms]
accept = 127.0.0.1:$p_tls
connect = 127.0.0.1:$p_lkms
cert = $work/server.pem
key = $work/server.key
EOF
/usr/bin/stunnel4 "$work/stunnel.conf" >"$work/stunnel.log" 2>&1 &
pids+=($!)
wait_port "$p_lkms" && wait_port "$p_tls" || fail "local-kms or stunnel did not start"
key=$("$py" tests/kms/kms-admin.py "https://127.0.0.1:$p_tls" "$work/ca.pem" create 2>&1) ||
	fail "create key: $key"

# guestfwd runs its cmd through a shell, one per connection; run.sh splits
# --qemu on blanks, so each forward is a script without blanks.
printf '#!/bin/sh\nexec busybox nc 127.0.0.1 %s\n' "$p_tls" >"$work/fwd-tls"
printf '#!/bin/sh\nexec busybox nc 127.0.0.1 %s\n' "$p_lkms" >"$work/fwd-kms"
chmod +x "$work/fwd-tls" "$work/fwd-kms"
net="user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8443-cmd:$work/fwd-tls,guestfwd=tcp:10.0.2.101:8080-cmd:$work/fwd-kms"
args="$key $(base64 -w0 "$work/ca.pem") AKIDE2E e2eSecretKey/0123456789"
log=$(mktemp)
tools/qemu/run.sh --line "$line" --entry e2e/aws-kms.sh --args "$args" --mem 1024 --timeout 900 \
	--qemu "-netdev $net -device virtio-net-pci,netdev=n0" | tee "$log"
rc=${PIPESTATUS[0]}
sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n1)
rm -f "$log"
[ -n "$sum" ] || fail "no result from the guest (run.sh exit $rc)"
if [ "$rc" -ne 0 ]; then
	echo "not ok - $line: aws-kms e2e: run.sh exit $rc"
	read -r p f s < <(echo "$sum" | sed -E 's/([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')
	echo "$p passed, $((f + 1)) failed, $s skipped"
	exit 1
fi
echo "$sum"
