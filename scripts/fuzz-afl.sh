#!/usr/bin/env bash
# AFL++ build and run of the fuzz targets (docs/fuzzing.md): the libFuzzer-style
# targets of tests/fuzz linked with AFL++'s driver (libAFLDriver.a, which
# afl-clang-fast++ links for -fsanitize=fuzzer), in build-afl/.
#
# Usage: scripts/fuzz-afl.sh build            configure and build build-afl/
#        scripts/fuzz-afl.sh run TARGET [SECS] afl-fuzz TARGET for SECS seconds
#                                             (default $FUZZ_SECONDS, else 60)
# Installs Debian's afl++ (apt) when afl-clang-fast++ is missing.
# run: input tests/fuzz/corpus/TARGET, output build-afl/afl-out/TARGET
# (crashes in .../default/crashes/), dictionary tests/fuzz/dict/TARGET.dict
# when it exists. ASan+UBSan as in build-fuzz; AFL_SKIP_CPUFREQ and
# AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES are set (no root tuning needed).
# Exit status of run: 0 when afl-fuzz ran and found no crash, 1 otherwise.
set -euo pipefail

cd "$(dirname "$0")/.."

build=build-afl

ensure_afl() {
  command -v afl-clang-fast++ >/dev/null 2>&1 && return 0
  local sudo=()
  if ((EUID != 0)); then sudo=(sudo); fi
  echo "fuzz-afl.sh: installing Debian's afl++"
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends afl++
}

do_build() {
  ensure_afl
  if [[ ! -f "$build/build.ninja" ]]; then
    local cxx=afl-clang-fast++
    command -v ccache >/dev/null 2>&1 && cxx="ccache afl-clang-fast++"
    # AFL_QUIET: no afl-cc banner in Meson's compiler checks.
    AFL_QUIET=1 CXX="$cxx" meson setup "$build" -Dfuzz=true -Dtests=disabled \
      -Dbench=disabled -Db_sanitize=address,undefined -Db_lundef=false \
      -Doptimization=1 ${MESON_FLAGS:-}
  fi
  AFL_QUIET=1 ninja -C "$build" -j"${NINJA_JOBS:-2}"
  echo "fuzz-afl.sh: targets:"
  find "$build/tests/fuzz" -maxdepth 1 -type f -executable -name '*_fuzzer' -printf '  %p\n' | sort
}

do_run() {
  local t="${1:?usage: scripts/fuzz-afl.sh run TARGET [SECONDS]}"
  t="${t%_fuzzer}"
  local secs="${2:-${FUZZ_SECONDS:-60}}"
  local bin="$build/tests/fuzz/${t}_fuzzer"
  local out="$build/afl-out/$t"
  [[ -x "$bin" ]] || { echo "fuzz-afl.sh: $bin not built (scripts/fuzz-afl.sh build)" >&2; exit 1; }
  [[ -d "tests/fuzz/corpus/$t" ]] || { echo "fuzz-afl.sh: no tests/fuzz/corpus/$t" >&2; exit 1; }
  local args=(-i "tests/fuzz/corpus/$t" -o "$out" -V "$secs" -t 10000)
  [[ -f "tests/fuzz/dict/$t.dict" ]] && args+=(-x "tests/fuzz/dict/$t.dict")
  mkdir -p "$out"
  echo "+ afl-fuzz ${args[*]} -- $bin"
  AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 \
    AFL_AUTORESUME=1 \
    ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:symbolize=0:detect_leaks=0}" \
    UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1}" \
    afl-fuzz "${args[@]}" -- "$bin" >"$out/afl-fuzz.log" 2>&1 || {
      tail -20 "$out/afl-fuzz.log"; exit 1; }
  local stats="$out/default/fuzzer_stats"
  if [[ -f "$stats" ]]; then
    grep -E '^(run_time|execs_done|execs_per_sec|corpus_count|bitmap_cvg|saved_crashes|saved_hangs) ' "$stats"
  fi
  local crashes
  crashes="$(find "$out/default/crashes" -type f -name 'id:*' 2>/dev/null | wc -l)"
  if ((crashes > 0)); then
    echo "fuzz-afl.sh: $t: $crashes crash(es) in $out/default/crashes/"
    exit 1
  fi
  echo "fuzz-afl.sh: $t: no crash in ${secs}s (log $out/afl-fuzz.log)"
}

case "${1:-}" in
  build) do_build ;;
  run) shift; do_run "$@" ;;
  -h | --help | "")
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    [[ -n "${1:-}" ]]
    ;;
  *) echo "fuzz-afl.sh: unknown command '$1' (try --help)" >&2; exit 2 ;;
esac
