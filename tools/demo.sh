#!/bin/bash
# make demo: the narrated lakecrypt walk-through in the QEMU machine.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# LAKECRYPT_DEMO=kernel: the dmsetup-level walk-through instead.
make -s -C "$top/agent"
exec "$top/tools/qemu/run.sh" --line "${LAKECRYPT_LINE:-6.1}" --entry "demo/${LAKECRYPT_DEMO:-demo}.sh" "$@"
