// VfioPciDevice on a real PciBus (tests/hw/pci's bench: RAM, MSI window,
// INTx sink) over FakeVfioDeviceBackend, driven through configuration
// space and the BARs as a guest would.
#include "viommu/system/vfio/vfio_pci_device.h"

#include <fcntl.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_vfio_device_backend.h"
#include "tests/hw/pci/fake_pci_device.h"
#include "viommu/hw/pci/pci_regs.h"
#include "viommu/memory/memory_listener.h"

namespace viommu::system {
namespace {

namespace uapi = vfio::uapi;
using hw::pci::kCfgBar0;
using hw::pci::kCfgCapabilityList;
using hw::pci::kCfgCommand;
using hw::pci::kCommandMaster;
using hw::pci::kCommandMemory;
using hw::pci::testing::PciTestBench;
using ::testing::HasSubstr;
using vfio::testing::FakeVfioDeviceBackend;

constexpr uint8_t kDevfn = 0x20;  // 04.0: INTA# -> line 16 in the bench
constexpr int kIntxLine = 16;
constexpr uint64_t kBar0 = 0xfe00'0000;
constexpr uint64_t kBar2 = 0xe000'0000;
constexpr char kHost[] = "0000:01:00.0";
constexpr uint32_t kTriggerEventfd =
    uapi::kIrqSetDataEventfd | uapi::kIrqSetActionTrigger;
constexpr uint32_t kTriggerNone =
    uapi::kIrqSetDataNone | uapi::kIrqSetActionTrigger;

// Records every section a listener sees added.
class SectionLog final : public memory::MemoryListener {
 public:
  struct Added {
    std::string name;
    bool ram_device;
    uint64_t gpa;
    uint64_t size;
  };
  void RegionAdd(const memory::MemoryRegionSection& s) override {
    added.push_back({s.mr->name(), s.mr->IsRamDevice(),
                     s.offset_within_address_space,
                     static_cast<uint64_t>(s.size)});
  }
  std::vector<Added> added;
};

class VfioPciDeviceTest : public ::testing::Test {
 protected:
  // Tests change fake_ first, then plug.
  void Plug() {
    absl::StatusOr<std::unique_ptr<VfioPciDevice>> dev =
        VfioPciDevice::Create(&fake_, FakeVfioDeviceBackend::kDeviceFd, kHost);
    ASSERT_TRUE(dev.ok()) << dev.status();
    absl::StatusOr<hw::pci::PciDevice*> p =
        b_.bus().Plug(*std::move(dev), kDevfn);
    ASSERT_TRUE(p.ok()) << p.status();
    dev_ = static_cast<VfioPciDevice*>(*p);
  }
  void MapBars() {
    Set(kCfgBar0, static_cast<uint32_t>(kBar0));
    Set(kCfgBar0 + 8, static_cast<uint32_t>(kBar2));
    Set(kCfgBar0 + 12, 0);
    Set(kCfgCommand, kCommandMemory | kCommandMaster, 2);
  }
  void EnableMsi(uint32_t address, uint16_t data) {
    const uint8_t cap = dev_->msi_cap();
    Set(cap + 4, address);
    Set(cap + 8, 0);
    Set(cap + 12, data, 2);
    Set(cap + 2, 0x1, 2);
  }
  uint32_t Cfg(uint32_t off, unsigned size = 4) {
    return b_.Cfg(kDevfn, off, size);
  }
  void Set(uint32_t off, uint32_t v, unsigned size = 4) {
    b_.SetCfg(kDevfn, off, v, size);
  }
  uint64_t Mem(uint64_t addr, unsigned size) {
    uint64_t v = 0;
    EXPECT_TRUE(b_.MemRead(addr, &v, size).ok()) << std::hex << addr;
    return v;
  }
  void SetMem(uint64_t addr, uint64_t v, unsigned size) {
    EXPECT_TRUE(b_.MemWrite(addr, v, size).ok()) << std::hex << addr;
  }

