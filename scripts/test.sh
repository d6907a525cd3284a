#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing, builds, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
echo "test: build directory $CARGO_TARGET_DIR" >&2
cargo test --workspace --all-features "$@"
