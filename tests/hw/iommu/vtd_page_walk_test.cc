#include "viommu/hw/iommu/vtd_page_walk.h"

#include <cstring>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/hw/iommu/fake_guest_memory.h"

namespace viommu::vtd {
namespace {

using memory::kIommuNone;
using memory::kIommuRead;
using memory::kIommuReadWrite;
using memory::kIommuWrite;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint64_t kR = 1;
constexpr uint64_t kW = 2;
constexpr uint64_t kRW = 3;
constexpr uint64_t kPs = 0x80;
constexpr uint64_t k4K = 0xfff;
constexpr uint64_t k2M = (uint64_t{1} << 21) - 1;
constexpr uint64_t k1G = (uint64_t{1} << 30) - 1;
constexpr uint64_t k512G = (uint64_t{1} << 39) - 1;

constexpr int Shift(int level) { return 12 + 9 * (level - 1); }

TableConfig Config(int aw, bool dt = false, bool sc = false) {
  TableConfig cfg;
  cfg.aw_bits = aw;
  cfg.sagaw = aw == 48 ? 0x6 : 0x2;
  cfg.pt_supported = true;
  cfg.dt_supported = dt;
  cfg.sc_supported = sc;
  return cfg;
}

// Builds second-level tables in a GuestMemory: tables from 0x1000000 up.
class PageTables {
 public:
  PageTables(testing::FakeGuestMemory* mem, int levels)
      : mem_(mem), levels_(levels), root_(NewTable()) {}

  ContextEntry Ce() const {
    return {.lo = root_ | 1, .hi = (7u << 8) | uint64_t(levels_ - 2)};
  }
  Hwaddr root() const { return root_; }

  Hwaddr NewTable() {
    const Hwaddr t = next_;
    next_ += 0x1000;
    mem_->AddPage(t);
    return t;
  }

  // Address of the entry for `iova` at `level`, creating RW tables above.
  Hwaddr Entry(Iova iova, int level) {
    Hwaddr table = root_;
    for (int l = levels_; l > level; --l) {
      const Hwaddr at = Slot(table, iova, l);
      uint64_t pte = mem_->ReadU64(at);
      if (pte == 0) {
        pte = NewTable() | kRW;
        mem_->WriteU64(at, pte);
      }
      table = pte & 0xffffffffff000;
    }
    return Slot(table, iova, level);
  }
  void Set(Iova iova, int level, uint64_t pte) {
    mem_->WriteU64(Entry(iova, level), pte);
  }
  uint64_t Get(Iova iova, int level) {
    return mem_->ReadU64(Entry(iova, level));
  }

 private:
  static Hwaddr Slot(Hwaddr table, Iova iova, int level) {
    return table + ((iova >> Shift(level)) & 511) * 8;
  }

