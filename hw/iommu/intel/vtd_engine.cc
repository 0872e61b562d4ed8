// The engine's control side: device address spaces, the Observer entry
// points, notifier flags and replay.
#include "viommu/hw/iommu/vtd_engine.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "hw/iommu/intel/vtd_device.h"
#include "viommu/util/trace.h"

namespace viommu::vtd {

VtdEngine::VtdEngine(IntelIommu* iommu, memory::MemorySystem* sys,
                     memory::AddressSpace* system_as, VtdSharedRegions shared)
    : iommu_(iommu),
      sys_(sys),
      system_as_(system_as),
      shared_(std::move(shared)),
      cfg_(TableConfig::FromProperties(iommu->properties())),
      mem_(system_as),
      remapper_(iommu, &mem_,
                [this](uint16_t sid, FaultReason reason, uint16_t index) {
                  faults_.fetch_add(1, std::memory_order_relaxed);
                  iommu_->RecordInterruptFault(sid, reason, index);
                }),
      queue_(iommu, &mem_, this) {
  shared_.ir_window->set_remapper(&remapper_);
}

VtdEngine::~VtdEngine() { shared_.ir_window->set_remapper(nullptr); }

std::shared_ptr<memory::MemoryRegion> VtdEngine::DeviceRoot(uint8_t bus,
                                                            uint8_t devfn) {
  const uint16_t sid = static_cast<uint16_t>(bus << 8 | devfn);
  auto it = devices_.find(sid);
  if (it == devices_.end()) {
    auto dev = std::make_unique<VtdDevice>(this, sys_, shared_, bus, devfn);
    it = devices_.emplace(sid, std::move(dev)).first;
    SwitchAddressSpace(*it->second);
  }
  return it->second->as().root();
}

VtdAddressSpace* VtdEngine::FindAddressSpace(uint8_t bus, uint8_t devfn) const {
  auto it = devices_.find(static_cast<uint16_t>(bus << 8 | devfn));
  return it == devices_.end() ? nullptr : &it->second->as();
}

VtdEngineStats VtdEngine::stats() const {
  return {.walks = walks_.load(std::memory_order_relaxed),
          .faults = faults_.load(std::memory_order_relaxed),
          .syncs = syncs_};
}

void VtdEngine::SwitchAddressSpace(VtdDevice& dev) {
  bool use_iommu = dmar_enabled_.load(std::memory_order_relaxed);
  if (use_iommu) {
    // QEMU's vtd_as_pt_enabled: a lookup error keeps the IOMMU (the DMA
    // then faults).
    ContextLookup ctx = ReadContext(dev);
    if (ctx.ok() &&
        ctx.entry.translation_type() == ContextEntry::kTtPassThrough) {
      use_iommu = false;
    }
  }
  VIOMMU_TRACE(vtd_switch_address_space, dev.as().DeviceName(), use_iommu);
  dev.as().SetUseIommu(use_iommu);
}

void VtdEngine::SwitchAll() {
  memory::MemorySystem::Transaction txn(sys_);
  for (auto& [sid, dev] : devices_) SwitchAddressSpace(*dev);
}

absl::Status VtdEngine::NotifyFlagChanged(VtdDevice& dev,
                                          memory::NotifierFlags old_flags,
                                          memory::NotifierFlags new_flags) {
  const Properties& p = iommu_->properties();
  if (p.snoop_control && new_flags != memory::kNotifyNone) {
    // As 7.2: a shadow (VFIO, vhost) cannot carry the SNP bit of a guest
    // mapping, so no notifier may watch a snoop-control unit.
    return absl::FailedPreconditionError(absl::StrCat(
        "device ", dev.as().DeviceName(),
        " cannot be shadowed with snoop control: set snoop-control=off on "
        "intel-iommu"));
  }
  if ((new_flags & memory::kNotifyMap) && !p.caching_mode) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device ", dev.as().DeviceName(),
        " requires caching mode: set caching-mode=on on intel-iommu"));
  }
  if ((new_flags & memory::kNotifyDevIotlbUnmap) && !p.device_iotlb) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device ", dev.as().DeviceName(),
        " requires device IOTLB: set device-iotlb=on on intel-iommu"));
  }
  dev.set_notifier_flags(new_flags);
  auto pos = std::lower_bound(
      iotlb_event_devices_.begin(), iotlb_event_devices_.end(), dev.sid(),
      [](const VtdDevice* d, uint16_t sid) { return d->sid() < sid; });
  const bool listed = pos != iotlb_event_devices_.end() && *pos == &dev;
  if ((new_flags & memory::kNotifyIotlbEvents) && !listed) {
    iotlb_event_devices_.insert(pos, &dev);
  } else if (!(new_flags & memory::kNotifyIotlbEvents) && listed) {
    iotlb_event_devices_.erase(pos);
  }
  const bool had_map = old_flags & memory::kNotifyMap;
  const bool has_map = new_flags & memory::kNotifyMap;
  if (has_map && !had_map) {
    // The first MAP notifier is not on the chain yet: the sync fills the
    // shadow silently, and Replay hands it to the new notifier.
    SyncDevice(dev);
  } else if (had_map && !has_map) {
    // Nobody is told MAPs any more: forget them without events.
    struct Drop final : ShadowEmitter {
      void MappingChanged(Iova, uint64_t,
                          const std::optional<ShadowTranslation>&,
                          const std::optional<ShadowTranslation>&) override {}
    } drop;
    dev.shadow().UnmapAll(drop);
  }
  return absl::OkStatus();
}

