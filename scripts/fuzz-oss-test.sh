#!/usr/bin/env bash
# Tests .clusterfuzzlite/build.sh the way OSS-Fuzz / ClusterFuzzLite runs it
# (docs/fuzzing.md), without Docker: with their variables set for a libFuzzer
# ASan build, then checks that $OUT has every target of tests/fuzz/meson.build,
# its seed corpus zip (and dictionary when tests/fuzz/dict has one), and that
# each target, run from a copy of $OUT, replays its seed corpus
# (`$OUT/T_fuzzer -runs=0 DIR`).
#
# Usage: scripts/fuzz-oss-test.sh      (make fuzz-oss-test)
# Environment: OSS_WORK (the build scratch, kept between runs so a second run is
# incremental; default build-oss/), CC/CXX (default clang/clang++).
# Installs patchelf (apt) when missing; build.sh needs it.
set -euo pipefail

cd "$(dirname "$0")/.."
repo="$PWD"

if ! command -v patchelf >/dev/null 2>&1; then
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get install -y --no-install-recommends patchelf
fi

work="${OSS_WORK:-$repo/build-oss}"
mkdir -p "$work"
src="$(mktemp -d)"
out="$(mktemp -d)"
run="$(mktemp -d)"
trap 'rm -rf "$src" "$out" "$run"' EXIT
ln -s "$repo" "$src/viommu"

echo "+ CC=clang CXX=clang++ CXXFLAGS='-fsanitize=address,fuzzer-no-link -g' LIB_FUZZING_ENGINE=-fsanitize=fuzzer SRC=$src WORK=$work OUT=$out .clusterfuzzlite/build.sh"
CC="${CC:-clang}" CXX="${CXX:-clang++}" CFLAGS="-fsanitize=address,fuzzer-no-link -g" \
  CXXFLAGS="-fsanitize=address,fuzzer-no-link -g" \
  LIB_FUZZING_ENGINE=-fsanitize=fuzzer SRC="$src" WORK="$work" OUT="$out" \
  bash .clusterfuzzlite/build.sh

# Every target the tree defines, from the Meson side.
mapfile -t targets < <(meson introspect "$work/viommu-build" --targets | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["type"] == "executable" and t["name"].endswith("_fuzzer"):
        print(t["name"])
' | sort)
((${#targets[@]} > 0)) || { echo "fuzz-oss-test: no targets" >&2; exit 1; }

# Run from a copy of $OUT elsewhere: nothing may point back into the build.
cp -r "$out/." "$run/"
fail=0
for t in "${targets[@]}"; do
  name="${t%_fuzzer}"
  status=ok
  [[ -x "$run/$t" ]] || status="missing binary"
  if [[ $status == ok && -d "tests/fuzz/corpus/$name" ]]; then
    [[ -f "$run/${t}_seed_corpus.zip" ]] || status="missing seed zip"
  fi
  if [[ $status == ok && -f "tests/fuzz/dict/$name.dict" ]]; then
    [[ -f "$run/$t.dict" ]] || status="missing dict"
  fi
  if [[ $status == ok ]]; then
    seeds="$run/seeds-$name"
    mkdir -p "$seeds"
    [[ -f "$run/${t}_seed_corpus.zip" ]] && unzip -q -o "$run/${t}_seed_corpus.zip" -d "$seeds"
    n="$(find "$seeds" -type f | wc -l)"
    if ! (cd "$run" && ASAN_OPTIONS=detect_leaks=1 "./$t" -runs=0 "seeds-$name" \
          >"$run/$name.log" 2>&1); then
      status="replay failed: $(grep -m1 -E 'ERROR|error' "$run/$name.log" || tail -1 "$run/$name.log")"
    else
      # The system libraries must resolve to the copies beside the binary.
      from_out="$(ldd "$run/$t" | grep -c "=> $run/lib/" || true)"
      outside="$(ldd "$run/$t" | awk '$3 ~ /^\// { print $3 }' | grep -v "^$run/lib/" |
                 grep -v -E '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt)\.so' || true)"
      if [[ -n "$outside" ]]; then
        status="libraries outside \$OUT/lib: $(echo $outside)"
      else
        status="ok ($n seeds replayed; $from_out libraries from \$OUT/lib)"
      fi
    fi
  fi
  [[ $status == ok* ]] || fail=1
  printf 'fuzz-oss-test: %-24s %s\n' "$t" "$status"
done
if ((fail)); then
  echo "fuzz-oss-test: FAILED"
  exit 1
fi
echo "fuzz-oss-test: all ${#targets[@]} targets built, packaged and replayed their seeds"