  testing::FakeGuestMemory* mem_;
  int levels_;
  Hwaddr next_ = 0x1000000;
  Hwaddr root_;
};

WalkEntry Slot(Iova iova, uint64_t mask, Hwaddr gpa = 0,
               memory::IommuPerm perm = kIommuNone) {
  return {.iova = iova, .addr_mask = mask, .gpa = gpa, .perm = perm};
}

std::vector<WalkEntry> Walk(GuestMemory& mem, const TableConfig& cfg,
                            const ContextEntry& ce, Iova first, Iova last) {
  std::vector<WalkEntry> out;
  WalkSl(mem, cfg, ce, first, last,
         [&](const WalkEntry& e) { out.push_back(e); });
  return out;
}

// Entries are aligned, in order, and contiguous (no gaps when nothing was
// skipped).
void ExpectContiguous(const std::vector<WalkEntry>& v) {
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(v[i].iova & v[i].addr_mask, 0u) << i;
    if (i > 0) {
      EXPECT_EQ(v[i].iova, v[i - 1].iova + v[i - 1].addr_mask + 1) << i;
    }
  }
}

class PageWalkTest : public ::testing::Test {
 protected:
  testing::FakeGuestMemory mem_;
};

// ---- TranslateSl ---------------------------------------------------------

TEST_F(PageWalkTest, Translates4KThreeLevels) {
  PageTables pt(&mem_, 3);
  pt.Set(0x12345000, 1, 0xabcde000 | kRW);
  SlTranslation t = TranslateSl(mem_, Config(39), pt.Ce(), 0x12345678, false);
  ASSERT_FALSE(t.fault);
  EXPECT_EQ(t.page_base, 0xabcde000u);
  EXPECT_EQ(t.addr_mask, k4K);
  EXPECT_EQ(t.perm, kIommuReadWrite);
  EXPECT_EQ(t.level, 1);
}

TEST_F(PageWalkTest, Translates4KFourLevels) {
  PageTables pt(&mem_, 4);
  const Iova iova = (uint64_t{0x1ab} << 39) | 0x5000;
  pt.Set(iova, 1, 0x7f0000000000 | kW);
  SlTranslation t = TranslateSl(mem_, Config(48), pt.Ce(), iova | 0x10, true);
  ASSERT_FALSE(t.fault);
  EXPECT_EQ(t.page_base, 0x7f0000000000u);
  EXPECT_EQ(t.perm, kIommuWrite);
  EXPECT_EQ(mem_.read_count(), 4u);  // one 8-byte read per level
}

TEST_F(PageWalkTest, Translates2MAnd1GSuperpages) {
  PageTables pt(&mem_, 3);
  pt.Set(0x40200000, 2, 0x80000000 | kPs | kR);
  pt.Set(0x80000000, 3, 0x140000000 | kPs | kRW);
  SlTranslation t = TranslateSl(mem_, Config(39), pt.Ce(), 0x40212345, false);
  ASSERT_FALSE(t.fault);
  EXPECT_EQ(t.page_base, 0x80000000u);
  EXPECT_EQ(t.addr_mask, k2M);
  EXPECT_EQ(t.level, 2);
  EXPECT_EQ(t.perm, kIommuRead);
  t = TranslateSl(mem_, Config(39), pt.Ce(), 0xbfffffff, true);
  ASSERT_FALSE(t.fault);
  EXPECT_EQ(t.page_base, 0x140000000u);
  EXPECT_EQ(t.addr_mask, k1G);
  EXPECT_EQ(t.level, 3);
}

TEST_F(PageWalkTest, PermissionsStackAcrossLevels) {
  PageTables pt(&mem_, 3);
  pt.Set(0x1000, 1, 0x5000 | kRW);
  pt.Set(0, 3, pt.Get(0, 3) & ~kW);  // top level: read-only
  SlTranslation t = TranslateSl(mem_, Config(39), pt.Ce(), 0x1000, false);
  ASSERT_FALSE(t.fault);
  EXPECT_EQ(t.perm, kIommuRead);
  t = TranslateSl(mem_, Config(39), pt.Ce(), 0x1000, true);
  EXPECT_EQ(t.fault, FaultReason::kWrite);
  EXPECT_EQ(t.level, 3);
  EXPECT_EQ(t.addr_mask, k1G);
}

TEST_F(PageWalkTest, MissingReadPermissionIsReadFault) {
  PageTables pt(&mem_, 3);
  pt.Set(0x1000, 1, 0x5000 | kW);
  EXPECT_EQ(TranslateSl(mem_, Config(39), pt.Ce(), 0x1000, false).fault,
            FaultReason::kRead);
  EXPECT_FALSE(TranslateSl(mem_, Config(39), pt.Ce(), 0x1000, true).fault);
  // Not present at all: the access kind decides.
  EXPECT_EQ(TranslateSl(mem_, Config(39), pt.Ce(), 0x9000, true).fault,
            FaultReason::kWrite);
}

TEST_F(PageWalkTest, AddressBeyondMgaw) {
  PageTables pt3(&mem_, 3);
  auto fault = [&](const TableConfig& cfg, const ContextEntry& ce, Iova i) {
    return TranslateSl(mem_, cfg, ce, i, false).fault;
  };
  EXPECT_EQ(fault(Config(39), pt3.Ce(), uint64_t{1} << 39),
            FaultReason::kAddrBeyondMgaw);
  EXPECT_EQ(fault(Config(39), pt3.Ce(), (uint64_t{1} << 39) - 1),
            FaultReason::kRead);  // in range, just not mapped
  // A 3-level context limits a 48-bit unit to 39 bits.
  EXPECT_EQ(fault(Config(48), pt3.Ce(), uint64_t{1} << 39),
            FaultReason::kAddrBeyondMgaw);
  PageTables pt4(&mem_, 4);
  EXPECT_EQ(fault(Config(48), pt4.Ce(), uint64_t{1} << 48),
            FaultReason::kAddrBeyondMgaw);
  EXPECT_EQ(fault(Config(48), pt4.Ce(), uint64_t{1} << 47), FaultReason::kRead);
  SlTranslation t = TranslateSl(mem_, Config(48), pt4.Ce(), ~uint64_t{0}, 0);
  EXPECT_EQ(t.level, 4);
  EXPECT_EQ(mem_.read_count(), 2u);  // only the two in-range translations
}

TEST_F(PageWalkTest, UnreadableTopTableIsContextEntryInvalid) {
  ContextEntry ce{.lo = 0x7000000 | 1, .hi = 1};
  SlTranslation t = TranslateSl(mem_, Config(39), ce, 0x1000, false);
  EXPECT_EQ(t.fault, FaultReason::kContextEntryInv);
  EXPECT_EQ(t.level, 3);
}

TEST_F(PageWalkTest, UnreadableLowerTableIsPagingEntryInvalid) {
  PageTables pt(&mem_, 3);
  pt.Set(0x40000000, 2, 0x7000000 | kRW);  // level-1 table not in memory
  SlTranslation t = TranslateSl(mem_, Config(39), pt.Ce(), 0x40000000, false);
  EXPECT_EQ(t.fault, FaultReason::kPagingEntryInv);
  EXPECT_EQ(t.level, 1);
  EXPECT_EQ(t.addr_mask, k4K);
}

// QEMU cannot tell an all-ones entry from a failed read.
TEST_F(PageWalkTest, AllOnesEntryIsAReadError) {
  PageTables pt(&mem_, 3);
  pt.Set(0x40000000, 2, ~uint64_t{0});
  EXPECT_EQ(TranslateSl(mem_, Config(39), pt.Ce(), 0x40000000, false).fault,
            FaultReason::kPagingEntryInv);
  pt.Set(0x80000000, 3, ~uint64_t{0});
  EXPECT_EQ(TranslateSl(mem_, Config(39), pt.Ce(), 0x80000000, false).fault,
            FaultReason::kContextEntryInv);
}

TEST_F(PageWalkTest, PermissionCheckedBeforeReservedBits) {
  PageTables pt(&mem_, 3);
  pt.Set(0x1000, 1, 0x5000 | 0x800 | kW);  // SNP (reserved), no R
  EXPECT_EQ(TranslateSl(mem_, Config(39), pt.Ce(), 0x1000, false).fault,
            FaultReason::kRead);
  EXPECT_EQ(TranslateSl(mem_, Config(39), pt.Ce(), 0x1000, true).fault,
            FaultReason::kPagingEntryRsvd);
}

TEST_F(PageWalkTest, InterruptWindowOutputFaults) {
  PageTables pt(&mem_, 3);
  auto fault = [&](Iova iova) {
    return TranslateSl(mem_, Config(39), pt.Ce(), iova, false).fault;
  };
  pt.Set(0x1000, 1, 0xfee00000 | kRW);
  pt.Set(0x2000, 1, 0xfeeff000 | kRW);
  pt.Set(0x3000, 1, 0xfef00000 | kRW);
  pt.Set(0x4000, 1, 0xfedff000 | kRW);
  pt.Set(0x400000, 2, 0xfee00000 | kPs | kRW);
  pt.Set(0x600000, 2, 0xfec00000 | kPs | kRW);
  pt.Set(0x40000000, 3, 0xc0000000 | kPs | kR);
  EXPECT_EQ(fault(0x1000), FaultReason::kInterruptAddr);
  EXPECT_EQ(fault(0x2000), FaultReason::kInterruptAddr);
  EXPECT_EQ(fault(0x3000), std::nullopt);
  EXPECT_EQ(fault(0x4000), std::nullopt);
  EXPECT_EQ(fault(0x400000), FaultReason::kInterruptAddr);
  EXPECT_EQ(fault(0x600000), std::nullopt);
  EXPECT_EQ(fault(0x40000000), FaultReason::kInterruptAddr);
  // The walk reports such mappings as they are.
  auto v = Walk(mem_, Config(39), pt.Ce(), 0x1000, 0x1fff);
  EXPECT_THAT(v, ElementsAre(Slot(0x1000, k4K, 0xfee00000, kIommuReadWrite)));
}

TEST_F(PageWalkTest, MoreThanFourLevelsIsRejected) {
  ContextEntry ce{.lo = 0x1000000 | 1, .hi = 3};  // 5 levels
  mem_.AddPage(0x1000000);
  EXPECT_EQ(TranslateSl(mem_, Config(48), ce, 0, false).fault,
            FaultReason::kContextEntryInv);
  EXPECT_THAT(Walk(mem_, Config(48), ce, 0, ~uint64_t{0}), IsEmpty());
}

// ---- Reserved bits, per level, for 3/4 levels, aw 39/48, DT off/on ----

struct RsvdParam {
  int levels;
  int aw;
  bool dt;
  bool sc = false;  // snoop-control=on
};

class ReservedBitsTest : public ::testing::TestWithParam<RsvdParam> {
 protected:
  // The spec of QEMU 7.2's masks, written out bit by bit.
  static bool Reserved(int level, bool large, int bit, int aw, bool dt,
                       bool sc) {
    // SNP: legal in leaves with snoop control (vtd_snoop_control.qtest).
    if (bit == 11) return !(sc && (level == 1 || large));
    if (level == 4 && bit == 7) return true;  // no PS at PML4
    if (large && bit >= 12 && bit < Shift(level)) return true;
    if (bit == 62) return !(dt && (level == 1 || large));  // TM
    return bit >= aw && bit <= 51;
  }

