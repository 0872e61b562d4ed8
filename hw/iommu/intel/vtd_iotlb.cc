// The VT-d IOTLB: a linear-probing table of atomic slots read under a
// seqlock, written under a spinlock, with a CLOCK ring (see vtd_iotlb.h).
#include "viommu/hw/iommu/vtd_iotlb.h"

#include <algorithm>
#include <bit>
#include <thread>

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

// Value word: output frame (page_base >> 12) in 39:0, perm in 41:40,
// domain-id in 63:48.
constexpr int kFrameBits = 40;
constexpr uint64_t kFrameMask = (uint64_t{1} << kFrameBits) - 1;
constexpr Hwaddr kPageBaseLimit = uint64_t{1} << (kFrameBits + kPageShift);

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

constexpr uint64_t PackValue(const IotlbEntry& e) {
  return (e.page_base >> kPageShift) | (uint64_t{e.perm & 3u} << kFrameBits) |
         (uint64_t{e.domain_id} << 48);
}
constexpr uint16_t ValueDomain(uint64_t v) {
  return static_cast<uint16_t>(v >> 48);
}
constexpr IotlbEntry Unpack(uint64_t key, uint64_t v) {
  return {.domain_id = ValueDomain(v),
          .page_base = (v & kFrameMask) << kPageShift,
          .addr_mask = (FramesAt(KeyLevel(key)) << kPageShift) - 1,
          .perm = static_cast<memory::IommuPerm>((v >> kFrameBits) & 3)};
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
static_assert(Unpack(MakeKey(1, 0, 2),
                     PackValue({.domain_id = 0xffff,
                                .page_base = kPageBaseLimit - 0x200000,
                                .addr_mask = 0x1fffff,
                                .perm = memory::kIommuReadWrite})) ==
              IotlbEntry{.domain_id = 0xffff,
                         .page_base = kPageBaseLimit - 0x200000,
                         .addr_mask = 0x1fffff,
                         .perm = memory::kIommuReadWrite});

size_t TableSize(size_t capacity) {
  size_t n = 8;
  while (n < 2 * capacity) n *= 2;
  return n;
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

std::atomic<size_t> next_shard{0};

}  // namespace

Iotlb::Iotlb(size_t capacity)
    : capacity_(capacity),
      table_mask_(TableSize(capacity) - 1),
      hash_shift_(64 - std::countr_zero(table_mask_ + 1)),
      table_(new Slot[table_mask_ + 1]),
      ref_(new std::atomic<uint8_t>[table_mask_ + 1]) {
  VIOMMU_CHECK(capacity >= 1 && capacity <= (size_t{1} << 31),
               "IOTLB capacity out of range");
  CacheLockGuard g(mu_);
  slot_ring_pos_.assign(table_mask_ + 1, 0);
  ResetLocked();
}

size_t Iotlb::PickShard() {
  const size_t shard =
      next_shard.fetch_add(1, std::memory_order_relaxed) % kShards;
  tls_shard_ = shard;
  return shard;
}

inline size_t Iotlb::ProbeRead(uint64_t key, uint64_t* value) const {
  size_t i = Home(key);
  // Bounded: a torn view of a table being rewritten must not loop forever.
  for (size_t n = 0; n <= table_mask_; ++n, i = (i + 1) & table_mask_) {
    const uint64_t k = table_[i].key.load(std::memory_order_relaxed);
    if (k == key) {
      *value = table_[i].value.load(std::memory_order_relaxed);
      return i;
    }
    if (k == kEmptyKey) return kNpos;
  }
  return kNpos;
}

std::optional<IotlbEntry> Iotlb::LookupSlow(uint16_t sid, Iova iova,
                                            uint64_t missed_at) {
  if (iova >= kCacheableLimit) {
    Bump(LocalShard().misses);
    return std::nullopt;
  }
  const uint64_t gfn = iova >> kPageShift;
  for (int spins = 0;; ++spins) {
    const uint64_t s1 = seq_.load(std::memory_order_acquire);
    if (s1 & 1) {  // a writer is changing the table
      if (spins < 128) {
        CpuRelax();
      } else {
        std::this_thread::yield();
      }
      continue;
    }
    // The 4K probe Hit4K already did, unless a writer ran since: the
    // seqlock check below then covers it as well.
    uint64_t key = MakeKey(sid, gfn, 1);
    uint64_t value = 0;
    size_t slot = s1 == missed_at ? kNpos : ProbeRead(key, &value);
    if (slot == kNpos) {
      key = MakeKey(sid, gfn, 2);
      slot = ProbeRead(key, &value);
    }
    if (slot == kNpos) {
      key = MakeKey(sid, gfn, 3);
      slot = ProbeRead(key, &value);
    }
    SeqlockReadFence();
    if (seq_.load(std::memory_order_relaxed) != s1) continue;
    if (slot == kNpos) {
      Bump(LocalShard().misses);
      return std::nullopt;
    }
    // If a writer moved the entry since, the bit lands on a neighbour: CLOCK
    // is approximate anyway.
    std::atomic<uint8_t>& ref = ref_[slot];
    if (ref.load(std::memory_order_relaxed) == 0) {
      ref.store(1, std::memory_order_relaxed);
    }
    Bump(LocalShard().hits);
    return Unpack(key, value);
  }
}

void Iotlb::BeginWriteLocked() {
  seq_.store(seq_.load(std::memory_order_relaxed) + 1,
             std::memory_order_relaxed);
  SeqlockWriteFence();
}

void Iotlb::EndWriteLocked() {
  seq_.store(seq_.load(std::memory_order_relaxed) + 1,
             std::memory_order_release);
}

void Iotlb::ResetLocked() {
  BeginWriteLocked();
  for (size_t i = 0; i <= table_mask_; ++i) {
    table_[i].key.store(kEmptyKey, std::memory_order_relaxed);
  }
  EndWriteLocked();
  ring_.assign(capacity_, kEmptyKey);
  free_.resize(capacity_);
  // Popped from the back: positions are handed out 0, 1, 2, ...
  for (size_t i = 0; i < capacity_; ++i) {
    free_[i] = static_cast<uint32_t>(capacity_ - 1 - i);
  }
  hand_ = 0;
  size_ = 0;
  sid_refs_.clear();
}

size_t Iotlb::FindLocked(uint64_t key) const {
  for (size_t i = Home(key);; i = (i + 1) & table_mask_) {
    const uint64_t k = table_[i].key.load(std::memory_order_relaxed);
    if (k == key) return i;
    if (k == kEmptyKey) return kNpos;
  }
}

void Iotlb::Insert(uint16_t sid, Iova iova, const IotlbEntry& e) {
  const int level = LevelOf(e.addr_mask);
  VIOMMU_CHECK(level != 0, "IOTLB entry must be a 4K, 2M or 1G page");
  if (iova >= kCacheableLimit || e.page_base >= kPageBaseLimit) return;
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
    ++stale_inserts_;
    return false;
  }
  if (iova >= kCacheableLimit || e.page_base >= kPageBaseLimit) return false;
  InsertLocked(key, sid, e);
  return true;
}

