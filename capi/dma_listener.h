// capi/dma_listener.h — viommu_dma_listener_add's listener: one endpoint's
// DMA space as map/unmap callbacks onto guest RAM. A MemoryListener on the
// endpoint's AddressSpace sees RAM sections (identity, or VT-d off: iova ==
// gpa) and IOMMU sections; for each IOMMU section it registers an
// IommuNotifier on the MAP and UNMAP chains and replays, as QEMU's VFIO
// listener does. Every reported mapping is remembered, so unmaps name only
// what was mapped and unregistration unmaps what is left.
//
// Private to capi/. Threading: control context only.
#ifndef VIOMMU_CAPI_DMA_LISTENER_H_
#define VIOMMU_CAPI_DMA_LISTENER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "viommu.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/iommu_notifier_chains.h"
#include "viommu/memory/memory_listener.h"
#include "viommu/util/range.h"

namespace viommu::capi {

class DmaListener final : public memory::MemoryListener {
 public:
  // `ep` is not owned and outlives this.
  DmaListener(viommu_ep* ep, const viommu_dma_listener& callbacks);
  ~DmaListener() override;

  // Asks every IOMMU region below the endpoint's DMA root whether it
  // accepts MAP/UNMAP notifiers (VT-d needs caching mode), then registers
  // and replays. Errors: the IOMMU model's refusal; nothing registered.
  [[nodiscard]] absl::Status Start();
  // Unregisters; unmap is called for everything still mapped.
  void Stop();

  // MemoryListener.
  void RegionAdd(const memory::MemoryRegionSection& s) override;
  void RegionDel(const memory::MemoryRegionSection& s) override;

 private:
  // One IOMMU section's notifier.
  class SectionNotifier final : public memory::IommuNotifier {
   public:
    SectionNotifier(DmaListener* owner, const memory::MemoryRegionSection& s)
        : owner_(owner),
          region_(s.mr),
          offset_in_region_(s.offset_within_region),
          offset_in_space_(s.offset_within_address_space) {}
    void Notify(const memory::IommuEvent& event) override;

    memory::IommuNotifierHandle handle;
    memory::MemoryRegion* region() const { return region_; }
    uint64_t offset_in_space() const { return offset_in_space_; }

   private:
    DmaListener* const owner_;
    memory::MemoryRegion* const region_;
    const uint64_t offset_in_region_;
    const uint64_t offset_in_space_;
  };

  // Reports [iova, iova + len) -> gpa in `target` (the system address
  // space), split where the RAM regions behind it change; pieces that are
  // not RAM are skipped.
  void MapGpa(uint64_t iova, uint64_t gpa, uint64_t len, uint32_t perm,
              memory::AddressSpace* target);
  // Reports one piece of a RAM region and remembers it.
  void MapPiece(uint64_t iova, uint64_t gpa, uint64_t len, uint32_t perm,
                const memory::MemoryRegion* mr, uint64_t offset_in_region);
  // Unmaps whatever reported mapping overlaps `range`.
  void UnmapRange(const Range& range);

  viommu_ep* const ep_;  // not owned
  const viommu_dma_listener cb_;
  memory::ListenerHandle handle_;
  std::vector<std::unique_ptr<SectionNotifier>> sections_;
  absl::btree_map<uint64_t, uint64_t> mapped_;  // iova -> last iova
};

}  // namespace viommu::capi

#endif  // VIOMMU_CAPI_DMA_LISTENER_H_