  FakeVfioDeviceBackend fake_;  // outlives the bus and the device
  PciTestBench b_;
  VfioPciDevice* dev_ = nullptr;
};

// --- identity and configuration space ---

TEST_F(VfioPciDeviceTest, ConfigSpaceCarriesTheHostIdentity) {
  Plug();
  EXPECT_EQ(Cfg(0x00, 2), 0x1234u);
  EXPECT_EQ(Cfg(0x02, 2), 0x11e8u);
  EXPECT_EQ(Cfg(0x08, 1), 0x10u);
  EXPECT_EQ(Cfg(0x08, 4) >> 8, 0x00ff00u);
  EXPECT_EQ(Cfg(0x2c, 2), 0x5678u);
  EXPECT_EQ(Cfg(0x2e, 2), 0x9abcu);
  EXPECT_EQ(Cfg(0x0e, 1), 0u);
  EXPECT_EQ(Cfg(0x3d, 1), 1u);
  EXPECT_EQ(dev_->type_name(), "vfio-pci");
}

TEST_F(VfioPciDeviceTest, HostSubsystemIdsOfZeroAreKept) {
  fake_.Put(0x2c, 0, 4);
  Plug();
  EXPECT_EQ(Cfg(0x2c, 4), 0u);
}

TEST_F(VfioPciDeviceTest, GuestSizesBarsFromRegionSizesAndHostTypes) {
  Plug();
  Set(kCfgBar0, 0xffffffff);
  EXPECT_EQ(Cfg(kCfgBar0), 0xfffff000u);  // 4 KiB, 32-bit, not prefetchable
  Set(kCfgBar0 + 8, 0xffffffff);
  Set(kCfgBar0 + 12, 0xffffffff);
  EXPECT_EQ(Cfg(kCfgBar0 + 8), 0xfff0000cu);  // 1 MiB, 64-bit, prefetchable
  EXPECT_EQ(Cfg(kCfgBar0 + 12), 0xffffffffu);
  Set(kCfgBar0 + 4, 0xffffffff);
  EXPECT_EQ(Cfg(kCfgBar0 + 4), 0u);  // no region 1
  // Sizing never reaches the host's BAR registers.
  EXPECT_TRUE(fake_.ConfigWritesAt(kCfgBar0).empty());
}

TEST_F(VfioPciDeviceTest, CommandWritesReachTheHostAndAreTrackedLocally) {
  Plug();
  Set(kCfgCommand, kCommandMemory | kCommandMaster, 2);
  const auto writes = fake_.ConfigWritesAt(kCfgCommand);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].len, 2u);
  EXPECT_EQ(fake_.Get(kCfgCommand, 2), kCommandMemory | kCommandMaster);
  EXPECT_EQ(dev_->command(), kCommandMemory | kCommandMaster);
  EXPECT_EQ(Cfg(kCfgCommand, 2), kCommandMemory | kCommandMaster);
}

TEST_F(VfioPciDeviceTest, CapabilityListShowsMsiAndPmAndHidesMsix) {
  Plug();
  EXPECT_NE(Cfg(0x06, 2) & hw::pci::kStatusCapList, 0u);
  std::vector<uint32_t> ids;
  for (uint32_t pos = Cfg(kCfgCapabilityList, 1); pos != 0 && ids.size() < 8;
       pos = Cfg(pos + 1, 1)) {
    ids.push_back(Cfg(pos, 1));
  }
  EXPECT_THAT(ids, ::testing::ElementsAre(0x05u, 0x01u));
  EXPECT_EQ(dev_->msi_cap(), 0x40);
  const uint32_t msi_flags = Cfg(0x42, 2);
  EXPECT_NE(msi_flags & hw::pci::kMsiFlags64Bit, 0u);
  EXPECT_EQ(msi_flags & hw::pci::kMsiFlagsQmask, 0u);  // 1 vector
  EXPECT_EQ(Cfg(0x60, 4), 0u);                         // MSI-X hidden
}

