#!/usr/bin/env bash
# Boot Debian 12 with systemd as PID 1 under QEMU, install the expirenza-agent .deb in it and
# check, under the real systemd, what the unit and the package promise (docs/testing.md, "Under
# a real systemd"). Run as root on a Debian 12 machine:
#
#   cross/vm-test.sh [--arch amd64|arm64] [--cloud PATH] PATH.deb
#
#   --arch   the VM's architecture; default: the .deb's (they must match)
#   --cloud  the static fake cloud for that architecture (examples/fake_cloud.rs); default:
#            built here with `cargo zigbuild --release --example fake_cloud` (cargo-zigbuild on
#            PATH: eval "$(cross/install-toolchain.sh | tail -1)")
# Environment:
#   VM_CACHE_DIR    image cache (default ${CARGO_TARGET_DIR:-target}/vm; .ci/run passes a
#                   directory every run on the machine shares, so CI builds each image once)
#   VM_MIRROR       Debian archive for the image (default http://deb.debian.org/debian)
#   VM_TIMEOUT      seconds before the VM is killed (default 900 with KVM/amd64, 2400 arm64)
#   VM_TEST_BREAK   syscall: break the unit on purpose (a drop-in blocks connect(2)) to see the
#                   checks fail; the run must then exit 1
#
# What it does:
#   1. installs what it needs with apt (mmdebstrap, qemu-system-*, e2fsprogs; for a foreign
#      architecture qemu-user-static and arch-test), only what is missing;
#   2. builds a minimal Debian 12 image with mmdebstrap from Debian's archive (systemd, udev,
#      dbus, the cloud kernel, procps, passwd) and caches it under VM_CACHE_DIR, keyed by
#      everything that goes into it: the text of build_image below and the value of every
#      variable it reads (suite, mirror, architecture, console, package list, the runner and
#      initramfs files); the script stops if build_image reads a variable the key does not
#      cover. A foreign architecture's maintainer scripts run under qemu-user: the
#      script registers binfmt_misc's qemu-<arch> entry for the build if none exists, and
#      removes it again afterwards;
#   3. puts cross/vm-test-guest.sh, the .deb and the fake cloud on a small read-only payload
#      disk, boots the image (kernel and initrd given to QEMU directly; the root disk in
#      snapshot mode, so the cached image never changes) with no network device, KVM when
#      usable and TCG otherwise;
#   4. the image's vm-test-runner.service runs the guest script at each boot: boot 1 installs
#      and checks, then reboots; boot 2 checks again, removes, purges and powers off. Each check
#      prints `vm-test: PASS|FAIL <check>: <evidence>` on the serial console;
#   5. exit 0 only when both boots finished, no check failed and QEMU powered off in time.
# The serial log is kept as ${VM_CACHE_DIR}/last-<arch>-serial.log.
# All traffic stays inside the VM (loopback); only Debian's archive is reached, for the image.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
SUITE=bookworm
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
log() { echo "[vm-test] $*"; }
die() { echo "[vm-test] $*" >&2; exit 2; }

arch="" cloud="" deb=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="${2:?--arch needs amd64 or arm64}"; shift 2 ;;
    --cloud) cloud="${2:?--cloud needs a path}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$deb" ] || die "one .deb only"; deb="$1"; shift ;;
  esac
done
[ -n "$deb" ] || die "usage: cross/vm-test.sh [--arch amd64|arm64] [--cloud PATH] PATH.deb"
[ "$(id -u)" = 0 ] || die "run as root (it builds a root filesystem and registers binfmt_misc)"
[ -f "$deb" ] || die "no such file: $deb"
deb="$(readlink -f "$deb")"
deb_arch="$(dpkg-deb -f "$deb" Architecture)"
arch="${arch:-$deb_arch}"
[ "$arch" = "$deb_arch" ] || die "$deb is for $deb_arch, not $arch"
host_arch="$(dpkg --print-architecture)"
case "$arch" in
  amd64) rust=x86_64-unknown-linux-musl qemu=qemu-system-x86_64 qemu_pkg=qemu-system-x86
         kernel=linux-image-cloud-amd64 console=ttyS0 qemu_user=x86_64
         machine=(-M q35) tcg_cpu=max ;;
  arm64) rust=aarch64-unknown-linux-musl qemu=qemu-system-aarch64 qemu_pkg=qemu-system-arm
         kernel=linux-image-cloud-arm64 console=ttyAMA0 qemu_user=aarch64
         machine=(-M virt) tcg_cpu=cortex-a72 ;;
  *) die "--arch must be amd64 or arm64" ;;
