// Host IOMMU devices (passthrough functions) behind VT-d: the checks QEMU's
// vtd_dev_set_iommu_device / vtd_check_hiod make, with viommu's wording.
#include "absl/strings/str_format.h"
#include "viommu/hw/iommu/vtd_engine.h"

namespace viommu::vtd {
namespace {

uint16_t Sid(uint8_t bus, uint8_t devfn) {
  return static_cast<uint16_t>(bus << 8 | devfn);
}

}  // namespace

absl::Status VtdEngine::SetHostIommuDevice(
    uint8_t bus, uint8_t devfn, const devcore::HostIommuDevice& hiod) {
  const Properties& p = iommu_->properties();
  if (!p.caching_mode) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: a passthrough device behind intel-iommu needs caching-mode=on "
        "(intel-iommu has caching-mode=off, so the guest's new mappings "
        "would never reach the host IOMMU)",
        hiod.name));
  }
  if (hiod.aw_bits < p.aw_bits) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: intel-iommu aw-bits=%d is wider than the host IOMMU address "
        "width (%d bits); use aw-bits=%d",
        hiod.name, p.aw_bits, hiod.aw_bits, hiod.aw_bits >= 48 ? 48 : 39));
  }
  const uint16_t sid = Sid(bus, devfn);
  if (host_devices_.contains(sid)) {
    return absl::AlreadyExistsError(
        absl::StrFormat("%s: %02x:%02x.%x already has a host IOMMU device",
                        hiod.name, bus, devfn >> 3, devfn & 7));
  }
  host_devices_.emplace(sid, hiod);
  return absl::OkStatus();
}

void VtdEngine::UnsetHostIommuDevice(uint8_t bus, uint8_t devfn) {
  host_devices_.erase(Sid(bus, devfn));
}

const devcore::HostIommuDevice* VtdEngine::HostIommuDeviceOf(
    uint8_t bus, uint8_t devfn) const {
  auto it = host_devices_.find(Sid(bus, devfn));
  return it == host_devices_.end() ? nullptr : &it->second;
}

}  // namespace viommu::vtd
