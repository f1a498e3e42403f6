# SPDX-License-Identifier: GPL-2.0
# Key lifecycle end to end, sourced by run-all.sh in the same boot (its
# agent, ctl, jget, expect_exit, lc_* helpers): rewrap after a CMK
# rotation in the local KMS, workspace rekey to another CMK under fio I/O
# with the data verified, the old CMK disabled afterwards killing nothing,
# KEK rotation online under I/O, and a crypto-shred of a segment range
# followed by close, reopen and the restore of an old header backup.
# Own CMKs, key configurations, workspace and loop devices.

R1=$(ctl --json kms create --description "rotation 1" | jget key_id)
R2=$(ctl --json kms create --description "rotation 2" | jget key_id)
lc_run "rot: key configurations kr1 and kr2 for two CMKs" \
	sh -c "lakecryptctl keyconfig create kr1 --key $R1 && lakecryptctl keyconfig create kr2 --key $R2"
lc_run "rot: workspace wsr bound to kr1" ctl workspace bind wsr --keyconfig kr1 --devices '/dev/loop*'
RL=""
for i in 1 2 3; do
	truncate -s 24M /tmp/r$i.img
	l=$(losetup -f)
	losetup "$l" /tmp/r$i.img || lc_bail "losetup $l"
	RL="$RL $l"
	ctl format "$l" --workspace wsr --project r$i --segment-size 64K --batch >/dev/null ||
		lc_notok "rot: format r$i"
done
set -- $RL
RL1=$1 RL2=$2 RL3=$3	# r3 stays closed
lc_run "rot: open r1" ctl open "$RL1" r1 --workspace wsr
lc_run "rot: open r2" ctl open "$RL2" r2 --workspace wsr
head -c 8388608 /dev/urandom >"$LC_TMP/rdata"
for v in r1 r2; do
	dd if="$LC_TMP/rdata" of=/dev/mapper/$v bs=1M oflag=direct 2>/dev/null || lc_notok "rot: write $v"
done
rsum=$(sha256sum <"$LC_TMP/rdata" | cut -d' ' -f1)
vsum() { dd if=/dev/mapper/$1 bs=1M count=8 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1; }

# ---- CMK rotation in the provider, then rewrap --all
lc_run "rot: admin rotates CMK R1 in the local KMS (version 2)" ctl kms rotate "$R1"
for v in r1 r2; do lc_eq "rot: $v still reads after the CMK rotation" "$rsum" "$(vsum $v)"; done
expect_exit 0 "rot: rewrap --all --keyconfig kr1 moves every open volume" ctl rewrap --all --keyconfig kr1
lc_diag "$(cat "$LC_TMP/x.out")"
grep -q "2 done, 0 already, 0 failed" "$LC_TMP/x.out" && lc_ok "rot: both volumes reported re-wrapped" ||
	lc_notok "rot: both volumes reported re-wrapped"
for l in $RL1 $RL2; do
	lc_eq "rot: $l's header names CMK version 2" 2 "$(ctl --json dump "$l" | jget cmk_version)"
done
expect_exit 2 "rot: rewrap needs NAME or --all" ctl rewrap
expect_exit 4 "rot: an operator may not rewrap --all" $OPER lakecryptctl rewrap --all

# ---- workspace rekey to another CMK while fio writes and verifies
fio --name=rk --filename=/dev/mapper/r1 --rw=randwrite --bs=4k --offset=8M --size=4M \
	--direct=1 --ioengine=psync --verify=crc32c --do_verify=1 --loops=6 \
	--output="$LC_TMP/fio1.out" >/dev/null 2>&1 &
FIO=$!
sleep 1
u0=$(unwraps)
expect_exit 0 "rot: workspace rekey wsr --keyconfig kr2 under fio I/O" ctl workspace rekey wsr --keyconfig kr2
lc_diag "$(cat "$LC_TMP/x.out")"
grep -q "2 done, 0 already, 0 failed" "$LC_TMP/x.out" && lc_ok "rot: both volumes reported re-keyed" ||
	lc_notok "rot: both volumes reported re-keyed"
