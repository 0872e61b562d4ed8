// viommu/hw/iommu/vtd_scalable.h — scalable-mode (RTADDR.TTM = 01) root
// and context tables, PASID directory and PASID table: entry decoding and
// the device → PASID-entry lookup with QEMU 7.2's checks, in its order
// (vtd_dev_to_context_entry with root_scalable, vtd_ce_rid2pasid_check,
// vtd_get_pe_from_pasid_table, vtd_ce_get_pasid_fpd).
//
// The lookup's result is also given as the legacy ContextEntry it is
// equivalent to (SmLookup::effective): SLPTPTR, AW and DID from the PASID
// entry, TT pass-through for PGTT 100b, FPD as 7.2 combines it. The page
// walk, the IOTLB, the context cache and the shadow sync take that entry
// unchanged, so scalable mode reuses the legacy second-level machinery.
//
//   SmLookup r = LookupScalable(mem, cfg, root_table, bus, devfn);
//   if (r.fault) {
//     bool suppressed = r.effective.fpd() && IsQualifiedFault(*r.fault);
//   } else {
//     TranslateSl(mem, cfg, r.effective, iova, is_write);  // or PT
//   }
//
// Threading: pure functions over GuestMemory (whose Read is thread-safe).
#ifndef VIOMMU_HW_IOMMU_VTD_SCALABLE_H_
#define VIOMMU_HW_IOMMU_VTD_SCALABLE_H_

#include <cstdint>
#include <optional>

#include "viommu/hw/iommu/vtd_context.h"
#include "viommu/hw/iommu/vtd_context_cache.h"
#include "viommu/hw/iommu/vtd_fault_reason.h"
#include "viommu/hw/iommu/vtd_guest_memory.h"
#include "viommu/util/types.h"

namespace viommu::vtd {

// RTADDR.TTM (bits 11:10): 00 legacy, 01 scalable.
inline constexpr uint64_t kRtaddrTtmMask = 3ull << 10;

// "No PASID" request (QEMU's PCI_NO_PASID): the context entry's RID_PASID
// is used.
inline constexpr uint32_t kNoPasid = 0xffffffffu;

// A scalable-mode root entry (one per bus, 16 bytes at root_table + bus *
// 16): lo points at the context table of devfn 0-127, hi at the one of
// devfn 128-255, each half with its own present bit.
struct SmRootEntry {
  uint64_t lo = 0;
  uint64_t hi = 0;

  bool present(uint8_t devfn) const { return (devfn < 128 ? lo : hi) & 1; }
  Hwaddr context_table(uint8_t devfn) const {
    return (devfn < 128 ? lo : hi) & ~uint64_t{0xfff};
  }
  // Bits 11:1 and above HAW of both halves (7.2 checks both halves
  // whichever the device uses).
  bool reserved_nonzero(int aw_bits) const;
};
static_assert(sizeof(SmRootEntry) == 16);

// A scalable-mode context entry (256 bits; 32 bytes at context_table +
// (devfn & 0x7f) * 32).
struct SmContextEntry {
  uint64_t val[4] = {0, 0, 0, 0};

  bool present() const { return val[0] & 1; }
  bool fpd() const { return val[0] & 2; }
  bool dte() const { return val[0] & 4; }     // device-TLB enable
  bool paside() const { return val[0] & 8; }  // PASID enable
  bool pre() const { return val[0] & 16; }    // page-request enable
  // PASID directory size: 2^(pdts + 7) entries.
  uint8_t pdts() const { return (val[0] >> 9) & 7; }
  Hwaddr pasid_dir() const { return val[0] & ~uint64_t{0xfff}; }
  uint32_t rid_pasid() const { return val[1] & 0xfffff; }
  bool rid_priv() const { return (val[1] >> 20) & 1; }
  // val[0] bits 8:5 and above HAW; val[1] 63:21; val[2] and val[3] whole.
  bool reserved_nonzero(int aw_bits) const;
};
static_assert(sizeof(SmContextEntry) == 32);

// A PASID directory entry (8 bytes at pasid_dir + (pasid >> 6) * 8).
struct PasidDirEntry {
  uint64_t val = 0;