TEST_F(VfioPciDeviceTest, PassedCapabilityBodyIsLiveAndReadOnly) {
  Plug();
  EXPECT_EQ(Cfg(0x52, 2), 0x0003u);
  fake_.Put(0x52, 0x0007, 2);  // the host's value changes
  EXPECT_EQ(Cfg(0x52, 2), 0x0007u);
  Set(0x54, 0x0003, 2);  // a D3 request: dropped
  EXPECT_TRUE(fake_.ConfigWritesAt(0x54).empty());
  EXPECT_EQ(Cfg(0x54, 2), 0x0008u);
}

TEST_F(VfioPciDeviceTest, DeviceSpecificBytesOutsideCapabilitiesPassThrough) {
  fake_.config.fill(0);
  fake_.Put(0x00, 0x11e81234, 4);
  fake_.Put(0x06, 0x0010, 2);
  fake_.config[0x34] = 0x48;
  fake_.Put(0x48, 0x0001, 2);  // PM only, end of list
  fake_.config[0x44] = 0x5a;
  Plug();
  EXPECT_EQ(Cfg(0x44, 1), 0x5au);
  Set(0x44, 0x77, 1);
  EXPECT_EQ(fake_.config[0x44], 0x77);
  EXPECT_EQ(Cfg(0x44, 1), 0x77u);
  EXPECT_EQ(dev_->msi_cap(), 0);  // no MSI capability at the host
}

// --- BARs ---

TEST_F(VfioPciDeviceTest, Bar0AccessesBecomePreadPwriteAtRegionOffset) {
  Plug();
  MapBars();
  SetMem(kBar0 + 0x8, 0x11223344, 4);
  ASSERT_FALSE(fake_.accesses.empty());
  const auto& w = fake_.accesses.back();
  EXPECT_TRUE(w.write);
  EXPECT_EQ(w.region, 0u);
  EXPECT_EQ(w.offset, 0x8u);
  EXPECT_EQ(w.len, 4u);
  EXPECT_EQ(fake_.bar0[0x8], 0x44);
  EXPECT_EQ(fake_.bar0[0xb], 0x11);
  fake_.bar0[0x10] = 0xab;
  EXPECT_EQ(Mem(kBar0 + 0x10, 1), 0xabu);
  EXPECT_EQ(fake_.accesses.back().len, 1u);
  EXPECT_EQ(Mem(kBar0 + 0x8, 2), 0x3344u);
  EXPECT_EQ(fake_.accesses.back().len, 2u);
  SetMem(kBar0 + 0x20, 0x0102030405060708, 8);
  EXPECT_EQ(fake_.accesses.back().len, 8u);
  EXPECT_EQ(Mem(kBar0 + 0x20, 8), 0x0102030405060708u);
  EXPECT_EQ(fake_.accesses.back().len, 8u);
  EXPECT_FALSE(fake_.accesses.back().write);
}

TEST_F(VfioPciDeviceTest, FailedBarReadReadsAllOnesAndIsCounted) {
  Plug();
  MapBars();
  fake_.fail_pread_region = 0;
  EXPECT_EQ(Mem(kBar0, 4), 0xffffffffu);
  EXPECT_EQ(dev_->stats().host_errors, 1u);
  EXPECT_THAT(dev_->last_host_error().message(), HasSubstr("pread"));
  EXPECT_THAT(dev_->last_host_error().message(), HasSubstr("errno 5"));
}

TEST_F(VfioPciDeviceTest, Bar2IsTheDeviceFdMmapShownDirectly) {
  Plug();
  MapBars();
  EXPECT_EQ(fake_.mmaps, 1);
  EXPECT_TRUE(dev_->BarIsMmapped(2));
  EXPECT_FALSE(dev_->BarIsMmapped(0));
  const size_t before = fake_.accesses.size();
  SetMem(kBar2 + 0x100, 0xdeadbeef, 4);
  uint32_t host = 0;
  std::memcpy(&host, fake_.bar2() + 0x100, 4);
  EXPECT_EQ(host, 0xdeadbeefu);
  fake_.bar2()[0xfffff] = 0x5c;
  EXPECT_EQ(Mem(kBar2 + 0xfffff, 1), 0x5cu);
  EXPECT_EQ(fake_.accesses.size(), before);  // no pread/pwrite
}

