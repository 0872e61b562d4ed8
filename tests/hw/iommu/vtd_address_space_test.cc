// VtdAddressSpace layout and the engine as a MAP/UNMAP producer: sections
// of the IOMMU region, notifier events for map / remap / unmap under PSI,
// DSI, global and context invalidations, the caching-mode veto, replay.
#include "viommu/hw/iommu/vtd_address_space.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/hw/iommu/vtd_machine_guest.h"
#include "viommu/hw/i386/q35_machine.h"
#include "viommu/hw/iommu/vtd_engine.h"
#include "viommu/memory/address_space.h"

namespace viommu::vtd {
namespace {

using hw::Q35Machine;
using memory::IommuEvent;
using memory::IommuEventType;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::kPage2M;
using testing::kPage4K;
using testing::VtdMachineGuest;

constexpr uint8_t kDevfn = 0x20;

struct Ev {
  IommuEventType type;
  uint64_t iova;
  uint64_t mask;
  uint64_t gpa;  // MAP only
  friend bool operator==(const Ev&, const Ev&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Ev& e) {
    return os << (e.type == IommuEventType::kMap ? "MAP" : "UNMAP") << " 0x"
              << std::hex << e.iova << "/0x" << e.mask << "->0x" << e.gpa;
  }
};
Ev Map(uint64_t iova, uint64_t mask, uint64_t gpa) {
  return {IommuEventType::kMap, iova, mask, gpa};
}
Ev Unmap(uint64_t iova, uint64_t mask) {
  return {IommuEventType::kUnmap, iova, mask, 0};
}

class Recorder final : public memory::IommuNotifier {
 public:
  void Notify(const IommuEvent& e) override {
    events.push_back(
        {e.type, e.entry.iova, e.entry.addr_mask,
         e.type == IommuEventType::kMap ? e.entry.translated_addr : 0});
  }
  std::vector<Ev> Take() { return std::exchange(events, {}); }
  std::vector<Ev> events;
};

class VtdAddressSpaceTest : public ::testing::Test {
 protected:
  void Start(bool caching_mode = true) {
    m_ = *Q35Machine::Create({.ram_size = 64 << 20});
    absl::btree_map<std::string, std::string> props;
    if (caching_mode) props["caching-mode"] = "on";
    ASSERT_TRUE(m_->AddDevice({.driver = "intel-iommu", .props = props}).ok());
    ASSERT_TRUE(
        m_->AddDevice({.driver = "edu", .props = {{"addr", "04.0"}}}).ok());
    as_ = m_->vtd_engine()->FindAddressSpace(0, kDevfn);
    ASSERT_NE(as_, nullptr);
    guest_ = std::make_unique<VtdMachineGuest>(m_.get(), 3);
    guest_->SetContext(kDevfn, 1);
  }
  void Register(memory::NotifierFlags flags = memory::kNotifyIotlbEvents) {
    auto h = as_->notifiers()->Register(&rec_, {.flags = flags});
    ASSERT_TRUE(h.ok()) << h.status();
    handle_ = std::move(*h);
  }

