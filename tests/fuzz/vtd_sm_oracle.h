// tests/fuzz/vtd_sm_oracle.h — the VT-d fuzzer's reference for scalable
// mode (vtd_fuzz_scalable.cc): the device → PASID-entry decode through a
// scalable-mode root table, context entry, PASID directory and PASID
// table, and a second-level translation and walk, written from the VT-d
// specification (§9.1-9.6 scalable-mode entries, §3.6 second-level
// translation) with the choices QEMU 7.2 makes (docs/architecture.md,
// /work/shared/reference/qemu.md §3.5-3.7); deliberately not calling the
// model's vtd_scalable.h, vtd_context.h or vtd_page_walk.h.
//
//   RefSm dev = RefSmDecode(read, cfg, root, 0, devfn);    // RID_PASID
//   if (dev.fault == 0 && dev.pgtt != kRefPgttPt) {
//     RefSl t = RefSlTranslate(read, cfg, dev, iova, /*write=*/false);
//     RefSl w = RefSlWalk(read, cfg, dev, iova);   // what a replay maps
//   }
//
// QEMU 7.2's facts the decode follows: the root entry's half for the
// devfn must be present, then neither half may have bits 11:1 or above
// the host address width; context entries are 32 bytes at (devfn & 0x7f)
// in that half's table, reserved: val[0] 8:5 and above HAW, val[1] 63:21,
// val[2] and val[3] whole; no SAGAW or type check on the context entry;
// RID_PASID's directory entry (pasid 19:6) and PASID entry (pasid 5:0,
// 64 bytes) must be readable and present, PGTT first-level, second-level
// or nested (all walked as second-level through SLPTPTR) or pass-through
// with ECAP.PT, 2 + AW levels in SAGAW, every such failure fault 0x58; FPD
// of context, directory and PASID entry combine. The walk: IOVA below
// 2^min(agaw, HAW) (else 0x4); a table read failing is 0x3 at the top and
// 0x7 below; the access's permission is checked before the reserved bits
// (0xc); R/W stack over the levels; PS makes a leaf at levels 2 and 3 and
// is reserved at 4; SNP (bit 11) is free in leaves in scalable mode, TM
// (bit 62) only in leaves and with device-iotlb; bits 63 and 61:52 are
// ignored; a leaf block that overlaps 0xfee00000-0xfeefffff faults 0x87.
// A replay walk skips (leaves alone) what it cannot read or finds reserved.
//
// Threading: single-threaded (the fuzz driver's thread).
#ifndef VIOMMU_TESTS_FUZZ_VTD_SM_ORACLE_H_
#define VIOMMU_TESTS_FUZZ_VTD_SM_ORACLE_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace viommu::vtd::fuzz {

// Reads `len` bytes of guest RAM at `gpa`; false when they are not RAM.
using RefRead = std::function<bool(uint64_t gpa, void* buf, size_t len)>;

struct RefSmConfig {
  int aw_bits = 39;   // host address width
  uint8_t sagaw = 0;  // bit n: 2 + n levels supported
  bool pt = false;    // ECAP.PT: PGTT pass-through accepted
  bool dt = false;    // device-iotlb: TM free in leaves
};

inline constexpr uint8_t kRefPgttPt = 4;
inline constexpr uint8_t kRefFaultRootEntryP = 0x1;
inline constexpr uint8_t kRefFaultContextEntryP = 0x2;
inline constexpr uint8_t kRefFaultContextInv = 0x3;
inline constexpr uint8_t kRefFaultBeyondMgaw = 0x4;
inline constexpr uint8_t kRefFaultWrite = 0x5;
inline constexpr uint8_t kRefFaultRead = 0x6;
inline constexpr uint8_t kRefFaultPagingInv = 0x7;
inline constexpr uint8_t kRefFaultRootTableInv = 0x8;
inline constexpr uint8_t kRefFaultContextTableInv = 0x9;
inline constexpr uint8_t kRefFaultRootRsvd = 0xa;
inline constexpr uint8_t kRefFaultContextRsvd = 0xb;
inline constexpr uint8_t kRefFaultPagingRsvd = 0xc;
inline constexpr uint8_t kRefFaultPasidTable = 0x58;
inline constexpr uint8_t kRefFaultSmInterrupt = 0x87;

