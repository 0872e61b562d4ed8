// The VT-d IOTLB: keyed hash table plus a CLOCK ring (see vtd_iotlb.h).
#include "viommu/hw/iommu/vtd_iotlb.h"

#include <algorithm>

#include "viommu/util/check.h"

namespace viommu::vtd {
namespace {

constexpr int kPageShift = 12;
constexpr int kLevelBits = 9;  // 512 entries per second-level table
constexpr int kGfnBits = 46;
constexpr uint64_t kGfnMask = (uint64_t{1} << kGfnBits) - 1;
constexpr int kLevelShift = 46;
constexpr int kSidShift = 48;
// Level field 3 is never used by a real key.
constexpr uint64_t kEmptyKey = ~uint64_t{0};

// Frames (4K units) per page at `level` (1 = 4K, 2 = 2M, 3 = 1G).
constexpr uint64_t FramesAt(int level) {
  return uint64_t{1} << ((level - 1) * kLevelBits);
}

// Key of the level-`level` page containing 4K frame `gfn`.
// REQUIRES: gfn <= kGfnMask.
constexpr uint64_t MakeKey(uint16_t sid, uint64_t gfn, int level) {
  return (gfn & ~(FramesAt(level) - 1)) |
         (static_cast<uint64_t>(level - 1) << kLevelShift) |
         (static_cast<uint64_t>(sid) << kSidShift);
}
constexpr uint64_t KeyGfn(uint64_t key) { return key & kGfnMask; }
constexpr int KeyLevel(uint64_t key) {
  return static_cast<int>((key >> kLevelShift) & 3) + 1;
}
constexpr uint16_t KeySid(uint64_t key) {
  return static_cast<uint16_t>(key >> kSidShift);
}

// The level of a page of size addr_mask + 1; 0 when not 4K/2M/1G.
int LevelOf(uint64_t addr_mask) {
  for (int level = 1; level <= 3; ++level) {
    if (addr_mask == (FramesAt(level) << kPageShift) - 1) return level;
  }
  return 0;
}

static_assert(KeyLevel(MakeKey(0xffff, kGfnMask, 3)) == 3);
static_assert(KeySid(MakeKey(0xabcd, 5, 1)) == 0xabcd);
static_assert(KeyLevel(kEmptyKey) == 4, "the empty key is no real key");

}  // namespace

Iotlb::Iotlb(size_t capacity) : capacity_(capacity) {
  VIOMMU_CHECK(capacity >= 1 && capacity <= (size_t{1} << 31),
               "IOTLB capacity out of range");
  CacheLockGuard g(mu_);
  ResetLocked();
}

void Iotlb::ResetLocked() {
  map_.clear();
  map_.reserve(capacity_);
  ring_.assign(capacity_, kEmptyKey);
  free_.resize(capacity_);
  // Popped from the back: positions are handed out 0, 1, 2, ...
  for (size_t i = 0; i < capacity_; ++i) {
    free_[i] = static_cast<uint32_t>(capacity_ - 1 - i);
  }
  hand_ = 0;
  sid_refs_.clear();
}

std::optional<IotlbEntry> Iotlb::Lookup(uint16_t sid, Iova iova) {
  const uint64_t gfn = iova >> kPageShift;
  const bool cacheable = iova < kCacheableLimit;
  const uint64_t keys[3] = {MakeKey(sid, gfn, 1), MakeKey(sid, gfn, 2),
                            MakeKey(sid, gfn, 3)};
  CacheLockGuard g(mu_);
  if (cacheable) {
    for (uint64_t key : keys) {
      auto it = map_.find(key);
      if (it != map_.end()) {
        Slot& s = it->second;
        if (!s.referenced) s.referenced = 1;
        ++stats_.hits;
        return s.entry;
      }
    }
  }
  ++stats_.misses;
  return std::nullopt;
}

void Iotlb::Insert(uint16_t sid, Iova iova, const IotlbEntry& e) {
  const int level = LevelOf(e.addr_mask);
  VIOMMU_CHECK(level != 0, "IOTLB entry must be a 4K, 2M or 1G page");
  if (iova >= kCacheableLimit) return;
  const uint64_t key = MakeKey(sid, iova >> kPageShift, level);
  CacheLockGuard g(mu_);
  InsertLocked(key, sid, e);
}

bool Iotlb::InsertIfCurrent(uint64_t epoch, uint16_t sid, Iova iova,
                            const IotlbEntry& e) {
  const int level = LevelOf(e.addr_mask);
  VIOMMU_CHECK(level != 0, "IOTLB entry must be a 4K, 2M or 1G page");
  const uint64_t key = MakeKey(sid, iova >> kPageShift, level);
  CacheLockGuard g(mu_);
  if (epoch_.load(std::memory_order_relaxed) != epoch) {
    ++stats_.stale_inserts;
    return false;
  }
  if (iova >= kCacheableLimit) return false;
  InsertLocked(key, sid, e);
  return true;
}

void Iotlb::InsertLocked(uint64_t key, uint16_t sid, const IotlbEntry& e) {
  if (auto it = map_.find(key); it != map_.end()) {
    it->second.entry = e;  // QEMU replaces the entry under the same key
    return;
  }
  const uint32_t pos = TakeRingPosLocked();
  ring_[pos] = key;
  map_.emplace(key, Slot{.entry = e, .ring_pos = pos, .referenced = 0});
  ++sid_refs_[sid];
}

uint32_t Iotlb::TakeRingPosLocked() {
  if (!free_.empty()) {
    const uint32_t pos = free_.back();
    free_.pop_back();
    return pos;
  }
  // Full: every ring position holds a key. At most two revolutions.
  for (;;) {
    const uint32_t pos = hand_;
    hand_ = static_cast<uint32_t>((hand_ + 1) % capacity_);
    auto it = map_.find(ring_[pos]);
    VIOMMU_CHECK(it != map_.end(), "IOTLB ring and map disagree");
    if (it->second.referenced) {
      it->second.referenced = 0;
      continue;
    }
    EraseLocked(it);
    ++stats_.evictions;
    // EraseLocked freed `pos`; take it back.
    VIOMMU_CHECK(!free_.empty() && free_.back() == pos);
    free_.pop_back();
    return pos;
  }
}

void Iotlb::EraseLocked(absl::flat_hash_map<uint64_t, Slot>::iterator it) {
  const uint16_t sid = KeySid(it->first);
  const uint32_t pos = it->second.ring_pos;
  ring_[pos] = kEmptyKey;
  free_.push_back(pos);
  auto ref = sid_refs_.find(sid);
  if (ref != sid_refs_.end() && --ref->second == 0) sid_refs_.erase(ref);
  map_.erase(it);
}

void Iotlb::InvalidateAll() {
  CacheLockGuard g(mu_);
  epoch_.fetch_add(1, std::memory_order_relaxed);
  ResetLocked();
}

void Iotlb::InvalidateDomain(uint16_t domain_id) {
  CacheLockGuard g(mu_);
  epoch_.fetch_add(1, std::memory_order_relaxed);
  for (auto it = map_.begin(); it != map_.end();) {
    auto cur = it++;
    if (cur->second.entry.domain_id == domain_id) EraseLocked(cur);
  }
}

void Iotlb::InvalidatePage(uint16_t domain_id, Iova addr, uint8_t am) {
  VIOMMU_CHECK(am <= kMaxAm, "PSI address mask above MAMV");
  CacheLockGuard g(mu_);
  epoch_.fetch_add(1, std::memory_order_relaxed);
  PsiStrategy how = psi_strategy_;
  if (how == PsiStrategy::kAuto) {
    const uint64_t pages = uint64_t{1} << am;
    const uint64_t per_sid = pages + std::max<uint64_t>(1, pages >> 9) + 1;
    // A probe costs about two entry visits of a scan (hash + random access).
    how = 2 * per_sid * sid_refs_.size() <= map_.size() ? PsiStrategy::kProbe
                                                        : PsiStrategy::kScan;
  }
  if (how == PsiStrategy::kProbe) {
    ProbePsiLocked(domain_id, addr, am);
  } else {
    ScanPsiLocked(domain_id, addr, am);
  }
}

// QEMU 7.2's predicate, entry by entry: same domain, and either the entry's
// base frame lies in the AM-aligned range, or the entry's page contains
// `addr` (a superpage around a smaller range).
void Iotlb::ScanPsiLocked(uint16_t domain_id, Iova addr, uint8_t am) {
  const uint64_t range_mask = ~((uint64_t{1} << am) - 1);
  const uint64_t range_gfn = (addr >> kPageShift) & range_mask;
  for (auto it = map_.begin(); it != map_.end();) {
    auto cur = it++;
    if (cur->second.entry.domain_id != domain_id) continue;
    const uint64_t entry_gfn = KeyGfn(cur->first);
    const uint64_t containing_gfn =
        (addr & ~cur->second.entry.addr_mask) >> kPageShift;
    if ((entry_gfn & range_mask) == range_gfn ||
        entry_gfn == containing_gfn) {
      EraseLocked(cur);
    }
  }
}

// The same set, found by key: for each source-id present, every 4K key in
// the range, every 2M key overlapping it and the 1G key containing it
// (am <= 18, so the aligned range never spans two 1G pages).
void Iotlb::ProbePsiLocked(uint16_t domain_id, Iova addr, uint8_t am) {
  const uint64_t pages = uint64_t{1} << am;
  const uint64_t first = (addr >> kPageShift) & ~(pages - 1);
  if (first > kGfnMask) return;  // nothing that high is ever cached
  const uint64_t last = std::min(first + pages - 1, kGfnMask);
  // Collect first: erasing may drop a source-id from sid_refs_.
  std::vector<uint16_t> sids;
  sids.reserve(sid_refs_.size());
  for (const auto& [sid, count] : sid_refs_) sids.push_back(sid);
  auto probe = [&](uint64_t key) {
    auto it = map_.find(key);
    if (it != map_.end() && it->second.entry.domain_id == domain_id) {
      EraseLocked(it);
    }
  };
  for (uint16_t sid : sids) {
    for (int level = 1; level <= 3; ++level) {
      const uint64_t step = FramesAt(level);
      for (uint64_t gfn = first & ~(step - 1); gfn <= last; gfn += step) {
        probe(MakeKey(sid, gfn, level));
      }
    }
  }
}

size_t Iotlb::size() const {
  CacheLockGuard g(mu_);
  return map_.size();
}

IotlbStats Iotlb::stats() const {
  CacheLockGuard g(mu_);
  return stats_;
}

void Iotlb::set_psi_strategy_for_testing(PsiStrategy s) {
  CacheLockGuard g(mu_);
  psi_strategy_ = s;
}

}  // namespace viommu::vtd
