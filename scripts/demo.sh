#!/usr/bin/env bash
# strand's demo, from a fresh machine: installs what is missing, builds, runs `strand demo`.
#
# `strand demo` runs a whole local cluster as separate processes on 127.0.0.1 — a property
# store, two controllers, three participants — walks Helix's tutorial (MYCLUSTER, myDB:
# 6 partitions, MasterSlave, 3 replicas), shows the external view as it changes, SIGKILLs
# the MASTER-heaviest participant and then the leading controller, and prints what it
# measured. Everything lives in a temp dir and stops at the end (or on Ctrl-C).
#
# Arguments go to `strand demo` (e.g. `--store-replicas 3`, `--participants 5`, `--keep`).
# STRAND_BIN=path/to/strand skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${STRAND_BIN:-}" ]; then
  . scripts/setup.sh
  echo "demo: building strand (release; the first build compiles RocksDB, ~20 minutes on 2 cores)" >&2
  cargo build --release --quiet
  STRAND_BIN="$CARGO_TARGET_DIR/release/strand"
fi
exec "$STRAND_BIN" demo "$@"
