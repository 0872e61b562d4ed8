// viommu/util/published_ptr.h — a shared_ptr slot that one writer replaces
// while readers on other threads take copies (the RCU-like publication of
// immutable snapshots such as FlatViews).
//
//   PublishedPtr<const FlatView> slot(initial);
//   std::shared_ptr<const FlatView> v = slot.Load();     // any thread
//   std::shared_ptr<const FlatView> old = slot.Exchange(next);
//
// A tiny spinlock guards the pointer copy (a few instructions: readers hold
// it only to bump the reference count). It replaces
// std::atomic<std::shared_ptr>, whose libstdc++ 12 implementation hides its
// lock bit from ThreadSanitizer, which then reports false races; acquire/
// release on an std::atomic<bool> is both cheap and visible to TSan.
//
// Threading: Load and Exchange are safe from any thread.
#ifndef VIOMMU_UTIL_PUBLISHED_PTR_H_
#define VIOMMU_UTIL_PUBLISHED_PTR_H_

#include <atomic>
#include <memory>
#include <utility>

namespace viommu {

template <typename T>
class PublishedPtr {
 public:
  PublishedPtr() = default;
  explicit PublishedPtr(std::shared_ptr<T> p) : ptr_(std::move(p)) {}
  PublishedPtr(const PublishedPtr&) = delete;
  PublishedPtr& operator=(const PublishedPtr&) = delete;

  std::shared_ptr<T> Load() const {
    Lock();
    std::shared_ptr<T> copy = ptr_;
    Unlock();
    return copy;
  }

  // Installs `p` and returns the previous pointer (released by the caller,
  // outside the lock).
  std::shared_ptr<T> Exchange(std::shared_ptr<T> p) {
    Lock();
    ptr_.swap(p);
    Unlock();
    return p;
  }

 private:
  void Lock() const {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      while (locked_.load(std::memory_order_relaxed)) {
      }
    }
  }
  void Unlock() const { locked_.store(false, std::memory_order_release); }

  mutable std::atomic<bool> locked_{false};
  std::shared_ptr<T> ptr_;
};

}  // namespace viommu

#endif  // VIOMMU_UTIL_PUBLISHED_PTR_H_
