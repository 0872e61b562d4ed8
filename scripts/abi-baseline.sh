#!/usr/bin/env bash
# Regenerates abi/libviommu.abi, the ABI baseline of libviommu.so.0 that the
# 'embed' suite's install test compares against with abidiff
# (docs/embedding.md, "ABI policy"). Run it only for an intended ABI change,
# with the ABI version bumped in include/viommu.h as the policy says.
#
# Usage: scripts/abi-baseline.sh [BUILD_DIR]   (default: build, a g++ tree)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
meson compile -C "$build" capi/viommu:shared_library >/dev/null
meson install -C "$build" --no-rebuild --quiet --destdir "$t" --tags embed,devel >/dev/null
so=$(find "$t" -name libviommu.so.0 | head -1)
hdr=$(find "$t" -name viommu.h | head -1)
mkdir -p "$root/abi"
abidw --headers-dir "$(dirname "$hdr")" --drop-private-types \
  --exported-interfaces-only --no-corpus-path --no-comp-dir-path --short-locs \
  --out-file "$root/abi/libviommu.abi" "$so"
echo "abi/libviommu.abi: $(grep -c '<elf-symbol name=' "$root/abi/libviommu.abi") symbols"
