#!/usr/bin/env bash
# Guards of the code's layout (docs/design.md), run by CI and by hand: `bash scripts/layout-guard.sh`.
#   1. no production source file over 600 lines: lines before a file's first `#[cfg(test)]`
#      (test modules sit at the end by convention; `tests.rs` files and `src/test_util.rs` are
#      test code); tighter for the dispatcher's stages (350 each, src/dispatch/) and for
#      src/main.rs (200: it parses and hands over to cli/);
#   2. the layers of docs/design.md (a module imports only from its own layer or below), for
#      every module; no import circle between files; docs/design.md names every module and file,
#      and only paths that exist (scripts/layout-guard.py);
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
over=$(echo "$counts" | awk -v m="$max" '
  { cap = m } $2 ~ /^src\/dispatch\// { cap = 350 } $2 == "src/main.rs" { cap = 200 }
  $1 > cap { print $0 " (cap " cap ")" }')
if [ -n "$over" ]; then
  echo "over their cap of production lines (split the file, or move its tests to a tests.rs):" >&2
  echo "$over" >&2
  fail=1
fi

# The layers, table-driven for every module; no import circle; docs/design.md as the map
# (scripts/layout-guard.py says what it reads and how).
python3 scripts/layout-guard.py || fail=1

if grep -q '^name = "webpki-roots"$' Cargo.lock; then
  echo "webpki-roots is in Cargo.lock: src/tls.rs uses webpki-root-certs only" >&2
  fail=1
fi

exit "$fail"
