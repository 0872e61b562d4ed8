// viommu/hw/iommu/vtd_context.h — legacy-mode (non-scalable) root and
// context tables: entry decoding and the device → context-entry lookup with
// QEMU 7.2's checks, in its order (vtd_dev_to_context_entry).
//
//   TableConfig cfg = TableConfig::FromProperties(props);
//   ContextLookup r = LookupContext(mem, cfg, root_table, bus, devfn);
//   if (r.fault) {
//     bool suppressed = r.entry.fpd() && IsQualifiedFault(*r.fault);
//     ...                         // record the fault unless suppressed
//   } else if (r.entry.translation_type() == ContextEntry::kTtPassThrough) {
//     ...                         // identity
//   } else {
//     TranslateSl(mem, cfg, r.entry, iova, is_write);  // vtd_page_walk.h
//   }
//
// Threading: pure functions over GuestMemory (whose Read is thread-safe).
#ifndef VIOMMU_HW_IOMMU_VTD_CONTEXT_H_
#define VIOMMU_HW_IOMMU_VTD_CONTEXT_H_

#include <cstdint>
#include <optional>

#include "viommu/hw/iommu/vtd_fault_reason.h"
#include "viommu/hw/iommu/vtd_guest_memory.h"
#include "viommu/hw/iommu/vtd_properties.h"
#include "viommu/util/types.h"

namespace viommu::vtd {

// What the table checks and the page walk depend on, from the device's
// properties. Plain value; cheap to copy.
struct TableConfig {
  int aw_bits = 39;           // host address width (HAW): 39 or 48
  uint8_t sagaw = 0;          // CAP.SAGAW (bits 12:8): bit n = level n + 2
  bool pt_supported = false;  // ECAP.PT: TT=2 (pass-through) accepted
  bool dt_supported = false;  // ECAP.DT: TT=1 accepted; TM bit not reserved
  bool sc_supported = false;  // ECAP.SC: SNP bit not reserved in leaves

  // As QEMU 7.2's vtd_init derives them (SAGAW from ComputeCap).
  static TableConfig FromProperties(const Properties& p);
  // vtd_is_level_supported: `levels` (2 + context AW) is in SAGAW.
  bool LevelSupported(int levels) const;
};

// A legacy root entry (one per bus, 16 bytes at root_table + bus * 16).
struct RootEntry {
  uint64_t lo = 0;
  uint64_t hi = 0;

  bool present() const { return lo & 1; }
  Hwaddr context_table() const { return lo & ~uint64_t{0xfff}; }
  // Reserved bits for a legacy root entry: hi entirely, lo 11:1 and above HAW.
  bool reserved_nonzero(int aw_bits) const;
};
static_assert(sizeof(RootEntry) == 16);

// A legacy context entry (one per devfn, 16 bytes in the context table).
struct ContextEntry {
  static constexpr uint8_t kTtMultiLevel = 0;   // untranslated requests only
  static constexpr uint8_t kTtDevIotlb = 1;     // also device-IOTLB (ATS)
  static constexpr uint8_t kTtPassThrough = 2;  // identity

  uint64_t lo = 0;
  uint64_t hi = 0;

  bool present() const { return lo & 1; }
  bool fpd() const { return lo & 2; }  // fault processing disable
  uint8_t translation_type() const { return (lo >> 2) & 3; }
  Hwaddr slptptr() const { return lo & ~uint64_t{0xfff}; }
  int levels() const { return 2 + static_cast<int>(hi & 7); }     // 2 + AW
  int agaw() const { return 30 + 9 * static_cast<int>(hi & 7); }  // bits
  uint16_t domain_id() const { return static_cast<uint16_t>(hi >> 8); }
  // lo 11:4 and above HAW; hi 63:24 and bit 7.
  bool reserved_nonzero(int aw_bits) const;

  friend bool operator==(const ContextEntry&, const ContextEntry&) = default;
};
static_assert(sizeof(ContextEntry) == 16);

struct ContextLookup {
  // Empty on success.
  std::optional<FaultReason> fault;
  // The context entry as read; all zero when the lookup failed before
  // reading it (root-level faults, kContextTableInv). QEMU 7.2 takes FPD
  // from this entry even when the entry itself faulted (kContextEntryP,
  // kContextEntryRsvd, kContextEntryInv).
  ContextEntry entry;

  bool ok() const { return !fault.has_value(); }
};

// Finds the context entry of (bus, devfn) under the root table at
// `root_table` (RTADDR already masked to HAW, 4K aligned). Faults, first
// failing check wins, as QEMU 7.2:
//   kRootTableInv      root entry could not be read
//   kRootEntryP        root entry not present
//   kRootEntryRsvd     reserved bits in the root entry
//   kContextTableInv   context entry could not be read
//   kContextEntryP     context entry not present
//   kContextEntryRsvd  reserved bits in the context entry
//   kContextEntryInv   levels (2 + AW) not in SAGAW, or a translation type
//                      that is unknown (3) or not supported (DT without
//                      ECAP.DT, PT without ECAP.PT). 7.2 reports the type
//                      check as kContextEntryInv, never kContextEntryTt.
// A successful entry has 3 or 4 levels only when cfg came from
// FromProperties (QEMU never advertises other SAGAW bits).
ContextLookup LookupContext(GuestMemory& mem, const TableConfig& cfg,
                            Hwaddr root_table, uint8_t bus, uint8_t devfn);

// QEMU 7.2's vtd_qualified_faults: a qualified fault is not recorded when
// the context entry's FPD is set. Qualified: kContextEntryP,
// kContextEntryInv, kAddrBeyondMgaw, kWrite, kRead, kPagingEntryInv,
// kPagingEntryRsvd, kContextEntryTt, kInterruptAddr, kSmInterruptAddr. Not
// qualified: root and table-access faults, kContextEntryRsvd,
// kPasidTableInv and kRtaddrInvTtm (absent from 7.2's table).
// Interrupt remapping (the spec's table; FPD is the IRTE's): kIrEntryP,
// kIrIrteRsvd, kIrSidErr, kIrPidInval are qualified; kIrReqRsvd,
// kIrIndexOver, kIrRootInval, kIrReqCompat are not.
bool IsQualifiedFault(FaultReason reason);

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_CONTEXT_H_