  // Sets `bit` in the entry for `iova` at `level` and checks both paths.
  void Check(PageTables& pt, Iova iova, int level, int bit, bool large,
             testing::FakeGuestMemory& mem) {
    const auto [levels, aw, dt, sc] = GetParam();
    const TableConfig cfg = Config(aw, dt, sc);
    const uint64_t good = pt.Get(iova, level);
    pt.Set(iova, level, good | (uint64_t{1} << bit));
    const bool rsvd = Reserved(level, large, bit, aw, dt, sc);
    SlTranslation t = TranslateSl(mem, cfg, pt.Ce(), iova, false);
    if (rsvd) {
      EXPECT_EQ(t.fault, FaultReason::kPagingEntryRsvd)
          << "level " << level << " bit " << bit << " large " << large;
      EXPECT_EQ(t.level, level);
    } else {
      EXPECT_EQ(t.fault, std::nullopt)
          << "level " << level << " bit " << bit << " large " << large;
    }
    // The walk skips a reserved slot silently and keeps the others.
    const uint64_t slot = (uint64_t{1} << Shift(level)) - 1;
    auto v = Walk(mem, cfg, pt.Ce(), iova & ~slot, iova | slot);
    if (rsvd) {
      EXPECT_THAT(v, IsEmpty()) << "level " << level << " bit " << bit;
    } else {
      EXPECT_FALSE(v.empty()) << "level " << level << " bit " << bit;
    }
    pt.Set(iova, level, good);
  }
};

TEST_P(ReservedBitsTest, TableAnd4KEntries) {
  const auto [levels, aw, dt, sc] = GetParam();
  testing::FakeGuestMemory mem;
  PageTables pt(&mem, levels);
  const Iova iova = 0x1000;
  pt.Set(iova, 1, 0x5000 | kRW);
  for (int level = 1; level <= levels; ++level) {
    for (int bit = 2; bit < 64; ++bit) {
      if (bit >= 12 && bit < aw) continue;                   // address bits
      if (bit == 7 && (level == 2 || level == 3)) continue;  // PS
      Check(pt, iova, level, bit, /*large=*/false, mem);
    }
  }
}

TEST_P(ReservedBitsTest, SuperpageEntries) {
  const auto [levels, aw, dt, sc] = GetParam();
  testing::FakeGuestMemory mem;
  PageTables pt(&mem, levels);
  const Iova iova2m = 0x40200000;
  const Iova iova1g = 0x80000000;
  pt.Set(iova2m, 2, 0x200000000 | kPs | kRW);
  pt.Set(iova1g, 3, 0x240000000 | kPs | kRW);
  for (int bit = 2; bit < 64; ++bit) {
    if (bit == 7) continue;
    if (!(bit >= 21 && bit < aw)) Check(pt, iova2m, 2, bit, true, mem);
    if (!(bit >= 30 && bit < aw)) Check(pt, iova1g, 3, bit, true, mem);
  }
}

INSTANTIATE_TEST_SUITE_P(
    LevelsAwDt, ReservedBitsTest,
    ::testing::Values(RsvdParam{3, 39, false}, RsvdParam{3, 39, true},
                      RsvdParam{3, 48, false}, RsvdParam{4, 48, false},
                      RsvdParam{4, 48, true}, RsvdParam{3, 39, false, true},
                      RsvdParam{4, 48, true, true}),
    [](const ::testing::TestParamInfo<RsvdParam>& p) {
      return "L" + std::to_string(p.param.levels) + "Aw" +
             std::to_string(p.param.aw) + (p.param.dt ? "Dt" : "NoDt") +
             (p.param.sc ? "Sc" : "");
    });

// ---- WalkSl --------------------------------------------------------------

TEST_F(PageWalkTest, EmptyTopTableIsOneInvalidSlotPerEntry) {
  PageTables pt(&mem_, 3);
  auto v = Walk(mem_, Config(39), pt.Ce(), 0, ~uint64_t{0});
  ASSERT_EQ(v.size(), 512u);
  ExpectContiguous(v);
  EXPECT_EQ(v.front(), Slot(0, k1G));
  EXPECT_EQ(v.back(), Slot(uint64_t{511} << 30, k1G));
}

TEST_F(PageWalkTest, InvalidPml4EntryIsOne512GSlot) {
  PageTables pt(&mem_, 4);
  pt.Set((uint64_t{1} << 39) + 0x1000, 1, 0x5000 | kRW);
  auto v = Walk(mem_, Config(48), pt.Ce(), 0, (uint64_t{1} << 39) + 0x1fff);
  ASSERT_GE(v.size(), 3u);
  EXPECT_EQ(v[0], Slot(0, k512G));
  EXPECT_EQ(v[1], Slot(uint64_t{1} << 39, k4K));
  EXPECT_EQ(v[2],
            Slot((uint64_t{1} << 39) + 0x1000, k4K, 0x5000, kIommuReadWrite));
  EXPECT_EQ(v.size(), 3u);
}

TEST_F(PageWalkTest, SparseTablesInIovaOrder) {
  PageTables pt(&mem_, 3);
  pt.Set(0x3000, 1, 0x9000 | kR);
  pt.Set(0x1000, 1, 0x8000 | kRW);
  pt.Set(0x40200000, 2, 0x200000000 | kPs | kW);
  pt.Set(0x80000000, 3, 0x40000000 | kPs | kRW);
  auto v = Walk(mem_, Config(39), pt.Ce(), 0, 0xbfffffff);
  ExpectContiguous(v);
  ASSERT_EQ(v.size(), 512u + 511 + 512 + 1);
  EXPECT_EQ(v[0], Slot(0, k4K));
  EXPECT_EQ(v[1], Slot(0x1000, k4K, 0x8000, kIommuReadWrite));
  EXPECT_EQ(v[2], Slot(0x2000, k4K));
  EXPECT_EQ(v[3], Slot(0x3000, k4K, 0x9000, kIommuRead));
  EXPECT_EQ(v[512], Slot(0x200000, k2M));
  EXPECT_EQ(v[1023], Slot(0x40000000, k2M));
  EXPECT_EQ(v[1024], Slot(0x40200000, k2M, 0x200000000, kIommuWrite));
  EXPECT_EQ(v.back(), Slot(0x80000000, k1G, 0x40000000, kIommuReadWrite));
  // One read per visited table: root, two level-2 tables, one level-1.
  EXPECT_EQ(mem_.read_count(), 4u);
}

TEST_F(PageWalkTest, WalkStacksPermissions) {
  PageTables pt(&mem_, 3);
  pt.Set(0x1000, 1, 0x8000 | kRW);
  pt.Set(0x2000, 1, 0x9000 | kR);
  pt.Set(0, 2, pt.Get(0, 2) & ~kR);  // level 2: write-only
  auto v = Walk(mem_, Config(39), pt.Ce(), 0x1000, 0x2fff);
  EXPECT_THAT(v, ElementsAre(Slot(0x1000, k4K, 0x8000, kIommuWrite),
                             Slot(0x2000, k4K)));  // R & W-only: nothing
}

TEST_F(PageWalkTest, EntryWithoutPermissionsEndsTheWalkAtItsLevel) {
  PageTables pt(&mem_, 3);
  pt.Set(0x1000, 1, 0x8000 | kRW);
  pt.Set(0, 2, pt.Get(0, 2) & ~kRW);  // table pointer kept, R/W cleared
  auto v = Walk(mem_, Config(39), pt.Ce(), 0, 0x3fffff);
  EXPECT_THAT(v, ElementsAre(Slot(0, k2M), Slot(0x200000, k2M)));
}

TEST_F(PageWalkTest, UnreadableAndReservedSlotsAreSkipped) {
  PageTables pt(&mem_, 3);
  pt.Set(0x000000, 2, 0x7000000 | kRW);       // table not in memory
  pt.Set(0x200000, 2, ~uint64_t{0});          // reads as a failed read
  pt.Set(0x400000, 2, 0x800);                 // reserved, no R/W
  pt.Set(0x600000, 2, 0x800000 | kPs | kRW);  // a valid 2M leaf
  auto v = Walk(mem_, Config(39), pt.Ce(), 0, 0x9fffff);
  EXPECT_THAT(v, ElementsAre(Slot(0x600000, k2M, 0x800000, kIommuReadWrite),
                             Slot(0x800000, k2M)));
}

TEST_F(PageWalkTest, UnreadableTopTableYieldsNothing) {
  ContextEntry ce{.lo = 0x7000000 | 1, .hi = 1};
  EXPECT_THAT(Walk(mem_, Config(39), ce, 0, ~uint64_t{0}), IsEmpty());
}

TEST_F(PageWalkTest, ClampsToInputWidth) {
  PageTables pt3(&mem_, 3);
  auto v = Walk(mem_, Config(48), pt3.Ce(), k512G - k1G, ~uint64_t{0});
  EXPECT_THAT(v, ElementsAre(Slot(k512G - k1G, k1G)));
  EXPECT_THAT(Walk(mem_, Config(48), pt3.Ce(), k512G + 1, ~uint64_t{0}),
              IsEmpty());
  PageTables pt4(&mem_, 4);
  const uint64_t top = (uint64_t{1} << 48) - 1;
  v = Walk(mem_, Config(48), pt4.Ce(), top - 5, ~uint64_t{0});
  EXPECT_THAT(v, ElementsAre(Slot(top - k512G, k512G)));
  EXPECT_THAT(Walk(mem_, Config(48), pt4.Ce(), top + 1, ~uint64_t{0}),
              IsEmpty());
  // A 4-level context on a 39-bit unit is limited to 39 bits.
  EXPECT_THAT(Walk(mem_, Config(39), pt4.Ce(), 0, ~uint64_t{0}),
              ElementsAre(Slot(0, k512G)));
}

TEST_F(PageWalkTest, PartialRangeReportsWholeOverlappingSlots) {
  PageTables pt(&mem_, 3);
  pt.Set(0x1000, 1, 0x8000 | kRW);
  auto v = Walk(mem_, Config(39), pt.Ce(), 0x1800, 0x2800);
  EXPECT_THAT(v, ElementsAre(Slot(0x1000, k4K, 0x8000, kIommuReadWrite),
                             Slot(0x2000, k4K)));
  v = Walk(mem_, Config(39), pt.Ce(), 0x40001234, 0x40005678);
  EXPECT_THAT(v, ElementsAre(Slot(0x40000000, k1G)));
  EXPECT_THAT(Walk(mem_, Config(39), pt.Ce(), 0x2000, 0x1000), IsEmpty());
}

// A GuestMemory that refuses any read longer than 8 bytes.
class EntryReadsOnly final : public GuestMemory {
 public:
  explicit EntryReadsOnly(GuestMemory* inner) : inner_(inner) {}
  bool Read(Hwaddr addr, void* buf, size_t len) override {
    return len <= 8 && inner_->Read(addr, buf, len);
  }
  bool Write(Hwaddr addr, const void* buf, size_t len) override {
    return inner_->Write(addr, buf, len);
  }

