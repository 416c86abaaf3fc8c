#!/usr/bin/env bash
# The oldest Python and SQLite the reference POS side (contrib/pos/) supports, as Debian 11 and
# Raspberry Pi OS bullseye ship them: Python 3.9.2 with SQLite 3.34.1 (no `UPDATE … RETURNING`,
# which SQLite has only from 3.35). Fetched from Debian's bullseye archive with apt-get and its
# own package lists (the machine's apt sources are not touched), unpacked, not installed.
#
#   scripts/bullseye-python.sh [dir]     (default: ${CARGO_TARGET_DIR:-target}/bullseye-python)
# Prints the path of a `python3` wrapper on the last line; CI runs tests/pos_reference.rs with
# it as EXPIRENZA_PYTHON. A second run reuses what the first fetched. Exit status 3: Debian's
# archive could not be reached (nothing was tested); any other failure is 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir="${1:-${CARGO_TARGET_DIR:-target}/bullseye-python}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
py="$dir/python3"
want_py=3.9.2 want_sqlite=3.34.1

check() {
  [ -x "$py" ] && "$py" -c "import sys, sqlite3
assert sys.version.split()[0] == '$want_py', sys.version
assert sqlite3.sqlite_version == '$want_sqlite', sqlite3.sqlite_version" 2>/dev/null
}

if ! check; then
  rm -rf "$dir/apt" "$dir/root" "$dir"/*.deb
  mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/root"
  apt=(-q -o "Dir::Etc::sourcelist=$dir/apt/sources.list" -o Dir::Etc::sourceparts=-
       -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache"
       -o APT::Sandbox::User=root -o Acquire::http::Timeout=30 -o Acquire::Retries=2)
  # bullseye moves from deb.debian.org to archive.debian.org when its long-term support ends.
  fetched=""
  for mirror in http://deb.debian.org/debian http://archive.debian.org/debian; do
    echo "deb $mirror bullseye main" > "$dir/apt/sources.list"
    rm -rf "$dir/apt/lists"; mkdir -p "$dir/apt/lists/partial"
    if apt-get "${apt[@]}" update >/dev/null 2>&1 \
        && apt-cache "${apt[@]}" madison libsqlite3-0 2>/dev/null | grep -q ' 3\.34\.1-3 '; then
      fetched=$mirror; break
    fi
  done
  if [ -z "$fetched" ]; then
    echo "bullseye-python: could not fetch Debian 11's package lists (deb.debian.org, archive.debian.org)" >&2
    exit 3
  fi
  (cd "$dir" && apt-get "${apt[@]}" download \
     python3.9-minimal=3.9.2-1 libpython3.9-minimal=3.9.2-1 libpython3.9-stdlib=3.9.2-1 \
     libsqlite3-0=3.34.1-3 >/dev/null)
  for d in "$dir"/*.deb; do dpkg-deb -x "$d" "$dir/root"; done
  libdir="$(dirname "$(find "$dir/root/usr/lib" -name 'libsqlite3.so.0' | head -n 1)")"
  cat > "$py" <<WRAPPER
#!/bin/sh
# Debian 11's python3.9 with Debian 11's libsqlite3 (unpacked by scripts/bullseye-python.sh).
LD_LIBRARY_PATH="$libdir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$dir/root/usr/bin/python3.9" "\$@"
WRAPPER
  chmod 0755 "$py"
  check || { echo "$py is not Python $want_py with SQLite $want_sqlite" >&2; "$py" -V >&2 || true; exit 1; }
fi
"$py" -c 'import sys, sqlite3; print("Python", sys.version.split()[0], "SQLite", sqlite3.sqlite_version)' >&2
echo "$py"
