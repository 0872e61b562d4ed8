// tests/fuzz/vtd_shadow_checker.h — invariant checks for the VT-d fuzzer
// (vtd_fuzzer.cc): a notifier that records MAP/UNMAP events and aborts on
// an inconsistent event stream, its comparison with a fresh page-table
// walk, and a bound on what a full walk of the guest's tables would cost.
//
//   MappingRecorder rec;      // registered on a device's IOMMU region
//   ...                       // guest actions; rec aborts on a bad event
//   // after a global IOTLB invalidation, translation on, context valid:
//   CheckRecorderMatchesWalk(rec, mem, cfg, ce, "04.0");   // aborts
//
// Every failure prints what went wrong and calls abort(), so libFuzzer
// reports it as a crash with the input that caused it.
//
// Threading: control context only.
#ifndef VIOMMU_TESTS_FUZZ_VTD_SHADOW_CHECKER_H_
#define VIOMMU_TESTS_FUZZ_VTD_SHADOW_CHECKER_H_

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "viommu/hw/iommu/vtd_context.h"
#include "viommu/hw/iommu/vtd_guest_memory.h"
#include "viommu/hw/iommu/vtd_page_walk.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/iommu_notifier_chains.h"

namespace viommu::vtd::fuzz {

[[noreturn]] inline void Fail(const char* what, uint64_t a, uint64_t b) {
  std::fprintf(stderr,
               "vtd_fuzzer invariant: %s (0x%" PRIx64 ", 0x%" PRIx64 ")\n",
               what, a, b);
  std::abort();
}

// What a notifier consumer believes: the applied MAP/UNMAP events. A MAP
// must land on unmapped bytes only, an UNMAP must remove exactly one
// earlier MAP (the engine promises exact UNMAPs, vtd_engine.h).
class MappingRecorder final : public memory::IommuNotifier {
 public:
  struct Mapping {
    uint64_t last = 0;
    Hwaddr gpa = 0;
    memory::IommuPerm perm = memory::kIommuNone;
  };

  void Notify(const memory::IommuEvent& event) override {
    const memory::IommuTlbEntry& e = event.entry;
    const uint64_t last = e.iova + e.addr_mask;
    ++events_;
    if (last < e.iova) Fail("event wraps", e.iova, e.addr_mask);
    switch (event.type) {
      case memory::IommuEventType::kMap: {
        if (e.perm == memory::kIommuNone) Fail("MAP without perm", e.iova, 0);
        auto next = map_.lower_bound(e.iova);
        if (next != map_.end() && next->first <= last) {
          Fail("MAP over a mapped byte", e.iova, next->first);
        }
        if (next != map_.begin() && std::prev(next)->second.last >= e.iova) {
          Fail("MAP over a mapped byte", e.iova, std::prev(next)->first);
        }
        map_[e.iova] = {last, e.translated_addr, e.perm};
        return;
      }
      case memory::IommuEventType::kUnmap: {
        auto it = map_.find(e.iova);
        if (it == map_.end()) Fail("UNMAP of nothing mapped", e.iova, last);
        if (it->second.last != last) {
          Fail("UNMAP size differs from the MAP", e.iova, last);
        }
        map_.erase(it);
        return;
      }
      case memory::IommuEventType::kDevIotlbUnmap:
        Fail("DEVIOTLB_UNMAP on an IOTLB notifier", e.iova, last);
    }
  }

  const absl::btree_map<uint64_t, Mapping>& mappings() const { return map_; }
  void Clear() { map_.clear(); }
  // Events received so far.
  uint64_t events() const { return events_; }

