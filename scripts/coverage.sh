#!/usr/bin/env bash
# Line coverage of the production code under `make check`'s tests and the fuzz
# corpus replays (docs/development.md, "Coverage"). Called by `make coverage`.
#
# Usage: scripts/coverage.sh [-b BUILD_DIR] [-n]
#   -b DIR   the coverage tree (default build-cov; g++ with -Db_coverage=true)
#   -n       do not configure or build; use the tree as it is
#
# Steps: configure BUILD_DIR if it has no build.ninja, build it with
# `ninja -j$NINJA_JOBS`, delete old .gcda counters, run every meson test suite
# except `host` (its binaries run inside a VM: their counters never reach this
# machine) and `lint` (scripts, no compiled code), then run gcovr over the
# production directories. Prints a per-directory line-coverage table and one
# `coverage: DIR PCT (goal 85%) ok|MISS` line per goal directory; writes
# BUILD_DIR/coverage/index.html (HTML, per-file pages) and summary.json.
#
# A directory's figure counts its sources and its public headers (which
# live below it: memory/include/viommu/memory/). Exit status: non-zero when the build or a test
# fails; a missed goal is reported, not an error.
#
# Environment: NINJA_JOBS, TEST_JOBS (default 2 each), CXX (default g++ via
# ccache when installed), MESON_FLAGS (extra -D options at configure time),
# COV_TIMEOUT_MULTIPLIER (meson test --timeout-multiplier, default 3: the
# instrumented build is slower), COV_GOAL (percent, default 85).
set -euo pipefail

cd "$(dirname "$0")/.."

build_dir=build-cov
do_build=true
while getopts "b:nh" opt; do
  case "$opt" in
    b) build_dir="$OPTARG" ;;
    n) do_build=false ;;
    h)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
      exit 0
      ;;
    *) exit 2 ;;
  esac
done

ninja_jobs="${NINJA_JOBS:-2}"
test_jobs="${TEST_JOBS:-2}"
timeout_mult="${COV_TIMEOUT_MULTIPLIER:-3}"
goal="${COV_GOAL:-85}"

if ! command -v gcovr >/dev/null 2>&1; then
  echo "coverage.sh: gcovr not found (Debian package gcovr; scripts/setup-deps.sh installs it)" >&2
  exit 1
fi

if $do_build; then
  if [ ! -f "$build_dir/build.ninja" ]; then
    if [ -z "${CXX:-}" ]; then
      if command -v ccache >/dev/null 2>&1; then CXX="ccache g++"; else CXX=g++; fi
    fi
    reconf=()
    [ -f "$build_dir/meson-private/coredata.dat" ] && reconf=(--reconfigure)
    # -O1: lines map to the source better than at -O2 and the tests stay
    # fast enough for their timeouts (with the multiplier below).
    # shellcheck disable=SC2086
    echo "+ CXX=\"$CXX\" meson setup ${reconf[*]} $build_dir -Db_coverage=true -Dbench=disabled -Doptimization=1 ${MESON_FLAGS:-}"
    # shellcheck disable=SC2086
    CXX="$CXX" meson setup "${reconf[@]}" "$build_dir" -Db_coverage=true -Dbench=disabled \
      -Doptimization=1 ${MESON_FLAGS:-}
  elif [ -n "${MESON_FLAGS:-}" ]; then
    # shellcheck disable=SC2086
    meson configure "$build_dir" ${MESON_FLAGS}
  fi
  echo "+ ninja -C $build_dir -j$ninja_jobs"
  ninja -C "$build_dir" -j"$ninja_jobs"
fi

# Counters from an earlier run would be added to this one's.
find "$build_dir" -name '*.gcda' -delete

echo "+ meson test -C $build_dir --no-rebuild --no-suite host --no-suite lint"
meson test -C "$build_dir" --no-rebuild --no-suite host --no-suite lint \
  --print-errorlogs --num-processes "$test_jobs" --timeout-multiplier "$timeout_mult"

out="$build_dir/coverage"
rm -rf "$out"
mkdir -p "$out"
# Production code only: the layer directories and their public headers; not
# tests/, tools/, subprojects/ or generated files in the build tree.
filter='(util|memory|devcore|hw|vfio|system)/'
echo "+ gcovr (filter $filter) -> $out/index.html"
gcovr --root . --object-directory "$build_dir" -j "$ninja_jobs" \
  --filter "$filter" \
  --html-details "$out/index.html" --html-title "viommu line coverage" \
  --json-summary "$out/summary.json" >/dev/null

python3 - "$out/summary.json" "$goal" <<'EOF'
import json
import sys

summary_path, goal = sys.argv[1], float(sys.argv[2])
with open(summary_path) as f:
    files = json.load(f)["files"]

# (row label, prefixes counted, prefixes excluded); a file counts in every row
# whose prefixes it matches (vfio/ includes vfio/host/model/).
ROWS = [
    ("util/", ["util/"], []),
    ("memory/", ["memory/"], []),
    ("devcore/", ["devcore/"], []),
    ("hw/core/", ["hw/core/"], []),
    ("hw/pci/", ["hw/pci/"], []),
    ("hw/misc/", ["hw/misc/"], []),
    ("hw/iommu/", ["hw/iommu/"], []),
    ("hw/virtio/", ["hw/virtio/"], []),
    ("hw/i386/", ["hw/i386/"], []),
    ("vfio/ (without host/linux)", ["vfio/"], ["vfio/host/linux/"]),
    ("vfio/host/model/", ["vfio/host/model/"], []),
    ("vfio/host/linux/", ["vfio/host/linux/"], []),
    ("system/", ["system/"], []),
]
GOALS = ["memory/", "hw/iommu/", "vfio/ (without host/linux)"]


def in_row(path, row):
    _, inc, exc = row
    p = path  # public headers live below their layer: memory/include/...
    return any(p.startswith(i) for i in inc) and not any(p.startswith(e) for e in exc)


def pct(covered, total):
    return 100.0 * covered / total if total else 100.0


totals = {}
print()
print(f"{'directory':<28} {'lines':>7} {'covered':>8} {'cover':>7}")
for row in ROWS:
    members = [f for f in files if in_row(f["filename"], row)]
    total = sum(f["line_total"] for f in members)
    covered = sum(f["line_covered"] for f in members)
    totals[row[0]] = (covered, total, members)
    print(f"{row[0]:<28} {total:>7} {covered:>8} {pct(covered, total):>6.1f}%")
all_total = sum(f["line_total"] for f in files)
all_covered = sum(f["line_covered"] for f in files)
print(f"{'all production code':<28} {all_total:>7} {all_covered:>8} {pct(all_covered, all_total):>6.1f}%")
print()

for label in GOALS:
    covered, total, members = totals[label]
    p = pct(covered, total)
    name = label.split(" ")[0]
    print(f"coverage: {name} {p:.1f}% (goal {goal:g}%) {'ok' if p >= goal else 'MISS'}")
    if p < goal:
        worst = sorted(members, key=lambda f: f["line_total"] - f["line_covered"], reverse=True)
        for f in worst[:8]:
            missed = f["line_total"] - f["line_covered"]
            if missed == 0:
                break
            print(f"    {missed:>5} uncovered of {f['line_total']:>5}  {f['filename']}")
EOF
echo "coverage: HTML report in $out/index.html"
