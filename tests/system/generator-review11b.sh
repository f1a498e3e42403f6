# Sourced by tests/system/check.sh (its tap, has, $work, $log, $gen, $bb,
# $B, $G): lakecrypt-generator against the second hostile review of issue 11
# (review 11b): glob characters, device unit names too long for systemd,
# one device listed under two names, the stop timeout.  Each case fails
# without its fix.

# ---- glob characters in every field (finding 1): the generator is a root
# shell; a '*', '?' or '[...]' must stay those bytes, as the agent reads
# them.  The current directory holds a file "nofail" (so "nofai[l]",
# "?ofail" and "*" would become the option nofail) and a 0700 directory
# holds SECRETFILE (whose name must reach no unit and no message).
gw=$work/glob
mkdir -p "$gw/cwd/sdq" "$gw/out" "$gw/out-bb"
: >"$gw/cwd/nofail"
mkdir -m 700 "$gw/private" && : >"$gw/private/SECRETFILE"
cat >"$gw/tab" <<TAB
g* /dev/sdz ws1
g1 /dev/sd? ws1
g2 /dev/sdy w[s]1
g3 /dev/sdx ws1 nofai[l]
g4 /dev/sdw ws1 $gw/private/*
g5 /dev/sdv ws1 x-$gw/priv*/*
g6 /dev/sdu ws1 ?ofail
g7 /dev/sdt ws1 *
g8 /dev/sds ws1 nofail $gw/private/*
g9 /dev/sdr ws1 header=$gw/private/*
g10 /dev/sdq ws1 header=[n]ofail
g11 /dev/[s]dq ws1
g12 /dev/sdp ws1 /*/*
TAB
chmod 600 "$gw/tab"
(cd "$gw/cwd" && CRYPTTAB=/nonexistent LAKECRYPTTAB=$gw/tab "$gen" "$gw/out" 2>"$gw/err")
rc=$?
(cd "$gw/cwd" && env CRYPTTAB=/nonexistent LAKECRYPTTAB=$gw/tab PATH=$bb /bin/busybox sh "$gen" "$gw/out-bb" 2>"$gw/err-bb")
rc_bb=$?
ok=0
for o in out out-bb; do
	d=$gw/$o
	# g5's x-... is ignored (a warning): the only line that opens
	for v in line:1 g1 g2 g3 g4 g6 g7 g9 g10 g11 g12; do
		{ has "$d/lakecrypt@$v.service" '^ExecStart=/bin/false$' &&
			[ -L "$d/lakecrypt.target.requires/lakecrypt@$v.service" ]; } ||
			{ echo "$o: lakecrypt@$v.service is not a failing unit required by lakecrypt.target"; ok=1; } >>"$log"
	done
	has "$d/lakecrypt@g5.service" '^ExecStart=/usr/sbin/lakecryptctl .* open /dev/sdv g5 ' || ok=1
	[ ! -e "$d/lakecrypt@g8.service" ] || { echo "$o: g8 (5 fields, nofail): a unit"; ok=1; } >>"$log"
	[ ! -e "$d/lakecrypt.target.wants" ] || { echo "$o: a glob became nofail:"; ls "$d/lakecrypt.target.wants"; ok=1; } >>"$log"
	! grep -rl SECRETFILE "$d" >>"$log" || ok=1
done
for e in err err-bb; do
	! grep SECRETFILE "$gw/$e" >>"$log" || ok=1
	! grep -v '^lakecrypt-generator: ' "$gw/$e" >>"$log" || ok=1
	for l in 4:unknown 5:unknown 6:.*ignored 7:unknown 8:unknown; do
		grep -q "tab:${l%%:*}: ${l#*:}" "$gw/$e" || { echo "$e: no message for line ${l%%:*}"; ok=1; } >>"$log"
	done
done
diff -r --no-dereference "$gw/out" "$gw/out-bb" >>"$log" 2>&1 || ok=1
diff "$gw/err" "$gw/err-bb" >>"$log" 2>&1 || ok=1
[ $rc -eq 0 ] && [ $rc_bb -eq 0 ] && [ $ok -eq 0 ]
tap $? "'*', '?', '[x]' in every field are not expanded (no file name from a 0700 directory, 'nofai[l]' is no nofail), with coreutils and busybox alike"

# ---- a device unit name longer than systemd takes (finding 5): 253 bytes
# (a unit name is at most 255, its drop-in directory NAME.d must fit in a
# file name); over that the line is bad, said as FILE:LINE, no raw error.
x220=$(printf 'x%.0s' $(seq 220))
printf 'l253 /dev/disk/by-id/nvme-%s ws1 timeout=9\nl254 /dev/disk/by-id/nvme-%sx ws1 timeout=9\nl254b /dev/disk/by-id/nvme-%sx/ ws2 nofail\n' \
	"$x220" "$x220" "$x220" >"$work/tablong"
