#!/usr/bin/env bash
# strand's demo, from a fresh machine: installs what is missing, builds, runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo build --release --quiet
STRAND="$CARGO_TARGET_DIR/release/strand"
echo "== the built-in state models"
"$STRAND" statemodel list
echo
echo "== Helix's tutorial cluster: 6 partitions x 3 replicas, MasterSlave, 3 instances"
"$STRAND" plan examples/plan/tutorial.json -o table
echo
echo "== the same cluster after localhost_12913 is killed"
"$STRAND" plan examples/plan/failover.json -o table
