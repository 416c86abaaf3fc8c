#!/usr/bin/env bash
# Soak the release agent against the fake cloud: scripts/soak.sh [SECONDS] [RATE]
# Prints the agent's RSS/HWM every 5 s and any error line; exit 1 on a lost answer, a dead
# agent or RSS drift over 4 MiB. Not part of `cargo test` or CI (see docs/testing.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs="${1:-600}"
rate="${2:-50}"
cargo build --release --bin expirenza-agent
cargo run --release --example soak -- --agent target/release/expirenza-agent --secs "$secs" --rate "$rate"
