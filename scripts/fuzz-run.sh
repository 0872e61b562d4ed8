#!/usr/bin/env bash
# Runs libFuzzer targets of a built fuzz tree (`make fuzz`, docs/fuzzing.md),
# one after the other, and prints one line per target and a table at the end.
#
# Usage: scripts/fuzz-run.sh [-b BUILD_DIR] [-s SECONDS] [TARGET...]
#   TARGET     a target name (qtest, vtd, ...) or its binary name (qtest_fuzzer);
#              default: every executable named *_fuzzer that BUILD_DIR defines
#              in tests/fuzz (meson introspect; a new stanza in
#              tests/fuzz/meson.build is picked up without touching this file)
#   -b DIR     the fuzz tree (default build-fuzz)
#   -s N       seconds per target (default $FUZZ_SECONDS, else 60)
#   -l         list the targets and exit
#
# Per target T (binary DIR/tests/fuzz/T_fuzzer):
#   seed corpus     tests/fuzz/corpus/T/ (checked in, read-only here)
#   working corpus  DIR/fuzz-corpus/T/   (outside git; new inputs go there)
#   dictionary      tests/fuzz/dict/T.dict, when it exists
#   options         tests/fuzz/options/T.options, when it exists: OSS-Fuzz's
#                   format ([libfuzzer] section, `name = value` lines), each
#                   line passed as -name=value
#   artifacts       DIR/fuzz-artifacts/T/ (crash-*, leak-*, timeout-*, oom-*)
#   log             DIR/fuzz-logs/T.log
# Environment: FUZZ_RSS_MB (default 8192: 24 GiB, 2 cores, one target at a
# time, room for a build), FUZZ_TIMEOUT (seconds per input, default 10),
# FUZZ_EXTRA_ARGS (more libFuzzer flags), ASAN_OPTIONS / UBSAN_OPTIONS
# (defaults halt on the first error).
# Exit status: 0 when no target crashed, 1 when one did (or failed to run),
# 2 on a usage error.
set -uo pipefail

cd "$(dirname "$0")/.."

build=build-fuzz
seconds="${FUZZ_SECONDS:-60}"
list_only=false
while getopts "b:s:lh" opt; do
  case "$opt" in
    b) build="$OPTARG" ;;
    s) seconds="$OPTARG" ;;
    l) list_only=true ;;
    h)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
      exit 0
      ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))

if [[ ! "$seconds" =~ ^[0-9]+$ ]] || ((seconds < 1)); then
  echo "fuzz-run.sh: seconds must be a positive integer, not '$seconds'" >&2
  exit 2
fi

# The *_fuzzer executables the tree defines (introspection), else those on disk.
discover() {
  local names
  names="$(meson introspect "$build" --targets 2>/dev/null | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["type"] == "executable" and t["name"].endswith("_fuzzer") \
            and t["defined_in"].endswith("tests/fuzz/meson.build"):
        print(t["name"][: -len("_fuzzer")])
' 2>/dev/null)"
  if [[ -z "$names" ]]; then
    names="$(find "$build/tests/fuzz" -maxdepth 1 -type f -executable \
               -name '*_fuzzer' -printf '%f\n' 2>/dev/null | sed 's/_fuzzer$//')"
  fi
  sort <<<"$names"
}

