// FlatRangeTree: lookups, splices at the edges of the 64-bit space,
// persistence, and a randomized comparison against a std::map model.
// Entries carry no region (mr is null); offset_in_region tells them apart.
#include "viommu/memory/flat_range_tree.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace viommu::memory {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

FlatRange R(uint64_t first, uint64_t last, uint64_t id = 0) {
  FlatRange fr;
  fr.range = {first, last};
  fr.offset_in_region = id;
  return fr;
}

// "first-last#id" for every range, in order.
std::vector<std::string> Dump(const FlatRangeTree& t) {
  std::vector<std::string> out;
  t.ForEach([&](const FlatRange& fr) {
    out.push_back(std::to_string(fr.range.first) + "-" +
                  std::to_string(fr.range.last) + "#" +
                  std::to_string(fr.offset_in_region));
  });
  return out;
}

std::vector<uint64_t> Ids(const std::vector<FlatRange>& ranges) {
  std::vector<uint64_t> ids;
  for (const FlatRange& fr : ranges) ids.push_back(fr.offset_in_region);
  return ids;
}

// n ranges of 0x10 bytes every 0x100 bytes, with ids 0 .. n - 1.
std::vector<FlatRange> Spaced(size_t n) {
  std::vector<FlatRange> v;
  for (size_t i = 0; i < n; ++i) v.push_back(R(i * 0x100, i * 0x100 + 0xf, i));
  return v;
}

TEST(FlatRangeTreeTest, EmptyTreeHasNothing) {
  FlatRangeTree t;
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.Find(0), nullptr);
  EXPECT_EQ(t.Find(UINT64_MAX), nullptr);
  std::vector<FlatRange> out;
  t.CollectOverlapping(Range::Full(), &out);
  EXPECT_THAT(out, IsEmpty());
  EXPECT_THAT(Dump(t), IsEmpty());
  EXPECT_TRUE(FlatRangeTree::FromSorted({}).empty());
}

TEST(FlatRangeTreeTest, FindsRangesAtAddressZeroAndMax) {
  auto t = FlatRangeTree::FromSorted(
      {R(0, 0, 1), R(10, 19, 2), R(UINT64_MAX, UINT64_MAX, 3)});
  ASSERT_NE(t.Find(0), nullptr);
  EXPECT_EQ(t.Find(0)->offset_in_region, 1u);
  EXPECT_EQ(t.Find(1), nullptr);
  EXPECT_EQ(t.Find(9), nullptr);
  EXPECT_EQ(t.Find(19)->offset_in_region, 2u);
  EXPECT_EQ(t.Find(20), nullptr);
  EXPECT_EQ(t.Find(UINT64_MAX - 1), nullptr);
  ASSERT_NE(t.Find(UINT64_MAX), nullptr);
  EXPECT_EQ(t.Find(UINT64_MAX)->offset_in_region, 3u);
}

TEST(FlatRangeTreeTest, RangeCoveringWholeSpaceIsFoundEverywhere) {
  auto t = FlatRangeTree::FromSorted({R(0, UINT64_MAX, 7)});
  EXPECT_EQ(t.size(), 1u);
  for (uint64_t a : {uint64_t{0}, uint64_t{1} << 63, UINT64_MAX}) {
    ASSERT_NE(t.Find(a), nullptr);
    EXPECT_EQ(t.Find(a)->range, Range::Full());
  }
  std::vector<FlatRange> out;
  t.CollectOverlapping({UINT64_MAX, UINT64_MAX}, &out);
  EXPECT_THAT(Ids(out), ElementsAre(7));
}

TEST(FlatRangeTreeTest, FindsEveryRangeOfALargeTree) {
  auto t = FlatRangeTree::FromSorted(Spaced(10000));
  EXPECT_EQ(t.size(), 10000u);
  for (uint64_t i = 0; i < 10000; ++i) {
    const FlatRange* fr = t.Find(i * 0x100 + 0x8);
    ASSERT_NE(fr, nullptr) << i;
    EXPECT_EQ(fr->offset_in_region, i);
    EXPECT_EQ(t.Find(i * 0x100 + 0x10), nullptr) << i;
  }
  EXPECT_EQ(t.Find(10000 * 0x100), nullptr);
}

