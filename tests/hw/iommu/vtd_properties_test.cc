#include "viommu/hw/iommu/vtd_properties.h"

#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/hw/iommu/vtd_regs.h"

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

// "a=b,c=d" as -device gives it (no key repeats, no commas in values).
absl::btree_map<std::string, std::string> Props(absl::string_view s) {
  absl::btree_map<std::string, std::string> m;
  for (absl::string_view kv : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p = absl::StrSplit(kv, '=');
    m[p.first] = p.second;
  }
  return m;
}

// Values read from QEMU 7.2's register block.
TEST(VtdPropertiesTest, DefaultCapEcapMatchQemu72) {
  Properties p = Parse({});
  EXPECT_EQ(ComputeCap(p), 0x00d2008c22260206u);
  EXPECT_EQ(ComputeEcap(p), 0xf00f4au);
}

// Every row measured on Debian's QEMU 7.2 (1:7.2+dfsg-7+deb12u18):
// `qemu-system-x86_64 -M q35 -accel tcg -qtest stdio -device
// intel-iommu,PROPS` and readq 0xfed90008 (CAP) / 0xfed90010 (ECAP).
struct Accepted {
  const char* props;
  uint64_t cap;
  uint64_t ecap;
};

constexpr Accepted kAccepted[] = {
    {"", 0x00d2008c22260206, 0xf00f4a},
    {"caching-mode=on", 0x00d2008c22260286, 0xf00f4a},
    {"aw-bits=48", 0x00d2008c222f0606, 0xf00f4a},
    {"aw-bits=0x30", 0x00d2008c222f0606, 0xf00f4a},
    {"aw-bits=0X30", 0x00d2008c222f0606, 0xf00f4a},
    {"aw-bits=060", 0x00d2008c222f0606, 0xf00f4a},  // octal 48
    {"aw-bits=+48", 0x00d2008c222f0606, 0xf00f4a},
    {"aw-bits= 48", 0x00d2008c222f0606, 0xf00f4a},
    {"aw-bits=\t48", 0x00d2008c222f0606, 0xf00f4a},
    {"aw-bits=-18446744073709551577", 0x00d2008c22260206, 0xf00f4a},  // wraps
    {"dma-translation=off", 0x00d2008c22260006, 0xf00f4a},
    {"dma-drain=off", 0x0012008c22260206, 0xf00f4a},
    {"device-iotlb=on", 0x00d2008c22260206, 0xf00f4e},
    {"pt=off", 0x00d2008c22260206, 0xf00f0a},
    {"snoop-control=on", 0x00d2008c22260206, 0xf00fca},
    {"snoop-control=yes", 0x00d2008c22260206, 0xf00fca},
    {"intremap=on", 0x00d2008c22260206, 0xf00f4a},
    {"intremap=off", 0x00d2008c22260206, 0xf42},
    {"eim=off", 0x00d2008c22260206, 0xf00f4a},
    {"eim=off,intremap=off", 0x00d2008c22260206, 0xf42},
    {"eim=auto,intremap=off", 0x00d2008c22260206, 0xf42},
    {"x-buggy-eim=on", 0x00d2008c22260206, 0xf00f5a},  // eim=auto -> on
    {"x-buggy-eim=on,eim=on", 0x00d2008c22260206, 0xf00f5a},
    {"x-buggy-eim=on,eim=on,intremap=on", 0x00d2008c22260206, 0xf00f5a},
    {"x-buggy-eim=on,eim=off", 0x00d2008c22260206, 0xf00f4a},
    {"x-buggy-eim=on,intremap=off", 0x00d2008c22260206, 0xf42},
    {"version=0", 0x00d2008c22260206, 0xf00f4a},
    {"version=1", 0x00d2008c22260206, 0xf00f4a},
    {"version=3", 0x00d2008c22260206, 0xf00f4a},
    {"version=0x10", 0x00d2008c22260206, 0xf00f4a},
    {"version=010", 0x00d2008c22260206, 0xf00f4a},
    {"version=+3", 0x00d2008c22260206, 0xf00f4a},
    {"version=-0", 0x00d2008c22260206, 0xf00f4a},
    {"version=4294967295", 0x00d2008c22260206, 0xf00f4a},
    {"version=0xffffffff", 0x00d2008c22260206, 0xf00f4a},
    {"x-scalable-mode=off,x-pasid-mode=off", 0x00d2008c22260206, 0xf00f4a},
    {"dma-translation=off,intremap=off", 0x00d2008c22260006, 0xf42},
    {"dma-drain=off,snoop-control=on,pt=off,caching-mode=on,device-iotlb=on,"
     "aw-bits=48",
     0x0012008c222f0686, 0xf00f8e},
};

