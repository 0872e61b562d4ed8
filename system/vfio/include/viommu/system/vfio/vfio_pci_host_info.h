// viommu/system/vfio/vfio_pci_host_info.h — what a vfio-pci device fd tells
// about its host PCI function: DEVICE_GET_INFO, the GET_REGION_INFO of
// BAR0..BAR5 and the config region, the INTx and MSI GET_IRQ_INFO, and
// the first 256 bytes of the config region (index 7, read with pread).
//
//   VIOMMU_ASSIGN_OR_RETURN(VfioPciHostInfo info,
//                           ReadVfioPciHostInfo(backend, device_fd));
//   uint64_t bar0_size = info.regions[0].size;
//
// GET_REGION_INFO follows the argsz protocol: an answer that wants a
// larger argsz is asked again with that much room, and its capability
// chain is walked for the sparse-mmap areas. Every answer is
// bounds-checked (argsz, index echo, offset + size overflow, capability
// headers and areas inside the answer, a chain that only moves forward,
// config length); nothing here aborts. Errors from a host call
// carry the errno (absl::ErrnoToStatusCode code, "(errno N)" in the message
// and the "viommu.dev/errno" payload), the operation and its arguments.
//
// Threading: the backend's (one control context).
#ifndef VIOMMU_SYSTEM_VFIO_VFIO_PCI_HOST_INFO_H_
#define VIOMMU_SYSTEM_VFIO_VFIO_PCI_HOST_INFO_H_

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "viommu/vfio/host/host_backend.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::system {

// A part of a region that may be mmap'd, relative to the region.
struct VfioMmapArea {
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct VfioRegionInfo {
  bool present = false;  // size != 0
  uint32_t flags = 0;    // uapi::kRegionInfoFlag*
  uint64_t size = 0;
  uint64_t offset = 0;    // file offset on the device fd
  bool has_caps = false;  // the first answer asked for a larger argsz
  // With the MMAP flag: the sparse-mmap capability's areas (empty areas
  // dropped), or the whole region without one. Empty without MMAP.
  std::vector<VfioMmapArea> mmap_areas;
};

struct VfioIrqInfo {
  uint32_t flags = 0;  // uapi::kIrqInfo*
  uint32_t count = 0;  // 0: the index is absent
};

struct VfioPciHostInfo {
  uint32_t device_flags = 0;  // uapi::kDeviceFlags*
  uint32_t num_regions = 0;
  uint32_t num_irqs = 0;
  // Indexes 0..8 (BAR0..BAR5, ROM, config, VGA); only BAR0..BAR5 and the
  // config region are read (the ROM and VGA entries stay absent).
  std::array<VfioRegionInfo, vfio::uapi::kPciNumRegions> regions{};
  VfioIrqInfo intx;
  VfioIrqInfo msi;
  // The host's config bytes; those at and past config_len read as 0.
  std::array<uint8_t, 256> config{};
  uint32_t config_len = 0;  // 64..256
};

// Reads all of the above from the vfio-pci device `fd` of `backend`.
// Errors: the host call's errno code for a failed ioctl or pread
// ("VFIO_DEVICE_GET_REGION_INFO(fd=5, index=2): Invalid argument (errno
// 22)"); kFailedPrecondition when the device is not vfio-pci, has no
// config region or a config region under 64 bytes; kDataLoss when the
// backend answers out of protocol (wrong index, argsz below the struct or
// over 64 KiB or growing twice, offset + size overflowing, a malformed
// capability chain, a sparse-mmap area outside its region, a short config
// read).
[[nodiscard]] absl::StatusOr<VfioPciHostInfo> ReadVfioPciHostInfo(
    vfio::HostBackend& backend, int fd);

// The Status for a host call that returned `rc` (-errno, or errno):
// "<op>(<args>): <strerror> (errno N)" with the errno's status code and
// the "viommu.dev/errno" payload.
[[nodiscard]] absl::Status VfioHostCallError(int64_t rc, std::string_view op,
                                             std::string_view args);

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_VFIO_VFIO_PCI_HOST_INFO_H_
