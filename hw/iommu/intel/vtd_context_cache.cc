// The VT-d context cache (see vtd_context_cache.h).
#include "viommu/hw/iommu/vtd_context_cache.h"

#include "viommu/util/check.h"

namespace viommu::vtd {

ContextCache::ContextCache() = default;
ContextCache::~ContextCache() = default;

std::optional<CachedContext> ContextCache::Lookup(uint8_t bus, uint8_t devfn) {
  CacheLockGuard g(mu_);
  const BusSlots* slots = buses_[bus].get();
  if (slots != nullptr) {
    const Slot& s = (*slots)[devfn];
    if (s.gen == gen_) {
      ++stats_.hits;
      return s.ctx;
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

void ContextCache::InsertLocked(uint8_t bus, uint8_t devfn,
                                const CachedContext& ctx) {
  std::unique_ptr<BusSlots>& slots = buses_[bus];
  // A rare 6 KiB allocation under the spinlock (first device on a bus).
  if (slots == nullptr) slots = std::make_unique<BusSlots>();
  (*slots)[devfn] = Slot{.ctx = ctx, .gen = gen_};
}

void ContextCache::InvalidateAll() {
  CacheLockGuard g(mu_);
  epoch_.fetch_add(1, std::memory_order_relaxed);
  ++gen_;
  if (gen_ == kGenerationMax) {
    for (auto& slots : buses_) {
      if (slots == nullptr) continue;
      for (Slot& s : *slots) s.gen = 0;
    }
    gen_ = 1;
  }
}

void ContextCache::InvalidateDevice(uint16_t source_id, uint8_t fm) {
  // Devfn bits the function mask ignores: none, bit 2, bits 2:1, bits 2:0.
  static constexpr uint8_t kIgnored[4] = {0, 4, 6, 7};
  const uint8_t keep = static_cast<uint8_t>(~kIgnored[fm & 3]);
  const uint8_t bus = static_cast<uint8_t>(source_id >> 8);
  const uint8_t devfn = static_cast<uint8_t>(source_id);
  CacheLockGuard g(mu_);
  epoch_.fetch_add(1, std::memory_order_relaxed);
  BusSlots* slots = buses_[bus].get();
  if (slots == nullptr) return;
  for (unsigned d = 0; d < 256; ++d) {
    if ((d & keep) == (devfn & keep)) (*slots)[d].gen = 0;
  }
}

uint32_t ContextCache::generation() const {
  CacheLockGuard g(mu_);
  return gen_;
}

size_t ContextCache::CountValidForTesting() const {
  CacheLockGuard g(mu_);
  size_t n = 0;
  for (const auto& slots : buses_) {
    if (slots == nullptr) continue;
    for (const Slot& s : *slots) n += s.gen == gen_ ? 1 : 0;
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
  gen_ = gen;
}

}  // namespace viommu::vtd