TEST_F(VfioPciDeviceTest, ListenerSeesBar2AsRamDeviceAndBar0AsMmio) {
  Plug();
  SectionLog log;
  memory::ListenerHandle h = b_.system_as().RegisterListener(&log);
  log.added.clear();
  MapBars();
  bool saw_bar0 = false, saw_bar2 = false;
  for (const auto& s : log.added) {
    if (s.gpa == kBar2) {
      saw_bar2 = true;
      EXPECT_EQ(s.name, "0000:01:00.0 BAR 2 mmaps[0]");
      EXPECT_TRUE(s.ram_device);
      EXPECT_EQ(s.size, FakeVfioDeviceBackend::kBar2Size);
    }
    if (s.gpa == kBar0) {
      saw_bar0 = true;
      EXPECT_EQ(s.name, "0000:01:00.0 BAR 0");
      EXPECT_FALSE(s.ram_device);
    }
  }
  EXPECT_TRUE(saw_bar0);
  EXPECT_TRUE(saw_bar2);
}

TEST_F(VfioPciDeviceTest, FailedMmapFallsBackToPreadPwrite) {
  fake_.fail_mmap = true;
  Plug();
  MapBars();
  EXPECT_FALSE(dev_->BarIsMmapped(2));
  EXPECT_EQ(dev_->stats().mmap_fallbacks, 1u);
  SetMem(kBar2 + 0x40, 0x99, 1);
  ASSERT_FALSE(fake_.accesses.empty());
  EXPECT_EQ(fake_.accesses.back().region, 2u);
  EXPECT_EQ(fake_.accesses.back().offset, 0x40u);
  EXPECT_EQ(fake_.bar2()[0x40], 0x99);
}

TEST_F(VfioPciDeviceTest, SparseMmapAreasAreMappedAndTheGapStaysMmio) {
  fake_.bar2_sparse_areas = {{0, 0x1000}, {0x2000, 0xfe000}};
  Plug();
  SectionLog log;
  memory::ListenerHandle h = b_.system_as().RegisterListener(&log);
  log.added.clear();
  MapBars();
  EXPECT_EQ(fake_.mmaps, 2);
  std::vector<std::string> bar2;
  for (const auto& s : log.added) {
    if (s.gpa >= kBar2 && s.gpa < kBar2 + FakeVfioDeviceBackend::kBar2Size) {
      bar2.push_back(absl::StrFormat("%s %d 0x%x+0x%x", s.name, s.ram_device,
                                     s.gpa - kBar2, s.size));
    }
  }
  EXPECT_THAT(bar2, ::testing::UnorderedElementsAre(
                        "0000:01:00.0 BAR 2 mmaps[0] 1 0x0+0x1000",
                        "0000:01:00.0 BAR 2 0 0x1000+0x1000",
                        "0000:01:00.0 BAR 2 mmaps[1] 1 0x2000+0xfe000"));
  const size_t before = fake_.accesses.size();
  SetMem(kBar2 + 0x3000, 0x12, 1);  // in an area: direct
  EXPECT_EQ(fake_.bar2()[0x3000], 0x12);
  EXPECT_EQ(fake_.accesses.size(), before);
  SetMem(kBar2 + 0x1800, 0x34, 1);  // in the gap: pwrite
  ASSERT_EQ(fake_.accesses.size(), before + 1);
  EXPECT_EQ(fake_.accesses.back().region, 2u);
  EXPECT_EQ(fake_.accesses.back().offset, 0x1800u);
  ASSERT_TRUE(b_.bus().Unplug(kDevfn).ok());
  EXPECT_EQ(fake_.munmaps, 2);
}

