#!/bin/bash
# Plays conformance scenarios against one QEMU alone and prints every
# command with QEMU's answer (and asynchronous IRQ lines), so a staged
# scenario can be checked by eye before viommu implements it.
#
# Usage: tests/conformance/run_qemu_only.sh [-e] [scenario.qtest ...]
#   no file: every tests/conformance/scenarios/*.qtest
#   -e: also print QEMU's stderr (error_report / guest-error log) at the end
# QEMU_BINARY picks the peer: QEMU 7.2 by default; QEMU 10.0 is
#   QEMU_BINARY=$(scripts/setup-qemu-peer.sh --print). The recorded-answer
#   directives (peers:, qemu-7.2:, qemu-10.0:, viommu:) are not sent.
# Same machine as conformance_test.cc: q35, tcg, qtest on stdio, a BIOS of
# HLT, -nodefaults, plus the scenario's `args:`. `wait-dma` sleeps 300 ms.
# To compare a directory of scenarios against viommu:
#   SCENARIO_DIR=tests/conformance/scenarios VIOMMU_BINARY=build/viommu \
#     build/tests/conformance/conformance_test
set -u
QEMU=${QEMU_BINARY:-/usr/bin/qemu-system-x86_64}
here=$(cd "$(dirname "$0")" && pwd)
show_err=0
if [ "${1:-}" = "-e" ]; then show_err=1; shift; fi
files=("$@")
[ ${#files[@]} -eq 0 ] && files=("$here"/scenarios/*.qtest)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c 65536 /dev/zero | tr '\0' '\364' >"$tmp/hlt.bin"

play() {
  local file=$1 args=() line no=0 ans
  while IFS= read -r line; do
    line=${line#"${line%%[![:space:]]*}"}
    case $line in
      args:*) read -r -a args <<<"${line#args:}" ;;
    esac
  done <"$file"
  echo "=== $(basename "$file")  [args: ${args[*]}]"
  coproc Q { exec "$QEMU" -machine q35 -accel tcg -qtest stdio \
      -qtest-log /dev/null -display none -nodefaults -bios "$tmp/hlt.bin" \
      "${args[@]}" 2>"$tmp/stderr"; }
  local qpid=$Q_PID
  while IFS= read -r line; do
    no=$((no + 1))
    line=${line#"${line%%[![:space:]]*}"}
    line=${line%"${line##*[![:space:]]}"}
    case $line in ''|'#'*|args:*|peers:*|qemu-*:*|viommu:*) continue ;; esac
    if [ "$line" = wait-dma ]; then sleep 0.3; echo "$no: wait-dma"; continue; fi
    echo "$line" >&"${Q[1]}"
    while true; do
      if ! IFS= read -r -t 10 ans <&"${Q[0]}"; then
        echo "$no: $line  ->  <no answer: QEMU gone>"; break 2
      fi
      case $ans in
        IRQ*) echo "      [$ans]" ;;
        *) echo "$no: $line  ->  $ans"; break ;;
      esac
    done
  done <"$file"
  kill "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null
  if [ $show_err = 1 ] && [ -s "$tmp/stderr" ]; then
    echo "--- QEMU stderr"; cat "$tmp/stderr"
  fi
}

for f in "${files[@]}"; do play "$f"; done
