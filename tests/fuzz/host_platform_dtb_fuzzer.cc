// libFuzzer target for ParseHostPlatformDtb (the -object vfio-host-model
// dtb=FILE parser, docs/vfio-host-model.md): any input either parses or
// fails with kInvalidArgument, and whatever parses survives a round trip
// through HostPlatformToDtb unchanged. The seed corpus is
// corpus/host_platform_dtb (the default platform and the example .dts).
#include <cstdint>
#include <cstdlib>

#include "viommu/vfio/host/host_platform.h"
#include "viommu/vfio/host/host_platform_dtb.h"

namespace {

bool SamePlatform(const viommu::vfio::HostPlatform& a,
                  const viommu::vfio::HostPlatform& b) {
  if (a.pgsize_bitmap != b.pgsize_bitmap ||
      a.dma_entry_limit != b.dma_entry_limit ||
      a.devices.size() != b.devices.size()) {
    return false;
  }
  for (size_t i = 0; i < a.devices.size(); ++i) {
    const auto& x = a.devices[i];
    const auto& y = b.devices[i];
    if (!(x.address == y.address) || x.group != y.group ||
        x.aperture_bits != y.aperture_bits || x.reserved != y.reserved ||
        x.vendor_id != y.vendor_id || x.device_id != y.device_id ||
        x.bar2_size != y.bar2_size) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using viommu::vfio::HostPlatform;
  absl::StatusOr<HostPlatform> p =
      viommu::vfio::ParseHostPlatformDtb(absl::MakeConstSpan(data, size));
  if (!p.ok()) {
    if (p.status().code() != absl::StatusCode::kInvalidArgument) abort();
    return 0;
  }
  absl::StatusOr<std::vector<uint8_t>> blob =
      viommu::vfio::HostPlatformToDtb(*p);
  if (!blob.ok()) abort();  // what parsed must be writable
  absl::StatusOr<HostPlatform> again =
      viommu::vfio::ParseHostPlatformDtb(*blob);
  if (!again.ok() || !SamePlatform(*p, *again)) abort();
  return 0;
}
