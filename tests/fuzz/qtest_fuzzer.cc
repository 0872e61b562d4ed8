// libFuzzer target: arbitrary qtest input against a fresh q35 machine with
// edu and dma-testdev (QEMU's generic_fuzz idea, through the real parser).
// Every input gets a new machine, so no state leaks between inputs. Any
// crash, sanitizer report or hang is a bug: the protocol must answer
// ERR/FAIL and keep going.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "viommu/system/qtest/qtest_session.h"
#include "viommu/system/vm.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using viommu::system::Vm;
  viommu::system::VmConfig config;
  config.ram_size = 16 << 20;
  config.devices.push_back({.head = "edu", .props = {{"addr", "04.0"}}});
  config.devices.push_back(
      {.head = "dma-testdev", .props = {{"addr", "05.0"}}});
  auto vm = Vm::Create(config);
  if (!vm.ok()) __builtin_trap();
  size_t out_bytes = 0;
  viommu::system::QtestSession session(
      vm->get(), [&](absl::string_view out) { out_bytes += out.size(); });
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(input, '\n')) {
    if (++lines > 256) break;  // bounded work per input
    session.HandleLine(line);
  }
  return 0;
}
