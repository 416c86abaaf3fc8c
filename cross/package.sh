#!/usr/bin/env bash
# Build the Debian packages from the binaries of cross/build.sh and check them.
#
#   cross/package.sh            # arm64 and armhf (each only if its binary was built)
#   cross/package.sh arm64      # just one
#
# arm64 <- aarch64-unknown-linux-musl   (64-bit Raspberry Pi OS / Debian: Pi 3/4/5, Zero 2 W)
# armhf <- arm-unknown-linux-musleabihf (ARMv6) when built, else armv7-unknown-linux-musleabihf.
#   Raspberry Pi OS's 32-bit "armhf" is an ARMv6 userland that also runs on Pi 1/Zero, so the
#   ARMv6 binary is the one armhf package that runs on every 32-bit Pi. An armhf .deb made from
#   the ARMv7 binary must not be installed on a Pi 1 / Zero / Zero W (SIGILL).
#   Force a choice with ARMHF_TARGET=armv7-unknown-linux-musleabihf.
# Output: ${CARGO_TARGET_DIR:-target}/deb/expirenza-agent_<version>_<arch>.deb
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
T="${CARGO_TARGET_DIR:-target}"
out="$T/deb"
bin_of() { echo "$T/$1/release/expirenza-agent"; }
armhf_target="${ARMHF_TARGET:-}"
if [ -z "$armhf_target" ]; then
  if [ -x "$(bin_of arm-unknown-linux-musleabihf)" ]; then armhf_target=arm-unknown-linux-musleabihf
  else armhf_target=armv7-unknown-linux-musleabihf; fi
fi
arches=("$@")
explicit=1
[ ${#arches[@]} -gt 0 ] || { arches=(arm64 armhf); explicit=0; }
made=0
for a in "${arches[@]}"; do
  case "$a" in
    arm64) t=aarch64-unknown-linux-musl ;;
    armhf) t="$armhf_target" ;;
    amd64) t=x86_64-unknown-linux-musl ;;
    *) echo "unknown arch $a (arm64|armhf|amd64)" >&2; exit 2 ;;
  esac
  if [ ! -x "$(bin_of "$t")" ]; then
    [ $explicit = 1 ] && { echo "missing $(bin_of "$t"): run cross/build.sh $t" >&2; exit 1; }
    echo "== $a: $t not built, skipped"; continue
  fi
  deb="$(cross/build-deb.sh "$t" "$a" "$out" | tail -n 1)"
  # checks: metadata and the exact file list with modes
  info="$(dpkg-deb -I "$deb")"
  grep -q "^ Architecture: $a\$" <<<"$info" || { echo "$deb: wrong Architecture" >&2; exit 1; }
  grep -q '^ Package: expirenza-agent$' <<<"$info" || { echo "$deb: wrong Package" >&2; exit 1; }
  list="$(dpkg-deb -c "$deb")"
  for want in \
      '-rwxr-xr-x root/root .* ./usr/bin/expirenza-agent$' \
      '-rw-r--r-- root/root .* ./lib/systemd/system/expirenza-agent.service$' \
      '-rw-r----- root/root .* ./etc/expirenza-agent/config.toml.example$' \
      '-rw-r--r-- root/root .* ./usr/lib/sysusers.d/expirenza-agent.conf$' \
      '-rw-r--r-- root/root .* ./usr/share/doc/expirenza-agent/copyright$' \
      '-rw-r--r-- root/root .* ./usr/share/doc/expirenza-agent/deploy.md$' \
      '-rw-r--r-- root/root .* ./usr/share/doc/expirenza-agent/mirror.md$' \
      '-rw-r--r-- root/root .* ./usr/share/doc/expirenza-agent/journal.md$' \
      '-rw-r--r-- root/root .* ./usr/share/doc/expirenza-agent/protocol.md$' \
      '-rw-r--r-- root/root .* ./usr/share/doc/expirenza-agent/mirror-schema.sql$' \
      '-rw-r--r-- root/root .* ./usr/share/doc/expirenza-agent/journal-schema.sql$' \
      'drwxr-xr-x root/root .* ./usr/share/doc/expirenza-agent/examples/pos/kasapro/$' \
      '-rw-r--r-- root/root .* ./usr/share/doc/expirenza-agent/examples/pos/README.md$' \
      '-rw-r--r-- root/root .* ./usr/share/doc/expirenza-agent/examples/pos/applier.py$' \
      '-rw-r--r-- root/root .* ./usr/share/doc/expirenza-agent/examples/pos/kasapro/adapter.py$'; do
    grep -Eq -- "$want" <<<"$list" || { echo "$deb: no entry matching $want" >&2; echo "$list" >&2; exit 1; }
  done
  # the reference POS side: every file of contrib/pos/ (as the source has it), 0644, dirs 0755
  want_ex="$(cd contrib/pos && find . -type f \( -name '*.py' -o -name '*.sql' -o -name '*.md' \) \
               -not -path '*/__pycache__/*' | sed 's|^\./||' | LC_ALL=C sort)"
  got_ex="$(awk '$6 ~ /^\.\/usr\/share\/doc\/expirenza-agent\/examples\/pos\/./ && $1 !~ /^d/ {
               sub("^./usr/share/doc/expirenza-agent/examples/pos/", "", $6); print $6 }' <<<"$list" | LC_ALL=C sort)"
  [ "$want_ex" = "$got_ex" ] || { echo "$deb: examples/pos differs from contrib/pos:" >&2;
    diff <(echo "$want_ex") <(echo "$got_ex") >&2; exit 1; }
  if awk '$6 ~ /\/usr\/share\/doc\// && (($1 != "drwxr-xr-x" && $1 != "-rw-r--r--") || $2 != "root/root")' \
       <<<"$list" | grep -q .; then
    echo "$deb: /usr/share/doc holds an entry that is not a root 0644 file or 0755 directory:" >&2
    awk '$6 ~ /\/usr\/share\/doc\//' <<<"$list" >&2; exit 1
  fi
  if grep -q '\./etc/expirenza-agent/config\.toml$' <<<"$list"; then
    echo "$deb ships config.toml: the unit would start unconfigured" >&2; exit 1
  fi
  # the binary inside is the one we built
  x="$(mktemp -d)"; dpkg-deb -x "$deb" "$x"
  cmp -s "$x/usr/bin/expirenza-agent" "$(bin_of "$t")" || { echo "$deb: binary differs" >&2; exit 1; }
  rm -rf "$x"
  echo "package $a ($t): $deb $(stat -c %s "$deb") bytes"
  made=$((made + 1))
done
[ $made -gt 0 ] || { echo "no package built: run cross/build.sh first" >&2; exit 1; }