 private:
  GuestMemory* inner_;
};

TEST_F(PageWalkTest, FailedBulkReadFallsBackToEntryReads) {
  PageTables pt(&mem_, 3);
  pt.Set(0x3000, 1, 0x9000 | kR);
  pt.Set(0x40200000, 2, 0x200000000 | kPs | kW);
  pt.Set(0x600000, 2, 0x7000000 | kRW);  // unreadable table
  EntryReadsOnly narrow(&mem_);
  EXPECT_EQ(Walk(narrow, Config(39), pt.Ce(), 0, 0xbfffffff),
            Walk(mem_, Config(39), pt.Ce(), 0, 0xbfffffff));
}

// Every IOVA translates (read access) as the walk's slot covering it says.
TEST_F(PageWalkTest, WalkAgreesWithTranslateOnRandomTables) {
  std::mt19937_64 rng(7);
  PageTables pt(&mem_, 3);
  const uint64_t noise[] = {
      0, 0, 0, kPs, 0x800, uint64_t{1} << 62, uint64_t{1} << 60, 0x1000};
  for (int i = 0; i < 400; ++i) {
    const Iova iova = (rng() % 0x100000000) & ~k4K;
    const int level = 1 + static_cast<int>(rng() % 3);
    uint64_t pte = (rng() & 0xfffff000) | (rng() % 4) | noise[rng() % 8];
    if (level > 1 && (pte & kPs))
      pte &= ~((uint64_t{1} << Shift(level)) - 1) | 0xfff;
    pt.Set(iova, level, pte);
  }
  auto v = Walk(mem_, Config(39), pt.Ce(), 0, 0xffffffff);
  for (int i = 0; i < 2000; ++i) {
    const Iova iova = rng() % 0x100000000;
    SlTranslation t = TranslateSl(mem_, Config(39), pt.Ce(), iova, false);
    const WalkEntry* hit = nullptr;
    for (const WalkEntry& e : v) {
      if (e.iova <= iova && iova <= e.iova + e.addr_mask) hit = &e;
    }
    if (hit == nullptr) {
      EXPECT_TRUE(t.fault) << std::hex << iova;
    } else if (hit->perm & kIommuRead) {
      if (t.fault == FaultReason::kInterruptAddr) continue;
      ASSERT_FALSE(t.fault) << std::hex << iova;
      EXPECT_EQ(t.page_base, hit->gpa);
      EXPECT_EQ(t.addr_mask, hit->addr_mask);
      EXPECT_EQ(t.perm, hit->perm);
    } else {
      EXPECT_EQ(t.fault, FaultReason::kRead) << std::hex << iova;
    }
  }
}

// A walk of one page (a page-selective invalidation's sync: one slot per
// level, read entry by entry) reports exactly the slot the walk of the
// whole space reports for that page, or nothing where that walk skipped
// it (unreadable or reserved), on random 3- and 4-level tables.
TEST_F(PageWalkTest, OnePageWalkReportsTheWholeWalksSlotForThatPage) {
  std::mt19937_64 rng(11);
  for (int levels : {3, 4}) {
    testing::FakeGuestMemory mem;
    PageTables pt(&mem, levels);
    const uint64_t noise[] = {
        0, 0, 0, kPs, 0x800, uint64_t{1} << 62, 0x1000, ~uint64_t{0}};
    for (int i = 0; i < 300; ++i) {
      const Iova iova = (rng() % 0x100000000) & ~k4K;
      const int level = 1 + static_cast<int>(rng() % 3);
      uint64_t pte = (rng() & 0xfffff000) | (rng() % 4) | noise[rng() % 8];
      if (level > 1 && (pte & kPs) && pte != ~uint64_t{0})
        pte &= ~((uint64_t{1} << Shift(level)) - 1) | 0xfff;
      pt.Set(iova, level, pte);
    }
    const auto all = Walk(mem, Config(48), pt.Ce(), 0, 0xffffffff);
    ASSERT_FALSE(all.empty());
    for (int i = 0; i < 3000; ++i) {
      const Iova page = (rng() % 0x100000000) & ~k4K;
      std::vector<WalkEntry> want;
      for (const WalkEntry& e : all) {
        if (e.iova <= page && page <= e.iova + e.addr_mask) want.push_back(e);
      }
      EXPECT_EQ(Walk(mem, Config(48), pt.Ce(), page, page + k4K), want)
          << levels << " levels, page 0x" << std::hex << page;
    }
  }
}

// ---- Full tables ------------------------------------------------------------
// (The cost of WalkSl and TranslateSl is measured in
// tests/bench/vtd_page_walk_bench.cc.)

// Flat RAM from address 0: a plain memory reader.
class FlatRam final : public GuestMemory {
 public:
  explicit FlatRam(size_t size) : bytes_(size) {}
  bool Read(Hwaddr addr, void* buf, size_t len) override {
    if (addr > bytes_.size() || len > bytes_.size() - addr) return false;
    std::memcpy(buf, bytes_.data() + addr, len);
    return true;
  }
  bool Write(Hwaddr addr, const void* buf, size_t len) override {
    if (addr > bytes_.size() || len > bytes_.size() - addr) return false;
    std::memcpy(bytes_.data() + addr, buf, len);
    return true;
  }
  void Set(Hwaddr addr, uint64_t v) { std::memcpy(&bytes_[addr], &v, 8); }

