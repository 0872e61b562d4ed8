// Reading a vfio-pci device fd's description: DEVICE_GET_INFO,
// GET_REGION_INFO, GET_IRQ_INFO and the config region (the first steps of
// QEMU's vfio_populate_device, as behaviour; not its code).
#include "viommu/system/vfio/vfio_pci_host_info.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace viommu::system {
namespace {

namespace uapi = vfio::uapi;

constexpr uint32_t kMinConfigLen = 64;  // the type-0 header
// Bigger GET_REGION_INFO answers are refused as out of protocol.
constexpr uint32_t kMaxRegionInfoSize = 64 * 1024;
// VFIO_REGION_INFO_CAP_SPARSE_MMAP (version 1): the header, nr_areas,
// reserved, then nr_areas {u64 offset, u64 size} (not in vfio_uapi.h).
constexpr uint16_t kRegionInfoCapSparseMmap = 1;
struct SparseMmapHeader {
  uapi::vfio_info_cap_header header;
  uint32_t nr_areas;
  uint32_t reserved;
};
static_assert(sizeof(SparseMmapHeader) == 16);

[[nodiscard]] absl::Status OutOfProtocol(int fd, std::string_view what) {
  return absl::DataLossError(
      absl::StrFormat("vfio device fd %d: backend answer out of protocol: %s",
                      fd, std::string(what)));
}

// One GET_REGION_INFO into `buf` (argsz = its size). Checks the answer's
// index, argsz floor and offset + size.
[[nodiscard]] absl::Status QueryRegionInfo(vfio::HostBackend& backend, int fd,
                                           uint32_t index,
                                           std::vector<uint64_t>& buf,
                                           uapi::vfio_region_info* ri) {
  std::memset(buf.data(), 0, buf.size() * sizeof(uint64_t));
  ri->argsz = static_cast<uint32_t>(buf.size() * sizeof(uint64_t));
  ri->index = index;
  std::memcpy(buf.data(), ri, sizeof(*ri));
  const int rc = backend.Ioctl(fd, uapi::kVfioDeviceGetRegionInfo,
                               vfio::AsArg(buf.data()));
  if (rc < 0) {
    return VfioHostCallError(rc, "VFIO_DEVICE_GET_REGION_INFO",
                             absl::StrFormat("fd=%d, index=%u", fd, index));
  }
  std::memcpy(ri, buf.data(), sizeof(*ri));
  if (ri->index != index) {
    return OutOfProtocol(
        fd, absl::StrFormat("GET_REGION_INFO(index=%u) answered index %u",
                            index, ri->index));
  }
  if (ri->argsz < sizeof(*ri)) {
    return OutOfProtocol(
        fd, absl::StrFormat("GET_REGION_INFO(index=%u) shrank argsz to %u",
                            index, ri->argsz));
  }
  if (ri->size != 0 && ri->offset + ri->size < ri->offset) {
    return OutOfProtocol(
        fd, absl::StrFormat("region %u offset 0x%x + size 0x%x overflows",
                            index, ri->offset, ri->size));
  }
  return absl::OkStatus();
}

// Walks the capability chain in `bytes` (the whole GET_REGION_INFO answer)
// for the sparse-mmap areas. Every header, area array and `next` is
// bounds-checked; `next` must move forward, so a chain cannot loop.
[[nodiscard]] absl::Status ParseRegionCaps(int fd, uint32_t index,
                                           const uint8_t* bytes, uint32_t len,
                                           uint32_t cap_offset,
                                           VfioRegionInfo* out) {
  uint32_t off = cap_offset;
  bool sparse = false;
  while (off != 0) {
    if (off < sizeof(uapi::vfio_region_info) || off % 4 != 0 ||
        uint64_t{off} + sizeof(uapi::vfio_info_cap_header) > len) {
      return OutOfProtocol(
          fd, absl::StrFormat("region %u capability at 0x%x outside the "
                              "%u-byte answer",
                              index, off, len));
    }
    uapi::vfio_info_cap_header hdr;
    std::memcpy(&hdr, bytes + off, sizeof(hdr));
    if (hdr.id == kRegionInfoCapSparseMmap && !sparse) {
      sparse = true;
      SparseMmapHeader sm;
      if (uint64_t{off} + sizeof(sm) > len) {
        return OutOfProtocol(
            fd, absl::StrFormat("region %u sparse-mmap capability cut "
                                "short",
                                index));
      }
      std::memcpy(&sm, bytes + off, sizeof(sm));
      if (uint64_t{off} + sizeof(sm) + uint64_t{sm.nr_areas} * 16 > len) {
        return OutOfProtocol(
            fd, absl::StrFormat("region %u: %u sparse-mmap areas overrun the "
                                "%u-byte answer",
                                index, sm.nr_areas, len));
      }
      out->mmap_areas.clear();
      for (uint32_t a = 0; a < sm.nr_areas; ++a) {
        VfioMmapArea area;
        std::memcpy(&area.offset, bytes + off + sizeof(sm) + 16 * a, 8);
        std::memcpy(&area.size, bytes + off + sizeof(sm) + 16 * a + 8, 8);
        if (area.size == 0) continue;
        if (area.offset + area.size < area.offset ||
            area.offset + area.size > out->size) {
          return OutOfProtocol(
              fd, absl::StrFormat("region %u sparse-mmap area 0x%x+0x%x "
                                  "outside its 0x%x bytes",
                                  index, area.offset, area.size, out->size));
        }
        out->mmap_areas.push_back(area);
      }
    }
    if (hdr.next != 0 && hdr.next <= off) {
      return OutOfProtocol(
          fd, absl::StrFormat("region %u capability chain goes back from "
                              "0x%x to 0x%x",
                              index, off, hdr.next));
    }
    off = hdr.next;
  }
  return absl::OkStatus();
}

// GET_REGION_INFO with the argsz protocol: when the answer wants a larger
// argsz (a capability chain), ask again with that much room, once.
[[nodiscard]] absl::StatusOr<VfioRegionInfo> ReadRegionInfo(
    vfio::HostBackend& backend, int fd, uint32_t index) {
  std::vector<uint64_t> buf(sizeof(uapi::vfio_region_info) / 8);
  uapi::vfio_region_info ri{};
  absl::Status st = QueryRegionInfo(backend, fd, index, buf, &ri);
  if (!st.ok()) return st;
  const bool wants_more = ri.argsz > sizeof(ri);
  if (wants_more && (ri.flags & uapi::kRegionInfoFlagCaps)) {
    if (ri.argsz > kMaxRegionInfoSize) {
      return OutOfProtocol(
          fd, absl::StrFormat("GET_REGION_INFO(index=%u) wants argsz %u", index,
                              ri.argsz));
    }
    buf.assign((ri.argsz + 7) / 8, 0);
    st = QueryRegionInfo(backend, fd, index, buf, &ri);
    if (!st.ok()) return st;
    if (ri.argsz > buf.size() * 8) {
      return OutOfProtocol(
          fd, absl::StrFormat("GET_REGION_INFO(index=%u) grew argsz again to "
                              "%u",
                              index, ri.argsz));
    }
  }
  VfioRegionInfo out;
  out.present = ri.size != 0;
  out.flags = ri.flags;
  out.size = ri.size;
  out.offset = ri.offset;
  out.has_caps = wants_more;
  if (ri.flags & uapi::kRegionInfoFlagMmap) {
    out.mmap_areas.push_back({.offset = 0, .size = ri.size});
  }
  if ((ri.flags & uapi::kRegionInfoFlagCaps) && ri.cap_offset != 0) {
    const uint32_t len =
        std::min<uint32_t>(ri.argsz, static_cast<uint32_t>(buf.size() * 8));
    st =
        ParseRegionCaps(fd, index, reinterpret_cast<const uint8_t*>(buf.data()),
                        len, ri.cap_offset, &out);
    if (!st.ok()) return st;
  }
  if (!(ri.flags & uapi::kRegionInfoFlagMmap)) out.mmap_areas.clear();
  return out;
}

[[nodiscard]] absl::StatusOr<VfioIrqInfo> ReadIrqInfo(
    vfio::HostBackend& backend, int fd, uint32_t index) {
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
