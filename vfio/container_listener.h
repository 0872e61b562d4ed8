// vfio/container_listener.h (private) — the MemoryListener a VfioContainer
// registers on its AddressSpace (QEMU's vfio_memory_listener), and the
// guest-IOMMU notifier it registers per IOMMU section (VFIOGuestIOMMU).
//
// Rules (docs/vfio-container.md, Sections; ARCHITECTURE.md §4):
//  * RAM section: host-page rounded, mapped (readonly section -> read-only
//    host mapping), pieces outside the valid IOVA ranges skipped.
//  * ram_device: mapped only when iova and size are aligned to the smallest
//    host IOMMU page; a map failure is a warning (counted, recorded).
//  * IOMMU section: one notifier on the region's MAP and UNMAP chains,
//    cropped to the section, then replay. MAP -> DmaMap of the translated
//    GPA's host address; UNMAP -> DmaUnmap. Their errors are reported
//    (counted), never fail the attach, as QEMU only reports them.
//  * Skipped and reported: non-RAM (MMIO), bit 63 set, page-offset mismatch.
//  * RegionDel: drop the notifier, unmap what the section mapped, forget
//    its skipped records.
//
// Lifetime: owned by the container (not owned `container_` outlives it);
// the container's ListenerHandle is reset before this object dies, which
// replays RegionDel and so drops every notifier. Control context only.
#ifndef VIOMMU_VFIO_CONTAINER_LISTENER_H_
#define VIOMMU_VFIO_CONTAINER_LISTENER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "viommu/memory/iommu_notifier_chains.h"
#include "viommu/memory/memory_listener.h"
#include "viommu/vfio/container.h"

namespace viommu::vfio {

class ContainerListener final : public memory::MemoryListener {
 public:
  explicit ContainerListener(VfioContainer* container);
  ~ContainerListener() override;

  void RegionAdd(const memory::MemoryRegionSection& section) override;
  void RegionDel(const memory::MemoryRegionSection& section) override;

  // Number of guest-IOMMU notifiers currently registered.
  size_t giommu_count() const { return giommus_.size(); }

 private:
  class GuestIommu;

  // Why the section is not mapped, or nullopt when it may be.
  std::optional<SkipReason> SkipFor(
      const memory::MemoryRegionSection& section) const;
  void AddIommuSection(const memory::MemoryRegionSection& section);
  void AddRamSection(const memory::MemoryRegionSection& section);

  VfioContainer* const container_;  // not owned; outlives this
  std::vector<std::unique_ptr<GuestIommu>> giommus_;
};

}  // namespace viommu::vfio

#endif  // VIOMMU_VFIO_CONTAINER_LISTENER_H_
