#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The KMS providers end to end, in one boot (tests/e2e/providers-host.sh
# boots it): runs aws-kms.sh, kmip.sh, gcp-kms.sh, etcd.sh (a fleet on an
# etcd registry, not a KMS) and pkcs11.sh, those
# named in the arguments, one after another, each with an agent, a state,
# an audit log and a RAM disk of its own (what the one before left is
# cleared away), and sums their tallies.  The network providers' arguments
# (key references, the test CA, credentials) are too long for the kernel
# command line: they come from 10.0.2.99:8080, one line "NAME ARG..." per
# provider.
# Args: PROVIDER... (aws kmip gcp etcd pkcs11)
cd "$(dirname "$0")" || exit 1
LC_CASE=e2e-providers
. /lakecrypt/tests/lib.sh
. ./machine.sh
mkdir -p "$LC_TMP"
: >"$LC_TALLY"
export PATH=/lakecrypt/bin:$PATH

[ $# -gt 0 ] || lc_bail "no provider named (aws, kmip, gcp, etcd, pkcs11)"
net=
for p in "$@"; do
	case $p in
	aws | kmip | gcp | etcd) net=1 ;;
	pkcs11) ;;
	*) lc_bail "unknown provider '$p' (aws, kmip, gcp, etcd, pkcs11)" ;;
	esac
done
if [ -n "$net" ]; then
	lc_machine_net
	timeout 30 nc 10.0.2.99 8080 </dev/null >"$LC_TMP/args" && [ -s "$LC_TMP/args" ] ||
		lc_bail "the providers' arguments from the host (10.0.2.99:8080)"
else
	lc_machine
fi

# The wrapper's own cases (a provider without arguments, a script that
# died without a failed case) are in $LC_TALLY; each script's in its own.
for p in "$@"; do
	case $p in
	aws) s=aws-kms.sh ;;
	kmip) s=kmip.sh ;;
	gcp) s=gcp-kms.sh ;;
	etcd) s=etcd.sh ;;
	pkcs11) s=pkcs11.sh ;;
	esac
	args=
	if [ "$p" != pkcs11 ]; then
		args=$(sed -n "s/^$p //p" "$LC_TMP/args")
		if [ -z "$args" ]; then
			lc_notok "$p: no arguments from the host"
			continue
		fi
	fi
	# A clean machine for each: no agent, no mapping, no state, no header.
	killall lakecrypt-agent 2>/dev/null && sleep 1
	dmsetup remove_all --force >/dev/null 2>&1
	rm -rf /tmp/lc-state /run/lakecrypt /tmp/lc-audit.log /tmp/agent.log
	dd if=/dev/zero of=/dev/ram0 bs=1M count=65 2>/dev/null
	t=$LC_TMP/tally-$p
	# shellcheck disable=SC2086 # the arguments are words
	LC_TALLY=$t sh "./$s" $args
	rc=$?
	[ "$rc" -eq 0 ] || grep -q '^fail' "$t" || lc_notok "$s exited $rc with no failed case"
done
killall lakecrypt-agent 2>/dev/null
P=0 F=0 S=0
for t in "$LC_TALLY" "$LC_TMP"/tally-*; do
	[ -f "$t" ] || continue
	P=$((P + $(grep -c '^pass' "$t"))) F=$((F + $(grep -c '^fail' "$t"))) S=$((S + $(grep -c '^skip' "$t")))
done
lc_say "$P passed, $F failed, $S skipped"
[ "$F" -eq 0 ]
