# scripts/backports-apt.sh — sourced by setup-qemu-peer.sh and
# build-linux-6.12.sh: fetch packages from Debian's bookworm-backports with
# a private apt configuration (its own sources list, state and cache under
# the caller's cache folder), adding nothing to the machine's apt sources.
#
#   . "$(dirname "$0")/backports-apt.sh"
#   backports_apt_update "$cache/apt-$SUITE"     # sets apt_opts
#   (cd "$dir" && apt-get "${apt_opts[@]}" -qq download pkg=ver)
#
# The caller defines fail() (prints and exits). VIOMMU_DEBIAN_MIRROR
# overrides the mirror.

SUITE=bookworm-backports
MIRROR="${VIOMMU_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# Writes the configuration into $1, sets the array apt_opts for apt-get,
# and runs `apt-get update` of $SUITE; fail()s with apt's output when the
# update fails or warns (no network to the mirror, most likely).
backports_apt_update() {
  local dir=$1
  [ -r "$KEYRING" ] || fail "$KEYRING missing (package debian-archive-keyring)"
  mkdir -p "$dir/state/lists/partial" "$dir/cache/archives/partial"
  echo "deb [signed-by=$KEYRING] $MIRROR $SUITE main" >"$dir/sources.list"
  apt_opts=(
    -o "Dir::Etc::SourceList=$dir/sources.list"
    -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State=$dir/state"
    -o "Dir::Cache=$dir/cache"
    -o Debug::NoLocking=true
    -o APT::Sandbox::User="$(id -un)"
    -o Acquire::Retries=0
    -o Acquire::http::Timeout=10
  )
  if ! apt-get "${apt_opts[@]}" -qq update >"$dir/update.log" 2>&1 ||
     grep -q '^[WE]:' "$dir/update.log"; then
    sed 's/^/  /' "$dir/update.log" >&2
    fail "apt-get update of $SUITE failed (no network to $MIRROR?)"
  fi
}
