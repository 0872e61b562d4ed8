// VtdEngine inside a q35 machine: translated device DMA, faults, caches,
// pass-through, reset, command-line order and queued invalidation.
#include "viommu/hw/iommu/vtd_engine.h"

#include <cstring>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/hw/iommu/vtd_machine_guest.h"
#include "viommu/hw/i386/q35_machine.h"
#include "viommu/hw/pci/pci_regs.h"

namespace viommu::vtd {
namespace {

using hw::Q35Machine;
using testing::kPage1G;
using testing::kPage2M;
using testing::kPage4K;
using testing::VtdMachineGuest;

constexpr uint8_t kEduDevfn = 0x20;  // 04.0
constexpr uint16_t kEduSid = 0x0020;

class VtdEngineTest : public ::testing::TestWithParam<int> {
 protected:
  int levels() const { return GetParam(); }

  void Start(absl::btree_map<std::string, std::string> props = {},
             bool iommu_first = true) {
    m_ = *Q35Machine::Create({.ram_size = 64 << 20});
    props["aw-bits"] = levels() == 4 ? "48" : "39";
    if (!iommu_first) AddEdu();
    ASSERT_TRUE(m_->AddDevice({.driver = "intel-iommu", .props = props}).ok());
    if (iommu_first) AddEdu();
    guest_ = std::make_unique<VtdMachineGuest>(m_.get(), levels());
  }
  void AddEdu() {
    ASSERT_TRUE(
        m_->AddDevice({.driver = "edu", .props = {{"addr", "04.0"}}}).ok());
    edu_ = m_->pci_bus().Find(kEduDevfn);
    ASSERT_NE(edu_, nullptr);
    m_->pci_bus().ConfigWrite(kEduDevfn, hw::pci::kCfgCommand, 0x6, 2);
  }

  uint64_t DmaRead64(uint64_t iova, bool* ok = nullptr) {
    uint64_t v = 0;
    bool r =
        Dma().Read(iova, &v, 8, memory::MemTxAttrs::Requester(kEduSid)).ok();
    if (ok) *ok = r;
    return v;
  }
  bool DmaWrite64(uint64_t iova, uint64_t v) {
    return Dma()
        .Write(iova, &v, 8, memory::MemTxAttrs::Requester(kEduSid))
        .ok();
  }
  // The device's DMA view (its bus-master space without the COMMAND.MASTER
  // gate): an AddressSpace over the root the bus got from the engine.
  memory::AddressSpace& Dma() {
    if (dma_ == nullptr) {
      dma_ = std::make_unique<memory::AddressSpace>(
          &m_->memory(), m_->pci_bus().DmaRootFor(kEduDevfn), "edu-dma");
    }
    return *dma_;
  }
  uint64_t Ram64(uint64_t gpa) { return guest_->Read64(gpa); }
  void SetRam64(uint64_t gpa, uint64_t v) { guest_->Write64(gpa, v); }

  uint64_t FrcdHi() { return guest_->ReadReg64(Reg64::kFrcd0Hi); }
  uint64_t FrcdLo() { return guest_->ReadReg64(Reg64::kFrcd0Lo); }
  uint32_t Fsts() { return guest_->ReadReg32(Reg32::kFsts); }
  // FRCD[0] high half. Page-walk faults carry QEMU 7.2's "no PASID"
  // value in PV; root/context faults carry 0.
  static uint64_t Record(uint16_t sid, FaultReason fr, bool is_write,
                         uint16_t pv = 0) {
    return kFrcdF | (is_write ? 0 : kFrcdT) | uint64_t{pv} << kFrcdPvShift |
           uint64_t{static_cast<uint8_t>(fr)} << kFrcdFrShift | sid;
  }

  void TearDown() override { dma_.reset(); }

