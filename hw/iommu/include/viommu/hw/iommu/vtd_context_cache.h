// viommu/hw/iommu/vtd_context_cache.h — the VT-d context cache: the legacy
// context entry last read for each requester (bus, devfn), validated by a
// generation number as in QEMU 7.2 (VTDContextCacheEntry +
// IntelIOMMUState::context_cache_gen).
//
//   ContextCache cc;
//   std::optional<CachedContext> ce = cc.Lookup(bus, devfn);
//   if (!ce) {
//     uint64_t epoch = cc.epoch();            // BEFORE reading guest memory
//     CachedContext read = {lo, hi};          // from the context table
//     cc.InsertIfCurrent(epoch, bus, devfn, read);
//   }
//   cc.InvalidateAll();                       // CCMD / QI global or domain
//   cc.InvalidateDevice(sid, fm);             // device-selective
//
// Semantics (QEMU 7.2):
// - An entry is valid while its generation equals the global generation.
//   The global generation starts at 1; entries start at 0 (invalid).
// - InvalidateAll (global context invalidation) increments the generation;
//   when it reaches 0xffffffff every entry is reset to 0 and the global
//   generation set to 1 (vtd_context_global_invalidate /
//   vtd_reset_context_cache_locked).
// - Domain-selective context invalidation is treated as global by QEMU:
//   callers use InvalidateAll for it (no InvalidateDomain here).
// - InvalidateDevice(source_id, fm): entries on source_id's bus whose devfn
//   equals source_id's devfn ignoring devfn bits 2 (fm 1), 2:1 (fm 2) or 2:0
//   (fm 3); fm 0 ignores none. Only fm & 3 is used.
//
// Differences from QEMU: QEMU keeps one entry per device address space (a
// PCIBus pointer + devfn) and matches device invalidations against the
// bus's current number; this cache is keyed by (bus number, devfn), so a
// guest that renumbers a bridge without invalidating re-reads the context
// entry where QEMU would keep using the old one.
//
// Stale inserts: as for the IOTLB (vtd_iotlb.h), read epoch() before reading
// guest memory and insert with InsertIfCurrent(); every invalidation
// advances the epoch.
//
// Scalable mode: the engine keeps a scalable-mode context entry here too
// (its first two quadwords, tagged; vtd_scalable.h, SmCachedContext), as
// QEMU 7.2 keeps it in the same per-device slot; the same invalidations
// drop it.
//
// Storage: 256 lazily allocated per-bus arrays of 256 slots (at most 65536
// entries, 24 bytes each). Lookup is O(1); InvalidateDevice O(256);
// InvalidateAll O(1) except at generation wraparound (O(allocated slots)).
//
// Threading: every method is safe from any thread (Lookup on DMA threads,
// invalidations from the control context). Writers and Lookup serialise on
// one CacheLock spinlock; writers also bracket every change with a seqlock
// counter, so Peek (the DMA fast path) takes no lock and executes no locked
// instruction.
#ifndef VIOMMU_HW_IOMMU_VTD_CONTEXT_CACHE_H_
#define VIOMMU_HW_IOMMU_VTD_CONTEXT_CACHE_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "viommu/hw/iommu/vtd_cache_lock.h"
#include "viommu/util/tsan.h"

namespace viommu::vtd {

// A legacy-mode context entry as read from the context table.
struct CachedContext {
  uint64_t lo = 0;
  uint64_t hi = 0;
  friend bool operator==(const CachedContext&, const CachedContext&) = default;
};

struct ContextCacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t stale_inserts = 0;  // InsertIfCurrent calls dropped
  friend bool operator==(const ContextCacheStats&,
                         const ContextCacheStats&) = default;
};

class ContextCache {
 public:
  static constexpr uint32_t kGenerationMax = 0xffffffff;  // QEMU's GEN_MAX

  ContextCache();
  ~ContextCache();
  ContextCache(const ContextCache&) = delete;
  ContextCache& operator=(const ContextCache&) = delete;

