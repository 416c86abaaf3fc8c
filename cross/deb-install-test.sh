#!/usr/bin/env bash
# Install the expirenza-agent .deb for real on this machine and check what Debian policy says
# each step must leave behind. Run as root on a Debian machine (CI: a fresh Debian 12 where
# systemd is not PID 1, so the maintainer scripts must cope without a running systemd).
#
#   cross/deb-install-test.sh target/deb/expirenza-agent_<version>_amd64.deb
#
# Steps: install; check the user, the unit and its enablement, the config example (a conffile)
# and the directories, the integrator's documents (mirror.md, journal.md, protocol.md,
# deploy.md), the reference POS side in examples/pos/ (modes, and its applier run from a copy)
# and both printable schemas, and that the installed binary runs as the service user; edit the
# example and write a real config; reinstall the same .deb, then upgrade to a repacked newer
# one whose example changed: the edits survive (the new example lands as .dpkg-dist);
# `dpkg -r`: the binary and unit go, configuration stays; `dpkg --purge`: configuration goes,
# the journal (payment records) and the system user stay.
# Idempotent: a previous install of the package is purged first, and again at the end.
set -euo pipefail
deb="$(readlink -f "${1:?usage: deb-install-test.sh PATH.deb (of this machine architecture)}")"
[ "$(id -u)" = 0 ] || { echo "deb-install-test: run as root (it installs a package)" >&2; exit 2; }
PKG=expirenza-agent
ETC=/etc/$PKG
STATE=/var/lib/$PKG
UNIT=/lib/systemd/system/$PKG.service
WANTS=/etc/systemd/system/multi-user.target.wants/$PKG.service
fail() { echo "deb-install-test: FAIL: $*" >&2; exit 1; }
ok() { echo "  ok  $*"; }
mode_owner() { stat -c '%a %U:%G' "$1"; }
expect_mode() { # path "mode user:group"
  [ -e "$1" ] || fail "$1 is missing"
  local got; got="$(mode_owner "$1")"
  [ "$got" = "$2" ] || fail "$1 is $got, want $2"
  ok "$1 $2"
}
status_of() { dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null | tr -d ' ' || true; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "== deb-install-test: $deb (PID 1 is $(ps -p 1 -o comm= 2>/dev/null || echo unknown))"

# A clean start, whatever an earlier (maybe interrupted) run left.
dpkg --purge "$PKG" >/dev/null 2>&1 || true
rm -rf "$STATE"

echo "== 1. dpkg -i"
dpkg -i "$deb" >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "dpkg -i failed"; }
[ "$(status_of)" = ii ] || fail "package state $(status_of), want ii"
ok "installed (ii)"
ent="$(getent passwd $PKG)" || fail "no user $PKG"
uid="$(cut -d: -f3 <<<"$ent")"; shell="$(cut -d: -f7 <<<"$ent")"
[ "$uid" -lt 1000 ] || fail "user $PKG has uid $uid: not a system user"
case "$shell" in */nologin|/bin/false) ;; *) fail "user $PKG has a login shell: $shell" ;; esac
getent group $PKG >/dev/null || fail "no group $PKG"
ok "system user $PKG (uid $uid, shell $shell) and group"
expect_mode "$UNIT" "644 root:root"
[ -L "$WANTS" ] && [ "$(readlink -f "$WANTS")" = "$(readlink -f "$UNIT")" ] \
  || fail "the unit is not enabled ($WANTS)"
ok "unit enabled for multi-user.target (without a running systemd)"
expect_mode "$ETC" "750 root:$PKG"
expect_mode "$ETC/config.toml.example" "640 root:$PKG"
grep -qx "$ETC/config.toml.example" /var/lib/dpkg/info/$PKG.conffiles || fail "example not a conffile"
ok "config.toml.example is a conffile"
[ ! -e "$ETC/config.toml" ] || fail "config.toml shipped: the unit would start unconfigured"
ok "no config.toml (the unit's ConditionPathExists keeps it stopped)"
expect_mode "$STATE" "770 $PKG:$PKG"
expect_mode /usr/bin/$PKG "755 root:root"
/usr/bin/$PKG --version | grep -q "^$PKG " || fail "the binary does not run"
ok "$(/usr/bin/$PKG --version)"
DOC=/usr/share/doc/$PKG
if grep -rqs '^path-exclude.*/usr/share/doc' /etc/dpkg/dpkg.cfg.d/; then
  # A minimal image told dpkg not to unpack documentation: the package still lists them.
  for d in mirror.md journal.md protocol.md deploy.md mirror-schema.sql journal-schema.sql; do
    dpkg -L $PKG | grep -qx "$DOC/$d" || fail "the package does not ship $DOC/$d"
  done
  ok "the integrator's documents are in the package (this image excludes $DOC from unpacking)"
  dpkg-deb -x "$deb" "$work/unpacked"
  DOC="$work/unpacked$DOC"
else
  for d in mirror.md journal.md protocol.md deploy.md; do
    [ -s "$DOC/$d" ] || fail "$DOC/$d is missing or empty"
    expect_mode "$DOC/$d" "644 root:root"
  done
  ok "the integrator's documents are in $DOC"