// What the tables say about a device (its RID_PASID).
struct RefSm {
  uint8_t fault = 0;          // 0: found
  bool fpd = false;           // an FPD bit on the path read so far
  bool context_read = false;  // the context entry was read and present
  uint32_t rid_pasid = 0;
  uint8_t pgtt = 0;
  uint64_t slptptr = 0;
  int aw = 0;  // PASID entry AW: 2 + aw levels, agaw 30 + 9 * aw
  uint16_t did = 0;
};

inline uint64_t RefHawMask(int aw_bits) { return (uint64_t{1} << aw_bits) - 1; }

inline RefSm RefSmDecode(const RefRead& read, const RefSmConfig& c,
                         uint64_t root, uint8_t bus, uint8_t devfn) {
  RefSm r;
  const uint64_t haw = RefHawMask(c.aw_bits);
  uint64_t re[2];
  if (!read(root + uint64_t{bus} * 16, re, sizeof re)) {
    r.fault = kRefFaultRootTableInv;
    return r;
  }
  const uint64_t half = devfn < 128 ? re[0] : re[1];
  if (!(half & 1)) {
    r.fault = kRefFaultRootEntryP;
    return r;
  }
  if (((re[0] | re[1]) & (0xffe | ~haw)) != 0) {
    r.fault = kRefFaultRootRsvd;
    return r;
  }
  uint64_t ce[4];
  const uint64_t ce_at =
      (half & ~uint64_t{0xfff}) + uint64_t{devfn & 0x7fu} * 32;
  if (!read(ce_at, ce, sizeof ce)) {
    r.fault = kRefFaultContextTableInv;
    return r;
  }
  // FPD counts even in a non-present entry (7.2 takes it from the entry
  // as read).
  r.fpd = ce[0] & 2;
  if (!(ce[0] & 1)) {
    r.fault = kRefFaultContextEntryP;
    return r;
  }
  r.context_read = true;
  if ((ce[0] & (0x1e0 | ~haw)) != 0 || (ce[1] >> 21) != 0 || ce[2] != 0 ||
      ce[3] != 0) {
    r.fault = kRefFaultContextRsvd;
    return r;
  }
  r.rid_pasid = static_cast<uint32_t>(ce[1] & 0xfffff);
  uint64_t dire;
  const uint64_t dir = ce[0] & ~uint64_t{0xfff};
  if (!read(dir + uint64_t{r.rid_pasid >> 6} * 8, &dire, 8)) {
    r.fault = kRefFaultPasidTable;
    return r;
  }
  r.fpd = r.fpd || (dire & 2);  // (0x58 is not qualified: FPD moot)
  if (!(dire & 1)) {
    r.fault = kRefFaultPasidTable;
    return r;
  }
  uint64_t pe[8];
  const uint64_t pe_at =
      (dire & ~uint64_t{0xfff}) + uint64_t{r.rid_pasid & 0x3fu} * 64;
  if (!read(pe_at, pe, sizeof pe)) {
    r.fault = kRefFaultPasidTable;
    return r;
  }
  r.pgtt = static_cast<uint8_t>((pe[0] >> 6) & 7);
  r.aw = static_cast<int>((pe[0] >> 2) & 7);
  const bool type_ok =
      (r.pgtt >= 1 && r.pgtt <= 3) || (r.pgtt == kRefPgttPt && c.pt);
  if (!type_ok || !((c.sagaw >> r.aw) & 1) || !(pe[0] & 1)) {
    r.fault = kRefFaultPasidTable;
    return r;
  }
  r.fpd = r.fpd || (pe[0] & 2);
  r.slptptr = pe[0] & ~uint64_t{0xfff};
  r.did = static_cast<uint16_t>(pe[1]);
  return r;
}

// One second-level result: a translation, a fault, or (walk) an unmapped
// or skipped block.
struct RefSl {
  uint8_t fault = 0;     // translate: the fault reason (0: translated)
  bool skipped = false;  // walk: unreadable or reserved, left alone
  bool mapped = false;   // walk: a leaf with R or W
  uint64_t iova = 0;     // the block (leaf or unmapped entry) holding it
  uint64_t size = 0;
  uint64_t gpa = 0;  // the leaf's block address
  uint8_t perm = 0;  // stacked R (1) and W (2)
};

