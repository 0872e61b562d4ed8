#include "viommu/util/interval_index.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/util/range.h"

namespace viommu {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;

std::vector<int> Overlapping(const IntervalIndex<int>& index, Range query) {
  std::vector<int> out;
  index.ForEachOverlap(query, [&](const Range&, int v) { out.push_back(v); });
  return out;
}

TEST(IntervalIndexTest, EmptyIndexHasNoOverlaps) {
  IntervalIndex<int> index;
  EXPECT_TRUE(index.empty());
  EXPECT_EQ(index.size(), 0u);
  EXPECT_THAT(Overlapping(index, Range::Full()), IsEmpty());
}

TEST(IntervalIndexTest, FindsOnlyOverlappingRanges) {
  IntervalIndex<int> index;
  index.Insert({0x1000, 0x1fff}, 1);
  index.Insert({0x2000, 0x2fff}, 2);
  index.Insert({0x5000, 0x5fff}, 3);
  EXPECT_THAT(Overlapping(index, {0x1800, 0x2000}), UnorderedElementsAre(1, 2));
  EXPECT_THAT(Overlapping(index, {0x3000, 0x4fff}), IsEmpty());
  EXPECT_THAT(Overlapping(index, {0x5fff, 0x5fff}), ElementsAre(3));
}

TEST(IntervalIndexTest, BoundariesAreInclusive) {
  IntervalIndex<int> index;
  index.Insert({0x1000, 0x1fff}, 1);
  EXPECT_THAT(Overlapping(index, {0, 0x1000}), ElementsAre(1));
  EXPECT_THAT(Overlapping(index, {0x1fff, 0x3000}), ElementsAre(1));
  EXPECT_THAT(Overlapping(index, {0, 0xfff}), IsEmpty());
  EXPECT_THAT(Overlapping(index, {0x2000, 0x3000}), IsEmpty());
}

TEST(IntervalIndexTest, LongRangeStartingFarBeforeQueryIsFound) {
  IntervalIndex<int> index;
  index.Insert({0, 0xffff'ffff}, 1);
  index.Insert({0x8000'0000, 0x8000'0000}, 2);
  EXPECT_THAT(Overlapping(index, {0xffff'0000, 0xffff'0000}), ElementsAre(1));
}

TEST(IntervalIndexTest, FullRangeAndTopOfSpace) {
  IntervalIndex<int> index;
  index.Insert(Range::Full(), 1);
  index.Insert({UINT64_MAX, UINT64_MAX}, 2);
  EXPECT_THAT(Overlapping(index, {UINT64_MAX, UINT64_MAX}),
              UnorderedElementsAre(1, 2));
  EXPECT_THAT(Overlapping(index, {0, 0}), ElementsAre(1));
}

TEST(IntervalIndexTest, EqualRangesAreKeptApartAndErasedByKey) {
  IntervalIndex<int> index;
  auto k1 = index.Insert({0x1000, 0x1fff}, 1);
  index.Insert({0x1000, 0x1fff}, 2);
  EXPECT_THAT(Overlapping(index, {0x1000, 0x1000}), UnorderedElementsAre(1, 2));
  EXPECT_TRUE(index.Erase(k1));
  EXPECT_THAT(Overlapping(index, {0x1000, 0x1000}), ElementsAre(2));
  EXPECT_EQ(index.size(), 1u);
}

TEST(IntervalIndexTest, EraseOfMissingKeyReturnsFalse) {
  IntervalIndex<int> index;
  auto key = index.Insert({1, 2}, 1);
  EXPECT_TRUE(index.Erase(key));
  EXPECT_FALSE(index.Erase(key));
  EXPECT_TRUE(index.empty());
}

TEST(IntervalIndexTest, ForEachVisitsEveryEntry) {
  IntervalIndex<int> index;
  index.Insert({0, 0}, 1);
  index.Insert({10, 1000}, 2);
  index.Insert(Range::Full(), 3);
  std::vector<int> all;
  index.ForEach([&](const Range&, int v) { all.push_back(v); });
  EXPECT_THAT(all, UnorderedElementsAre(1, 2, 3));
}

// Random ranges of mixed size classes (including ones near 0 and 2^64),
// random inserts/erases, compared with a brute-force scan.
TEST(IntervalIndexTest, MatchesBruteForceOnRandomOperations) {
  std::mt19937_64 rng(20240611);
  auto random_range = [&]() -> Range {
    uint64_t first;
    switch (rng() % 4) {
      case 0:
        first = rng() % 0x10000;
        break;
      case 1:
        first = UINT64_MAX - rng() % 0x10000;
        break;
      default:
        first = rng();
    }
    int bits = static_cast<int>(rng() % 65);
    uint64_t span = bits == 0 ? 0 : rng() >> (64 - bits);
    uint64_t last = span > UINT64_MAX - first ? UINT64_MAX : first + span;
    return {first, last};
  };

  IntervalIndex<int> index;
  std::vector<std::pair<IntervalIndex<int>::Key, int>> live;
  int next_value = 0;
  for (int step = 0; step < 4000; ++step) {
    if (live.empty() || rng() % 3 != 0) {
      Range r = random_range();
      live.emplace_back(index.Insert(r, next_value), next_value);
      ++next_value;
    } else {
      size_t i = rng() % live.size();
      ASSERT_TRUE(index.Erase(live[i].first));
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    }
    ASSERT_EQ(index.size(), live.size());
    if (step % 8 == 0) {
      Range q = random_range();
      std::vector<int> expected;
      for (const auto& [key, value] : live) {
        if (key.range.Overlaps(q)) expected.push_back(value);
      }
      ASSERT_THAT(Overlapping(index, q), UnorderedElementsAreArray(expected))
          << "query " << q << " at step " << step;
    }
  }
}

}  // namespace
}  // namespace viommu