fi
# The reference POS side the documents point to (contrib/pos/ in the source).
EX="$DOC/examples/pos"
for d in "$DOC/examples" "$EX" "$EX/kasapro"; do expect_mode "$d" "755 root:root"; done
for f in README.md applier.py kasapro/__init__.py kasapro/adapter.py kasapro/schema.sql \
         kasapro/mirror_views.sql kasapro/mirror_sync.py kasapro/pos_db.py kasapro/demo.sql; do
  [ -s "$EX/$f" ] || fail "$EX/$f is missing or empty"
  expect_mode "$EX/$f" "644 root:root"
done
leftover="$(find "$EX" -mindepth 1 \( -type d -perm /022 -o -type f \( -perm /133 -o ! -perm -444 \) \) -print)"
[ -z "$leftover" ] || fail "not 0644 files and 0755 directories under $EX: $leftover"
ok "the reference POS side is in $EX (files 0644, directories 0755)"
if command -v python3 >/dev/null; then
  # As the docs say: copy it out, then it applies a command of a journal made from the
  # package's own schema.
  cp -r "$EX" "$work/pos"
  PYTHONDONTWRITEBYTECODE=1 python3 "$work/pos/kasapro/pos_db.py" --views --demo --pos "$work/pos.sqlite" >/dev/null \
    || fail "the shipped kasapro/pos_db.py failed"
  /usr/bin/$PKG journal --print-schema | python3 -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.executescript(sys.stdin.read())
db.execute("INSERT INTO commands (rid, operation, request, created_at) "
           "VALUES (?, ?, ?, 0)", ("deb-install-test", "showMessage", "{\"message\": \"hi\"}"))
db.commit()' "$work/journal.sqlite" || fail "could not make a journal from journal --print-schema"
  PYTHONDONTWRITEBYTECODE=1 python3 "$work/pos/applier.py" --journal "$work/journal.sqlite" \
    --pos "$work/pos.sqlite" --once >"$work/applier.log" 2>&1 \
    || { cat "$work/applier.log" >&2; fail "the shipped applier.py failed"; }
  st="$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT status FROM commands").fetchone()[0])' "$work/journal.sqlite")"
  [ "$st" = applied ] || { cat "$work/applier.log" >&2; fail "the shipped applier left the command $st"; }
  ok "the shipped applier.py (copied out) applies a command ($(python3 -V))"
else
  ok "no python3 here: the shipped applier.py not run"
fi
/usr/bin/$PKG init-mirror --print-schema >"$work/mirror-schema.sql" || fail "init-mirror --print-schema failed"
grep -q "CREATE TABLE IF NOT EXISTS order_positions" "$work/mirror-schema.sql" || fail "init-mirror --print-schema printed no mirror schema"
cmp -s "$work/mirror-schema.sql" "$DOC/mirror-schema.sql" || fail "init-mirror --print-schema differs from $DOC/mirror-schema.sql"
/usr/bin/$PKG journal --print-schema >"$work/journal-schema.sql" || fail "journal --print-schema failed"
grep -q "CREATE TABLE IF NOT EXISTS commands" "$work/journal-schema.sql" || fail "journal --print-schema printed no journal schema"
cmp -s "$work/journal-schema.sql" "$DOC/journal-schema.sql" || fail "journal --print-schema differs from $DOC/journal-schema.sql"
ok "both schemas print (init-mirror --print-schema, journal --print-schema) and match $DOC"

echo "== 2. configure as a technician would; run as the service user"
echo "# local edit by the technician" >>"$ETC/config.toml.example"
cat >"$ETC/config.toml" <<EOF
resto_id = "deb-install-test"
mirror_path = "$STATE/mirror.sqlite"
EOF
chown root:$PKG "$ETC/config.toml"; chmod 0640 "$ETC/config.toml"
install -m 0600 /dev/null "$ETC/secret_key"; echo "deb-install-test-secret" >"$ETC/secret_key"
runuser -u $PKG -- /usr/bin/$PKG init-mirror --demo "$STATE/mirror.sqlite" >/dev/null
# The unit hands the secret over as a credential; emulate that for the service user.
mkdir -p "$work/cred"; cp "$ETC/secret_key" "$work/cred/secret_key"
chown -R $PKG "$work/cred"; chmod 0755 "$work"
out="$(CREDENTIALS_DIRECTORY="$work/cred" runuser -u $PKG -- /usr/bin/$PKG check --config "$ETC/config.toml" 2>&1)" \
  || { echo "$out" >&2; fail "check as the service user failed"; }
grep -q "deb-install-test-secret" <<<"$out" && fail "check printed the secret"
ok "the service user reads the config and the mirror: check passes"