TEST(FlatRangeTreeTest, CollectIncludesRangeStartingBeforeWindow) {
  auto t = FlatRangeTree::FromSorted(Spaced(1000));
  std::vector<FlatRange> out;
  t.CollectOverlapping({0x508, 0x807}, &out);  // 0x500-0x50f .. 0x800-0x80f
  EXPECT_THAT(Ids(out), ElementsAre(5, 6, 7, 8));
  out.clear();
  t.CollectOverlapping({0x510, 0x5ff}, &out);  // a gap
  EXPECT_THAT(out, IsEmpty());
  out.clear();
  t.CollectOverlapping({0x50f, 0x50f}, &out);  // last byte only
  EXPECT_THAT(Ids(out), ElementsAre(5));
}

TEST(FlatRangeTreeTest, CollectOverWholeSpaceReturnsAllInOrder) {
  auto t = FlatRangeTree::FromSorted(Spaced(3000));
  std::vector<FlatRange> out;
  t.CollectOverlapping(Range::Full(), &out);
  ASSERT_EQ(out.size(), 3000u);
  for (uint64_t i = 0; i < 3000; ++i) EXPECT_EQ(out[i].offset_in_region, i);
}

TEST(FlatRangeTreeTest, SpliceReplacesRangesStartingInSpan) {
  auto t = FlatRangeTree::FromSorted({R(0, 9, 1), R(10, 19, 2), R(20, 29, 3)});
  // [5, 25] holds the starts of 10-19 and 20-29 only.
  auto t2 = t.Splice({5, 25}, {R(10, 12, 4)});
  EXPECT_THAT(Dump(t2), ElementsAre("0-9#1", "10-12#4"));
  EXPECT_EQ(t2.size(), 2u);
}

TEST(FlatRangeTreeTest, SpliceAtStartOfSpace) {
  auto t = FlatRangeTree::FromSorted({R(0, 0xff, 1), R(0x100, 0x1ff, 2)});
  auto t2 = t.Splice({0, 0xff}, {R(0, 0x7f, 3), R(0x80, 0xff, 4)});
  EXPECT_THAT(Dump(t2), ElementsAre("0-127#3", "128-255#4", "256-511#2"));
}

TEST(FlatRangeTreeTest, SpliceAtEndOfSpace) {
  const uint64_t top = UINT64_MAX - 0xff;
  auto t = FlatRangeTree::FromSorted({R(0, 0xff, 1), R(top, UINT64_MAX, 2)});
  auto t2 = t.Splice({top, UINT64_MAX},
                     {R(top, UINT64_MAX - 1, 3), R(UINT64_MAX, UINT64_MAX, 4)});
  EXPECT_EQ(t2.size(), 3u);
  EXPECT_EQ(t2.Find(UINT64_MAX)->offset_in_region, 4u);
  EXPECT_EQ(t2.Find(UINT64_MAX - 1)->offset_in_region, 3u);
  EXPECT_EQ(t2.Find(0)->offset_in_region, 1u);
}

TEST(FlatRangeTreeTest, SpliceOfFullSpaceReplacesEverything) {
  auto t = FlatRangeTree::FromSorted(Spaced(5000));
  auto t2 = t.Splice(Range::Full(), {R(0, UINT64_MAX, 9)});
  EXPECT_THAT(Dump(t2), ElementsAre("0-18446744073709551615#9"));
}

TEST(FlatRangeTreeTest, SpliceRemovingEverythingLeavesEmptyTree) {
  auto t = FlatRangeTree::FromSorted(Spaced(5000));
  auto t2 = t.Splice(Range::Full(), {});
  EXPECT_TRUE(t2.empty());
  EXPECT_EQ(t2.Find(0x8), nullptr);
  // And the empty tree can grow again.
  auto t3 = t2.Splice({0, 0}, {R(0, 0, 1)});
  EXPECT_THAT(Dump(t3), ElementsAre("0-0#1"));
}

TEST(FlatRangeTreeTest, SpliceRemovingNothingKeepsContents) {
  auto t = FlatRangeTree::FromSorted(Spaced(100));
  auto t2 = t.Splice({0x10, 0xff}, {});  // a gap
  EXPECT_EQ(Dump(t2), Dump(t));
  // Same entries, not copies: nothing changed, so nothing was rebuilt.
  EXPECT_EQ(t2.Find(0x500), t.Find(0x500));
}

