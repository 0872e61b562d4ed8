// viommu/util/hazard_pointer.h — hazard pointers: how a reader on any
// thread uses an object it loaded from a PublishedPtr (util/published_ptr.h)
// without writing a cache line any other thread writes, and how a writer
// that unpublishes the object knows when it may be dropped.
//
// Each thread owns a ThreadRecord of kSlotsPerThread slots, used as a
// stack (nested accesses take the next slot). A reader stores the pointer
// it loaded in its slot, then loads the published pointer again: if it is
// unchanged, the object cannot be dropped until the slot is cleared. A
// writer that replaced the pointer scans every slot (Protected); if none
// holds the old object, the writer drops its reference at once, else it
// hands the reference to the domain (Retire), and the reader that clears
// the last slot holding it drops it (ReaderCleared -> Reclaim). So an
// unpublished object lives exactly as long as its last reader, as with a
// shared_ptr copy per access, but readers never write a shared reference
// count or lock.
//
// Why it is correct: slot stores, the writer's scan, the pending flag and
// the published pointer are all seq_cst, so in their single total order
// either the reader's re-load sees the new pointer (and retries), or the
// writer's scan sees the slot; and on release either the writer's scan
// sees the cleared slot, or the reader sees `pending` set and reclaims.
// ThreadSanitizer models these atomics (no fences are used).
//
// Users: PublishedPtr only. Threading: every function on any thread.
#ifndef VIOMMU_UTIL_HAZARD_POINTER_H_
#define VIOMMU_UTIL_HAZARD_POINTER_H_

#include <atomic>
#include <memory>

namespace viommu::hazard {

// Nesting depth served by slots; deeper readers fall back to a shared_ptr
// copy (PublishedPtr::Pin does that).
inline constexpr int kSlotsPerThread = 8;

struct alignas(64) ThreadRecord {
  std::atomic<const void*> slots[kSlotsPerThread] = {};
  int depth = 0;  // slots in use; owner thread only
  std::atomic<bool> in_use{false};
  ThreadRecord* next = nullptr;  // immutable once the record is listed
};

namespace internal {
// The calling thread's record, once it has one (initial-exec TLS: one
// load, no call, also inside libviommu.so).
inline constinit thread_local ThreadRecord* tls_record
    __attribute__((tls_model("initial-exec"))) = nullptr;
extern std::atomic<bool> g_pending;  // some retired object awaits readers
ThreadRecord* AcquireRecord();
void Reclaim();
}  // namespace internal

// The calling thread's record, or nullptr while the thread is exiting.
inline ThreadRecord* ThisThread() {
  ThreadRecord* r = internal::tls_record;
  return r != nullptr ? r : internal::AcquireRecord();
}

// True if some thread's slot holds `p`.
bool Protected(const void* p);

// Keeps `owner` until no slot holds owner.get(). Call after unpublishing.
void Retire(std::shared_ptr<const void> owner);

// Called by a reader right after it cleared a slot.
inline void ReaderCleared() {
  if (internal::g_pending.load(std::memory_order_seq_cst)) {
    internal::Reclaim();
  }
}

// Retired objects not yet dropped (tests).
size_t RetiredCountForTesting();

}  // namespace viommu::hazard

#endif  // VIOMMU_UTIL_HAZARD_POINTER_H_
