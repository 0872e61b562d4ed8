// VirtioIommu: lifetime, the vIOMMU seam, resets, the configuration space
// and event delivery. Requests are in virtio_iommu_requests.cc, translation
// and MAP/UNMAP events in virtio_iommu_translate.cc.
#include "viommu/hw/iommu/virtio/virtio_iommu.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "hw/iommu/virtio/virtio_iommu_endpoint.h"
#include "viommu/util/le_bytes.h"
#include "viommu/util/status_macros.h"
#include "viommu/util/trace.h"

namespace viommu::virtio_iommu {

absl::StatusOr<std::unique_ptr<VirtioIommu>> VirtioIommu::Create(
    const absl::btree_map<std::string, std::string>& props,
    const hw::ViommuHost& host) {
  VIOMMU_ASSIGN_OR_RETURN(Properties p, ParseProperties(props));
  return std::unique_ptr<VirtioIommu>(new VirtioIommu(p, host));
}

VirtioIommu::VirtioIommu(Properties props, const hw::ViommuHost& host)
    : props_(props), host_(host), bypass_(props.boot_bypass) {}

VirtioIommu::~VirtioIommu() {
  // The regions go before the models they refer to (EndpointSpace keeps
  // that order itself); nothing is notified any more.
  memory::MemorySystem::Transaction txn(host_.memory);
  spaces_.clear();
}

std::shared_ptr<memory::MemoryRegion> VirtioIommu::DmaRoot(uint8_t bus,
                                                           uint8_t devfn) {
  const uint16_t sid = static_cast<uint16_t>(bus << 8 | devfn);
  auto it = spaces_.find(sid);
  if (it == spaces_.end()) {
    bool bypassed;
    {
      ReaderMutexLock l(&mu_);
      bypassed = BypassedLocked(sid);
    }
    it = spaces_
             .emplace(sid, std::make_unique<EndpointSpace>(
                               host_.memory, host_.system_root, bus, devfn,
                               this, bypassed))
             .first;
  }
  return it->second->root();
}

std::string VirtioIommu::DmaSpaceName(uint8_t /*bus*/, uint8_t devfn) const {
  return EndpointSpace::Name(devfn);
}

namespace {

// Narrows `g` to what host IOMMU `h` can map.
VirtioIommu::Geometry Narrow(VirtioIommu::Geometry g,
                             const devcore::HostIommuDevice& h) {
  if (h.page_size_mask != 0) g.page_size_mask &= h.page_size_mask;
  const std::vector<Range>& ranges = VirtioIommu::HostRanges(h);
  if (!ranges.empty()) {
    g.input_first = std::max(g.input_first, ranges.front().first);
    g.input_last = std::min(g.input_last, ranges.back().last);
  }
  return g;
}

}  // namespace

VirtioIommu::Geometry VirtioIommu::CurrentGeometry() const {
  Geometry g;
  for (const auto& [sid, h] : host_devices_) g = Narrow(g, h);
  return g;
}

absl::Status VirtioIommu::SetHostIommuDevice(
    uint8_t bus, uint8_t devfn, const devcore::HostIommuDevice& hiod) {
  const uint16_t sid = static_cast<uint16_t>(bus << 8 | devfn);
  // The geometry with this host instead of any earlier one at `sid`.
  Geometry g;
  for (const auto& [other, h] : host_devices_) {
    if (other != sid) g = Narrow(g, h);
  }
  g = Narrow(g, hiod);
  if (g.page_size_mask == 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: the host IOMMU's page sizes 0x%x share none with "
        "virtio-iommu's page_size_mask 0x%x",
        hiod.name, hiod.page_size_mask, CurrentGeometry().page_size_mask));
  }
  if (g.input_first > g.input_last) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: the host IOMMU's valid IOVA ranges leave virtio-iommu no "
        "input range",
        hiod.name));
  }
  if (frozen_.has_value() && hiod.page_size_mask != 0) {
    // The driver maps in pages of the frozen granule: the host must too.
    const uint64_t granule =
        frozen_->page_size_mask & (~frozen_->page_size_mask + 1);
    if ((hiod.page_size_mask & granule) == 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s: the host IOMMU's page sizes 0x%x do not include the granule "
          "0x%x the virtio-iommu driver already uses",
          hiod.name, hiod.page_size_mask, granule));
    }
  }
  // Kept for PROBE (the host's reserved regions and aperture holes), MAP
  // checks and, until FEATURES_OK, the config's geometry.
  host_devices_[sid] = hiod;
  return absl::OkStatus();
}

void VirtioIommu::UnsetHostIommuDevice(uint8_t bus, uint8_t devfn) {
  host_devices_.erase(static_cast<uint16_t>(bus << 8 | devfn));
}

void VirtioIommu::Reset() {
  VIOMMU_TRACE(virtio_iommu_system_reset, props_.boot_bypass ? 1 : 0);
  {
    MutexLock l(&mu_);
    for (const auto& ep : endpoints_) DetachLocked(ep.first);
    endpoints_.clear();
    domains_.clear();
    views_dirty_ = true;
    bypass_ = props_.boot_bypass;
  }
  frozen_.reset();
  Flush();
}

