#include "viommu/hw/iommu/vtd_context.h"

#include <cstdint>
#include <memory>

#include "gtest/gtest.h"
#include "tests/fakes/fake_mmio_device.h"
#include "tests/hw/iommu/fake_guest_memory.h"
#include "viommu/hw/iommu/vtd_guest_memory.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::vtd {
namespace {

constexpr Hwaddr kRoot = 0x10000;
constexpr Hwaddr kCtx = 0x20000;
constexpr uint8_t kBus = 5;
constexpr uint8_t kDevfn = 0x1f;
constexpr uint64_t kSlpt = 0x30000;

TableConfig Config(int aw = 39, bool dt = false, bool pt = true,
                   bool dma_translation = true) {
  Properties p;
  p.aw_bits = aw;
  p.device_iotlb = dt;
  p.pt = pt;
  p.dma_translation = dma_translation;
  return TableConfig::FromProperties(p);
}

class VtdContextTest : public ::testing::Test {
 protected:
  void SetRoot(uint64_t lo, uint64_t hi = 0) {
    mem_.WriteU64(kRoot + kBus * 16, lo);
    mem_.WriteU64(kRoot + kBus * 16 + 8, hi);
  }
  void SetContext(uint64_t lo, uint64_t hi) {
    mem_.WriteU64(kCtx + kDevfn * 16, lo);
    mem_.WriteU64(kCtx + kDevfn * 16 + 8, hi);
  }
  // A valid 3-level multi-level entry with domain 42, plus `lo_extra`.
  void SetValid(uint64_t lo_extra = 0, uint64_t hi_extra = 0) {
    SetRoot(kCtx | 1);
    SetContext(kSlpt | 1 | lo_extra, (42 << 8) | 1 | hi_extra);
  }
  std::optional<FaultReason> Fault(const TableConfig& cfg = Config()) {
    return LookupContext(mem_, cfg, kRoot, kBus, kDevfn).fault;
  }

  testing::FakeGuestMemory mem_;
};

TEST(TableConfigTest, FromPropertiesFollowsCapAndEcap) {
  TableConfig d = Config();
  EXPECT_EQ(d.aw_bits, 39);
  EXPECT_EQ(d.sagaw, 0x2);
  EXPECT_TRUE(d.pt_supported);
  EXPECT_FALSE(d.dt_supported);
  EXPECT_TRUE(d.LevelSupported(3));
  EXPECT_FALSE(d.LevelSupported(4));
  EXPECT_FALSE(d.LevelSupported(2));

  TableConfig wide = Config(48, /*dt=*/true, /*pt=*/false);
  EXPECT_EQ(wide.sagaw, 0x6);
  EXPECT_TRUE(wide.LevelSupported(3));
  EXPECT_TRUE(wide.LevelSupported(4));
  EXPECT_FALSE(wide.LevelSupported(5));
  EXPECT_TRUE(wide.dt_supported);
  EXPECT_FALSE(wide.pt_supported);

  EXPECT_EQ(Config(48, false, true, /*dma_translation=*/false).sagaw, 0);
}

TEST(ContextEntryTest, DecodesFields) {
  ContextEntry ce{.lo = 0x123456000 | 8 | 2 | 1, .hi = 0xbeef02};
  EXPECT_TRUE(ce.present());
  EXPECT_TRUE(ce.fpd());
  EXPECT_EQ(ce.translation_type(), ContextEntry::kTtPassThrough);
  EXPECT_EQ(ce.slptptr(), 0x123456000u);
  EXPECT_EQ(ce.levels(), 4);
  EXPECT_EQ(ce.agaw(), 48);
  EXPECT_EQ(ce.domain_id(), 0xbeef);
  ContextEntry three{.lo = 0, .hi = 1};
  EXPECT_EQ(three.levels(), 3);
  EXPECT_EQ(three.agaw(), 39);
  EXPECT_FALSE(three.present());
}

TEST_F(VtdContextTest, FindsEntryOfBusAndDevfn) {
  SetValid();
  ContextLookup r = LookupContext(mem_, Config(), kRoot, kBus, kDevfn);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.entry.slptptr(), kSlpt);
  EXPECT_EQ(r.entry.domain_id(), 42);
  EXPECT_EQ(r.entry.levels(), 3);
  // Other bus / devfn slots are untouched (zero): not present.
  EXPECT_EQ(LookupContext(mem_, Config(), kRoot, kBus + 1, kDevfn).fault,
            FaultReason::kRootEntryP);
  EXPECT_EQ(LookupContext(mem_, Config(), kRoot, kBus, kDevfn - 1).fault,
            FaultReason::kContextEntryP);
}

