#!/usr/bin/env bash
# Build static release binaries of expirenza-agent for Raspberry Pi class boards with
# cargo-zigbuild (no Docker needed).
#
#   eval "$(cross/install-toolchain.sh | tail -1)"
#   cross/build.sh [target...]
#
# Targets (default: all three ARM ones):
#   aarch64-unknown-linux-musl       Pi 3/4/5, Zero 2 W on a 64-bit OS
#   armv7-unknown-linux-musleabihf   32-bit Raspberry Pi OS on Pi 2/3/4
#   arm-unknown-linux-musleabihf     ARMv6: Pi 1, Zero, Zero W
#   x86_64-unknown-linux-musl        (optional, for local testing)
# The 32-bit targets rebuild std from rust-src (-Zbuild-std) on the pinned stable toolchain
# with RUSTC_BOOTSTRAP=1, and need the link-self-contained=no rustflags of .cargo/config.toml.
# Output: ${CARGO_TARGET_DIR:-target}/<target>/release/expirenza-agent
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=expirenza-agent
command -v cargo-zigbuild >/dev/null || {
  echo 'cargo-zigbuild not on PATH: run  eval "$(cross/install-toolchain.sh | tail -1)"' >&2; exit 2; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf arm-unknown-linux-musleabihf)
tdir="${CARGO_TARGET_DIR:-target}"
for t in "${targets[@]}"; do
  start=$(date +%s)
  case "$t" in
    aarch64-unknown-linux-musl|x86_64-unknown-linux-musl)
      # prebuilt rust-std exists: plain stable build
      cargo zigbuild --locked --release --target "$t" --bin "$BIN" ;;
    armv7-unknown-linux-musleabihf|arm-unknown-linux-musleabihf)
      # no rust-std download for these: rebuild std from rust-src (stable + RUSTC_BOOTSTRAP)
      RUSTC_BOOTSTRAP=1 cargo zigbuild --locked --release --target "$t" --bin "$BIN" \
        -Zbuild-std=std,panic_abort ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
  bin="$tdir/$t/release/$BIN"
  [ -x "$bin" ] || { echo "missing $bin" >&2; exit 1; }
  desc="$(file -b "$bin")"
  case "$desc" in
    *"statically linked"*|*"static-pie linked"*) ;;
    *) echo "NOT STATIC: $bin: $desc" >&2; exit 1 ;;
  esac
  echo "built $t in $(( $(date +%s) - start ))s: $(stat -c %s "$bin") bytes"
done
