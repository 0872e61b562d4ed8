#include "viommu/vfio/type1_container.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "vfio/type1_info.h"
#include "viommu/util/status_macros.h"
#include "viommu/vfio/host/vfio_uapi.h"
#include "viommu/vfio/vfio_status.h"

namespace viommu::vfio {
namespace {
// The kernel's default dma_entry_limit, used when DMA_AVAIL is absent.
constexpr uint64_t kDefaultDmaLimit = 65535;
// GET_INFO replies larger than this are refused (the kernel's are < 1 KiB).
constexpr uint32_t kMaxInfoSize = 64 * 1024;
}  // namespace

absl::StatusOr<Type1Group> Type1Container::OpenGroup(HostBackend* backend,
                                                     uint32_t group) {
  const std::string path = absl::StrCat("/dev/vfio/", group);
  Type1Group g;
  g.number = group;
  g.fd = BackendFd(backend, backend->Open(path));
  if (!g.fd.valid()) return HostCallError(g.fd.get(), "open", path);
  uapi::vfio_group_status st{.argsz = sizeof(st), .flags = 0};
  int rc = backend->Ioctl(g.fd.get(), uapi::kVfioGroupGetStatus, AsArg(&st));
  if (rc < 0) return HostCallError(rc, "VFIO_GROUP_GET_STATUS", path);
  if (!(st.flags & uapi::kGroupFlagsViable)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "vfio: group %u is not viable: bind every device in it to vfio-pci",
        group));
  }
  return g;
}

Type1Container::Type1Container(HostBackend* backend, memory::AddressSpace* as,
                               uint32_t id, ContainerOptions options)
    : VfioContainer(ContainerBackend::kType1, backend, as, id,
                    std::move(options)) {}

Type1Container::~Type1Container() { Shutdown(); }

absl::StatusOr<std::unique_ptr<Type1Container>> Type1Container::Create(
    HostBackend* backend, memory::AddressSpace* as, uint32_t id,
    Type1Group group, std::string device, ContainerOptions options) {
  std::unique_ptr<Type1Container> c(
      new Type1Container(backend, as, id, std::move(options)));
  absl::Status s = c->Setup(std::move(group), std::move(device));
  if (!s.ok()) return s;  // ~Type1Container undoes what Setup did
  return c;
}

absl::Status Type1Container::Setup(Type1Group group, std::string device) {
  HostBackend* b = host();
  fd_ = BackendFd(b, b->Open("/dev/vfio/vfio"));
  if (!fd_.valid()) return HostCallError(fd_.get(), "open", "/dev/vfio/vfio");
  int rc = b->Ioctl(fd_.get(), uapi::kVfioGetApiVersion, 0);
  if (rc < 0) return HostCallError(rc, "VFIO_GET_API_VERSION", "");
  if (rc != uapi::kVfioApiVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "vfio: API version %d, expected %d", rc, uapi::kVfioApiVersion));
  }
  for (unsigned long type : {uapi::kVfioType1v2Iommu, uapi::kVfioType1Iommu}) {
    if (b->Ioctl(fd_.get(), uapi::kVfioCheckExtension, type) > 0) {
      iommu_type_ = type;
      break;
    }
  }
  if (iommu_type_ == 0) {
    return absl::FailedPreconditionError(
        "vfio: VFIO_CHECK_EXTENSION: no type1 IOMMU support");
  }
  int cfd = fd_.get();
  rc = b->Ioctl(group.fd.get(), uapi::kVfioGroupSetContainer, AsArg(&cfd));
  if (rc < 0) {
    return HostCallError(
        rc, "VFIO_GROUP_SET_CONTAINER",
        absl::StrFormat("group=%u container fd=%d", group.number, cfd));
  }
  group.devices.push_back(device);
  groups_.push_back(std::move(group));
  AddDeviceName(std::move(device));
  rc = b->Ioctl(fd_.get(), uapi::kVfioSetIommu, iommu_type_);
  if (rc < 0) {
    return HostCallError(rc, "VFIO_SET_IOMMU",
                         absl::StrFormat("type=%u", iommu_type_));
  }
  VIOMMU_RETURN_IF_ERROR(ReadIovaInfo());
  unmap_all_ =
      b->Ioctl(fd_.get(), uapi::kVfioCheckExtension, uapi::kVfioUnmapAll) > 0;
  return StartListening();
}

absl::Status Type1Container::ReadIovaInfo() {
  HostBackend* b = host();
  // Start from the size the last reply needed: one ioctl per re-read.
  std::vector<uint8_t> buf(
      std::max<size_t>(info_argsz_, sizeof(uapi::vfio_iommu_type1_info)));
  for (int attempt = 0;; ++attempt) {
    std::fill(buf.begin(), buf.end(), 0);
    const uint32_t argsz = static_cast<uint32_t>(buf.size());
    std::memcpy(buf.data(), &argsz, sizeof(argsz));
    int rc = b->Ioctl(fd_.get(), uapi::kVfioIommuGetInfo, AsArg(buf.data()));
    if (rc < 0) {
      return HostCallError(rc, "VFIO_IOMMU_GET_INFO",
                           absl::StrFormat("argsz=%u", argsz));
    }
    uint32_t want = 0;
    std::memcpy(&want, buf.data(), sizeof(want));
    if (want <= argsz) break;
    if (want > kMaxInfoSize || attempt >= 3) {
      return absl::DataLossError(absl::StrFormat(
          "VFIO_IOMMU_GET_INFO: reply keeps growing (argsz %u after %d tries)",
          want, attempt + 1));
    }
    buf.resize(want);
  }
  info_argsz_ = static_cast<uint32_t>(buf.size());
  VIOMMU_ASSIGN_OR_RETURN(Type1Info info, ParseType1Info(buf));
  set_page_size_mask(info.pgsizes.value_or(host_page_size()));
  set_iova_ranges(info.iova_ranges.value_or(std::vector<Range>{}));
  set_dma_limit(info.dma_avail.has_value()
                    ? uint64_t{*info.dma_avail} + mappings().size()
                    : kDefaultDmaLimit);
  dirty_tracking_.reset();
  if (info.migration) {
    dirty_tracking_ = DirtyTracking{
        .pgsize_bitmap = info.migration->pgsize_bitmap,
        .max_bitmap_bytes = info.migration->max_dirty_bitmap_size};
  }
  return absl::OkStatus();
}