  // The cached context entry of (bus, devfn), if valid. Counts hit/miss.
  std::optional<CachedContext> Lookup(uint8_t bus, uint8_t devfn)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Lookup without the lock and without counting: the entry when it is
  // valid and no writer ran meanwhile; nullopt otherwise (a miss, or a
  // writer in progress: call Lookup then). Inline, lock-free.
  inline std::optional<CachedContext> Peek(uint8_t bus, uint8_t devfn) const;
  // Caches `ctx` for (bus, devfn) at the current generation.
  void Insert(uint8_t bus, uint8_t devfn, const CachedContext& ctx)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Advances on every invalidation.
  uint64_t epoch() const { return epoch_.load(std::memory_order_seq_cst); }
  // Insert, unless an invalidation ran since `epoch` was read; returns
  // whether the entry was inserted.
  bool InsertIfCurrent(uint64_t epoch, uint8_t bus, uint8_t devfn,
                       const CachedContext& ctx) ABSL_LOCKS_EXCLUDED(mu_);

  // Global (and, as QEMU, domain-selective) invalidation.
  void InvalidateAll() ABSL_LOCKS_EXCLUDED(mu_);
  // Device-selective invalidation with function mask `fm` (see above).
  void InvalidateDevice(uint16_t source_id, uint8_t fm)
      ABSL_LOCKS_EXCLUDED(mu_);

  uint32_t generation() const ABSL_LOCKS_EXCLUDED(mu_);
  // Number of valid entries. O(allocated slots): for tests.
  size_t CountValidForTesting() const ABSL_LOCKS_EXCLUDED(mu_);
  ContextCacheStats stats() const ABSL_LOCKS_EXCLUDED(mu_);
  // Sets the global generation, e.g. to kGenerationMax - 1 to test the
  // wraparound. REQUIRES: gen >= 1.
  void SetGenerationForTesting(uint32_t gen) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Atomic words so Peek never races with writers; written under mu_.
  struct Slot {
    std::atomic<uint64_t> lo{0};
    std::atomic<uint64_t> hi{0};
    std::atomic<uint32_t> gen{0};  // 0: never valid
  };
  using BusSlots = std::array<Slot, 256>;

  // The seqlock's fences (as Iotlb's, vtd_iotlb.h: ThreadSanitizer does
  // not model fences, so there a read-modify-write of seq_ orders).
  void SeqlockReadFence() const {
#ifdef VIOMMU_TSAN
    (void)seq_.fetch_add(0, std::memory_order_acq_rel);
#else
    std::atomic_thread_fence(std::memory_order_acquire);
#endif
  }
  void BeginWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void InsertLocked(uint8_t bus, uint8_t devfn, const CachedContext& ctx)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable CacheLock mu_;
  // Odd while a writer changes slots or gen_ (seqlock).
  mutable std::atomic<uint64_t> seq_{0};
  // Allocated under mu_ on first insert, freed by the destructor; read
  // lock-free by Peek.
  std::array<std::atomic<BusSlots*>, 256> buses_ = {};
  std::atomic<uint32_t> gen_{1};  // written under mu_
  ContextCacheStats stats_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> epoch_{0};  // written under mu_
};

inline std::optional<CachedContext> ContextCache::Peek(uint8_t bus,
                                                       uint8_t devfn) const {
  const uint64_t s1 = seq_.load(std::memory_order_acquire);
  if (s1 & 1) return std::nullopt;
  const BusSlots* slots = buses_[bus].load(std::memory_order_acquire);
  if (slots == nullptr) return std::nullopt;
  const Slot& s = (*slots)[devfn];
  const CachedContext ctx{.lo = s.lo.load(std::memory_order_relaxed),
                          .hi = s.hi.load(std::memory_order_relaxed)};
  const bool valid = s.gen.load(std::memory_order_relaxed) ==
                     gen_.load(std::memory_order_relaxed);
  SeqlockReadFence();
  if (seq_.load(std::memory_order_relaxed) != s1 || !valid) {
    return std::nullopt;
  }
  return ctx;
}

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_CONTEXT_CACHE_H_
