#!/bin/bash
# Host side of the Google Cloud KMS end-to-end test (tests/e2e/gcp-kms.sh in
# the guest), for one kernel line:
#   gcp-kms-host.sh LINE
# Makes a test CA (EC P-256: it travels on the kernel command line) and a
# server certificate for 10.0.2.100 and 127.0.0.1, starts the project's
# fake Cloud KMS (tests/kms/fake-gcp-kms.py: TLS, a plain-HTTP port for the
# key owner, a GCE metadata server) on loopback, creates a key ring and key
# with the official SDK (google-cloud-kms, REST, service-account token from
# the fake token endpoint), and boots the QEMU machine with a restricted
# user network whose only ways out are three guestfwd: 10.0.2.100:8443 ->
# Cloud KMS (TLS), 10.0.2.101:8080 -> the same API over plain HTTP (the key
# owner's console), 10.0.2.102:80 -> the metadata server.  Passes the
# guest's summary on: "N passed, N failed, N skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
line=${1:?usage: gcp-kms-host.sh LINE}
tools=${LAKECRYPT_TOOLS:-/opt/lakecrypt-tools}
py=$tools/venv/bin/python3
work=$(mktemp -d /tmp/lakecrypt-e2e-gcp.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "not ok 1 - $line: gcp-kms e2e: $*"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }

for t in "$py" /bin/busybox; do
	[ -x "$t" ] || fail "missing $t (run make setup)"
done
"$py" -c 'import google.cloud.kms, google_crc32c' 2>/dev/null || fail "google-cloud-kms not importable (run make setup)"
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

p_tls=$(free_port) p_plain=$(free_port) p_md=$(free_port)
sa_email=lakecrypt-e2e@lc-e2e.iam.gserviceaccount.com
( cd "$work" &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=lc-ca -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kms \
	-keyout server.key -out server.csr &&
  printf 'subjectAltName=IP:10.0.2.100,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext &&
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
	-extfile server.ext -out server.pem &&
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key &&
  openssl pkey -in sa.key -pubout -out sa.pub &&
  "$py" -c 'import json, sys
json.dump({"type": "service_account", "project_id": "lc-e2e", "private_key_id": "e2e",
           "private_key": open("sa.key").read(), "client_email": sys.argv[1],
           "token_uri": sys.argv[2]}, open("sa.json", "w"))' "$sa_email" "https://127.0.0.1:$p_tls/token" &&
  chmod 600 sa.json ) >"$work/pki.log" 2>&1 || fail "test PKI: $(tail -3 "$work/pki.log")"

"$py" tests/kms/fake-gcp-kms.py --tls "$p_tls:$work/server.pem:$work/server.key" --plain "$p_plain" \
	--metadata "$p_md" --sa "$sa_email=$work/sa.pub" 2>"$work/fake.log" &
pids+=($!)
wait_port "$p_tls" && wait_port "$p_plain" && wait_port "$p_md" || fail "fake Cloud KMS did not start: $(cat "$work/fake.log")"
key=$(REQUESTS_CA_BUNDLE=$work/ca.pem "$py" tests/kms/gcp-sdk.py "127.0.0.1:$p_tls" "$work/sa.json" \
	setup lc-e2e global ring-e2e key-e2e 2>&1) || fail "create key: $key"

# guestfwd runs its cmd through a shell, one per connection; run.sh splits
# --qemu on blanks, so each forward is a script without blanks.
for f in tls:$p_tls plain:$p_plain md:$p_md; do
	printf '#!/bin/sh\nexec busybox nc 127.0.0.1 %s\n' "${f#*:}" >"$work/fwd-${f%%:*}"
	chmod +x "$work/fwd-${f%%:*}"
done
net="user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8443-cmd:$work/fwd-tls,guestfwd=tcp:10.0.2.101:8080-cmd:$work/fwd-plain,guestfwd=tcp:10.0.2.102:80-cmd:$work/fwd-md"
args="$key $(base64 -w0 "$work/ca.pem")"
log=$(mktemp)
tools/qemu/run.sh --line "$line" --entry e2e/gcp-kms.sh --args "$args" --mem 1024 --timeout 900 \
	--qemu "-netdev $net -device virtio-net-pci,netdev=n0" | tee "$log"
rc=${PIPESTATUS[0]}
sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n1)
rm -f "$log"
[ -n "$sum" ] || fail "no result from the guest (run.sh exit $rc)"
if [ "$rc" -ne 0 ]; then
	echo "not ok - $line: gcp-kms e2e: run.sh exit $rc"
	read -r p f s < <(echo "$sum" | sed -E 's/([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')
	echo "$p passed, $((f + 1)) failed, $s skipped"
	exit 1
fi
echo "$sum"