targets=()
if (($# > 0)); then
  for t in "$@"; do targets+=("${t%_fuzzer}"); done
else
  mapfile -t targets < <(discover)
fi
if ((${#targets[@]} == 0)); then
  echo "fuzz-run.sh: no *_fuzzer targets in $build (configure with -Dfuzz=true: make fuzz)" >&2
  exit 1
fi
if $list_only; then
  printf '%s\n' "${targets[@]}"
  exit 0
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
rss_mb="${FUZZ_RSS_MB:-8192}"
timeout="${FUZZ_TIMEOUT:-10}"

rows=()
failed=0
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/${t}_fuzzer"
  seeds="tests/fuzz/corpus/$t"
  work="$build/fuzz-corpus/$t"
  artifacts="$build/fuzz-artifacts/$t"
  log="$build/fuzz-logs/$t.log"
  dict="tests/fuzz/dict/$t.dict"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  if [[ ! -x "$bin" ]]; then
    echo "fuzz: $t: $bin not built"
    rows+=("$t|-|-|-|-|-|-|NOT BUILT")
    failed=1
    continue
  fi
  args=(-max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb="$rss_mb"
        -timeout="$timeout" -artifact_prefix="$artifacts/")
  [[ -f "$dict" ]] && args+=(-dict="$dict")
  options="tests/fuzz/options/$t.options"
  if [[ -f "$options" ]]; then
    while IFS= read -r opt; do args+=("$opt"); done < <(awk '
      /^[ \t]*(#|;|$)/ { next }
      /^\[/ { in_lf = ($0 ~ /^\[libfuzzer\]/); next }
      in_lf && /=/ { split($0, kv, "="); k = kv[1]; v = substr($0, index($0, "=") + 1)
                     gsub(/^[ \t]+|[ \t]+$/, "", k); gsub(/^[ \t]+|[ \t]+$/, "", v)
                     print "-" k "=" v }' "$options")
  fi
  # shellcheck disable=SC2206 # FUZZ_EXTRA_ARGS is a list of flags
  args+=(${FUZZ_EXTRA_ARGS:-})
  dirs=("$work")
  if [[ -d "$seeds" ]]; then
    dirs+=("$seeds")
  else
    echo "fuzz: $t: no seed corpus $seeds (starting from nothing)"
  fi
  echo "+ $bin ${args[*]} ${dirs[*]}  > $log"
  start=$SECONDS
  "$bin" "${args[@]}" "${dirs[@]}" >"$log" 2>&1
  rc=$?
  elapsed=$((SECONDS - start))

  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  eps="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  last="$(grep -E '(INITED|NEW|REDUCE|pulse|DONE|RELOAD).* cov: ' "$log" | tail -1)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
  # libFuzzer's figure is whole seconds: 0 for a run under one second.
  if [[ "${eps:-0}" == 0 && -n "$execs" ]] && ((elapsed > 0)); then
    eps=$((execs / elapsed))
  fi
  corpus="$(find "$work" -maxdepth 1 -type f | wc -l)"
  artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)"
  if ((rc == 0)) && [[ -z "$artifact" ]]; then
    result=ok
  else
    failed=1
    if [[ -n "$artifact" ]]; then
      result="CRASH $artifact"
      head="$(grep -m1 -E '^==[0-9]+==ERROR|runtime error:|^==[0-9]+== ERROR: libFuzzer' "$log")"
      [[ -n "$head" ]] && echo "fuzz: $t: $head"
      # The head of the first stack after the report, without libFuzzer's frames.
      awk '/ERROR|runtime error:/ { on = 1; next }
           on && /^ *#[0-9]+ 0x/ { print; n++; next }
           on && n > 0 { exit }' "$log" |
        grep -v -E 'fuzzer::|libFuzzer|__libc_start| in main |_start' | head -4 |
        sed "s/^/fuzz: $t:   /"
    else
      result="FAILED (exit $rc, see $log)"
    fi
  fi
  printf 'fuzz: %s  %ss  execs=%s  exec/s=%s  cov=%s  ft=%s  corpus=%s  %s\n' \
    "$t" "$elapsed" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "$result"
  rows+=("$t|$elapsed|${execs:-?}|${eps:-?}|${cov:-?}|${ft:-?}|$corpus|$result")
done

echo
echo "fuzz summary ($build, ${seconds}s per target; corpus = files in $build/fuzz-corpus/<target>)"
printf '%-20s %6s %12s %8s %7s %8s %7s  %s\n' \
  target secs execs exec/s cov ft corpus result
for r in "${rows[@]}"; do
  IFS='|' read -r t el ex ep cv f co res <<<"$r"
  printf '%-20s %6s %12s %8s %7s %8s %7s  %s\n' "$t" "$el" "$ex" "$ep" "$cv" "$f" "$co" "$res"
done
exit "$failed"
