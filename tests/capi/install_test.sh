#!/usr/bin/env bash
# tests/capi/install_test.sh — the installed C API as an embedder sees it:
# `meson install --tags embed,devel` into a DESTDIR, then
#   - pkg-config: viommu's version is the project's; --cflags/--libs and
#     --static (the private requirements) resolve;
#   - the SONAME is libviommu.so.0 and the dynamic symbols are viommu_*
#     only (plus the version node VIOMMU_0): no C++ (_Z) symbol;
#   - examples/minivmm, copied out of the tree, builds with
#     cc -std=c99 -Wall -Wextra -Werror -pedantic $(pkg-config ...) and runs;
#   - <viommu.h> compiles as C++17 -Wpedantic -Werror;
#   - abidiff finds no ABI change against abi/libviommu.abi.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR VERSION B_SANITIZE B_COVERAGE
# Exit 77 (skip) in sanitizer and coverage trees: their library needs the
# runtime the example would not link.
set -euo pipefail
build=$1 src=$2 version=$3 sanitize=$4 coverage=$5
if [[ $sanitize != none || $coverage != false ]]; then
  echo "SKIP: instrumented tree (b_sanitize=$sanitize b_coverage=$coverage)"
  exit 77
fi
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

meson install -C "$build" --no-rebuild --quiet --destdir "$t/root" \
  --tags embed,devel >"$t/install.log" 2>&1 || { cat "$t/install.log"; fail "meson install"; }
pc=$(find "$t/root" -name viommu.pc | head -1)
so=$(find "$t/root" -name libviommu.so.0 | head -1)
hdr=$(find "$t/root" -name viommu.h | head -1)
[[ -n $pc && -n $so && -n $hdr ]] || fail "installed: pc '$pc' so '$so' header '$hdr'"
libdir=$(dirname "$so")
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$t/root

got=$(pkg-config --modversion viommu)
[[ $got == "$version" ]] || fail "pkg-config --modversion: '$got', project '$version'"
pkg-config --cflags --libs viommu >/dev/null || fail "pkg-config --cflags --libs"
pkg-config --static --libs viommu >/dev/null || fail "pkg-config --static --libs"
echo "ok pkg-config viommu $got"

soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[[ $soname == libviommu.so.0 ]] || fail "SONAME '$soname'"
syms=$(nm -D --defined-only "$so" | awk '{print $NF}' | sed 's/@.*//')
bad=$(grep -v -e '^viommu_' -e '^VIOMMU_0$' <<<"$syms" || true)
[[ -z $bad ]] || fail "exported beyond viommu_*: $(echo $bad | head -c 300)"
echo "ok SONAME $soname, $(grep -c '^viommu_' <<<"$syms") viommu_* symbols, nothing else"

mkdir "$t/src"
cp "$src/examples/minivmm/minivmm.c" "$t/src/"
# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -Werror -pedantic -o "$t/src/minivmm" \
  "$t/src/minivmm.c" $(pkg-config --cflags --libs viommu) || fail "building minivmm"
LD_LIBRARY_PATH=$libdir "$t/src/minivmm" >"$t/minivmm.out" 2>&1 ||
  { cat "$t/minivmm.out"; fail "minivmm"; }
tail -1 "$t/minivmm.out"
ldd_lib=$(LD_LIBRARY_PATH=$libdir ldd "$t/src/minivmm" | grep libviommu || true)
[[ $ldd_lib == *"$libdir"* ]] || fail "minivmm did not load the installed library: $ldd_lib"
echo "ok minivmm out of the tree"

# shellcheck disable=SC2046
echo '#include <viommu.h>' | c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror \
  -fsyntax-only -x c++ $(pkg-config --cflags viommu) - || fail "C++17 header"
echo "ok C++17 header"

command -v abidiff >/dev/null || fail "abidiff missing (Debian abigail-tools; scripts/setup-deps.sh)"
rc=0
abidiff --headers-dir2 "$(dirname "$hdr")" "$src/abi/libviommu.abi" "$so" \
  >"$t/abidiff.out" 2>&1 || rc=$?
if ((rc != 0)); then
  cat "$t/abidiff.out"
  fail "abidiff exit $rc against abi/libviommu.abi (docs/embedding.md, ABI policy)"
fi
echo "ok abidiff: no change against abi/libviommu.abi"
