#!/bin/sh
# The lakecrypt walk-through, run inside the QEMU machine by tools/demo.sh.
# Every line meant for the reader starts with "LC: " (the harness shows
# those and hides the kernel's boot noise).
set -eu

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

SEGS=16
SEG_SECTORS=8192			# 4 MiB segments
SECTORS=$((SEGS * SEG_SECTORS))		# 64 MiB volume
VOL=demo1
PREFIX="lakecrypt:$VOL:"

step "1. A RAM disk stands in for the customer's block device"
modprobe brd rd_nr=1 rd_size=$((SECTORS / 2))
insmod /lakecrypt/dm-lakecrypt.ko
run blockdev --getsize64 /dev/ram0
say "dm-lakecrypt is loaded: $(dmsetup targets | grep lakecrypt)"

step "2. One data-encryption key per segment goes into the kernel keyring"
say "The agent will unwrap these from the KMS; here we make $SEGS random 64-byte keys."
say "They are 'logon' keys: the kernel can use them, userspace cannot read them back."
i=0
while [ $i -lt $SEGS ]; do
	head -c 64 /dev/urandom | keyctl padd logon "$PREFIX$i" @u >/dev/null
	i=$((i + 1))
done
run sh -c "grep -c ' logon .*$PREFIX' /proc/keys"
say "Reading one back is refused by the kernel:"
run sh -c "keyctl print \$(keyctl search @u logon ${PREFIX}0) 2>&1 || true"

step "3. One table line creates the device; one message loads every key"
TABLE="0 $SECTORS lakecrypt aes-xts-plain64 :64:logon:$PREFIX $SEG_SECTORS /dev/ram0 0 $VOL"
say "table: $TABLE"
run dmsetup create $VOL --table "$TABLE"
run dmsetup message $VOL 0 key load all
say "The target copied the keys; they can leave the keyring now."
i=0
while [ $i -lt $SEGS ]; do
	keyctl unlink "$(keyctl search @u logon "$PREFIX$i")" @u >/dev/null
	i=$((i + 1))
done
run dmsetup status $VOL
say "(state, segments, keys loaded, reads, writes, I/O errors, discard)"
run dmsetup table $VOL
say "The table names the keys; it never contains one."

step "4. Use it like any block device: a filesystem"
run mkfs.ext4 -q /dev/mapper/$VOL
mkdir -p /mnt/demo
run mount -t ext4 /dev/mapper/$VOL /mnt/demo
for n in 1 2 3; do
	echo "quarterly numbers, confidential, copy $n of 3" > /mnt/demo/report-$n.txt
done
run ls -l /mnt/demo
run cat /mnt/demo/report-1.txt
run umount /mnt/demo

step "5. The raw device holds only ciphertext"
if grep -q "confidential" /dev/ram0; then
	say "UNEXPECTED: plaintext found on the raw device"
	exit 1
fi
say "grep finds no 'confidential' on /dev/ram0. The ext4 superblock (byte 1024) as stored:"
run sh -c "dd if=/dev/ram0 bs=16 skip=64 count=4 2>/dev/null | hexdump -C"
say "and the same bytes read through the mapping (the ext4 magic 53 ef is at 0x38):"
run sh -c "dd if=/dev/mapper/$VOL bs=16 skip=64 count=4 2>/dev/null | hexdump -C"

step "6. Revoke: the kill switch"
run mount -t ext4 /dev/mapper/$VOL /mnt/demo
run cat /mnt/demo/report-2.txt
run umount /mnt/demo
run dmsetup message $VOL 0 revoke
run dmsetup status $VOL
if dd if=/dev/mapper/$VOL of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null; then
	say "UNEXPECTED: a read succeeded after revoke"
	exit 1
fi
say "Reading the device now fails:"
run sh -c "dd if=/dev/mapper/$VOL of=/dev/null bs=4096 count=1 iflag=direct; true"
say "Loading keys again is refused: a revoked table stays revoked."
run sh -c "dmsetup message $VOL 0 key load all; true"
run sh -c "dmesg | grep 'lakecrypt' | tail -n 3"
run dmsetup remove $VOL
say
say "Done: keys per segment from the keyring, ciphertext at rest, and a revoke"
say "that wipes every key and fails all I/O at once."
