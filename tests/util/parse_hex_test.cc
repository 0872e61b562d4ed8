// util/parse_hex.h and util/parse_devfn.h: the one hex parser, in its
// prefixed (QEMU property) and fixed-width (host PCI address) forms.
#include "viommu/util/parse_hex.h"

#include <cstdint>

#include "gtest/gtest.h"
#include "viommu/util/parse_devfn.h"

namespace viommu {
namespace {

TEST(ParseHexDigitsTest, AcceptsUpToMaxDigitsInEitherCase) {
  uint64_t v = 0;
  EXPECT_TRUE(ParseHexDigits("aB", 2, 0xff, &v));
  EXPECT_EQ(v, 0xabu);
  EXPECT_TRUE(ParseHexDigits("7", 1, 7, &v));
  EXPECT_EQ(v, 7u);
  EXPECT_TRUE(ParseHexDigits("ffffffffffffffff", 16, UINT64_MAX, &v));
  EXPECT_EQ(v, UINT64_MAX);
}

TEST(ParseHexDigitsTest, RefusesPrefixSignSpacesTooManyDigitsAndTooLarge) {
  uint64_t v = 42;
  EXPECT_FALSE(ParseHexDigits("", 4, 0xffff, &v));
  EXPECT_FALSE(ParseHexDigits("0x1", 4, 0xffff, &v));
  EXPECT_FALSE(ParseHexDigits("-1", 4, 0xffff, &v));
  EXPECT_FALSE(ParseHexDigits("+1", 4, 0xffff, &v));
  EXPECT_FALSE(ParseHexDigits(" 1", 4, 0xffff, &v));
  EXPECT_FALSE(ParseHexDigits("1g", 4, 0xffff, &v));
  EXPECT_FALSE(ParseHexDigits("00001", 4, 0xffff, &v));  // 5 digits
  EXPECT_FALSE(ParseHexDigits("20", 2, 31, &v));
  EXPECT_FALSE(ParseHexDigits("10000000000000000", 17, UINT64_MAX, &v));
  EXPECT_EQ(v, 42u);  // untouched on failure
}

TEST(ParseHexTest, TakesAnOptionalPrefixAndAnyNumberOfDigits) {
  unsigned v = 0;
  EXPECT_TRUE(ParseHex("0x1f", 0x1f, &v));
  EXPECT_EQ(v, 0x1fu);
  EXPECT_TRUE(ParseHex("0X07", 7, &v));
  EXPECT_EQ(v, 7u);
  EXPECT_TRUE(ParseHex("0000000000000000004", 7, &v));
  EXPECT_EQ(v, 4u);
  EXPECT_FALSE(ParseHex("0x", 7, &v));
  EXPECT_FALSE(ParseHex("8", 7, &v));
  EXPECT_FALSE(ParseHex("100000000", UINT32_MAX, &v));  // above unsigned
  EXPECT_EQ(v, 4u);
}

TEST(ParseDevfnTest, SlotAndOptionalFunction) {
  EXPECT_EQ(ParseDevfn("edu", "04.0").value(), 0x20);
  EXPECT_EQ(ParseDevfn("edu", "0x1f.0x7").value(), 0xff);
  EXPECT_EQ(ParseDevfn("edu", "3").value(), 0x18);
  absl::StatusOr<uint8_t> bad = ParseDevfn("edu", "20.0");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "Property 'edu.addr' doesn't take value '20.0'");
  EXPECT_FALSE(ParseDevfn("edu", "1.8").ok());
  EXPECT_FALSE(ParseDevfn("edu", "1.0.0").ok());
}

}  // namespace
}  // namespace viommu
