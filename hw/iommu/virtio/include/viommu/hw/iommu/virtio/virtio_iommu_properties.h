// viommu/hw/iommu/virtio/virtio_iommu_properties.h — the -device
// virtio-iommu-pci properties, with the defaults and error messages of
// `qemu-system-x86_64 -device virtio-iommu-pci,help` (QEMU 7.2).
//
//   VIOMMU_ASSIGN_OR_RETURN(Properties p,
//       ParseProperties({{"boot-bypass", "off"}, {"addr", "03.0"}}));
//   if (!p.boot_bypass) ...
//
// `addr` is accepted and left to the machine (it places the PCI function);
// `id` and `driver` are not properties here.
#ifndef VIOMMU_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_PROPERTIES_H_
#define VIOMMU_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_PROPERTIES_H_

#include <string>

#include "absl/container/btree_map.h"
#include "absl/status/statusor.h"

namespace viommu::virtio_iommu {

inline constexpr char kDriverName[] = "virtio-iommu-pci";

struct Properties {
  // `boot-bypass` (default on): the config `bypass` after system reset.
  bool boot_bypass = true;
  // virtio-pci transport features (defaults on, as QEMU 7.2).
  bool indirect_desc = true;
  bool event_idx = true;
  bool queue_reset = true;
};

// Parses -device virtio-iommu-pci properties. The other properties QEMU
// lists (aer, ats, any_layout, disable-legacy, ...) are accepted with their
// default value only: this model has no other behaviour for them.
// Errors (kInvalidArgument, QEMU's wording):
//  * "Property 'virtio-iommu-pci.KEY' not found" for an unknown key;
//  * "Parameter 'KEY' expects 'on' or 'off'" for a bad boolean;
//  * "array size property len-reserved-regions may not be set more than
//    once" (q35 sets the MSI window itself, so the user cannot);
//  * "Property 'virtio-iommu-pci.KEY' is not supported with value 'V' by
//    this model" for a known property set to another value than its
//    default that the model does not implement (viommu only).
[[nodiscard]] absl::StatusOr<Properties> ParseProperties(
    const absl::btree_map<std::string, std::string>& props);

}  // namespace viommu::virtio_iommu

#endif  // VIOMMU_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_PROPERTIES_H_
