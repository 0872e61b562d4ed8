#include "viommu/hw/pci/pci_host.h"

#include <cstdint>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "tests/hw/pci/fake_pci_device.h"

namespace viommu::hw::pci {
namespace {

using testing::kBenchEcamBase;
using testing::PciTestBench;

constexpr uint32_t kEnable = 1u << 31;

class PciHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(b_.bus().Plug(std::make_unique<Q35HostBridge>(), 0).ok());
    b_.PlugFake(0x20);
  }
  uint64_t Ecam(uint8_t bus, uint8_t devfn, uint32_t reg) {
    return kBenchEcamBase + (uint64_t{bus} << 20) + (uint64_t{devfn} << 12) +
           reg;
  }

  PciTestBench b_;
};

TEST_F(PciHostTest, HostBridgeIdsViaConfigPorts) {
  b_.Out(0xcf8, kEnable | 0x00, 4);
  EXPECT_EQ(b_.In(0xcfc, 4), 0x29c08086u);
  b_.Out(0xcf8, kEnable | 0x08, 4);
  EXPECT_EQ(b_.In(0xcfc, 4) >> 8, 0x060000u);
  EXPECT_FALSE(b_.bus().Find(0)->hotpluggable());
}

TEST_F(PciHostTest, DeviceIdsViaConfigPorts) {
  b_.Out(0xcf8, kEnable | 0x20 << 8, 4);
  EXPECT_EQ(b_.In(0xcfc, 4), 0xbeef1234u);
  EXPECT_EQ(b_.In(0xcfe, 2), 0xbeefu);
  EXPECT_EQ(b_.In(0xcfd, 1), 0x12u);
}

TEST_F(PciHostTest, AbsentFunctionViaConfigPortsReadsAllOnes) {
  b_.Out(0xcf8, kEnable | 0x30 << 8, 4);
  EXPECT_EQ(b_.In(0xcfc, 4), 0xffffffffu);
  EXPECT_EQ(b_.In(0xcfc, 1), 0xffu);
}

TEST_F(PciHostTest, DisabledConfigAddressReadsAllOnes) {
  b_.Out(0xcf8, 0x20 << 8, 4);
  EXPECT_EQ(b_.In(0xcfc, 4), 0xffffffffu);
  b_.Out(0xcfc, kCommandMemory, 2);  // dropped
  EXPECT_EQ(b_.Cfg(0x20, kCfgCommand, 2), 0u);
}

TEST_F(PciHostTest, OtherBusReadsAllOnes) {
  b_.Out(0xcf8, kEnable | 1 << 16 | 0x20 << 8, 4);
  EXPECT_EQ(b_.In(0xcfc, 4), 0xffffffffu);
  uint64_t v = 0;
  ASSERT_TRUE(b_.MemRead(Ecam(1, 0x20, 0), &v, 4).ok());
  EXPECT_EQ(v, 0xffffffffu);
  ASSERT_TRUE(b_.MemWrite(Ecam(1, 0x20, kCfgCommand), kCommandMemory, 2).ok());
  EXPECT_EQ(b_.Cfg(0x20, kCfgCommand, 2), 0u);
}

TEST_F(PciHostTest, ConfigAddressLatchesOnlyDwordWrites) {
  b_.Out(0xcf8, kEnable | 0x20 << 8, 4);
  b_.Out(0xcf8, 0x00, 1);
  b_.Out(0xcfa, 0x0000, 2);
  EXPECT_EQ(b_.In(0xcf8, 4), kEnable | 0x20 << 8);
  EXPECT_EQ(b_.In(0xcfc, 4), 0xbeef1234u);
}