lc_eq "rot: re-key costs no unwrap (the agent holds the KEKs)" 0 "$(($(unwraps) - u0))"
wait $FIO
lc_eq "rot: fio's writes during the re-key verify (exit status)" 0 "$?"
grep -q "err= 0" "$LC_TMP/fio1.out" && lc_ok "rot: fio reports no error" || { lc_notok "rot: fio reports no error"; lc_diag_file "$LC_TMP/fio1.out"; }
for v in r1 r2; do lc_eq "rot: $v's first 8 MiB unchanged after the re-key" "$rsum" "$(vsum $v)"; done
lc_eq "rot: r1's header is under kr2" kr2 "$(ctl --json dump "$RL1" | jget key_configuration)"
ctl --json status r1 | grep -q "\"cmk_id\": \"$R2\"" && lc_ok "rot: status (what the watcher reads) names CMK R2" ||
	lc_notok "rot: status names CMK R2"
ctl --json workspace list | grep -A2 '"wsr"' | grep -q kr2 && lc_ok "rot: the binding moved to kr2" ||
	lc_notok "rot: the binding moved to kr2"
expect_exit 0 "rot: rekey again: already there" ctl workspace rekey wsr --keyconfig kr2
grep -q "0 done, 2 already, 0 failed" "$LC_TMP/x.out" && lc_ok "rot: a second rekey changes nothing" ||
	lc_notok "rot: a second rekey changes nothing"
expect_exit 4 "rot: an operator may not re-key a workspace" $OPER lakecryptctl workspace rekey ws1 --keyconfig kr2

# ---- a closed volume of the workspace: re-keyed on its own
expect_exit 1 "rot: closed r3 (still under kr1) does not open under the new binding" \
	ctl open "$RL3" r3 --workspace wsr
grep -q "re-key" "$LC_TMP/x.out" && lc_ok "rot: the refusal says to re-key it" || lc_notok "rot: the refusal says to re-key it"
expect_exit 0 "rot: rekey the closed r3 from kr1" ctl rekey "$RL3" --workspace wsr --from kr1
lc_eq "rot: r3's header is under kr2" kr2 "$(ctl --json dump "$RL3" | jget key_configuration)"
expect_exit 1 "rot: a second rekey of r3 says it is already there" ctl rekey "$RL3" --workspace wsr --from kr1
grep -q "already" "$LC_TMP/x.out" && lc_ok "rot: ... already under kr2" || lc_notok "rot: ... already under kr2"

# ---- the old CMK disabled: nothing dies
lc_run "rot: admin disables the old CMK R1" ctl kms disable "$R1"
sleep 7		# more than three watcher ticks (watch_interval_s = 2)
for v in r1 r2; do
	set -- $(dmsetup status $v)
	lc_eq "rot: $v still active with the old CMK disabled" active "$4"
	lc_eq "rot: $v still reads" "$rsum" "$(vsum $v)"
done
expect_exit 0 "rot: close r1" ctl close r1
expect_exit 0 "rot: r1 opens under kr2 with R1 disabled" ctl open "$RL1" r1 --workspace wsr
lc_eq "rot: r1's data after reopen" "$rsum" "$(vsum r1)"
expect_exit 0 "rot: r3 opens under kr2 with R1 disabled" ctl open "$RL3" r3 --workspace wsr
expect_exit 0 "rot: close r3" ctl close r3

# ---- KEK rotation online
kfp0=$(ctl --json dump "$RL1" | jget fingerprint)
fio --name=kr --filename=/dev/mapper/r1 --rw=randwrite --bs=4k --offset=8M --size=4M \
	--direct=1 --ioengine=psync --verify=crc32c --do_verify=1 --loops=6 \
	--output="$LC_TMP/fio2.out" >/dev/null 2>&1 &
