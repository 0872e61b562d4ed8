// The VT-d context cache (see vtd_context_cache.h).
#include "viommu/hw/iommu/vtd_context_cache.h"

#include "viommu/util/check.h"

namespace viommu::vtd {

ContextCache::ContextCache() = default;

ContextCache::~ContextCache() {
  for (std::atomic<BusSlots*>& slots : buses_) {
    delete slots.load(std::memory_order_relaxed);
  }
}

std::optional<CachedContext> ContextCache::Lookup(uint8_t bus, uint8_t devfn) {
  CacheLockGuard g(mu_);
  const BusSlots* slots = buses_[bus].load(std::memory_order_relaxed);
  if (slots != nullptr) {
    const Slot& s = (*slots)[devfn];
    if (s.gen.load(std::memory_order_relaxed) ==
        gen_.load(std::memory_order_relaxed)) {
      ++stats_.hits;
      return CachedContext{.lo = s.lo.load(std::memory_order_relaxed),
                           .hi = s.hi.load(std::memory_order_relaxed)};
    }
  }
  ++stats_.misses;
  return std::nullopt;
}

void ContextCache::Insert(uint8_t bus, uint8_t devfn,
                          const CachedContext& ctx) {
  CacheLockGuard g(mu_);
  InsertLocked(bus, devfn, ctx);
}

bool ContextCache::InsertIfCurrent(uint64_t epoch, uint8_t bus, uint8_t devfn,
                                   const CachedContext& ctx) {
  CacheLockGuard g(mu_);
  if (epoch_.load(std::memory_order_relaxed) != epoch) {
    ++stats_.stale_inserts;
    return false;
  }
  InsertLocked(bus, devfn, ctx);
  return true;
}

void ContextCache::BeginWriteLocked() {
  seq_.store(seq_.load(std::memory_order_relaxed) + 1,
             std::memory_order_relaxed);
#ifdef VIOMMU_TSAN
  (void)seq_.fetch_add(0, std::memory_order_acq_rel);
#else
  std::atomic_thread_fence(std::memory_order_release);
#endif
}

void ContextCache::EndWriteLocked() {
  seq_.store(seq_.load(std::memory_order_relaxed) + 1,
             std::memory_order_release);
}

void ContextCache::InsertLocked(uint8_t bus, uint8_t devfn,
                                const CachedContext& ctx) {
  BusSlots* slots = buses_[bus].load(std::memory_order_relaxed);
  if (slots == nullptr) {
    // A rare 6 KiB allocation under the spinlock (first device on a bus).
    slots = new BusSlots();
    buses_[bus].store(slots, std::memory_order_release);
  }
  Slot& s = (*slots)[devfn];
  BeginWriteLocked();
  s.lo.store(ctx.lo, std::memory_order_relaxed);
  s.hi.store(ctx.hi, std::memory_order_relaxed);
  s.gen.store(gen_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  EndWriteLocked();
}

void ContextCache::InvalidateAll() {
  CacheLockGuard g(mu_);
  epoch_.fetch_add(1, std::memory_order_relaxed);
  BeginWriteLocked();
  uint32_t gen = gen_.load(std::memory_order_relaxed) + 1;
  if (gen == kGenerationMax) {
    for (std::atomic<BusSlots*>& slots : buses_) {
      BusSlots* b = slots.load(std::memory_order_relaxed);
      if (b == nullptr) continue;
      for (Slot& s : *b) s.gen.store(0, std::memory_order_relaxed);
    }
    gen = 1;
  }
  gen_.store(gen, std::memory_order_relaxed);
  EndWriteLocked();
}

void ContextCache::InvalidateDevice(uint16_t source_id, uint8_t fm) {
  // Devfn bits the function mask ignores: none, bit 2, bits 2:1, bits 2:0.
  static constexpr uint8_t kIgnored[4] = {0, 4, 6, 7};
  const uint8_t keep = static_cast<uint8_t>(~kIgnored[fm & 3]);
  const uint8_t bus = static_cast<uint8_t>(source_id >> 8);
  const uint8_t devfn = static_cast<uint8_t>(source_id);
  CacheLockGuard g(mu_);
  epoch_.fetch_add(1, std::memory_order_relaxed);
  BusSlots* slots = buses_[bus].load(std::memory_order_relaxed);
  if (slots == nullptr) return;
  BeginWriteLocked();
  for (unsigned d = 0; d < 256; ++d) {
    if ((d & keep) == (devfn & keep)) {
      (*slots)[d].gen.store(0, std::memory_order_relaxed);
    }
  }
  EndWriteLocked();
}

uint32_t ContextCache::generation() const {
  CacheLockGuard g(mu_);
  return gen_.load(std::memory_order_relaxed);
}

size_t ContextCache::CountValidForTesting() const {
  CacheLockGuard g(mu_);
  const uint32_t gen = gen_.load(std::memory_order_relaxed);
  size_t n = 0;
  for (const std::atomic<BusSlots*>& slots : buses_) {
    const BusSlots* b = slots.load(std::memory_order_relaxed);
    if (b == nullptr) continue;
    for (const Slot& s : *b) {
      n += s.gen.load(std::memory_order_relaxed) == gen ? 1 : 0;
    }
  }
  return n;
}

ContextCacheStats ContextCache::stats() const {
  CacheLockGuard g(mu_);
  return stats_;
}

void ContextCache::SetGenerationForTesting(uint32_t gen) {
  VIOMMU_CHECK(gen >= 1, "generation 0 marks invalid entries");
  CacheLockGuard g(mu_);
  BeginWriteLocked();
  gen_.store(gen, std::memory_order_relaxed);
  EndWriteLocked();
}

}  // namespace viommu::vtd
