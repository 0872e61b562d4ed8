#include "viommu/hw/iommu/vtd_properties.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace viommu::vtd {
namespace {

using ::testing::HasSubstr;

Properties Parse(absl::btree_map<std::string, std::string> p) {
  auto r = ParseProperties(p);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : Properties{};
}

std::string Error(absl::btree_map<std::string, std::string> p) {
  auto r = ParseProperties(p);
  EXPECT_FALSE(r.ok());
  return std::string(r.status().message());
}

// Values read from QEMU 7.2's register block.
TEST(VtdPropertiesTest, DefaultCapEcapMatchQemu72) {
  Properties p = Parse({});
  EXPECT_EQ(ComputeCap(p), 0x00d2008c22260206u);
  EXPECT_EQ(ComputeEcap(p), 0xf00f4au);
}

TEST(VtdPropertiesTest, CombinationsMatchQemu72) {
  EXPECT_EQ(ComputeCap(Parse({{"caching-mode", "on"}})), 0x00d2008c22260286u);
  EXPECT_EQ(ComputeCap(Parse({{"aw-bits", "48"}})), 0x00d2008c222f0606u);
  EXPECT_EQ(ComputeCap(Parse({{"aw-bits", "0x30"}})), 0x00d2008c222f0606u);
  EXPECT_EQ(ComputeCap(Parse({{"dma-translation", "off"}})),
            0x00d2008c22260006u);
  EXPECT_EQ(ComputeEcap(Parse({{"intremap", "off"}})), 0xf42u);
  EXPECT_EQ(ComputeEcap(Parse({{"device-iotlb", "on"}})), 0xf00f4eu);
  EXPECT_EQ(ComputeEcap(Parse({{"pt", "off"}})), 0xf00f0au);
}

TEST(VtdPropertiesTest, ErrorsUseQemuText) {
  EXPECT_EQ(Error({{"aw-bits", "40"}}),
            "Supported values for aw-bits are: 39, 48");
  EXPECT_EQ(Error({{"aw-bits", "abc"}}), "Parameter 'aw-bits' expects integer");
  EXPECT_EQ(Error({{"aw-bits", "-1"}}), "Parameter 'aw-bits' expects uint8_t");
  EXPECT_EQ(Error({{"caching-mode", "maybe"}}),
            "Parameter 'caching-mode' expects 'on' or 'off'");
  EXPECT_EQ(Error({{"intremap", "foo"}}),
            "Parameter 'intremap' does not accept value 'foo'");
  EXPECT_EQ(Error({{"foo", "1"}}), "Property 'intel-iommu.foo' not found");
  EXPECT_THAT(Error({{"eim", "on"}}), HasSubstr("eim=on cannot be selected"));
  EXPECT_THAT(Error({{"eim", "on"}, {"intremap", "on"}}),
              HasSubstr("requires accel=kvm"));
}

TEST(VtdPropertiesTest, BooleanSpellings) {
  EXPECT_TRUE(Parse({{"caching-mode", "yes"}}).caching_mode);
  EXPECT_FALSE(Parse({{"pt", "false"}}).pt);
}

}  // namespace
}  // namespace viommu::vtd
