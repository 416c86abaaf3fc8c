#!/usr/bin/env bash
# Guards of the code's layout (docs/design.md), run by CI and by hand: `bash scripts/layout-guard.sh`.
#   1. no production source file over 600 lines: lines before a file's first `#[cfg(test)]`
#      (test modules sit at the end by convention; `tests.rs` files and `src/test_util.rs` are
#      test code);
#   2. nothing below `ops` imports `ops` (only the edge and the session layer may);
#   3. one root-store crate: webpki-root-certs, never webpki-roots too.
# Prints the largest files either way; exits 1 on any violation.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fail=0

max=600
echo "largest production source files (lines before #[cfg(test)]):"
counts=$(for f in $(git ls-files 'src/*.rs' 'src/**/*.rs'); do
  case "$f" in */tests.rs|src/test_util.rs) continue ;; esac
  echo "$(awk '/^#\[cfg\(test\)\]/ { exit } { n++ } END { print n + 0 }' "$f") $f"
done | sort -rn)
echo "$counts" | head -n 5 | sed 's/^/  /'
over=$(echo "$counts" | awk -v m="$max" '$1 > m')
if [ -n "$over" ]; then
  echo "over $max production lines (split the file, or move its tests to a tests.rs):" >&2
  echo "$over" >&2
  fail=1
fi

# ops is imported by the edge (main.rs, agent.rs, check/, cli/), the session layer
# (dispatch/, link/) and itself. (Test support, in the testkit/ crate, sits above everything.)
below=$(grep -rn 'crate::ops' src --include='*.rs' \
  | grep -v -e '^src/ops/' -e '^src/cli/' -e '^src/main.rs:' -e '^src/agent.rs:' \
            -e '^src/check/' -e '^src/dispatch/' -e '^src/link/' || true)
if [ -n "$below" ]; then
  echo "a module below ops imports ops (move the shared part to ctx.rs or wire/):" >&2
  echo "$below" >&2
  fail=1
fi

if grep -q '^name = "webpki-roots"$' Cargo.lock; then
  echo "webpki-roots is in Cargo.lock: src/tls.rs uses webpki-root-certs only" >&2
  fail=1
fi

exit "$fail"
