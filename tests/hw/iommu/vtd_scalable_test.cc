#include "viommu/hw/iommu/vtd_scalable.h"

#include <cstdint>
#include <optional>

#include "gtest/gtest.h"
#include "tests/hw/iommu/fake_guest_memory.h"
#include "viommu/hw/iommu/vtd_page_walk.h"
#include "viommu/hw/iommu/vtd_properties.h"

namespace viommu::vtd {
namespace {

constexpr Hwaddr kRoot = 0x10000;
constexpr Hwaddr kCtxLow = 0x20000;   // devfn 0-127
constexpr Hwaddr kCtxHigh = 0x21000;  // devfn 128-255
constexpr Hwaddr kPasidDir = 0x30000;
constexpr Hwaddr kPasidTable = 0x31000;
constexpr Hwaddr kPasidTable2 = 0x32000;
constexpr Hwaddr kSlpt = 0x40000;
constexpr uint8_t kBus = 3;
constexpr uint8_t kDevfn = 0x10;
constexpr uint8_t kDevfnHigh = 0x90;

TableConfig Config(int aw = 39, bool pt = true) {
  Properties p;
  p.aw_bits = aw;
  p.pt = pt;
  return TableConfig::FromProperties(p);
}

// PASID entry val[0]: P, AW (bits 4:2), PGTT (bits 8:6), SLPTPTR.
constexpr uint64_t PeVal0(uint8_t pgtt, uint8_t aw = 1, Hwaddr slpt = kSlpt) {
  return slpt | (uint64_t{pgtt} << 6) | (uint64_t{aw} << 2) | 1;
}

class VtdScalableTest : public ::testing::Test {
 protected:
  void SetRoot(uint64_t lo, uint64_t hi) {
    mem_.WriteU64(kRoot + kBus * 16, lo);
    mem_.WriteU64(kRoot + kBus * 16 + 8, hi);
  }
  void SetContext(uint8_t devfn, uint64_t v0, uint64_t v1, uint64_t v2 = 0,
                  uint64_t v3 = 0) {
    const Hwaddr base = (devfn < 128 ? kCtxLow : kCtxHigh) + (devfn & 0x7f) * 32;
    mem_.WriteU64(base, v0);
    mem_.WriteU64(base + 8, v1);
    mem_.WriteU64(base + 16, v2);
    mem_.WriteU64(base + 24, v3);
  }
  void SetPasidDir(uint32_t pasid, uint64_t v) {
    mem_.WriteU64(kPasidDir + (pasid >> 6) * 8, v);
  }
  void SetPasidEntry(Hwaddr table, uint32_t pasid, uint64_t v0, uint64_t v1) {
    mem_.WriteU64(table + (pasid & 0x3f) * 64, v0);
    mem_.WriteU64(table + (pasid & 0x3f) * 64 + 8, v1);
  }
  // Root (both halves), context entry for kDevfn with RID_PASID `rid_pasid`,
  // PASID directory entry and a second-level PASID entry, DID 7.
  void SetValid(uint32_t rid_pasid = 0, uint64_t ce_extra = 0,
                uint64_t pe_extra = 0) {
    SetRoot(kCtxLow | 1, kCtxHigh | 1);
    SetContext(kDevfn, kPasidDir | 1 | ce_extra, rid_pasid);
    SetPasidDir(rid_pasid, kPasidTable | 1);
    SetPasidEntry(kPasidTable, rid_pasid,
                  PeVal0(PasidEntry::kPgttSecondLevel) | pe_extra, 7);
  }
  std::optional<FaultReason> Fault(const TableConfig& cfg = Config(),
                                   uint8_t devfn = kDevfn,
                                   uint32_t pasid = kNoPasid) {
    return LookupScalable(mem_, cfg, kRoot, kBus, devfn, pasid).fault;
  }