 private:
  std::vector<uint8_t> bytes_;
};

TEST(PageWalkFullTablesTest, WalkReportsEveryLeafOfFullTablesInOrder) {
  // 4 levels; 4 full level-1 tables (2048 4K leaves under IOVA 0, leaf n
  // maps to 4 GiB + n pages): every slot of every table is a leaf.
  constexpr int kL1Tables = 4;
  constexpr int kLeaves = kL1Tables * 512;
  constexpr Hwaddr kL4 = 0x1000, kL3 = 0x2000, kL2 = 0x3000, kL1 = 0x10000;
  FlatRam ram(kL1 + kL1Tables * 0x1000);
  ram.Set(kL4, kL3 | kRW);
  ram.Set(kL3, kL2 | kRW);
  for (int t = 0; t < kL1Tables; ++t) {
    ram.Set(kL2 + t * 8, (kL1 + t * 0x1000) | kRW);
    for (int i = 0; i < 512; ++i) {
      ram.Set(kL1 + t * 0x1000 + i * 8,
              (0x100000000 + (uint64_t(t) * 512 + i) * 0x1000) | kRW);
    }
  }
  const ContextEntry ce{.lo = kL4 | 1, .hi = 2};
  const TableConfig cfg = Config(48);

  uint64_t n = 0;
  bool in_order = true;
  WalkSl(ram, cfg, ce, 0, (uint64_t{kLeaves} << 12) - 1,
         [&](const WalkEntry& e) {
           in_order = in_order && e.iova == n << 12 &&
                      e.gpa == 0x100000000 + (n << 12) && e.addr_mask == k4K &&
                      e.perm == kIommuReadWrite;
           ++n;
         });
  EXPECT_EQ(n, uint64_t{kLeaves});
  EXPECT_TRUE(in_order);
  // A strided sample of 4-level translations agrees.
  for (uint64_t i = 0; i < kLeaves; i += 97) {
    const SlTranslation t = TranslateSl(ram, cfg, ce, i << 12, i & 1);
    ASSERT_FALSE(t.fault.has_value()) << i;
    EXPECT_EQ(t.page_base, 0x100000000 + (i << 12));
  }
}

}  // namespace
}  // namespace viommu::vtd
