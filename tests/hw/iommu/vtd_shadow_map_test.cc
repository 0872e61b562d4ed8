#include "viommu/hw/iommu/vtd_shadow_map.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/iommu_notifier_chains.h"

namespace viommu::vtd {
namespace {

using memory::IommuPerm;
using memory::kIommuNone;
using memory::kIommuRead;
using memory::kIommuReadWrite;
using memory::kIommuWrite;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint64_t k4K = 0xfff;
constexpr uint64_t k2M = 0x1f'ffff;
constexpr uint64_t k1G = 0x3fff'ffff;
constexpr uint64_t k512G = 0x7f'ffff'ffff;

WalkEntry Leaf(Iova iova, uint64_t mask, Hwaddr gpa,
               IommuPerm perm = kIommuReadWrite) {
  return {.iova = iova, .addr_mask = mask, .gpa = gpa, .perm = perm};
}
WalkEntry Invalid(Iova iova, uint64_t mask) {
  return {.iova = iova, .addr_mask = mask, .gpa = 0, .perm = kIommuNone};
}

// One MappingChanged call.
struct Change {
  Iova iova = 0;
  uint64_t mask = 0;
  std::optional<ShadowTranslation> before;
  std::optional<ShadowTranslation> after;
  friend bool operator==(const Change&, const Change&) = default;
};

std::ostream& operator<<(std::ostream& os,
                         const std::optional<ShadowTranslation>& t) {
  if (!t) return os << "none";
  return os << "{gpa 0x" << std::hex << t->gpa << std::dec << " perm "
            << int{t->perm} << "}";
}
std::ostream& operator<<(std::ostream& os, const Change& c) {
  return os << "[0x" << std::hex << c.iova << " mask 0x" << c.mask << std::dec
            << ": " << c.before << " -> " << c.after << "]";
}

Change Map(Iova iova, uint64_t mask, Hwaddr gpa,
           IommuPerm perm = kIommuReadWrite) {
  return {iova, mask, std::nullopt, ShadowTranslation{gpa, perm}};
}
Change Unmap(Iova iova, uint64_t mask, Hwaddr gpa,
             IommuPerm perm = kIommuReadWrite) {
  return {iova, mask, ShadowTranslation{gpa, perm}, std::nullopt};
}
Change Remap(Iova iova, uint64_t mask, ShadowTranslation before,
             ShadowTranslation after) {
  return {iova, mask, before, after};
}

class RecordingEmitter final : public ShadowEmitter {
 public:
  void MappingChanged(Iova iova, uint64_t addr_mask,
                      const std::optional<ShadowTranslation>& before,
                      const std::optional<ShadowTranslation>& after) override {
    changes.push_back({iova, addr_mask, before, after});
  }
  std::vector<Change> Take() { return std::exchange(changes, {}); }
  std::vector<Change> changes;
};

// The guest's page tables as a sorted list of walk entries; the walk
// reports every entry overlapping the requested range, whole.
struct FakeWalk {
  std::vector<WalkEntry> entries;
  void operator()(const Range& r, WalkSink sink) const {
    for (const WalkEntry& e : entries) {
      if (Range{e.iova, e.iova + e.addr_mask}.Overlaps(r)) sink(e);
    }
  }
};

class ShadowMapTest : public ::testing::Test {
 protected:
  SyncStats Sync(const Range& r) {
    return shadow_.Sync(
        r, [this](const Range& rr, WalkSink sink) { walk_(rr, sink); }, out_);
  }
  SyncStats SyncAll() { return Sync(Range::Full()); }
  std::vector<memory::IommuTlbEntry> All() const {
    std::vector<memory::IommuTlbEntry> v;
    shadow_.ForEach(Range::Full(),
                    [&](const memory::IommuTlbEntry& e) { v.push_back(e); });
    return v;
  }

