// viommu/vfio/host/host_platform_dtb.h — the device-tree side of
// HostPlatform: writing a platform as a flattened device tree blob and
// reading one from a file. ParseHostPlatformDtb (host_platform.h) reads a
// blob in memory. The binding is documented in docs/vfio-host-model.md.
//
//   VIOMMU_ASSIGN_OR_RETURN(std::vector<uint8_t> dtb,
//                           HostPlatformToDtb(DefaultHostPlatform()));
//   VIOMMU_ASSIGN_OR_RETURN(HostPlatform p, ParseHostPlatformDtb(dtb));
//   // p has the same devices, page sizes and entry limit as the default.
//
// Thread-safety: free functions without shared state; safe from any thread.
#ifndef VIOMMU_VFIO_HOST_HOST_PLATFORM_DTB_H_
#define VIOMMU_VFIO_HOST_HOST_PLATFORM_DTB_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "viommu/vfio/host/host_platform.h"

namespace viommu::vfio {

// Node and compatible names of the binding.
inline constexpr char kHostModelNodePath[] = "/vfio-host-model";
inline constexpr char kHostModelCompatible[] = "viommu,vfio-host-model";
inline constexpr char kHostDeviceCompatible[] = "viommu,vfio-host-edu";

// Writes `platform` as a blob with libfdt's sequential-write API, in the
// binding ParseHostPlatformDtb reads: parsing the result gives back an
// equal platform (reserved regions sorted by start). Every optional
// property is written, so the blob documents the defaults it relies on.
// Errors: kInvalidArgument if the platform would not parse back (the same
// checks as the parser: duplicate address, overlapping reserved regions,
// aperture bits outside 12..64, ...); kInternal for a libfdt failure.
[[nodiscard]] absl::StatusOr<std::vector<uint8_t>> HostPlatformToDtb(
    const HostPlatform& platform);

// Reads the file at `path` and parses it with ParseHostPlatformDtb.
// Errors: kNotFound / kPermissionDenied / kInvalidArgument for a file that
// cannot be read (the message has the path and strerror), a blob larger
// than 16 MiB (kInvalidArgument), and the parser's errors prefixed with the
// path.
[[nodiscard]] absl::StatusOr<HostPlatform> ReadHostPlatformDtbFile(
    std::string_view path);

}  // namespace viommu::vfio

#endif  // VIOMMU_VFIO_HOST_HOST_PLATFORM_DTB_H_
