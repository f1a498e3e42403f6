#!/bin/bash
# make demo: the narrated lakecrypt walk-through in the QEMU machine.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
exec "$top/tools/qemu/run.sh" --line "${LAKECRYPT_LINE:-6.1}" --entry demo/demo.sh "$@"