  bool present() const { return val & 1; }
  bool fpd() const { return val & 2; }
  Hwaddr pasid_table() const { return val & ~uint64_t{0xfff}; }
};
static_assert(sizeof(PasidDirEntry) == 8);

// A PASID table entry (512 bits; 64 bytes at pasid_table + (pasid & 0x3f)
// * 64).
struct PasidEntry {
  // PASID granular translation type (PGTT, bits 8:6).
  static constexpr uint8_t kPgttFirstLevel = 1;
  static constexpr uint8_t kPgttSecondLevel = 2;
  static constexpr uint8_t kPgttNested = 3;
  static constexpr uint8_t kPgttPassThrough = 4;

  uint64_t val[8] = {0, 0, 0, 0, 0, 0, 0, 0};

  bool present() const { return val[0] & 1; }
  bool fpd() const { return val[0] & 2; }
  uint8_t aw() const { return (val[0] >> 2) & 7; }
  int levels() const { return 2 + aw(); }
  int agaw() const { return 30 + 9 * aw(); }
  uint8_t pgtt() const { return (val[0] >> 6) & 7; }
  Hwaddr slptptr() const { return val[0] & ~uint64_t{0xfff}; }
  uint16_t domain_id() const { return static_cast<uint16_t>(val[1]); }
  // The legacy context entry with the same translation: present, FPD as
  // `fpd`, TT pass-through for PGTT 100b and multi-level otherwise,
  // SLPTPTR, AW and DID from this entry; marked as scalable with `pasid`
  // (IsScalableEffective, EffectivePasid).
  ContextEntry ToContextEntry(bool fpd, uint32_t pasid = 0) const;
};
static_assert(sizeof(PasidEntry) == 64);

// An effective entry (PasidEntry::ToContextEntry) keeps, in hi bits the
// legacy layout reserves (and no ContextEntry accessor reads), that it came
// from scalable-mode tables (bit 63) and its PASID (bits 51:32), so the
// context cache, which stores lo/hi, keeps them too.
inline constexpr uint64_t kEffectiveScalable = 1ull << 63;
inline constexpr int kEffectivePasidShift = 32;
inline bool IsScalableEffective(const ContextEntry& ce) {
  return (ce.hi & kEffectiveScalable) != 0;
}
inline uint32_t EffectivePasid(const ContextEntry& ce) {
  return static_cast<uint32_t>(ce.hi >> kEffectivePasidShift) & 0xfffff;
}

struct PasidLookup {
  // Empty on success; otherwise kPasidTableInv (the only PASID fault 7.2
  // reports).
  std::optional<FaultReason> fault;
  PasidDirEntry dir;  // as read (zero before the read)
  PasidEntry entry;   // as read (zero before the read)
  // The PASID entry was read (the directory entry was present), whatever
  // the checks after the read said: 7.2 walks with such an entry.
  bool entry_read = false;
  bool ok() const { return !fault.has_value(); }
};

// Whether a PASID entry whose first quadword is `val0` passes every check
// of LookupPasid after the read (present, PGTT supported, levels in
// SAGAW) and is not pass-through: a request through it may use the IOTLB
// (the DMA fast path's test).
inline bool PasidEntryUsesIotlb(const TableConfig& cfg, uint64_t val0) {
  const uint64_t pgtt = (val0 >> 6) & 7;
  const uint64_t aw = (val0 >> 2) & 7;  // levels - 2: the SAGAW bit
  return (val0 & 1) != 0 && pgtt >= PasidEntry::kPgttFirstLevel &&
         pgtt <= PasidEntry::kPgttNested && ((cfg.sagaw >> aw) & 1) != 0;
}

struct PasidFpdCheck {
  // Empty when the checks passed; otherwise kPasidTableInv.
  std::optional<FaultReason> fault;
  // The directory entry's FPD, or (when that is clear) the PASID entry's.
  bool fpd = false;
};

// QEMU 7.2's vtd_ce_get_pasid_fpd: what a request whose context entry
// came from the context cache (FPD clear) checks of `pasid`'s directory
// and PASID entries. kPasidTableInv when the directory entry cannot be
// read; a directory entry with FPD set ends the checks (fpd); otherwise
// kPasidTableInv when it is not present, or the PASID entry cannot be read
// or has an unsupported PGTT or levels. The PASID entry's present bit is
// not checked (7.2 does not: FPD means something without it).
PasidFpdCheck CheckPasidFpd(GuestMemory& mem, const TableConfig& cfg,
                            Hwaddr pasid_dir, uint32_t pasid);

// Finds the PASID entry of `pasid` (20 bits) under the PASID directory at
// `pasid_dir`. kPasidTableInv, as 7.2, when: the directory entry cannot be
// read or is not present; the PASID entry cannot be read; its PGTT is
// neither first-level, second-level, nested nor pass-through (pass-through
// only with ECAP.PT); its levels (2 + AW) are not in SAGAW; it is not
// present. PDTS is not checked (7.2 does not).
PasidLookup LookupPasid(GuestMemory& mem, const TableConfig& cfg,
                        Hwaddr pasid_dir, uint32_t pasid);

// The context cache's form of a scalable-mode context entry: val[0] as lo,
// val[1] as hi with kSmCachedTag set. The tag is a reserved bit both in
// val[1] and in a legacy context entry's hi, and only good entries are
// cached, so an entry of one mode is never taken for the other.
inline constexpr uint64_t kSmCachedTag = 1ull << 63;
inline CachedContext ToCachedContext(const SmContextEntry& ce) {
  return CachedContext{.lo = ce.val[0], .hi = ce.val[1] | kSmCachedTag};
}
inline bool IsSmCachedContext(const CachedContext& c) {
  return (c.hi & kSmCachedTag) != 0;
}
// REQUIRES: IsSmCachedContext(c). val[2] and val[3] are zero (checked
// before caching).
inline SmContextEntry FromCachedContext(const CachedContext& c) {
  return SmContextEntry{.val = {c.lo, c.hi & ~kSmCachedTag, 0, 0}};
}

struct SmLookup {
  // Empty on success.
  std::optional<FaultReason> fault;
  // The context entry as read; zero when the lookup failed before it.
  SmContextEntry context;
  // The PASID entry used (RID_PASID's, or `pasid`'s); zero on a fault
  // before it.
  PasidEntry pasid_entry;
  // The equivalent legacy entry. On success PasidEntry::ToContextEntry with
  // FPD = context, directory or PASID entry FPD (7.2's
  // vtd_ce_get_pasid_fpd); on a fault only its FPD bit means anything: the
  // context entry's FPD once that entry was read (as 7.2).
  ContextEntry effective;

  bool ok() const { return !fault.has_value(); }
};

// Finds the PASID entry of (bus, devfn) and `pasid` (kNoPasid: the
// context entry's RID_PASID) under the scalable-mode root table at
// `root_table` (RTADDR masked to HAW, 4K aligned). Faults, first failing
// check wins, as QEMU 7.2:
//   kRootTableInv      root entry could not be read
//   kRootEntryP        the devfn's half of the root entry not present
//   kRootEntryRsvd     reserved bits in either half of the root entry
//   kContextTableInv   context entry could not be read
//   kContextEntryP     context entry not present
//   kContextEntryRsvd  reserved bits in the context entry
//   kPasidTableInv     RID_PASID's PASID entry fails LookupPasid (checked
//                      for every lookup, as 7.2's vtd_ce_rid2pasid_check),
//                      then `pasid`'s (when not kNoPasid)
// No SAGAW or type check on the context entry itself (7.2 skips both in
// scalable mode).
SmLookup LookupScalable(GuestMemory& mem, const TableConfig& cfg,
                        Hwaddr root_table, uint8_t bus, uint8_t devfn,
                        uint32_t pasid = kNoPasid);

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_SCALABLE_H_
