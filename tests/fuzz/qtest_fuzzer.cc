// libFuzzer target: arbitrary qtest input against a q35 machine with edu
// and dma-testdev (QEMU's generic_fuzz idea, through the real parser). Any
// crash, sanitizer report or hang is a bug: the protocol must answer
// ERR/FAIL and keep going.
//
// One machine per process, fully reset between inputs (machine_reuse.h:
// system_reset, RAM, clock, IRQ interception); a new qtest session per
// input. The replay test proves an input's trace (every byte qtest
// answers or emits, and guest RAM at the end) does not depend on the
// inputs before it (fuzz_trace.h).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "tests/fuzz/fuzz_trace.h"
#include "tests/fuzz/machine_reuse.h"
#include "viommu/system/qtest/qtest_session.h"
#include "viommu/system/vm.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using viommu::system::Vm;
  static std::unique_ptr<Vm> vm;
  if (vm != nullptr && viommu::fuzz::Mode().fresh) vm.reset();
  if (vm == nullptr) {
    viommu::system::VmConfig config;
    config.ram_size = 16 << 20;
    config.devices.push_back({.head = "edu", .props = {{"addr", "04.0"}}});
    config.devices.push_back(
        {.head = "dma-testdev", .props = {{"addr", "05.0"}}});
    auto created = Vm::Create(config);
    if (!created.ok()) __builtin_trap();
    vm = *std::move(created);
  } else {
    viommu::fuzz::ResetForReuse(vm->machine());
  }
  const bool tracing = viommu::fuzz::Mode().tracing;
  viommu::fuzz::TraceHash& trace = viommu::fuzz::Trace();
  trace.Clear();
  size_t out_bytes = 0;
  // Bounded work per input: at most 1 MiB per read/write/memset (a
  // larger one is answered ERR, which the protocol tests cover). The
  // server's defaults allow gigabytes, which a 16 MiB machine turns into
  // millions of unassigned-memory accesses: a 249 MB `write` took over 10 s
  // under ASan in the campaign (timeout, not a bug; regression input
  // corpus/qtest/timeout-large-write).
  viommu::system::QtestSession session(
      vm.get(),
      [&](absl::string_view out) {
        out_bytes += out.size();
        if (tracing) trace.Add(out.data(), out.size());
      },
      {.max_read_bytes = 1 << 20, .max_fill_bytes = 1 << 20});
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(input, '\n')) {
    if (++lines > 256) break;  // bounded work per input
    session.HandleLine(line);  // answers and IRQ lines go through emit
  }
  if (tracing) {
    viommu::hw::Q35Machine& m = vm->machine();
    static uint8_t page[4096];
    for (uint64_t gpa = 0; gpa < m.ram_size(); gpa += sizeof page) {
      (void)m.system_as().Read(gpa, page, sizeof page);
      trace.Add(page, sizeof page);
    }
  }
  return 0;
}

VIOMMU_FUZZ_TRACE_HOOKS()