void Iotlb::InsertLocked(uint64_t key, uint16_t sid, const IotlbEntry& e) {
  BeginWriteLocked();
  if (const size_t i = FindLocked(key); i != kNpos) {
    // QEMU replaces the entry under the same key; keep the ring position.
    table_[i].value.store(PackValue(e), std::memory_order_relaxed);
    EndWriteLocked();
    return;
  }
  const uint32_t pos = TakeRingPosLocked();
  ring_[pos] = key;
  size_t i = Home(key);
  while (table_[i].key.load(std::memory_order_relaxed) != kEmptyKey) {
    i = (i + 1) & table_mask_;
  }
  table_[i].value.store(PackValue(e), std::memory_order_relaxed);
  table_[i].key.store(key, std::memory_order_relaxed);
  ref_[i].store(0, std::memory_order_relaxed);
  slot_ring_pos_[i] = pos;
  ++size_;
  ++sid_refs_[sid];
  EndWriteLocked();
}

// REQUIRES: inside Begin/EndWriteLocked.
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
    const size_t i = FindLocked(ring_[pos]);
    VIOMMU_CHECK(i != kNpos, "IOTLB ring and table disagree");
    if (ref_[i].load(std::memory_order_relaxed) != 0) {
      ref_[i].store(0, std::memory_order_relaxed);
      continue;
    }
    EraseSlotLocked(i);
    ++evictions_;
    // EraseSlotLocked freed `pos`; take it back.
    VIOMMU_CHECK(!free_.empty() && free_.back() == pos);
    free_.pop_back();
    return pos;
  }
}