TEST(VtdPropertiesTest, AcceptedCombinationsGiveQemu72CapEcap) {
  for (const Accepted& a : kAccepted) {
    SCOPED_TRACE(a.props);
    absl::StatusOr<Properties> p = ParseProperties(Props(a.props));
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(ComputeCap(*p), a.cap);
    EXPECT_EQ(ComputeEcap(*p), a.ecap);
  }
}

// Refused by QEMU 7.2 with exactly this message (after
// "qemu-system-x86_64: -device intel-iommu,PROPS: ").
struct Refused {
  const char* props;
  const char* error;
};

constexpr Refused kRefused[] = {
    {"foo=1", "Property 'intel-iommu.foo' not found"},
    {"aw-bits=40", "Supported values for aw-bits are: 39, 48"},
    {"aw-bits=0", "Supported values for aw-bits are: 39, 48"},
    {"aw-bits=-0", "Supported values for aw-bits are: 39, 48"},
    {"aw-bits=040", "Supported values for aw-bits are: 39, 48"},  // octal 32
    {"aw-bits=256", "Parameter 'aw-bits' expects uint8_t"},
    {"aw-bits=-1", "Parameter 'aw-bits' expects uint8_t"},
    {"aw-bits=-48", "Parameter 'aw-bits' expects uint8_t"},
    {"aw-bits=18446744073709551615", "Parameter 'aw-bits' expects uint8_t"},
    {"aw-bits=18446744073709551616", "Parameter 'aw-bits' expects integer"},
    {"aw-bits=abc", "Parameter 'aw-bits' expects integer"},
    {"aw-bits=48.0", "Parameter 'aw-bits' expects integer"},
    {"aw-bits=08", "Parameter 'aw-bits' expects integer"},
    {"aw-bits=0x", "Parameter 'aw-bits' expects integer"},
    {"aw-bits=", "Parameter 'aw-bits' expects integer"},
    {"aw-bits=48 ", "Parameter 'aw-bits' expects integer"},
    {"aw-bits=+-48", "Parameter 'aw-bits' expects integer"},
    {"aw-bits=-+48", "Parameter 'aw-bits' expects integer"},
    {"version=-1", "Parameter 'version' expects uint32_t"},
    {"version=4294967296", "Parameter 'version' expects uint32_t"},
    {"version=-4294967295", "Parameter 'version' expects uint32_t"},
    {"version=abc", "Parameter 'version' expects integer"},
    {"version=0x", "Parameter 'version' expects integer"},
    {"caching-mode=maybe", "Parameter 'caching-mode' expects 'on' or 'off'"},
    {"caching-mode=", "Parameter 'caching-mode' expects 'on' or 'off'"},
    {"snoop-control=1", "Parameter 'snoop-control' expects 'on' or 'off'"},
    {"x-buggy-eim=maybe", "Parameter 'x-buggy-eim' expects 'on' or 'off'"},
    {"x-scalable-mode=2", "Parameter 'x-scalable-mode' expects 'on' or 'off'"},
    {"x-pasid-mode=x", "Parameter 'x-pasid-mode' expects 'on' or 'off'"},
    {"intremap=foo", "Parameter 'intremap' does not accept value 'foo'"},
    {"eim=foo", "Parameter 'eim' does not accept value 'foo'"},
    // eim: intremap=auto counts as on; only x-buggy-eim lifts the KVM need.
    {"eim=on", "eim=on requires accel=kvm,kernel-irqchip=split"},
    {"eim=on,intremap=auto", "eim=on requires accel=kvm,kernel-irqchip=split"},
    {"eim=on,intremap=on", "eim=on requires accel=kvm,kernel-irqchip=split"},
    {"eim=on,intremap=off", "eim=on cannot be selected without intremap=on"},
    {"eim=on,x-buggy-eim=on,intremap=off",
     "eim=on cannot be selected without intremap=on"},
    // 7.2's check order: PASID+DT, eim, aw-bits, drain, PASID.
    {"aw-bits=40,eim=on", "eim=on requires accel=kvm,kernel-irqchip=split"},
    {"x-scalable-mode=on,dma-drain=off",
     "Need to set dma_drain for scalable mode"},
    {"x-pasid-mode=on,x-scalable-mode=on,dma-drain=off",
     "Need to set dma_drain for scalable mode"},
    {"x-scalable-mode=on,dma-drain=off,aw-bits=40",
     "Supported values for aw-bits are: 39, 48"},
    {"x-pasid-mode=on", "Need to set scalable mode for PASID"},
    {"x-pasid-mode=on,aw-bits=40", "Supported values for aw-bits are: 39, 48"},
    {"x-pasid-mode=on,eim=on",
     "eim=on requires accel=kvm,kernel-irqchip=split"},
    {"x-pasid-mode=on,device-iotlb=on",
     "PASID based device IOTLB is not supported"},
    {"x-pasid-mode=on,device-iotlb=on,eim=on",
     "PASID based device IOTLB is not supported"},
    {"x-pasid-mode=on,x-scalable-mode=on,device-iotlb=on,aw-bits=40",
     "PASID based device IOTLB is not supported"},
    {"x-pasid-mode=on,x-scalable-mode=on,device-iotlb=on,dma-drain=off",
     "PASID based device IOTLB is not supported"},
    {"x-scalable-mode=on,x-pasid-mode=on,snoop-control=on,device-iotlb=on,"
     "caching-mode=on",
     "PASID based device IOTLB is not supported"},
    {"x-pasid-mode=on,device-iotlb=on,aw-bits=300",
     "Parameter 'aw-bits' expects uint8_t"},  // parsing comes first
};

