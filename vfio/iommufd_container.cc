#include "viommu/vfio/iommufd_container.h"

#include <cerrno>
#include <utility>

#include "absl/strings/str_format.h"
#include "viommu/util/status_macros.h"
#include "viommu/vfio/host/vfio_uapi.h"
#include "viommu/vfio/vfio_status.h"

namespace viommu::vfio {

absl::StatusOr<IommufdDevice> IommufdContainer::BindDevice(
    HostBackend* backend, int iommufd, const std::string& cdev,
    std::string name) {
  IommufdDevice d;
  d.name = std::move(name);
  d.fd = BackendFd(backend, backend->Open(cdev));
  if (!d.fd.valid()) return HostCallError(d.fd.get(), "open", cdev);
  uapi::vfio_device_bind_iommufd bind{.argsz = sizeof(bind),
                                      .flags = 0,
                                      .iommufd = iommufd,
                                      .out_devid = 0,
                                      .token_uuid_ptr = 0};
  int rc =
      backend->Ioctl(d.fd.get(), uapi::kVfioDeviceBindIommufd, AsArg(&bind));
  if (rc < 0) {
    return HostCallError(rc, "VFIO_DEVICE_BIND_IOMMUFD",
                         absl::StrFormat("%s iommufd=%d", cdev, iommufd));
  }
  d.devid = bind.out_devid;
  return d;
}

IommufdContainer::IommufdContainer(HostBackend* backend,
                                   memory::AddressSpace* as, uint32_t id,
                                   int iommufd, ContainerOptions options)
    : VfioContainer(ContainerBackend::kIommufd, backend, as, id,
                    std::move(options)),
      iommufd_(iommufd) {}

IommufdContainer::~IommufdContainer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<IommufdContainer>> IommufdContainer::Create(
    HostBackend* backend, memory::AddressSpace* as, uint32_t id, int iommufd,
    IommufdDevice device, ContainerOptions options) {
  std::unique_ptr<IommufdContainer> c(
      new IommufdContainer(backend, as, id, iommufd, std::move(options)));
  absl::Status s = c->Setup(std::move(device));
  if (!s.ok()) return s;  // the destructor undoes what Setup did
  return c;
}

absl::Status IommufdContainer::Setup(IommufdDevice device) {
  uapi::iommu_ioas_alloc alloc{
      .size = sizeof(alloc), .flags = 0, .out_ioas_id = 0};
  int rc = host()->Ioctl(iommufd_, uapi::kIommuIoasAlloc, AsArg(&alloc));
  if (rc < 0) {
    return HostCallError(rc, "IOMMU_IOAS_ALLOC",
                         absl::StrFormat("iommufd=%d", iommufd_));
  }
  ioas_id_ = alloc.out_ioas_id;
  ioas_allocated_ = true;
  VIOMMU_RETURN_IF_ERROR(Attach(device));
  AddDeviceName(device.name);
  attached_.push_back(std::move(device));
  absl::Status s = ReadIovaInfo();
  if (!s.ok()) {
    // QEMU: fall back to the whole 64-bit space and 4 KiB pages.
    ReportWarning(Annotate(s,
                           "vfio: falling back to the default 64-bit IOVA "
                           "range and 4K page size"));
    set_iova_ranges({});
    set_page_size_mask(4096);
  }
  return StartListening();
}

absl::Status IommufdContainer::Attach(IommufdDevice& device) {
  uapi::vfio_device_attach_iommufd_pt at{
      .argsz = sizeof(at), .flags = 0, .pt_id = ioas_id_, .pasid = 0};
  int rc = host()->Ioctl(device.fd.get(), uapi::kVfioDeviceAttachIommufdPt,
                         AsArg(&at));
  if (rc < 0) {
    return HostCallError(rc, "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
                         absl::StrFormat("%s ioas=%u", device.name, ioas_id_));
  }
  return absl::OkStatus();
}

void IommufdContainer::Detach(IommufdDevice& device) {
  uapi::vfio_device_detach_iommufd_pt dt{
      .argsz = sizeof(dt), .flags = 0, .pasid = 0};
  int rc = host()->Ioctl(device.fd.get(), uapi::kVfioDeviceDetachIommufdPt,
                         AsArg(&dt));
  if (rc < 0) {
    ReportError(
        HostCallError(rc, "VFIO_DEVICE_DETACH_IOMMUFD_PT", device.name));
  }
  device.fd.Reset();  // closing the cdev unbinds it
}

absl::Status IommufdContainer::TryAttachDevice(IommufdDevice& device) {
  VIOMMU_RETURN_IF_ERROR(Attach(device));
  AddDeviceName(device.name);
  attached_.push_back(std::move(device));
  bool changed = false;
  absl::Status s = RefreshIovaRanges(&changed);
  if (!s.ok()) ReportError(s);
  return absl::OkStatus();
}

bool IommufdContainer::DetachDevice(const std::string& name) {
  for (auto it = attached_.begin(); it != attached_.end(); ++it) {
    if (it->name != name) continue;
    Detach(*it);
    attached_.erase(it);
    RemoveDeviceName(name);
    return true;
  }
  return false;
}

int IommufdContainer::DeviceFd(const std::string& name) const {
  for (const IommufdDevice& d : attached_) {
    if (d.name == name) return d.fd.get();
  }
  return -1;
}

absl::Status IommufdContainer::ReadIovaInfo() {
  std::vector<uapi::iommu_iova_range> ranges;
  uapi::iommu_ioas_iova_ranges q{};
  for (int attempt = 0;; ++attempt) {
    q = {.size = sizeof(q),
         .ioas_id = ioas_id_,
         .num_iovas = static_cast<uint32_t>(ranges.size()),
         .__reserved = 0,
         .allowed_iovas = ranges.empty() ? 0 : AsArg(ranges.data()),
         .out_iova_alignment = 0};
    int rc = host()->Ioctl(iommufd_, uapi::kIommuIoasIovaRanges, AsArg(&q));
    if (rc == -EMSGSIZE && attempt < 3 && q.num_iovas > ranges.size() &&
        q.num_iovas <= 4096) {
      ranges.resize(q.num_iovas);  // the kernel told us how many
      continue;
    }
    if (rc < 0) {
      return HostCallError(
          rc, "IOMMU_IOAS_IOVA_RANGES",
          absl::StrFormat("ioas=%u num_iovas=%u", ioas_id_, q.num_iovas));
    }
    break;
  }
  if (q.num_iovas > ranges.size()) {
    return absl::DataLossError(absl::StrFormat(
        "IOMMU_IOAS_IOVA_RANGES: %u ranges reported, %d fetched", q.num_iovas,
        static_cast<int>(ranges.size())));
  }
  std::vector<Range> out;
  for (uint32_t i = 0; i < q.num_iovas; ++i) {
    if (ranges[i].start > ranges[i].last) {
      return absl::DataLossError(absl::StrFormat(
          "IOMMU_IOAS_IOVA_RANGES: range %u [0x%x, 0x%x] is inverted", i,
          ranges[i].start, ranges[i].last));
    }
    out.push_back({ranges[i].start, ranges[i].last});
  }
  set_iova_ranges(std::move(out));
  const uint64_t align = q.out_iova_alignment;
  set_page_size_mask(align != 0 && (align & (align - 1)) == 0 ? align : 4096);
  set_dma_limit(UINT32_MAX);
  return absl::OkStatus();
}

absl::Status IommufdContainer::HostMap(Iova iova, uint64_t size, Hva hva,
                                       bool readonly) {
  uapi::iommu_ioas_map map{.size = sizeof(map),
                           .flags = uapi::kIoasMapFixedIova |
                                    uapi::kIoasMapReadable |
                                    (readonly ? 0u : uapi::kIoasMapWriteable),
                           .ioas_id = ioas_id_,
                           .__reserved = 0,
                           .user_va = hva,
                           .length = size,
                           .iova = iova};
  int rc = host()->Ioctl(iommufd_, uapi::kIommuIoasMap, AsArg(&map));
  if (rc < 0) {
    return HostCallError(
        rc, "IOMMU_IOAS_MAP",
        absl::StrFormat("ioas=%u iova=0x%x length=0x%x user_va=0x%x %s%s",
                        ioas_id_, iova, size, hva, readonly ? "ro" : "rw",
                        rc == -EFAULT ? " (PCI BAR?)" : ""));
  }
  return absl::OkStatus();
}

absl::Status IommufdContainer::HostUnmap(Iova iova, uint64_t size) {
  uapi::iommu_ioas_unmap unmap{
      .size = sizeof(unmap), .ioas_id = ioas_id_, .iova = iova, .length = size};
  int rc = host()->Ioctl(iommufd_, uapi::kIommuIoasUnmap, AsArg(&unmap));
  if (rc < 0 && rc != -ENOENT) {
    return HostCallError(
        rc, "IOMMU_IOAS_UNMAP",
        absl::StrFormat("ioas=%u iova=0x%x length=0x%x", ioas_id_, iova, size));
  }
  return absl::OkStatus();
}

absl::Status IommufdContainer::HostUnmapAll() {
  uapi::iommu_ioas_unmap unmap{.size = sizeof(unmap),
                               .ioas_id = ioas_id_,
                               .iova = 0,
                               .length = UINT64_MAX};
  int rc = host()->Ioctl(iommufd_, uapi::kIommuIoasUnmap, AsArg(&unmap));
  if (rc < 0 && rc != -ENOENT) {
    return HostCallError(
        rc, "IOMMU_IOAS_UNMAP",
        absl::StrFormat("ioas=%u iova=0 length=0xffffffffffffffff (all)",
                        ioas_id_));
  }
  return absl::OkStatus();
}

void IommufdContainer::ReleaseHost() {
  for (IommufdDevice& d : attached_) Detach(d);
  attached_.clear();
  if (ioas_allocated_) {
    uapi::iommu_destroy destroy{.size = sizeof(destroy), .id = ioas_id_};
    int rc = host()->Ioctl(iommufd_, uapi::kIommuDestroy, AsArg(&destroy));
    if (rc < 0) {
      ReportError(HostCallError(rc, "IOMMU_DESTROY",
                                absl::StrFormat("ioas=%u", ioas_id_)));
    }
    ioas_allocated_ = false;
  }
}

}  // namespace viommu::vfio
