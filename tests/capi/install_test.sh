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
#   - tests/capi/rust_smoke.rs (extern "C" declarations) builds with
#     Debian's rustc (/usr/bin/rustc, else rustc in PATH) linked through
#     `pkg-config --libs viommu`, and runs; then again over Debian's
#     bindgen's bindings of the installed header, whose layout tests run
#     too (the header is parseable by bindgen); without rustc this check is
#     skipped with the reason, but fails when CI=true;
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

if [[ -x /usr/bin/rustc ]]; then
  rustc=/usr/bin/rustc
else
  rustc=$(command -v rustc || true)
fi
if [[ -z $rustc ]]; then
  [[ ${CI:-} == true ]] && fail "rustc missing (Debian rustc; scripts/setup-deps.sh)"
  echo "SKIP rust_smoke: no rustc (install Debian's rustc: scripts/setup-deps.sh)"
else
  # pkg-config's -L/-l flags in rustc's spelling.
  rust_link=()
  for f in $(pkg-config --libs viommu); do
    case $f in
      -L*) rust_link+=(-L "native=${f#-L}") ;;
      -l*) rust_link+=(-l "${f#-l}") ;;
      *) fail "pkg-config --libs viommu: unexpected flag '$f'" ;;
    esac
  done
  "$rustc" --edition 2021 -O -o "$t/src/rust_smoke" "${rust_link[@]}" \
    "$src/tests/capi/rust_smoke.rs" >"$t/rustc.out" 2>&1 ||
    { cat "$t/rustc.out"; fail "building rust_smoke with $rustc"; }
  LD_LIBRARY_PATH=$libdir "$t/src/rust_smoke" >"$t/rust.out" 2>&1 ||
    { cat "$t/rust.out"; fail "rust_smoke"; }
  ldd_lib=$(LD_LIBRARY_PATH=$libdir ldd "$t/src/rust_smoke" | grep libviommu || true)
  [[ $ldd_lib == *"$libdir"* ]] || fail "rust_smoke did not load the installed library: $ldd_lib"
  echo "ok rust_smoke ($("$rustc" --version)): $(tail -1 "$t/rust.out")"

  # The same program over bindgen's bindings of the installed header, and
  # bindgen's layout test of every struct (Rust's view = the C compiler's).
  if ! command -v bindgen >/dev/null; then
    [[ ${CI:-} == true ]] && fail "bindgen missing (Debian bindgen; scripts/setup-deps.sh)"
    echo "SKIP rust_bindgen: no bindgen (install Debian's bindgen: scripts/setup-deps.sh)"
  else
    bindgen "$hdr" -o "$t/viommu_sys.rs" --size_t-is-usize --with-derive-default \
      --allowlist-function 'viommu_.*' --allowlist-type 'viommu_.*' \
      --allowlist-var 'VIOMMU_.*' >"$t/bindgen.out" 2>&1 ||
      { cat "$t/bindgen.out"; fail "bindgen $hdr"; }
    for variant in smoke layout; do
      test_flag=()
      [[ $variant == layout ]] && test_flag=(--test)
      VIOMMU_SYS_RS="$t/viommu_sys.rs" "$rustc" --edition 2021 -O --cfg viommu_bindgen \
        "${test_flag[@]}" -o "$t/src/rust_bindgen_$variant" "${rust_link[@]}" \
        "$src/tests/capi/rust_smoke.rs" >"$t/rustc.out" 2>&1 ||
        { cat "$t/rustc.out"; fail "building rust_smoke over bindgen's bindings ($variant)"; }
      LD_LIBRARY_PATH=$libdir "$t/src/rust_bindgen_$variant" >"$t/rust.out" 2>&1 ||
        { cat "$t/rust.out"; fail "rust_smoke over bindgen's bindings ($variant)"; }
    done
    grep -q "test result: ok. [1-9]" "$t/rust.out" || { cat "$t/rust.out"; fail "no bindgen layout test ran"; }
    echo "ok rust_bindgen ($(bindgen --version)): the smoke checks and $(grep -o '[0-9]* passed' "$t/rust.out") layout tests"
  fi
fi

command -v abidiff >/dev/null || fail "abidiff missing (Debian abigail-tools; scripts/setup-deps.sh)"
rc=0
abidiff --headers-dir2 "$(dirname "$hdr")" "$src/abi/libviommu.abi" "$so" \
  >"$t/abidiff.out" 2>&1 || rc=$?
if ((rc != 0)); then
  cat "$t/abidiff.out"
  fail "abidiff exit $rc against abi/libviommu.abi (docs/embedding.md, ABI policy)"
fi
echo "ok abidiff: no change against abi/libviommu.abi"
