// The DMA translation path (QEMU 7.2's vtd_iommu_translate and
// vtd_do_iommu_translate): caches, context lookup, second-level walk,
// fault reporting.
#include "hw/iommu/intel/vtd_device.h"
#include "viommu/hw/iommu/vtd_engine.h"
#include "viommu/hw/iommu/vtd_page_walk.h"

namespace viommu::vtd {
namespace {

constexpr uint64_t kPageMask4k = 0xfff;

}  // namespace

memory::IommuTlbEntry VtdEngine::Translate(VtdDevice& dev, Iova iova,
                                           memory::IommuPerm access) {
  memory::IommuTlbEntry out{.target_as = system_as_,
                            .iova = iova & ~kPageMask4k,
                            .translated_addr = iova & ~kPageMask4k,
                            .addr_mask = kPageMask4k,
                            .perm = memory::kIommuReadWrite};
  // DMAR off: identity (the region is normally disabled then anyway).
  if (!dmar_enabled_.load(std::memory_order_acquire)) return out;

  const bool is_write = (access & memory::kIommuWrite) != 0;
  const uint16_t sid = dev.sid();

  // IOTLB hit: no permission check and so no fault, as QEMU 7.2 (the
  // access then fails on the cached permissions alone).
  if (std::optional<IotlbEntry> hit = iotlb_.Lookup(sid, iova)) {
    out.addr_mask = hit->addr_mask;
    out.iova = iova & ~hit->addr_mask;
    out.translated_addr = hit->page_base;
    out.perm = hit->perm;
    return out;
  }
  // Read before the tables: an invalidation during the walk drops the fill.
  const uint64_t epoch = iotlb_.epoch();

  ContextLookup ctx = GetContext(dev);
  if (!ctx.ok()) {
    ReportFault(sid, *ctx.fault, ctx.entry.fpd(), iova, is_write);
    out.perm = memory::kIommuNone;
    return out;
  }
  // Pass-through: identity, 4K, RW, nothing cached (as QEMU).
  if (ctx.entry.translation_type() == ContextEntry::kTtPassThrough) return out;

  walks_.fetch_add(1, std::memory_order_relaxed);
  SlTranslation t = TranslateSl(mem_, cfg_, ctx.entry, iova, is_write);
  if (t.fault.has_value()) {
    ReportFault(sid, *t.fault, ctx.entry.fpd(), iova, is_write,
                IntelIommu::kNoPasidValue);
    out.addr_mask = t.addr_mask > 0 ? t.addr_mask : kPageMask4k;
    out.iova = iova & ~out.addr_mask;
    out.translated_addr = out.iova;
    out.perm = memory::kIommuNone;
    return out;
  }
  iotlb_.InsertIfCurrent(epoch, sid, iova,
                         IotlbEntry{.domain_id = ctx.entry.domain_id(),
                                    .page_base = t.page_base,
                                    .addr_mask = t.addr_mask,
                                    .perm = t.perm});
  out.addr_mask = t.addr_mask;
  out.iova = iova & ~t.addr_mask;
  out.translated_addr = t.page_base;
  // Deliberate: the stacked permissions for every access kind (see header).
  out.perm = t.perm;
  return out;
}

ContextLookup VtdEngine::GetContext(VtdDevice& dev) {
  const uint8_t bus = dev.as().bus();
  const uint8_t devfn = dev.as().devfn();
  if (std::optional<CachedContext> c = context_cache_.Lookup(bus, devfn)) {
    return ContextLookup{.fault = std::nullopt,
                         .entry = ContextEntry{.lo = c->lo, .hi = c->hi}};
  }
  const uint64_t epoch = context_cache_.epoch();
  ContextLookup r = ReadContext(dev);
  // Only good entries are cached (QEMU fills the cache after the checks).
  if (r.ok()) {
    context_cache_.InsertIfCurrent(epoch, bus, devfn,
                                   CachedContext{r.entry.lo, r.entry.hi});
  }
  return r;
}

ContextLookup VtdEngine::ReadContext(const VtdDevice& dev) {
  return LookupContext(mem_, cfg_, root_.load(std::memory_order_acquire),
                       dev.as().bus(), dev.as().devfn());
}

void VtdEngine::ReportFault(uint16_t sid, FaultReason reason, bool fpd,
                            uint64_t addr, bool is_write,
                            uint16_t pasid_value) {
  faults_.fetch_add(1, std::memory_order_relaxed);
  if (fpd && IsQualifiedFault(reason)) return;  // suppressed by FPD
  absl::MutexLock lock(&fault_mu_);
  iommu_->RecordFault(sid, reason, addr, is_write, pasid_value);
}

}  // namespace viommu::vtd
