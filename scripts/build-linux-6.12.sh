#!/usr/bin/env bash
# Builds the Linux 6.12 kernel of the real-kernel tests (a second kernel beside
# Debian's 6.1: iommufd, the VFIO device cdev and the type1 container, all
# built in; docs/real-kernel-tests.md) from Debian's linux-source-6.12 in
# bookworm-backports, into a cache folder outside the source tree, once per
# machine.
#
# Usage: scripts/build-linux-6.12.sh           fetch and build unless already there
#        scripts/build-linux-6.12.sh --print   print the bzImage path and exit
#        scripts/build-linux-6.12.sh --check   exit 0 if the bzImage is there, else 1
#
# The image is $VIOMMU_CACHE_DIR/linux-6.12.95-<hash>/bzImage, where <hash>
# is the first 12 hex digits of the SHA-256 of the config fragment
# tests/host/data/linux-6.12.config, the Debian source version and this
# script's recipe version (VIOMMU_CACHE_DIR defaults to
# ${XDG_CACHE_HOME:-$HOME/.cache}/viommu). Nothing is installed from
# bookworm-backports: a private apt configuration (its own sources list naming
# bookworm-backports with the Debian archive keyring, its own state and cache
# folders, as scripts/setup-qemu-peer.sh) runs `apt-get update` and `apt-get
# download linux-source-6.12` at the pinned version; the .tar.xz inside it is
# unpacked into $VIOMMU_CACHE_DIR/linux-6.12.95/src. The object tree
# ($VIOMMU_CACHE_DIR/linux-6.12.95/obj) is kept, so a changed fragment
# rebuilds only what it touches.
#
# Config: `make ARCH=x86_64 allnoconfig` with the fragment as KCONFIG_ALLCONFIG,
# then `make olddefconfig`; every CONFIG_ line of the fragment must have
# survived (a dropped line is a missing dependency: the script fails naming it).
# The build runs under `nice -n 19 ionice -c3` with make -j2
# (VIOMMU_KERNEL_JOBS), so it only takes idle CPU. Build tools (make, gcc,
# flex, bison, bc, libelf-dev) are installed with apt-get when missing and the
# script runs as root; otherwise it fails naming them.
#
# Idempotent: with the image and its STAMP present it prints nothing and exits
# 0 without touching the network. On failure (no network, no such version on
# the mirror, a build error) it exits 1 saying why (the build log's tail); the
# real-kernel harness then reports the 6.12 kernel as a missing peer.
set -euo pipefail

VERSION=6.12.95
DEB_VERSION="6.12.95-1~bpo12+1"
RECIPE=1 # bump when the build steps below change the image
. "$(dirname "$0")/backports-apt.sh"  # SUITE, MIRROR, KEYRING
JOBS="${VIOMMU_KERNEL_JOBS:-2}"

here="$(cd "$(dirname "$0")" && pwd)"
fragment="$here/../tests/host/data/linux-6.12.config"
[ -r "$fragment" ] || { echo "build-linux-6.12.sh: no $fragment" >&2; exit 1; }
hash="$({ cat "$fragment"; echo "$DEB_VERSION recipe $RECIPE"; } | sha256sum | cut -c1-12)"

cache="${VIOMMU_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/viommu}"
tree="$cache/linux-$VERSION"
dest="$cache/linux-$VERSION-$hash"
image="$dest/bzImage"

is_ready() { [ -f "$dest/STAMP" ] && [ -s "$image" ]; }

case "${1:-}" in
  "") ;;
  --print)
    echo "$image"
    exit 0
    ;;
  --check)
    is_ready
    exit
    ;;
  -h | --help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 0
    ;;
  *)
    echo "build-linux-6.12.sh: unknown argument '$1' (try --help)" >&2
    exit 2
    ;;
esac

fail() {
  echo "build-linux-6.12.sh: $*" >&2
  exit 1
}

is_ready && exit 0