TEST(FlatRangeTreeTest, SpliceIntoEmptyTree) {
  FlatRangeTree t;
  auto t2 = t.Splice({0, 0xfff}, {R(0x100, 0x1ff, 1)});
  EXPECT_THAT(Dump(t2), ElementsAre("256-511#1"));
}

TEST(FlatRangeTreeTest, SpliceAcrossManyLeaves) {
  auto t = FlatRangeTree::FromSorted(Spaced(5000));
  // Removes ranges 1000 .. 3999 (several hundred leaves' worth), inserts 40.
  std::vector<FlatRange> repl;
  for (uint64_t i = 0; i < 40; ++i) {
    repl.push_back(R(1000 * 0x100 + i * 0x1000, 1000 * 0x100 + i * 0x1000 + 1,
                     100000 + i));
  }
  auto t2 = t.Splice({1000 * 0x100, 4000 * 0x100 - 1}, repl);
  ASSERT_EQ(t2.size(), 5000u - 3000u + 40u);
  std::vector<FlatRange> all;
  t2.CollectOverlapping(Range::Full(), &all);
  ASSERT_EQ(all.size(), t2.size());
  for (size_t i = 0; i < 1000; ++i) EXPECT_EQ(all[i].offset_in_region, i);
  for (size_t i = 0; i < 40; ++i) {
    EXPECT_EQ(all[1000 + i].offset_in_region, 100000 + i);
  }
  for (size_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(all[1040 + i].offset_in_region, 4000 + i);
  }
  EXPECT_EQ(t2.Find(3999 * 0x100), nullptr);
  EXPECT_EQ(t2.Find(4000 * 0x100)->offset_in_region, 4000u);
}

TEST(FlatRangeTreeTest, ReplacementOutsideSpanMergesWithSurvivors) {
  auto t = FlatRangeTree::FromSorted(Spaced(10));  // ids 0..9
  // Removes range 2, adds one in the gap after range 5 (outside the span),
  // keeping ranges 3..5 that lie between.
  auto t2 = t.Splice({0x200, 0x2ff}, {R(0x580, 0x58f, 42)});
  std::vector<FlatRange> all;
  t2.CollectOverlapping(Range::Full(), &all);
  EXPECT_THAT(Ids(all), ElementsAre(0, 1, 3, 4, 5, 42, 6, 7, 8, 9));
}

TEST(FlatRangeTreeTest, OldTreeUnchangedAfterSplice) {
  auto t = FlatRangeTree::FromSorted(Spaced(2000));
  auto before = Dump(t);
  auto t2 = t.Splice({0x100, 0x50000}, {R(0x100, 0x50000, 1)});
  auto t3 = t2.Splice(Range::Full(), {});
  EXPECT_EQ(Dump(t), before);
  EXPECT_EQ(t.size(), 2000u);
  EXPECT_EQ(t.Find(0x200)->offset_in_region, 2u);
  EXPECT_EQ(t2.Find(0x200)->offset_in_region, 1u);
  EXPECT_TRUE(t3.empty());
}

TEST(FlatRangeTreeTest, SpliceSharesUntouchedLeaves) {
  auto t = FlatRangeTree::FromSorted(Spaced(10000));
  auto t2 = t.Splice({9999 * 0x100, 9999 * 0x100},
                     {R(9999 * 0x100, 9999 * 0x100, 5)});
  // A range far from the splice is the very same object in both trees.
  EXPECT_EQ(t2.Find(0x108), t.Find(0x108));
  EXPECT_NE(t2.Find(9999 * 0x100), t.Find(9999 * 0x100));
}