TEST_F(VtdContextTest, UnreadableRootTable) {
  EXPECT_EQ(Fault(), FaultReason::kRootTableInv);
}

TEST_F(VtdContextTest, RootNotPresentWinsOverReservedBits) {
  SetRoot(kCtx | 0x2, /*hi=*/1);
  EXPECT_EQ(Fault(), FaultReason::kRootEntryP);
}

TEST_F(VtdContextTest, RootReservedBits) {
  mem_.AddPage(kCtx);  // reserved check comes before reading the context
  for (uint64_t bad : {uint64_t{1} << 1, uint64_t{1} << 11, uint64_t{1} << 39,
                       uint64_t{1} << 63}) {
    SetRoot(kCtx | 1 | bad);
    EXPECT_EQ(Fault(), FaultReason::kRootEntryRsvd) << std::hex << bad;
  }
  SetRoot(kCtx | 1, /*hi=*/1);
  EXPECT_EQ(Fault(), FaultReason::kRootEntryRsvd);
  // Bits 47:39 are address bits with aw 48.
  SetRoot((uint64_t{1} << 47) | 1);
  EXPECT_EQ(Fault(Config(48)), FaultReason::kContextTableInv);
  SetRoot((uint64_t{1} << 48) | 1);
  EXPECT_EQ(Fault(Config(48)), FaultReason::kRootEntryRsvd);
}

TEST_F(VtdContextTest, UnreadableContextTable) {
  SetRoot(0x40000 | 1);
  EXPECT_EQ(Fault(), FaultReason::kContextTableInv);
  EXPECT_EQ(LookupContext(mem_, Config(), kRoot, kBus, kDevfn).entry,
            ContextEntry{});
}

TEST_F(VtdContextTest, ContextNotPresentKeepsEntryForFpd) {
  SetRoot(kCtx | 1);
  SetContext(kSlpt | 2 | (1ull << 60), 0xffffffffffffffff);  // FPD, no P
  ContextLookup r = LookupContext(mem_, Config(), kRoot, kBus, kDevfn);
  EXPECT_EQ(r.fault, FaultReason::kContextEntryP);
  EXPECT_TRUE(r.entry.fpd());
}

TEST_F(VtdContextTest, ContextReservedBitsLow) {
  for (int bit : {4, 5, 6, 7, 8, 9, 10, 11, 39, 47, 63}) {
    SetValid(uint64_t{1} << bit);
    EXPECT_EQ(Fault(), FaultReason::kContextEntryRsvd) << bit;
  }
  SetValid(uint64_t{1} << 47);
  EXPECT_EQ(Fault(Config(48)), std::nullopt);
  SetValid(uint64_t{1} << 48);
  EXPECT_EQ(Fault(Config(48)), FaultReason::kContextEntryRsvd);
}

TEST_F(VtdContextTest, ContextReservedBitsHigh) {
  for (int bit : {7, 24, 40, 63}) {
    SetValid(0, uint64_t{1} << bit);
    EXPECT_EQ(Fault(), FaultReason::kContextEntryRsvd) << bit;
  }
  // AW bits 6:3 and DID 23:8 are fields, not reserved.
  SetValid(0, 0xffff00 | 0x78);
  EXPECT_EQ(Fault(), std::nullopt);
}

TEST_F(VtdContextTest, ReservedBitsCheckedBeforeLevelAndType) {
  SetRoot(kCtx | 1);
  SetContext(kSlpt | 1 | 0xc | 0x10, 5);  // TT=3, level 7, bit 4 reserved
  EXPECT_EQ(Fault(), FaultReason::kContextEntryRsvd);
}

TEST_F(VtdContextTest, LevelMustBeInSagaw) {
  SetRoot(kCtx | 1);
  SetContext(kSlpt | 1, 2);  // 4 levels
  EXPECT_EQ(Fault(Config(39)), FaultReason::kContextEntryInv);
  EXPECT_EQ(Fault(Config(48)), std::nullopt);
  SetContext(kSlpt | 1, 0);  // 2 levels: never advertised
  EXPECT_EQ(Fault(Config(48)), FaultReason::kContextEntryInv);
  SetContext(kSlpt | 1, 7);  // 9 levels
  EXPECT_EQ(Fault(Config(48)), FaultReason::kContextEntryInv);
  SetContext(kSlpt | 1, 1);  // dma-translation=off: SAGAW 0
  EXPECT_EQ(Fault(Config(48, false, true, false)),
            FaultReason::kContextEntryInv);
}

