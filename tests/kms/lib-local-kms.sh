# shellcheck shell=bash
# Shared by the scripts that need AWS KMS on loopback (tests/e2e/providers-host.sh,
# tools/bench.sh): local-kms (Go, installed by make setup) behind stunnel4
# with a test CA made on the spot.  Source it, then:
#   lkms_start WORKDIR SANS     make WORKDIR/ca.pem, a server certificate for
#                               SANS (e.g. IP:10.0.2.100,IP:127.0.0.1; EC
#                               P-256, small enough for a kernel command
#                               line), start local-kms and stunnel; sets
#                               LKMS_PORT (plain HTTP, the key owner's side)
#                               and LKMS_TLS_PORT, and appends the pids to
#                               the array LKMS_PIDS.  Returns 1 with the
#                               reason in WORKDIR/lkms.err.
#   lkms_serve WORKDIR CERT KEY start local-kms (data in WORKDIR/lkms, an
#                               empty seed WORKDIR/seed.yaml) and stunnel4
#                               in front of it with the PEM certificate CERT
#                               and key KEY; logs in WORKDIR/local-kms.log
#                               and WORKDIR/stunnel.log.  Sets LKMS_PORT and
#                               LKMS_TLS_PORT, appends the pids to LKMS_PIDS;
#                               waits at most 20 s for each port.  Returns 1
#                               with the reason in WORKDIR/lkms.err.
#                               (lkms_start is the test PKI, then this.)
#   lkms_aws_conf CA            print an [aws-kms] agent config section for
#                               https://127.0.0.1:$LKMS_TLS_PORT (CA: the
#                               PEM bundle that signed its certificate),
#                               env credentials.
#   lkms_create WORKDIR         create a key with botocore; prints its ARN.
#   lkms_stop                   kill what lkms_start started.
LAKECRYPT_TOOLS=${LAKECRYPT_TOOLS:-/opt/lakecrypt-tools}
LKMS_PY=$LAKECRYPT_TOOLS/venv/bin/python3
LKMS_PIDS=()

lkms_free_port() {
	"$LKMS_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

lkms_wait_port() {	# lkms_wait_port PORT: up to 20 s
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

lkms_start() {
	local w=$1 sans=$2 t
	for t in "$LKMS_PY" "$LAKECRYPT_TOOLS/bin/local-kms" /usr/bin/stunnel4; do
		[ -x "$t" ] || { echo "missing $t (run make setup)" >"$w/lkms.err"; return 1; }
	done
	if ! ( cd "$w" &&
	  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=lc-ca -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE &&
	  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kms \
		-keyout server.key -out server.csr &&
	  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$sans" >server.ext &&
	  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-extfile server.ext -out server.pem ) >"$w/pki.log" 2>&1; then
		{ echo "test PKI:"; tail -3 "$w/pki.log"; } >"$w/lkms.err"
		return 1
	fi
	lkms_serve "$w" "$w/server.pem" "$w/server.key"
}

lkms_serve() {
	local w=$1 cert=$2 key=$3
	LKMS_PORT=$(lkms_free_port) LKMS_TLS_PORT=$(lkms_free_port)
	echo "Keys: {}" >"$w/seed.yaml"
	PORT=$LKMS_PORT KMS_DATA_PATH=$w/lkms KMS_SEED_PATH=$w/seed.yaml KMS_REGION=eu-west-2 \
		KMS_ACCOUNT_ID=111122223333 "$LAKECRYPT_TOOLS/bin/local-kms" >"$w/local-kms.log" 2>&1 &
	LKMS_PIDS+=($!)
	cat >"$w/stunnel.conf" <<EOS
foreground = yes
pid =
[kms]
accept = 127.0.0.1:$LKMS_TLS_PORT
connect = 127.0.0.1:$LKMS_PORT
cert = $cert
key = $key
EOS
	/usr/bin/stunnel4 "$w/stunnel.conf" >"$w/stunnel.log" 2>&1 &
	LKMS_PIDS+=($!)
	if ! lkms_wait_port "$LKMS_PORT" || ! lkms_wait_port "$LKMS_TLS_PORT"; then
		{ echo "local-kms or stunnel did not start:"; tail -3 "$w/local-kms.log" "$w/stunnel.log"; } \
			>"$w/lkms.err"
		return 1
	fi
}

lkms_aws_conf() {
	cat <<EOS
[aws-kms]
endpoint = https://127.0.0.1:$LKMS_TLS_PORT
region = eu-west-2
ca_bundle = $1
credentials = env
EOS
}

lkms_create() {
	"$LKMS_PY" "$(dirname "${BASH_SOURCE[0]}")/kms-admin.py" \
		"https://127.0.0.1:$LKMS_TLS_PORT" "$1/ca.pem" create
}

lkms_stop() {
	local p
	for p in "${LKMS_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${LKMS_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	LKMS_PIDS=()
}
