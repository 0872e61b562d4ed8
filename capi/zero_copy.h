// capi/zero_copy.h — viommu_dma_map_host / viommu_dma_unmap_host: host
// pointers into guest RAM handed to a VMM's device for zero-copy DMA, and
// their revocation.
//
// HostMappings (one per context) holds the live mappings under a leaf
// mutex. A mapping is revoked — the context's dma_revoked callback, once —
// when the guest invalidates the translation it came from or the memory
// map under its IOVA changes (RevokeWatcher, one per endpoint), when its
// endpoint or the context is freed, or when viommu_region_del meets it
// (that removal then answers -EBUSY while it is still mapped).
//
// Revocation races a concurrent map by generation: the map reads its
// endpoint's generation before translating and inserts only if it is
// unchanged under the mutex; every revocation bumps it under the mutex
// after the change is visible to translations (VT-d invalidates its IOTLB
// before it notifies; memory-map changes are revoked at the listener's
// Commit, after the new view is published). A removed RAM region is
// marked retiring under the same mutex, so a map translated on an older
// view is refused (-EFAULT, unassigned) instead of pointing into it.
//
// Private to capi/.
#ifndef VIOMMU_CAPI_ZERO_COPY_H_
#define VIOMMU_CAPI_ZERO_COPY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "viommu.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/iommu_notifier_chains.h"
#include "viommu/memory/memory_listener.h"
#include "viommu/memory/memory_region.h"
#include "viommu/util/mutex.h"
#include "viommu/util/range.h"

namespace viommu::capi {

class HostMappings {
 public:
  explicit HostMappings(viommu_ctx* ctx) : ctx_(ctx) {}
  HostMappings(const HostMappings&) = delete;
  HostMappings& operator=(const HostMappings&) = delete;

  // Inserts a mapping unless `ep`'s generation moved past `gen` (-EAGAIN:
  // translate again) or `mr` is retiring (-EFAULT).
  int Insert(viommu_ep* ep, uint64_t gen, uint64_t iova, uint64_t len,
             uint8_t* host, const memory::MemoryRegion* mr, void* cookie);
  // Removes the mapping of `ep` at `host` of `len` bytes: 0 or -ENOENT.
  // Waits while another thread runs its dma_revoked callback.
  int Remove(viommu_ep* ep, void* host, uint64_t len);

  // Revokes `ep`'s mappings whose IOVA overlaps `range` (bumping its
  // generation first). Calls dma_revoked outside the mutex.
  void RevokeIova(viommu_ep* ep, const Range& range);
  // Revokes and forgets every mapping of `ep` (nullptr: of every endpoint).
  void DropEndpoint(viommu_ep* ep);
  // For viommu_region_del of RAM: revokes the mappings into `mr`; if none
  // is left after the callbacks (which may unmap), marks `mr` retiring and
  // returns 0, else the number still live.
  int Retire(const memory::MemoryRegion* mr);
  // After the grace period: `mr` is no longer shown by any DMA call.
  void Forget(const memory::MemoryRegion* mr);

 private:
  struct Mapping {
    viommu_ep* ep;
    void* cookie;
    uint64_t iova;
    uint64_t len;
    uint8_t* host;
    const memory::MemoryRegion* mr;
    bool revoked = false;
    bool revoking = false;        // a dma_revoked call is running
    std::thread::id revoker;      // its thread
  };
  struct Pending {
    uint64_t id;
    viommu_ep* ep;
    void* cookie;
  };

  // Marks matching mappings revoking (under mu_) and returns them.
  template <typename Pred>
  std::vector<Pending> Collect(Pred pred) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls dma_revoked for each, then marks them revoked.
  void Deliver(const std::vector<Pending>& todo) ABSL_LOCKS_EXCLUDED(mu_);

  viommu_ctx* const ctx_;
  Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, Mapping> live_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<const memory::MemoryRegion*> retiring_
      ABSL_GUARDED_BY(mu_);
};

// Watches one endpoint's DMA space for what invalidates a zero-copy
// mapping: UNMAP notifications of its IOMMU sections (an UNMAP-only
// notifier: VT-d sends them for every IOTLB and context invalidation, with
// or without caching mode) and sections leaving its memory map.
// Control context, but for the generation (any thread).
class RevokeWatcher final : public memory::MemoryListener {
 public:
  explicit RevokeWatcher(viommu_ep* ep) : ep_(ep) {}
  ~RevokeWatcher() override;
  void Start();
  void Stop();

  // Bumped (under HostMappings' mutex) by every revocation of the
  // endpoint; read by a map before it translates.
  std::atomic<uint64_t> generation{0};
  // False when an IOMMU section refused the notifier (VT-d with
  // snoop-control=on): mappings could not be revoked, so none is made.
  std::atomic<bool> revocable{true};

  void RegionAdd(const memory::MemoryRegionSection& s) override;
  void RegionDel(const memory::MemoryRegionSection& s) override;
  void Commit() override;

 private:
  class SectionNotifier final : public memory::IommuNotifier {
   public:
    SectionNotifier(RevokeWatcher* owner, const memory::MemoryRegionSection& s)
        : owner_(owner),
          region_(s.mr),
          offset_in_region_(s.offset_within_region),
          offset_in_space_(s.offset_within_address_space) {}
    void Notify(const memory::IommuEvent& event) override;
    memory::IommuNotifierHandle handle;
    const memory::MemoryRegion* region() const { return region_; }
    uint64_t offset_in_space() const { return offset_in_space_; }

   private:
    RevokeWatcher* const owner_;
    const memory::MemoryRegion* const region_;
    const uint64_t offset_in_region_;
    const uint64_t offset_in_space_;
  };

  viommu_ep* const ep_;
  memory::ListenerHandle handle_;
  std::vector<std::unique_ptr<SectionNotifier>> sections_;
  std::vector<Range> pending_;  // left the map; revoked at Commit
  bool stopped_ = false;
};

}  // namespace viommu::capi

#endif  // VIOMMU_CAPI_ZERO_COPY_H_