  std::unique_ptr<Q35Machine> m_;
  VtdAddressSpace* as_ = nullptr;
  std::unique_ptr<VtdMachineGuest> guest_;
  Recorder rec_;
  memory::IommuNotifierHandle handle_;
};

TEST_F(VtdAddressSpaceTest, IommuRegionRendersAsTwoSectionsAroundTheIrWindow) {
  Start();
  guest_->Enable();
  ASSERT_TRUE(as_->use_iommu());
  memory::AddressSpace view(&m_->memory(), as_->root(), "view");
  std::vector<std::pair<uint64_t, uint64_t>> iommu_sections;
  view.CurrentView()->ForEach([&](const memory::FlatRange& fr) {
    if (fr.mr.get() == as_->iommu_region())
      iommu_sections.push_back({fr.range.first, fr.range.last});
  });
  EXPECT_THAT(
      iommu_sections,
      ElementsAre(std::pair<uint64_t, uint64_t>{0, 0xfedf'ffff},
                  std::pair<uint64_t, uint64_t>{0xfef0'0000, ~uint64_t{0}}));
  EXPECT_EQ(as_->iommu_region()->name(), "vtd-04.0-dmar");
}

TEST_F(VtdAddressSpaceTest, MsiWritesReachTheMsiWindowWithAndWithoutDmar) {
  Start();
  memory::AddressSpace dma(&m_->memory(), as_->root(), "dma");
  uint32_t data = 0x41;
  const auto attrs = memory::MemTxAttrs::Requester(0x0020);
  ASSERT_TRUE(dma.Write(0xfee0'0000, &data, 4, attrs).ok());
  guest_->Enable();
  ASSERT_TRUE(dma.Write(0xfee0'1000, &data, 4, attrs).ok());
  EXPECT_EQ(m_->msi().Count(0x0020), 2u);
}

TEST_F(VtdAddressSpaceTest, MapNotifierWithoutCachingModeIsRefused) {
  Start(/*caching_mode=*/false);
  auto h = as_->notifiers()->Register(&rec_, {.flags = memory::kNotifyMap});
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(h.status().message()),
              HasSubstr("device 00:04.0 requires caching mode"));
  EXPECT_THAT(std::string(h.status().message()), HasSubstr("caching-mode=on"));
  // UNMAP-only is fine.
  EXPECT_TRUE(
      as_->notifiers()->Register(&rec_, {.flags = memory::kNotifyUnmap}).ok());
}

TEST_F(VtdAddressSpaceTest, DevIotlbNotifierWithoutDeviceIotlbIsRefused) {
  Start();
  auto h = as_->notifiers()->Register(&rec_,
                                      {.flags = memory::kNotifyDevIotlbUnmap});
  EXPECT_EQ(h.status().code(), absl::StatusCode::kFailedPrecondition);
}

// As 7.2's notify_flag_changed: a shadow cannot carry a mapping's SNP bit,
// so no notifier may watch a snoop-control unit (vfio-pci fails to plug).
TEST_F(VtdAddressSpaceTest, NoNotifierWithSnoopControl) {
  m_ = *Q35Machine::Create({.ram_size = 64 << 20});
  ASSERT_TRUE(m_->AddDevice({.driver = "intel-iommu",
                             .props = {{"caching-mode", "on"},
                                       {"snoop-control", "on"}}})
                  .ok());
  ASSERT_TRUE(
      m_->AddDevice({.driver = "edu", .props = {{"addr", "04.0"}}}).ok());
  as_ = m_->vtd_engine()->FindAddressSpace(0, kDevfn);
  ASSERT_NE(as_, nullptr);
  for (memory::NotifierFlags f :
       {memory::kNotifyMap, memory::kNotifyUnmap, memory::kNotifyIotlbEvents}) {
    auto h = as_->notifiers()->Register(&rec_, {.flags = f});
    ASSERT_FALSE(h.ok()) << "flags " << f;
    EXPECT_EQ(h.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(h.status().message()),
                HasSubstr("snoop-control=off"));
  }
}

TEST_F(VtdAddressSpaceTest, PsiMapsRemapsAndUnmapsExactly) {
  Start();
  guest_->Enable();
  Register();
  guest_->Map(0x5000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->InvalidatePage(1, 0x5000, 0);
  EXPECT_THAT(rec_.Take(), ElementsAre(Map(0x5000, 0xfff, 0x30'0000)));
  guest_->InvalidatePage(1, 0x5000, 0);  // unchanged: nothing
  EXPECT_THAT(rec_.Take(), ElementsAre());
  guest_->Map(0x5000, 0x31'0000, kPage4K, memory::kIommuReadWrite);
  guest_->InvalidatePage(1, 0x5000, 0);
  EXPECT_THAT(rec_.Take(),
              ElementsAre(Unmap(0x5000, 0xfff), Map(0x5000, 0xfff, 0x31'0000)));
  guest_->Map(0x5000, 0, kPage4K, memory::kIommuNone);
  guest_->InvalidatePage(1, 0x5000, 0);
  EXPECT_THAT(rec_.Take(), ElementsAre(Unmap(0x5000, 0xfff)));
}

TEST_F(VtdAddressSpaceTest, PsiFollowsTheNotifiersAsTheyComeAndGo) {
  Start();
  guest_->Enable();
  Register();
  guest_->Map(0x5000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->InvalidatePage(1, 0x5000, 0);
  EXPECT_THAT(rec_.Take(), ElementsAre(Map(0x5000, 0xfff, 0x30'0000)));
  handle_.Reset();  // no notifier left: nothing to sync
  guest_->Map(0x5000, 0x31'0000, kPage4K, memory::kIommuReadWrite);
  guest_->InvalidatePage(1, 0x5000, 0);
  EXPECT_THAT(rec_.Take(), ElementsAre());
  Register(memory::kNotifyUnmap);
  guest_->InvalidatePage(1, 0x5000, 0);
  EXPECT_THAT(rec_.Take(), ElementsAre(Unmap(0x5000, 0xfff)));
  handle_.Reset();
  Register();  // MAP again: the shadow is refilled from the tables
  guest_->Map(0x5000, 0x32'0000, kPage4K, memory::kIommuReadWrite);
  guest_->InvalidatePage(1, 0x5000, 0);
  EXPECT_THAT(rec_.Take(),
              ElementsAre(Unmap(0x5000, 0xfff), Map(0x5000, 0xfff, 0x32'0000)));
}

TEST_F(VtdAddressSpaceTest, PsiOfOtherDomainIsIgnored) {
  Start();
  guest_->Enable();
  Register();
  guest_->Map(0x5000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->InvalidatePage(2, 0x5000, 0);
  EXPECT_THAT(rec_.Take(), ElementsAre());
}

TEST_F(VtdAddressSpaceTest, PsiCoveringAWholePdeUnmapsEveryPageUnderIt) {
  Start();
  guest_->Enable();
  Register();
  guest_->Map(0x20'0000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->Map(0x3f'f000, 0x31'0000, kPage4K, memory::kIommuReadWrite);
  guest_->InvalidatePage(1, 0x20'0000, 9);
  EXPECT_EQ(rec_.Take().size(), 2u);
  guest_->ClearEntry(0x20'0000, 2);  // drop the whole page table
  guest_->InvalidatePage(1, 0x20'0000, 9);
  EXPECT_THAT(rec_.Take(),
              ElementsAre(Unmap(0x20'0000, 0xfff), Unmap(0x3f'f000, 0xfff)));
}

TEST_F(VtdAddressSpaceTest, DomainAndGlobalInvalidationSyncTheWholeSpace) {
  Start();
  guest_->Enable();
  Register();
  guest_->Map(0x5000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->Map(0x4000'0000, 0x20'0000, kPage2M, memory::kIommuRead);
  guest_->InvalidateDomain(1);
  EXPECT_THAT(rec_.Take(), ElementsAre(Map(0x5000, 0xfff, 0x30'0000),
                                       Map(0x4000'0000, 0x1f'ffff, 0x20'0000)));
  guest_->Map(0x5000, 0, kPage4K, memory::kIommuNone);
  guest_->InvalidateGlobal();
  EXPECT_THAT(rec_.Take(), ElementsAre(Unmap(0x5000, 0xfff)));
}

TEST_F(VtdAddressSpaceTest, ContextInvalidationUnmapsAllThenResyncs) {
  Start();
  guest_->Map(0x5000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->Enable();
  Register();
  ASSERT_TRUE(as_->notifiers()->Replay(handle_).ok());
  EXPECT_THAT(rec_.Take(), ElementsAre(Map(0x5000, 0xfff, 0x30'0000)));
  guest_->InvalidateContextDevice(0x0020);
  EXPECT_THAT(rec_.Take(),
              ElementsAre(Unmap(0x5000, 0xfff), Map(0x5000, 0xfff, 0x30'0000)));
  guest_->ClearContext(kDevfn);
  guest_->InvalidateContextGlobal();
  EXPECT_THAT(rec_.Take(), ElementsAre(Unmap(0x5000, 0xfff)));
}

TEST_F(VtdAddressSpaceTest, TranslationDisableUnmapsEverything) {
  Start();
  guest_->Map(0x5000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->Enable();
  Register();
  ASSERT_TRUE(as_->notifiers()->Replay(handle_).ok());
  rec_.Take();
  guest_->Disable();
  EXPECT_THAT(rec_.Take(), ElementsAre(Unmap(0x5000, 0xfff)));
  EXPECT_FALSE(as_->use_iommu());
}

TEST_F(VtdAddressSpaceTest, SystemResetUnmapsEverythingAndLeavesDmarOff) {
  Start();
  guest_->Map(0x5000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->Enable();
  Register();
  ASSERT_TRUE(as_->notifiers()->Replay(handle_).ok());
  rec_.Take();
  m_->Reset();
  EXPECT_THAT(rec_.Take(), ElementsAre(Unmap(0x5000, 0xfff)));
  EXPECT_FALSE(as_->use_iommu());
}

TEST_F(VtdAddressSpaceTest, RootTableChangeResyncsFromTheNewTables) {
  Start();
  guest_->Map(0x5000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->Enable();
  Register();
  ASSERT_TRUE(as_->notifiers()->Replay(handle_).ok());
  rec_.Take();
  guest_->SetRoot();  // same tables: unmap all, then map again
  EXPECT_THAT(rec_.Take(),
              ElementsAre(Unmap(0x5000, 0xfff), Map(0x5000, 0xfff, 0x30'0000)));
}

TEST_F(VtdAddressSpaceTest, UnmapOnlyNotifierGetsThePsiRange) {
  Start(/*caching_mode=*/false);
  guest_->Enable();
  Register(memory::kNotifyUnmap);
  guest_->InvalidatePage(1, 0x8000, 1);
  EXPECT_THAT(rec_.Take(), ElementsAre(Unmap(0x8000, 0x1fff)));
}

TEST_F(VtdAddressSpaceTest, ReplayDeliversCurrentMappingsToTheOneNotifier) {
  Start();
  guest_->Map(0x5000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  guest_->Map(0x7f'0000'0000, 0x31'0000, kPage4K, memory::kIommuRead);
  guest_->Enable();
  Register();
  ASSERT_TRUE(as_->notifiers()->Replay(handle_).ok());
  EXPECT_THAT(rec_.Take(), ElementsAre(Map(0x5000, 0xfff, 0x30'0000),
                                       Map(0x7f'0000'0000, 0xfff, 0x31'0000)));
  Recorder second;
  auto h2 = as_->notifiers()->Register(&second, {});
  ASSERT_TRUE(h2.ok());
  ASSERT_TRUE(as_->notifiers()->Replay(*h2).ok());
  EXPECT_EQ(second.events.size(), 2u);
  EXPECT_TRUE(rec_.events.empty());  // only the replayed notifier
}

// The whole life of a mapping as a guest driver drives it through the
// invalidation queue, every granularity once; a consumer on both chains
// must see exactly these events (UNMAP always before the MAP that replaces
// a mapping, no event for what did not change).
TEST_F(VtdAddressSpaceTest, QueuedInvalidationsOfEveryGranularity) {
  constexpr uint64_t kQueue = 0x20'0000;
  constexpr uint16_t kDid = 1;
  Start();
  guest_->Enable();
  Register();
  uint32_t tail = 0;
  auto submit = [&](uint64_t lo, uint64_t hi) {
    guest_->Write64(kQueue + tail * 16u, lo);
    guest_->Write64(kQueue + tail * 16u + 8, hi);
    ++tail;
    guest_->WriteReg64(Reg64::kIqt, uint64_t{tail} << 4);
  };
  auto psi = [&](uint64_t addr, uint8_t am) {
    submit(0x2 | 3u << 4 | uint64_t{kDid} << 16, addr | am);
  };
  guest_->WriteReg64(Reg64::kIqa, kQueue);  // 256 descriptors
  guest_->WriteReg32(Reg32::kGcmd, kGstsTes | kGcmdQie);
  ASSERT_NE(guest_->ReadReg32(Reg32::kGsts) & kGstsQies, 0u);

  // Map (caching mode: the guest invalidates a new entry too).
  guest_->Map(0x5000, 0x30'0000, kPage4K, memory::kIommuReadWrite);
  psi(0x5000, 0);
  EXPECT_THAT(rec_.Take(), ElementsAre(Map(0x5000, 0xfff, 0x30'0000)));
  // Remap in place, and a permission change.
  guest_->Map(0x5000, 0x31'0000, kPage4K, memory::kIommuReadWrite);
  psi(0x5000, 0);
  EXPECT_THAT(rec_.Take(),
              ElementsAre(Unmap(0x5000, 0xfff), Map(0x5000, 0xfff, 0x31'0000)));
  guest_->Map(0x5000, 0x31'0000, kPage4K, memory::kIommuRead);
  psi(0x5000, 0);
  EXPECT_THAT(rec_.Take(),
              ElementsAre(Unmap(0x5000, 0xfff), Map(0x5000, 0xfff, 0x31'0000)));
  // Two new pages, one domain-selective invalidation.
  guest_->Map(0x6000, 0x32'0000, kPage4K, memory::kIommuReadWrite);
  guest_->Map(0x40'0000, 0x40'0000, kPage2M, memory::kIommuReadWrite);
  submit(0x2 | 2u << 4 | uint64_t{kDid} << 16, 0);
  EXPECT_THAT(rec_.Take(), ElementsAre(Map(0x6000, 0xfff, 0x32'0000),
                                       Map(0x40'0000, 0x1f'ffff, 0x40'0000)));
  // Unmap one, global invalidation: only that one goes.
  guest_->Map(0x6000, 0, kPage4K, memory::kIommuNone);
  submit(0x2 | 1u << 4, 0);
  EXPECT_THAT(rec_.Take(), ElementsAre(Unmap(0x6000, 0xfff)));
  // A page-selective invalidation of another domain: nothing.
  guest_->Map(0x5000, 0, kPage4K, memory::kIommuNone);
  submit(0x2 | 3u << 4 | uint64_t{kDid + 1} << 16, 0x5000);
  EXPECT_THAT(rec_.Take(), ElementsAre());
  // Device-selective context invalidation: everything unmapped, resynced
  // from the tables (where 0x5000 is gone by now).
  submit(0x1 | 3u << 4 | uint64_t{kDid} << 16 | uint64_t{kDevfn} << 32, 0);
  EXPECT_THAT(rec_.Take(),
              ElementsAre(Unmap(0x5000, 0xfff), Unmap(0x40'0000, 0x1f'ffff),
                          Map(0x40'0000, 0x1f'ffff, 0x40'0000)));
  // The context goes away; a global context invalidation unmaps the rest.
  guest_->ClearContext(kDevfn);
  submit(0x1 | 1u << 4, 0);
  EXPECT_THAT(rec_.Take(), ElementsAre(Unmap(0x40'0000, 0x1f'ffff)));
  EXPECT_EQ(guest_->ReadReg64(Reg64::kIqh), uint64_t{tail} << 4);
  EXPECT_EQ(guest_->ReadReg32(Reg32::kFsts), 0u);  // no queue error
}

}  // namespace
}  // namespace viommu::vtd
