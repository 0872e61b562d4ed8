#include "viommu/hw/pci/pci_device.h"

#include <cstdint>
#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_viommu.h"
#include "tests/hw/pci/fake_pci_device.h"

namespace viommu::hw::pci {
namespace {

using memory::MemoryRegion;
using testing::FakePciDevice;
using testing::FakePciOptions;
using testing::PciTestBench;

constexpr uint8_t kDevfn = 0x20;  // 04.0
constexpr uint64_t kMmioBase = 0xe000'0000;

class PciDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override { dev_ = b_.PlugFake(kDevfn); }

  uint32_t Cfg(uint32_t off, unsigned size = 4) {
    return b_.Cfg(kDevfn, off, size);
  }
  void SetCfg(uint32_t off, uint32_t v, unsigned size = 4) {
    b_.SetCfg(kDevfn, off, v, size);
  }
  uint8_t msi_cap() const { return dev_->msi_cap(); }
  void EnableMsi(uint64_t addr, uint16_t data, uint16_t qsize_log2 = 0) {
    SetCfg(msi_cap() + kMsiAddressLo, static_cast<uint32_t>(addr));
    SetCfg(msi_cap() + kMsiAddressHi, static_cast<uint32_t>(addr >> 32));
    SetCfg(msi_cap() + kMsiData64, data, 2);
    SetCfg(msi_cap() + kMsiFlags, kMsiFlagsEnable | (qsize_log2 << 4), 2);
  }