  testing::FakeGuestMemory mem_;
};

TEST(SmEntryTest, RootEntryHalvesSplitAtDevfn128) {
  SmRootEntry re{.lo = 0x5000 | 1, .hi = 0x6000};
  EXPECT_TRUE(re.present(0));
  EXPECT_TRUE(re.present(127));
  EXPECT_FALSE(re.present(128));
  EXPECT_FALSE(re.present(255));
  EXPECT_EQ(re.context_table(127), 0x5000u);
  EXPECT_EQ(re.context_table(128), 0x6000u);
  EXPECT_FALSE(re.reserved_nonzero(39));
  // Bits 11:1 and above HAW, in either half.
  EXPECT_TRUE((SmRootEntry{.lo = 1 | 2, .hi = 0}).reserved_nonzero(39));
  EXPECT_TRUE((SmRootEntry{.lo = 1, .hi = 1ull << 11}).reserved_nonzero(39));
  EXPECT_TRUE((SmRootEntry{.lo = 1, .hi = 1ull << 39}).reserved_nonzero(39));
  EXPECT_FALSE((SmRootEntry{.lo = 1, .hi = 1ull << 39}).reserved_nonzero(48));
}

TEST(SmEntryTest, ContextEntryFields) {
  SmContextEntry ce;
  ce.val[0] = 0x123456000 | (5u << 9) | 0x1f;
  ce.val[1] = (1u << 20) | 0xabcde;
  EXPECT_TRUE(ce.present());
  EXPECT_TRUE(ce.fpd());
  EXPECT_TRUE(ce.dte());
  EXPECT_TRUE(ce.paside());
  EXPECT_TRUE(ce.pre());
  EXPECT_EQ(ce.pdts(), 5);
  EXPECT_EQ(ce.pasid_dir(), 0x123456000u);
  EXPECT_EQ(ce.rid_pasid(), 0xabcdeu);
  EXPECT_TRUE(ce.rid_priv());
  EXPECT_FALSE(ce.reserved_nonzero(39));
}

TEST(SmEntryTest, ContextEntryReservedBits) {
  for (int bit : {5, 6, 7, 8, 39, 63}) {
    SmContextEntry ce;
    ce.val[0] = 1 | (1ull << bit);
    EXPECT_TRUE(ce.reserved_nonzero(39)) << bit;
  }
  SmContextEntry wide;
  wide.val[0] = 1 | (1ull << 39);
  EXPECT_FALSE(wide.reserved_nonzero(48));
  for (int bit : {21, 40, 63}) {
    SmContextEntry ce;
    ce.val[0] = 1;
    ce.val[1] = 1ull << bit;
    EXPECT_TRUE(ce.reserved_nonzero(48)) << bit;
  }
  for (int word : {2, 3}) {
    SmContextEntry ce;
    ce.val[0] = 1;
    ce.val[word] = 1;
    EXPECT_TRUE(ce.reserved_nonzero(48)) << word;
  }
}

TEST(SmEntryTest, PasidEntryFieldsAndEquivalentContextEntry) {
  PasidEntry pe;
  pe.val[0] = PeVal0(PasidEntry::kPgttSecondLevel, /*aw=*/2, 0x777000) | 2;
  pe.val[1] = 0x1234;
  EXPECT_TRUE(pe.present());
  EXPECT_TRUE(pe.fpd());
  EXPECT_EQ(pe.aw(), 2);
  EXPECT_EQ(pe.levels(), 4);
  EXPECT_EQ(pe.agaw(), 48);
  EXPECT_EQ(pe.pgtt(), PasidEntry::kPgttSecondLevel);
  EXPECT_EQ(pe.slptptr(), 0x777000u);
  EXPECT_EQ(pe.domain_id(), 0x1234);
  ContextEntry ce = pe.ToContextEntry(/*fpd=*/false);
  EXPECT_TRUE(ce.present());
  EXPECT_FALSE(ce.fpd());
  EXPECT_EQ(ce.translation_type(), ContextEntry::kTtMultiLevel);
  EXPECT_EQ(ce.slptptr(), 0x777000u);
  EXPECT_EQ(ce.levels(), 4);
  EXPECT_EQ(ce.domain_id(), 0x1234);
  EXPECT_TRUE(IsScalableEffective(ce));
  EXPECT_EQ(EffectivePasid(pe.ToContextEntry(false, 0xfedcb)), 0xfedcbu);
  EXPECT_FALSE(IsScalableEffective(ContextEntry{.lo = 1, .hi = 0xffff01}));

  pe.val[0] = PeVal0(PasidEntry::kPgttPassThrough);
  EXPECT_EQ(pe.ToContextEntry(true).translation_type(),
            ContextEntry::kTtPassThrough);
  EXPECT_TRUE(pe.ToContextEntry(true).fpd());

  PasidDirEntry de{.val = 0x9000 | 3};
  EXPECT_TRUE(de.present());
  EXPECT_TRUE(de.fpd());
  EXPECT_EQ(de.pasid_table(), 0x9000u);
}

TEST_F(VtdScalableTest, FindsRidPasidEntry) {
  SetValid();
  SmLookup r = LookupScalable(mem_, Config(), kRoot, kBus, kDevfn);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.pasid_entry.domain_id(), 7);
  EXPECT_EQ(r.effective.slptptr(), kSlpt);
  EXPECT_EQ(r.effective.domain_id(), 7);
  EXPECT_EQ(r.effective.levels(), 3);
  EXPECT_FALSE(r.effective.fpd());
  EXPECT_EQ(r.effective.translation_type(), ContextEntry::kTtMultiLevel);
  EXPECT_TRUE(IsScalableEffective(r.effective));
  EXPECT_EQ(EffectivePasid(r.effective), 0u);
}

TEST_F(VtdScalableTest, RidPasidIndexesDirectoryAndTable) {
  // PASID 0x1c5: directory index 7, table index 5.
  SetValid(/*rid_pasid=*/0x1c5);
  EXPECT_EQ(mem_.ReadU64(kPasidDir + 7 * 8), kPasidTable | 1);
  EXPECT_EQ(mem_.ReadU64(kPasidTable + 5 * 64) & 1, 1u);
  EXPECT_EQ(Fault(), std::nullopt);
  SetPasidDir(0x1c5, 0);
  EXPECT_EQ(Fault(), FaultReason::kPasidTableInv);
}

TEST_F(VtdScalableTest, UpperHalfUsesHiPointerAndIndexWithoutBit7) {
  SetValid();
  SetContext(kDevfnHigh, kPasidDir | 1, 0);
  EXPECT_EQ(Fault(Config(), kDevfnHigh), std::nullopt);
  // The hi half not present: only devfn >= 128 faults.
  SetRoot(kCtxLow | 1, kCtxHigh);
  EXPECT_EQ(Fault(Config(), kDevfnHigh), FaultReason::kRootEntryP);
  EXPECT_EQ(Fault(Config(), kDevfn), std::nullopt);
  // And the lo half not present: only devfn < 128 faults.
  SetRoot(kCtxLow, kCtxHigh | 1);
  EXPECT_EQ(Fault(Config(), kDevfn), FaultReason::kRootEntryP);
  EXPECT_EQ(Fault(Config(), kDevfnHigh), std::nullopt);
}

TEST_F(VtdScalableTest, FaultOrderAsQemu72) {
  EXPECT_EQ(Fault(), FaultReason::kRootTableInv);
  SetRoot(kCtxLow | 2, 0);  // not present wins over reserved
  EXPECT_EQ(Fault(), FaultReason::kRootEntryP);
  SetRoot(kCtxLow | 1, 1ull << 5);  // reserved in the unused half
  EXPECT_EQ(Fault(), FaultReason::kRootEntryRsvd);
  SetRoot(kCtxLow | 1, kCtxHigh | 1);
  mem_.RemovePage(kCtxLow);
  EXPECT_EQ(Fault(), FaultReason::kContextTableInv);
  SetContext(kDevfn, kPasidDir | (1u << 5), 0);  // not present wins
  EXPECT_EQ(Fault(), FaultReason::kContextEntryP);
  SetContext(kDevfn, kPasidDir | 1, 0, 0, 1);
  EXPECT_EQ(Fault(), FaultReason::kContextEntryRsvd);
  SetContext(kDevfn, kPasidDir | 1, 0);
  EXPECT_EQ(Fault(), FaultReason::kPasidTableInv);  // directory unreadable
  SetPasidDir(0, kPasidTable);  // directory entry not present
  EXPECT_EQ(Fault(), FaultReason::kPasidTableInv);
  SetPasidDir(0, kPasidTable | 1);
  mem_.RemovePage(kPasidTable);  // PASID table unreadable
  EXPECT_EQ(Fault(), FaultReason::kPasidTableInv);
  SetPasidEntry(kPasidTable, 0, PeVal0(PasidEntry::kPgttSecondLevel) & ~1ull,
                7);  // PASID entry not present
  EXPECT_EQ(Fault(), FaultReason::kPasidTableInv);
  SetPasidEntry(kPasidTable, 0, PeVal0(PasidEntry::kPgttSecondLevel), 7);
  EXPECT_EQ(Fault(), std::nullopt);
}

TEST_F(VtdScalableTest, ContextFpdKeptOnContextFaults) {
  SetValid(0, /*ce_extra=*/2);
  SetPasidDir(0, 0);
  SmLookup r = LookupScalable(mem_, Config(), kRoot, kBus, kDevfn);
  EXPECT_EQ(r.fault, FaultReason::kPasidTableInv);
  EXPECT_TRUE(r.effective.fpd());
  // kPasidTableInv is not qualified: FPD does not suppress it.
  EXPECT_FALSE(IsQualifiedFault(FaultReason::kPasidTableInv));
}

TEST_F(VtdScalableTest, FpdFromContextDirectoryOrPasidEntry) {
  SetValid();
  EXPECT_FALSE(LookupScalable(mem_, Config(), kRoot, kBus, kDevfn)
                   .effective.fpd());
  SetPasidDir(0, kPasidTable | 3);
  EXPECT_TRUE(LookupScalable(mem_, Config(), kRoot, kBus, kDevfn)
                  .effective.fpd());
  SetValid(0, 0, /*pe_extra=*/2);
  EXPECT_TRUE(LookupScalable(mem_, Config(), kRoot, kBus, kDevfn)
                  .effective.fpd());
  SetValid(0, /*ce_extra=*/2);
  EXPECT_TRUE(LookupScalable(mem_, Config(), kRoot, kBus, kDevfn)
                  .effective.fpd());
}

TEST_F(VtdScalableTest, PgttTypeCheck) {
  for (uint8_t pgtt = 0; pgtt < 8; ++pgtt) {
    SetValid();
    SetPasidEntry(kPasidTable, 0, PeVal0(pgtt), 7);
    const bool ok = pgtt >= 1 && pgtt <= 4;
    EXPECT_EQ(Fault(), ok ? std::nullopt
                          : std::optional(FaultReason::kPasidTableInv))
        << int{pgtt};
  }
  // Pass-through only with ECAP.PT.
  SetPasidEntry(kPasidTable, 0, PeVal0(PasidEntry::kPgttPassThrough), 7);
  EXPECT_EQ(Fault(Config(39, /*pt=*/false)), FaultReason::kPasidTableInv);
  SmLookup r = LookupScalable(mem_, Config(), kRoot, kBus, kDevfn);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.effective.translation_type(), ContextEntry::kTtPassThrough);
}

