// viommu/vfio/vfio_status.h — absl::Status for failed host calls (STYLE
// rule 10): the errno, the operation and its key arguments.
//
//   int rc = backend->Ioctl(fd, uapi::kVfioIommuMapDma, AsArg(&map));
//   if (rc < 0) return HostCallError(rc, "VFIO_IOMMU_MAP_DMA",
//                                    absl::StrFormat("iova=0x%x", iova));
//   ...
//   if (StatusErrno(status) == EINVAL) { /* try the next container */ }
//
// Thread-safety: pure functions.
#ifndef VIOMMU_VFIO_VFIO_STATUS_H_
#define VIOMMU_VFIO_VFIO_STATUS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace viommu::vfio {

// A Status whose code follows errno (absl::ErrnoToStatusCode), whose
// message reads "OP(ARGS): strerror (errno N)", and which carries N as a
// payload for StatusErrno(). `rc` may be -errno or errno.
// REQUIRES: rc != 0.
[[nodiscard]] absl::Status HostCallError(int rc, absl::string_view op,
                                         absl::string_view args);

// The errno carried by a HostCallError status; nullopt for any other.
std::optional<int> StatusErrno(const absl::Status& status);

// Appends context to a status, keeping its code and payloads.
[[nodiscard]] absl::Status Annotate(const absl::Status& status,
                                    absl::string_view context);

}  // namespace viommu::vfio

#endif  // VIOMMU_VFIO_VFIO_STATUS_H_
