// viommu/util/published_ptr.h — a shared_ptr slot that one writer replaces
// while readers on other threads use the object (the RCU-like publication
// of immutable snapshots such as FlatViews).
//
//   PublishedPtr<const FlatView> slot(initial);
//   {
//     PublishedPtr<const FlatView>::Pin v(slot);   // any thread, hot path
//     v->Lookup(addr);                             // valid until v dies
//   }
//   std::shared_ptr<const FlatView> owned = slot.Load();   // any thread
//   std::shared_ptr<const FlatView> old = slot.Exchange(next);
//
// A Pin is how the data path reads: it protects the object with a hazard
// pointer (util/hazard_pointer.h), so concurrent readers write nothing
// they share (no reference count, no lock) and scale across cores. Pins
// are scoped: destroy them in the reverse order of creation (they are
// neither copyable nor movable). Load returns an owning copy, for a reader
// that keeps the object beyond a scope (it takes a small spinlock and
// bumps the reference count). Exchange installs a new object; the old one
// lives as long as its last Pin or copy, exactly as if every reader held
// a shared_ptr.
//
// The owner is guarded by a tiny spinlock (util/spin_lock.h), checked by
// clang's -Wthread-safety: it replaces std::atomic<std::shared_ptr>, whose
// libstdc++ 12 implementation hides its lock bit from ThreadSanitizer.
//
// Threading: Pin, Load and Exchange are safe from any thread.
#ifndef VIOMMU_UTIL_PUBLISHED_PTR_H_
#define VIOMMU_UTIL_PUBLISHED_PTR_H_

#include <atomic>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "viommu/util/check.h"
#include "viommu/util/hazard_pointer.h"
#include "viommu/util/spin_lock.h"

namespace viommu {

template <typename T>
class PublishedPtr {
 public:
  PublishedPtr() = default;
  explicit PublishedPtr(std::shared_ptr<T> p)
      : raw_(p.get()), ptr_(std::move(p)) {}
  PublishedPtr(const PublishedPtr&) = delete;
  PublishedPtr& operator=(const PublishedPtr&) = delete;

  // The published object, protected while the Pin lives.
  class Pin {
   public:
    Pin() = default;
    explicit Pin(const PublishedPtr& from) { Reset(from); }
    ~Pin() { Release(); }
    Pin(const Pin&) = delete;
    Pin& operator=(const Pin&) = delete;

    // Protects `from`'s current object instead of the one held so far.
    void Reset(const PublishedPtr& from) {
      if (!claimed_) Claim();
      if (slot_ == nullptr) {  // nested deeper than the slots: a copy
        owned_ = from.Load();
        p_ = owned_.get();
        return;
      }
      T* p = from.raw_.load(std::memory_order_relaxed);
      for (;;) {
        slot_->store(p, std::memory_order_seq_cst);
        T* again = from.raw_.load(std::memory_order_seq_cst);
        if (again == p) break;
        p = again;
      }
      p_ = p;
    }

    T* get() const { return p_; }
    T* operator->() const { return p_; }
    T& operator*() const { return *p_; }

   private:
    void Claim() {
      claimed_ = true;
      hazard::ThreadRecord* r = hazard::ThisThread();
      if (r != nullptr && r->depth < hazard::kSlotsPerThread) {
        record_ = r;
        slot_ = &r->slots[r->depth++];
      }
    }
    void Release() {
      if (slot_ != nullptr) {
        VIOMMU_CHECK(slot_ == &record_->slots[record_->depth - 1],
                     "PublishedPtr::Pin released out of order");
        slot_->store(nullptr, std::memory_order_seq_cst);
        --record_->depth;
        hazard::ReaderCleared();
      }
    }

    bool claimed_ = false;
    hazard::ThreadRecord* record_ = nullptr;  // with slot_
    std::atomic<const void*>* slot_ = nullptr;
    T* p_ = nullptr;
    std::shared_ptr<T> owned_;  // only when no slot was free
  };

  std::shared_ptr<T> Load() const ABSL_LOCKS_EXCLUDED(mu_) {
    SpinLockGuard g(mu_);
    return ptr_;
  }

  // Installs `p` and returns the previous object for the caller to
  // release outside any lock — or nullptr when a Pin still protects it:
  // then its last reader releases it.
  std::shared_ptr<T> Exchange(std::shared_ptr<T> p) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      SpinLockGuard g(mu_);
      ptr_.swap(p);
      raw_.store(ptr_.get(), std::memory_order_seq_cst);
    }
    if (p != nullptr && hazard::Protected(p.get())) {
      hazard::Retire(std::move(p));
      return nullptr;
    }
    return p;
  }

 private:
  std::atomic<T*> raw_{nullptr};  // ptr_.get(), for Pins
  mutable SpinLock mu_;
  std::shared_ptr<T> ptr_ ABSL_GUARDED_BY(mu_);
};

}  // namespace viommu

#endif  // VIOMMU_UTIL_PUBLISHED_PTR_H_