esac
T="${CARGO_TARGET_DIR:-target}"
CACHE="${VM_CACHE_DIR:-$T/vm}"
MIRROR="${VM_MIRROR:-http://deb.debian.org/debian}"
BREAK="${VM_TEST_BREAK:-}"
case "$BREAK" in ""|syscall) ;; *) die "VM_TEST_BREAK must be empty or syscall" ;; esac
mkdir -p "$CACHE"
CACHE="$(readlink -f "$CACHE")"
t_start=$(date +%s)

# --- 1. host packages ----------------------------------------------------------------------
need=()
command -v "$qemu" >/dev/null || need+=("$qemu_pkg")
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v file >/dev/null || need+=(file)
if [ "$arch" != "$host_arch" ]; then
  # mmdebstrap runs the foreign maintainer scripts under qemu-user, and checks with arch-test
  [ -x "/usr/bin/qemu-$qemu_user-static" ] || need+=(qemu-user-static)
  command -v arch-test >/dev/null || need+=(arch-test)
fi
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- 2. the fake cloud ---------------------------------------------------------------------
if [ -z "$cloud" ]; then
  cloud="$T/$rust/release/examples/fake_cloud"
  if command -v cargo-zigbuild >/dev/null; then
    s=$(date +%s)
    cargo zigbuild --locked --release --target "$rust" --example fake_cloud
    log "fake cloud for $arch ready in $(( $(date +%s) - s ))s"
  elif [ -x "$cloud" ]; then
    log "cargo-zigbuild not on PATH: using the fake cloud built earlier ($cloud)"
  else
    die "no $cloud and no cargo-zigbuild: eval \"\$(cross/install-toolchain.sh | tail -1)\" or pass --cloud"
  fi
fi
[ -x "$cloud" ] || die "not executable: $cloud"
desc="$(file -b "$cloud")"
case "$desc" in *"statically linked"*|*"static-pie linked"*) ;; *) die "$cloud is not static: $desc" ;; esac
case "$arch:$desc" in amd64:*x86-64*|arm64:*aarch64*) ;; *) die "$cloud is not for $arch: $desc" ;; esac

# --- 3. the image (cached) -----------------------------------------------------------------
packages=(systemd systemd-sysv udev dbus "$kernel" procps passwd)
# Started after multi-user.target at every boot; its output goes to the serial console.
runner_unit='[Unit]
Description=expirenza-agent VM test (cross/vm-test.sh)
After=multi-user.target

[Service]
Type=exec
ExecStart=/usr/local/sbin/vm-test-runner
# the script ends each boot with a reboot or a poweroff; should it die instead, power off
# rather than leave the host waiting for its timeout
FailureAction=poweroff
StandardInput=null
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/console

[Install]
WantedBy=multi-user.target'
runner_sh='#!/bin/sh
# Mount the payload disk of cross/vm-test.sh and run its guest script.
mkdir -p /mnt/payload
if ! mount -o ro LABEL=vmtpayload /mnt/payload; then
  echo "vm-test: FAIL runner: no payload disk"
  echo "vm-test: BOOT 0 DONE pass=0 fail=1"
  systemctl poweroff --no-block
  exit 1
fi
exec /bin/bash /mnt/payload/guest.sh'
# A small initramfs: only what finds the root disk (the kernel has ext4 built in). It boots
# several seconds faster under TCG than Debian's default MODULES=most.
initramfs_conf='MODULES=list'
# shellcheck disable=SC2016 # a script for the image, expanded there
initramfs_hook='#!/bin/sh
# cross/vm-test.sh: the modules the VM needs to mount its root disk
case "$1" in prereqs) exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
manual_add_modules virtio_pci virtio_blk virtio_mmio'

