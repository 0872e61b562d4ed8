// ModelHost's iommufd side: /dev/iommu fds (one IommufdCtx each), the VFIO
// cdev device fds, and the legacy group path with an iommufd as its
// container (docs/vfio-iommufd-model.md, ModelHost wiring). The IommufdCtx does the
// iommufd semantics; this file keeps the fd table's rules (which fd is
// bound, which group is blocked, who owns a group's DMA).
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "vfio/host/model/vfio_group_model.h"
#include "viommu/vfio/host/model/model_host.h"

namespace viommu::vfio::model {

namespace {

constexpr std::string_view kCdevDir = "/dev/vfio/devices/";
constexpr std::string_view kCdevName = "vfio";
constexpr size_t kOutDevidOffset =
    offsetof(uapi::vfio_device_bind_iommufd, out_devid);

}  // namespace

int ModelHost::OpenIommufd() {
  IommufdCtxOptions options;
  if (options_.kernel == KernelVersion::k6_12) options.last_cmd_nr = 0x8e;
  auto ctx = std::make_shared<IommufdCtx>(&mem_, options);
  return NewFd({.kind = FdKind::kIommufd, .iommufd = std::move(ctx)});
}

int ModelHost::OpenCdev(std::string_view path) {
  const std::string_view name = path.substr(kCdevDir.size());
  if (name.substr(0, kCdevName.size()) != kCdevName) return -ENOENT;
  const std::string_view num = name.substr(kCdevName.size());
  size_t index = 0;
  // Only the canonical name exists ("vfio00" does not).
  if (num.empty() || num.find_first_not_of("0123456789") != num.npos ||
      (num.size() > 1 && num[0] == '0') ||
      !absl::SimpleAtoi(absl::string_view(num.data(), num.size()), &index) ||
      index >= devices_.size()) {
    return -ENOENT;
  }
  // Opening never fails for a registered device: BIND does the checks.
  VfioGroupModel* group = groups_.at(devices_[index].desc->group).get();
  return NewFd({.kind = FdKind::kCdev, .group = group, .device = index});
}

int ModelHost::CdevIoctl(int fd, FdEntry& entry, unsigned long request,
                         uintptr_t arg) {
  if (request == uapi::kVfioDeviceBindIommufd) {
    return BindIommufd(fd, entry, arg);
  }
  if (entry.iommufd == nullptr) return -EINVAL;  // nothing before BIND
  std::shared_ptr<IommufdCtx> ctx = entry.iommufd;
  switch (request) {
    case uapi::kVfioDeviceAttachIommufdPt:
      return ctx->CdevAttachPt(entry.devid, arg);
    case uapi::kVfioDeviceDetachIommufdPt:
      return ctx->CdevDetachPt(entry.devid, arg);
    default:
      return DeviceIoctl(devices_[entry.device], request, arg);
  }
}

int ModelHost::BindIommufd(int fd, FdEntry& entry, uintptr_t arg) {
  int32_t iommufd = -1;
  bool token = false;
  // (1)-(3): argsz, tail, iommufd < 0 and flags.
  if (int rc = IommufdCtx::CheckBindArgs(
          arg, &iommufd, &token,
          /*check_tail=*/options_.kernel != KernelVersion::k6_12);
      rc < 0) {
    return rc;
  }
  if (entry.kind != FdKind::kCdev) return -EINVAL;  // (4) group-path fd
  VfioGroupModel* group = entry.group;
  // (5) The group file is open (device fds hold it open too).
  if (group->fd_open || group->device_fds > 0) return -EBUSY;
  if (entry.iommufd != nullptr) return -EINVAL;  // (6) already bound
  if (token) return -EINVAL;  // (7) the model's drivers take no token
  const FdEntry* target = Find(iommufd);
  if (target == nullptr) return -EBADF;                  // (8)
  if (target->kind != FdKind::kIommufd) return -EBADFD;  // (8)
  DeviceSlot& slot = devices_[entry.device];
  if (slot.cdev_bound_fd >= 0) return -EINVAL;  // (9) open by another cdev
  std::shared_ptr<IommufdCtx> ctx = target->iommufd;
  // (10) iommufd_device_bind.
  if (int rc = CheckDmaOwner(entry.device, ctx.get()); rc < 0) return rc;
  uint32_t devid = 0;
  if (int rc = ctx->BindDevice(
          IommufdDeviceDesc::FromHost(*slot.desc, platform_.pgsize_bitmap),
          DomainFnFor(entry.device), &devid);
      rc < 0) {
    return rc;
  }
  entry.iommufd = std::move(ctx);
  entry.devid = devid;
  slot.cdev_bound_fd = fd;
  std::memcpy(reinterpret_cast<uint8_t*>(arg) + kOutDevidOffset, &devid,
              sizeof(devid));
  return 0;
}

int ModelHost::CheckDmaOwner(size_t device, const IommufdCtx* ctx) const {
  const uint32_t group = devices_[device].desc->group;
  for (size_t i = 0; i < devices_.size(); ++i) {
    const DeviceSlot& mate = devices_[i];
    if (i == device || mate.desc->group != group) continue;
    const IommufdCtx* owner = mate.group_ctx.get();
    if (mate.cdev_bound_fd >= 0) {
      owner = Find(mate.cdev_bound_fd)->iommufd.get();
    }
    if (owner != nullptr && owner != ctx) return -EPERM;
  }
  return 0;
}

IommufdDomainFn ModelHost::DomainFnFor(size_t device) {
  return [this, device](HostIommuDomain* domain) {
    SetDeviceDomain(device, domain);
  };
}

void ModelHost::SetDeviceDomain(size_t device, HostIommuDomain* domain) {
  DeviceSlot& slot = devices_[device];
  slot.attached = domain;
  if (slot.ops != nullptr) slot.ops->AttachDomain(domain);
}

int ModelHost::GroupPathBind(VfioGroupModel* group, size_t device) {
  DeviceSlot& slot = devices_[device];
  if (slot.group_path_fds > 0) return 0;  // bound at the first open
  std::shared_ptr<IommufdCtx> ctx = group->iommufd();
  if (int rc = CheckDmaOwner(device, ctx.get()); rc < 0) return rc;
  uint32_t devid = 0;
  if (int rc = ctx->BindDevice(
          IommufdDeviceDesc::FromHost(*slot.desc, platform_.pgsize_bitmap),
          DomainFnFor(device), &devid);
      rc < 0) {
    return rc;
  }
  // ENODEV without a compat IOAS (cleared by IOMMU_VFIO_IOAS), else the
  // attach errors; the bind is undone.
  if (int rc = ctx->AttachDeviceToCompatIoas(devid); rc < 0) {
    ctx->UnbindDevice(devid);
    return rc;
  }
  slot.group_ctx = std::move(ctx);
  slot.group_devid = devid;
  return 0;
}

void ModelHost::CloseCdev(FdEntry& entry) {
  if (entry.iommufd == nullptr) return;
  entry.iommufd->UnbindDevice(entry.devid);
  devices_[entry.device].cdev_bound_fd = -1;
  SetDeviceDomain(entry.device, nullptr);
}

void ModelHost::CloseGroupPathDevice(FdEntry& entry) {
  DeviceSlot& slot = devices_[entry.device];
  if (--slot.group_path_fds > 0 || slot.group_ctx == nullptr) return;
  slot.group_ctx->UnbindDevice(slot.group_devid);
  slot.group_ctx.reset();
  SetDeviceDomain(entry.device, nullptr);
}

bool ModelHost::GroupHasBoundCdev(uint32_t group) const {
  for (const DeviceSlot& slot : devices_) {
    if (slot.desc->group == group && slot.cdev_bound_fd >= 0) return true;
  }
  return false;
}

// ---- accessors ----

HostIommuDomain* ModelHost::DeviceDmaDomain(
    const HostPciAddress& address) const {
  for (const DeviceSlot& slot : devices_) {
    if (slot.desc->address == address) return slot.attached;
  }
  return nullptr;
}

std::vector<int> ModelHost::IommufdFds() const {
  std::vector<int> out;
  for (const auto& [fd, e] : fds_) {
    if (e.kind == FdKind::kIommufd) out.push_back(fd);
  }
  return out;
}

const IommufdCtx* ModelHost::Iommufd(int fd) const {
  const FdEntry* e = Find(fd);
  return e != nullptr && e->kind == FdKind::kIommufd ? e->iommufd.get()
                                                     : nullptr;
}

absl::StatusOr<std::vector<uint32_t>> ModelHost::IoasIds(int fd) const {
  const IommufdCtx* ctx = Iommufd(fd);
  if (ctx == nullptr) {
    return absl::NotFoundError(absl::StrCat("fd ", fd, " is not an iommufd"));
  }
  return ctx->IoasIds();
}

absl::StatusOr<uint64_t> ModelHost::IoasMappingCount(int fd,
                                                     uint32_t ioas_id) const {
  const IommufdCtx* ctx = Iommufd(fd);
  if (ctx == nullptr) {
    return absl::NotFoundError(absl::StrCat("fd ", fd, " is not an iommufd"));
  }
  const int64_t n = ctx->IoasAreaCount(ioas_id);
  if (n < 0) {
    return absl::NotFoundError(
        absl::StrCat("iommufd fd ", fd, ": ", ioas_id, " is not an IOAS"));
  }
  return static_cast<uint64_t>(n);
}

}  // namespace viommu::vfio::model
