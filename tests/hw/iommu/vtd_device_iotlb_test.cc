// device-iotlb=on through a q35 machine: ECAP.DT, context entries with
// translation type 01b (device-TLB) translated and shadowed like 00b, and
// device-IOTLB invalidation descriptors (type 3) from the invalidation
// queue reaching the DEVIOTLB_UNMAP notifiers of the matching device only
// (QEMU 7.2's vtd_process_device_iotlb_desc). The register-visible side is
// also in tests/conformance/scenarios/vtd_dt_*.qtest; notifier delivery,
// which qtest cannot observe on QEMU, is checked here.
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/hw/iommu/vtd_machine_guest.h"
#include "viommu/hw/i386/q35_machine.h"
#include "viommu/hw/iommu/vtd_address_space.h"
#include "viommu/hw/iommu/vtd_engine.h"
#include "viommu/hw/pci/pci_regs.h"
#include "viommu/memory/address_space.h"

namespace viommu::vtd {
namespace {

using hw::Q35Machine;
using memory::IommuEvent;
using memory::IommuEventType;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing::kPage4K;
using testing::VtdMachineGuest;

constexpr uint8_t kEduDevfn = 0x20;   // 04.0
constexpr uint8_t kEdu2Devfn = 0x28;  // 05.0
constexpr uint16_t kEduSid = 0x0020;
constexpr uint16_t kEdu2Sid = 0x0028;
constexpr uint64_t kQueue = 0x20'0000;
constexpr uint64_t kStatus = 0x20'8000;

struct Ev {
  IommuEventType type;
  uint64_t iova;
  uint64_t mask;
  memory::IommuPerm perm;
  friend bool operator==(const Ev&, const Ev&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Ev& e) {
    return os << static_cast<int>(e.type) << " 0x" << std::hex << e.iova
              << "/0x" << e.mask << " perm " << static_cast<int>(e.perm);
  }
};
Ev DevUnmap(uint64_t iova, uint64_t mask) {
  return {IommuEventType::kDevIotlbUnmap, iova, mask, memory::kIommuNone};
}

class Recorder final : public memory::IommuNotifier {
 public:
  void Notify(const IommuEvent& e) override {
    events.push_back({e.type, e.entry.iova, e.entry.addr_mask, e.entry.perm});
  }
  std::vector<Ev> Take() { return std::exchange(events, {}); }
  std::vector<Ev> events;
};

// A device-IOTLB invalidation descriptor (type 3): SID lo 47:32, address
// and S in hi.
InvDesc DevIotlb(uint16_t sid, uint64_t hi) {
  return {.lo = 3 | uint64_t{sid} << 32, .hi = hi};
}

class VtdDeviceIotlbTest : public ::testing::Test {
 protected:
  void Start(bool device_iotlb = true, bool second_edu = false) {
    m_ = *Q35Machine::Create({.ram_size = 64 << 20});
    absl::btree_map<std::string, std::string> props = {
        {"caching-mode", "on"}};
    if (device_iotlb) props["device-iotlb"] = "on";
    ASSERT_TRUE(m_->AddDevice({.driver = "intel-iommu", .props = props}).ok());
    AddEdu("04.0", kEduDevfn);
    if (second_edu) AddEdu("05.0", kEdu2Devfn);
    guest_ = std::make_unique<VtdMachineGuest>(m_.get(), 3);
    guest_->SetContext(kEduDevfn, 1);
    SetDeviceTlbType(kEduDevfn);
    if (second_edu) {
      guest_->SetContext(kEdu2Devfn, 2);
      SetDeviceTlbType(kEdu2Devfn);
    }
  }
  void AddEdu(const char* addr, uint8_t devfn) {
    ASSERT_TRUE(
        m_->AddDevice({.driver = "edu",
                       .id = std::string("edu") + addr,
                       .props = {{"addr", addr}}})
            .ok());
    m_->pci_bus().ConfigWrite(devfn, hw::pci::kCfgCommand, 0x6, 2);
  }
  // Turns the context entry of `devfn` into translation type 01b.
  void SetDeviceTlbType(uint8_t devfn) {
    const uint64_t slot = VtdMachineGuest::kContext + devfn * 16;
    guest_->Write64(slot, (guest_->Read64(slot) & ~uint64_t{0xc}) |
                              ContextEntry::kTtDevIotlb << 2);
  }
  VtdAddressSpace* As(uint8_t devfn) {
    return m_->vtd_engine()->FindAddressSpace(0, devfn);
  }
  memory::IommuNotifierHandle Register(uint8_t devfn, Recorder* rec,
                                       memory::NotifierFlags flags,
                                       Range range = Range::Full()) {
    auto h = As(devfn)->notifiers()->Register(rec,
                                              {.flags = flags, .range = range});
    EXPECT_TRUE(h.ok()) << h.status();
    return h.ok() ? std::move(*h) : memory::IommuNotifierHandle();
  }
  // Queues `descs` then a wait SW (status = next_status_) and writes IQT;
  // QI is enabled on first use. Returns whether the wait completed.
  bool RunQueue(const std::vector<InvDesc>& descs) {
    if (!qi_on_) {
      guest_->WriteReg64(Reg64::kIqa, kQueue);
      guest_->WriteReg32(Reg32::kGcmd,
                         (guest_->ReadReg32(Reg32::kGsts) & kGstsTes) |
                             kGcmdQie);
      qi_on_ = true;
    }
    std::vector<InvDesc> all = descs;
    const uint32_t status = ++next_status_;
    all.push_back({.lo = 5 | 1u << 5 | uint64_t{status} << 32, .hi = kStatus});
    for (const InvDesc& d : all) {
      guest_->Write64(kQueue + tail_ * 16, d.lo);
      guest_->Write64(kQueue + tail_ * 16 + 8, d.hi);
      ++tail_;
    }
    guest_->WriteReg64(Reg64::kIqt, uint64_t{tail_} << kIqtQtShift);
    return static_cast<uint32_t>(guest_->Read64(kStatus)) == status;
  }
  uint64_t DmaRead64(uint64_t iova) {
    if (dma_ == nullptr) {
      dma_ = std::make_unique<memory::AddressSpace>(
          &m_->memory(), m_->pci_bus().DmaRootFor(kEduDevfn), "edu-dma");
    }
    uint64_t v = 0;
    EXPECT_TRUE(
        dma_->Read(iova, &v, 8, memory::MemTxAttrs::Requester(kEduSid)).ok());
    return v;
  }

