#!/bin/bash
# make demo: the narrated lakecrypt walk-through in the QEMU machine:
# PostgreSQL 15 on lakecrypt volumes (tools/demo/pg.sh).
#
#   tools/demo.sh [--kms local|aws] [--line 6.1|6.12] [run.sh arguments]
#   make demo [KMS=aws]
#
# --kms local (default): the agent's embedded local KMS holds the CMK.
# --kms aws: AWS KMS, emulated by local-kms on the host behind stunnel4
#   with a test CA, reached from the guest through QEMU's restricted user
#   network (as tests/e2e/providers-host.sh does; make setup builds both).
# LAKECRYPT_DEMO=demo: the earlier walk-through (one volume, ext4, no
# database); LAKECRYPT_DEMO=kernel (make demo-kernel): the dmsetup level.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
kms=${LAKECRYPT_KMS:-local} line=${LAKECRYPT_LINE:-6.1} args=()
while [ $# -gt 0 ]; do
	case $1 in
	--kms) kms=${2:?--kms local|aws}; shift 2 ;;
	--line) line=${2:?--line 6.1|6.12}; shift 2 ;;
	*) args+=("$1"); shift ;;
	esac
done
make -s -C "$top/agent"
demo=${LAKECRYPT_DEMO:-pg}
if [ "$demo" != pg ]; then
	exec "$top/tools/qemu/run.sh" --line "$line" --entry "demo/$demo.sh" "${args[@]}"
fi
case $kms in local|aws) ;; *) echo "demo: --kms local or aws" >&2; exit 2 ;; esac

work=$(mktemp -d /tmp/lakecrypt-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
qemu=$("$top/tools/qemu/pg-drives.sh" "$work" pgdata:256 pgwal:192)
guest=
if [ "$kms" = aws ]; then
	tools=${LAKECRYPT_TOOLS:-/opt/lakecrypt-tools}
	py=$tools/venv/bin/python3
	for t in "$py" "$tools/bin/local-kms" /usr/bin/stunnel4 /bin/busybox; do
		[ -x "$t" ] || { echo "demo: missing $t (run make setup)" >&2; exit 2; }
	done
	free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
	wait_port() {
		for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
		return 1
	}
	( cd "$work" &&
	  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=lc-demo-ca -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE &&
	  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kms \
		-keyout server.key -out server.csr &&
	  printf 'subjectAltName=IP:10.0.2.100,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext &&
	  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-extfile server.ext -out server.pem ) >"$work/pki.log" 2>&1 || { cat "$work/pki.log" >&2; exit 2; }
	p_lkms=$(free_port) p_tls=$(free_port)
	PORT=$p_lkms KMS_DATA_PATH=$work/lkms KMS_REGION=eu-west-2 KMS_ACCOUNT_ID=111122223333 \
		"$tools/bin/local-kms" >"$work/local-kms.log" 2>&1 &
	pids+=($!)
	printf '%s\n' 'foreground = yes' 'pid =' '[kms]' "accept = 127.0.0.1:$p_tls" \
		"connect = 127.0.0.1:$p_lkms" "cert = $work/server.pem" "key = $work/server.key" >"$work/stunnel.conf"
	/usr/bin/stunnel4 "$work/stunnel.conf" >"$work/stunnel.log" 2>&1 &
	pids+=($!)
	wait_port "$p_lkms" && wait_port "$p_tls" || { echo "demo: local-kms or stunnel did not start" >&2; exit 2; }
	key=$("$py" "$top/tests/kms/kms-admin.py" "https://127.0.0.1:$p_tls" "$work/ca.pem" create) ||
		{ echo "demo: cannot create the AWS KMS key" >&2; exit 2; }
	printf '#!/bin/sh\nexec busybox nc 127.0.0.1 %s\n' "$p_tls" >"$work/fwd-tls"
	printf '#!/bin/sh\nexec busybox nc 127.0.0.1 %s\n' "$p_lkms" >"$work/fwd-kms"
	chmod +x "$work/fwd-tls" "$work/fwd-kms"
	net="user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8443-cmd:$work/fwd-tls,guestfwd=tcp:10.0.2.101:8080-cmd:$work/fwd-kms"
	qemu+=" -netdev $net -device virtio-net-pci,netdev=n0"
	guest="aws $key $(base64 -w0 "$work/ca.pem") AKIDDEMO demoSecretKey/0123456789"
fi
"$top/tools/qemu/run.sh" --line "$line" --entry demo/pg.sh --mem 1536 --timeout 1800 \
	${guest:+--args "$guest"} --qemu "$qemu" "${args[@]}"