TEST_F(PciHostTest, ConfigDataWritesReachRegisterAtByteOffset) {
  b_.Out(0xcf8, kEnable | 0x20 << 8 | kCfgInterruptLine, 4);
  b_.Out(0xcfc, 0x0b, 1);
  b_.Out(0xcf8, kEnable | 0x20 << 8 | kCfgCommand, 4);
  b_.Out(0xcfc, kCommandMemory | kCommandMaster, 2);
  EXPECT_EQ(b_.Cfg(0x20, kCfgInterruptLine, 1), 0x0bu);
  EXPECT_EQ(b_.Cfg(0x20, kCfgCommand, 2), 0x6u);
  EXPECT_EQ(b_.In(0xcfc, 4) & 0xffff, 0x6u);
}

TEST_F(PciHostTest, EcamReadsAndWritesConfigSpace) {
  uint64_t v = 0;
  ASSERT_TRUE(b_.MemRead(Ecam(0, 0x20, 0), &v, 4).ok());
  EXPECT_EQ(v, 0xbeef1234u);
  ASSERT_TRUE(b_.MemRead(Ecam(0, 0, 2), &v, 2).ok());
  EXPECT_EQ(v, 0x29c0u);
  ASSERT_TRUE(b_.MemWrite(Ecam(0, 0x20, kCfgCommand), kCommandMaster, 2).ok());
  EXPECT_EQ(b_.Cfg(0x20, kCfgCommand, 2), kCommandMaster);
}

TEST_F(PciHostTest, EcamAbsentFunctionAndExtendedSpaceReadAllOnes) {
  uint64_t v = 0;
  ASSERT_TRUE(b_.MemRead(Ecam(0, 0x31, 0), &v, 4).ok());
  EXPECT_EQ(v, 0xffffffffu);
  ASSERT_TRUE(b_.MemRead(Ecam(0, 0x20, 0x100), &v, 4).ok());
  EXPECT_EQ(v, 0xffffffffu);
}

}  // namespace
}  // namespace viommu::hw::pci

namespace viommu::hw::pci {
namespace {

TEST(PciexbarTest, DecodesTheThreeWindowSizes) {
  PciexbarDecode d = DecodePciexbar(0xb000'0001);
  EXPECT_TRUE(d.enabled);
  EXPECT_EQ(d.window.base, 0xb000'0000u);
  EXPECT_EQ(d.window.size, 256u << 20);
  d = DecodePciexbar(0xe800'0003);
  EXPECT_EQ(d.window.base, 0xe800'0000u);
  EXPECT_EQ(d.window.size, 128u << 20);
  d = DecodePciexbar(0xe400'0005);
  EXPECT_EQ(d.window.base, 0xe400'0000u);
  EXPECT_EQ(d.window.size, 64u << 20);
  EXPECT_TRUE(DecodePciexbar(0xe000'0007).reserved_length);
  EXPECT_FALSE(DecodePciexbar(0xb000'0000).enabled);
}

}  // namespace
}  // namespace viommu::hw::pci

namespace viommu::hw::pci {
namespace {

TEST(Q35HostBridgeTest, PciexbarWritesReachTheObserverAndResetRestores) {
  testing::PciTestBench b;
  auto host = std::make_unique<Q35HostBridge>();
  std::vector<uint64_t> seen;
  host->set_pciexbar_observer([&](uint64_t v) { seen.push_back(v); });
  Q35HostBridge* h = host.get();
  ASSERT_TRUE(b.bus().Plug(std::move(host), 0).ok());
  EXPECT_EQ(b.bus().ConfigRead(0, kMchPciexbar, 4), 0xb000'0000u);
  b.bus().ConfigWrite(0, kMchPciexbar, 0xe000'0003, 4);
  b.bus().ConfigWrite(0, kMchPciexbar + 4, 0x1, 4);
  EXPECT_EQ(h->pciexbar(), 0x1'e000'0003u);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], 0xe000'0003u);
  h->Reset();
  EXPECT_EQ(h->pciexbar(), kMchPciexbarDefault);
  EXPECT_EQ(seen.back(), kMchPciexbarDefault);
}

}  // namespace
}  // namespace viommu::hw::pci