  PciTestBench b_;
  FakePciDevice* dev_ = nullptr;
};

TEST_F(PciDeviceTest, IdentificationRegistersComeFromInfo) {
  EXPECT_EQ(Cfg(kCfgVendorId), 0xbeef1234u);
  EXPECT_EQ(Cfg(kCfgRevision), 0x00ff0001u);           // class 00ff00, rev 1
  EXPECT_EQ(Cfg(kCfgSubsystemVendorId), 0x11001af4u);  // QEMU default
  EXPECT_EQ(Cfg(kCfgInterruptPin, 1), 1u);
  EXPECT_EQ(Cfg(kCfgHeaderType, 1), 0u);
}

TEST_F(PciDeviceTest, ReadOnlyFieldsKeepTheirValue) {
  SetCfg(kCfgVendorId, 0);
  SetCfg(kCfgRevision, 0xffffffff);
  SetCfg(kCfgInterruptPin, 3, 1);
  SetCfg(kCfgCapabilityList, 0x80, 1);
  EXPECT_EQ(Cfg(kCfgVendorId), 0xbeef1234u);
  EXPECT_EQ(Cfg(kCfgRevision), 0x00ff0001u);
  EXPECT_EQ(Cfg(kCfgInterruptPin, 1), 1u);
  EXPECT_EQ(Cfg(kCfgCapabilityList, 1), 0x40u);
}

TEST_F(PciDeviceTest, CommandKeepsOnlyWritableBits) {
  SetCfg(kCfgCommand, 0xffff, 2);
  EXPECT_EQ(Cfg(kCfgCommand, 2), 0x0507u);  // IO|MEM|MASTER|SERR|INTX_DIS
}

TEST_F(PciDeviceTest, InterruptLineAndDeviceAreaAreWritable) {
  SetCfg(kCfgInterruptLine, 0x0b, 1);
  SetCfg(0x80, 0x12345678);
  EXPECT_EQ(Cfg(kCfgInterruptLine, 1), 0x0bu);
  EXPECT_EQ(Cfg(0x80), 0x12345678u);
}

TEST_F(PciDeviceTest, PowerOnConfigResetAlsoClearsWhatSystemResetKeeps) {
  SetCfg(0xf0, 0xa5a5a5a5);
  SetCfg(kCfgInterruptLine, 0x0b, 1);
  SetCfg(kCfgCommand, kCommandMemory, 2);
  dev_->Reset();  // system_reset: device-specific bytes stay, as on QEMU
  EXPECT_EQ(Cfg(0xf0), 0xa5a5a5a5u);
  EXPECT_EQ(Cfg(kCfgInterruptLine, 1), 0u);
  SetCfg(kCfgCommand, kCommandMemory, 2);
  dev_->PowerOnConfigReset();  // as plugged
  EXPECT_EQ(Cfg(0xf0), 0u);
  EXPECT_EQ(Cfg(kCfgCommand, 2), 0u);
  EXPECT_EQ(Cfg(kCfgVendorId, 2), dev_->info().vendor_id);
}

TEST_F(PciDeviceTest, StatusErrorBitsAreWriteOneToClear) {
  uint8_t* cfg = dev_->RawConfig();
  cfg[kCfgStatus + 1] |= 0xf9;    // every error bit
  SetCfg(kCfgStatus, 0x2000, 2);  // clear received master abort only
  EXPECT_EQ(Cfg(kCfgStatus, 2) & 0xff00, 0xd900u);
  SetCfg(kCfgStatus, 0x0000, 2);  // zeros clear nothing
  EXPECT_EQ(Cfg(kCfgStatus, 2) & 0xff00, 0xd900u);
  SetCfg(kCfgStatus, 0xffff, 2);
  EXPECT_EQ(Cfg(kCfgStatus, 2), kStatusCapList);  // cap-list bit stays
}

TEST_F(PciDeviceTest, Mem32BarSizing) {
  SetCfg(kCfgBar0, 0xffffffff);
  EXPECT_EQ(Cfg(kCfgBar0), 0xfffff000u);  // 4 KiB, 32-bit, not prefetchable
}

TEST_F(PciDeviceTest, Mem64BarSizing) {
  EXPECT_EQ(Cfg(kCfgBar0 + 8), 0x0000000cu);  // 64-bit | prefetchable
  SetCfg(kCfgBar0 + 8, 0xffffffff);
  SetCfg(kCfgBar0 + 12, 0xffffffff);
  EXPECT_EQ(Cfg(kCfgBar0 + 8), 0xfff0000cu);  // 1 MiB
  EXPECT_EQ(Cfg(kCfgBar0 + 12), 0xffffffffu);
}

TEST_F(PciDeviceTest, IoBarSizing) {
  EXPECT_EQ(Cfg(kCfgBar0 + 16), 0x1u);
  SetCfg(kCfgBar0 + 16, 0xffffffff);
  EXPECT_EQ(Cfg(kCfgBar0 + 16), 0xffffffe1u);  // 32 bytes, I/O
}

TEST_F(PciDeviceTest, UnusedBarsReadZeroAndIgnoreWrites) {
  SetCfg(kCfgBar0 + 4, 0xffffffff);
  SetCfg(kCfgBar0 + 20, 0xffffffff);
  EXPECT_EQ(Cfg(kCfgBar0 + 4), 0u);
  EXPECT_EQ(Cfg(kCfgBar0 + 20), 0u);
}

TEST_F(PciDeviceTest, BarMappedOnlyWhileMemoryDecodeIsOn) {
  SetCfg(kCfgBar0, kMmioBase);
  uint64_t v = 0;
  EXPECT_TRUE(b_.MemRead(kMmioBase, &v, 4).decode_error());
  EXPECT_EQ(dev_->BarMappedAddress(0), std::nullopt);

  SetCfg(kCfgCommand, kCommandMemory, 2);
  EXPECT_EQ(dev_->BarMappedAddress(0), kMmioBase);
  ASSERT_TRUE(b_.MemWrite(kMmioBase + 0x10, 0xabcd, 4).ok());
  EXPECT_THAT(dev_->bar0().accesses(),
              ::testing::ElementsAre("w 0x10/4=0xabcd"));

  SetCfg(kCfgCommand, 0, 2);
  EXPECT_EQ(dev_->BarMappedAddress(0), std::nullopt);
  EXPECT_TRUE(b_.MemRead(kMmioBase, &v, 4).decode_error());
}

TEST_F(PciDeviceTest, BarMovesWhenRewritten) {
  SetCfg(kCfgBar0, kMmioBase);
  SetCfg(kCfgCommand, kCommandMemory, 2);
  SetCfg(kCfgBar0, kMmioBase + 0x10000);
  EXPECT_EQ(dev_->BarMappedAddress(0), kMmioBase + 0x10000);
  uint64_t v = 0;
  EXPECT_TRUE(b_.MemRead(kMmioBase, &v, 4).decode_error());
  EXPECT_TRUE(b_.MemRead(kMmioBase + 0x10000, &v, 4).ok());
}

TEST_F(PciDeviceTest, BarAtZeroOrSizingValueIsNotMapped) {
  SetCfg(kCfgCommand, kCommandMemory | kCommandIo, 2);
  EXPECT_EQ(dev_->BarMappedAddress(0), std::nullopt);  // address 0
  SetCfg(kCfgBar0, 0xffffffff);
  EXPECT_EQ(dev_->BarMappedAddress(0), std::nullopt);  // 32-bit, ends at 4G
  SetCfg(kCfgBar0 + 8, 0xffffffff);
  SetCfg(kCfgBar0 + 12, 0xffffffff);
  EXPECT_EQ(dev_->BarMappedAddress(2), std::nullopt);  // all-ones
  SetCfg(kCfgBar0 + 16, 0xffffffff);
  EXPECT_EQ(dev_->BarMappedAddress(4), std::nullopt);
}

TEST_F(PciDeviceTest, Mem64BarMapsAbove4G) {
  SetCfg(kCfgBar0 + 8, 0x00000000);
  SetCfg(kCfgBar0 + 12, 0x1);
  SetCfg(kCfgCommand, kCommandMemory, 2);
  EXPECT_EQ(dev_->BarMappedAddress(2), uint64_t{1} << 32);
  uint64_t v = 0;
  EXPECT_TRUE(b_.MemRead(uint64_t{1} << 32, &v, 4).ok());
}

TEST_F(PciDeviceTest, IoBarMappedWithIoDecode) {
  SetCfg(kCfgBar0 + 16, 0xc000);
  SetCfg(kCfgCommand, kCommandMemory, 2);
  EXPECT_EQ(dev_->BarMappedAddress(4), std::nullopt);
  SetCfg(kCfgCommand, kCommandIo, 2);
  EXPECT_EQ(dev_->BarMappedAddress(4), 0xc000u);
  b_.Out(0xc004, 0x5a, 1);
  EXPECT_THAT(dev_->bar4().accesses(), ::testing::ElementsAre("w 0x4/1=0x5a"));
}

TEST_F(PciDeviceTest, CapabilityListHoldsMsi) {
  EXPECT_TRUE(Cfg(kCfgStatus, 2) & kStatusCapList);
  EXPECT_EQ(Cfg(kCfgCapabilityList, 1), 0x40u);
  EXPECT_EQ(msi_cap(), 0x40);
  EXPECT_EQ(Cfg(0x40, 1), kCapIdMsi);
  EXPECT_EQ(Cfg(0x41, 1), 0u);                   // end of list
  EXPECT_EQ(Cfg(0x40 + kMsiFlags, 2), 0x0080u);  // 64-bit, 1 vector
}

TEST_F(PciDeviceTest, MsiFieldsHaveQemuWriteMasks) {
  SetCfg(0x40 + kMsiFlags, 0xffff, 2);
  EXPECT_EQ(Cfg(0x40 + kMsiFlags, 2), 0x0081u);  // QSIZE clamped to 1 vector
  SetCfg(0x40 + kMsiAddressLo, 0xffffffff);
  EXPECT_EQ(Cfg(0x40 + kMsiAddressLo), 0xfffffffcu);
  SetCfg(0x40 + kMsiData64, 0xffff, 2);
  EXPECT_EQ(Cfg(0x40 + kMsiData64, 2), 0xffffu);
  SetCfg(0x40, 0xffff, 2);  // id and next pointer are read-only
  EXPECT_EQ(Cfg(0x40, 2), kCapIdMsi);
}

TEST_F(PciDeviceTest, MsiNotifyLandsInControllerWithRequesterId) {
  SetCfg(kCfgCommand, kCommandMaster, 2);
  EnableMsi(0xfee00000, 0x4041);
  EXPECT_TRUE(dev_->IsMsiEnabled());
  EXPECT_TRUE(dev_->DoMsiNotify(0));
  EXPECT_EQ(b_.msi().Count(kDevfn), 1u);
  ASSERT_TRUE(b_.msi().Last(kDevfn).has_value());
  EXPECT_EQ(b_.msi().Last(kDevfn)->address, 0xfee00000u);
  EXPECT_EQ(b_.msi().Last(kDevfn)->data, 0x4041u);
}

TEST_F(PciDeviceTest, MsiNotifyFailsWhileDisabled) {
  SetCfg(kCfgCommand, kCommandMaster, 2);
  EXPECT_FALSE(dev_->DoMsiNotify(0));
  EXPECT_EQ(b_.msi().TotalCount(), 0u);
}

TEST_F(PciDeviceTest, MsiDroppedWithoutBusMaster) {
  EnableMsi(0xfee00000, 0x41);
  EXPECT_TRUE(dev_->DoMsiNotify(0));
  EXPECT_EQ(b_.msi().TotalCount(), 0u);
}

TEST(PciDeviceMultiMsiTest, VectorReplacesLowDataBits) {
  PciTestBench b;
  FakePciDevice* dev = b.PlugFake(0x18, {.msi_vectors = 4, .msi_64bit = false});
  const uint8_t cap = dev->msi_cap();
  EXPECT_EQ(b.Cfg(0x18, cap + kMsiFlags, 2), 0x0004u);  // 4 capable, 32-bit
  b.SetCfg(0x18, kCfgCommand, kCommandMaster, 2);
  b.SetCfg(0x18, cap + kMsiAddressLo, 0xfee01000);
  b.SetCfg(0x18, cap + kMsiData32, 0x4040, 2);
  b.SetCfg(0x18, cap + kMsiFlags, kMsiFlagsEnable | (2 << 4), 2);
  EXPECT_TRUE(dev->DoMsiNotify(3));
  EXPECT_EQ(b.msi().Last(0x18)->data, 0x4043u);
  EXPECT_EQ(b.msi().Last(0x18)->address, 0xfee01000u);
  EXPECT_FALSE(dev->DoMsiNotify(4));
}

TEST_F(PciDeviceTest, BadMsiVectorCountIsInvalidArgument) {
  EXPECT_EQ(dev_->DoAddMsiCapability(3, true).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PciDeviceTest, DmaBlockedWithoutBusMaster) {
  uint32_t v = 0x11223344;
  EXPECT_TRUE(dev_->DoDmaWrite(0x1000, &v, 4).decode_error());
  uint32_t r = 0;
  ASSERT_TRUE(b_.system_as().Read(0x1000, &r, 4).ok());
  EXPECT_EQ(r, 0u);
}

TEST_F(PciDeviceTest, DmaReachesMemoryWithBusMaster) {
  SetCfg(kCfgCommand, kCommandMaster, 2);
  uint32_t v = 0x11223344;
  ASSERT_TRUE(dev_->DoDmaWrite(0x1000, &v, 4).ok());
  uint32_t r = 0;
  ASSERT_TRUE(b_.system_as().Read(0x1000, &r, 4).ok());
  EXPECT_EQ(r, 0x11223344u);
  uint32_t back = 0;
  ASSERT_TRUE(dev_->DoDmaRead(0x1000, &back, 4).ok());
  EXPECT_EQ(back, 0x11223344u);
  SetCfg(kCfgCommand, 0, 2);
  EXPECT_TRUE(dev_->DoDmaRead(0x1000, &back, 4).decode_error());
}

TEST(PciDeviceIommuTest, DmaGoesThroughIommuRootWithRequesterId) {
  PciTestBench b;
  memory::testing::FakeMmioDevice iommu_ops(0x1000);
  auto iommu_root =
      MemoryRegion::CreateMmio(&b.sys(), "fake-iommu", 0x1000, &iommu_ops);
  hw::testing::FakeViommu iommu(iommu_root);
  b.bus().SetIommu(&iommu);
  FakePciDevice* dev = b.PlugFake(0x28);
  EXPECT_THAT(iommu.roots_asked(), ::testing::ElementsAre(0x28));
  b.SetCfg(0x28, kCfgCommand, kCommandMaster, 2);
  uint32_t v = 7;
  ASSERT_TRUE(dev->DoDmaWrite(0x20, &v, 4).ok());
  EXPECT_THAT(iommu_ops.accesses(), ::testing::ElementsAre("w 0x20/4=0x7"));
  EXPECT_EQ(iommu_ops.last_attrs(), memory::MemTxAttrs::Requester(0x28));
}

TEST(PciDeviceIommuTest, HostIommuDeviceReachesTheViommu) {
  PciTestBench b;
  devcore::HostIommuDevice hiod;
  hiod.name = "vfio-pci 'v0'";
  // No vIOMMU: accepted, nothing to tell.
  EXPECT_TRUE(b.bus().SetIommuDevice(0x28, hiod).ok());
  hw::testing::FakeViommu iommu(
      MemoryRegion::CreateContainer(&b.sys(), "fake-iommu", 0x1000));
  b.bus().SetIommu(&iommu);
  ASSERT_TRUE(b.bus().SetIommuDevice(0x28, hiod).ok());
  b.bus().UnsetIommuDevice(0x28);
  iommu.set_refusal(absl::FailedPreconditionError("no"));
  EXPECT_EQ(b.bus().SetIommuDevice(0x30, hiod).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_EQ(iommu.host_devices().size(), 1u);
  EXPECT_EQ(iommu.host_devices()[0].first, 0x28);
  EXPECT_EQ(iommu.host_devices()[0].second, "vfio-pci 'v0'");
  EXPECT_THAT(iommu.unset(), ::testing::ElementsAre(0x28));
  // Cleared: devices plugged now get the default root again.
  b.bus().SetIommu(nullptr);
  b.PlugFake(0x30);
  EXPECT_TRUE(iommu.roots_asked().empty());
}

TEST_F(PciDeviceTest, IntxRaisesRoutedLineAndStatus) {
  const int line = 16 + (4 + 1 - 1) % 4;  // the bench's routing of 04.0 INTA
  dev_->DoSetIntx(true);
  EXPECT_TRUE(b_.irq().level(line));
  EXPECT_TRUE(Cfg(kCfgStatus, 2) & kStatusInterrupt);
  dev_->DoSetIntx(false);
  EXPECT_FALSE(b_.irq().level(line));
  EXPECT_FALSE(Cfg(kCfgStatus, 2) & kStatusInterrupt);
}

TEST_F(PciDeviceTest, IntxDisableMasksLineButNotStatus) {
  const int line = 16;
  SetCfg(kCfgCommand, kCommandIntxDisable, 2);
  dev_->DoSetIntx(true);
  EXPECT_FALSE(b_.irq().level(line));
  EXPECT_TRUE(Cfg(kCfgStatus, 2) & kStatusInterrupt);
  SetCfg(kCfgCommand, 0, 2);  // re-enabling delivers the pending level
  EXPECT_TRUE(b_.irq().level(line));
  SetCfg(kCfgCommand + 1, kCommandIntxDisable >> 8, 1);  // high byte only
  EXPECT_FALSE(b_.irq().level(line));
}

TEST_F(PciDeviceTest, ResetRestoresDefaults) {
  SetCfg(kCfgBar0, kMmioBase);
  SetCfg(kCfgInterruptLine, 0x0b, 1);
  SetCfg(kCfgCommand, kCommandMemory | kCommandMaster, 2);
  EnableMsi(0xfee00000, 0x41);
  dev_->DoSetIntx(true);
  ASSERT_TRUE(dev_->BarMappedAddress(0).has_value());

  b_.bus().Reset();
  EXPECT_EQ(Cfg(kCfgCommand, 2), 0u);
  EXPECT_EQ(Cfg(kCfgBar0), 0u);
  EXPECT_EQ(Cfg(kCfgBar0 + 8), 0x0cu);
  EXPECT_EQ(Cfg(kCfgInterruptLine, 1), 0u);
  EXPECT_EQ(dev_->BarMappedAddress(0), std::nullopt);
  EXPECT_FALSE(dev_->IsMsiEnabled());
  EXPECT_EQ(Cfg(0x40 + kMsiAddressLo), 0u);
  EXPECT_FALSE(b_.irq().level(16));
  EXPECT_EQ(Cfg(kCfgStatus, 2), kStatusCapList);
  EXPECT_EQ(Cfg(kCfgVendorId), 0xbeef1234u);
  uint32_t v = 1;
  EXPECT_TRUE(dev_->DoDmaWrite(0x1000, &v, 4).decode_error());
}

}  // namespace
}  // namespace viommu::hw::pci
