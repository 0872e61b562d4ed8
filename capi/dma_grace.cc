// The C API's DMA grace period (capi/dma_grace.h).
#include "capi/dma_grace.h"

#include <thread>

#include "absl/container/flat_hash_map.h"

namespace viommu::capi {
namespace {

std::atomic<uint64_t> g_next_grace_id{1};

// The calling thread's slots, by DmaGrace id. Ids are never reused, so an
// entry of a freed context is never looked up again (it only stays in the
// map).
struct ThreadSlots {
  absl::flat_hash_map<uint64_t, DmaSlot*> all;
};
thread_local ThreadSlots tl_slots;

}  // namespace

DmaGrace::DmaGrace()
    : id_(g_next_grace_id.fetch_add(1, std::memory_order_relaxed)) {}

DmaGrace::~DmaGrace() = default;

DmaSlot* DmaGrace::SlotSlow() {
  ThreadSlots& t = tl_slots;
  DmaSlot* s;
  auto it = t.all.find(id_);
  if (it != t.all.end()) {
    s = it->second;
  } else {
    auto owned = std::make_unique<DmaSlot>();
    s = owned.get();
    {
      MutexLock l(&mu_);
      slots_.push_back(std::move(owned));
    }
    t.all[id_] = s;
  }
  internal::tl_last_grace_id = id_;
  internal::tl_last_slot = s;
  return s;
}

DmaSlot* DmaGrace::SlotIfAny() const {
  if (internal::tl_last_grace_id == id_) return internal::tl_last_slot;
  const ThreadSlots& t = tl_slots;
  auto it = t.all.find(id_);
  return it != t.all.end() ? it->second : nullptr;
}

void DmaGrace::Synchronize() {
  std::vector<DmaSlot*> slots;
  {
    MutexLock l(&mu_);
    slots.reserve(slots_.size());
    for (const auto& s : slots_) slots.push_back(s.get());
  }
  for (DmaSlot* s : slots) {
    // A read-modify-write (adding 0): a section entering after it reads
    // its value and so sees the map the caller published before.
    const uint64_t seen = s->seq.fetch_add(0, std::memory_order_acq_rel);
    if ((seen & 1) == 0) continue;
    while (s->seq.load(std::memory_order_acquire) == seen) {
      std::this_thread::yield();
    }
  }
}

}  // namespace viommu::capi
