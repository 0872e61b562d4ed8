// Legacy root/context table lookup with QEMU 7.2's checks and fault order
// (vtd_dev_to_context_entry, vtd_root_entry_rsvd_bits_check,
// vtd_context_entry_rsvd_bits_check, vtd_ce_type_check).
#include "viommu/hw/iommu/vtd_context.h"

#include "viommu/hw/iommu/vtd_regs.h"
#include "viommu/util/trace.h"

namespace viommu::vtd {
namespace {

constexpr uint64_t kRootLoRsvdLow = 0xffe;               // bits 11:1
constexpr uint64_t kContextLoRsvdLow = 0xff0;            // bits 11:4
constexpr uint64_t kContextHiRsvd = 0xffffffffff000080;  // 63:24 and 7

bool ReadEntry(GuestMemory& mem, Hwaddr addr, uint64_t* lo, uint64_t* hi) {
  uint64_t raw[2];
  if (!mem.Read(addr, raw, sizeof raw)) return false;
  *lo = LoadLe64(&raw[0]);
  *hi = LoadLe64(&raw[1]);
  return true;
}

bool TypeSupported(const TableConfig& cfg, uint8_t tt) {
  switch (tt) {
    case ContextEntry::kTtMultiLevel:
      return true;
    case ContextEntry::kTtDevIotlb:
      return cfg.dt_supported;
    case ContextEntry::kTtPassThrough:
      return cfg.pt_supported;
    default:
      return false;
  }
}

}  // namespace

TableConfig TableConfig::FromProperties(const Properties& p) {
  TableConfig cfg;
  cfg.aw_bits = p.aw_bits;
  cfg.sagaw = static_cast<uint8_t>((ComputeCap(p) >> 8) & 0x1f);
  cfg.pt_supported = (ComputeEcap(p) & kEcapPt) != 0;
  cfg.dt_supported = (ComputeEcap(p) & kEcapDt) != 0;
  // 7.2's vtd_init also frees SNP in leaves with x-scalable-mode=on.
  cfg.sc_supported = (ComputeEcap(p) & kEcapSc) != 0 || p.scalable_mode;
  return cfg;
}

bool TableConfig::LevelSupported(int levels) const {
  const int bit = levels - 2;
  return bit >= 0 && bit < 5 && (sagaw >> bit) & 1;
}

bool RootEntry::reserved_nonzero(int aw_bits) const {
  return hi != 0 || (lo & (kRootLoRsvdLow | ~HawMask(aw_bits))) != 0;
}

bool ContextEntry::reserved_nonzero(int aw_bits) const {
  return (hi & kContextHiRsvd) != 0 ||
         (lo & (kContextLoRsvdLow | ~HawMask(aw_bits))) != 0;
}

ContextLookup LookupContext(GuestMemory& mem, const TableConfig& cfg,
                            Hwaddr root_table, uint8_t bus, uint8_t devfn) {
  ContextLookup r;
  RootEntry re;
  if (!ReadEntry(mem, root_table + uint64_t{bus} * sizeof(RootEntry), &re.lo,
                 &re.hi)) {
    r.fault = FaultReason::kRootTableInv;
    return r;
  }
  if (!re.present()) {
    VIOMMU_TRACE(vtd_re_not_present, bus);
    r.fault = FaultReason::kRootEntryP;
    return r;
  }
  if (re.reserved_nonzero(cfg.aw_bits)) {
    r.fault = FaultReason::kRootEntryRsvd;
    return r;
  }
  ContextEntry ce;
  if (!ReadEntry(mem, re.context_table() + uint64_t{devfn} * sizeof(ce), &ce.lo,
                 &ce.hi)) {
    r.fault = FaultReason::kContextTableInv;
    return r;
  }
  r.entry = ce;
  if (!ce.present()) {
    VIOMMU_TRACE(vtd_ce_not_present, bus, devfn);
    r.fault = FaultReason::kContextEntryP;
  } else if (ce.reserved_nonzero(cfg.aw_bits)) {
    r.fault = FaultReason::kContextEntryRsvd;
  } else if (!cfg.LevelSupported(ce.levels()) ||
             !TypeSupported(cfg, ce.translation_type())) {
    r.fault = FaultReason::kContextEntryInv;
  }
  return r;
}

bool IsQualifiedFault(FaultReason reason) {
  switch (reason) {
    case FaultReason::kContextEntryP:
    case FaultReason::kContextEntryInv:
    case FaultReason::kAddrBeyondMgaw:
    case FaultReason::kWrite:
    case FaultReason::kRead:
    case FaultReason::kPagingEntryInv:
    case FaultReason::kPagingEntryRsvd:
    case FaultReason::kContextEntryTt:
    case FaultReason::kInterruptAddr:
    case FaultReason::kSmInterruptAddr:
    // The spec's qualified interrupt-remapping faults (IRTE.FPD).
    case FaultReason::kIrEntryP:
    case FaultReason::kIrIrteRsvd:
    case FaultReason::kIrSidErr:
    case FaultReason::kIrPidInval:
      return true;
    case FaultReason::kRootEntryP:
    case FaultReason::kRootTableInv:
    case FaultReason::kContextTableInv:
    case FaultReason::kRootEntryRsvd:
    case FaultReason::kContextEntryRsvd:
    case FaultReason::kIrReqRsvd:
    case FaultReason::kIrIndexOver:
    case FaultReason::kIrRootInval:
    case FaultReason::kIrReqCompat:
    // Absent from 7.2's vtd_qualified_faults (false).
    case FaultReason::kRtaddrInvTtm:
    case FaultReason::kPasidTableInv:
      return false;
  }
  return false;
}

}  // namespace viommu::vtd