  std::unique_ptr<Q35Machine> m_;
  hw::pci::PciDevice* edu_ = nullptr;
  std::unique_ptr<VtdMachineGuest> guest_;
  std::unique_ptr<memory::AddressSpace> dma_;
};

INSTANTIATE_TEST_SUITE_P(Levels, VtdEngineTest, ::testing::Values(3, 4),
                         [](const ::testing::TestParamInfo<int>& p) {
                           return p.param == 3 ? "Aw39" : "Aw48";
                         });

TEST_P(VtdEngineTest, DmarOffIsIdentity) {
  Start();
  ASSERT_TRUE(DmaWrite64(0x30'0000, 0x1122334455667788));
  EXPECT_EQ(Ram64(0x30'0000), 0x1122334455667788u);
  EXPECT_FALSE(m_->vtd_engine()->FindAddressSpace(0, kEduDevfn)->use_iommu());
}

TEST_P(VtdEngineTest, TranslatesReadsAndWritesThrough4KPages) {
  Start();
  guest_->SetContext(kEduDevfn, 1);
  guest_->Map(0x7000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->Enable();
  EXPECT_TRUE(m_->vtd_engine()->FindAddressSpace(0, kEduDevfn)->use_iommu());
  SetRam64(0x30'0010, 0xabcdef);
  EXPECT_EQ(DmaRead64(0x7010), 0xabcdefu);
  ASSERT_TRUE(DmaWrite64(0x7020, 0x55aa));
  EXPECT_EQ(Ram64(0x30'0020), 0x55aau);
  EXPECT_EQ(Fsts(), 0u);
}

TEST_P(VtdEngineTest, TranslatesThroughSuperpages) {
  Start();
  guest_->SetContext(kEduDevfn, 1);
  guest_->Map(0x4000'0000 + kPage2M, 0x20'0000, kPage2M,
              memory::kIommuReadWrite);
  guest_->Map(0x8000'0000, 0, kPage1G, memory::kIommuReadWrite);
  guest_->Enable();
  SetRam64(0x23'4560, 0x2222);
  EXPECT_EQ(DmaRead64(0x4000'0000 + kPage2M + 0x3'4560), 0x2222u);
  EXPECT_EQ(DmaRead64(0x8000'0000 + 0x23'4560), 0x2222u);
  EXPECT_EQ(Fsts(), 0u);
}

TEST_P(VtdEngineTest, RootEntryNotPresentFaults) {
  Start();
  guest_->Write64(VtdMachineGuest::kRoot, 0);
  guest_->Enable();
  bool ok = true;
  EXPECT_EQ(DmaRead64(0x1234'5678, &ok), 0u);
  EXPECT_FALSE(ok);
  EXPECT_EQ(FrcdHi(), Record(kEduSid, FaultReason::kRootEntryP, false));
  EXPECT_EQ(FrcdLo(), 0x1234'5000u);
  EXPECT_EQ(Fsts() & kFstsPpf, kFstsPpf);
}

TEST_P(VtdEngineTest, WriteToReadOnlyPageFaultsWithWriteReason) {
  Start();
  guest_->SetContext(kEduDevfn, 1);
  guest_->Map(0x9000, 0x30'0000, kPage4K, memory::kIommuRead);
  guest_->Enable();
  EXPECT_FALSE(DmaWrite64(0x9008, 1));
  EXPECT_EQ(Ram64(0x30'0008), 0u);
  EXPECT_EQ(FrcdHi(), Record(kEduSid, FaultReason::kWrite, true,
                             IntelIommu::kNoPasidValue));
  EXPECT_EQ(FrcdLo(), 0x9000u);
}

TEST_P(VtdEngineTest, UnmappedReadFaultsWithReadReason) {
  Start();
  guest_->SetContext(kEduDevfn, 1);
  guest_->Map(0x9000, 0x30'0000, kPage4K, memory::kIommuWrite);
  guest_->Enable();
  bool ok = true;
  DmaRead64(0x9000, &ok);
  EXPECT_FALSE(ok);
  EXPECT_EQ(FrcdHi(), Record(kEduSid, FaultReason::kRead, false,
                             IntelIommu::kNoPasidValue));
}

TEST_P(VtdEngineTest, FpdSuppressesQualifiedFaults) {
  Start();
  guest_->SetContext(kEduDevfn, 1, /*pass_through=*/false, /*fpd=*/true);
  guest_->Enable();
  bool ok = true;
  DmaRead64(0x5000, &ok);
  EXPECT_FALSE(ok);
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(FrcdHi(), 0u);
  EXPECT_GE(m_->vtd_engine()->stats().faults, 1u);
}

TEST_P(VtdEngineTest, PassThroughUsesSystemMemory) {
  Start();
  guest_->SetContext(kEduDevfn, 1, /*pass_through=*/true);
  guest_->Enable();
  EXPECT_FALSE(m_->vtd_engine()->FindAddressSpace(0, kEduDevfn)->use_iommu());
  ASSERT_TRUE(DmaWrite64(0x30'0100, 0x77));
  EXPECT_EQ(Ram64(0x30'0100), 0x77u);
}

TEST_P(VtdEngineTest, IotlbKeepsOldTranslationUntilPageInvalidation) {
  Start();
  guest_->SetContext(kEduDevfn, 5);
  guest_->Map(0x7000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->Enable();
  SetRam64(0x30'0000, 0x1111);
  SetRam64(0x31'0000, 0x2222);
  EXPECT_EQ(DmaRead64(0x7000), 0x1111u);
  guest_->Map(0x7000, 0x31'0000, kPage4K, memory::kIommuReadWrite);
  EXPECT_EQ(DmaRead64(0x7000), 0x1111u);         // cached
  guest_->InvalidatePage(/*did=*/4, 0x7000, 0);  // other domain: no effect
  EXPECT_EQ(DmaRead64(0x7000), 0x1111u);
  guest_->InvalidatePage(/*did=*/5, 0x7000, 0);
  EXPECT_EQ(DmaRead64(0x7000), 0x2222u);
}

TEST_P(VtdEngineTest, IotlbHitDoesNotFaultOnMissingPermission) {
  // QEMU 7.2: a cached read-only page refuses a write without a record.
  Start();
  guest_->SetContext(kEduDevfn, 1);
  guest_->Map(0x7000, 0x30'0000, kPage4K, memory::kIommuRead);
  guest_->Enable();
  DmaRead64(0x7000);
  EXPECT_FALSE(DmaWrite64(0x7000, 1));
  EXPECT_EQ(Fsts(), 0u);
}

TEST_P(VtdEngineTest, DeviceBeforeIommuOnCommandLineIsTranslated) {
  Start({}, /*iommu_first=*/false);
  guest_->Write64(VtdMachineGuest::kRoot, 0);
  guest_->Enable();
  bool ok = true;
  DmaRead64(0x10'0000, &ok);
  EXPECT_FALSE(ok);
  EXPECT_EQ(FrcdHi(), Record(kEduSid, FaultReason::kRootEntryP, false));
}

TEST_P(VtdEngineTest, SystemResetReturnsToIdentity) {
  Start();
  guest_->SetContext(kEduDevfn, 1);
  guest_->Enable();
  m_->Reset();
  EXPECT_FALSE(m_->vtd_engine()->FindAddressSpace(0, kEduDevfn)->use_iommu());
  ASSERT_TRUE(DmaWrite64(0x30'0200, 0x99));
  EXPECT_EQ(Ram64(0x30'0200), 0x99u);
  EXPECT_EQ(Fsts(), 0u);
}

TEST_P(VtdEngineTest, DeviceDelAndReplugKeepsTheAddressSpace) {
  Start();
  ASSERT_TRUE(
      m_->AddDevice({.driver = "edu", .id = "e2", .props = {{"addr", "05.0"}}})
          .ok());
  VtdAddressSpace* as = m_->vtd_engine()->FindAddressSpace(0, 0x28);
  ASSERT_NE(as, nullptr);
  ASSERT_TRUE(m_->DeleteDevice("e2").ok());
  EXPECT_EQ(m_->vtd_engine()->FindAddressSpace(0, 0x28), as);
  ASSERT_TRUE(m_->HotplugDevice(
                    {.driver = "edu", .id = "e3", .props = {{"addr", "05.0"}}})
                  .ok());
  EXPECT_EQ(m_->vtd_engine()->FindAddressSpace(0, 0x28), as);
}

TEST_P(VtdEngineTest, QueuedWaitWritesStatusAndPageInvalidationApplies) {
  Start();
  guest_->SetContext(kEduDevfn, 3);
  guest_->Map(0x7000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->Enable();
  SetRam64(0x30'0000, 0x1111);
  SetRam64(0x31'0000, 0x2222);
  EXPECT_EQ(DmaRead64(0x7000), 0x1111u);
  guest_->Map(0x7000, 0x31'0000, kPage4K, memory::kIommuReadWrite);

  constexpr uint64_t kQueue = 0x20'0000;
  constexpr uint64_t kStatus = 0x20'8000;
  // IOTLB PSI (type 2, G=3, DID 3) then a wait with SW (type 5).
  guest_->Write64(kQueue, 2 | 3u << 4 | uint64_t{3} << 16);
  guest_->Write64(kQueue + 8, 0x7000);
  guest_->Write64(kQueue + 16, 5 | 1u << 5 | uint64_t{0xfeedf00d} << 32);
  guest_->Write64(kQueue + 24, kStatus);
  guest_->WriteReg64(Reg64::kIqa, kQueue);
  guest_->WriteReg32(Reg32::kGcmd, kGcmdTe | kGcmdQie);
  guest_->WriteReg64(Reg64::kIqt, 2 << 4);
  EXPECT_EQ(static_cast<uint32_t>(Ram64(kStatus)), 0xfeedf00du);
  EXPECT_EQ(guest_->ReadReg64(Reg64::kIqh), 2u << 4);
  EXPECT_EQ(DmaRead64(0x7000), 0x2222u);
}

}  // namespace
}  // namespace viommu::vtd
