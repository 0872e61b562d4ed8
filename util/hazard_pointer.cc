#include "viommu/util/hazard_pointer.h"

#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "viommu/util/mutex.h"

namespace viommu::hazard {
namespace internal {

std::atomic<bool> g_pending{false};

namespace {

// Every record ever created, newest first. Records are never freed: a
// thread that exits returns its record (all slots clear) for reuse.
std::atomic<ThreadRecord*> g_records{nullptr};

struct Retired {
  Mutex mu;
  std::vector<std::shared_ptr<const void>> objects ABSL_GUARDED_BY(mu);
};
Retired& RetiredList() {
  static Retired* list = new Retired;  // never destroyed: used at exit
  return *list;
}

// Gives the record back when its thread exits; after that the thread
// reads through shared_ptr copies (ThisThread returns nullptr).
thread_local bool tls_exited = false;
struct RecordReturner {
  ~RecordReturner() {
    ThreadRecord* r = std::exchange(tls_record, nullptr);
    tls_exited = true;
    if (r != nullptr) r->in_use.store(false, std::memory_order_release);
  }
};
thread_local RecordReturner tls_returner;

}  // namespace

ThreadRecord* AcquireRecord() {
  if (tls_exited) return nullptr;
  ThreadRecord* r = g_records.load(std::memory_order_acquire);
  for (; r != nullptr; r = r->next) {
    bool free = false;
    if (!r->in_use.load(std::memory_order_relaxed) &&
        r->in_use.compare_exchange_strong(free, true,
                                          std::memory_order_acquire)) {
      break;
    }
  }
  if (r == nullptr) {
    r = new ThreadRecord;
    r->in_use.store(true, std::memory_order_relaxed);
    ThreadRecord* head = g_records.load(std::memory_order_relaxed);
    do {
      r->next = head;
    } while (!g_records.compare_exchange_weak(
        head, r, std::memory_order_release, std::memory_order_relaxed));
  }
  (void)&tls_returner;  // registers the exit hook of this thread
  tls_record = r;
  return r;
}

void Reclaim() {
  Retired& list = RetiredList();
  std::vector<std::shared_ptr<const void>> dead;
  {
    MutexLock l(&list.mu);
    auto& objects = list.objects;
    for (size_t i = 0; i < objects.size();) {
      if (Protected(objects[i].get())) {
        ++i;
        continue;
      }
      dead.push_back(std::move(objects[i]));
      objects[i] = std::move(objects.back());
      objects.pop_back();
    }
    if (objects.empty()) g_pending.store(false, std::memory_order_seq_cst);
  }
  // `dead` drops the references here, outside the lock: destructors may
  // read through other published pointers.
}

}  // namespace internal

bool Protected(const void* p) {
  for (const ThreadRecord* r =
           internal::g_records.load(std::memory_order_acquire);
       r != nullptr; r = r->next) {
    for (const auto& slot : r->slots) {
      if (slot.load(std::memory_order_seq_cst) == p) return true;
    }
  }
  return false;
}

void Retire(std::shared_ptr<const void> owner) {
  if (owner == nullptr) return;
  internal::Retired& list = internal::RetiredList();
  {
    MutexLock l(&list.mu);
    list.objects.push_back(std::move(owner));
    internal::g_pending.store(true, std::memory_order_seq_cst);
  }
  // A reader may have cleared its slot after the caller's scan and before
  // `pending` was set: look again.
  internal::Reclaim();
}

size_t RetiredCountForTesting() {
  internal::Retired& list = internal::RetiredList();
  MutexLock l(&list.mu);
  return list.objects.size();
}

}  // namespace viommu::hazard
