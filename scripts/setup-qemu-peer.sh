#!/usr/bin/env bash
# Fetches QEMU 10.0.2, the second conformance peer (docs/conformance-peers.md),
# from Debian's bookworm-backports and unpacks it into a cache folder outside
# the source tree, once per machine.
#
# Usage: scripts/setup-qemu-peer.sh           fetch and unpack unless already there
#        scripts/setup-qemu-peer.sh --print   print the peer's binary path and exit
#
# The folder is $VIOMMU_CACHE_DIR/qemu-10.0.2 (VIOMMU_CACHE_DIR defaults to
# ${XDG_CACHE_HOME:-$HOME/.cache}/viommu). Nothing is installed on the machine:
# a private apt configuration (its own sources list naming bookworm-backports
# with the Debian archive keyring, its own state and cache folders) runs
# `apt-get update` and `apt-get download` of qemu-system-x86, qemu-system-common
# and qemu-system-data at the pinned version, and `dpkg -x` unpacks them.
# bin/qemu-system-x86_64 there is a wrapper that points QEMU at its own data
# (-L) and modules (QEMU_MODULE_DIR). The unpacked binary must report version
# 10.0.2 and find all its libraries (ldd); only then is the stamp written.
#
# Idempotent: with the stamp present and the binary answering 10.0.2 it prints
# nothing and exits 0 without touching the network. On failure (no network, no
# such version on the mirror) it exits 1 saying why; the conformance suite then
# skips its QEMU 10.0 runs (a failure under CI=true).
set -euo pipefail

VERSION=10.0.2
DEB_VERSION="1:10.0.2+ds-2+deb13u1~bpo12+1"
. "$(dirname "$0")/backports-apt.sh"  # SUITE, MIRROR, KEYRING
PACKAGES=(qemu-system-x86 qemu-system-common qemu-system-data)

cache="${VIOMMU_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/viommu}"
dest="$cache/qemu-$VERSION"
wrapper="$dest/bin/qemu-system-x86_64"

case "${1:-}" in
  "") ;;
  --print)
    echo "$wrapper"
    exit 0
    ;;
  -h | --help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 0
    ;;
  *)
    echo "setup-qemu-peer.sh: unknown argument '$1' (try --help)" >&2
    exit 2
    ;;
esac

fail() {
  echo "setup-qemu-peer.sh: $*" >&2
  exit 1
}

is_ready() {
  [ -f "$dest/STAMP" ] && [ -x "$wrapper" ] &&
    "$wrapper" --version 2>/dev/null | head -n1 | grep -q "QEMU emulator version $VERSION "
}

is_ready && exit 0

for tool in apt-get dpkg flock; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool not found (a Debian system is needed to fetch QEMU $VERSION)"
done
[ -r "$KEYRING" ] || fail "$KEYRING missing (package debian-archive-keyring)"

mkdir -p "$cache"
exec 9>"$cache/.qemu-$VERSION.lock"
flock 9
is_ready && exit 0 # another run finished while we waited

echo "setup-qemu-peer.sh: fetching QEMU $VERSION ($DEB_VERSION from $SUITE) into $dest"
apt_dir="$cache/apt-$SUITE"
backports_apt_update "$apt_dir"

work="$(mktemp -d "$cache/.qemu-$VERSION.XXXXXX")"
trap 'rm -rf "$work"' EXIT
specs=()
for p in "${PACKAGES[@]}"; do specs+=("$p=$DEB_VERSION"); done
if ! (cd "$work" && apt-get "${apt_opts[@]}" -qq download "${specs[@]}") >"$work/download.log" 2>&1; then
  sed 's/^/  /' "$work/download.log" >&2
  fail "apt-get download ${specs[*]} failed"
fi
for deb in "$work"/*.deb; do
  dpkg -x "$deb" "$work/root"
done
rm -f "$work"/*.deb

mkdir -p "$work/bin"
cat >"$work/bin/qemu-system-x86_64" <<'EOF'
#!/bin/sh
# QEMU 10.0.2 unpacked by scripts/setup-qemu-peer.sh: its own data and modules.
root="$(cd "$(dirname "$0")/../root" && pwd)"
QEMU_MODULE_DIR="$root/usr/lib/x86_64-linux-gnu/qemu"
export QEMU_MODULE_DIR
exec "$root/usr/bin/qemu-system-x86_64" -L "$root/usr/share/qemu" "$@"
EOF
chmod +x "$work/bin/qemu-system-x86_64"

missing="$(ldd "$work/root/usr/bin/qemu-system-x86_64" | grep 'not found' || true)"
[ -z "$missing" ] || fail "QEMU $VERSION needs libraries this machine lacks:
$missing"
got="$("$work/bin/qemu-system-x86_64" --version | head -n1)"
case "$got" in
  "QEMU emulator version $VERSION "*) ;;
  *) fail "unpacked binary reports '$got', not QEMU $VERSION" ;;
esac

rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
printf '%s\n%s\n' "$DEB_VERSION" "$got" >"$work/STAMP"
mv "$work" "$dest"
trap - EXIT
echo "setup-qemu-peer.sh: $got in $dest"