build_image() {
  local b="$CACHE/.build-$arch-$$" root registered=""
  rm -rf "$b"; mkdir -p "$b"
  root="$b/root"
  if [ "$arch" != "$host_arch" ]; then
    # the foreign maintainer scripts run under qemu-user through binfmt_misc
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
      mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$qemu_user" ]; then
      cat "/usr/lib/binfmt.d/qemu-$qemu_user.conf" >/proc/sys/fs/binfmt_misc/register
      registered="/proc/sys/fs/binfmt_misc/qemu-$qemu_user"
      log "registered binfmt_misc qemu-$qemu_user for the image build"
    fi
  fi
  local rc=0
  # the initramfs settings go in before the kernel package builds the initramfs
  install -d -m 0755 "$b/etc/conf.d" "$b/etc/hooks"
  printf '%s\n' "$initramfs_conf" >"$b/etc/conf.d/vm-test"
  printf '%s\n' "$initramfs_hook" >"$b/etc/hooks/vm-test"
  chmod 0755 "$b/etc/hooks/vm-test"
  mmdebstrap --mode=root --variant=essential --arch="$arch" \
    --include="$(IFS=,; echo "${packages[*]}")" --aptopt='Acquire::Retries "3"' \
    --essential-hook="mkdir -p \"\$1/etc/initramfs-tools\" && cp -a '$b/etc/.' \"\$1/etc/initramfs-tools/\"" \
    "$SUITE" "$root" "$MIRROR" >"$b/mmdebstrap.log" 2>&1 || rc=$?
  if [ -n "$registered" ]; then echo -1 >"$registered"; log "removed binfmt_misc qemu-$qemu_user"; fi
  if [ "$rc" != 0 ]; then tail -n 40 "$b/mmdebstrap.log" >&2; die "mmdebstrap failed (rc=$rc)"; fi
  # No fsck entry: every run boots a fresh snapshot of this file.
  echo "/dev/vda / ext4 rw,noatime 0 0" >"$root/etc/fstab"
  echo vm-test >"$root/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 vm-test\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  printf '%s\n' "$runner_unit" >"$root/etc/systemd/system/vm-test-runner.service"
  mkdir -p "$root/usr/local/sbin" "$root/etc/systemd/system/multi-user.target.wants"
  printf '%s\n' "$runner_sh" >"$root/usr/local/sbin/vm-test-runner"
  chmod 0755 "$root/usr/local/sbin/vm-test-runner"
  ln -sf /etc/systemd/system/vm-test-runner.service "$root/etc/systemd/system/multi-user.target.wants/"
  # no login prompts on the console the checks print to
  ln -sf /dev/null "$root/etc/systemd/system/serial-getty@$console.service"
  ln -sf /dev/null "$root/etc/systemd/system/getty@tty1.service"
  local kernels=("$root"/boot/vmlinuz-*) initrds=("$root"/boot/initrd.img-*)
  if [ ! -f "${kernels[0]}" ] || [ ! -f "${initrds[0]}" ]; then die "no kernel or initrd in the image's /boot"; fi
  cp "${kernels[0]}" "$b/vmlinuz"
  cp "${initrds[0]}" "$b/initrd.img"
  mkfs.ext4 -q -F -L vmroot -E root_owner=0:0 -d "$root" "$b/rootfs.img" 1536M >/dev/null
  {
    echo "built $(date -u +%FT%TZ) by cross/vm-test.sh, key $key"
    echo "suite $SUITE arch $arch mirror $MIRROR"
    echo "packages ${packages[*]}"
    echo "kernel $(basename "${kernels[0]}")"
    echo "systemd $(dpkg-query --admindir="$root/var/lib/dpkg" -W -f="\${Version}" systemd)"
    echo "root filesystem $(du -sm "$root" | cut -f1) MiB, initrd $(( $(stat -c %s "$b/initrd.img") / 1024 )) KiB"
  } >"$b/manifest"
  rm -rf "$root"
  rm -rf "$img"; mv "$b" "$img"
  # older images of this architecture (other keys) are of no more use
  local old
  for old in "$CACHE/$arch"-*; do [ "$old" = "$img" ] || rm -rf "$old"; done
}

# The cache key: what goes into the image is build_image's own text and the variables it reads
# that shape the image (image_inputs); the others only say where and how it is built
# (build_only: paths, the host's binfmt_misc set-up, its own locals). A variable it reads that
# is in neither list stops the script, so the key cannot silently miss an input. Not keyed:
# the archive's state (the image keeps the packages of the day it was built; delete the
# directory to take a Debian point release) and the host's mmdebstrap and mkfs.ext4.
image_inputs=(SUITE MIRROR arch console packages runner_unit runner_sh initramfs_conf initramfs_hook)
build_only=(CACHE img key host_arch qemu_user b root registered rc kernels initrds old)
recipe="$(declare -f build_image)"
for v in $(grep -oE '(^|[^\])\$\{?[A-Za-z_][A-Za-z0-9_]*' <<<"$recipe" | sed -E 's/^.?\$\{?//' | sort -u); do
  case " ${image_inputs[*]} ${build_only[*]} " in
    *" $v "*) ;;
    *) die "build_image reads \$$v, which neither image_inputs (the cache key) nor build_only lists" ;;
  esac
done
key="$(printf '%s\n' "$recipe" "$(declare -p "${image_inputs[@]}")" | sha256sum | cut -c1-16)"
img="$CACHE/$arch-$key"

s=$(date +%s)
# The cache may be shared by every run on the machine (.ci/run): a run holds the lock shared
# from finding its image until it exits, and builds (which deletes the other keys' images of
# the architecture) only under the exclusive lock, so no image is deleted under a booting VM.
exec 9>"$CACHE/.lock-$arch"
image_note="cached"
while :; do
  flock -s 9
  [ -f "$img/manifest" ] && [ -f "$img/rootfs.img" ] && break
  flock -u 9
  flock 9
  if [ ! -f "$img/manifest" ] || [ ! -f "$img/rootfs.img" ]; then
    log "image $arch-$key: building with mmdebstrap from $MIRROR (${packages[*]})"
    build_image
    image_note="built in $(( $(date +%s) - s ))s"
  fi
  flock -u 9