TEST_F(VfioPciDeviceTest, LoopingRegionCapabilityChainIsDataLoss) {
  fake_.bar2_sparse_areas = {{0, 0x1000}};
  fake_.sparse_cap_loops = true;
  absl::StatusOr<std::unique_ptr<VfioPciDevice>> dev =
      VfioPciDevice::Create(&fake_, FakeVfioDeviceBackend::kDeviceFd, kHost);
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(dev.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(dev.status().message(), HasSubstr("region 2"));
}

TEST_F(VfioPciDeviceTest, SparseAreaOutsideItsRegionIsDataLoss) {
  fake_.bar2_sparse_areas = {{0xff000, 0x2000}};
  absl::StatusOr<std::unique_ptr<VfioPciDevice>> dev =
      VfioPciDevice::Create(&fake_, FakeVfioDeviceBackend::kDeviceFd, kHost);
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(dev.status().code(), absl::StatusCode::kDataLoss);
}

// --- interrupts ---

TEST_F(VfioPciDeviceTest, IntxEventfdIsRegisteredAtRealize) {
  Plug();
  ASSERT_EQ(fake_.set_irqs.size(), 1u);
  const auto& call = fake_.set_irqs[0];
  EXPECT_EQ(call.index, uapi::kPciIntxIrqIndex);
  EXPECT_EQ(call.flags, kTriggerEventfd);
  EXPECT_EQ(call.count, 1u);
  EXPECT_EQ(dev_->irq_mode(), VfioPciDevice::IrqMode::kIntx);
  EXPECT_EQ(dev_->InterruptEventFds(), call.fds);
}

TEST_F(VfioPciDeviceTest, IntxSignalRaisesThePinAndABarAccessUnmasks) {
  Plug();
  MapBars();
  dev_->PollInterrupts();
  EXPECT_FALSE(b_.irq().level(kIntxLine));
  ASSERT_TRUE(fake_.Signal(uapi::kPciIntxIrqIndex));
  dev_->PollInterrupts();
  EXPECT_TRUE(b_.irq().level(kIntxLine));
  EXPECT_EQ(dev_->stats().intx_asserted, 1u);
  (void)Mem(kBar0, 4);  // the guest's handler touches the device
  EXPECT_FALSE(b_.irq().level(kIntxLine));
  const auto& call = fake_.set_irqs.back();
  EXPECT_EQ(call.index, uapi::kPciIntxIrqIndex);
  EXPECT_EQ(call.flags, uapi::kIrqSetDataNone | uapi::kIrqSetActionUnmask);
  EXPECT_EQ(call.count, 1u);
  EXPECT_EQ(dev_->stats().intx_unmasked, 1u);
}

// QEMU's vfio_intx_interrupt: while an INTx is pending the BAR mmaps are
// off, so the guest's handler reaches the MMIO path (which ends the
// interrupt and unmasks the host line) even on a BAR it would otherwise
// touch through the mmap; the next poll with nothing pending restores them.
TEST_F(VfioPciDeviceTest, PendingIntxTurnsBarMmapsOffUntilItEnds) {
  Plug();
  MapBars();
  ASSERT_TRUE(dev_->BarIsMmapped(2));
  ASSERT_TRUE(fake_.Signal(uapi::kPciIntxIrqIndex));
  dev_->PollInterrupts();
  EXPECT_TRUE(b_.irq().level(kIntxLine));
  EXPECT_FALSE(dev_->BarIsMmapped(2));
  EXPECT_EQ(dev_->stats().mmaps_disabled, 1u);
  const size_t before = fake_.accesses.size();
  SetMem(kBar2 + 0x40, 0x1234, 4);  // the handler's ack, through BAR 2
  EXPECT_GT(fake_.accesses.size(), before) << "slow path: pwrite";
  uint32_t host = 0;
  std::memcpy(&host, fake_.bar2() + 0x40, 4);
  EXPECT_EQ(host, 0x1234u) << "the write reached the device";
  EXPECT_FALSE(b_.irq().level(kIntxLine));
  EXPECT_EQ(dev_->stats().intx_unmasked, 1u);
  dev_->PollInterrupts();  // nothing pending: the mmaps come back
  EXPECT_TRUE(dev_->BarIsMmapped(2));
  const size_t after = fake_.accesses.size();
  SetMem(kBar2 + 0x44, 0x5678, 4);
  EXPECT_EQ(fake_.accesses.size(), after) << "fast path again";
}

TEST_F(VfioPciDeviceTest, MsiEnableSwitchesHostToMsiEventfds) {
  Plug();
  MapBars();
  EnableMsi(0xfee01000, 0x41);
  ASSERT_GE(fake_.set_irqs.size(), 3u);
  const auto& off = fake_.set_irqs[fake_.set_irqs.size() - 2];
  EXPECT_EQ(off.index, uapi::kPciIntxIrqIndex);
  EXPECT_EQ(off.flags, kTriggerNone);
  EXPECT_EQ(off.count, 0u);
  const auto& on = fake_.set_irqs.back();
  EXPECT_EQ(on.index, uapi::kPciMsiIrqIndex);
  EXPECT_EQ(on.flags, kTriggerEventfd);
  EXPECT_EQ(on.count, 1u);
  EXPECT_EQ(dev_->irq_mode(), VfioPciDevice::IrqMode::kMsi);
  EXPECT_EQ(dev_->InterruptEventFds(), on.fds);
}

TEST_F(VfioPciDeviceTest, MsiSignalDeliversTheGuestProgrammedMessage) {
  Plug();
  MapBars();
  EnableMsi(0xfee01000, 0x41);
  const uint16_t rid = dev_->requester_id();
  ASSERT_TRUE(fake_.Signal(uapi::kPciMsiIrqIndex, 0));
  dev_->PollInterrupts();
  EXPECT_EQ(b_.msi().Count(rid), 1u);
  std::optional<hw::MsiMessage> m = b_.msi().Last(rid);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->address, 0xfee01000u);
  EXPECT_EQ(m->data, 0x41u);
  dev_->PollInterrupts();  // nothing new
  EXPECT_EQ(b_.msi().Count(rid), 1u);
  EXPECT_EQ(dev_->stats().msi_delivered, 1u);
  EXPECT_FALSE(b_.irq().level(kIntxLine));
}

