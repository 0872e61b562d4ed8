// Scalable-mode tables in a VtdEngine (layer 2 of issue 14 part 2): DMA
// translated through the PASID entry's second-level tables, pass-through,
// the fault records QEMU 7.2 leaves (page-walk faults with PP and PV =
// RID_PASID, PASID faults as 0x58 without), FPD from the PASID entry, and
// the caching-mode shadow sync feeding MAP/UNMAP notifiers exactly as in
// legacy mode. The record bytes were read from Debian's QEMU 7.2 with
// x-scalable-mode=on (the same tables and DMA over qtest).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fakes/fake_mmio_device.h"
#include "viommu/hw/iommu/intel_iommu.h"
#include "viommu/hw/iommu/vtd_address_space.h"
#include "viommu/hw/iommu/vtd_engine.h"
#include "viommu/hw/iommu/vtd_properties.h"
#include "viommu/hw/iommu/vtd_regs.h"
#include "viommu/hw/iommu/vtd_scalable.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/util/types.h"

namespace viommu::vtd {
namespace {

constexpr uint8_t kDevfn = 0x20;  // 00:04.0
constexpr uint16_t kSid = 0x0020;
constexpr uint64_t kRoot = 0x10'0000;
constexpr uint64_t kCtx = 0x10'1000;
constexpr uint64_t kPasidDir = 0x10'5000;
constexpr uint64_t kPasidTable = 0x10'6000;
constexpr uint64_t kL3 = 0x10'2000;
constexpr uint64_t kL2 = 0x10'3000;
constexpr uint64_t kL1 = 0x10'4000;
constexpr uint64_t kInterruptWindowBase = 0xfee0'0000;
constexpr uint64_t kInterruptWindowSize = 0x10'0000;

// PASID entry val[0]: SLPTPTR, PGTT, AW 1 (3 levels), P.
constexpr uint64_t PeVal0(uint8_t pgtt, uint64_t extra = 0) {
  return kL3 | uint64_t{pgtt} << 6 | 1 << 2 | 1 | extra;
}

struct Ev {
  memory::IommuEventType type;
  uint64_t iova;
  uint64_t mask;
  uint64_t gpa;
  friend bool operator==(const Ev&, const Ev&) = default;
};

class Recorder final : public memory::IommuNotifier {
 public:
  void Notify(const memory::IommuEvent& e) override {
    events.push_back(
        {e.type, e.entry.iova, e.entry.addr_mask, e.entry.translated_addr});
  }
  std::vector<Ev> Take() { return std::exchange(events, {}); }
  std::vector<Ev> events;
};

class VtdScalableEngineTest : public ::testing::Test {
 protected:
  void Start(bool caching_mode = false, bool scalable_mode = true) {
    Properties props;
    props.scalable_mode = scalable_mode;
    props.caching_mode = caching_mode;
    root_ = memory::MemoryRegion::CreateContainer(&sys_, "root", kSize2To64);
    root_->AddSubregion(
        0, *memory::MemoryRegion::CreateRam(&sys_, "ram", 16 << 20));
    msi_ = memory::MemoryRegion::CreateMmio(&sys_, "msi", kInterruptWindowSize,
                                            &window_);
    root_->AddSubregionOverlap(kInterruptWindowBase, msi_, -1);
    as_ = std::make_unique<memory::AddressSpace>(&sys_, root_, "memory");
    iommu_ = *IntelIommu::Create(props, as_.get());
    engine_ = std::make_unique<VtdEngine>(
        iommu_.get(), &sys_, as_.get(),
        VtdSharedRegions::Create(&sys_, root_, msi_));
    iommu_->set_observer(engine_.get());
    dev_ = std::make_unique<memory::AddressSpace>(
        &sys_, engine_->DeviceRoot(0, kDevfn), "edu-dma");
    // Tables: bus 0 lo half -> kCtx; devfn 0x20's SM context entry ->
    // PASID directory; PASID 0 (RID_PASID) -> second level, DID 1;
    // IOVA 0x400000 -> 0x600000 and 0x401000 -> 0x700000 (4K, RW).
    Put(kRoot, kCtx | 1);
    Put(kCtx + kDevfn * 32, kPasidDir | 1);
    Put(kPasidDir, kPasidTable | 1);
    Put(kPasidTable, PeVal0(PasidEntry::kPgttSecondLevel));
    Put(kPasidTable + 8, 1);
    Put(kL3, kL2 | 3);
    Put(kL2 + 2 * 8, kL1 | 3);
    Put(kL1, 0x60'0000 | 3);
    Put(kL1 + 8, 0x70'0000 | 3);
    Put(0x60'0000, 0x1122334455667788);
  }
  void TearDown() override {
    if (iommu_ != nullptr) iommu_->set_observer(nullptr);
    dev_.reset();
    engine_.reset();
  }
  void Put(uint64_t gpa, uint64_t v) {
    ASSERT_TRUE(as_->Write(gpa, &v, 8).ok());
  }
  uint64_t Get(uint64_t gpa) {
    uint64_t v = 0;
    EXPECT_TRUE(as_->Read(gpa, &v, 8).ok());
    return v;
  }
  void W(uint16_t off, uint64_t v, unsigned size = 8) {
    ASSERT_TRUE(iommu_->Write(off, v, size, {}).ok());
  }
  uint64_t R(uint16_t off, unsigned size = 8) {
    uint64_t v = 0;
    EXPECT_TRUE(iommu_->Read(off, &v, size, {}).ok());
    return v;
  }
  // RTADDR (TTM 01 unless `legacy`), SRTP, TE.
  void Enable(bool legacy = false) {
    W(Offset(Reg64::kRtaddr), kRoot | (legacy ? 0 : kRtaddrSmt));
    W(Offset(Reg32::kGcmd), kGcmdSrtp, 4);
    W(Offset(Reg32::kGcmd), kGcmdTe, 4);
  }
  // Global context-cache and IOTLB invalidation through the registers.
  void InvalidateAll() {
    W(Offset(Reg64::kCcmd), 0xa000'0000'0000'0000);
    W(Offset(Reg64::kIotlb), 0x9000'0000'0000'0000);
  }
  // Page-selective IOTLB invalidation of `addr` (4K) in domain `did`.
  void InvalidatePage(uint64_t addr, uint16_t did = 1) {
    W(Offset(Reg64::kIva), addr);
    W(Offset(Reg64::kIotlb), 0xb000'0000'0000'0000 | uint64_t{did} << 32);
  }
  bool DmaRead(uint64_t iova, uint64_t* v) {
    return dev_->Read(iova, v, 8, memory::MemTxAttrs::Requester(kSid)).ok();
  }
  bool DmaWrite(uint64_t iova, uint64_t v) {
    return dev_->Write(iova, &v, 8, memory::MemTxAttrs::Requester(kSid)).ok();
  }
  uint32_t Fsts() { return static_cast<uint32_t>(R(Offset(Reg32::kFsts), 4)); }
  uint64_t FrcdHi() { return R(Offset(Reg64::kFrcd0Hi)); }
  uint64_t FrcdLo() { return R(Offset(Reg64::kFrcd0Lo)); }
  void ClearFault() {
    W(Offset(Reg32::kFrcd0Dw3), kFrcdF >> 32, 4);
    W(Offset(Reg32::kFsts), kFstsPfo | kFstsIqe, 4);
  }

  memory::MemorySystem sys_;
  memory::testing::FakeMmioDevice window_{kInterruptWindowSize};
  std::shared_ptr<memory::MemoryRegion> root_;
  std::shared_ptr<memory::MemoryRegion> msi_;
  std::unique_ptr<memory::AddressSpace> as_;
  std::unique_ptr<IntelIommu> iommu_;
  std::unique_ptr<VtdEngine> engine_;
  std::unique_ptr<memory::AddressSpace> dev_;
};

TEST_F(VtdScalableEngineTest, SrtpLatchesScalableOnlyWithTtm01) {
  Start();
  W(Offset(Reg64::kRtaddr), kRoot | kRtaddrSmt);
  W(Offset(Reg32::kGcmd), kGcmdSrtp, 4);
  EXPECT_TRUE(iommu_->root_scalable());
  EXPECT_EQ(iommu_->root_table(), kRoot);
  W(Offset(Reg64::kRtaddr), kRoot);
  W(Offset(Reg32::kGcmd), kGcmdSrtp, 4);
  EXPECT_FALSE(iommu_->root_scalable());
}

TEST_F(VtdScalableEngineTest, TtmIgnoredWithoutScalableModeProperty) {
  Start(/*caching_mode=*/false, /*scalable_mode=*/false);
  W(Offset(Reg64::kRtaddr), kRoot | kRtaddrSmt);
  W(Offset(Reg32::kGcmd), kGcmdSrtp, 4);
  EXPECT_FALSE(iommu_->root_scalable());
}

TEST_F(VtdScalableEngineTest, DmaThroughPasidEntrySecondLevel) {
  Start();
  Enable();
  uint64_t v = 0;
  ASSERT_TRUE(DmaRead(0x40'0000, &v));
  EXPECT_EQ(v, 0x1122334455667788u);
  ASSERT_TRUE(DmaWrite(0x40'1008, 0xabcdef));
  EXPECT_EQ(Get(0x70'0008), 0xabcdefu);
  EXPECT_EQ(Fsts(), 0u);
}

TEST_F(VtdScalableEngineTest, FirstLevelAndNestedPgttWalkSecondLevelAs72) {
  // QEMU 7.2 accepts PGTT 001b and 011b and walks SLPTPTR as for 010b.
  for (uint8_t pgtt : {PasidEntry::kPgttFirstLevel, PasidEntry::kPgttNested}) {
    Start();
    Put(kPasidTable, PeVal0(pgtt));
    Enable();
    uint64_t v = 0;
    ASSERT_TRUE(DmaRead(0x40'0000, &v)) << int{pgtt};
    EXPECT_EQ(v, 0x1122334455667788u);
    TearDown();
  }
}

TEST_F(VtdScalableEngineTest, PassThroughPgttIsIdentity) {
  Start();
  Put(kPasidTable, PeVal0(PasidEntry::kPgttPassThrough));
  Put(0x40'0000, 0x5a5a);
  Enable();
  uint64_t v = 0;
  ASSERT_TRUE(DmaRead(0x40'0000, &v));
  EXPECT_EQ(v, 0x5a5au);
}

TEST_F(VtdScalableEngineTest, PageWalkFaultCarriesPpAndRidPasid) {
  // QEMU 7.2, unmapped write at 0x900000: FRCD hi 0x8000000580000020.
  Start();
  Enable();
  EXPECT_FALSE(DmaWrite(0x90'0000, 1));
  EXPECT_EQ(Fsts() & kFstsPpf, kFstsPpf);
  EXPECT_EQ(FrcdLo(), 0x90'0000u);
  EXPECT_EQ(FrcdHi(), 0x8000'0005'8000'0020u);
  ClearFault();
  // A read of an unmapped page: 0xc000000680000020.
  uint64_t v = 0;
  EXPECT_FALSE(DmaRead(0x80'0000, &v));
  EXPECT_EQ(FrcdHi(), 0xc000'0006'8000'0020u);
}

TEST_F(VtdScalableEngineTest, PageWalkFaultPvIsTheRidPasid) {
  Start();
  // RID_PASID 0x45: directory index 1, table index 5.
  Put(kCtx + kDevfn * 32 + 8, 0x45);
  Put(kPasidDir + 8, kPasidTable | 1);
  Put(kPasidTable + 5 * 64, PeVal0(PasidEntry::kPgttSecondLevel));
  Put(kPasidTable + 5 * 64 + 8, 1);
  Enable();
  EXPECT_FALSE(DmaWrite(0x90'0000, 1));
  EXPECT_EQ(FrcdHi(), 0x8000'0005'8000'0020u | uint64_t{0x45} << 40);
}

TEST_F(VtdScalableEngineTest, SnpAllowedInLeavesOnlyAsSnoopControl) {
  // QEMU 7.2 with x-scalable-mode=on: SNP in a 4K leaf translates; SNP in
  // a table pointer is 0xc (FRCD hi 0xc000000c80000020).
  Start();
  Put(kL1, 0x60'0000 | 1 << 11 | 3);
  Enable();
  uint64_t v = 0;
  ASSERT_TRUE(DmaRead(0x40'0000, &v));
  EXPECT_EQ(v, 0x1122334455667788u);
  Put(kL2 + 2 * 8, kL1 | 1 << 11 | 3);
  InvalidateAll();
  EXPECT_FALSE(DmaRead(0x40'0000, &v));
  EXPECT_EQ(FrcdHi(), 0xc000'000c'8000'0020u);
}

TEST_F(VtdScalableEngineTest, InterruptRangeIs87AndQualified) {
  // QEMU 7.2: FRCD hi 0x8000008780000020; suppressed by the PASID
  // entry's FPD.
  Start();
  Put(kL1 + 8, 0xfee0'0000 | 3);
  Enable();
  EXPECT_FALSE(DmaWrite(0x40'1000, 1));
  EXPECT_EQ(FrcdHi(), 0x8000'0087'8000'0020u);
  ClearFault();
  Put(kPasidTable, PeVal0(PasidEntry::kPgttSecondLevel, /*fpd=*/2));
  InvalidateAll();
  EXPECT_FALSE(DmaWrite(0x40'1000, 1));
  EXPECT_EQ(Fsts(), 0u);
}

TEST_F(VtdScalableEngineTest, PasidFaultIs58WithoutPasid) {
  // QEMU 7.2, PGTT 101b: FRCD hi 0xc000005800000020 (read), lo the page.
  Start();
  Put(kPasidTable, PeVal0(5));
  Enable();
  uint64_t v = 0;
  EXPECT_FALSE(DmaRead(0x40'0000, &v));
  EXPECT_EQ(FrcdLo(), 0x40'0000u);
  EXPECT_EQ(FrcdHi(), 0xc000'0058'0000'0020u);
}

TEST_F(VtdScalableEngineTest, PasidEntryReadOnEveryRequestBeforeIotlb) {
  // QEMU 7.2: a PASID entry made invalid without any invalidation faults
  // (0x58) even for an IOVA the IOTLB holds.
  Start();
  Enable();
  uint64_t v = 0;
  ASSERT_TRUE(DmaRead(0x40'0000, &v));
  Put(kPasidTable, PeVal0(5));
  EXPECT_FALSE(DmaRead(0x40'0000, &v));
  EXPECT_EQ(FrcdHi(), 0xc000'0058'0000'0020u);
  // Valid again: the cached translation is used (the PTE change is not
  // seen without an IOTLB invalidation).
  ClearFault();
  Put(kPasidTable, PeVal0(PasidEntry::kPgttSecondLevel));
  Put(kL1, 0x70'0000 | 3);
  ASSERT_TRUE(DmaRead(0x40'0000, &v));
  EXPECT_EQ(v, 0x1122334455667788u);
  EXPECT_EQ(Fsts(), 0u);
}

// The scalable-mode context entry is cached as QEMU 7.2 caches it (its
// per-device context-cache entry): a context entry rewritten without a
// context-cache invalidation is not seen by the next request, not even one
// that misses the IOTLB and walks.
TEST_F(VtdScalableEngineTest, ContextEntryCachedUntilContextInvalidation) {
  Start();
  Enable();
  uint64_t v = 0;
  ASSERT_TRUE(DmaRead(0x40'0000, &v));
  Put(kCtx + kDevfn * 32, 0);           // not present
  ASSERT_TRUE(DmaRead(0x40'1000, &v));  // an IOTLB miss: walked
  EXPECT_EQ(Fsts(), 0u);
  // Global context-cache invalidation (CCMD, CIRG 01): the entry is read.
  W(Offset(Reg64::kCcmd), 0xa000'0000'0000'0000);
  EXPECT_FALSE(DmaRead(0x40'1000, &v));
  EXPECT_EQ(FrcdHi(), 0xc000'0002'0000'0020u);  // context not present
}

TEST_F(VtdScalableEngineTest, DomainAndDeviceContextInvalidationDropIt) {
  // Domain-selective (CIRG 10, global in 7.2) and device-selective (CIRG
  // 11, SID 00:04.0) context-cache invalidations drop the cached entry.
  for (uint64_t ccmd :
       {0xc000'0000'0000'0007, 0xe000'0000'0000'0000 | uint64_t{kSid} << 16}) {
    Start();
    Enable();
    uint64_t v = 0;
    ASSERT_TRUE(DmaRead(0x40'0000, &v));
    Put(kCtx + kDevfn * 32, 0);
    W(Offset(Reg64::kCcmd), ccmd);
    EXPECT_FALSE(DmaRead(0x40'1000, &v)) << std::hex << ccmd;
    EXPECT_EQ(FrcdHi(), 0xc000'0002'0000'0020u) << std::hex << ccmd;
    TearDown();
  }
}

TEST_F(VtdScalableEngineTest, DeviceContextInvalidationOfAnotherDeviceKeepsIt) {
  Start();
  Enable();
  uint64_t v = 0;
  ASSERT_TRUE(DmaRead(0x40'0000, &v));
  Put(kCtx + kDevfn * 32, 0);
  W(Offset(Reg64::kCcmd), 0xe000'0000'0000'0000 | uint64_t{0x0028} << 16);
  ASSERT_TRUE(DmaRead(0x40'1000, &v));
  EXPECT_EQ(Fsts(), 0u);
}

TEST_F(VtdScalableEngineTest, SrtpDropsTheCachedContextEntry) {
  Start();
  Enable();
  uint64_t v = 0;
  ASSERT_TRUE(DmaRead(0x40'0000, &v));
  Put(kCtx + kDevfn * 32, 0);
  W(Offset(Reg64::kRtaddr), kRoot | kRtaddrSmt);
  W(Offset(Reg32::kGcmd), kGcmdTe | kGcmdSrtp, 4);
  EXPECT_FALSE(DmaRead(0x40'1000, &v));
  EXPECT_EQ(FrcdHi(), 0xc000'0002'0000'0020u);
}

TEST_F(VtdScalableEngineTest, PasidEntryChangeTakesEffectWithoutInvalidation) {
  // QEMU 7.2 reads RID_PASID's PASID entry on every request (its walk takes
  // SLPTPTR, AW and DID from it), so a PASID entry pointing at other
  // tables is walked by the next IOTLB miss with no invalidation at all.
  Start();
  Enable();
  uint64_t v = 0;
  ASSERT_TRUE(DmaRead(0x40'0000, &v));
  // Other tables: 0x401000 -> 0x600000.
  constexpr uint64_t kOtherL3 = 0x10'8000;
  constexpr uint64_t kOtherL2 = 0x10'9000;
  constexpr uint64_t kOtherL1 = 0x10'a000;
  Put(kOtherL3, kOtherL2 | 3);
  Put(kOtherL2 + 2 * 8, kOtherL1 | 3);
  Put(kOtherL1 + 8, 0x60'0000 | 3);
  Put(kPasidTable, PeVal0(PasidEntry::kPgttSecondLevel) - kL3 + kOtherL3);
  ASSERT_TRUE(DmaRead(0x40'1000, &v));
  EXPECT_EQ(v, 0x1122334455667788u);  // the word at 0x600000
  // The IOTLB still holds 0x400000 (no invalidation ran).
  ASSERT_TRUE(DmaRead(0x40'0000, &v));
  EXPECT_EQ(v, 0x1122334455667788u);
  EXPECT_EQ(Fsts(), 0u);
}

TEST_F(VtdScalableEngineTest, CachedContextPasidEntryNotPresentStillHitsAs72) {
  // With the context entry cached, 7.2 checks the PASID entry only as
  // vtd_ce_get_pasid_fpd does (no present bit): a cached translation is
  // still used, and a miss walks the entry as read.
  Start();
  Enable();
  uint64_t v = 0;
  ASSERT_TRUE(DmaRead(0x40'0000, &v));
  Put(kPasidTable, PeVal0(PasidEntry::kPgttSecondLevel) & ~uint64_t{1});
  ASSERT_TRUE(DmaRead(0x40'0000, &v));
  ASSERT_TRUE(DmaWrite(0x40'1000, 0x77));
  EXPECT_EQ(Get(0x70'0000), 0x77u);
  EXPECT_EQ(Fsts(), 0u);
  // Once the context entry is read again, the PASID entry is checked in
  // full: 0x58.
  W(Offset(Reg64::kCcmd), 0xa000'0000'0000'0000);
  EXPECT_FALSE(DmaRead(0x40'0000, &v));
  EXPECT_EQ(FrcdHi(), 0xc000'0058'0000'0020u);
}

TEST_F(VtdScalableEngineTest, PasidEntryFpdSuppressesWalkFaultsOnly) {
  Start();
  Put(kPasidTable, PeVal0(PasidEntry::kPgttSecondLevel, /*fpd=*/2));
  Enable();
  EXPECT_FALSE(DmaWrite(0x90'0000, 1));
  EXPECT_EQ(Fsts(), 0u);
  // 0x58 is not qualified: recorded although the context entry has FPD.
  Put(kCtx + kDevfn * 32, kPasidDir | 3);
  Put(kPasidDir, 0);
  InvalidateAll();
  EXPECT_FALSE(DmaWrite(0x40'0000, 1));
  EXPECT_EQ(FrcdHi(), 0x8000'0058'0000'0020u);
}

TEST_F(VtdScalableEngineTest, LegacyTablesWhenTtmIs00) {
  Start();
  // A legacy context entry at devfn 0x20's legacy slot (16 bytes each).
  Put(kCtx + kDevfn * 16, kL3 | 1);
  Put(kCtx + kDevfn * 16 + 8, 1 << 8 | 1);
  Enable(/*legacy=*/true);
  uint64_t v = 0;
  ASSERT_TRUE(DmaRead(0x40'0000, &v));
  EXPECT_EQ(v, 0x1122334455667788u);
}

TEST_F(VtdScalableEngineTest, CachingModeShadowSyncThroughPasidTables) {
  Start(/*caching_mode=*/true);
  VtdAddressSpace* vas = engine_->FindAddressSpace(0, kDevfn);
  ASSERT_NE(vas, nullptr);
  Recorder rec;
  auto h = vas->notifiers()->Register(
      &rec, {.flags = memory::kNotifyMap | memory::kNotifyUnmap});
  ASSERT_TRUE(h.ok()) << h.status();
  Enable();
  // Enabling translation replays what the PASID entry's tables map.
  std::vector<Ev> ev = rec.Take();
  const Ev map0{memory::IommuEventType::kMap, 0x40'0000, 0xfff, 0x60'0000};
  const Ev map1{memory::IommuEventType::kMap, 0x40'1000, 0xfff, 0x70'0000};
  EXPECT_NE(std::find(ev.begin(), ev.end(), map0), ev.end());
  EXPECT_NE(std::find(ev.begin(), ev.end(), map1), ev.end());
  // A new PTE plus a PSI in the PASID entry's domain: one MAP.
  Put(kL1 + 2 * 8, 0x80'0000 | 3);
  InvalidatePage(0x40'2000, /*did=*/1);
  EXPECT_EQ(rec.Take(), (std::vector<Ev>{{memory::IommuEventType::kMap,
                                          0x40'2000, 0xfff, 0x80'0000}}));
  // A PSI naming another domain does not reach the device.
  Put(kL1 + 3 * 8, 0x90'0000 | 3);
  InvalidatePage(0x40'3000, /*did=*/2);
  EXPECT_TRUE(rec.Take().empty());
  // Clearing the PTE and invalidating: one UNMAP.
  Put(kL1 + 2 * 8, 0);
  InvalidatePage(0x40'2000, /*did=*/1);
  std::vector<Ev> unmap = rec.Take();
  ASSERT_EQ(unmap.size(), 1u);
  EXPECT_EQ(unmap[0].type, memory::IommuEventType::kUnmap);
  EXPECT_EQ(unmap[0].iova, 0x40'2000u);
}

TEST(ScalableEcapTest, BitsAsQemu72) {
  Properties p;
  p.scalable_mode = true;
  EXPECT_EQ(ComputeEcap(p), 0x4800'80f0'0f4au);
  p.pasid = true;
  EXPECT_EQ(ComputeEcap(p), 0x4900'80f0'0f4au);
  EXPECT_EQ(ComputeCap(p), ComputeCap(Properties{}));
}

// --- Queued invalidation with 256-bit descriptors (IQA.DW) ---

constexpr uint64_t kQueue = 0x20'0000;
constexpr uint64_t kStatus = 0x21'0000;

class VtdScalableQueueTest : public VtdScalableEngineTest {
 protected:
  // IQA = kQueue with DW, QS 0 (128 256-bit descriptors), QIE on.
  void EnableQi(bool dw = true) {
    W(Offset(Reg64::kIqa), kQueue | (dw ? kIqaDw : 0));
    W(Offset(Reg32::kGcmd), Gsts() | kGcmdQie, 4);
  }
  uint32_t Gsts() { return static_cast<uint32_t>(R(Offset(Reg32::kGsts), 4)); }
  // Writes a 256-bit descriptor (upper half `upper`) at `index`.
  void PutDesc(uint32_t index, uint64_t lo, uint64_t hi, uint64_t upper = 0) {
    const uint64_t at = kQueue + index * 32;
    Put(at, lo);
    Put(at + 8, hi);
    Put(at + 16, upper);
    Put(at + 24, upper);
  }
  static uint64_t Wait(uint32_t data) {
    return 5 | 1 << 5 | uint64_t{data} << 32;
  }
  uint64_t Iqh() { return R(Offset(Reg64::kIqh)); }
};

TEST_F(VtdScalableQueueTest, DescriptorsAre32BytesAndIqhCountsThem) {
  Start();
  EnableQi();
  // QEMU 7.2: the upper half of a 256-bit wait descriptor is not looked at.
  PutDesc(0, Wait(1), kStatus);
  PutDesc(1, Wait(2), kStatus, /*upper=*/0xffff'ffff);
  W(Offset(Reg64::kIqt), 2 << 5);
  EXPECT_EQ(Get(kStatus) & 0xffff'ffff, 2u);
  EXPECT_EQ(Iqh(), 0x40u);
  EXPECT_EQ(Fsts(), 0u);
}

TEST_F(VtdScalableQueueTest, IqtBit4IsLoggedOnly) {
  Start();
  EnableQi();
  PutDesc(0, Wait(1), kStatus);
  W(Offset(Reg64::kIqt), 0x30);  // QEMU 7.2: no IQE, tail unchanged
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(R(Offset(Reg64::kIqt)), 0x30u);
  EXPECT_EQ(Get(kStatus), 0u);
  EXPECT_EQ(Iqh(), 0u);
  W(Offset(Reg64::kIqt), 0x20);
  EXPECT_EQ(Get(kStatus) & 0xffff'ffff, 1u);
}

TEST_F(VtdScalableQueueTest, QueueSizeHalvedTailAtSizeIsIqe) {
  Start();
  EnableQi();
  W(Offset(Reg64::kIqt), 0x1000);  // tail 128 of 128
  EXPECT_EQ(Fsts() & kFstsIqe, kFstsIqe);
}

TEST_F(VtdScalableQueueTest, DwIgnoredWithoutScalableMode) {
  Start(/*caching_mode=*/false, /*scalable_mode=*/false);
  EnableQi();
  // 16-byte descriptors: index 1 is at kQueue + 16 (the first one's upper
  // half here, zero: type 0, an error).
  PutDesc(0, Wait(1), kStatus);
  W(Offset(Reg64::kIqt), 2 << 4);
  EXPECT_EQ(Get(kStatus) & 0xffff'ffff, 1u);
  EXPECT_EQ(Iqh(), 0x10u);
  EXPECT_EQ(Fsts() & kFstsIqe, kFstsIqe);
}

TEST_F(VtdScalableQueueTest, PasidDescriptorsAcceptedAndIgnoredAs72) {
  // QEMU 7.2 accepts PASID-IOTLB (6) and PASID-cache (7) descriptors of
  // any granularity and reserved bits and does nothing: a translation the
  // IOTLB holds stays; a legacy domain-selective IOTLB descriptor (2)
  // drops it.
  Start();
  Enable();
  EnableQi();
  uint64_t v = 0;
  ASSERT_TRUE(DmaRead(0x40'0000, &v));
  Put(0x70'0000, 0x99);
  Put(kL1, 0x70'0000 | 3);
  PutDesc(0, 6 | 2 << 4 | 1 << 16, 0);                   // all in PASID 0
  PutDesc(1, 6 | 3 << 4 | 1 << 16, 0x40'0000);           // PSI
  PutDesc(2, 6 | 0 << 4 | 1 << 16 | 1ull << 52, 0x880);  // G 0, rsvd bits
  PutDesc(3, 7 | 3 << 4, 0);                             // PC global
  PutDesc(4, 7 | 1 << 6, 1);                             // PC rsvd bits
  PutDesc(5, Wait(1), kStatus);
  W(Offset(Reg64::kIqt), 6 << 5);
  EXPECT_EQ(Get(kStatus) & 0xffff'ffff, 1u);
  EXPECT_EQ(Fsts(), 0u);
  ASSERT_TRUE(DmaRead(0x40'0000, &v));
  EXPECT_EQ(v, 0x1122334455667788u);    // stale, as 7.2
  PutDesc(6, 2 | 2 << 4 | 1 << 16, 0);  // IOTLB DSI, domain 1
  PutDesc(7, Wait(2), kStatus);
  W(Offset(Reg64::kIqt), 8 << 5);
  EXPECT_EQ(Get(kStatus) & 0xffff'ffff, 2u);
  ASSERT_TRUE(DmaRead(0x40'0000, &v));
  EXPECT_EQ(v, 0x99u);
  // Type 8 (PASID device-IOTLB) is unknown to 7.2: IQE.
  PutDesc(8, 8, 0);
  W(Offset(Reg64::kIqt), 9 << 5);
  EXPECT_EQ(Fsts() & kFstsIqe, kFstsIqe);
  EXPECT_EQ(Iqh(), 8u << 5);
}

}  // namespace
}  // namespace viommu::vtd
