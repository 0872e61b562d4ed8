// The vtd fuzz target's machines: q35 with intel-iommu (properties from
// the input's first byte), edu at 04.0 and dma-testdev at 05.0; one per
// distinct property set, kept for the process and reset between inputs
// (machine_reuse.h).
#ifndef VIOMMU_TESTS_FUZZ_VTD_FUZZ_MACHINE_H_
#define VIOMMU_TESTS_FUZZ_VTD_FUZZ_MACHINE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "tests/fuzz/fuzz_trace.h"
#include "tests/fuzz/machine_reuse.h"
#include "viommu/hw/i386/q35_machine.h"

namespace viommu::vtd::fuzz {

// The intel-iommu properties byte 0 of an input selects (vtd_fuzzer.cc).
inline absl::btree_map<std::string, std::string> IommuProperties(uint8_t cfg) {
  absl::btree_map<std::string, std::string> props;
  props["caching-mode"] = (cfg & 1) ? "on" : "off";
  props["aw-bits"] = (cfg & 2) ? "48" : "39";
  if ((cfg & 0xc) == 0xc) props["dma-translation"] = "off";
  if (cfg & 0x10) props["pt"] = "off";
  if (cfg & 0x20) props["device-iotlb"] = "on";
  if (cfg & 0x40) props["x-scalable-mode"] = "on";
  // 7.2 refuses x-pasid-mode with device-iotlb.
  if ((cfg & 0xe0) == 0xc0) props["x-pasid-mode"] = "on";
  return props;
}

// The machine for `props`: created on first use (or for every input in
// fresh mode), otherwise reset for reuse. Traps when it cannot be built.
inline hw::Q35Machine* AcquireMachine(
    const absl::btree_map<std::string, std::string>& props) {
  static absl::flat_hash_map<std::string, std::unique_ptr<hw::Q35Machine>>
      machines;
  std::string key;
  for (const auto& [k, v] : props) key += k + "=" + v + ",";
  std::unique_ptr<hw::Q35Machine>& m = machines[key];
  if (m != nullptr && ::viommu::fuzz::Mode().fresh) m.reset();
  if (m == nullptr) {
    auto created = hw::Q35Machine::Create({.ram_size = 16 << 20});
    if (!created.ok()) __builtin_trap();
    m = *std::move(created);
    if (!m->AddDevice({.driver = "intel-iommu", .props = props}).ok() ||
        !m->AddDevice({.driver = "edu", .props = {{"addr", "04.0"}}}).ok() ||
        !m->AddDevice({.driver = "dma-testdev", .props = {{"addr", "05.0"}}})
             .ok()) {
      __builtin_trap();
    }
  } else {
    ::viommu::fuzz::ResetForReuse(*m);
  }
  return m.get();
}

}  // namespace viommu::vtd::fuzz

#endif  // VIOMMU_TESTS_FUZZ_VTD_FUZZ_MACHINE_H_