TEST_F(VfioPciDeviceTest, MsiWithoutBusMasteringIsDropped) {
  Plug();
  MapBars();
  EnableMsi(0xfee01000, 0x41);
  Set(kCfgCommand, kCommandMemory, 2);
  ASSERT_TRUE(fake_.Signal(uapi::kPciMsiIrqIndex, 0));
  dev_->PollInterrupts();
  EXPECT_EQ(b_.msi().TotalCount(), 0u);
}

TEST_F(VfioPciDeviceTest, DisablingMsiReturnsToIntx) {
  Plug();
  MapBars();
  EnableMsi(0xfee01000, 0x41);
  Set(dev_->msi_cap() + 2, 0, 2);
  EXPECT_EQ(dev_->irq_mode(), VfioPciDevice::IrqMode::kIntx);
  const auto& on = fake_.set_irqs.back();
  EXPECT_EQ(on.index, uapi::kPciIntxIrqIndex);
  EXPECT_EQ(on.flags, kTriggerEventfd);
  const auto& off = fake_.set_irqs[fake_.set_irqs.size() - 2];
  EXPECT_EQ(off.index, uapi::kPciMsiIrqIndex);
  EXPECT_EQ(off.flags, kTriggerNone);
  ASSERT_TRUE(fake_.Signal(uapi::kPciIntxIrqIndex));
  dev_->PollInterrupts();
  EXPECT_TRUE(b_.irq().level(kIntxLine));
  EXPECT_EQ(b_.msi().TotalCount(), 0u);
}

TEST_F(VfioPciDeviceTest, FailedMsiEnableFallsBackToIntxAndIsCounted) {
  Plug();
  MapBars();
  fake_.fail_set_irqs_errno = EINVAL;
  EnableMsi(0xfee01000, 0x41);
  EXPECT_NE(dev_->irq_mode(), VfioPciDevice::IrqMode::kMsi);
  EXPECT_GE(dev_->stats().host_errors, 1u);
  EXPECT_THAT(dev_->last_host_error().message(),
              HasSubstr("VFIO_DEVICE_SET_IRQS"));
}