TEST(FlatRangeTreeTest, ManySmallSplicesKeepLookupsCorrect) {
  // Inserting one at a time in order exercises every join and split path
  // on the right spine; removing every other one exercises underflow.
  FlatRangeTree t;
  for (uint64_t i = 0; i < 3000; ++i) {
    t = t.Splice({i * 0x10, i * 0x10 + 0xf}, {R(i * 0x10, i * 0x10 + 7, i)});
  }
  ASSERT_EQ(t.size(), 3000u);
  for (uint64_t i = 0; i < 3000; i += 2) t = t.Splice({i * 0x10, i * 0x10}, {});
  ASSERT_EQ(t.size(), 1500u);
  for (uint64_t i = 0; i < 3000; ++i) {
    const FlatRange* fr = t.Find(i * 0x10 + 3);
    if (i % 2 == 0) {
      EXPECT_EQ(fr, nullptr) << i;
    } else {
      ASSERT_NE(fr, nullptr) << i;
      EXPECT_EQ(fr->offset_in_region, i);
    }
  }
}

// ---- Randomized comparison against a std::map keyed by range.first. ----

using Model = std::map<uint64_t, FlatRange>;

const FlatRange* ModelFind(const Model& m, uint64_t addr) {
  auto it = m.upper_bound(addr);
  if (it == m.begin()) return nullptr;
  --it;
  return it->second.range.Contains(addr) ? &it->second : nullptr;
}

std::vector<uint64_t> ModelCollect(const Model& m, const Range& w) {
  std::vector<uint64_t> ids;
  auto it = m.upper_bound(w.first);
  if (it != m.begin()) --it;
  for (; it != m.end() && it->first <= w.last; ++it) {
    if (it->second.range.Overlaps(w))
      ids.push_back(it->second.offset_in_region);
  }
  return ids;
}

class RandomSplices : public ::testing::TestWithParam<uint32_t> {
 protected:
  // Addresses cluster at the bottom and top of the space so that both
  // ends are exercised and spans hit many ranges.
  uint64_t Addr() {
    uint64_t a = rng_() % kCluster;
    return rng_() % 2 ? a : UINT64_MAX - a;
  }
  uint64_t Below(uint64_t n) { return rng_() % n; }

  // Non-overlapping random ranges inside [lo, hi], sorted.
  std::vector<FlatRange> RandomRangesIn(uint64_t lo, uint64_t hi,
                                        size_t count) {
    std::vector<FlatRange> out;
    uint64_t cur = lo;
    for (size_t i = 0; i < count; ++i) {
      uint64_t room = hi - cur;  // bytes after cur
      if (room < 2) break;
      uint64_t gap = Below(std::min<uint64_t>(room / 2, 64));
      uint64_t len = 1 + Below(std::min<uint64_t>(room - gap, 64));
      uint64_t first = cur + gap;
      uint64_t last = first + len - 1;
      if (last > hi) break;
      out.push_back(R(first, last, next_id_++));
      if (last == hi) break;
      cur = last + 1;
    }
    return out;
  }

  void CheckAgainstModel(const FlatRangeTree& t, const Model& m) {
    ASSERT_EQ(t.size(), m.size());
    for (int k = 0; k < 16; ++k) {
      uint64_t a = Addr();
      if (k < 4 && !m.empty()) {  // near an existing boundary
        auto it = m.lower_bound(a);
        if (it == m.end()) --it;
        a = (k % 2) ? it->second.range.first : it->second.range.last;
        if (k == 3) a += 1;
      }
      const FlatRange* got = t.Find(a);
      const FlatRange* want = ModelFind(m, a);
      ASSERT_EQ(got == nullptr, want == nullptr) << std::hex << a;
      if (got) {
        ASSERT_EQ(got->offset_in_region, want->offset_in_region);
      }
    }
    uint64_t a = Addr(), b = Addr();
    Range w{std::min(a, b), std::max(a, b)};
    if (rng_() % 2) w.last = std::min(w.last, w.first + Below(0x2000));
    std::vector<FlatRange> got;
    t.CollectOverlapping(w, &got);
    ASSERT_EQ(Ids(got), ModelCollect(m, w));
  }

  static void CheckAll(const FlatRangeTree& t, const Model& m) {
    std::vector<uint64_t> got, want;
    t.ForEach([&](const FlatRange& fr) { got.push_back(fr.offset_in_region); });
    for (const auto& [first, fr] : m) want.push_back(fr.offset_in_region);
    ASSERT_EQ(got, want);
  }

  static constexpr uint64_t kCluster = 1 << 18;
  std::mt19937_64 rng_{GetParam()};
  uint64_t next_id_ = 1;
};

