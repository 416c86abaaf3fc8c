#!/usr/bin/env bash
# Installs everything the static ARM (Raspberry Pi) path of expirenza-agent needs on a fresh
# Debian 12 machine of the project's kind. Idempotent: ~1-3 s when everything is present.
#
#   eval "$(cross/install-toolchain.sh | tail -1)"
#
# What it installs (docs/deploy.md §5 explains why):
#   * apt: qemu-user (run ARM binaries), file (static-link check), dpkg-dev (dpkg-deb,
#     dpkg-architecture), systemd (only for systemd-analyze, and only if it is missing).
#   * rustup: targets aarch64-/x86_64-unknown-linux-musl and component rust-src for the
#     toolchain pinned in rust-toolchain.toml. armv7/arm musleabihf have no downloadable
#     rust-std on this mirror: they are built with -Zbuild-std (see cross/build.sh).
#   * a Python venv with pinned cargo-zigbuild + ziglang wheels (~6 s, ~440 MB).
#   * NOT cargo-deb: packaging is done by cross/build-deb.sh with plain dpkg-deb, which needs
#     no extra install (cargo-deb compiles for minutes; see docs/deploy.md).
#
# NEVER add `rustup update` or `rustup toolchain add stable` here: the mirror advertises a
# newer stable and the project is pinned to 1.95.0.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { echo "[install-toolchain] $*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# --- 1) Debian packages -------------------------------------------------------------------
need=()
command -v qemu-aarch64 >/dev/null 2>&1 || command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user)
command -v qemu-arm >/dev/null 2>&1 || command -v qemu-arm-static >/dev/null 2>&1 || need+=(qemu-user)
command -v file >/dev/null 2>&1 || need+=(file)
command -v dpkg-deb >/dev/null 2>&1 && command -v dpkg-architecture >/dev/null 2>&1 || need+=(dpkg-dev)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
  # de-duplicate
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  log "apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  log "apt packages present"
fi

# --- 2) Rust targets/components for the pinned toolchain ------------------------------------
# Run from the repo so rust-toolchain.toml selects 1.95.0 (rustup installs it if missing,
# which is a pinned version, not an update of 'stable').
cd "$here"
tc="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml 2>/dev/null || true)"
tc="${tc:-1.95.0}"
if ! rustup toolchain list | grep -q "^$tc-"; then
  # the pinned version from rust-toolchain.toml (never 'stable', never 'rustup update')
  log "rustup toolchain install $tc"
  rustup toolchain install "$tc" --profile minimal --component rustfmt,clippy,rust-src >&2
fi
installed_targets="$(rustup target list --installed --toolchain "$tc" 2>/dev/null || true)"
for t in aarch64-unknown-linux-musl x86_64-unknown-linux-musl; do
  if ! grep -qx "$t" <<<"$installed_targets"; then
    log "rustup target add $t ($tc)"
    rustup target add --toolchain "$tc" "$t" >&2
  fi
done
if ! rustup component list --installed --toolchain "$tc" 2>/dev/null | grep -q '^rust-src'; then
  log "rustup component add rust-src ($tc)"
  rustup component add --toolchain "$tc" rust-src >&2
fi

# --- 3) cargo-zigbuild + zig from PyPI wheels in a private venv -----------------------------
ZB_VENV="${ZB_VENV:-$HOME/.cache/expirenza-agent/zig-venv}"
ZB_PINS=("cargo-zigbuild==0.24.0" "ziglang==0.17.1")
stamp="$ZB_VENV/.expirenza-pins"
if [ ! -x "$ZB_VENV/bin/cargo-zigbuild" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${ZB_PINS[*]}" ]; then
  log "creating venv $ZB_VENV with ${ZB_PINS[*]}"
  py="$(command -v python3)"
  "$py" -m venv "$ZB_VENV" >&2 || {
    # Debian's python3 needs python3-venv for ensurepip
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    "$py" -m venv "$ZB_VENV" >&2
  }
  "$ZB_VENV/bin/pip" install -q --disable-pip-version-check "${ZB_PINS[@]}" >&2
  echo "${ZB_PINS[*]}" > "$stamp"
else
  log "zig venv present ($ZB_VENV)"
fi
# cargo-zigbuild finds zig via `python -m ziglang` when 'zig' is not on PATH; the venv's bin
# has both python3 (with ziglang) and cargo-zigbuild.
"$ZB_VENV/bin/cargo-zigbuild" --version >&2

echo "export PATH=\"$ZB_VENV/bin:\$PATH\""
