// util/le_bytes.h: the little-endian loads and stores and the all-ones
// value every register file and config space uses.
#include "viommu/util/le_bytes.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace viommu {
namespace {

TEST(LeBytesTest, LoadReadsLowByteFirstForEachSize) {
  const uint8_t b[8] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
  EXPECT_EQ(LoadLe(b, 1), 0x01u);
  EXPECT_EQ(LoadLe(b, 2), 0x0201u);
  EXPECT_EQ(LoadLe(b, 3), 0x030201u);
  EXPECT_EQ(LoadLe(b, 4), 0x04030201u);
  EXPECT_EQ(LoadLe(b, 8), 0x0807060504030201u);
}

TEST(LeBytesTest, StoreWritesOnlySizeBytes) {
  uint8_t b[8] = {0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa};
  StoreLe(b, 0x1122334455667788, 3);
  EXPECT_EQ(b[0], 0x88);
  EXPECT_EQ(b[1], 0x77);
  EXPECT_EQ(b[2], 0x66);
  EXPECT_EQ(b[3], 0xaa);
  StoreLe(b, 0x1122334455667788, 8);
  EXPECT_EQ(LoadLe(b, 8), 0x1122334455667788u);
}

TEST(LeBytesTest, CommonSizesStoreAndLoadUnalignedWithoutTouchingNeighbours) {
  for (unsigned size : {1u, 2u, 4u, 8u}) {
    uint8_t b[10];
    for (uint8_t& x : b) x = 0xaa;
    StoreLe(b + 1, 0x8877665544332211, size);  // odd address
    EXPECT_EQ(b[0], 0xaa) << size;
    EXPECT_EQ(b[1], 0x11) << size;
    EXPECT_EQ(b[1 + size], 0xaa) << size;
    EXPECT_EQ(LoadLe(b + 1, size), 0x8877665544332211 & AllOnes(size))
        << size;
  }
}

TEST(LeBytesTest, AllOnesHasSizeBytesSet) {
  EXPECT_EQ(AllOnes(1), 0xffu);
  EXPECT_EQ(AllOnes(2), 0xffffu);
  EXPECT_EQ(AllOnes(3), 0xffffffu);
  EXPECT_EQ(AllOnes(4), 0xffffffffu);
  EXPECT_EQ(AllOnes(8), UINT64_MAX);
}

}  // namespace
}  // namespace viommu
