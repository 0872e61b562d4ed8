// viommu/hw/iommu/vtd_cache_lock.h — the small test-and-test-and-set
// spinlock that guards the VT-d translation caches (Iotlb, ContextCache).
//
//   CacheLock mu;
//   int x ABSL_GUARDED_BY(mu);
//   { CacheLockGuard g(mu); ++x; }
//
// Why not absl::Mutex: an uncontended absl::Mutex Lock+Unlock measured
// ~45 ns around a hash probe here, this lock ~5 ns (one xchg plus a plain
// release store; tests/bench/vtd_cache_bench.cc). The IOTLB uses it only to
// serialise writers (its lookups are lock-free, see vtd_iotlb.h); the
// context cache also takes it on lookups. Critical sections are short and
// never block, with one exception: an O(entries) invalidation scan (a few
// microseconds at 1024 entries). Waiters spin with a CPU pause hint and
// yield the thread after a bounded number of spins, so an oversubscribed
// host does not burn a whole time slice.
//
// Threading: any thread. Not recursive. Never hold it while calling out.
#ifndef VIOMMU_HW_IOMMU_VTD_CACHE_LOCK_H_
#define VIOMMU_HW_IOMMU_VTD_CACHE_LOCK_H_

#include <atomic>
#include <thread>

#include "absl/base/thread_annotations.h"

namespace viommu::vtd {

class ABSL_LOCKABLE CacheLock {
 public:
  CacheLock() = default;
  CacheLock(const CacheLock&) = delete;
  CacheLock& operator=(const CacheLock&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    // Fast path: one xchg when uncontended.
    while (locked_.exchange(true, std::memory_order_acquire)) {
      // Contended: spin on a plain load (no cache-line ping-pong) until the
      // holder releases, then retry the exchange.
      int spins = 0;
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < kSpinsBeforeYield) {
          Pause();
        } else {
          spins = 0;
          std::this_thread::yield();
        }
      }
    }
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    locked_.store(false, std::memory_order_release);
  }

 private:
  static constexpr int kSpinsBeforeYield = 128;
  static void Pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  std::atomic<bool> locked_{false};
};

// Scoped holder of a CacheLock.
class ABSL_SCOPED_LOCKABLE CacheLockGuard {
 public:
  explicit CacheLockGuard(CacheLock& mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
    mu_.Lock();
  }
  ~CacheLockGuard() ABSL_UNLOCK_FUNCTION() { mu_.Unlock(); }
  CacheLockGuard(const CacheLockGuard&) = delete;
  CacheLockGuard& operator=(const CacheLockGuard&) = delete;

 private:
  CacheLock& mu_;
};

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_CACHE_LOCK_H_