FIO=$!
sleep 1
expect_exit 0 "rot: rotate-kek r1 under fio I/O" ctl rotate-kek r1
wait $FIO
lc_eq "rot: fio's writes during the KEK rotation verify" 0 "$?"
kfp1=$(ctl --json dump "$RL1" | jget fingerprint)
[ -n "$kfp0" ] && [ "$kfp0" != "$kfp1" ] && lc_ok "rot: the wrapped KEK changed ($kfp0 -> $kfp1)" ||
	lc_notok "rot: the wrapped KEK changed ($kfp0 -> $kfp1)"
lc_eq "rot: r1's data after the KEK rotation" "$rsum" "$(vsum r1)"
expect_exit 0 "rot: close r1" ctl close r1
expect_exit 0 "rot: r1 opens with the new KEK" ctl open "$RL1" r1 --workspace wsr
lc_eq "rot: r1's data after reopen" "$rsum" "$(vsum r1)"

# ---- crypto-shred of segments 2-4 of r2 (64 KiB each)
DOFF=$(($(ctl --json dump "$RL2" | jget data_offset) * 512))
dd if="$RL2" of="$LC_TMP/r2hdr" bs=65536 count=$((DOFF / 65536)) 2>/dev/null	# a backup of the header area
seg() { dd if=/dev/mapper/r2 bs=64K skip=$1 count=$2 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1; }
want() { dd if="$LC_TMP/rdata" bs=64K skip=$1 count=$2 2>/dev/null | sha256sum | cut -d' ' -f1; }
expect_exit 2 "rot: shred refuses a bad range" ctl shred r2 --segment 4-2 --batch
expect_exit 2 "rot: shred asks for confirmation (no terminal)" ctl shred r2 --segment 2-4 </dev/null
expect_exit 4 "rot: an operator may not shred" $OPER lakecryptctl shred r2 --segment 2-4 --batch
expect_exit 0 "rot: admin shreds r2 segments 2-4" ctl --json shred r2 --segment 2-4 --batch
lc_diag "$(tr -d '\n' <"$LC_TMP/x.out")"
grep -q '"zeroed": true' "$LC_TMP/x.out" && lc_ok "rot: the shredded range was zeroed" || lc_notok "rot: zeroed"
shred_checks() {	# shred_checks WHEN
	for s in 2 3 4; do
		if dd if=/dev/mapper/r2 of=/dev/null bs=64K skip=$s count=1 iflag=direct 2>/dev/null; then
			lc_notok "rot: $1: I/O to shredded segment $s fails"
		else
			lc_ok "rot: $1: I/O to shredded segment $s fails"
		fi
	done
	lc_eq "rot: $1: segments 0-1 read as written" "$(want 0 2)" "$(seg 0 2)"
	lc_eq "rot: $1: segments 5-127 read as written" "$(want 5 123)" "$(seg 5 123)"
}
shred_checks "after the shred"
nz=$(dd if="$RL2" bs=64K skip=$((DOFF / 65536 + 2)) count=3 2>/dev/null | tr -d '\000' | wc -c)
lc_eq "rot: the shredded range of the device reads zeros" 0 "$nz"
set -- $(dmsetup status r2)
lc_diag "dmsetup status r2: $*"
expect_exit 0 "rot: close r2" ctl close r2
expect_exit 0 "rot: reopen r2" ctl open "$RL2" r2 --workspace wsr
shred_checks "after close and reopen"
expect_exit 0 "rot: close r2" ctl close r2
dd if="$LC_TMP/r2hdr" of="$RL2" bs=65536 conv=notrunc,fsync 2>/dev/null
expect_exit 1 "rot: an old header backup put back is refused (rollback)" ctl open "$RL2" r2 --workspace wsr
grep -q "older" "$LC_TMP/x.out" && lc_ok "rot: the refusal says the header is older" ||
	lc_notok "rot: the refusal says the header is older"
[ -e /dev/mapper/r2 ] && lc_notok "rot: no device from the old header" || lc_ok "rot: no device from the old header"
for op in rotate-kek rekey shred workspace.rekey; do
	grep -q "\"op\":\"$op\"" "$AUDIT" && lc_ok "rot: audit has $op" || lc_notok "rot: audit has $op"
done
ctl close r1 >/dev/null || lc_notok "rot: close r1"
