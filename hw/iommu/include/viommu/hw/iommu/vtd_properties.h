// viommu/hw/iommu/vtd_properties.h — the intel-iommu -device properties
// viommu models, their parsing with QEMU 7.2's error texts, and the CAP /
// ECAP values QEMU 7.2 derives from them (vtd_init).
//
//   VIOMMU_ASSIGN_OR_RETURN(Properties p, ParseProperties(
//       {{"caching-mode", "on"}, {"aw-bits", "48"}}));
//   uint64_t cap = ComputeCap(p);   // 0x00d2008c222f0686
//
// Threading: pure functions.
#ifndef VIOMMU_HW_IOMMU_VTD_PROPERTIES_H_
#define VIOMMU_HW_IOMMU_VTD_PROPERTIES_H_

#include <cstdint>
#include <string>

#include "absl/container/btree_map.h"
#include "absl/status/statusor.h"

namespace viommu::vtd {

enum class OnOffAuto : uint8_t { kAuto, kOn, kOff };

struct Properties {
  int aw_bits = 39;                       // 7.2's default; 39 or 48
  bool caching_mode = false;              // CAP.CM
  bool dma_translation = true;            // SAGAW, GCMD.TE honoured
  bool pt = true;                         // ECAP.PT
  bool device_iotlb = false;              // ECAP.DT
  bool dma_drain = true;                  // CAP.DRD/DWD
  OnOffAuto intremap = OnOffAuto::kAuto;  // auto: on (TCG, no KVM irqchip)
  OnOffAuto eim = OnOffAuto::kAuto;       // only off/auto without KVM

  // Interrupt remapping as realized (intremap=auto resolves to on here).
  bool ir_supported() const { return intremap != OnOffAuto::kOff; }
};

// Parses -device intel-iommu properties (keys without "driver" / "id").
// Booleans take on/off/yes/no/true/false/y/n; aw-bits a base-0 integer.
// Errors: kInvalidArgument with QEMU's text, e.g.
//   "Property 'intel-iommu.foo' not found",
//   "Parameter 'caching-mode' expects 'on' or 'off'",
//   "Parameter 'intremap' does not accept value 'x'",
//   "Parameter 'aw-bits' expects integer" / "... expects uint8_t",
//   "Supported values for aw-bits are: 39, 48",
//   "eim=on cannot be selected without intremap=on",
//   "eim=on requires accel=kvm,kernel-irqchip=split".
[[nodiscard]] absl::StatusOr<Properties> ParseProperties(
    const absl::btree_map<std::string, std::string>& props);

// CAP and ECAP exactly as QEMU 7.2 advertises them for `p`.
uint64_t ComputeCap(const Properties& p);
uint64_t ComputeEcap(const Properties& p);

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_PROPERTIES_H_