TEST_F(VtdScalableTest, PasidEntryLevelsMustBeInSagaw) {
  SetValid();
  SetPasidEntry(kPasidTable, 0,
                PeVal0(PasidEntry::kPgttSecondLevel, /*aw=*/2), 7);
  EXPECT_EQ(Fault(Config(39)), FaultReason::kPasidTableInv);  // 4 levels
  EXPECT_EQ(Fault(Config(48)), std::nullopt);
  SetPasidEntry(kPasidTable, 0,
                PeVal0(PasidEntry::kPgttSecondLevel, /*aw=*/0), 7);
  EXPECT_EQ(Fault(Config(48)), FaultReason::kPasidTableInv);  // 2 levels
}

TEST_F(VtdScalableTest, RequestedPasidAfterRidPasidCheck) {
  SetValid();
  // PASID 0x45: directory index 1, table index 5, in a second table.
  SetPasidDir(0x45, kPasidTable2 | 1);
  SetPasidEntry(kPasidTable2, 0x45,
                PeVal0(PasidEntry::kPgttSecondLevel, 1, 0x50000), 9);
  SmLookup r = LookupScalable(mem_, Config(), kRoot, kBus, kDevfn, 0x45);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.effective.domain_id(), 9);
  EXPECT_EQ(r.effective.slptptr(), 0x50000u);
  EXPECT_EQ(EffectivePasid(r.effective), 0x45u);
  // An invalid RID_PASID entry faults every lookup, any PASID.
  SetPasidEntry(kPasidTable, 0, 0, 7);
  EXPECT_EQ(Fault(Config(), kDevfn, 0x45), FaultReason::kPasidTableInv);
}

TEST_F(VtdScalableTest, SecondLevelWalkThroughEffectiveEntry) {
  SetValid();
  // 3-level table: iova 0x5000 -> 0x123000, read/write.
  mem_.WriteU64(kSlpt, 0x41000 | 3);
  mem_.WriteU64(0x41000, 0x42000 | 3);
  mem_.WriteU64(0x42000 + 5 * 8, 0x123000 | 3);
  SmLookup r = LookupScalable(mem_, Config(), kRoot, kBus, kDevfn);
  ASSERT_TRUE(r.ok());
  SlTranslation t = TranslateSl(mem_, Config(), r.effective, 0x5000, true);
  ASSERT_FALSE(t.fault.has_value());
  EXPECT_EQ(t.page_base, 0x123000u);
  EXPECT_EQ(t.perm, memory::kIommuReadWrite);
  // Beyond the PASID entry's 39-bit AGAW.
  EXPECT_EQ(TranslateSl(mem_, Config(48), r.effective, 1ull << 40, false)
                .fault,
            FaultReason::kAddrBeyondMgaw);
}

}  // namespace
}  // namespace viommu::vtd
