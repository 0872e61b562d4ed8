// The DMA translation path (QEMU 7.2's vtd_iommu_translate and
// vtd_do_iommu_translate): caches, context lookup, second-level walk,
// fault reporting.
#include "hw/iommu/intel/vtd_device.h"
#include "viommu/hw/iommu/vtd_engine.h"
#include "viommu/hw/iommu/vtd_page_walk.h"
#include "viommu/hw/iommu/vtd_scalable.h"
#include "viommu/util/log.h"
#include "viommu/util/trace.h"

namespace viommu::vtd {
namespace {

constexpr uint64_t kPageMask4k = 0xfff;

}  // namespace

memory::IommuTlbEntry VtdEngine::Translate(VtdDevice& dev, Iova iova,
                                           memory::IommuPerm access) {
  // Everything but DMAR-off and a 4K IOTLB hit, out of line: the whole
  // IOTLB lookup, the context, the walk, the fill, faults. A local class
  // (not a file-static helper) for access to the engine's members, as the
  // enclosing member function has; the fast path below calls it last and
  // so keeps its own frame small.
  struct SlowPath {
    static memory::IommuTlbEntry Identity(VtdEngine& e, Iova va) {
      return {.target_as = e.system_as_,
              .iova = va & ~kPageMask4k,
              .translated_addr = va & ~kPageMask4k,
              .addr_mask = kPageMask4k,
              .perm = memory::kIommuReadWrite};
    }
    static memory::IommuTlbEntry Fail(memory::IommuTlbEntry out) {
      out.perm = memory::kIommuNone;
      return out;
    }

    [[gnu::noinline]] static memory::IommuTlbEntry Run(VtdEngine& e,
                                                       VtdDevice& d, Iova va,
                                                       memory::IommuPerm acc) {
      const uint64_t root = e.root_.load(std::memory_order_acquire);
      if (root & kRootScalable) [[unlikely]] {
        return RunScalable(e, d, va, acc);
      }
      memory::IommuTlbEntry out = Identity(e, va);
      const bool is_write = (acc & memory::kIommuWrite) != 0;
      const uint16_t sid = d.sid();
      // No permission check on a hit (see below); also 2M/1G hits.
      if (std::optional<IotlbEntry> hit = e.iotlb_.Lookup(sid, va)) {
        return Hit(e, sid, va, *hit);
      }
      // Read before the tables: an invalidation during the walk drops the
      // fill.
      const uint64_t epoch = e.iotlb_.epoch();
      ContextLookup ctx = e.GetContext(d);
      if (!ctx.ok()) {
        e.ReportFault(sid, *ctx.fault, ctx.entry.fpd(), va, is_write);
        return Fail(out);
      }
      // Pass-through: identity, 4K, RW, nothing cached (as QEMU).
      if (ctx.entry.translation_type() == ContextEntry::kTtPassThrough) {
        return out;
      }
      return Walk(e, sid, va, is_write, ctx.entry, epoch);
    }

    // Scalable mode, in QEMU 7.2's order (vtd_do_iommu_translate for a
    // request without PASID): the context entry from the context cache
    // (7.2's per-device entry), else from the tables with every check
    // (vtd_dev_to_context_entry, RID_PASID's PASID entry included) and
    // cached; with a cached entry whose FPD is clear, RID_PASID's
    // directory and PASID entries checked as vtd_ce_get_pasid_fpd does;
    // then RID_PASID's PASID entry read again: pass-through
    // (vtd_dev_pt_enabled), else the IOTLB, else a walk of the PASID
    // entry as read (vtd_iova_to_slpte re-reads it and ignores the
    // lookup's verdict).
    static memory::IommuTlbEntry RunScalable(VtdEngine& e, VtdDevice& d,
                                             Iova va, memory::IommuPerm acc) {
      memory::IommuTlbEntry out = Identity(e, va);
      const bool is_write = (acc & memory::kIommuWrite) != 0;
      const uint16_t sid = d.sid();
      const uint8_t bus = d.as().bus();
      const uint8_t devfn = d.as().devfn();
      // Before the tables: an invalidation during the walk drops the fill.
      const uint64_t epoch = e.iotlb_.epoch();
      SmContextEntry ce;
      bool fpd = false;
      // Peek first (no lock); Lookup counts the hit or miss otherwise.
      std::optional<CachedContext> cached = e.context_cache_.Peek(bus, devfn);
      if (!cached.has_value()) cached = e.context_cache_.Lookup(bus, devfn);
      if (cached.has_value() && IsSmCachedContext(*cached)) {
        VIOMMU_TRACE(vtd_iotlb_cc_hit, bus, devfn, cached->hi, cached->lo);
        ce = FromCachedContext(*cached);
        fpd = ce.fpd();
        if (!fpd) {
          PasidFpdCheck f =
              CheckPasidFpd(e.ram_, e.cfg_, ce.pasid_dir(), ce.rid_pasid());
          if (f.fault.has_value()) {
            e.ReportFault(sid, *f.fault, f.fpd, va, is_write);
            return Fail(out);
          }
          fpd = f.fpd;
        }
      } else {
        // The epoch, then the root: a root change flushes the cache after
        // publishing the new root, so an entry read from an old table is
        // never inserted as current.
        const uint64_t cc_epoch = e.context_cache_.epoch();
        const uint64_t root = e.root_.load(std::memory_order_acquire);
        SmLookup sm =
            LookupScalable(e.ram_, e.cfg_, root & ~kRootScalable, bus, devfn);
        VIOMMU_TRACE(vtd_iotlb_cc_miss, bus, devfn,
                     sm.ok() ? 0u : static_cast<unsigned>(*sm.fault));
        if (!sm.ok()) {
          e.ReportFault(sid, *sm.fault, sm.effective.fpd(), va, is_write);
          return Fail(out);
        }
        ce = sm.context;
        fpd = sm.effective.fpd();
        // Only good entries are cached (7.2 fills after the checks).
        if (root & kRootScalable) {
          e.context_cache_.InsertIfCurrent(cc_epoch, bus, devfn,
                                           ToCachedContext(ce));
        }
      }
      const uint32_t pasid = ce.rid_pasid();
      PasidLookup pl = LookupPasid(e.ram_, e.cfg_, ce.pasid_dir(), pasid);
      if (pl.ok() && pl.entry.pgtt() == PasidEntry::kPgttPassThrough) {
        return out;  // identity, 4K, RW, nothing cached (as 7.2)
      }
      if (std::optional<IotlbEntry> hit = e.iotlb_.Lookup(sid, va)) {
        return Hit(e, sid, va, *hit);
      }
      if (!pl.entry_read || !e.cfg_.LevelSupported(pl.entry.levels())) {
        // 7.2 would walk an entry it did not read, or with levels its walk
        // cannot index: viommu faults as for a bad PASID entry.
        e.ReportFault(sid, FaultReason::kPasidTableInv, fpd, va, is_write);
        return Fail(out);
      }
      ContextEntry walked = pl.entry.ToContextEntry(fpd, pasid);
      walked.lo &= ~uint64_t{3 << 2};  // walked as second level, as 7.2
      return Walk(e, sid, va, is_write, walked, epoch);
    }

    static memory::IommuTlbEntry Hit(VtdEngine& e, uint16_t sid, Iova va,
                                     const IotlbEntry& hit) {
      VIOMMU_TRACE(vtd_iotlb_page_hit, sid, va, hit.page_base, hit.addr_mask);
      return {.target_as = e.system_as_,
              .iova = va & ~hit.addr_mask,
              .translated_addr = hit.page_base,
              .addr_mask = hit.addr_mask,
              .perm = hit.perm};
    }

    // The second-level walk of `ctx` and the IOTLB fill (unless an
    // invalidation ran since `epoch`), or the walk's fault.
    static memory::IommuTlbEntry Walk(VtdEngine& e, uint16_t sid, Iova va,
                                      bool is_write, const ContextEntry& ctx,
                                      uint64_t epoch) {
      memory::IommuTlbEntry out = Identity(e, va);
      e.walks_.fetch_add(1, std::memory_order_relaxed);
      SlTranslation t = TranslateSl(e.ram_, e.cfg_, ctx, va, is_write);
      if (t.fault.has_value()) {
        // Scalable mode: 7.2 reports the walk's faults with RID_PASID and
        // PP set; legacy: its "no PASID" value, PP clear.
        if (IsScalableEffective(ctx)) [[unlikely]] {
          // And the interrupt range as 0x87 (qualified too).
          const FaultReason fr = *t.fault == FaultReason::kInterruptAddr
                                     ? FaultReason::kSmInterruptAddr
                                     : *t.fault;
          e.ReportFault(sid, fr, ctx.fpd(), va, is_write,
                        static_cast<uint16_t>(EffectivePasid(ctx)),
                        /*pasid_present=*/true);
        } else {
          e.ReportFault(sid, *t.fault, ctx.fpd(), va, is_write,
                        IntelIommu::kNoPasidValue);
        }
        out.addr_mask = t.addr_mask > 0 ? t.addr_mask : kPageMask4k;
        out.iova = va & ~out.addr_mask;
        out.translated_addr = out.iova;
        out.perm = memory::kIommuNone;
        return out;
      }
      e.iotlb_.InsertIfCurrent(epoch, sid, va,
                               IotlbEntry{.domain_id = ctx.domain_id(),
                                          .page_base = t.page_base,
                                          .addr_mask = t.addr_mask,
                                          .perm = t.perm});
      out.addr_mask = t.addr_mask;
      out.iova = va & ~t.addr_mask;
      out.translated_addr = t.page_base;
      VIOMMU_TRACE(vtd_dmar_translate, sid, va, t.page_base, t.addr_mask,
                   static_cast<unsigned>(t.perm));
      // Deliberate: the stacked permissions for every access kind (see
      // header).
      out.perm = t.perm;
      return out;
    }
  };

  // Scalable mode's fast path, inline (out of line it cost more than the
  // legacy path gains: 220 against 198 instructions per SM hit, callgrind):
  // the context entry in the context cache (read without a lock),
  // RID_PASID's directory and PASID entries read from RAM (as 7.2, on every
  // request) and good enough that 7.2 would go on to its IOTLB (present, a
  // supported PGTT walked as second level, supported levels: then its FPD
  // check passes and it is not pass-through), and a 4K IOTLB hit. Anything
  // else (faults, FPD, pass-through, misses) is the slow path's, which
  // checks everything again in 7.2's order.
  struct Scalable {
    [[gnu::always_inline]] static std::optional<IotlbEntry> FastHit(
        VtdEngine& e, VtdDevice& d, Iova va) {
      const std::optional<CachedContext> c =
          e.context_cache_.Peek(d.as().bus(), d.as().devfn());
      if (!c.has_value() || !IsSmCachedContext(*c)) return std::nullopt;
      const uint32_t rid_pasid = static_cast<uint32_t>(c->hi) & 0xfffff;
      uint64_t dir = 0;
      if (!e.ram_.ReadInline(
              (c->lo & ~kPageMask4k) + ((rid_pasid >> 6) & 0x3fff) * 8, &dir,
              8) ||
          (dir & 1) == 0) {
        return std::nullopt;
      }
      uint64_t pe0 = 0;
      if (!e.ram_.ReadInline((dir & ~kPageMask4k) + (rid_pasid & 0x3f) * 64,
                             &pe0, 8) ||
          !PasidEntryUsesIotlb(e.cfg_, pe0)) {
        return std::nullopt;
      }
      return e.iotlb_.LookupHit4K(d.sid(), va);
    }
  };

  // DMAR off: identity (the region is normally disabled then anyway).
  if (!dmar_enabled_.load(std::memory_order_acquire)) [[unlikely]] {
    return {.target_as = system_as_,
            .iova = iova & ~kPageMask4k,
            .translated_addr = iova & ~kPageMask4k,
            .addr_mask = kPageMask4k,
            .perm = memory::kIommuReadWrite};
  }
  // IOTLB hit: no permission check and so no fault, as QEMU 7.2 (the
  // access then fails on the cached permissions alone). A 4K hit completes
  // inline here (Iotlb::LookupHit4K counts it); anything else goes to the
  // slow path, which looks up again and counts the hit or miss there.
  // (Scalable mode checks the PASID entry first, above.)
  if (std::optional<IotlbEntry> hit =
          (root_.load(std::memory_order_relaxed) & kRootScalable)
              ? Scalable::FastHit(*this, dev, iova)
              : iotlb_.LookupHit4K(dev.sid(), iova);
      hit.has_value()) [[likely]] {
    return {.target_as = system_as_,
            .iova = iova & ~kPageMask4k,
            .translated_addr = hit->page_base,
            .addr_mask = kPageMask4k,
            .perm = hit->perm};
  }
  return SlowPath::Run(*this, dev, iova, access);
}

ContextLookup VtdEngine::GetContext(VtdDevice& dev) {
  const uint8_t bus = dev.as().bus();
  const uint8_t devfn = dev.as().devfn();
  std::optional<CachedContext> c = context_cache_.Lookup(bus, devfn);
  if (c.has_value() && !IsSmCachedContext(*c)) {
    VIOMMU_TRACE(vtd_iotlb_cc_hit, bus, devfn, c->hi, c->lo);
    return ContextLookup{.fault = std::nullopt,
                         .entry = ContextEntry{.lo = c->lo, .hi = c->hi}};
  }
  const uint64_t epoch = context_cache_.epoch();
  ContextLookup r = ReadContext(dev, ram_);
  VIOMMU_TRACE(vtd_iotlb_cc_miss, bus, devfn,
               r.ok() ? 0u : static_cast<unsigned>(*r.fault));
  // Only good entries are cached (QEMU fills the cache after the checks).
  if (r.ok()) {
    context_cache_.InsertIfCurrent(epoch, bus, devfn,
                                   CachedContext{r.entry.lo, r.entry.hi});
  }
  return r;
}

ContextLookup VtdEngine::ReadContext(const VtdDevice& dev) {
  return ReadContext(dev, mem_);
}

ContextLookup VtdEngine::ReadContext(const VtdDevice& dev, GuestMemory& mem) {
  const uint64_t root = root_.load(std::memory_order_acquire);
  if (root & kRootScalable) [[unlikely]] {
    SmLookup sm = LookupScalable(mem, cfg_, root & ~kRootScalable,
                                 dev.as().bus(), dev.as().devfn());
    return ContextLookup{.fault = sm.fault, .entry = sm.effective};
  }
  return LookupContext(mem, cfg_, root, dev.as().bus(), dev.as().devfn());
}

void VtdEngine::ReportFault(uint16_t sid, FaultReason reason, bool fpd,
                            uint64_t addr, bool is_write, uint16_t pasid_value,
                            bool pasid_present) {
  faults_.fetch_add(1, std::memory_order_relaxed);
  const auto code = static_cast<unsigned>(reason);
  VIOMMU_TRACE(vtd_dmar_fault, sid, addr, is_write, code, fpd);
  VIOMMU_LOG_GUEST_ERROR(
      "vtd: DMA %s fault: sid 0x%04x addr 0x%x reason 0x%x%s",
      is_write ? "write" : "read", sid, addr, code, fpd ? " (FPD set)" : "");
  if (fpd && IsQualifiedFault(reason)) return;  // suppressed by FPD
  iommu_->RecordFault(sid, reason, addr, is_write, pasid_value, pasid_present);
}

}  // namespace viommu::vtd