echo "== 3. reinstall, then upgrade: the edits survive"
dpkg -i "$deb" >"$work/reinstall.log" 2>&1 || { cat "$work/reinstall.log" >&2; fail "reinstall failed"; }
grep -q "local edit by the technician" "$ETC/config.toml.example" || fail "reinstall lost the conffile edit"
grep -q 'resto_id = "deb-install-test"' "$ETC/config.toml" || fail "reinstall lost config.toml"
ok "reinstall kept the edited example and config.toml"
# A newer package whose example changed too: dpkg keeps the local version (--force-confold,
# as unattended upgrades do) and puts the new one next to it as .dpkg-dist.
dpkg-deb -R "$deb" "$work/up"
ver="$(sed -n 's/^Version: //p' "$work/up/DEBIAN/control")"
sed -i "s/^Version: .*/Version: $ver+upgradetest1/" "$work/up/DEBIAN/control"
echo "# a line added by the newer package" >>"$work/up/etc/$PKG/config.toml.example"
dpkg-deb --build --root-owner-group "$work/up" "$work/upgrade.deb" >/dev/null
dpkg -i --force-confdef --force-confold "$work/upgrade.deb" >"$work/upgrade.log" 2>&1 \
  || { cat "$work/upgrade.log" >&2; fail "upgrade failed"; }
[ "$(dpkg-query -W -f='${Version}' $PKG)" = "$ver+upgradetest1" ] || fail "upgrade did not happen"
grep -q "local edit by the technician" "$ETC/config.toml.example" || fail "upgrade lost the conffile edit"
grep -q "a line added by the newer package" "$ETC/config.toml.example.dpkg-dist" \
  || fail "the new example is not in config.toml.example.dpkg-dist"
grep -q 'resto_id = "deb-install-test"' "$ETC/config.toml" || fail "upgrade lost config.toml"
[ -L "$WANTS" ] || fail "upgrade lost the enablement"
ok "upgrade to $ver+upgradetest1 kept the edited example (new one in .dpkg-dist), config.toml, enablement"
# An admin's disable survives an upgrade (deb-systemd-helper sees the missing link).
if [ -x /usr/bin/deb-systemd-helper ]; then
  systemctl disable $PKG.service >/dev/null 2>&1 || rm -f "$WANTS"   # works offline too
  [ ! -e "$WANTS" ] || fail "could not disable the unit"
  dpkg -i --force-confdef --force-confold "$work/upgrade.deb" >/dev/null 2>&1 || fail "reinstall failed"
  [ ! -e "$WANTS" ] && [ ! -L "$WANTS" ] || fail "reinstall re-enabled a unit the admin disabled"
  systemctl enable $PKG.service >/dev/null 2>&1 || ln -s "$UNIT" "$WANTS"
  [ -L "$WANTS" ] || fail "could not enable the unit again"
  ok "a disabled unit stays disabled across a reinstall"
fi
runuser -u $PKG -- /usr/bin/$PKG init-mirror "$STATE/journal-stand-in.sqlite" >/dev/null
echo "status=written-by-agent" >"$STATE/status"

echo "== 4. dpkg -r: program gone, configuration stays"
dpkg -r $PKG >"$work/remove.log" 2>&1 || { cat "$work/remove.log" >&2; fail "dpkg -r failed"; }
[ "$(status_of)" = rc ] || fail "package state $(status_of), want rc (removed, config-files)"
[ ! -e /usr/bin/$PKG ] || fail "binary left after remove"
[ ! -e "$UNIT" ] || fail "unit left after remove"
[ ! -e /usr/share/doc/$PKG ] || fail "remove left /usr/share/doc/$PKG: $(find /usr/share/doc/$PKG | head -5)"
ok "binary, unit and documents (examples/pos/ too) removed (state rc)"
for f in "$ETC/config.toml.example" "$ETC/config.toml" "$ETC/secret_key" \
         "$STATE/mirror.sqlite" "$STATE/journal-stand-in.sqlite"; do
  [ -e "$f" ] || fail "remove deleted $f (configuration and data must stay until purge)"
done
ok "conffile, config.toml, secret_key and /var/lib data kept"
getent passwd $PKG >/dev/null || fail "remove deleted the user"
ok "user kept"

echo "== 5. dpkg --purge: configuration gone; payment data and the user stay"
dpkg --purge $PKG >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "dpkg --purge failed"; }
[ -z "$(status_of)" ] || [ "$(status_of)" = un ] || fail "package state $(status_of) after purge"
for f in "$ETC/config.toml.example" "$ETC/config.toml.example.dpkg-dist" "$ETC/config.toml" \
         "$ETC/secret_key" "$ETC" "$WANTS" "$STATE/status"; do
  [ ! -e "$f" ] && [ ! -L "$f" ] || fail "purge left $f"
done
ok "conffile (and .dpkg-dist), config.toml, secret_key, /etc/$PKG, enablement, status removed"
for f in "$STATE/mirror.sqlite" "$STATE/journal-stand-in.sqlite"; do
  [ -e "$f" ] || fail "purge deleted $f (journal/mirror data are removed by hand after reconciliation)"
done
ok "journal and mirror in $STATE kept (payment records)"
getent passwd $PKG >/dev/null || fail "purge deleted the system user"
ok "system user kept (Debian does not remove system users)"

# Leave the machine as found (the user stays, as after any purge).
rm -rf "$STATE"
echo "== deb-install-test: all checks passed"
