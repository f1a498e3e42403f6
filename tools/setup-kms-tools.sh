#!/bin/bash
# Test tools for the cloud KMS providers, installed by `make setup`
# (tools/setup-deps.sh) and idempotent: a second run only checks.
#   $LAKECRYPT_TOOLS/venv       Python venv with botocore (SigV4 reference),
#                               moto (server mode: DescribeKey states),
#                               google-cloud-kms, google-auth, google-crc32c,
#                               cryptography (Google Cloud KMS: tests/kms/gcp.sh)
#                               and azure-keyvault-keys + azure-identity (Azure SDK)
#   $LAKECRYPT_TOOLS/bin/local-kms   AWS KMS emulator (Go module proxy)
#   python3-pykmip              KMIP server and client (Debian package)
# Go is installed from Debian if no go is on PATH or in /usr/local/go.
#   softhsm2, opensc (pkcs11-tool), xxd   the PKCS#11 provider's tests
#                               (tests/kms/pkcs11.sh), from Debian
#   etcd-server, etcd-client    etcd 3.4 for tests/etcd (its etcd.service disabled)
set -euo pipefail
tools=${LAKECRYPT_TOOLS:-/opt/lakecrypt-tools}
LOCAL_KMS_VERSION=v0.0.0-20260228092603-2a5e92d09ab6
BOTOCORE_VERSION=${BOTOCORE_VERSION:-}
MOTO_VERSION=${MOTO_VERSION:-}
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$tools/bin"

need=()
for p in stunnel4 python3-venv openssl softhsm2 opensc xxd libp11-kit-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
[ ${#need[@]} -eq 0 ] || apt-get install -y -q --no-install-recommends "${need[@]}"
# KMIP: PyKMIP's server and client for Debian's /usr/bin/python3 (tests/kms/kmip.sh).
dpkg-query -W -f='${Status}' python3-pykmip 2>/dev/null | grep -q 'ok installed' ||
	apt-get install -y -q --no-install-recommends python3-pykmip

if [ ! -x "$tools/venv/bin/python3" ] || ! "$tools/venv/bin/python3" -c 'import botocore, moto' 2>/dev/null ||
   [ ! -x "$tools/venv/bin/moto_server" ]; then
	[ -x "$tools/venv/bin/python3" ] || /usr/bin/python3 -m venv "$tools/venv"
	"$tools/venv/bin/pip" install -q "botocore${BOTOCORE_VERSION:+==$BOTOCORE_VERSION}" \
		"moto[server]${MOTO_VERSION:+==$MOTO_VERSION}"
fi

# Azure: the official SDK (azure-keyvault-keys, azure-identity) checks the
# project's fake Key Vault (tests/kms/fake-azure-kv.py), which needs
# cryptography (RSA-OAEP-256, A256KW) and PyJWT (client assertions).
# lowkey-vault, a real emulator, is not served by the Maven repository
# reached here.
if ! "$tools/venv/bin/python3" -c 'import azure.keyvault.keys, azure.identity, cryptography, jwt' 2>/dev/null; then
	"$tools/venv/bin/pip" install -q azure-keyvault-keys azure-identity cryptography PyJWT
fi

if [ ! -x "$tools/bin/local-kms" ] || [ "$(cat "$tools/bin/local-kms.version" 2>/dev/null)" != "$LOCAL_KMS_VERSION" ]; then
	PATH=$PATH:/usr/local/go/bin
	if ! command -v go >/dev/null; then
		apt-get install -y -q --no-install-recommends golang-go
	fi
	gopath=$tools/go
	GOPATH=$gopath GOFLAGS=-modcacherw GOBIN=$tools/bin \
		go install "github.com/nsmithuk/local-kms@$LOCAL_KMS_VERSION"
	echo "$LOCAL_KMS_VERSION" >"$tools/bin/local-kms.version"
fi
# Google Cloud KMS (tests/kms/gcp.sh): the official SDK that proves the
# project's own test server, google-auth (service-account JWT grant),
# google-crc32c (Google's CRC32C, the fake's independent reference) and
# cryptography (the fake's AES-GCM and RS256 verification).
if ! "$tools/venv/bin/python3" -c 'import google.cloud.kms, google.auth.transport.requests, google_crc32c, cryptography, grpc' 2>/dev/null; then
	"$tools/venv/bin/pip" install -q "google-cloud-kms${GOOGLE_CLOUD_KMS_VERSION:+==$GOOGLE_CLOUD_KMS_VERSION}" \
		"google-auth[requests]" google-crc32c cryptography
fi
# etcd (tests/etcd: the fleet registry's client against a real 3-member
# cluster on ephemeral ports).  Debian's etcd-server enables and starts a
# system etcd.service on 2379: the tests never use it, so it is stopped
# and disabled (where systemd runs) rather than left serving.
if ! dpkg-query -W -f='${Status}' etcd-server 2>/dev/null | grep -q 'ok installed' ||
   ! dpkg-query -W -f='${Status}' etcd-client 2>/dev/null | grep -q 'ok installed'; then
	apt-get install -y -q --no-install-recommends etcd-server etcd-client
fi
if [ -d /run/systemd/system ] && { systemctl is-enabled --quiet etcd.service || systemctl is-active --quiet etcd.service; } 2>/dev/null; then
	systemctl disable --now etcd.service
elif [ ! -d /run/systemd/system ] && [ -x /etc/init.d/etcd ]; then
	# sysvinit (containers): the package's init script
	/etc/init.d/etcd status >/dev/null 2>&1 && /etc/init.d/etcd stop
	ls /etc/rc[2-5].d/S*etcd >/dev/null 2>&1 && update-rc.d etcd disable >/dev/null
fi
echo "setup-kms-tools: ok ($tools)"
