#!/usr/bin/env bash
# The long run of the property tests over every decoder and parser (tests/fuzz.rs):
# the same tests as `cargo test --test fuzz`, in release, with PROPTEST_CASES cases each.
#   scripts/fuzz.sh            # 100000 cases per property
#   scripts/fuzz.sh 5000       # fewer
#   scripts/fuzz.sh 20000 gossip   # only the tests whose name contains "gossip"
#   FUZZ_PROFILE=dev scripts/fuzz.sh  # reuse the debug build (dependencies are optimised
#                                     # there too) instead of building everything in release
# A failure prints the failing input (shrunk) and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cases="${1:-100000}"
shift || true
profile="${FUZZ_PROFILE:-release}"
echo "fuzz: ${cases} cases per property, $profile build in $CARGO_TARGET_DIR" >&2
PROPTEST_CASES="$cases" exec cargo test --profile "$profile" --all-features --test fuzz -- "$@"
