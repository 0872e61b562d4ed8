// VtdViommu: VT-d as the vIOMMU seam (hw/core/viommu.h) sees it, without a
// machine: built from a ViommuHost, registers mapped at kRegBase and gone
// with it, stable per-device DMA roots named as QEMU names them, host-IOMMU
// facts checked by the engine, system reset, and remapped interrupts
// reaching the MsiController with their whole address.
#include "viommu/hw/iommu/vtd_viommu.h"

#include <cstdint>
#include <memory>

#include "gtest/gtest.h"
#include "viommu/hw/core/msi.h"
#include "viommu/hw/iommu/vtd_irte.h"
#include "viommu/hw/iommu/vtd_properties.h"
#include "viommu/hw/iommu/vtd_regs.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/util/types.h"

namespace viommu::vtd {
namespace {

class VtdViommuTest : public ::testing::Test {
 protected:
  VtdViommuTest() {
    root_ = memory::MemoryRegion::CreateContainer(&sys_, "system", kSize2To64);
    root_->AddSubregion(
        0, *memory::MemoryRegion::CreateRam(&sys_, "ram", 4 << 20));
    msi_region_ = memory::MemoryRegion::CreateMmio(&sys_, "msi",
                                                   hw::kMsiWindowSize, &msi_);
    root_->AddSubregionOverlap(hw::kMsiWindowBase, msi_region_, -1);
    as_ = std::make_unique<memory::AddressSpace>(&sys_, root_, "memory");
  }

  hw::ViommuHost Host() {
    return {.memory = &sys_,
            .system_root = root_,
            .system_as = as_.get(),
            .msi_region = msi_region_,
            .msi = &msi_};
  }
  uint64_t Reg(uint64_t offset, unsigned size = 8) {
    uint64_t v = 0;
    EXPECT_TRUE(as_->Read(kRegBase + offset, &v, size).ok());
    return v;
  }
  void SetReg(uint64_t offset, uint64_t v, unsigned size) {
    ASSERT_TRUE(as_->Write(kRegBase + offset, &v, size).ok());
  }

  memory::MemorySystem sys_;
  std::shared_ptr<memory::MemoryRegion> root_;
  hw::MsiController msi_;
  std::shared_ptr<memory::MemoryRegion> msi_region_;
  std::unique_ptr<memory::AddressSpace> as_;
};

TEST_F(VtdViommuTest, RegistersAreMappedAtRegBaseUntilDestroyed) {
  {
    auto v = VtdViommu::Create({{"caching-mode", "on"}}, Host());
    ASSERT_TRUE(v.ok()) << v.status();
    Properties p;
    p.caching_mode = true;
    EXPECT_EQ(Reg(Offset(Reg64::kCap)), ComputeCap(p));
    EXPECT_EQ((*v)->driver(), "intel-iommu");
  }
  uint64_t v = 0;
  EXPECT_FALSE(as_->Read(kRegBase + Offset(Reg64::kCap), &v, 8).ok())
      << "the register block left the system root with the vIOMMU";
}

TEST_F(VtdViommuTest, BadPropertyIsRefusedAndMapsNothing) {
  auto v = VtdViommu::Create({{"aw-bits", "52"}}, Host());
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), "Supported values for aw-bits are: 39, 48");
  uint64_t cap = 0;
  EXPECT_FALSE(as_->Read(kRegBase + Offset(Reg64::kCap), &cap, 8).ok());
}

TEST_F(VtdViommuTest, DmaRootIsStablePerDeviceAndNamedBySlot) {
  auto v = *VtdViommu::Create({}, Host());
  auto a = v->DmaRoot(0, 0x30);
  EXPECT_EQ(v->DmaRoot(0, 0x30), a);
  EXPECT_NE(v->DmaRoot(0, 0x31), a);
  EXPECT_EQ(v->DmaSpaceName(0, 0x30), "vtd-06.0");
  EXPECT_EQ(v->DmaSpaceName(0, 0x31), "vtd-06.1");
  // Translation off: the device's DMA reaches RAM untranslated.
  memory::AddressSpace dev(&sys_, a, v->DmaSpaceName(0, 0x30));
  const uint32_t word = 0x5a5a1234;
  ASSERT_TRUE(dev.Write(0x1000, &word, 4).ok());
  uint32_t back = 0;
  ASSERT_TRUE(as_->Read(0x1000, &back, 4).ok());
  EXPECT_EQ(back, word);
}

TEST_F(VtdViommuTest, HostIommuDeviceNeedsCachingMode) {
  devcore::HostIommuDevice hiod;
  hiod.name = "vfio-pci 'v0'";
  auto off = *VtdViommu::Create({}, Host());
  EXPECT_EQ(off->SetHostIommuDevice(0, 0x20, hiod).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(off->engine().HostIommuDeviceOf(0, 0x20), nullptr);
  off.reset();
  auto on = *VtdViommu::Create({{"caching-mode", "on"}}, Host());
  ASSERT_TRUE(on->SetHostIommuDevice(0, 0x20, hiod).ok());
  ASSERT_NE(on->engine().HostIommuDeviceOf(0, 0x20), nullptr);
  on->UnsetHostIommuDevice(0, 0x20);
  EXPECT_EQ(on->engine().HostIommuDeviceOf(0, 0x20), nullptr);
}

TEST_F(VtdViommuTest, ResetClearsGuestProgrammedRegisters) {
  auto v = *VtdViommu::Create({}, Host());
  SetReg(Offset(Reg64::kRtaddr), 0x20'0000, 8);
  SetReg(Offset(Reg32::kGcmd), kGcmdSrtp, 4);
  ASSERT_NE(Reg(Offset(Reg32::kGsts), 4) & kGstsRtps, 0u);
  v->Reset();
  EXPECT_EQ(Reg(Offset(Reg64::kRtaddr)), 0u);
  EXPECT_EQ(Reg(Offset(Reg32::kGsts), 4), 0u);
}

TEST_F(VtdViommuTest, RemappedX2apicMessageReachesTheMsiControllerWhole) {
  auto v = *VtdViommu::Create({{"intremap", "on"}}, Host());
  // IRTE 6: vector 0x33, x2APIC destination 0x00010203, at 0x10'0000.
  const uint64_t irte[2] = {
      1 | uint64_t{0x33} << 16 | uint64_t{0x00010203} << 32, 0};
  ASSERT_TRUE(as_->Write(0x10'0000 + 6 * 16, irte, sizeof(irte)).ok());
  SetReg(Offset(Reg64::kIrta), 0x10'0000 | kIrtaEime | 7, 8);
  SetReg(Offset(Reg32::kGcmd), kGcmdSirtp, 4);
  SetReg(Offset(Reg32::kGcmd), kGcmdIre, 4);
  ASSERT_NE(Reg(Offset(Reg32::kGsts), 4) & kGstsIres, 0u);
  // 00:04.0 writes a remappable-format MSI for handle 6.
  memory::AddressSpace dev(&sys_, v->DmaRoot(0, 0x20), "edu");
  const uint32_t data = 0;
  ASSERT_TRUE(dev.Write(0xfee0'0000 | 6 << 5 | 1 << 4, &data, 4,
                        memory::MemTxAttrs::Requester(0x20))
                  .ok());
  std::optional<hw::MsiMessage> got = msi_.Last(0x20);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->address, 0x0001'0200'fee0'3000ull)
      << "destination bits 31:8 in address bits 63:40";
  EXPECT_EQ(got->data & 0xff, 0x33u);
  EXPECT_EQ(msi_.TotalCount(), 1u);
}

}  // namespace
}  // namespace viommu::vtd
