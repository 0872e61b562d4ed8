// Scalable-mode root/context/PASID lookup with QEMU 7.2's checks and fault
// order (vtd_dev_to_context_entry and its scalable-mode branches,
// vtd_ce_rid2pasid_check, vtd_get_pe_from_pasid_table, vtd_pe_type_check,
// vtd_ce_get_pasid_fpd).
#include "viommu/hw/iommu/vtd_scalable.h"

#include "viommu/hw/iommu/vtd_regs.h"

namespace viommu::vtd {
namespace {

constexpr uint64_t kRootRsvdLow = 0xffe;                     // bits 11:1
constexpr uint64_t kSmContextVal0RsvdLow = 0x1e0;            // bits 8:5
constexpr uint64_t kSmContextVal1Rsvd = 0xffffffffffe00000;  // 63:21

// Reads `n` little-endian quadwords at `addr`.
bool ReadQuads(GuestMemory& mem, Hwaddr addr, uint64_t* out, int n) {
  uint64_t raw[8];
  if (!mem.Read(addr, raw, sizeof(uint64_t) * static_cast<size_t>(n))) {
    return false;
  }
  for (int i = 0; i < n; ++i) out[i] = LoadLe64(&raw[i]);
  return true;
}

bool PgttSupported(const TableConfig& cfg, uint8_t pgtt) {
  switch (pgtt) {
    case PasidEntry::kPgttFirstLevel:
    case PasidEntry::kPgttSecondLevel:
    case PasidEntry::kPgttNested:
      return true;
    case PasidEntry::kPgttPassThrough:
      return cfg.pt_supported;
    default:
      return false;
  }
}

}  // namespace

bool SmRootEntry::reserved_nonzero(int aw_bits) const {
  const uint64_t rsvd = kRootRsvdLow | ~HawMask(aw_bits);
  return ((lo | hi) & rsvd) != 0;
}

bool SmContextEntry::reserved_nonzero(int aw_bits) const {
  return (val[0] & (kSmContextVal0RsvdLow | ~HawMask(aw_bits))) != 0 ||
         (val[1] & kSmContextVal1Rsvd) != 0 || val[2] != 0 || val[3] != 0;
}

ContextEntry PasidEntry::ToContextEntry(bool fpd_set, uint32_t pasid) const {
  const uint64_t tt = pgtt() == kPgttPassThrough ? ContextEntry::kTtPassThrough
                                                 : ContextEntry::kTtMultiLevel;
  return ContextEntry{
      .lo = slptptr() | (tt << 2) | (fpd_set ? 2u : 0u) | 1u,
      .hi = uint64_t{aw()} | (uint64_t{domain_id()} << 8) |
            (uint64_t{pasid & 0xfffff} << kEffectivePasidShift) |
            kEffectiveScalable};
}

PasidLookup LookupPasid(GuestMemory& mem, const TableConfig& cfg,
                        Hwaddr pasid_dir, uint32_t pasid) {
  PasidLookup r;
  const uint64_t dir_index = (pasid >> 6) & 0x3fff;
  if (!ReadQuads(mem, pasid_dir + dir_index * sizeof(PasidDirEntry), &r.dir.val,
                 1) ||
      !r.dir.present()) {
    r.fault = FaultReason::kPasidTableInv;
    return r;
  }
  const uint64_t index = pasid & 0x3f;
  if (!ReadQuads(mem, r.dir.pasid_table() + index * sizeof(PasidEntry),
                 r.entry.val, 8)) {
    r.fault = FaultReason::kPasidTableInv;
    return r;
  }
  r.entry_read = true;
  if (!PgttSupported(cfg, r.entry.pgtt()) ||
      !cfg.LevelSupported(r.entry.levels()) || !r.entry.present()) {
    r.fault = FaultReason::kPasidTableInv;
  }
  return r;
}

PasidFpdCheck CheckPasidFpd(GuestMemory& mem, const TableConfig& cfg,
                            Hwaddr pasid_dir, uint32_t pasid) {
  PasidFpdCheck r;
  PasidDirEntry dir;
  if (!ReadQuads(mem, pasid_dir + ((pasid >> 6) & 0x3fff) * sizeof(dir),
                 &dir.val, 1)) {
    r.fault = FaultReason::kPasidTableInv;
    return r;
  }
  if (dir.fpd()) {
    r.fpd = true;
    return r;
  }
  PasidEntry pe;
  if (!dir.present() ||
      !ReadQuads(mem, dir.pasid_table() + (pasid & 0x3f) * sizeof(pe), pe.val,
                 8) ||
      !PgttSupported(cfg, pe.pgtt()) || !cfg.LevelSupported(pe.levels())) {
    r.fault = FaultReason::kPasidTableInv;
    return r;
  }
  r.fpd = pe.fpd();
  return r;
}

SmLookup LookupScalable(GuestMemory& mem, const TableConfig& cfg,
                        Hwaddr root_table, uint8_t bus, uint8_t devfn,
                        uint32_t pasid) {
  SmLookup r;
  SmRootEntry re;
  uint64_t q[2];
  if (!ReadQuads(mem, root_table + uint64_t{bus} * sizeof(SmRootEntry), q, 2)) {
    r.fault = FaultReason::kRootTableInv;
    return r;
  }
  re.lo = q[0];
  re.hi = q[1];
  if (!re.present(devfn)) {
    r.fault = FaultReason::kRootEntryP;
    return r;
  }
  if (re.reserved_nonzero(cfg.aw_bits)) {
    r.fault = FaultReason::kRootEntryRsvd;
    return r;
  }
  const uint64_t index = devfn & 0x7f;
  if (!ReadQuads(mem, re.context_table(devfn) + index * sizeof(SmContextEntry),
                 r.context.val, 4)) {
    r.fault = FaultReason::kContextTableInv;
    return r;
  }
  const SmContextEntry& ce = r.context;
  r.effective.lo = ce.val[0] & 2;  // FPD, as 7.2 takes it on any fault
  if (!ce.present()) {
    r.fault = FaultReason::kContextEntryP;
    return r;
  }
  if (ce.reserved_nonzero(cfg.aw_bits)) {
    r.fault = FaultReason::kContextEntryRsvd;
    return r;
  }
  PasidLookup pl = LookupPasid(mem, cfg, ce.pasid_dir(), ce.rid_pasid());
  if (pl.ok() && pasid != kNoPasid && pasid != ce.rid_pasid()) {
    pl = LookupPasid(mem, cfg, ce.pasid_dir(), pasid);
  }
  r.pasid_entry = pl.entry;
  if (!pl.ok()) {
    r.fault = pl.fault;
    return r;
  }
  const bool fpd = ce.fpd() || pl.dir.fpd() || pl.entry.fpd();
  r.effective =
      pl.entry.ToContextEntry(fpd, pasid == kNoPasid ? ce.rid_pasid() : pasid);
  return r;
}

}  // namespace viommu::vtd