done
log "image $arch-$key: $image_note"
sed 's/^/[vm-test]   /' "$img/manifest"

# --- 4. payload and boot ---------------------------------------------------------------------
work="$(mktemp -d)"
qpid=""
cleanup() { [ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir "$work/payload"
install -m 0755 cross/vm-test-guest.sh "$work/payload/guest.sh"
install -m 0644 "$deb" "$work/payload/expirenza-agent.deb"
install -m 0755 "$cloud" "$work/payload/fake_cloud"
printf '%s' "$BREAK" >"$work/payload/break"
mkfs.ext4 -q -F -L vmtpayload -E root_owner=0:0 -d "$work/payload" "$work/payload.img" 64M >/dev/null

accel=(-accel "tcg,thread=multi") cpu="$tcg_cpu" accel_note="TCG"
if [ "$arch" = "$host_arch" ] && [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  if [ "$host_arch" != amd64 ] || grep -Eqw 'vmx|svm' /proc/cpuinfo; then
    # KVM first; QEMU falls back to TCG by itself should KVM still fail to start
    accel=(-accel kvm -accel "tcg,thread=multi") cpu=max accel_note="KVM"
  else
    accel_note="TCG (/dev/kvm exists, but the CPU has no vmx/svm)"
  fi
elif [ "$arch" != "$host_arch" ]; then
  accel_note="TCG ($arch guest, $host_arch host)"
fi
timeout_s="${VM_TIMEOUT:-}"
if [ -z "$timeout_s" ]; then
  if [ "$accel_note" = KVM ] || [ "$arch" = amd64 ]; then timeout_s=900; else timeout_s=2400; fi
fi
serial="$work/serial.log"
: >"$serial"
log "booting $arch: $accel_note, -cpu $cpu, 2 vCPUs, 1 GiB, no network; timeout ${timeout_s}s${BREAK:+; BROKEN ON PURPOSE: $BREAK}"
t_boot=$(date +%s)
timeout "$timeout_s" "$qemu" "${machine[@]}" "${accel[@]}" -cpu "$cpu" -smp 2 -m 1024 \
  -nodefaults -no-user-config -display none -nic none -serial "file:$serial" \
  -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
  -append "root=/dev/vda rw console=$console quiet loglevel=3 systemd.show_status=0" \
  -drive "file=$img/rootfs.img,format=raw,if=none,id=root,snapshot=on" -device virtio-blk-pci,drive=root \
  -drive "file=$work/payload.img,format=raw,if=none,id=payload,readonly=on" -device virtio-blk-pci,drive=payload \
  </dev/null &
qpid=$!
# live progress: the checks' lines as they arrive
tail -n +1 -F --pid="$qpid" "$serial" 2>/dev/null | grep --line-buffered -a 'vm-test: ' | sed -u 's/^.*vm-test: /  /' &
tpid=$!
qrc=0
wait "$qpid" || qrc=$?
qpid=""
wait "$tpid" 2>/dev/null || true
t_end=$(date +%s)
cp "$serial" "$CACHE/last-$arch-serial.log"

# --- 5. verdict ------------------------------------------------------------------------------
lines="$(grep -a 'vm-test: ' "$serial" | sed 's/^.*vm-test: //' | tr -d '\r')"
npass="$(grep -c '^PASS ' <<<"$lines" || true)"
nfail="$(grep -c '^FAIL ' <<<"$lines" || true)"
done1="$(grep -c '^BOOT 1 DONE ' <<<"$lines" || true)"
done2="$(grep -c '^BOOT 2 DONE ' <<<"$lines" || true)"
echo
log "figures ($arch, $accel_note):"
grep '^FIGURE ' <<<"$lines" | sed 's/^FIGURE /[vm-test]   /' || true
log "image: $image_note; VM: $((t_end - t_boot))s (two boots); total $((t_end - t_start))s"
why=()
[ "$qrc" = 0 ] || why+=("QEMU exit status $qrc$([ "$qrc" = 124 ] && echo " (timed out after ${timeout_s}s)")")
[ "$done1" = 1 ] || why+=("boot 1 finished $done1 times (want 1)")
[ "$done2" = 1 ] || why+=("boot 2 finished $done2 times (want 1)")
[ "$nfail" = 0 ] || why+=("$nfail check(s) failed")
[ "$npass" -gt 0 ] || why+=("no check passed")
if [ ${#why[@]} -gt 0 ]; then
  grep '^FAIL ' <<<"$lines" | sed 's/^/[vm-test]   /' || true
  log "FAILED: ${why[*]} ($npass passed). Serial log: $CACHE/last-$arch-serial.log"
  exit 1
fi
log "all $npass checks passed on both boots ($arch). Serial log: $CACHE/last-$arch-serial.log"
