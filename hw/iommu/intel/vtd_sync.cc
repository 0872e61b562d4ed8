// Invalidations and the shadow sync (QEMU 7.2's vtd_iotlb_*_invalidate,
// vtd_context_*_invalidate, vtd_sync_shadow_page_table and
// vtd_address_space_refresh_all), with ShadowMap's exact semantics.
#include <optional>

#include "absl/container/inlined_vector.h"
#include "hw/iommu/intel/vtd_device.h"
#include "viommu/hw/iommu/vtd_engine.h"
#include "viommu/hw/iommu/vtd_guest_memory.h"
#include "viommu/hw/iommu/vtd_page_walk.h"
#include "viommu/util/trace.h"

namespace viommu::vtd {
namespace {

bool HasMap(const VtdDevice& dev) {
  return dev.notifier_flags() & memory::kNotifyMap;
}
bool HasIotlbEvents(const VtdDevice& dev) {
  return dev.notifier_flags() & memory::kNotifyIotlbEvents;
}

// One UNMAP of [first, last] to every UNMAP notifier (cropped to each).
void NotifyUnmapRange(VtdDevice& dev, memory::AddressSpace* target,
                      uint64_t first, uint64_t last) {
  dev.as().notifiers()->Notify(
      0, memory::IommuEvent{.type = memory::IommuEventType::kUnmap,
                            .entry = {.target_as = target,
                                      .iova = first,
                                      .translated_addr = 0,
                                      .addr_mask = last - first,
                                      .perm = memory::kIommuNone}});
}

}  // namespace

void VtdEngine::FlushCaches() {
  iotlb_.InvalidateAll();
  context_cache_.InvalidateAll();
}

void VtdEngine::SyncDevice(VtdDevice& dev) {
  if (!HasIotlbEvents(dev)) return;
  ++syncs_;
  if (!HasMap(dev)) {
    // UNMAP-only consumers (caches of translations): drop everything.
    NotifyUnmapRange(dev, system_as_, 0, ~uint64_t{0});
    return;
  }
  NotifierChainsEmitter out(dev.as().notifiers(), system_as_);
  if (!dmar_enabled_.load(std::memory_order_relaxed)) {
    dev.shadow().UnmapAll(out);
    return;
  }
  BurstGuestMemory burst(mem_);
  ContextLookup ctx = ReadContext(dev, burst);
  if (!ctx.ok()) {
    // QEMU unmaps only for a non-present context; other errors leave the
    // shadow as it was.
    if (*ctx.fault == FaultReason::kContextEntryP) dev.shadow().UnmapAll(out);
    return;
  }
  if (ctx.entry.translation_type() == ContextEntry::kTtPassThrough) {
    dev.shadow().UnmapAll(out);  // the space runs on system memory
    return;
  }
  dev.shadow().Sync(
      Range::Full(),
      [&](const Range& r, WalkSink sink) {
        WalkSl(burst, cfg_, ctx.entry, r.first, r.last, sink);
      },
      out);
}

void VtdEngine::SyncRange(VtdDevice& dev, uint64_t first, uint64_t last,
                          const ContextLookup* ctx, GuestMemory* burst) {
  if (!HasIotlbEvents(dev)) return;
  ++syncs_;
  if (!HasMap(dev)) {
    NotifyUnmapRange(dev, system_as_, first, last);
    return;
  }
  std::optional<BurstGuestMemory> own_burst;
  if (burst == nullptr) burst = &own_burst.emplace(mem_);
  ContextLookup read;
  if (ctx == nullptr) {
    read = ReadContext(dev, *burst);
    ctx = &read;
  }
  if (!ctx->ok() ||
      ctx->entry.translation_type() == ContextEntry::kTtPassThrough) {
    return;
  }
  const ContextEntry& entry = ctx->entry;
  NotifierChainsEmitter out(dev.as().notifiers(), system_as_);
  dev.shadow().Sync(
      Range{first, last},
      [&](const Range& r, WalkSink sink) {
        WalkSl(*burst, cfg_, entry, r.first, r.last, sink);
      },
      out);
}

void VtdEngine::RefreshAll(bool resync) {
  // Unmap everything notified, switch every space, rebuild.
  for (auto& [sid, dev] : devices_) {
    if (HasMap(*dev)) {
      NotifierChainsEmitter out(dev->as().notifiers(), system_as_);
      dev->shadow().UnmapAll(out);
    } else if (HasIotlbEvents(*dev)) {
      NotifyUnmapRange(*dev, system_as_, 0, ~uint64_t{0});
    }
  }
  SwitchAll();
  if (!resync) return;
  for (auto& [sid, dev] : devices_) {
    if (HasMap(*dev)) SyncDevice(*dev);
  }
}

void VtdEngine::InvalidateContextAll() {
  context_cache_.InvalidateAll();
  RefreshAll(/*resync=*/true);
}

void VtdEngine::InvalidateContextDevice(uint16_t sid, uint8_t fm) {
  // FM: how many low devfn bits (function number bits) to ignore.
  static constexpr uint16_t kIgnore[4] = {0, 4, 6, 7};
  const uint16_t mask = static_cast<uint16_t>(~kIgnore[fm & 3]);
  context_cache_.InvalidateDevice(sid, fm);
  for (auto& [dsid, dev] : devices_) {
    if ((dsid & 0xff00) != (sid & 0xff00) ||
        ((dsid ^ sid) & 0xff & mask) != 0) {
      continue;
    }
    if (HasMap(*dev)) {
      NotifierChainsEmitter out(dev->as().notifiers(), system_as_);
      dev->shadow().UnmapAll(out);
    } else if (HasIotlbEvents(*dev)) {
      NotifyUnmapRange(*dev, system_as_, 0, ~uint64_t{0});
    }
    SwitchAddressSpace(*dev);
    if (HasMap(*dev)) SyncDevice(*dev);
  }
}

void VtdEngine::InvalidateIotlbAndSync(IotlbGranularity granularity,
                                       uint16_t did, uint64_t addr,
                                       uint8_t am) {
  switch (granularity) {
    case IotlbGranularity::kGlobal:
      VIOMMU_TRACE(vtd_inv_desc_iotlb_global);
      iotlb_.InvalidateAll();
      for (auto& [sid, dev] : devices_) SyncDevice(*dev);
      return;
    case IotlbGranularity::kDomain:
      VIOMMU_TRACE(vtd_inv_desc_iotlb_domain, did);
      iotlb_.InvalidateDomain(did);
      break;
    case IotlbGranularity::kPage:
      VIOMMU_TRACE(vtd_inv_desc_iotlb_pages, did, addr, am);
      iotlb_.InvalidatePage(did, addr, am);
      break;
    case IotlbGranularity::kInvalid:
      return;
  }
  const uint64_t size = uint64_t{4096} << am;
  const uint64_t first = addr & ~(size - 1);
  // A copy: a notifier may register or unregister while it is told
  // (SyncRange re-checks the flags; devices live as long as the engine).
  const absl::InlinedVector<VtdDevice*, 4> devices(iotlb_event_devices_.begin(),
                                                   iotlb_event_devices_.end());
  for (VtdDevice* dev : devices) {
    if (!HasIotlbEvents(*dev)) continue;
    // QEMU re-reads the context entry to match the domain. A PSI's few
    // reads go through ram_ (vtd_ram_window.h: the RAM ranges it last hit
    // stay remembered across PSIs, so no map is looked up or pinned per
    // PSI; ReadRam's answers, as a BurstGuestMemory's).
    ContextLookup ctx = ReadContext(*dev, ram_);
    if (!ctx.ok() || ctx.entry.domain_id() != did) continue;
    if (granularity == IotlbGranularity::kDomain) {
      SyncDevice(*dev);
    } else {
      SyncRange(*dev, first, first + size - 1, &ctx, &ram_);
    }
  }
}

}  // namespace viommu::vtd
