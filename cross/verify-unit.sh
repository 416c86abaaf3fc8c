#!/usr/bin/env bash
# Lint systemd/expirenza-agent.service offline.
#   cross/verify-unit.sh [unit-file] [threshold-in-tenths]   (default: the repo unit, 20 = 2.0)
# * `systemd-analyze verify` needs ExecStart= to be an existing executable, so the unit is
#   copied with ExecStart rewritten to one (the built binary if any, else /bin/true).
# * verify exits 0 even on bad directives ("Unknown key name ..., ignoring"): ANY output fails.
# * `systemd-analyze security --offline=yes --threshold=N` fails when the exposure is above N/10.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
unit="${1:-systemd/expirenza-agent.service}"
threshold="${2:-20}"
command -v systemd-analyze >/dev/null || { echo "systemd-analyze missing (apt-get install systemd)" >&2; exit 2; }
exe=""
for t in aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf arm-unknown-linux-musleabihf x86_64-unknown-linux-musl; do
  c="${CARGO_TARGET_DIR:-target}/$t/release/expirenza-agent"
  if [ -x "$c" ]; then exe="$(realpath "$c")"; break; fi
done
exe="${exe:-$(command -v true)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# same base name: verify derives the unit name from the file name
sed -E "s#^ExecStart=/usr/bin/expirenza-agent #ExecStart=$exe #" "$unit" > "$work/expirenza-agent.service"
grep -q "^ExecStart=$exe " "$work/expirenza-agent.service" || { echo "ExecStart= line not found in $unit" >&2; exit 1; }

out="$(cd "$work" && systemd-analyze verify --man=no "$work/expirenza-agent.service" 2>&1)" || {
  echo "systemd-analyze verify failed:"; echo "$out"; exit 1; }
if [ -n "$out" ]; then
  echo "systemd-analyze verify printed warnings (treated as failure):"; echo "$out"; exit 1
fi
echo "verify: clean"

sec_rc=0
sec="$(systemd-analyze security --offline=yes --threshold="$threshold" "$work/expirenza-agent.service" 2>&1)" || sec_rc=$?
score="$(grep -E 'Overall exposure level' <<<"$sec" | sed -E 's/\x1b\[[0-9;]*m//g; s/^[^A-Za-z]*//')"
echo "security: ${score:-no score line}"
if [ "$sec_rc" != 0 ]; then
  echo "$sec" | grep -E '✗' || true
  echo "systemd-analyze security: exposure above $((threshold / 10)).$((threshold % 10)) (rc=$sec_rc)" >&2
  exit 1
fi
