#!/usr/bin/env bash
# Build one expirenza-agent .deb from a binary built by cross/build.sh, with plain
# `dpkg-deb --build --root-owner-group` from a staged tree (no cargo-deb: it would have to be
# compiled on every fresh CI machine, and dpkg-deb gives full control of modes and scripts).
#
#   cross/build-deb.sh <rust-target> <deb-arch> [out-dir]
#     e.g. cross/build-deb.sh aarch64-unknown-linux-musl arm64 target/deb
#          cross/build-deb.sh arm-unknown-linux-musleabihf armhf target/deb
# Prints the path of the .deb on the last line.
#
# Contents:
#   /usr/bin/expirenza-agent                            0755
#   /lib/systemd/system/expirenza-agent.service         0644
#   /usr/lib/sysusers.d/expirenza-agent.conf            0644  (system user + group expirenza-agent)
#   /etc/expirenza-agent/config.toml.example            0640  (conffile; the real config.toml is
#                                                              NOT shipped, so the unit's
#                                                              ConditionPathExists keeps it stopped)
#   /usr/share/doc/expirenza-agent/{deploy.md,mirror.md,journal.md,protocol.md,README.md,
#                                   mirror-schema.sql,journal-schema.sql,config.example.toml,
#                                   cloud-init-user-data.yaml,copyright}
#     (what an integrator reads: the mirror contract, the journal contract, the protocol, the
#      deployment; the two SQL schemas, also printed by `init-mirror --print-schema` and
#      `journal --print-schema`)
#   /usr/share/doc/expirenza-agent/examples/pos/        0644 files, 0755 directories
#     (contrib/pos/: the reference POS side those documents point to, the journal applier and
#      the КасаПро example; its *.py, *.sql and *.md, never a __pycache__; not executable, as
#      Debian wants nothing executable under /usr/share/doc: run it with python3)
# Maintainer scripts: create the user and the state directory, enable the unit (it will not
# start before a config exists), restart it on upgrade only if it was running, stop it on
# removal; purge removes the configuration (see the comments at the scripts, and
# cross/deb-install-test.sh which installs, upgrades, removes and purges for real).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
t="${1:?rust target}"; arch="${2:?deb arch (arm64|armhf|amd64)}"; out="${3:-${CARGO_TARGET_DIR:-target}/deb}"
PKG=expirenza-agent
bin="${CARGO_TARGET_DIR:-target}/$t/release/$PKG"
[ -x "$bin" ] || { echo "missing $bin: run cross/build.sh $t" >&2; exit 1; }
version="$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)"
[ -n "$version" ] || { echo "cannot read the version from Cargo.toml" >&2; exit 1; }
desc_short="$(sed -n '/^\[package\]/,/^\[/s/^description *= *"\(.*\)"/\1/p' Cargo.toml | head -1)"
mkdir -p "$out"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
r="$stage/root"
install -d -m 0755 "$r/DEBIAN" "$r/usr/bin" "$r/lib/systemd/system" "$r/usr/lib/sysusers.d" \
  "$r/usr/share/doc/$PKG" "$r/etc/$PKG"
install -m 0755 "$bin" "$r/usr/bin/$PKG"
install -m 0644 systemd/$PKG.service "$r/lib/systemd/system/$PKG.service"
install -m 0640 systemd/config.example.toml "$r/etc/$PKG/config.toml.example"
chmod 0750 "$r/etc/$PKG"   # group fixed to expirenza-agent by postinst
cat > "$r/usr/lib/sysusers.d/$PKG.conf" <<'SYSUSERS'
# system user and group for expirenza-agent (see expirenza-agent.service)
u expirenza-agent - "Expirenza POS agent" /var/lib/expirenza-agent /usr/sbin/nologin
SYSUSERS
chmod 0644 "$r/usr/lib/sysusers.d/$PKG.conf"
for d in docs/deploy.md docs/mirror.md docs/journal.md docs/protocol.md \
         systemd/config.example.toml systemd/cloud-init-user-data.yaml README.md; do
  [ -f "$d" ] || { echo "missing $d: the package ships it" >&2; exit 1; }
  install -m 0644 "$d" "$r/usr/share/doc/$PKG/$(basename "$d")"
done
install -m 0644 src/mirror/schema.sql "$r/usr/share/doc/$PKG/mirror-schema.sql"
ex="$r/usr/share/doc/$PKG/examples/pos"
install -d -m 0755 "$r/usr/share/doc/$PKG/examples" "$ex"
while IFS= read -r f; do
  rel="${f#contrib/pos/}"
  install -d -m 0755 "$ex/$(dirname "$rel")"
  install -m 0644 "$f" "$ex/$rel"
done < <(find contrib/pos -type f \( -name '*.py' -o -name '*.sql' -o -name '*.md' \) \
           -not -path '*/__pycache__/*' | LC_ALL=C sort)
[ -f "$ex/applier.py" ] && [ -f "$ex/kasapro/adapter.py" ] \
  || { echo "contrib/pos is incomplete: the package ships it" >&2; exit 1; }
install -m 0644 src/journal/schema.sql "$r/usr/share/doc/$PKG/journal-schema.sql"
cat > "$r/usr/share/doc/$PKG/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: $PKG
License: $(sed -n '/^\[package\]/,/^\[/s/^license *= *"\(.*\)"/\1/p' Cargo.toml | head -1)
Comment: statically linked; includes SQLite (public domain), ring, rustls and other Rust
 crates under MIT/Apache-2.0/ISC/BSD licences, and musl libc (MIT).
COPYRIGHT
chmod 0644 "$r/usr/share/doc/$PKG/copyright"