rm -rf "$G"; mkdir -p "$G"
CRYPTTAB=/nonexistent LAKECRYPTTAB=$work/tablong "$gen" "$G" 2>"$work/long.err"; rc=$?
e253=$(systemd-escape --path "/dev/disk/by-id/nvme-$x220").device
e254=$(systemd-escape --path "/dev/disk/by-id/nvme-${x220}x").device
cat "$work/long.err" >>"$log"
[ $rc -eq 0 ] && [ ${#e253} -eq 253 ] && [ ${#e254} -eq 254 ] &&
	has "$G/lakecrypt@l253.service" "^BindsTo=${e253//\\/\\\\}\$" &&
	has "$G/$e253.d/50-lakecrypt.conf" '^JobRunningTimeoutSec=9$' &&
	grep -qF "tablong:2: device \"/dev/disk/by-id/nvme-" "$work/long.err" &&
	grep -q "tablong:2: .*its systemd device unit name would be 254 bytes (systemd-escape --path), over the 253 .*; lakecrypt@l254.service fails at start" "$work/long.err" &&
	grep -q "tablong:3: .*would be 254 bytes.*; line skipped (nofail)" "$work/long.err" &&
	has "$G/lakecrypt@l254.service" '^ExecStart=/bin/false$' && ! grep -q BindsTo "$G/lakecrypt@l254.service" &&
	! grep -v '^lakecrypt-generator: ' "$work/long.err" && [ "$(find "$G" -name '*.d' | wc -l)" -eq 1 ]
tap $? "a device whose unit name would be 254 bytes: a bad line (FILE:LINE, no raw mkdir error); 253 bytes: its unit and drop-in"
rm -rf "$work/G-long"; mkdir -p "$work/G-long"
CRYPTTAB=/nonexistent LAKECRYPTTAB=$work/tablong "$B/lakecrypt-generator" "$work/G-long" 2>/dev/null
SYSTEMD_UNIT_PATH="$work/G-long:$work/units:" systemd-analyze verify "$work/G-long/lakecrypt@l253.service" >"$log" 2>&1
tap $? "systemd-analyze verify: the unit bound to a 253-byte device unit name"

# ---- one device under two names (finding 4): the second line is bad,
# naming both lines; UUID= and its by-uuid path are one device, and so are
# a path with and without its '/' at the end.  The first line that owns
# its NAME owns the device, good or bad; a duplicate NAME's line owns none.
U2=3f2c9d1e-8a4b-4c6d-9e0f-1a2b3c4d5e6f
cat >"$work/tabdup" <<TAB
ledger     UUID=${U2^^}  finance  x-systemd.device-timeout=5min
ledger-old UUID=$U2  finance  x-systemd.device-timeout=10s
by-path    /dev/disk/by-uuid/$U2  finance  nofail
w1         /dev/disk/by-id/wwn-0x1  finance  bogus
w2         /dev/disk/by-id/wwn-0x1/  finance
ledger     /dev/disk/by-id/wwn-0x2  finance
w3         /dev/disk/by-id/wwn-0x2  finance
TAB
chmod 600 "$work/tabdup"
rm -rf "$G"; mkdir -p "$G"
CRYPTTAB=/nonexistent LAKECRYPTTAB=$work/tabdup "$gen" "$G" 2>"$work/dup.err"; rc=$?
cat "$work/dup.err" >>"$log"
du=dev-disk-by\\x2duuid-3f2c9d1e\\x2d8a4b\\x2d4c6d\\x2d9e0f\\x2d1a2b3c4d5e6f.device
[ $rc -eq 0 ] &&
	grep -qF "tabdup:2: device \"UUID=$U2\" is already line 1's (volume \"ledger\"): two units would race for one device; list each device once (lakecrypttab(5)); lakecrypt@ledger-old.service fails at start" "$work/dup.err" &&
	grep -qF "tabdup:3: device \"/dev/disk/by-uuid/$U2\" is already line 1's (volume \"ledger\")" "$work/dup.err" &&
	grep -qF "tabdup:5: device \"/dev/disk/by-id/wwn-0x1/\" is already line 4's (volume \"w1\")" "$work/dup.err" &&
	grep -q 'tabdup:3: .*line skipped (nofail)' "$work/dup.err" &&
	has "$G/lakecrypt@ledger-old.service" '^ExecStart=/bin/false$' &&
	has "$G/lakecrypt@w2.service" '^ExecStart=/bin/false$' &&
	has "$G/lakecrypt@w3.service" '^ExecStart=/usr/sbin/lakecryptctl .* open /dev/disk/by-id/wwn-0x2 w3 ' &&
	has "$G/lakecrypt@ledger.service" '^ExecStart=/usr/sbin/lakecryptctl .* open /dev/disk/by-uuid/' &&
	[ "$(grep -lxF "BindsTo=$du" "$G"/*.service | wc -l)" -eq 1 ] &&
	has "$G/$du.d/50-lakecrypt.conf" '^JobRunningTimeoutSec=300$' && has "$G/$du.d/50-lakecrypt.conf" 'line 1$'
tap $? "one device under two names: the later line is bad, naming both lines (UUID= = by-uuid path, a trailing '/'); one unit bound to it, one drop-in (line 1's)"

# ---- the stop timeout (finding 6): close --timeout 90 ends first, with
# its message, systemd's TimeoutStopSec 10 s later (its default, 90 s,
# would kill close first).
printf 'st /dev/sdz ws1 timeout=0\n' >"$work/tabstop"
rm -rf "$G"; mkdir -p "$G"
CRYPTTAB=/nonexistent LAKECRYPTTAB=$work/tabstop "$gen" "$G" 2>"$log" &&
	has "$G/lakecrypt@st.service" '^ExecStop=/usr/sbin/lakecryptctl --timeout 90 close --if-open st ' &&
	has "$G/lakecrypt@st.service" '^TimeoutStopSec=100$'
tap $? "generated units: TimeoutStopSec=100, 10 s after close's own --timeout 90"