TEST_F(VfioPciDeviceTest, MultiVectorMsiRegistersOneEventfdPerVector) {
  fake_.msi_count = 4;
  fake_.Put(0x42, 0x0084, 2);  // 64-bit, 4 vectors capable
  Plug();
  MapBars();
  EXPECT_EQ(Cfg(dev_->msi_cap() + 2, 2) & hw::pci::kMsiFlagsQmask, 0x4u);
  const uint8_t cap = dev_->msi_cap();
  Set(cap + 4, 0xfee00000);
  Set(cap + 12, 0x0040, 2);
  Set(cap + 2, 0x0021, 2);  // enable, 4 vectors
  ASSERT_EQ(fake_.set_irqs.back().index, uapi::kPciMsiIrqIndex);
  EXPECT_EQ(fake_.set_irqs.back().count, 4u);
  EXPECT_EQ(dev_->InterruptEventFds().size(), 4u);
  ASSERT_TRUE(fake_.Signal(uapi::kPciMsiIrqIndex, 2));
  dev_->PollInterrupts();
  std::optional<hw::MsiMessage> m = b_.msi().Last(dev_->requester_id());
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->data, 0x42u);  // vector 2 in the low bits
  EXPECT_EQ(b_.msi().TotalCount(), 1u);
}

// --- reset and teardown ---

TEST_F(VfioPciDeviceTest, ResetResetsTheHostAndTheEmulatedConfig) {
  Plug();
  MapBars();
  EnableMsi(0xfee01000, 0x41);
  b_.bus().Reset();
  EXPECT_EQ(fake_.resets, 1);
  EXPECT_EQ(fake_.Get(kCfgCommand, 2) & 0x7, 0u);  // host decoding stopped
  EXPECT_EQ(dev_->command(), 0);
  EXPECT_EQ(Cfg(kCfgBar0), 0u);
  EXPECT_EQ(Cfg(dev_->msi_cap() + 2, 2) & hw::pci::kMsiFlagsEnable, 0u);
  EXPECT_EQ(dev_->irq_mode(), VfioPciDevice::IrqMode::kIntx);
  EXPECT_EQ(fake_.set_irqs.back().index, uapi::kPciIntxIrqIndex);
}

