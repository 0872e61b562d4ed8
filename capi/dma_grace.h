// capi/dma_grace.h — a grace period for the C API's DMA calls, so that the
// VMM may unmap a RAM region's memory once viommu_region_del (or the
// commit) returns.
//
// Every DMA call (viommu_dma_rw, viommu_dma_map_host) runs inside a
// DmaSection: the calling thread's slot counts odd while inside. The
// control thread publishes a memory map without the region, then
// Synchronize() reads every slot with a read-modify-write and waits for
// those that were odd to change: every DMA call that could have seen the
// old map has returned. A later one sees the new map: its entering
// read-modify-write on the slot comes after Synchronize's in the slot's
// modification order, so it synchronises with it (no fences, which
// ThreadSanitizer does not model). The data path pays one locked add and
// one store on a slot of its own (no shared cache line, no lock).
//
// A callback the library makes on a DMA thread (MMIO read/write, msi, log)
// runs in a DmaPause: the thread counts as outside for its duration, so a
// callback that waits for the VMM's lock, held by a control thread waiting
// in Synchronize, does not deadlock. After a pause the access translates
// its next piece afresh (AddressSpace re-reads the map per piece), so no
// pointer from before the pause is used.
//
// Private to capi/. Threading: Slot/SlotIfAny and the sections on any
// thread; Synchronize from the control thread (never inside a section).
#ifndef VIOMMU_CAPI_DMA_GRACE_H_
#define VIOMMU_CAPI_DMA_GRACE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "viommu/util/mutex.h"

namespace viommu::capi {

// One thread's state for one context. Padded to its own cache line.
struct alignas(64) DmaSlot {
  std::atomic<uint64_t> seq{0};  // odd: inside a section; written by owner
  int depth = 0;                 // nesting; owner thread only
};

namespace internal {
// The calling thread's last slot and the id of its DmaGrace: the fast
// path of Slot(). Trivially initialised initial-exec TLS, one load without
// a call, also inside libviommu.so.
inline constinit thread_local uint64_t tl_last_grace_id
    __attribute__((tls_model("initial-exec"))) = 0;
inline constinit thread_local DmaSlot* tl_last_slot
    __attribute__((tls_model("initial-exec"))) = nullptr;
}  // namespace internal

class DmaGrace {
 public:
  DmaGrace();
  DmaGrace(const DmaGrace&) = delete;
  DmaGrace& operator=(const DmaGrace&) = delete;
  ~DmaGrace();

  // The calling thread's slot, created on its first DMA call.
  DmaSlot* Slot() {
    return internal::tl_last_grace_id == id_ ? internal::tl_last_slot
                                             : SlotSlow();
  }
  // The calling thread's slot, or nullptr if it never made a DMA call.
  DmaSlot* SlotIfAny() const;
  // Returns once every section that began before the call has ended.
  // Yields while it waits (a section is one access: microseconds).
  void Synchronize();

 private:
  DmaSlot* SlotSlow();

  const uint64_t id_;  // unique per DmaGrace ever created (never reused)
  Mutex mu_;
  std::vector<std::unique_ptr<DmaSlot>> slots_ ABSL_GUARDED_BY(mu_);
};

// A DMA call's section.
class DmaSection {
 public:
  explicit DmaSection(DmaGrace* grace) : slot_(grace->Slot()) { Enter(slot_); }
  ~DmaSection() { Exit(slot_); }
  DmaSection(const DmaSection&) = delete;
  DmaSection& operator=(const DmaSection&) = delete;

  static void Enter(DmaSlot* s) {
    if (s->depth++ > 0) return;
    // Acquire: a Synchronize that saw the slot even happens before the
    // access's memory-map load.
    s->seq.fetch_add(1, std::memory_order_acq_rel);
  }
  static void Exit(DmaSlot* s) {
    if (--s->depth > 0) return;
    // Release: the access's RAM copies happen before Synchronize returns.
    s->seq.store(s->seq.load(std::memory_order_relaxed) + 1,
                 std::memory_order_release);
  }

 private:
  DmaSlot* const slot_;
};

// Pauses the calling thread's section, if any, for a callback.
class DmaPause {
 public:
  explicit DmaPause(const DmaGrace* grace)
      : slot_(grace != nullptr ? grace->SlotIfAny() : nullptr) {
    if (slot_ == nullptr || slot_->depth == 0) {
      slot_ = nullptr;
      return;
    }
    saved_depth_ = slot_->depth;
    slot_->depth = 1;
    DmaSection::Exit(slot_);
  }
  ~DmaPause() {
    if (slot_ == nullptr) return;
    DmaSection::Enter(slot_);
    slot_->depth = saved_depth_;
  }
  DmaPause(const DmaPause&) = delete;
  DmaPause& operator=(const DmaPause&) = delete;

 private:
  DmaSlot* slot_;
  int saved_depth_ = 0;
};

}  // namespace viommu::capi

#endif  // VIOMMU_CAPI_DMA_GRACE_H_
