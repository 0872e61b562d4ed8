// Reading a vfio-pci device fd's description: DEVICE_GET_INFO,
// GET_REGION_INFO, GET_IRQ_INFO and the config region (the first steps of
// QEMU's vfio_populate_device, as behaviour; not its code).
#include "viommu/system/vfio_pci_host_info.h"

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace viommu::system {
namespace {

namespace uapi = vfio::uapi;

constexpr uint32_t kMinConfigLen = 64;  // the type-0 header

absl::Status OutOfProtocol(int fd, std::string_view what) {
  return absl::DataLossError(
      absl::StrFormat("vfio device fd %d: backend answer out of protocol: %s",
                      fd, std::string(what)));
}

absl::StatusOr<VfioRegionInfo> ReadRegionInfo(vfio::HostBackend& backend,
                                              int fd, uint32_t index) {
  uapi::vfio_region_info ri{};
  ri.argsz = sizeof(ri);
  ri.index = index;
  const int rc =
      backend.Ioctl(fd, uapi::kVfioDeviceGetRegionInfo, vfio::AsArg(&ri));
  if (rc < 0) {
    return VfioHostCallError(rc, "VFIO_DEVICE_GET_REGION_INFO",
                             absl::StrFormat("fd=%d, index=%u", fd, index));
  }
  if (ri.index != index) {
    return OutOfProtocol(
        fd, absl::StrFormat("GET_REGION_INFO(index=%u) answered index %u",
                            index, ri.index));
  }
  if (ri.argsz < sizeof(ri)) {
    return OutOfProtocol(
        fd, absl::StrFormat("GET_REGION_INFO(index=%u) shrank argsz to %u",
                            index, ri.argsz));
  }
  if (ri.size != 0 && ri.offset + ri.size < ri.offset) {
    return OutOfProtocol(
        fd, absl::StrFormat("region %u offset 0x%x + size 0x%x overflows",
                            index, ri.offset, ri.size));
  }
  VfioRegionInfo out;
  out.present = ri.size != 0;
  out.flags = ri.flags;
  out.size = ri.size;
  out.offset = ri.offset;
  // A larger argsz means a capability chain (sparse mmap areas, ...); we
  // use the region whole, so it is only noted.
  out.has_caps = ri.argsz > sizeof(ri);
  return out;
}

absl::StatusOr<VfioIrqInfo> ReadIrqInfo(vfio::HostBackend& backend, int fd,
                                        uint32_t index) {
  uapi::vfio_irq_info ii{};
  ii.argsz = sizeof(ii);
  ii.index = index;
  const int rc =
      backend.Ioctl(fd, uapi::kVfioDeviceGetIrqInfo, vfio::AsArg(&ii));
  if (rc < 0) {
    return VfioHostCallError(rc, "VFIO_DEVICE_GET_IRQ_INFO",
                             absl::StrFormat("fd=%d, index=%u", fd, index));
  }
  if (ii.index != index || ii.argsz < sizeof(ii)) {
    return OutOfProtocol(
        fd, absl::StrFormat("GET_IRQ_INFO(index=%u) answered index %u argsz %u",
                            index, ii.index, ii.argsz));
  }
  return VfioIrqInfo{.flags = ii.flags, .count = ii.count};
}

}  // namespace

absl::Status VfioHostCallError(int64_t rc, std::string_view op,
                               std::string_view args) {
  const int err = static_cast<int>(rc < 0 ? -rc : rc);
  absl::Status s(absl::ErrnoToStatusCode(err),
                 absl::StrCat(std::string(op), "(", std::string(args),
                              "): ", std::strerror(err), " (errno ", err, ")"));
  s.SetPayload("viommu.dev/errno", absl::Cord(absl::StrCat(err)));
  return s;
}

absl::StatusOr<VfioPciHostInfo> ReadVfioPciHostInfo(vfio::HostBackend& backend,
                                                    int fd) {
  VfioPciHostInfo info;
  uapi::vfio_device_info di{};
  di.argsz = sizeof(di);
  const int rc = backend.Ioctl(fd, uapi::kVfioDeviceGetInfo, vfio::AsArg(&di));
  if (rc < 0) {
    return VfioHostCallError(rc, "VFIO_DEVICE_GET_INFO",
                             absl::StrFormat("fd=%d", fd));
  }
  if (di.argsz < sizeof(di)) {
    return OutOfProtocol(
        fd, absl::StrFormat("GET_INFO shrank argsz to %u", di.argsz));
  }
  if (!(di.flags & uapi::kDeviceFlagsPci)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "vfio device fd %d is not a vfio-pci device (flags 0x%x)", fd,
        di.flags));
  }
  if (di.num_regions <= uapi::kPciConfigRegionIndex) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "vfio device fd %d has %u regions: no config region (index %u)", fd,
        di.num_regions, uapi::kPciConfigRegionIndex));
  }
  info.device_flags = di.flags;
  info.num_regions = di.num_regions;
  info.num_irqs = di.num_irqs;

  // BARs and config only. The ROM is not exposed, and vfio-pci answers
  // -EINVAL for the VGA region of a function without VGA (QEMU asks only
  // with x-vga); device-specific regions (index >= 9) are not used.
  for (uint32_t i = 0; i <= uapi::kPciConfigRegionIndex; ++i) {
    if (i == uapi::kPciRomRegionIndex) continue;
    absl::StatusOr<VfioRegionInfo> ri = ReadRegionInfo(backend, fd, i);
    if (!ri.ok()) return ri.status();
    info.regions[i] = *ri;
  }
  if (uapi::kPciIntxIrqIndex < di.num_irqs) {
    absl::StatusOr<VfioIrqInfo> ii =
        ReadIrqInfo(backend, fd, uapi::kPciIntxIrqIndex);
    if (!ii.ok()) return ii.status();
    info.intx = *ii;
  }
  if (uapi::kPciMsiIrqIndex < di.num_irqs) {
    absl::StatusOr<VfioIrqInfo> ii =
        ReadIrqInfo(backend, fd, uapi::kPciMsiIrqIndex);
    if (!ii.ok()) return ii.status();
    info.msi = *ii;
  }

  const VfioRegionInfo& cfg = info.regions[uapi::kPciConfigRegionIndex];
  if (cfg.size < kMinConfigLen || !(cfg.flags & uapi::kRegionInfoFlagRead)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "vfio device fd %d: config region of %u bytes (flags 0x%x) is not a "
        "readable PCI config space",
        fd, cfg.size, cfg.flags));
  }
  const uint32_t len = cfg.size < info.config.size()
                           ? static_cast<uint32_t>(cfg.size)
                           : static_cast<uint32_t>(info.config.size());
  const int64_t n = backend.Pread(fd, info.config.data(), len, cfg.offset);
  if (n < 0) {
    return VfioHostCallError(
        n, "pread",
        absl::StrFormat("fd=%d, config, len=%u, offset=0x%x", fd, len,
                        cfg.offset));
  }
  if (n != len) {
    return OutOfProtocol(
        fd, absl::StrFormat("config pread returned %d of %u", n, len));
  }
  info.config_len = len;
  return info;
}

}  // namespace viommu::system