  void TearDown() override { dma_.reset(); }

  std::unique_ptr<Q35Machine> m_;
  std::unique_ptr<VtdMachineGuest> guest_;
  std::unique_ptr<memory::AddressSpace> dma_;
  bool qi_on_ = false;
  uint32_t tail_ = 0;
  uint32_t next_status_ = 0;
};

TEST_F(VtdDeviceIotlbTest, EcapAdvertisesDtOnlyWithDeviceIotlb) {
  Start(/*device_iotlb=*/true);
  EXPECT_EQ(guest_->ReadReg64(Reg64::kEcap), 0xf00f4eu);
  Start(/*device_iotlb=*/false);
  EXPECT_EQ(guest_->ReadReg64(Reg64::kEcap), 0xf00f4au);
}

TEST_F(VtdDeviceIotlbTest, DeviceTlbContextTranslatesLikeMultiLevel) {
  Start();
  guest_->Map(0x7000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->Enable();
  guest_->Write64(0x30'0010, 0xabcdef);
  EXPECT_TRUE(As(kEduDevfn)->use_iommu());
  EXPECT_EQ(DmaRead64(0x7010), 0xabcdefu);
  EXPECT_EQ(guest_->ReadReg32(Reg32::kFsts), 0u);
}

TEST_F(VtdDeviceIotlbTest, DeviceTlbContextWithoutDeviceIotlbIsInvalid) {
  Start(/*device_iotlb=*/false);
  guest_->Map(0x7000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->Enable();
  uint64_t v = 0;
  memory::AddressSpace dma(&m_->memory(), m_->pci_bus().DmaRootFor(kEduDevfn),
                           "edu-dma");
  EXPECT_FALSE(
      dma.Read(0x7000, &v, 8, memory::MemTxAttrs::Requester(kEduSid)).ok());
  // QEMU 7.2: TT=01b without ECAP.DT is reason 3, not 0xd.
  EXPECT_EQ(guest_->ReadReg64(Reg64::kFrcd0Hi),
            kFrcdF | kFrcdT |
                uint64_t{static_cast<uint8_t>(FaultReason::kContextEntryInv)}
                    << kFrcdFrShift |
                kEduSid);
}

TEST_F(VtdDeviceIotlbTest, DeviceTlbContextIsShadowedToMapNotifiers) {
  Start();
  guest_->Enable();
  Recorder rec;
  auto h = Register(kEduDevfn, &rec, memory::kNotifyIotlbEvents);
  guest_->Map(0x5000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->InvalidatePage(1, 0x5000, 0);
  EXPECT_THAT(rec.Take(), ElementsAre(Ev{IommuEventType::kMap, 0x5000, 0xfff,
                                         memory::kIommuReadWrite}));
}

TEST_F(VtdDeviceIotlbTest, DescriptorReachesTheDevIotlbNotifier) {
  Start();
  Recorder rec;
  auto h = Register(kEduDevfn, &rec, memory::kNotifyDevIotlbUnmap);
  ASSERT_TRUE(RunQueue({DevIotlb(kEduSid, 0xabcd'e000)}));
  EXPECT_THAT(rec.Take(), ElementsAre(DevUnmap(0xabcd'e000, 0xfff)));
  EXPECT_EQ(guest_->ReadReg32(Reg32::kFsts), 0u);
}

TEST_F(VtdDeviceIotlbTest, SizeBitGivesTheAlignedAtsRange) {
  Start();
  Recorder rec;
  auto h = Register(kEduDevfn, &rec, memory::kNotifyDevIotlbUnmap);
  // S=1: bit 12 clear -> 8K; bits 14:12 = 011 -> 32K, aligned down; every
  // address bit set -> the whole space.
  ASSERT_TRUE(RunQueue({DevIotlb(kEduSid, 0x40'4000 | 1),
                        DevIotlb(kEduSid, 0x40'3000 | 1),
                        DevIotlb(kEduSid, ~uint64_t{0xffe})}));
  EXPECT_THAT(rec.Take(),
              ElementsAre(DevUnmap(0x40'4000, 0x1fff),
                          DevUnmap(0x40'0000, 0x7fff), DevUnmap(0, ~0ull)));
}

TEST_F(VtdDeviceIotlbTest, OnlyTheDeviceOfTheSidIsNotified) {
  Start(/*device_iotlb=*/true, /*second_edu=*/true);
  Recorder rec1;
  Recorder rec2;
  auto h1 = Register(kEduDevfn, &rec1, memory::kNotifyDevIotlbUnmap);
  auto h2 = Register(kEdu2Devfn, &rec2, memory::kNotifyDevIotlbUnmap);
  ASSERT_TRUE(RunQueue({DevIotlb(kEdu2Sid, 0x9000)}));
  EXPECT_THAT(rec1.Take(), IsEmpty());
  EXPECT_THAT(rec2.Take(), ElementsAre(DevUnmap(0x9000, 0xfff)));
}

TEST_F(VtdDeviceIotlbTest, SidWithoutDeviceCompletesWithoutEvents) {
  Start();
  Recorder rec;
  auto h = Register(kEduDevfn, &rec, memory::kNotifyDevIotlbUnmap);
  // Bus 1 has no device (QEMU: vtd_find_as_from_bus_num fails: done).
  ASSERT_TRUE(RunQueue({DevIotlb(0x0120, 0x9000), DevIotlb(0x0030, 0x9000)}));
  EXPECT_THAT(rec.Take(), IsEmpty());
  EXPECT_EQ(guest_->ReadReg32(Reg32::kFsts), 0u);
  EXPECT_EQ(guest_->ReadReg64(Reg64::kIqh), 3u << kIqtQtShift);
}

TEST_F(VtdDeviceIotlbTest, IotlbNotifiersAndTheIommuIotlbAreUntouched) {
  Start();
  guest_->Map(0x7000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->Enable();
  Recorder iotlb_rec;
  auto h = Register(kEduDevfn, &iotlb_rec, memory::kNotifyIotlbEvents);
  iotlb_rec.Take();
  guest_->Write64(0x30'0000, 0x1111);
  guest_->Write64(0x31'0000, 0x2222);
  EXPECT_EQ(DmaRead64(0x7000), 0x1111u);
  guest_->Map(0x7000, 0x31'0000, kPage4K, memory::kIommuReadWrite);
  ASSERT_TRUE(RunQueue({DevIotlb(kEduSid, 0x7000)}));
  // As QEMU 7.2: the device-TLB invalidation neither syncs the shadow nor
  // drops the IOMMU's own IOTLB entry.
  EXPECT_THAT(iotlb_rec.Take(), IsEmpty());
  EXPECT_EQ(DmaRead64(0x7000), 0x1111u);
}

TEST_F(VtdDeviceIotlbTest, EventIsCroppedToTheNotifierRange) {
  Start();
  Recorder rec;
  auto h = Register(kEduDevfn, &rec, memory::kNotifyDevIotlbUnmap,
                    Range{0x40'2000, 0x40'4fff});
  ASSERT_TRUE(RunQueue({DevIotlb(kEduSid, 0x40'3000 | 1),  // 32K at 0x400000
                        DevIotlb(kEduSid, 0x50'0000)}));   // outside
  EXPECT_THAT(rec.Take(), ElementsAre(DevUnmap(0x40'2000, 0x2fff)));
}

TEST_F(VtdDeviceIotlbTest, ReservedBitStopsTheQueueWithoutEvents) {
  Start();
  Recorder rec;
  auto h = Register(kEduDevfn, &rec, memory::kNotifyDevIotlbUnmap);
  InvDesc bad = DevIotlb(kEduSid, 0x9000);
  bad.hi |= 1ull << 1;
  EXPECT_FALSE(RunQueue({DevIotlb(kEduSid, 0x8000), bad}));
  EXPECT_THAT(rec.Take(), ElementsAre(DevUnmap(0x8000, 0xfff)));
  EXPECT_EQ(guest_->ReadReg32(Reg32::kFsts), kFstsIqe);
  EXPECT_EQ(guest_->ReadReg64(Reg64::kIqh), 1u << kIqtQtShift);
}

TEST_F(VtdDeviceIotlbTest, UnregisteredNotifierIsNotCalled) {
  Start();
  Recorder rec;
  {
    auto h = Register(kEduDevfn, &rec, memory::kNotifyDevIotlbUnmap);
  }
  ASSERT_TRUE(RunQueue({DevIotlb(kEduSid, 0x9000)}));
  EXPECT_THAT(rec.Take(), IsEmpty());
}

TEST_F(VtdDeviceIotlbTest, WithoutDeviceIotlbTheDescriptorStillCompletes) {
  // QEMU 7.2 does not check ECAP.DT for type 3 (vtd_dt_qi_off.qtest).
  Start(/*device_iotlb=*/false);
  ASSERT_TRUE(RunQueue({DevIotlb(kEduSid, 0x9000)}));
  EXPECT_EQ(guest_->ReadReg32(Reg32::kFsts), 0u);
}

}  // namespace
}  // namespace viommu::vtd