absl::Status Type1Container::TryAddGroup(Type1Group& group) {
  int cfd = fd_.get();
  int rc =
      host()->Ioctl(group.fd.get(), uapi::kVfioGroupSetContainer, AsArg(&cfd));
  if (rc < 0) {
    return HostCallError(rc, "VFIO_GROUP_SET_CONTAINER",
                         absl::StrFormat("group=%u container=%u fd=%d",
                                         group.number, id(), cfd));
  }
  for (const std::string& d : group.devices) AddDeviceName(d);
  groups_.push_back(std::move(group));
  // A new group can bring reserved regions: the valid ranges may shrink.
  bool changed = false;
  absl::Status s = RefreshIovaRanges(&changed);
  if (!s.ok()) ReportError(s);
  return absl::OkStatus();
}

void Type1Container::AddGroupDevice(uint32_t group, std::string device) {
  for (Type1Group& g : groups_) {
    if (g.number == group) g.devices.push_back(device);
  }
  AddDeviceName(std::move(device));
}

bool Type1Container::RemoveGroupDevice(uint32_t group,
                                       const std::string& device) {
  RemoveDeviceName(device);
  for (auto it = groups_.begin(); it != groups_.end(); ++it) {
    if (it->number != group) continue;
    auto d = std::find(it->devices.begin(), it->devices.end(), device);
    if (d != it->devices.end()) it->devices.erase(d);
    if (!it->devices.empty()) return false;
    int rc = host()->Ioctl(it->fd.get(), uapi::kVfioGroupUnsetContainer, 0);
    if (rc < 0) {
      ReportError(HostCallError(rc, "VFIO_GROUP_UNSET_CONTAINER",
                                absl::StrFormat("group=%u", group)));
    }
    groups_.erase(it);  // closes the group fd
    return true;
  }
  return false;
}

bool Type1Container::HasGroup(uint32_t group) const {
  return GroupFd(group) >= 0;
}

int Type1Container::GroupFd(uint32_t group) const {
  for (const Type1Group& g : groups_) {
    if (g.number == group) return g.fd.get();
  }
  return -1;
}

absl::Status Type1Container::HostMap(Iova iova, uint64_t size, Hva hva,
                                     bool readonly) {
  uapi::vfio_iommu_type1_dma_map map{
      .argsz = sizeof(map),
      .flags = uapi::kDmaMapFlagRead | (readonly ? 0u : uapi::kDmaMapFlagWrite),
      .vaddr = hva,
      .iova = iova,
      .size = size};
  int rc = host()->Ioctl(fd_.get(), uapi::kVfioIommuMapDma, AsArg(&map));
  if (rc == -EBUSY && HostUnmap(iova, size).ok()) {
    // As QEMU: something stale (e.g. the VGA ROM space) holds the range;
    // unmap it and retry once.
    rc = host()->Ioctl(fd_.get(), uapi::kVfioIommuMapDma, AsArg(&map));
  }
  if (rc < 0) {
    return HostCallError(
        rc, "VFIO_IOMMU_MAP_DMA",
        absl::StrFormat("container=%u iova=0x%x size=0x%x vaddr=0x%x %s", id(),
                        iova, size, hva, readonly ? "ro" : "rw"));
  }
  return absl::OkStatus();
}

absl::Status Type1Container::HostUnmap(Iova iova, uint64_t size) {
  uapi::vfio_iommu_type1_dma_unmap unmap{
      .argsz = sizeof(unmap), .flags = 0, .iova = iova, .size = size};
  int rc = host()->Ioctl(fd_.get(), uapi::kVfioIommuUnmapDma, AsArg(&unmap));
  if (rc < 0) {
    return HostCallError(
        rc, "VFIO_IOMMU_UNMAP_DMA",
        absl::StrFormat("container=%u iova=0x%x size=0x%x", id(), iova, size));
  }
  return absl::OkStatus();
}

absl::Status Type1Container::HostUnmapAll() {
  uapi::vfio_iommu_type1_dma_unmap unmap{.argsz = sizeof(unmap),
                                         .flags = uapi::kDmaUnmapFlagAll,
                                         .iova = 0,
                                         .size = 0};
  int rc = host()->Ioctl(fd_.get(), uapi::kVfioIommuUnmapDma, AsArg(&unmap));
  if (rc < 0) {
    return HostCallError(
        rc, "VFIO_IOMMU_UNMAP_DMA",
        absl::StrFormat("container=%u flags=ALL iova=0 size=0", id()));
  }
  return absl::OkStatus();
}

void Type1Container::ReleaseHost() {
  for (Type1Group& g : groups_) {
    int rc = host()->Ioctl(g.fd.get(), uapi::kVfioGroupUnsetContainer, 0);
    if (rc < 0) {
      ReportError(HostCallError(rc, "VFIO_GROUP_UNSET_CONTAINER",
                                absl::StrFormat("group=%u", g.number)));
    }
  }
  groups_.clear();  // closes the group fds
  fd_.Reset();
}

}  // namespace viommu::vfio
