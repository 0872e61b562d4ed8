#include "viommu/util/range.h"

#include "gtest/gtest.h"

namespace viommu {
namespace {

TEST(RangeTest, FromBaseSizeIsInclusive) {
  Range r = Range::FromBaseSize(0x1000, 0x2000);
  EXPECT_EQ(r.first, 0x1000u);
  EXPECT_EQ(r.last, 0x2fffu);
  EXPECT_EQ(r.Size(), 0x2000);
}

TEST(RangeTest, FullRangeHasSize2To64) {
  EXPECT_EQ(Range::Full().Size(), kSize2To64);
  EXPECT_EQ(Range::FromBaseSize(0, kSize2To64), Range::Full());
}

TEST(RangeTest, ClippedConstructionStopsAtTheTopOfTheSpace) {
  auto r = Range::FromBaseSizeClipped(UINT64_MAX - 0xfff, 0x2000);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->last, UINT64_MAX);
  EXPECT_FALSE(Range::FromBaseSizeClipped(0x1000, 0).has_value());
}

TEST(RangeTest, ContainsAndOverlapsAreInclusive) {
  Range r{0x10, 0x1f};
  EXPECT_TRUE(r.Contains(0x10));
  EXPECT_TRUE(r.Contains(0x1f));
  EXPECT_FALSE(r.Contains(0x20));
  EXPECT_TRUE(r.Contains(Range{0x12, 0x1f}));
  EXPECT_FALSE(r.Contains(Range{0x12, 0x20}));
  EXPECT_TRUE(r.Overlaps(Range{0x1f, 0x30}));
  EXPECT_FALSE(r.Overlaps(Range{0x20, 0x30}));
}

TEST(RangeTest, IntersectKeepsTheCommonPart) {
  EXPECT_EQ((Range{0x10, 0x1f}).Intersect(Range{0x18, 0x40}),
            (Range{0x18, 0x1f}));
}

}  // namespace
}  // namespace viommu
