// viommu/hw/pci/host_iommu_device.h — what a vIOMMU learns about the host
// IOMMU behind a passthrough PCI function (QEMU's HostIOMMUDevice role):
// the host address width, the page sizes and the valid IOVA ranges.
//
//   HostIommuDevice hiod{.name = "vfio-pci 'nic0' (host 0000:01:00.0)",
//                        .aw_bits = 48, .page_size_mask = 0x40201000,
//                        .iova_ranges = {{0, 0xfedfffff}, ...}};
//   VIOMMU_RETURN_IF_ERROR(bus.SetIommuDevice(devfn, hiod));  // VT-d checks
//
// hw/ consumes it (PciBus hands it to the IOMMU's hook); system/ fills it
// from the VFIO container (vfio/ and hw/ never see each other,
// ARCHITECTURE.md §1). Thread-safety: a value; copy freely.
#ifndef VIOMMU_HW_PCI_HOST_IOMMU_DEVICE_H_
#define VIOMMU_HW_PCI_HOST_IOMMU_DEVICE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "viommu/util/range.h"

namespace viommu::hw::pci {

struct HostIommuDevice {
  // Names the device in error messages (driver, id and host address).
  std::string name;
  // Bit count of the highest IOVA the host IOMMU translates (39, 48, ...).
  uint8_t aw_bits = 64;
  // Supported host IOMMU page sizes (bit n set: 2^n bytes); 0 unknown.
  uint64_t page_size_mask = 0;
  // Valid IOVA ranges, inclusive, sorted, disjoint; empty: unknown.
  std::vector<Range> iova_ranges;
};

}  // namespace viommu::hw::pci

#endif  // VIOMMU_HW_PCI_HOST_IOMMU_DEVICE_H_