// REQUIRES: inside Begin/EndWriteLocked.
void Iotlb::EraseSlotLocked(size_t index) {
  const uint64_t key = table_[index].key.load(std::memory_order_relaxed);
  const uint32_t pos = slot_ring_pos_[index];
  ring_[pos] = kEmptyKey;
  free_.push_back(pos);
  auto ref = sid_refs_.find(KeySid(key));
  if (ref != sid_refs_.end() && --ref->second == 0) sid_refs_.erase(ref);
  --size_;
  // Backward-shift deletion keeps linear probing free of tombstones: move
  // later members of the cluster into the hole unless their home lies
  // cyclically in (hole, j].
  size_t hole = index;
  for (size_t j = (hole + 1) & table_mask_;; j = (j + 1) & table_mask_) {
    const uint64_t k = table_[j].key.load(std::memory_order_relaxed);
    if (k == kEmptyKey) break;
    const size_t home = Home(k);
    const bool stays =
        hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) continue;
    table_[hole].value.store(table_[j].value.load(std::memory_order_relaxed),
                             std::memory_order_relaxed);
    table_[hole].key.store(k, std::memory_order_relaxed);
    ref_[hole].store(ref_[j].load(std::memory_order_relaxed),
                     std::memory_order_relaxed);
    slot_ring_pos_[hole] = slot_ring_pos_[j];
    hole = j;
  }
  table_[hole].key.store(kEmptyKey, std::memory_order_relaxed);
}

template <typename Pred>
void Iotlb::EraseIfLocked(Pred pred) {
  // Collect first: deletion moves entries between slots.
  std::vector<uint64_t> victims;
  for (size_t i = 0; i <= table_mask_; ++i) {
    const uint64_t k = table_[i].key.load(std::memory_order_relaxed);
    if (k == kEmptyKey) continue;
    if (pred(k, Unpack(k, table_[i].value.load(std::memory_order_relaxed)))) {
      victims.push_back(k);
    }
  }
  if (victims.empty()) return;
  BeginWriteLocked();
  for (uint64_t k : victims) EraseSlotLocked(FindLocked(k));
  EndWriteLocked();
}

void Iotlb::InvalidateAll() {
  CacheLockGuard g(mu_);
  epoch_.fetch_add(1, std::memory_order_relaxed);
  ResetLocked();
}

void Iotlb::InvalidateDomain(uint16_t domain_id) {
  CacheLockGuard g(mu_);
  epoch_.fetch_add(1, std::memory_order_relaxed);
  EraseIfLocked(
      [&](uint64_t, const IotlbEntry& e) { return e.domain_id == domain_id; });
}

void Iotlb::InvalidatePage(uint16_t domain_id, Iova addr, uint8_t am) {
  VIOMMU_CHECK(am <= kMaxAm, "PSI address mask above MAMV");
  CacheLockGuard g(mu_);
  epoch_.fetch_add(1, std::memory_order_relaxed);
  PsiStrategy how = psi_strategy_;
  if (how == PsiStrategy::kAuto) {
    const uint64_t pages = uint64_t{1} << am;
    const uint64_t per_sid = pages + std::max<uint64_t>(1, pages >> 9) + 1;
    // A scan visits every table slot; a probe costs about two of those.
    how = 2 * per_sid * sid_refs_.size() <= table_mask_ + 1
              ? PsiStrategy::kProbe
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
  EraseIfLocked([&](uint64_t key, const IotlbEntry& e) {
    if (e.domain_id != domain_id) return false;
    const uint64_t entry_gfn = KeyGfn(key);
    const uint64_t containing_gfn = (addr & ~e.addr_mask) >> kPageShift;
    return (entry_gfn & range_mask) == range_gfn || entry_gfn == containing_gfn;
  });
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
  bool writing = false;
  for (uint16_t sid : sids) {
    for (int level = 1; level <= 3; ++level) {
      const uint64_t step = FramesAt(level);
      for (uint64_t gfn = first & ~(step - 1); gfn <= last; gfn += step) {
        const size_t i = FindLocked(MakeKey(sid, gfn, level));
        if (i == kNpos || ValueDomain(table_[i].value.load(
                              std::memory_order_relaxed)) != domain_id) {
          continue;
        }
        if (!writing) {
          BeginWriteLocked();
          writing = true;
        }
        EraseSlotLocked(i);
      }
    }
  }
  if (writing) EndWriteLocked();
}

size_t Iotlb::size() const {
  CacheLockGuard g(mu_);
  return size_;
}

IotlbStats Iotlb::stats() const {
  IotlbStats s;
  for (const CounterShard& shard : shards_) {
    s.hits += shard.hits.load(std::memory_order_relaxed);
    s.misses += shard.misses.load(std::memory_order_relaxed);
  }
  CacheLockGuard g(mu_);
  s.evictions = evictions_;
  s.stale_inserts = stale_inserts_;
  return s;
}

void Iotlb::set_psi_strategy_for_testing(PsiStrategy s) {
  CacheLockGuard g(mu_);
  psi_strategy_ = s;
}

}  // namespace viommu::vtd
