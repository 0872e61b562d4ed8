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
    [[gnu::noinline]] static memory::IommuTlbEntry Run(VtdEngine& e,
                                                       VtdDevice& d, Iova va,
                                                       memory::IommuPerm acc) {
      memory::IommuTlbEntry out{.target_as = e.system_as_,
                                .iova = va & ~kPageMask4k,
                                .translated_addr = va & ~kPageMask4k,
                                .addr_mask = kPageMask4k,
                                .perm = memory::kIommuReadWrite};
      const bool is_write = (acc & memory::kIommuWrite) != 0;
      const uint16_t sid = d.sid();
      // Scalable mode: QEMU 7.2 reads the PASID directory and PASID entry
      // on every request, before the IOTLB (vtd_ce_get_pasid_fpd), so a
      // PASID-table fault wins over a cached translation. viommu reads the
      // whole chain fresh here (no context cache in scalable mode).
      std::optional<ContextLookup> fresh;
      uint64_t epoch = 0;
      if (e.root_.load(std::memory_order_acquire) & kRootScalable)
          [[unlikely]] {
        epoch = e.iotlb_.epoch();
        fresh = e.ReadContext(d);
        if (!fresh->ok()) {
          e.ReportFault(sid, *fresh->fault, fresh->entry.fpd(), va, is_write);
          out.perm = memory::kIommuNone;
          return out;
        }
      }
      // No permission check on a hit (see below); also 2M/1G hits.
      if (std::optional<IotlbEntry> hit = e.iotlb_.Lookup(sid, va)) {
        VIOMMU_TRACE(vtd_iotlb_page_hit, sid, va, hit->page_base,
                     hit->addr_mask);
        out.addr_mask = hit->addr_mask;
        out.iova = va & ~hit->addr_mask;
        out.translated_addr = hit->page_base;
        out.perm = hit->perm;
        return out;
      }
      // Read before the tables: an invalidation during the walk drops the
      // fill.
      if (!fresh.has_value()) epoch = e.iotlb_.epoch();

      ContextLookup ctx = fresh.has_value() ? *fresh : e.GetContext(d);
      if (!ctx.ok()) {
        e.ReportFault(sid, *ctx.fault, ctx.entry.fpd(), va, is_write);
        out.perm = memory::kIommuNone;
        return out;
      }
      // Pass-through: identity, 4K, RW, nothing cached (as QEMU).
      if (ctx.entry.translation_type() == ContextEntry::kTtPassThrough) {
        return out;
      }

      e.walks_.fetch_add(1, std::memory_order_relaxed);
      SlTranslation t = TranslateSl(e.mem_, e.cfg_, ctx.entry, va, is_write);
      if (t.fault.has_value()) {
        // Scalable mode: 7.2 reports the walk's faults with RID_PASID and
        // PP set; legacy: its "no PASID" value, PP clear.
        if (IsScalableEffective(ctx.entry)) [[unlikely]] {
          // And the interrupt range as 0x87 (qualified too).
          const FaultReason fr = *t.fault == FaultReason::kInterruptAddr
                                     ? FaultReason::kSmInterruptAddr
                                     : *t.fault;
          e.ReportFault(sid, fr, ctx.entry.fpd(), va, is_write,
                        static_cast<uint16_t>(EffectivePasid(ctx.entry)),
                        /*pasid_present=*/true);
        } else {
          e.ReportFault(sid, *t.fault, ctx.entry.fpd(), va, is_write,
                        IntelIommu::kNoPasidValue);
        }
        out.addr_mask = t.addr_mask > 0 ? t.addr_mask : kPageMask4k;
        out.iova = va & ~out.addr_mask;
        out.translated_addr = out.iova;
        out.perm = memory::kIommuNone;
        return out;
      }
      e.iotlb_.InsertIfCurrent(epoch, sid, va,
                               IotlbEntry{.domain_id = ctx.entry.domain_id(),
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
  // (Scalable mode checks the PASID entry first: slow path.)
  if (std::optional<IotlbEntry> hit =
          (root_.load(std::memory_order_relaxed) & kRootScalable)
              ? std::nullopt
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
  if (std::optional<CachedContext> c = context_cache_.Lookup(bus, devfn)) {
    VIOMMU_TRACE(vtd_iotlb_cc_hit, bus, devfn, c->hi, c->lo);
    return ContextLookup{.fault = std::nullopt,
                         .entry = ContextEntry{.lo = c->lo, .hi = c->hi}};
  }
  const uint64_t epoch = context_cache_.epoch();
  ContextLookup r = ReadContext(dev);
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
                            uint64_t addr, bool is_write,
                            uint16_t pasid_value, bool pasid_present) {
  faults_.fetch_add(1, std::memory_order_relaxed);
  const auto code = static_cast<unsigned>(reason);
  VIOMMU_TRACE(vtd_dmar_fault, sid, addr, is_write, code, fpd);
  VIOMMU_LOG_GUEST_ERROR("vtd: DMA %s fault: sid 0x%04x addr 0x%x reason 0x%x%s",
                         is_write ? "write" : "read", sid, addr, code,
                         fpd ? " (FPD set)" : "");
  if (fpd && IsQualifiedFault(reason)) return;  // suppressed by FPD
  iommu_->RecordFault(sid, reason, addr, is_write, pasid_value, pasid_present);
}

}  // namespace viommu::vtd
