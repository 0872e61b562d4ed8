#!/usr/bin/env bash
# tests/capi/asan_leak_check.sh — examples/minivmm under ASan/UBSan with
# leak detection (sanitizer trees only; docs/embedding.md, "Installing"):
#   1. minivmm, built in the tree against the static C API library, runs
#      with detect_leaks=1 and must exit 0 with no report: nothing is left
#      allocated after viommu_ctx_free;
#   2. leak_canary, which exits without viommu_ctx_free, must be reported
#      ("LeakSanitizer: detected memory leaks"): the check above is live.
# The options are set here, whatever the caller's environment says.
# Usage: asan_leak_check.sh MINIVMM LEAK_CANARY
set -uo pipefail
minivmm=$1 canary=$2
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$minivmm" >"$t/minivmm.out" 2>&1
rc=$?
if ((rc != 0)) || grep -q -e 'Sanitizer' -e 'runtime error' "$t/minivmm.out"; then
  cat "$t/minivmm.out"
  fail "minivmm under ASan/UBSan (detect_leaks=1): exit $rc"
fi
echo "ok minivmm: $(tail -1 "$t/minivmm.out"), no sanitizer report"

"$canary" >"$t/canary.out" 2>&1
rc=$?
if ((rc == 0)) || ! grep -q 'LeakSanitizer: detected memory leaks' "$t/canary.out"; then
  cat "$t/canary.out"
  fail "leak_canary exited $rc without a LeakSanitizer report: leak detection is off"
fi
echo "ok leak_canary: LeakSanitizer reported its context (exit $rc)"
