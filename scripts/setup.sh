#!/usr/bin/env bash
# Installs what strand's build needs on a fresh Debian machine, when it is missing:
# a C toolchain, clang/libclang-dev (RocksDB's bindings), pkg-config, and chromium with
# chromium-driver (the dashboard's browser tests). Source it or run it.
# It also picks a build directory outside the clone, reused across clones and runs.
# Sourced, it leaves the shell's options as they were (no `set -e` left behind) and
# returns non-zero on failure instead of exiting the shell.

(
  set -euo pipefail
  need=()
  for pkg in build-essential clang libclang-dev pkg-config chromium chromium-driver; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  fi
) || { echo "setup: installing packages failed" >&2; return 1 2>/dev/null || exit 1; }

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo (Rust toolchain) not found; install it with rustup" >&2; return 1 2>/dev/null || exit 1; }

# One build directory outside the clone, so a fresh clone reuses earlier builds
# (RocksDB alone takes ~16 minutes to compile on 2 cores). Never cleaned by these scripts.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strand/target}"
mkdir -p "$CARGO_TARGET_DIR"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