namespace ref_internal {

inline bool Reserved(const RefSmConfig& c, uint64_t e, int level) {
  constexpr uint64_t kIgnored = 0xbff0'0000'0000'0000ull;  // 63, 61:52
  constexpr uint64_t kTm = uint64_t{1} << 62;
  constexpr uint64_t kSnp = uint64_t{1} << 11;
  const bool ps = e & (1u << 7);
  const bool leaf = level == 1 || ((level == 2 || level == 3) && ps);
  uint64_t rsvd = ~(RefHawMask(c.aw_bits) | kIgnored);
  if (leaf && c.dt) rsvd &= ~kTm;
  if (!leaf) rsvd |= kSnp;  // SNP is reserved in tables, free in leaves
  if (level == 4) rsvd |= 1u << 7;
  if (leaf && level == 2) rsvd |= 0x1f'f000;    // 20:12 of a 2M page
  if (leaf && level == 3) rsvd |= 0x3fff'f000;  // 29:12 of a 1G page
  return (e & rsvd) != 0;
}

// `access`: 1 read, 2 write (translate); 0 a replay walk.
inline RefSl Walk(const RefRead& read, const RefSmConfig& c, const RefSm& d,
                  uint64_t iova, uint8_t access) {
  RefSl r;
  const int levels = 2 + d.aw;
  const int width = std::min(30 + 9 * d.aw, c.aw_bits);
  const uint64_t haw = RefHawMask(c.aw_bits);
  if (width < 64 && (iova >> width) != 0) {
    r.fault = kRefFaultBeyondMgaw;
    r.skipped = true;  // a walk never reaches it
    return r;
  }
  uint64_t table = d.slptptr;
  uint8_t perm = 3;
  for (int level = levels; level >= 1; --level) {
    const int shift = 12 + 9 * (level - 1);
    const uint64_t size = shift >= 64 ? 0 : uint64_t{1} << shift;
    r.iova = iova & ~(size - 1);
    r.size = size;
    uint64_t e;
    if (!read(table + ((iova >> shift) & 511) * 8, &e, 8)) {
      r.fault = level == levels ? kRefFaultContextInv : kRefFaultPagingInv;
      r.skipped = true;
      return r;
    }
    perm &= static_cast<uint8_t>(e & 3);
    if (access != 0 && !(e & access)) {
      r.fault = access == 2 ? kRefFaultWrite : kRefFaultRead;
      return r;
    }
    if (Reserved(c, e, level)) {
      r.fault = kRefFaultPagingRsvd;
      r.skipped = true;
      return r;
    }
    const bool leaf = level == 1 || (e & (1u << 7));
    if (access == 0 && perm == 0) return r;  // unmapped block
    if (leaf) {
      r.gpa = e & haw & ~uint64_t{0xfff} & ~(size - 1);
      r.perm = perm;
      r.mapped = true;
      constexpr uint64_t kWinFirst = 0xfee0'0000, kWinLast = 0xfeef'ffff;
      if (access != 0 && r.gpa <= kWinLast && r.gpa + size - 1 >= kWinFirst) {
        r.fault = kRefFaultSmInterrupt;
      }
      return r;
    }
    table = e & haw & ~uint64_t{0xfff};
  }
  return r;  // not reached: level 1 is a leaf
}

}  // namespace ref_internal

// A DMA of `iova` (write or read) through the device's PASID entry `d`
// (found, not pass-through): the translation or the fault reason.
inline RefSl RefSlTranslate(const RefRead& read, const RefSmConfig& c,
                            const RefSm& d, uint64_t iova, bool write) {
  return ref_internal::Walk(read, c, d, iova, write ? 2 : 1);
}

// What a replay walk reports for the block holding `iova`: mapped (leaf,
// stacked permissions), unmapped (perm 0) or skipped.
inline RefSl RefSlWalk(const RefRead& read, const RefSmConfig& c,
                       const RefSm& d, uint64_t iova) {
  RefSl r = ref_internal::Walk(read, c, d, iova, 0);
  r.fault = 0;
  return r;
}

}  // namespace viommu::vtd::fuzz

#endif  // VIOMMU_TESTS_FUZZ_VTD_SM_ORACLE_H_
