// viommu/devcore/host_iommu_device.h — what a vIOMMU learns about the host
// IOMMU behind a passthrough PCI function (QEMU's HostIOMMUDevice role):
// the host address width, the page sizes, the valid IOVA ranges and a
// counter of host map failures. The one
// type for these facts: vfio/ produces it (VfioContainer::HostIommuInfo),
// hw/ consumes it (PciBus::SetIommuDevice hands it to the vIOMMU's hook,
// VtdEngine::SetHostIommuDevice checks it); system/ passes it from one to
// the other, naming the device. It lives here, below both, because vfio/
// and hw/ never see each other (docs/architecture.md).
//
//   absl::StatusOr<devcore::HostIommuDevice> h = vfio.HostIommuInfo(addr);
//   h->name = "vfio-pci 'nic0' (host 0000:01:00.0)";
//   VIOMMU_RETURN_IF_ERROR(bus.SetIommuDevice(devfn, *h));  // VT-d checks
//
// Thread-safety: a value; copy freely.
#ifndef VIOMMU_DEVCORE_HOST_IOMMU_DEVICE_H_
#define VIOMMU_DEVCORE_HOST_IOMMU_DEVICE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "viommu/util/range.h"

namespace viommu::devcore {

struct HostIommuDevice {
  // Names the device in error messages (driver, id and host address);
  // empty as the container reports it, set by whoever plugs the device.
  std::string name;
  // Bit count of the highest IOVA the host IOMMU translates (39, 48, ...).
  uint8_t aw_bits = 64;
  // Supported host IOMMU page sizes (bit n set: 2^n bytes); 0 unknown.
  uint64_t page_size_mask = 0;
  // Valid IOVA ranges, inclusive, sorted, disjoint; empty: unknown. As
  // they were when this value was made.
  std::vector<Range> iova_ranges;
  // The valid IOVA ranges now (they shrink when a device with a narrower
  // aperture joins the container: VFIO_IOVA_RANGES_CHANGED); a vIOMMU that
  // reports them later (virtio-iommu's PROBE and MAP checks) reads this.
  // Null: iova_ranges stay valid. Same REQUIREMENT as map_failures.
  std::function<const std::vector<Range>&()> current_iova_ranges;
  // How many MAP events of the guest IOMMU the host has failed to map so
  // far (monotonic; VfioContainer's stats().giommu_map_errors). A vIOMMU
  // that notifies synchronously reads it around its MAP events to learn
  // that the host refused one (virtio-iommu reports it in the request's
  // status). Null: not reported. REQUIRES: called only while the device
  // is set (the container outlives the set/unset pair).
  std::function<uint64_t()> map_failures;
};

}  // namespace viommu::devcore

#endif  // VIOMMU_DEVCORE_HOST_IOMMU_DEVICE_H_