absl::Status VtdEngine::Replay(VtdDevice& dev, int /*idx*/,
                               memory::ReplaySink emit) {
  // The shadow is what every MAP notifier of this device has been told;
  // the new one gets the same, in O(mappings).
  uint64_t n = 0;
  dev.shadow().ForEach(Range::Full(), [&](const memory::IommuTlbEntry& e) {
    memory::IommuTlbEntry out = e;
    out.target_as = system_as_;
    emit(out);
    ++n;
  });
  VIOMMU_TRACE(vtd_replay, dev.as().DeviceName(), n);
  return absl::OkStatus();
}

// --- Observer ---

void VtdEngine::OnRootTableChanged(uint64_t root) {
  root_.store(root | (iommu_->root_scalable() ? kRootScalable : 0),
              std::memory_order_release);
  FlushCaches();
  RefreshAll(/*resync=*/true);
}

void VtdEngine::OnTranslationEnabled(bool enabled) {
  dmar_enabled_.store(enabled, std::memory_order_release);
  FlushCaches();
  RefreshAll(/*resync=*/true);
}

void VtdEngine::OnContextInvalidate(ContextGranularity granularity,
                                    uint16_t did, uint16_t sid, uint8_t fm) {
  switch (granularity) {
    case ContextGranularity::kGlobal:
      VIOMMU_TRACE(vtd_inv_desc_cc_global);
      InvalidateContextAll();
      break;
    case ContextGranularity::kDomain:  // QEMU 7.2: treated as global
      VIOMMU_TRACE(vtd_inv_desc_cc_domain, did);
      InvalidateContextAll();
      break;
    case ContextGranularity::kDevice:
      VIOMMU_TRACE(vtd_inv_desc_cc_device, sid, fm);
      InvalidateContextDevice(sid, fm);
      break;
    case ContextGranularity::kInvalid:
      break;
  }
}

void VtdEngine::OnIotlbInvalidate(IotlbGranularity granularity, uint16_t did,
                                  uint64_t addr, uint8_t am, bool /*ih*/) {
  InvalidateIotlbAndSync(granularity, did, addr, am);
}

void VtdEngine::OnQueueTailWritten(uint32_t tail) {
  VIOMMU_TRACE(vtd_inv_qi_tail, tail);
  queue_.Drain();
}

// --- InvalidationSink ---

void VtdEngine::InvalidateContext(ContextGranularity g, uint16_t did,
                                  uint16_t sid, uint8_t fm) {
  OnContextInvalidate(g, did, sid, fm);
}

void VtdEngine::InvalidateIotlb(IotlbGranularity g, uint16_t did, Iova addr,
                                uint8_t am, bool /*ih*/) {
  InvalidateIotlbAndSync(g, did, addr, am);
}

void VtdEngine::InvalidateDeviceIotlb(uint16_t sid, Iova addr,
                                      uint64_t size_mask) {
  VIOMMU_TRACE(vtd_inv_desc_dev_iotlb, sid, addr, size_mask);
  auto it = devices_.find(sid);
  if (it == devices_.end()) return;
  VtdDevice& dev = *it->second;
  if (!(dev.notifier_flags() & memory::kNotifyDevIotlbUnmap)) return;
  dev.as().notifiers()->Notify(
      0, memory::IommuEvent{.type = memory::IommuEventType::kDevIotlbUnmap,
                            .entry = {.target_as = system_as_,
                                      .iova = addr,
                                      .translated_addr = 0,
                                      .addr_mask = size_mask,
                                      .perm = memory::kIommuNone}});
}

void VtdEngine::InvalidateInterruptEntries(bool global, uint16_t index,
                                           uint8_t index_mask) {
  VIOMMU_TRACE(vtd_inv_desc_iec, global, index, index_mask);
  if (global) {
    remapper_.InvalidateAll();
  } else {
    remapper_.InvalidateEntries(index, index_mask);
  }
}

void VtdEngine::OnInterruptRemapTableChanged(uint64_t /*irta*/) {
  remapper_.InvalidateAll();
}

void VtdEngine::OnReset() {
  dmar_enabled_.store(false, std::memory_order_release);
  root_.store(0, std::memory_order_release);
  FlushCaches();
  remapper_.InvalidateAll();
  RefreshAll(/*resync=*/false);
}

}  // namespace viommu::vtd
