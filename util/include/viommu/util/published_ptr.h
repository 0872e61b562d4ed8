// viommu/util/published_ptr.h — a shared_ptr slot that one writer replaces
// while readers on other threads take copies (the RCU-like publication of
// immutable snapshots such as FlatViews).
//
//   PublishedPtr<const FlatView> slot(initial);
//   std::shared_ptr<const FlatView> v = slot.Load();     // any thread
//   std::shared_ptr<const FlatView> old = slot.Exchange(next);
//
// A tiny spinlock (util/spin_lock.h) guards the pointer copy (a few
// instructions: readers hold it only to bump the reference count); ptr_ is
// ABSL_GUARDED_BY it, checked by clang's -Wthread-safety. It replaces
// std::atomic<std::shared_ptr>, whose libstdc++ 12 implementation hides its
// lock bit from ThreadSanitizer, which then reports false races; acquire/
// release on an std::atomic<bool> is both cheap and visible to TSan.
//
// Threading: Load and Exchange are safe from any thread.
#ifndef VIOMMU_UTIL_PUBLISHED_PTR_H_
#define VIOMMU_UTIL_PUBLISHED_PTR_H_

#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "viommu/util/spin_lock.h"

namespace viommu {

template <typename T>
class PublishedPtr {
 public:
  PublishedPtr() = default;
  explicit PublishedPtr(std::shared_ptr<T> p) : ptr_(std::move(p)) {}
  PublishedPtr(const PublishedPtr&) = delete;
  PublishedPtr& operator=(const PublishedPtr&) = delete;

  std::shared_ptr<T> Load() const ABSL_LOCKS_EXCLUDED(mu_) {
    SpinLockGuard g(mu_);
    return ptr_;
  }

  // Installs `p` and returns the previous pointer (released by the caller,
  // outside the lock).
  std::shared_ptr<T> Exchange(std::shared_ptr<T> p) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      SpinLockGuard g(mu_);
      ptr_.swap(p);
    }
    return p;
  }

 private:
  mutable SpinLock mu_;
  std::shared_ptr<T> ptr_ ABSL_GUARDED_BY(mu_);
};

}  // namespace viommu

#endif  // VIOMMU_UTIL_PUBLISHED_PTR_H_