TEST_F(VfioPciDeviceTest, UnplugUnmapsBarsClosesEventfdsKeepsDeviceFd) {
  Plug();
  MapBars();
  EnableMsi(0xfee01000, 0x41);
  const std::vector<int> fds = dev_->InterruptEventFds();
  ASSERT_EQ(fds.size(), 1u);
  absl::StatusOr<std::unique_ptr<hw::pci::PciDevice>> gone =
      b_.bus().Unplug(kDevfn);
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(fake_.munmaps, 1);
  EXPECT_EQ(fcntl(fds[0], F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(fake_.set_irqs.back().index, uapi::kPciMsiIrqIndex);
  EXPECT_EQ(fake_.set_irqs.back().flags, kTriggerNone);
  EXPECT_TRUE(fake_.triggers[uapi::kPciMsiIrqIndex].empty());
  EXPECT_TRUE(
      static_cast<VfioPciDevice*>(gone->get())->InterruptEventFds().empty());
  gone->reset();
  EXPECT_EQ(fake_.closes, 0);
  EXPECT_EQ(fake_.munmaps, 1);
}

TEST_F(VfioPciDeviceTest, ReplugRealizesAgain) {
  Plug();
  absl::StatusOr<std::unique_ptr<hw::pci::PciDevice>> gone =
      b_.bus().Unplug(kDevfn);
  ASSERT_TRUE(gone.ok());
  absl::StatusOr<hw::pci::PciDevice*> p =
      b_.bus().Plug(*std::move(gone), kDevfn);
  ASSERT_TRUE(p.ok()) << p.status();
  dev_ = static_cast<VfioPciDevice*>(*p);
  EXPECT_EQ(Cfg(0x00, 4), 0x11e81234u);
  EXPECT_EQ(dev_->msi_cap(), 0x40);
  EXPECT_EQ(Cfg(0x50, 1), 0x01u);  // PM passed again
  EXPECT_EQ(fake_.mmaps, 2);
  EXPECT_EQ(fake_.munmaps, 1);
  EXPECT_TRUE(dev_->BarIsMmapped(2));
  EXPECT_EQ(dev_->irq_mode(), VfioPciDevice::IrqMode::kIntx);
  MapBars();
  SetMem(kBar2, 0x77, 1);
  EXPECT_EQ(fake_.bar2()[0], 0x77);
}

// --- errors at creation ---

TEST_F(VfioPciDeviceTest, RegionInfoErrorFailsCreateWithErrno) {
  fake_.fail_region_info_index = 2;
  fake_.fail_region_info_errno = EINVAL;
  absl::StatusOr<std::unique_ptr<VfioPciDevice>> dev =
      VfioPciDevice::Create(&fake_, FakeVfioDeviceBackend::kDeviceFd, kHost);
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(dev.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dev.status().message(),
              HasSubstr("VFIO_DEVICE_GET_REGION_INFO(fd=42, index=2)"));
  EXPECT_THAT(dev.status().message(), HasSubstr("errno 22"));
  EXPECT_TRUE(dev.status().GetPayload("viommu.dev/errno").has_value());
}

TEST_F(VfioPciDeviceTest, VgaAndRomRegionInfoAreNotAsked) {
  fake_.fail_region_info_index = uapi::kPciVgaRegionIndex;  // no VGA: EINVAL
  absl::StatusOr<std::unique_ptr<VfioPciDevice>> dev =
      VfioPciDevice::Create(&fake_, FakeVfioDeviceBackend::kDeviceFd, kHost);
  ASSERT_TRUE(dev.ok()) << dev.status();
  fake_.fail_region_info_index = uapi::kPciRomRegionIndex;
  dev = VfioPciDevice::Create(&fake_, FakeVfioDeviceBackend::kDeviceFd, kHost);
  ASSERT_TRUE(dev.ok()) << dev.status();
}

TEST_F(VfioPciDeviceTest, RegionInfoOutOfProtocolIsDataLoss) {
  fake_.region_info_wrong_index = true;
  absl::StatusOr<std::unique_ptr<VfioPciDevice>> dev =
      VfioPciDevice::Create(&fake_, FakeVfioDeviceBackend::kDeviceFd, kHost);
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(dev.status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(VfioPciDeviceTest, BarSizeNotAPowerOfTwoFailsCreate) {
  fake_.regions[0].size = 0x1800;
  absl::StatusOr<std::unique_ptr<VfioPciDevice>> dev =
      VfioPciDevice::Create(&fake_, FakeVfioDeviceBackend::kDeviceFd, kHost);
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(dev.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(dev.status().message(), HasSubstr("BAR 0"));
}

TEST_F(VfioPciDeviceTest, BadDeviceFdFailsCreate) {
  absl::StatusOr<std::unique_ptr<VfioPciDevice>> dev =
      VfioPciDevice::Create(&fake_, 7, kHost);
  ASSERT_FALSE(dev.ok());
  EXPECT_THAT(dev.status().message(), HasSubstr("VFIO_DEVICE_GET_INFO(fd=7)"));
}

TEST_F(VfioPciDeviceTest, SetIrqsFailureAtRealizeFailsThePlugCleanly) {
  fake_.fail_set_irqs_errno = EBUSY;
  absl::StatusOr<std::unique_ptr<VfioPciDevice>> dev =
      VfioPciDevice::Create(&fake_, FakeVfioDeviceBackend::kDeviceFd, kHost);
  ASSERT_TRUE(dev.ok());
  absl::StatusOr<hw::pci::PciDevice*> p =
      b_.bus().Plug(*std::move(dev), kDevfn);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("errno 16"));
  EXPECT_EQ(fake_.mmaps, 1);
  EXPECT_EQ(fake_.munmaps, 1);
  EXPECT_EQ(b_.bus().Find(kDevfn), nullptr);
}

}  // namespace
}  // namespace viommu::system
