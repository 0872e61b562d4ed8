// viommu/hw/iommu/vtd_cache_lock.h — the lock that guards the VT-d
// translation caches (Iotlb, ContextCache): util's SpinLock, annotated for
// clang's -Wthread-safety.
//
//   CacheLock mu;
//   int x ABSL_GUARDED_BY(mu);
//   { CacheLockGuard g(mu); ++x; }
//
// Why a spinlock (util/spin_lock.h has the figures): the IOTLB uses it only
// to serialise writers (its lookups are lock-free, see vtd_iotlb.h); the
// context cache also takes it on lookups. Critical sections are short and
// never block, with one exception: an O(entries) invalidation scan (a few
// microseconds at 1024 entries).
//
// Threading: any thread. Not recursive. Never hold it while calling out.
#ifndef VIOMMU_HW_IOMMU_VTD_CACHE_LOCK_H_
#define VIOMMU_HW_IOMMU_VTD_CACHE_LOCK_H_

#include "viommu/util/spin_lock.h"

namespace viommu::vtd {

using CacheLock = ::viommu::SpinLock;
using CacheLockGuard = ::viommu::SpinLockGuard;

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_CACHE_LOCK_H_