// QEMU 7.2 reports a translation-type failure as CONTEXT_ENTRY_INV (3).
TEST_F(VtdContextTest, TranslationTypeCheck) {
  SetValid(ContextEntry::kTtDevIotlb << 2);
  EXPECT_EQ(Fault(Config(39, /*dt=*/false)), FaultReason::kContextEntryInv);
  EXPECT_EQ(Fault(Config(39, /*dt=*/true)), std::nullopt);
  SetValid(ContextEntry::kTtPassThrough << 2);
  EXPECT_EQ(Fault(Config(39, false, /*pt=*/true)), std::nullopt);
  EXPECT_EQ(Fault(Config(39, false, /*pt=*/false)),
            FaultReason::kContextEntryInv);
  SetValid(3 << 2);
  EXPECT_EQ(Fault(Config(39, true, true)), FaultReason::kContextEntryInv);
}

TEST(IsQualifiedFaultTest, MatchesQemu72Table) {
  EXPECT_FALSE(IsQualifiedFault(FaultReason::kRootEntryP));
  EXPECT_TRUE(IsQualifiedFault(FaultReason::kContextEntryP));
  EXPECT_TRUE(IsQualifiedFault(FaultReason::kContextEntryInv));
  EXPECT_TRUE(IsQualifiedFault(FaultReason::kAddrBeyondMgaw));
  EXPECT_TRUE(IsQualifiedFault(FaultReason::kWrite));
  EXPECT_TRUE(IsQualifiedFault(FaultReason::kRead));
  EXPECT_TRUE(IsQualifiedFault(FaultReason::kPagingEntryInv));
  EXPECT_FALSE(IsQualifiedFault(FaultReason::kRootTableInv));
  EXPECT_FALSE(IsQualifiedFault(FaultReason::kContextTableInv));
  EXPECT_FALSE(IsQualifiedFault(FaultReason::kRootEntryRsvd));
  EXPECT_FALSE(IsQualifiedFault(FaultReason::kContextEntryRsvd));
  EXPECT_TRUE(IsQualifiedFault(FaultReason::kPagingEntryRsvd));
  EXPECT_TRUE(IsQualifiedFault(FaultReason::kContextEntryTt));
  EXPECT_TRUE(IsQualifiedFault(FaultReason::kInterruptAddr));
}

// Tables are read from RAM only (AddressSpaceGuestMemory): a root or
// context table pointer into MMIO is an unreadable table, and the device
// behind it sees no access (a walk runs on DMA threads).
TEST(VtdContextMemoryTest, TablesInMmioAreUnreadableAndTheDeviceIsNotCalled) {
  memory::MemorySystem sys;
  auto root = memory::MemoryRegion::CreateContainer(&sys, "root", kSize2To64);
  root->AddSubregion(0, *memory::MemoryRegion::CreateRam(&sys, "ram", kCtx));
  memory::testing::FakeMmioDevice dev(0x10000);
  root->AddSubregion(kCtx, memory::MemoryRegion::CreateMmio(&sys, "mmio",
                                                            0x10000, &dev));
  memory::AddressSpace as(&sys, root, "memory");
  AddressSpaceGuestMemory mem(&as);

  // Root entry in RAM, its context table in MMIO.
  const uint64_t root_entry[2] = {kCtx | 1, 0};
  ASSERT_TRUE(as.Write(kRoot + kBus * 16, root_entry, sizeof root_entry).ok());
  EXPECT_EQ(LookupContext(mem, Config(), kRoot, kBus, kDevfn).fault,
            FaultReason::kContextTableInv);
  // The root table itself in MMIO.
  EXPECT_EQ(LookupContext(mem, Config(), kCtx, kBus, kDevfn).fault,
            FaultReason::kRootTableInv);
  EXPECT_TRUE(dev.accesses().empty());
  // The same bytes through the address space do reach the device.
  uint64_t v = 0;
  EXPECT_TRUE(as.Read(kCtx, &v, sizeof v).ok());
  EXPECT_FALSE(dev.accesses().empty());
}

}  // namespace
}  // namespace viommu::vtd
