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
work=$(mktemp -d /tmp/lakecrypt-e2e-aws.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "not ok 1 - $line: aws-kms e2e: $*"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }

[ -x /bin/busybox ] || fail "missing /bin/busybox (run make setup)"
. tests/kms/lib-local-kms.sh
lkms_start "$work" IP:10.0.2.100,IP:127.0.0.1 || fail "$(cat "$work/lkms.err")"
pids+=("${LKMS_PIDS[@]}")
p_lkms=$LKMS_PORT p_tls=$LKMS_TLS_PORT
key=$(lkms_create "$work" 2>&1) || fail "create key: $key"

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
