// Second-level translation and range walk with QEMU 7.2's semantics
// (vtd_iova_to_slpte, vtd_page_walk, vtd_page_walk_level,
// vtd_slpte_nonzero_rsvd and the reserved masks of vtd_init).
#include "viommu/hw/iommu/vtd_page_walk.h"

#include <algorithm>

namespace viommu::vtd {
namespace {

constexpr uint64_t kR = 1;
constexpr uint64_t kW = 2;
constexpr uint64_t kPs = uint64_t{1} << 7;
constexpr uint64_t kSnp = uint64_t{1} << 11;
constexpr uint64_t kTm = uint64_t{1} << 62;
constexpr uint64_t kIgnored = 0xbff0000000000000;  // bits 63 and 61:52
constexpr uint64_t kReadError = ~uint64_t{0};
constexpr int kMaxLevels = 4;
constexpr int kEntries = 512;
constexpr Hwaddr kInterruptFirst = 0xfee00000;
constexpr Hwaddr kInterruptLast = 0xfeefffff;

constexpr int LevelShift(int level) { return 12 + 9 * (level - 1); }

// The per-level reserved masks and the address mask for one (HAW, DT, SC).
struct SlMasks {
  uint64_t rsvd[kMaxLevels + 1];
  uint64_t rsvd_large[kMaxLevels + 1];
  uint64_t addr;

  SlMasks(int aw_bits, bool dt_supported, bool sc_supported) {
    const uint64_t haw = (uint64_t{1} << aw_bits) - 1;
    const uint64_t keep = haw | kIgnored;
    // TM is a legal bit of leaf-capable entries only when ECAP.DT is set.
    const uint64_t keep_leaf = keep | (dt_supported ? kTm : 0);
    rsvd[0] = ~uint64_t{0};
    rsvd[1] = kSnp | ~keep_leaf;
    rsvd[2] = kSnp | ~keep;
    rsvd[3] = kSnp | ~keep;
    rsvd[4] = kSnp | kPs | ~keep;
    rsvd_large[0] = rsvd_large[1] = rsvd_large[4] = ~uint64_t{0};  // unused
    rsvd_large[2] = 0x1ff800 | ~keep_leaf;    // SNP and address bits 20:12
    rsvd_large[3] = 0x3ffff800 | ~keep_leaf;  // SNP and address bits 29:12
    if (sc_supported) {
      // Snoop control: SNP is legal in leaves only (4K, 2M, 1G); bit 11
      // of a table pointer stays reserved (measured on 7.2).
      rsvd[1] &= ~kSnp;
      rsvd_large[2] &= ~kSnp;
      rsvd_large[3] &= ~kSnp;
    }
    addr = haw & ~uint64_t{0xfff};
  }

  bool ReservedNonzero(uint64_t pte, int level) const {
    const bool large = (level == 2 || level == 3) && (pte & kPs);
    return pte & (large ? rsvd_large[level] : rsvd[level]);
  }
};

bool IsLeaf(uint64_t pte, int level) { return level == 1 || (pte & kPs); }

memory::IommuPerm Perm(bool r, bool w) {
  return static_cast<memory::IommuPerm>((r ? memory::kIommuRead : 0) |
                                        (w ? memory::kIommuWrite : 0));
}

// Exclusive upper bound of the input addresses: 2^min(agaw, HAW).
int InputBits(const TableConfig& cfg, const ContextEntry& ce) {
  return std::min(ce.agaw(), cfg.aw_bits);
}

SlTranslation Fault(FaultReason reason, int level) {
  SlTranslation t;
  t.fault = reason;
  t.level = level;
  t.addr_mask = (uint64_t{1} << LevelShift(level)) - 1;
  return t;
}

struct Walker {
  GuestMemory& mem;
  const SlMasks& masks;
  WalkSink sink;

