#!/usr/bin/env bash
# Installs the Debian packages needed to build and test viommu, when they are missing.
#
# Usage: scripts/setup-deps.sh           install whatever is missing (quiet if nothing is)
#        scripts/setup-deps.sh --check   only list the missing packages; exit 1 if any
#
# Idempotent: when every package is already installed it prints nothing and exits 0
# without touching apt. Otherwise it runs `apt-get update` once and installs only the
# missing packages, using sudo when not run as root. Called by `make deps` (and so by
# every make target that builds). Then it fetches QEMU 10.0, the second conformance
# peer, into a cache folder (scripts/setup-qemu-peer.sh; once per machine), and
# builds the Linux 6.12 kernel of the real-kernel tests into a cache folder
# (scripts/build-linux-6.12.sh; once per machine, about 15 minutes at nice 19
# the first time; VIOMMU_NO_KERNEL_BUILD=1 skips it).
set -euo pipefail

PACKAGES=(
  # Build system and compiler.
  make
  meson
  ninja-build
  g++
  pkg-config
  # Libraries (found through pkg-config, libfdt by name).
  libglib2.0-dev
  libabsl-dev
  libfdt-dev
  libjson-glib-dev
  # dtc: compiles the example host-platform .dts (docs/vfio-host-model.md) in tests.
  device-tree-compiler
  # Tests and benchmarks.
  libgtest-dev
  libgmock-dev
  libbenchmark-dev
  # The conformance peer (tests/conformance, ARCHITECTURE.md §7); also boots
  # the real-kernel tests (tests/host), whose initramfs needs cpio.
  qemu-system-x86
  cpio
  # Building the Linux 6.12 kernel of the real-kernel tests
  # (scripts/build-linux-6.12.sh; objtool needs libelf).
  flex
  bison
  bc
  libelf-dev
  # Compiler cache: Meson picks ccache up by itself for build/; the Makefile
  # passes it for the sanitizer trees. Repeated builds (CI on one machine,
  # fresh clones) hit the cache.
  ccache
  # The 'embed' suite's install test: abidiff against abi/libviommu.abi,
  # and a Rust program linked against the installed library (rust_smoke.rs).
  abigail-tools
  rustc
  # ... and the same program over bindings bindgen generates from the header.
  bindgen
  # `make coverage` (scripts/coverage.sh): line coverage reports of the
  # --coverage tree build-cov.
  gcovr
  # Sanitizer and libFuzzer builds.
  clang
  libclang-rt-14-dev
)

check_only=false
case "${1:-}" in
  "") ;;
  --check) check_only=true ;;
  -h | --help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 0
    ;;
  *)
    echo "setup-deps.sh: unknown argument '$1' (try --help)" >&2
    exit 2
    ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup-deps.sh: dpkg-query not found: not a Debian system; install these yourself:" >&2
  echo "  ${PACKAGES[*]}" >&2
  exit 0
fi

# A package counts as present only when dpkg says it is fully installed
# (not "config-files", "half-installed", or unknown).
missing=()
for pkg in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  case "$status" in
    *" ok installed") ;;
    *) missing+=("$pkg") ;;
  esac
done

# The second conformance peer, QEMU 10.0 (scripts/setup-qemu-peer.sh): unpacked
# into a cache folder, not installed. Without network the conformance suite
# skips its QEMU 10.0 runs (a failure under CI=true), so here a failed fetch is
# only a warning.
fetch_qemu_peer() {
  "$(dirname "$0")/setup-qemu-peer.sh" ||
    echo "setup-deps.sh: warning: QEMU 10.0 (second conformance peer) not fetched; its conformance runs will skip" >&2
  build_linux_612
}

# The Linux 6.12 kernel of the real-kernel tests (scripts/build-linux-6.12.sh):
# built once into a cache folder. A failure is only a warning here; the test
# host/real_kernel_6_12 then skips (a failure under CI=true).
build_linux_612() {
  [ "${VIOMMU_NO_KERNEL_BUILD:-}" = 1 ] && return 0
  "$(dirname "$0")/build-linux-6.12.sh" ||
    echo "setup-deps.sh: warning: Linux 6.12 (real-kernel tests) not built; host/real_kernel_6_12 will skip" >&2
}

if ((${#missing[@]} == 0)); then
  $check_only || fetch_qemu_peer
  exit 0
fi

if $check_only; then
  echo "missing: ${missing[*]}"
  exit 1
fi

if ((EUID == 0)); then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "setup-deps.sh: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi

echo "setup-deps.sh: installing missing packages: ${missing[*]}"
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
fetch_qemu_peer