# Build tools: binary -> Debian package.
need=()
for pair in make:make gcc:gcc flex:flex bison:bison bc:bc xz:xz-utils \
            dpkg-deb:dpkg apt-get:apt flock:util-linux; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
[ -f /usr/include/gelf.h ] || need+=(libelf-dev) # objtool
if ((${#need[@]})); then
  [ "$(id -u)" = 0 ] || fail "missing build tools; install: apt-get install ${need[*]}"
  echo "build-linux-6.12.sh: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 ||
    { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2; } ||
    fail "apt-get install ${need[*]} failed"
fi
[ -r "$KEYRING" ] || fail "$KEYRING missing (package debian-archive-keyring)"

mkdir -p "$cache"
exec 9>"$cache/.linux-$VERSION.lock"
flock 9
is_ready && exit 0 # another run finished while we waited

t0=$(date +%s)
# ---- The source: linux-source-6.12 from bookworm-backports ------------------
if [ ! -f "$tree/src/.done" ]; then
  echo "build-linux-6.12.sh: fetching linux-source-6.12=$DEB_VERSION from $SUITE" >&2
  apt_dir="$cache/apt-$SUITE-linux"
  backports_apt_update "$apt_dir"
  rm -rf "$tree/dl" "$tree/src"
  mkdir -p "$tree/dl"
  if ! (cd "$tree/dl" && apt-get "${apt_opts[@]}" -qq download "linux-source-6.12=$DEB_VERSION") \
       >"$tree/download.log" 2>&1; then
    sed 's/^/  /' "$tree/download.log" >&2
    fail "apt-get download linux-source-6.12=$DEB_VERSION failed"
  fi
  mkdir -p "$tree/unpack"
  dpkg-deb --fsys-tarfile "$tree"/dl/linux-source-6.12_*.deb |
    tar -xO ./usr/src/linux-source-6.12.tar.xz | tar -xJ -C "$tree/unpack" ||
    fail "unpacking linux-source-6.12.tar.xz from the package failed"
  mv "$tree/unpack/linux-source-6.12" "$tree/src"
  rm -rf "$tree/unpack" "$tree/dl"
  touch "$tree/src/.done"
fi
t1=$(date +%s)

# ---- Config: allnoconfig + the fragment, every line checked -------------------
obj="$tree/obj"
mkdir -p "$obj"
log="$tree/build.log"
kmake() { nice -n 19 ionice -c3 make -C "$tree/src" O="$obj" ARCH=x86_64 "$@"; }
echo "build-linux-6.12.sh: configuring and building Linux $VERSION (make -j$JOBS, nice 19; log $log)" >&2
{
  KCONFIG_ALLCONFIG="$fragment" kmake allnoconfig &&
    kmake olddefconfig
} >"$log" 2>&1 || { tail -n 30 "$log" >&2; fail "kernel configuration failed"; }
dropped="$(grep '^CONFIG_' "$fragment" | while read -r line; do
  grep -qx "$line" "$obj/.config" || echo "$line"
done)"
[ -z "$dropped" ] || fail "make olddefconfig dropped (missing dependencies?):
$dropped"

# ---- Build -------------------------------------------------------------------
kmake -j"$JOBS" bzImage >>"$log" 2>&1 ||
  { tail -n 40 "$log" >&2; fail "kernel build failed (full log: $log)"; }
t2=$(date +%s)

rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
cp "$obj/arch/x86/boot/bzImage" "$dest.tmp/bzImage"
cp "$obj/.config" "$dest.tmp/config"
printf 'linux-source-6.12=%s\nfragment-hash=%s\nfetch-unpack-seconds=%d\nbuild-seconds=%d\n' \
  "$DEB_VERSION" "$hash" $((t1 - t0)) $((t2 - t1)) >"$dest.tmp/STAMP"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "build-linux-6.12.sh: $image (fetch+unpack $((t1 - t0)) s, build $((t2 - t1)) s)" >&2