TEST_P(RandomSplices, MatchesMapModel) {
  Model m;
  std::vector<FlatRange> init;
  for (const FlatRange& fr : RandomRangesIn(0, kCluster, 1500))
    init.push_back(fr);
  for (const FlatRange& fr :
       RandomRangesIn(UINT64_MAX - kCluster, UINT64_MAX, 1500)) {
    init.push_back(fr);
  }
  for (const FlatRange& fr : init) m[fr.range.first] = fr;
  FlatRangeTree t = FlatRangeTree::FromSorted(init);
  CheckAll(t, m);

  std::vector<std::pair<FlatRangeTree, Model>> snapshots;
  for (int op = 0; op < 4000; ++op) {
    // A span: mostly small, sometimes many leaves wide, sometimes at an end.
    uint64_t a = Addr();
    uint64_t len;
    switch (Below(16)) {
      case 0:
        len = Below(kCluster / 4);
        break;
      case 1:
      case 2:
        len = Below(16);
        break;
      default:
        len = Below(0x800);
        break;
    }
    Range span{a, a > UINT64_MAX - len ? UINT64_MAX : a + len};
    if (Below(1000) == 0) span.first = 0;
    if (Below(1000) == 0) span.last = UINT64_MAX;
    if (Below(4000) == 0) span = Range::Full();

    // Snapshots keep the tree and model as they were before this op; the
    // model is otherwise updated in place (copying a map of thousands of
    // nodes per op made this test crawl under ASan).
    if (op % 400 == 0) snapshots.emplace_back(t, m);

    // The model after removal, and where replacements may go.
    Model& next = m;
    for (auto it = next.lower_bound(span.first);
         it != next.end() && it->first <= span.last;) {
      it = next.erase(it);
    }
    uint64_t free_lo = span.first;
    auto prev = next.lower_bound(span.first);
    if (prev != next.begin()) {
      --prev;
      if (prev->second.range.last >= free_lo) {
        free_lo = prev->second.range.last == UINT64_MAX
                      ? UINT64_MAX
                      : prev->second.range.last + 1;
      }
    }
    std::vector<FlatRange> repl;
    if (free_lo <= span.last && free_lo != UINT64_MAX && Below(4) != 0) {
      // Up to about as many as fit (ranges average ~64 bytes with gaps),
      // so that the tree keeps thousands of ranges.
      uint64_t fit = std::min<uint64_t>((span.last - free_lo) / 64, 400);
      size_t count = fit / 2 + Below(fit / 2 + 2);
      repl = RandomRangesIn(free_lo, span.last, count);
    }
    // Occasionally also fill a free gap elsewhere (outside the span).
    if (Below(10) == 0) {
      uint64_t x = Addr();
      if (ModelFind(next, x) == nullptr && !span.Contains(x)) {
        auto after = next.upper_bound(x);
        uint64_t hi = after == next.end() ? UINT64_MAX : after->first - 1;
        if (hi - x > 4) hi = x + 4;
        bool clash = false;
        for (const FlatRange& fr : repl) clash |= fr.range.Overlaps({x, hi});
        if (!clash) {
          repl.push_back(R(x, hi, next_id_++));
          std::sort(repl.begin(), repl.end(),
                    [](const FlatRange& p, const FlatRange& q) {
                      return p.range.first < q.range.first;
                    });
        }
      }
    }
    for (const FlatRange& fr : repl) next[fr.range.first] = fr;

    FlatRangeTree t2 = t.Splice(span, repl);
    ASSERT_NO_FATAL_FAILURE(CheckAgainstModel(t2, next)) << "op " << op;
    if (op % 100 == 0) {
      ASSERT_NO_FATAL_FAILURE(CheckAll(t2, next));
    }
    t = std::move(t2);
  }
  CheckAll(t, m);
  // Persistence: every snapshot still shows exactly what it showed.
  for (const auto& [tree, model] : snapshots) {
    ASSERT_NO_FATAL_FAILURE(CheckAll(tree, model));
    ASSERT_NO_FATAL_FAILURE(CheckAgainstModel(tree, model));
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, RandomSplices,
                         ::testing::Values(1u, 2u, 3u, 0xdecafu, 20240601u));

}  // namespace
}  // namespace viommu::memory