installed_kb="$(du -sk --exclude=DEBIAN "$r" | cut -f1)"
cat > "$r/DEBIAN/control" <<CONTROL
Package: $PKG
Version: $version
Architecture: $arch
Maintainer: Expirenza agent maintainers <root@localhost>
Section: net
Priority: optional
Installed-Size: $installed_kb
Recommends: systemd
Description: ${desc_short:-Expirenza POS agent}
 Connects a restaurant POS to the Expirenza (Shake To Pay) cloud and answers its
 pay-at-table operations from a local SQLite mirror. Static binary.
 The service starts only once /etc/expirenza-agent/config.toml exists;
 see /usr/share/doc/expirenza-agent/deploy.md.
 Built from Rust target: $t
CONTROL
echo "/etc/$PKG/config.toml.example" > "$r/DEBIAN/conffiles"

# Maintainer scripts. They follow what debhelper's dh_installsystemd generates (enable via
# deb-systemd-helper, which works with or without a running systemd: on a build machine, in a
# chroot, or where systemd is not PID 1), plus the user and the directories. Idempotent: every
# step may run again (reinstall, upgrade, a failed configure retried).
cat > "$r/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
UNIT=expirenza-agent.service
if [ "$1" = configure ] || [ "$1" = abort-upgrade ] || [ "$1" = abort-deconfigure ] || [ "$1" = abort-remove ]; then
    if ! getent passwd expirenza-agent >/dev/null; then
        if command -v systemd-sysusers >/dev/null 2>&1; then
            systemd-sysusers /usr/lib/sysusers.d/expirenza-agent.conf
        elif command -v adduser >/dev/null 2>&1; then
            adduser --system --group --home /var/lib/expirenza-agent --no-create-home \
                --shell /usr/sbin/nologin expirenza-agent
        else
            useradd --system --user-group --home-dir /var/lib/expirenza-agent \
                --no-create-home --shell /usr/sbin/nologin expirenza-agent
        fi
    fi
    chgrp expirenza-agent /etc/expirenza-agent /etc/expirenza-agent/config.toml.example
    chmod 0750 /etc/expirenza-agent
    chmod 0640 /etc/expirenza-agent/config.toml.example
    # The state directory exists from the install on (systemd's StateDirectory= would create it
    # at the first start), so the POS can put its mirror there before the agent first runs.
    if [ ! -d /var/lib/expirenza-agent ]; then
        install -d -m 0770 -o expirenza-agent -g expirenza-agent /var/lib/expirenza-agent
    fi
    # Older versions kept the status snapshot in the state directory; it now lives in
    # /run/expirenza-agent (RuntimeDirectory=). Remove the stale copy on upgrade.
    rm -f /var/lib/expirenza-agent/status
    # Enabling is safe before a config exists: ConditionPathExists= skips the start.
    if [ -x /usr/bin/deb-systemd-helper ]; then
        deb-systemd-helper unmask "$UNIT" >/dev/null || true
        if [ -z "$2" ] || deb-systemd-helper --quiet was-enabled "$UNIT"; then
            # first install, or it was enabled: enable (an admin's disable survives upgrades)
            deb-systemd-helper enable "$UNIT" >/dev/null || true
        else
            deb-systemd-helper update-state "$UNIT" >/dev/null || true
        fi
    elif command -v systemctl >/dev/null 2>&1; then
        systemctl enable "$UNIT" >/dev/null 2>&1 || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null 2>&1 || true
        # upgrade: restart only if it was running; never start it here
        if [ -n "$2" ]; then
            systemctl try-restart "$UNIT" >/dev/null 2>&1 || true
        fi
    fi
    if [ ! -e /etc/expirenza-agent/config.toml ]; then
        echo "expirenza-agent: write /etc/expirenza-agent/config.toml and /etc/expirenza-agent/secret_key,"
        echo "  then: systemctl start expirenza-agent   (see /usr/share/doc/expirenza-agent/deploy.md)"
    fi
fi
exit 0
POSTINST

cat > "$r/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop expirenza-agent.service >/dev/null 2>&1 || true
fi
exit 0
PRERM

# remove: the binary and the unit go (dpkg); the conffile config.toml.example, the admin's
# config.toml and secret_key, the state directory, the user and the enablement state stay.
# purge: dpkg deletes the conffile; this script deletes config.toml, secret_key, the status and
# metrics files, the enablement state and the empty directories. The journal and the mirror in
# /var/lib/expirenza-agent stay (payment records: delete them by hand once reconciled), and so
# does the system user (Debian does not reuse system UIDs; files may still belong to it).
cat > "$r/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
UNIT=expirenza-agent.service
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
    if [ -x /usr/bin/deb-systemd-helper ]; then
        deb-systemd-helper purge "$UNIT" >/dev/null || true
        deb-systemd-helper unmask "$UNIT" >/dev/null || true
    else
        rm -f "/etc/systemd/system/multi-user.target.wants/$UNIT"
    fi
    rm -f /etc/expirenza-agent/config.toml /etc/expirenza-agent/secret_key
    rmdir /etc/expirenza-agent 2>/dev/null || true
    rm -f /var/lib/expirenza-agent/status /run/expirenza-agent/status /run/expirenza-agent/metrics.prom
    rmdir /var/lib/expirenza-agent 2>/dev/null || true
fi
exit 0
POSTRM
chmod 0755 "$r/DEBIAN/postinst" "$r/DEBIAN/prerm" "$r/DEBIAN/postrm"
chmod 0644 "$r/DEBIAN/control" "$r/DEBIAN/conffiles"

deb="$out/${PKG}_${version}_${arch}.deb"
dpkg-deb --build --root-owner-group -Zxz "$r" "$deb" >/dev/null
echo "$deb"
