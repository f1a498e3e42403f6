#!/bin/bash
# The fleet revocation model's own invariants (tests/sim/fleet-sim.py
# --check, small fleets, deterministic seed).  Checks the simulation, not a
# running system; the figures for 100/1,000/10,000 nodes are in make bench
# and Documentation/fleet-revocation.md.  Ends with "N passed, N failed, N skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
exec python3 "$top/tests/sim/fleet-sim.py" --check
