#!/bin/sh
# The lakecrypt walk-through, run inside the QEMU machine by tools/demo.sh
# (make demo).  Every line meant for the reader starts with "LC: ".
set -eu
export PATH=/lakecrypt/bin:$PATH DM_DISABLE_UDEV=1

say() { echo "LC: $*"; }
step() { echo "LC:"; echo "LC: == $* =="; }
# Show a command and its output; stop the demo if it fails.
run() {
	echo "LC: \$ $*"
	rc=0
	"$@" >/tmp/demo.out 2>&1 || rc=$?
	sed 's/^/LC:   /' /tmp/demo.out
	[ $rc -eq 0 ] || { echo "LC: demo failed: exit $rc"; exit 1; }
}
# The same, for a command that must fail.
run_fails() {
	echo "LC: \$ $*"
	rc=0
	"$@" >/tmp/demo.out 2>&1 || rc=$?
	sed 's/^/LC:   /' /tmp/demo.out
	[ $rc -ne 0 ] || { echo "LC: demo failed: that should have failed"; exit 1; }
	echo "LC:   (exit $rc)"
}
admin() { lakecryptctl "$@"; }				# root: the security admin
operator() { lct-runas 1002 1002,991 lakecryptctl "$@"; }	# group lakecrypt

step "0. The machine: a Debian kernel in QEMU, two RAM disks, the agent"
insmod /lakecrypt/dm-lakecrypt.ko
modprobe brd rd_nr=1 rd_size=65536
modprobe loop
truncate -s 32M /tmp/cache.img
CACHE=$(losetup -f)
losetup "$CACHE" /tmp/cache.img
mkdir -p /var/lib/lakecrypt /var/log/lakecrypt /etc/lakecrypt
cat >/etc/lakecrypt/agent.conf <<CONF
[agent]
socket_mode = 0666
log = stderr

[revocation]
watch_interval_s = 2
CONF
lakecrypt-agent --foreground >/tmp/agent.log 2>&1 &
while [ ! -S /run/lakecrypt/agent.sock ]; do sleep 0.1; done
say "/dev/ram0 (64 MiB) will be a project volume, $CACHE (32 MiB) a compute cache."
run admin ping

step "1. Security admin: a customer-managed key (CMK) in the KMS"
say "The embedded local KMS stands in for AWS KMS, Azure Key Vault, GCP KMS, KMIP or an HSM."
CMK=$(admin --json kms create --description "Finance CMK" | sed -n 's/.*"key_id": *"\([^"]*\)".*/\1/p')
run admin kms describe "$CMK"

step "2. Security admin: register it at account level and bind a workspace"
run admin keyconfig create finance-kc --provider local --key "$CMK"
run admin workspace bind finance --keyconfig finance-kc --operators lakecrypt --devices "/dev/ram0,/dev/loop*"
run admin workspace list
say "Operators cannot change that delegation:"
run_fails operator workspace bind finance --keyconfig other

step "3. Operator: format a project volume in workspace 'finance'"
say "One KMS call wraps the volume's KEK; 4,032 per-segment DEKs are wrapped by the KEK."
run operator format /dev/ram0 --workspace finance --project ledger --segment-size 16K --batch
say "The header names the workspace, key configuration and CMK; it holds only wrapped keys:"
run sh -c "lakecryptctl dump /dev/ram0 | head -n 24"

step "4. Operator: open it (one KMS call, however many segments) and use it"
run operator open /dev/ram0 ledger --workspace finance
run sh -c "lakecryptctl status | tail -n 4"
run sh -c "dmsetup table ledger"
say "The table names keys by description; the kernel holds the DEKs, the agent only the KEK."
run sh -c "grep -c 'lakecrypt:' /proc/keys || true"
run mkfs.ext4 -q /dev/mapper/ledger
mkdir -p /mnt/ledger
run mount -t ext4 /dev/mapper/ledger /mnt/ledger
echo "Q3 revenue: 12,345,678 -- confidential" >/mnt/ledger/q3.txt
run cat /mnt/ledger/q3.txt
run umount /mnt/ledger
if grep -q "confidential" /dev/ram0; then say "UNEXPECTED: plaintext on the raw device"; exit 1; fi
say "On the raw device there is only ciphertext (grep finds no 'confidential')."

step "5. Operator: close and reopen; then an ephemeral cache next to it"
run operator close ledger
run operator open /dev/ram0 ledger --workspace finance
run mount -t ext4 /dev/mapper/ledger /mnt/ledger
run cat /mnt/ledger/q3.txt
run operator cache "$CACHE" ledger-cache --workspace finance
run dd if=/dev/urandom of=/dev/mapper/ledger-cache bs=1M count=8 oflag=direct
run sh -c "lakecryptctl status | tail -n 5"

step "6. The customer revokes the CMK in their KMS: the kill switch"
say "The admin disables the CMK. The agent's watcher gets an authoritative denial and revokes"
say "every volume under it: keys wiped in the kernel and the agent, I/O fails, caches shredded."
run admin kms disable "$CMK"
i=0
until dmsetup status ledger | grep -q revoked; do sleep 1; i=$((i + 1)); [ $i -lt 30 ] || exit 1; done
say "revoked after ${i} s"
run sh -c "lakecryptctl status | tail -n 5"
run_fails dd if=/dev/mapper/ledger of=/dev/null bs=4096 count=1 iflag=direct
say "Pages the filesystem already cached in memory are gone once the machine drops its caches"
say "(a real kill switch also tears the compute down); every read from the device fails:"
run sh -c "echo 3 >/proc/sys/vm/drop_caches"
run_fails cat /mnt/ledger/q3.txt
umount /mnt/ledger 2>/dev/null || umount -l /mnt/ledger 2>/dev/null || true
run sh -c "grep -c 'lakecrypt:' /proc/keys || true"
say "The cache's disk was discarded: it reads zeros (bytes other than zero, counted):"
run sh -c "tr -d '\\000' </tmp/cache.img | wc -c"
say "And the data at rest cannot be opened while the CMK is disabled:"
run operator close ledger
run_fails operator open /dev/ram0 ledger --workspace finance

step "7. The audit trail tells the story (one JSON line per CMK use and event)"
run sh -c "lakecryptctl audit --lines 14"

step "8. The customer restores the CMK: the data opens again"
run admin kms enable "$CMK"
run operator open /dev/ram0 ledger --workspace finance
run mount -t ext4 /dev/mapper/ledger /mnt/ledger
run cat /mnt/ledger/q3.txt
run umount /mnt/ledger
run operator close ledger
say
say "Done: the root key stayed in the KMS, one KMS call opened the volume, and revoking"
say "the CMK killed every volume under it, wiped every key and shredded the cache."