  // Visits the slots of the table at `table` (level `level`) that overlap
  // [start, last]; the range lies within the span of this one table.
  void Level(Hwaddr table, Iova start, Iova last, int level, bool r, bool w) {
    // While [start, last] lies in one slot of the table (a page-selective
    // invalidation of one page: every level), read that one entry and go
    // down without recursing: the same visits and checks as the loop below
    // makes for a single slot, at a fraction of its cost.
    while ((start >> LevelShift(level)) == (last >> LevelShift(level))) {
      const int shift = LevelShift(level);
      const uint64_t slot_mask = (uint64_t{1} << shift) - 1;
      const unsigned idx = (start >> shift) & (kEntries - 1);
      uint64_t pte;
      if (!mem.Read(table + idx * sizeof(uint64_t), &pte, sizeof pte)) return;
      pte = LoadLe64(&pte);
      if (pte == kReadError || masks.ReservedNonzero(pte, level)) return;
      r = r && (pte & kR);
      w = w && (pte & kW);
      const bool valid = r || w;
      if (valid && !IsLeaf(pte, level)) {
        table = pte & masks.addr;
        --level;
        continue;
      }
      WalkEntry e;
      e.iova = start & ~slot_mask;
      e.addr_mask = slot_mask;
      e.perm = Perm(r, w);
      e.gpa = valid ? pte & masks.addr : 0;
      sink(e);
      return;
    }
    const int shift = LevelShift(level);
    const uint64_t slot_mask = (uint64_t{1} << shift) - 1;
    const unsigned first_idx = (start >> shift) & (kEntries - 1);
    const unsigned last_idx = (last >> shift) & (kEntries - 1);
    uint64_t buf[kEntries];  // only [first_idx, last_idx] is filled
    const bool bulk =
        mem.Read(table + first_idx * sizeof(uint64_t), &buf[first_idx],
                 (last_idx - first_idx + 1) * sizeof(uint64_t));
    Iova base = start & ~slot_mask;
    for (unsigned idx = first_idx; idx <= last_idx;
         ++idx, base += slot_mask + 1) {
      uint64_t pte;
      if (bulk) {
        pte = LoadLe64(&buf[idx]);
      } else if (!mem.Read(table + idx * sizeof(uint64_t), &pte, sizeof pte)) {
        pte = kReadError;
      } else {
        pte = LoadLe64(&pte);
      }
      if (pte == kReadError || masks.ReservedNonzero(pte, level)) continue;
      const bool r_cur = r && (pte & kR);
      const bool w_cur = w && (pte & kW);
      const bool valid = r_cur || w_cur;
      if (valid && !IsLeaf(pte, level)) {
        Level(pte & masks.addr, std::max(start, base),
              std::min(last, base + slot_mask), level - 1, r_cur, w_cur);
        continue;
      }
      WalkEntry e;
      e.iova = base;
      e.addr_mask = slot_mask;
      e.perm = Perm(r_cur, w_cur);
      e.gpa = valid ? pte & masks.addr : 0;
      sink(e);
    }
  }
};

}  // namespace

SlTranslation TranslateSl(GuestMemory& mem, const TableConfig& cfg,
                          const ContextEntry& ce, Iova iova, bool is_write) {
  const int top = ce.levels();
  if (top > kMaxLevels) return Fault(FaultReason::kContextEntryInv, top);
  if (iova >> InputBits(cfg, ce)) {
    return Fault(FaultReason::kAddrBeyondMgaw, top);
  }
  const SlMasks masks(cfg.aw_bits, cfg.dt_supported, cfg.sc_supported);
  const uint64_t needed = is_write ? kW : kR;
  Hwaddr table = ce.slptptr();
  bool r = true;
  bool w = true;
  for (int level = top;; --level) {
    const unsigned idx = (iova >> LevelShift(level)) & (kEntries - 1);
    uint64_t pte;
    if (!mem.Read(table + idx * sizeof pte, &pte, sizeof pte)) {
      pte = kReadError;
    } else {
      pte = LoadLe64(&pte);
    }
    if (pte == kReadError) {
      return Fault(level == top ? FaultReason::kContextEntryInv
                                : FaultReason::kPagingEntryInv,
                   level);
    }
    r = r && (pte & kR);
    w = w && (pte & kW);
    if (!(pte & needed)) {
      return Fault(is_write ? FaultReason::kWrite : FaultReason::kRead, level);
    }
    if (masks.ReservedNonzero(pte, level)) {
      return Fault(FaultReason::kPagingEntryRsvd, level);
    }
    if (IsLeaf(pte, level)) {
      const uint64_t size = uint64_t{1} << LevelShift(level);
      const Hwaddr out = pte & masks.addr;
      if (out <= kInterruptLast && out + size - 1 >= kInterruptFirst) {
        return Fault(FaultReason::kInterruptAddr, level);
      }
      SlTranslation t;
      t.page_base = out & ~(size - 1);
      t.addr_mask = size - 1;
      t.perm = Perm(r, w);
      t.level = level;
      return t;
    }
    table = pte & masks.addr;
  }
}

void WalkSl(GuestMemory& mem, const TableConfig& cfg, const ContextEntry& ce,
            Iova first, Iova last, WalkSink sink) {
  const int top = ce.levels();
  if (top > kMaxLevels) return;
  const Iova limit_last = (uint64_t{1} << InputBits(cfg, ce)) - 1;
  if (first > limit_last || first > last) return;
  const SlMasks masks(cfg.aw_bits, cfg.dt_supported, cfg.sc_supported);
  Walker walker{mem, masks, sink};
  walker.Level(ce.slptptr(), first, std::min(last, limit_last), top, true,
               true);
}

}  // namespace viommu::vtd