  ShadowMap shadow_;
  FakeWalk walk_;
  RecordingEmitter out_;
};

TEST_F(ShadowMapTest, NewLeavesAreMappedInOrder) {
  walk_.entries = {Leaf(0x0, k4K, 0x10000), Invalid(0x1000, k4K),
                   Leaf(0x200000, k2M, 0x400000, kIommuRead)};
  SyncStats s = SyncAll();
  EXPECT_THAT(out_.Take(),
              ElementsAre(Map(0x0, k4K, 0x10000),
                          Map(0x200000, k2M, 0x400000, kIommuRead)));
  EXPECT_EQ(s, (SyncStats{.walked = 3, .mapped = 2}));
  EXPECT_EQ(shadow_.size(), 2u);
}

TEST_F(ShadowMapTest, SecondIdenticalSyncEmitsNothing) {
  walk_.entries = {Leaf(0x0, k4K, 0x10000), Leaf(0x1000, k4K, 0x20000),
                   Leaf(0x40000000, k1G, 0x80000000)};
  SyncAll();
  out_.Take();
  SyncStats s = SyncAll();
  EXPECT_THAT(out_.changes, IsEmpty());
  EXPECT_EQ(s, (SyncStats{.walked = 3, .unchanged = 3}));
}

TEST_F(ShadowMapTest, RemapOfOnePageIsOneChangeOfThatPage) {
  walk_.entries = {Leaf(0x0, k4K, 0x10000), Leaf(0x1000, k4K, 0x20000),
                   Leaf(0x2000, k4K, 0x30000)};
  SyncAll();
  out_.Take();
  walk_.entries[1].gpa = 0x99000;
  SyncStats s = Sync({0x1000, 0x1fff});
  EXPECT_THAT(out_.Take(),
              ElementsAre(Remap(0x1000, k4K, {0x20000, kIommuReadWrite},
                                {0x99000, kIommuReadWrite})));
  EXPECT_EQ(s, (SyncStats{.walked = 1, .changed = 1}));
}

TEST_F(ShadowMapTest, PermissionChangeIsOneChange) {
  walk_.entries = {Leaf(0x5000, k4K, 0x10000, kIommuReadWrite)};
  SyncAll();
  out_.Take();
  walk_.entries[0].perm = kIommuWrite;
  SyncAll();
  EXPECT_THAT(out_.Take(),
              ElementsAre(Remap(0x5000, k4K, {0x10000, kIommuReadWrite},
                                {0x10000, kIommuWrite})));
}

TEST_F(ShadowMapTest, SuperpageReplacingPageTableUnmapsEachPageThenMaps) {
  for (uint64_t i = 0; i < 512; ++i) {
    walk_.entries.push_back(
        Leaf(0x200000 + i * 0x1000, k4K, 0x800000 + i * 0x1000));
  }
  SyncAll();
  out_.Take();
  walk_.entries = {Leaf(0x200000, k2M, 0xc00000)};
  SyncStats s = Sync({0x200000, 0x3fffff});
  std::vector<Change> want;
  for (uint64_t i = 0; i < 512; ++i) {
    want.push_back(Unmap(0x200000 + i * 0x1000, k4K, 0x800000 + i * 0x1000));
  }
  want.push_back(Map(0x200000, k2M, 0xc00000));
  EXPECT_EQ(out_.Take(), want);
  EXPECT_EQ(s, (SyncStats{.walked = 1, .mapped = 1, .unmapped = 512}));
  EXPECT_EQ(shadow_.size(), 1u);
}

TEST_F(ShadowMapTest, ClearedPdeUnmapsExactlyTheMappedPages) {
  walk_.entries = {Leaf(0x200000, k4K, 0x10000), Invalid(0x201000, k4K),
                   Leaf(0x3ff000, k4K, 0x20000)};
  SyncAll();
  out_.Take();
  walk_.entries = {Invalid(0x200000, k2M)};
  SyncStats s = Sync({0x200000, 0x3fffff});
  EXPECT_THAT(out_.Take(), ElementsAre(Unmap(0x200000, k4K, 0x10000),
                                       Unmap(0x3ff000, k4K, 0x20000)));
  EXPECT_EQ(s, (SyncStats{.walked = 1, .unmapped = 2}));
  EXPECT_TRUE(shadow_.empty());
}

TEST_F(ShadowMapTest, SuperpageSplitUnmapsItOnceThenMapsThePages) {
  walk_.entries = {Leaf(0x200000, k2M, 0x600000)};
  SyncAll();
  out_.Take();
  walk_.entries = {Leaf(0x200000, k4K, 0x600000), Invalid(0x201000, k4K),
                   Leaf(0x202000, k4K, 0x602000)};
  SyncStats s = Sync({0x200000, 0x3fffff});
  EXPECT_THAT(out_.Take(), ElementsAre(Unmap(0x200000, k2M, 0x600000),
                                       Map(0x200000, k4K, 0x600000),
                                       Map(0x202000, k4K, 0x602000)));
  EXPECT_EQ(s, (SyncStats{.walked = 3, .mapped = 2, .unmapped = 1}));
}

TEST_F(ShadowMapTest, SplitStartingWithAnInvalidPageUnmapsTheSuperpage) {
  walk_.entries = {Leaf(0x200000, k2M, 0x600000)};
  SyncAll();
  out_.Take();
  walk_.entries = {Invalid(0x200000, k4K), Leaf(0x201000, k4K, 0x601000)};
  SyncAll();
  EXPECT_THAT(out_.Take(), ElementsAre(Unmap(0x200000, k2M, 0x600000),
                                       Map(0x201000, k4K, 0x601000)));
}

TEST_F(ShadowMapTest, HugeInvalidSlotUnmapsOnlyWhatWasMapped) {
  walk_.entries = {Leaf(0x1000, k4K, 0x10000), Leaf(0x40000000, k1G, 0x0)};
  SyncAll();
  out_.Take();
  walk_.entries = {Invalid(0x0, k512G)};
  Sync({0x1000, 0x1fff});  // a PSI of one page inside a cleared PML4 entry
  EXPECT_THAT(out_.Take(), ElementsAre(Unmap(0x1000, k4K, 0x10000),
                                       Unmap(0x40000000, k1G, 0x0)));
}

TEST_F(ShadowMapTest, InvalidSlotWithNothingMappedEmitsNothing) {
  walk_.entries = {Invalid(0x0, k512G), Invalid(0x8000000000, k512G)};
  SyncStats s = SyncAll();
  EXPECT_THAT(out_.changes, IsEmpty());
  EXPECT_EQ(s, (SyncStats{.walked = 2}));
}

TEST_F(ShadowMapTest, SlotsAbsentFromTheStreamAreLeftAsTheyWere) {
  walk_.entries = {Leaf(0x0, k4K, 0x10000), Leaf(0x1000, k4K, 0x11000),
                   Leaf(0x2000, k4K, 0x12000)};
  SyncAll();
  out_.Take();
  // The page table of 0x1000 became unreadable; the others were cleared.
  walk_.entries = {Invalid(0x0, k4K), Invalid(0x2000, k4K)};
  SyncAll();
  EXPECT_THAT(out_.Take(), ElementsAre(Unmap(0x0, k4K, 0x10000),
                                       Unmap(0x2000, k4K, 0x12000)));
  EXPECT_THAT(All(),
              ElementsAre(memory::IommuTlbEntry{.iova = 0x1000,
                                                .translated_addr = 0x11000,
                                                .addr_mask = k4K,
                                                .perm = kIommuReadWrite}));
}

TEST_F(ShadowMapTest, EntriesOutsideTheSyncedRangeAreUntouched) {
  walk_.entries = {Leaf(0x0, k4K, 0x10000), Leaf(0x1000, k4K, 0x11000),
                   Leaf(0x2000, k4K, 0x12000)};
  SyncAll();
  out_.Take();
  walk_.entries = {Invalid(0x0, k4K), Invalid(0x1000, k4K),
                   Invalid(0x2000, k4K)};
  Sync({0x1000, 0x1fff});
  EXPECT_THAT(out_.Take(), ElementsAre(Unmap(0x1000, k4K, 0x11000)));
  EXPECT_EQ(shadow_.size(), 2u);
}

TEST_F(ShadowMapTest, PageSelectiveSyncInsideAnUnchangedSuperpageIsSilent) {
  walk_.entries = {Leaf(0x200000, k2M, 0x600000)};
  SyncAll();
  out_.Take();
  SyncStats s = Sync({0x234000, 0x234fff});
  EXPECT_THAT(out_.changes, IsEmpty());
  EXPECT_EQ(s.unchanged, 1u);
}

TEST_F(ShadowMapTest, SparseStreamOverManyEntriesTouchesOnlyWhatItReports) {
  std::vector<WalkEntry> full;
  for (uint64_t i = 0; i < 1000; ++i)
    full.push_back(Leaf(i * 0x1000, k4K, i * 0x1000));
  walk_.entries = full;
  SyncAll();
  out_.Take();
  // Only pages 3, 500 and 999 are readable now; 500 moved, 999 is cleared.
  walk_.entries = {full[3], Leaf(500 * 0x1000, k4K, 0xabc000),
                   Invalid(999 * 0x1000, k4K)};
  SyncStats s = SyncAll();
  EXPECT_THAT(out_.Take(), ElementsAre(Remap(500 * 0x1000, k4K,
                                             {500 * 0x1000, kIommuReadWrite},
                                             {0xabc000, kIommuReadWrite}),
                                       Unmap(999 * 0x1000, k4K, 999 * 0x1000)));
  EXPECT_EQ(
      s, (SyncStats{.walked = 3, .unchanged = 1, .changed = 1, .unmapped = 1}));
  EXPECT_EQ(shadow_.size(), 999u);
}

TEST_F(ShadowMapTest, UnmapAllUnmapsEachEntryAsMapped) {
  walk_.entries = {Leaf(0x0, k4K, 0x10000, kIommuRead),
                   Leaf(0x200000, k2M, 0x400000)};
  SyncAll();
  out_.Take();
  EXPECT_EQ(shadow_.UnmapAll(out_), 2u);
  EXPECT_THAT(out_.Take(), ElementsAre(Unmap(0x0, k4K, 0x10000, kIommuRead),
                                       Unmap(0x200000, k2M, 0x400000)));
  EXPECT_TRUE(shadow_.empty());
  SyncAll();  // the next sync maps everything again
  EXPECT_EQ(out_.Take().size(), 2u);
}

TEST_F(ShadowMapTest, ForEachReportsEntriesOverlappingTheRange) {
  walk_.entries = {Leaf(0x0, k4K, 0x10000), Leaf(0x200000, k2M, 0x400000),
                   Leaf(0x400000, k4K, 0x20000, kIommuRead)};
  SyncAll();
  std::vector<memory::IommuTlbEntry> seen;
  shadow_.ForEach({0x3ff000, 0x400000},
                  [&](const memory::IommuTlbEntry& e) { seen.push_back(e); });
  EXPECT_THAT(seen,
              ElementsAre(memory::IommuTlbEntry{.iova = 0x200000,
                                                .translated_addr = 0x400000,
                                                .addr_mask = k2M,
                                                .perm = kIommuReadWrite},
                          memory::IommuTlbEntry{.iova = 0x400000,
                                                .translated_addr = 0x20000,
                                                .addr_mask = k4K,
                                                .perm = kIommuRead}));
}

TEST_F(ShadowMapTest, LeafAtTheTopOfTheAddressSpace) {
  walk_.entries = {Leaf(0xffff'ffff'c000'0000, k1G, 0x40000000)};
  SyncAll();
  walk_.entries = {Invalid(0xffff'ff80'0000'0000, k512G)};
  SyncAll();
  EXPECT_THAT(out_.Take(),
              ElementsAre(Map(0xffff'ffff'c000'0000, k1G, 0x40000000),
                          Unmap(0xffff'ffff'c000'0000, k1G, 0x40000000)));
}

// --- Random page tables against a consumer that insists on exact events ---

// Applies changes to its own copy and fails the test on any event that is
// not exact: a MAP over something mapped, an UNMAP of something not mapped
// or mapped differently.
class StrictConsumer final : public ShadowEmitter {
 public:
  void MappingChanged(Iova iova, uint64_t addr_mask,
                      const std::optional<ShadowTranslation>& before,
                      const std::optional<ShadowTranslation>& after) override {
    ASSERT_TRUE(before || after);
    ASSERT_NE(before, after);
    if (before) {
      auto it = map.find(iova);
      ASSERT_NE(it, map.end()) << "UNMAP of unmapped 0x" << std::hex << iova;
      ASSERT_EQ(it->second.first, addr_mask);
      ASSERT_EQ(it->second.second, *before);
      map.erase(it);
    }
    if (after) {
      auto next = map.lower_bound(iova);
      ASSERT_TRUE(next == map.end() || next->first > iova + addr_mask);
      if (next != map.begin()) {
        auto prev = std::prev(next);
        ASSERT_LT(prev->first + prev->second.first, iova);
      }
      map[iova] = {addr_mask, *after};
    }
  }
  std::map<Iova, std::pair<uint64_t, ShadowTranslation>> map;
};

// Guest tables over 8 PDEs: each a 2M leaf, an invalid PDE, or a table of
// 512 4K entries; `unreadable` PDEs are absent from the stream.
struct RandomTables {
  static constexpr int kPdes = 8;
  enum Kind { kLeaf, kInvalid, kTable };
  Kind kind[kPdes] = {};
  bool unreadable[kPdes] = {};
  WalkEntry big[kPdes];
  std::vector<WalkEntry> small[kPdes];

  void Randomise(std::mt19937_64& rng, int pde) {
    const Iova base = uint64_t(pde) * 0x200000;
    kind[pde] = Kind(rng() % 3);
    unreadable[pde] = false;
    const Hwaddr gpa_base = (rng() % 16) * 0x200000;
    const IommuPerm perm = IommuPerm(1 + rng() % 3);
    big[pde] = kind[pde] == kLeaf ? Leaf(base, k2M, gpa_base, perm)
                                  : Invalid(base, k2M);
    small[pde].clear();
    if (kind[pde] != kTable) return;
    for (uint64_t i = 0; i < 512; ++i) {
      const Iova iova = base + i * 0x1000;
      if (rng() % 4 == 0) {
        small[pde].push_back(Invalid(iova, k4K));
      } else {
        small[pde].push_back(
            Leaf(iova, k4K, (rng() % 8) * 0x1000, IommuPerm(1 + rng() % 3)));
      }
    }
  }
  void Walk(const Range& r, WalkSink sink) const {
    for (int p = 0; p < kPdes; ++p) {
      if (unreadable[p] || !Range{big[p].iova, big[p].iova + k2M}.Overlaps(r))
        continue;
      if (kind[p] != kTable) {
        sink(big[p]);
        continue;
      }
      for (const WalkEntry& e : small[p]) {
        if (Range{e.iova, e.iova + k4K}.Overlaps(r)) sink(e);
      }
    }
  }
};

TEST(ShadowMapRandomTest, ConsumerSeesExactEventsAndConvergesToTheTables) {
  std::mt19937_64 rng(42);
  RandomTables tables;
  for (int p = 0; p < RandomTables::kPdes; ++p) tables.Randomise(rng, p);
  ShadowMap shadow;
  StrictConsumer consumer;
  auto walk = [&](const Range& r, WalkSink sink) { tables.Walk(r, sink); };
  for (int round = 0; round < 300; ++round) {
    const int p = int(rng() % RandomTables::kPdes);
    if (rng() % 2) {
      tables.Randomise(rng, p);
    } else if (tables.kind[p] == RandomTables::kTable) {
      tables.small[p][rng() % 512].gpa = (rng() % 8) * 0x1000;
    }
    for (int q = 0; q < RandomTables::kPdes; ++q)
      tables.unreadable[q] = rng() % 5 == 0;
    // A PSI of 1 to 1024 pages somewhere in the 16M.
    const uint64_t first = (rng() % 4096) * 0x1000;
    const uint64_t pages = 1 + rng() % 1024;
    shadow.Sync({first, first + pages * 0x1000 - 1}, walk, consumer);
    if (HasFatalFailure()) return;
  }
  for (int q = 0; q < RandomTables::kPdes; ++q) tables.unreadable[q] = false;
  shadow.Sync(Range::Full(), walk, consumer);
  ASSERT_FALSE(HasFatalFailure());

  // Both the shadow and the consumer now hold exactly the leaves.
  std::map<Iova, std::pair<uint64_t, ShadowTranslation>> want;
  tables.Walk(Range::Full(), [&](const WalkEntry& e) {
    if (e.perm != kIommuNone) want[e.iova] = {e.addr_mask, {e.gpa, e.perm}};
  });
  EXPECT_EQ(consumer.map, want);
  std::map<Iova, std::pair<uint64_t, ShadowTranslation>> got;
  shadow.ForEach(Range::Full(), [&](const memory::IommuTlbEntry& e) {
    got[e.iova] = {e.addr_mask, {e.translated_addr, e.perm}};
  });
  EXPECT_EQ(got, want);
  RecordingEmitter again;
  shadow.Sync(Range::Full(), walk, again);
  EXPECT_THAT(again.changes, IsEmpty());
}

// Syncs of one or a few pages that start near where the previous one
// ended (before, at or after it: the shadow's remembered position), with
// the pages mapped, remapped and cleared at random: every event exact.
TEST(ShadowMapRandomTest, NearbyPageSyncsStayExact) {
  std::mt19937_64 rng(7);
  RandomTables tables;
  for (int p = 0; p < RandomTables::kPdes; ++p) {
    tables.kind[p] = RandomTables::kTable;
    tables.big[p] = Invalid(uint64_t(p) * 0x200000, k2M);
    for (uint64_t i = 0; i < 512; ++i) {
      tables.small[p].push_back(Invalid(p * 0x200000 + i * 0x1000, k4K));
    }
  }
  ShadowMap shadow;
  StrictConsumer consumer;
  auto walk = [&](const Range& r, WalkSink sink) { tables.Walk(r, sink); };
  const int64_t kPages = RandomTables::kPdes * 512;
  int64_t page = 0;
  for (int round = 0; round < 5000; ++round) {
    page += int64_t(rng() % 24) - 8;  // mostly forward, sometimes back
    page = std::clamp<int64_t>(page, 0, kPages - 4);
    const uint64_t pages = 1 + rng() % 4;
    for (uint64_t i = 0; i < pages; ++i) {
      WalkEntry& e = tables.small[(page + i) / 512][(page + i) % 512];
      if (rng() % 4 == 0) {
        e = Invalid(e.iova, k4K);
      } else {
        e = Leaf(e.iova, k4K, (rng() % 8) * 0x1000, IommuPerm(1 + rng() % 3));
      }
    }
    shadow.Sync({uint64_t(page) * 0x1000, (page + pages) * 0x1000 - 1}, walk,
                consumer);
    if (::testing::Test::HasFatalFailure()) return;
    if (round % 1000 == 999) {  // and the position is forgotten
      const size_t mapped = consumer.map.size();
      ASSERT_EQ(shadow.UnmapAll(consumer), mapped);
      ASSERT_TRUE(consumer.map.empty());
    }
  }
  std::map<Iova, std::pair<uint64_t, ShadowTranslation>> want;
  tables.Walk(Range::Full(), [&](const WalkEntry& e) {
    if (e.perm != kIommuNone) want[e.iova] = {e.addr_mask, {e.gpa, e.perm}};
  });
  shadow.Sync(Range::Full(), walk, consumer);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  EXPECT_EQ(consumer.map, want);
  EXPECT_EQ(shadow.size(), want.size());
}

// --- With the real notifier chains ---

class NullModel final : public memory::IommuModel {
 public:
  memory::IommuTlbEntry Translate(Iova, IommuPerm, int) override { return {}; }
};

class RecordingNotifier final : public memory::IommuNotifier {
 public:
  void Notify(const memory::IommuEvent& event) override {
    events.push_back(event);
  }
  std::vector<memory::IommuEvent> events;
};

memory::IommuEvent Event(memory::IommuEventType type, Iova iova, uint64_t mask,
                         Hwaddr gpa, IommuPerm perm, memory::AddressSpace* as) {
  return {.type = type,
          .entry = {.target_as = as,
                    .iova = iova,
                    .translated_addr = gpa,
                    .addr_mask = mask,
                    .perm = perm}};
}

TEST(ShadowMapChainsTest, ChangeReachesUnmapChainBeforeMapChain) {
  NullModel model;
  memory::IommuNotifierChains chains(&model, "dmar");
  RecordingNotifier n;
  auto h = chains.Register(&n, {.flags = memory::kNotifyIotlbEvents});
  ASSERT_TRUE(h.ok());
  auto* as = reinterpret_cast<memory::AddressSpace*>(
      uintptr_t{0x1000});  // never dereferenced
  NotifierChainsEmitter out(&chains, as);
  ShadowMap shadow;
  FakeWalk walk{{Leaf(0x0, k4K, 0x10000), Leaf(0x200000, k2M, 0x400000)}};
  auto fn = [&](const Range& r, WalkSink sink) { walk(r, sink); };
  shadow.Sync(Range::Full(), fn, out);
  shadow.Sync(Range::Full(), fn, out);  // unchanged: nothing
  walk.entries = {Leaf(0x0, k4K, 0x20000, kIommuRead), Invalid(0x200000, k2M)};
  shadow.Sync(Range::Full(), fn, out);
  using memory::IommuEventType;
  EXPECT_THAT(
      n.events,
      ElementsAre(
          Event(IommuEventType::kMap, 0x0, k4K, 0x10000, kIommuReadWrite, as),
          Event(IommuEventType::kMap, 0x200000, k2M, 0x400000, kIommuReadWrite,
                as),
          Event(IommuEventType::kUnmap, 0x0, k4K, 0x10000, kIommuNone, as),
          Event(IommuEventType::kMap, 0x0, k4K, 0x20000, kIommuRead, as),
          Event(IommuEventType::kUnmap, 0x200000, k2M, 0x400000, kIommuNone,
                as)));
  h->Reset();
}

}  // namespace
}  // namespace viommu::vtd