void VirtioIommu::DeviceReset() {
  VIOMMU_TRACE(virtio_iommu_device_reset);
  frozen_.reset();  // the next driver negotiates again
  {
    MutexLock l(&mu_);
    for (const auto& ep : endpoints_) DetachLocked(ep.first);
    endpoints_.clear();
    domains_.clear();
    views_dirty_ = true;
  }
  Flush();
}

void VirtioIommu::ReadConfig(std::span<uint8_t> config) const {
  if (config.size() < kConfigSize) return;
  auto at = [&](ConfigOffset o) {
    return config.data() + static_cast<uint32_t>(o);
  };
  const Geometry g = frozen_.value_or(CurrentGeometry());
  StoreLe(at(ConfigOffset::kPageSizeMask), g.page_size_mask, 8);
  StoreLe(at(ConfigOffset::kInputRangeStart), g.input_first, 8);
  StoreLe(at(ConfigOffset::kInputRangeEnd), g.input_last, 8);
  StoreLe(at(ConfigOffset::kDomainRangeStart), 0, 4);
  StoreLe(at(ConfigOffset::kDomainRangeEnd), 0xffffffff, 4);
  StoreLe(at(ConfigOffset::kProbeSize), kProbeSize, 4);
  *at(ConfigOffset::kBypass) = bypass() ? 1 : 0;
  at(ConfigOffset::kBypass)[1] = 0;
  at(ConfigOffset::kBypass)[2] = 0;
  at(ConfigOffset::kBypass)[3] = 0;
}

absl::Status VirtioIommu::WriteBypass(uint8_t bypass_byte,
                                      bool bypass_config_negotiated) {
  {
    MutexLock l(&mu_);
    if (bypass_byte == (bypass_ ? 1 : 0)) return absl::OkStatus();
    if (!bypass_config_negotiated) {
      return absl::FailedPreconditionError("cannot set config.bypass");
    }
    if (bypass_byte > 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid config.bypass value '", bypass_byte, "'"));
    }
    bypass_ = bypass_byte == 1;
    views_dirty_ = true;
  }
  VIOMMU_TRACE(virtio_iommu_set_bypass, bypass_byte);
  Flush();
  return absl::OkStatus();
}

bool VirtioIommu::bypass() const {
  ReaderMutexLock l(&mu_);
  return bypass_;
}

std::optional<uint32_t> VirtioIommu::EndpointDomain(uint32_t endpoint) const {
  ReaderMutexLock l(&mu_);
  if (endpoint > 0xffff) return std::nullopt;
  auto it = endpoints_.find(static_cast<uint16_t>(endpoint));
  if (it == endpoints_.end()) return std::nullopt;
  return it->second;
}

bool VirtioIommu::EndpointExists(uint32_t endpoint) const {
  ReaderMutexLock l(&mu_);
  return endpoint <= 0xffff &&
         endpoints_.contains(static_cast<uint16_t>(endpoint));
}

bool VirtioIommu::DomainExists(uint32_t domain) const {
  ReaderMutexLock l(&mu_);
  return domains_.contains(domain);
}

std::vector<MappingInfo> VirtioIommu::DomainMappings(uint32_t domain) const {
  ReaderMutexLock l(&mu_);
  std::vector<MappingInfo> out;
  auto it = domains_.find(domain);
  if (it == domains_.end()) return out;
  for (const auto& [first, m] : it->second.mappings) {
    out.push_back({first, m.last, m.phys, m.flags});
  }
  return out;
}

std::optional<bool> VirtioIommu::EndpointBypassed(uint16_t sid) const {
  auto it = spaces_.find(sid);
  if (it == spaces_.end()) return std::nullopt;
  return it->second->bypassed();
}

memory::MemoryRegion* VirtioIommu::IommuRegion(uint16_t sid) const {
  auto it = spaces_.find(sid);
  return it == spaces_.end() ? nullptr : it->second->iommu_region();
}

bool VirtioIommu::BypassedLocked(uint16_t sid) const {
  auto ep = endpoints_.find(sid);
  if (ep == endpoints_.end() || !ep->second.has_value()) return bypass_;
  auto d = domains_.find(*ep->second);
  return d == domains_.end() ? bypass_ : d->second.bypass;
}

void VirtioIommu::ReportFault(uint8_t reason, uint32_t flags, uint16_t sid,
                              uint64_t addr) {
  std::array<uint8_t, kFaultSize> rec{};
  rec[0] = reason;
  StoreLe(&rec[4], flags, 4);
  StoreLe(&rec[8], sid, 4);
  StoreLe(&rec[16], addr, 8);
  const bool delivered = sink_ != nullptr && sink_->DeliverFault(rec);
  VIOMMU_TRACE(virtio_iommu_report_fault, reason, flags, sid, addr,
               delivered ? 1 : 0);
  if (delivered) {
    faults_delivered_.fetch_add(1, std::memory_order_relaxed);
  } else {
    faults_dropped_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace viommu::virtio_iommu