TEST(VtdPropertiesTest, RefusedCombinationsUseQemu72Text) {
  for (const Refused& r : kRefused) {
    SCOPED_TRACE(r.props);
    EXPECT_EQ(Error(Props(r.props)), r.error);
  }
}

// QEMU 7.2 starts with these; CAP as without scalable mode, ECAP
// 0x480080f00f4a with scalable mode, 0x490080f00f4a with PASID too, +
// DT/SC/EIM bits as usual (read from Debian's 7.2).
struct ScalableCase {
  const char* props;
  uint64_t cap;
  uint64_t ecap;
};
constexpr ScalableCase kScalable[] = {
    {"x-scalable-mode=on", 0x00d2008c22260206, 0x480080f00f4a},
    {"x-scalable-mode=on,x-pasid-mode=on", 0x00d2008c22260206, 0x490080f00f4a},
    {"x-scalable-mode=on,device-iotlb=on", 0x00d2008c22260206, 0x480080f00f4e},
    {"x-scalable-mode=on,snoop-control=on", 0x00d2008c22260206, 0x480080f00fca},
    {"x-scalable-mode=on,x-buggy-eim=on", 0x00d2008c22260206, 0x480080f00f5a},
    {"x-scalable-mode=on,caching-mode=on,aw-bits=48", 0x00d2008c222f0686,
     0x480080f00f4a},
};

TEST(VtdPropertiesTest, ScalableModeAcceptedWithQemu72Ecap) {
  for (const ScalableCase& c : kScalable) {
    SCOPED_TRACE(c.props);
    const Properties p = Parse(Props(c.props));
    EXPECT_TRUE(p.scalable_mode);
    EXPECT_EQ(ComputeCap(p), c.cap);
    EXPECT_EQ(ComputeEcap(p), c.ecap);
  }
}

TEST(VtdPropertiesTest, EimResolvesAsQemu72WithoutKvm) {
  EXPECT_EQ(Parse({}).eim, OnOffAuto::kOff);
  EXPECT_FALSE(Parse({}).eim_supported());
  EXPECT_TRUE(Parse({{"x-buggy-eim", "on"}}).eim_supported());
  EXPECT_FALSE(
      Parse({{"x-buggy-eim", "on"}, {"intremap", "off"}}).eim_supported());
  EXPECT_EQ(ComputeEcap(Parse({{"x-buggy-eim", "on"}})) & kEcapEim, kEcapEim);
}

TEST(VtdPropertiesTest, FieldsTakeTheParsedValues) {
  EXPECT_TRUE(Parse({{"snoop-control", "on"}}).snoop_control);
  EXPECT_EQ(Parse({{"version", "0x10"}}).version, 0x10u);
  EXPECT_EQ(Parse({{"aw-bits", "060"}}).aw_bits, 48);
  EXPECT_FALSE(Parse({{"x-scalable-mode", "off"}}).scalable_mode);
}

TEST(VtdPropertiesTest, BooleanSpellings) {
  EXPECT_TRUE(Parse({{"caching-mode", "yes"}}).caching_mode);
  EXPECT_FALSE(Parse({{"pt", "false"}}).pt);
}

}  // namespace
}  // namespace viommu::vtd