 private:
  absl::btree_map<uint64_t, Mapping> map_;  // key: first IOVA
  uint64_t events_ = 0;
};

// The recorder must agree with a fresh walk over every IOVA the walk
// covers (walk entries, mapped or not). IOVAs the walk skips (unreadable
// tables, reserved bits) keep whatever the consumer was told before: the
// shadow sync leaves them alone by design (vtd_shadow_map.h).
inline void CheckRecorderMatchesWalk(const MappingRecorder& rec,
                                     GuestMemory& mem, const TableConfig& cfg,
                                     const ContextEntry& ce) {
  const auto& m = rec.mappings();
  WalkSl(mem, cfg, ce, 0, ~uint64_t{0}, [&](const WalkEntry& w) {
    const uint64_t last = w.iova + w.addr_mask;
    bool found_leaf = false;
    // Recorded mappings overlapping the slot: first the one that may start
    // before it, then those starting inside.
    auto it = m.lower_bound(w.iova);
    if (it != m.begin() && std::prev(it)->second.last >= w.iova) --it;
    for (; it != m.end() && it->first <= last; ++it) {
      const bool same = w.perm != memory::kIommuNone && it->first == w.iova &&
                        it->second.last == last && it->second.gpa == w.gpa &&
                        it->second.perm == w.perm;
      if (!same)
        Fail("recorded mapping differs from the tables", it->first, w.iova);
      found_leaf = true;
    }
    if (w.perm != memory::kIommuNone && !found_leaf) {
      Fail("mapped slot never notified", w.iova, w.gpa);
    }
  });
}

// Bounds what a full WalkSl from `table` at `level` costs: leaves it would
// report and tables it would read (counted per path, as the walk has no
// memo). Over-approximates (ignores reserved bits and stacked
// permissions); saturates at the budget. Memoised per (table, level), so
// self-referencing tables cost one read per level.
class WalkCostBound {
 public:
  static constexpr uint64_t kMaxLeaves = 4096;
  static constexpr uint64_t kMaxTables = 256;
  static constexpr size_t kMaxDistinct = 512;

  explicit WalkCostBound(GuestMemory* mem) : mem_(mem) {}

  // True when a walk of `ce`'s tables stays within the budget.
  bool Within(const ContextEntry& ce) {
    return Within(ce.slptptr(), ce.levels());
  }
  // The same for tables at `table` with `levels` levels (scalable mode:
  // a PASID entry's SLPTPTR and 2 + AW).
  bool Within(uint64_t table, int levels) {
    Cost c = Visit(table, levels);
    return !over_ && c.leaves <= kMaxLeaves && c.tables <= kMaxTables;
  }

 private:
  struct Cost {
    uint64_t leaves = 0;
    uint64_t tables = 0;
  };
  static uint64_t Sat(uint64_t a, uint64_t b) {
    return a + b < a ? ~uint64_t{0} : a + b;
  }
  Cost Visit(uint64_t table, int level) {
    const uint64_t key = table | static_cast<uint64_t>(level);
    if (auto it = memo_.find(key); it != memo_.end()) return it->second;
    if (memo_.size() >= kMaxDistinct) {
      over_ = true;
      return {};
    }
    memo_[key] = {};  // a cycle cannot recurse: levels strictly decrease
    Cost c{0, 1};
    uint64_t entries[512];
    if (level >= 1 && !mem_->Read(table, entries, sizeof entries)) {
      // As the walk: entry by entry when the bulk read fails.
      for (int i = 0; i < 512; ++i) {
        if (!mem_->Read(table + i * 8, &entries[i], 8)) entries[i] = 0;
      }
    }
    if (level >= 1) {
      for (uint64_t e : entries) {
        if ((e & 3) == 0) continue;
        if (level == 1 || ((level == 2 || level == 3) && (e & (1u << 7)))) {
          c.leaves = Sat(c.leaves, 1);
          continue;
        }
        Cost sub = Visit(e & 0x000f'ffff'ffff'f000ull, level - 1);
        c.leaves = Sat(c.leaves, sub.leaves);
        c.tables = Sat(c.tables, sub.tables);
        if (c.leaves > kMaxLeaves || c.tables > kMaxTables) break;
      }
    }
    memo_[key] = c;
    return c;
  }

  GuestMemory* mem_;  // not owned
  absl::flat_hash_map<uint64_t, Cost> memo_;
  bool over_ = false;
};

}  // namespace viommu::vtd::fuzz

#endif  // VIOMMU_TESTS_FUZZ_VTD_SHADOW_CHECKER_H_
