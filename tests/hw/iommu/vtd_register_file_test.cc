#include "viommu/hw/iommu/vtd_register_file.h"

#include "gtest/gtest.h"

namespace viommu::vtd {
namespace {

TEST(RegisterFileTest, WriteKeepsReadOnlyBits) {
  RegisterFile r;
  r.DefineLong(0x38, 0x8000'0000, 0x8000'0000, 0);
  r.SetLong(0x38, 0x4000'0000);
  EXPECT_EQ(r.GetLong(0x38), 0u);
  r.SetLongRaw(0x38, 0x4000'0000);
  r.SetLong(0x38, 0x8000'0000);
  EXPECT_EQ(r.GetLong(0x38), 0xc000'0000u);
}

TEST(RegisterFileTest, WriteOneClears) {
  RegisterFile r;
  r.DefineLong(0x34, 0, 0, 0x11);
  r.SetLongRaw(0x34, 0x13);
  r.SetLong(0x34, 0x1);
  EXPECT_EQ(r.GetLong(0x34), 0x12u);
}

TEST(RegisterFileTest, WriteOnlyBitsReadZero) {
  RegisterFile r;
  r.DefineQuad(0x28, 0, ~0ull, 0);
  r.DefineQuadWo(0x28, 0xff00);
  r.SetQuad(0x28, 0xffff);
  EXPECT_EQ(r.GetQuad(0x28), 0xffu);
  EXPECT_EQ(r.GetQuadRaw(0x28), 0xffffu);
}

TEST(RegisterFileTest, QuadIsLittleEndianPairOfLongs) {
  RegisterFile r;
  r.DefineQuad(0x20, 0x1122'3344'5566'7788, 0, 0);
  EXPECT_EQ(r.GetLong(0x20), 0x5566'7788u);
  EXPECT_EQ(r.GetLong(0x24), 0x1122'3344u);
}

TEST(RegisterFileTest, SetClearMask) {
  RegisterFile r;
  r.SetLongRaw(0x1c, 0xf0);
  EXPECT_EQ(r.SetClearMaskLong(0x1c, 0x30, 0x1), 0xc1u);
  EXPECT_EQ(r.SetClearMaskQuad(0x20, 0, 1ull << 63), 1ull << 63);
}

TEST(RegisterFileTest, ClearDropsMasks) {
  RegisterFile r;
  r.DefineLong(0x3c, 5, 0xffff, 0);
  r.Clear();
  r.SetLong(0x3c, 7);
  EXPECT_EQ(r.GetLong(0x3c), 0u);
}

}  // namespace
}  // namespace viommu::vtd
