#!/bin/bash -eu
# OSS-Fuzz / ClusterFuzzLite build of every viommu fuzz target
# (docs/fuzzing.md). Inputs, as OSS-Fuzz sets them: $CC, $CXX, $CFLAGS,
# $CXXFLAGS (sanitizers and -fsanitize=fuzzer-no-link), $LIB_FUZZING_ENGINE
# (link arguments of the engine), $SRC (viommu in $SRC/viommu), $WORK (scratch)
# and $OUT, which receives per target T (tests/fuzz/meson.build):
#   $OUT/T_fuzzer                  the target binary
#   $OUT/T_fuzzer_seed_corpus.zip  tests/fuzz/corpus/T/
#   $OUT/T_fuzzer.dict             tests/fuzz/dict/T.dict, when there is one
#   $OUT/T_fuzzer.options          tests/fuzz/options/T.options, when there is one
#   $OUT/lib/                      the shared system libraries the targets
#                                  need (Abseil, GLib, json-glib, libfdt: the
#                                  runner image has none), found via RUNPATH
#                                  $ORIGIN/lib
# Tested here by scripts/fuzz-oss-test.sh (make fuzz-oss-test).

src="$SRC/viommu"
build="$WORK/viommu-build"

# viommu links Debian/Ubuntu's Abseil and GLib, built against libstdc++:
# the base image's -stdlib=libc++ would not link with them (so no MSan).
export CXXFLAGS="${CXXFLAGS//-stdlib=libc++/}"

# --buildtype=plain: the optimisation and debug flags are OSS-Fuzz's.
# -Dfuzz=true also compiles every library with -fsanitize=fuzzer-no-link.
if [[ ! -f "$build/build.ninja" ]]; then
  meson setup "$build" "$src" --buildtype=plain -Dfuzz=true \
    -Dtests=disabled -Dbench=disabled -Db_lundef=false \
    -Dfuzz_engine="$LIB_FUZZING_ENGINE"
else
  meson configure "$build" -Dfuzz_engine="$LIB_FUZZING_ENGINE"
fi
# A reused $WORK may predate targets added since: regenerate the build
# files first, so the introspection below lists every target.
ninja -C "$build" build.ninja

targets=$(meson introspect "$build" --targets | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["type"] == "executable" and t["name"].endswith("_fuzzer"):
        print(t["name"])
')
ninja -C "$build" -j"$(nproc)" $(for t in $targets; do echo "tests/fuzz/$t"; done)

mkdir -p "$OUT/lib"
for t in $targets; do
  name="${t%_fuzzer}"
  cp "$build/tests/fuzz/$t" "$OUT/$t"
  if [[ -d "$src/tests/fuzz/corpus/$name" ]]; then
    rm -f "$OUT/${t}_seed_corpus.zip"
    (cd "$src/tests/fuzz/corpus/$name" && zip -q -r "$OUT/${t}_seed_corpus.zip" .)
  fi
  if [[ -f "$src/tests/fuzz/dict/$name.dict" ]]; then
    cp "$src/tests/fuzz/dict/$name.dict" "$OUT/$t.dict"
  fi
  if [[ -f "$src/tests/fuzz/options/$name.options" ]]; then
    cp "$src/tests/fuzz/options/$name.options" "$OUT/$t.options"
  fi
  # Shared libraries outside the C/C++ runtime go beside the binary.
  ldd "$OUT/$t" | awk '$3 ~ /^\// { print $3 }' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so* | libm.so* | libstdc++.so* | libgcc_s.so* | libpthread.so* | \
        libdl.so* | librt.so* | ld-linux*) ;;
      *) cp -L "$lib" "$OUT/lib/" ;;
    esac
  done
  # DT_RPATH (not RUNPATH): it also finds the libraries' own dependencies.
  patchelf --force-rpath --set-rpath '$ORIGIN/lib' "$OUT/$t"
done
echo "build.sh: $(echo $targets | wc -w) targets in $OUT"
