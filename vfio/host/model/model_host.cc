#include "viommu/vfio/host/model/model_host.h"

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "vfio/host/model/vfio_container_model.h"
#include "vfio/host/model/vfio_group_model.h"

namespace viommu::vfio::model {

namespace {

constexpr std::string_view kContainerPath = "/dev/vfio/vfio";
constexpr std::string_view kGroupPrefix = "/dev/vfio/";
constexpr std::string_view kCdevPrefix = "/dev/vfio/devices/";
constexpr std::string_view kIommufdPath = "/dev/iommu";
constexpr size_t kPageSize = 4096;

absl::string_view Absl(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

ModelHost::ModelHost(HostPlatform platform, ModelHostOptions options)
    : platform_(std::move(platform)), options_(std::move(options)) {
  for (const HostDeviceDesc& d : platform_.devices) {
    DeviceSlot slot{&d, nullptr};
    if (options_.device_factory) {
      absl::StatusOr<std::unique_ptr<ModelDeviceOps>> ops =
          options_.device_factory(d);
      if (ops.ok()) {
        slot.ops = std::move(*ops);
      } else if (device_status_.ok()) {
        device_status_ = ops.status();
      }
    }
    devices_.push_back(std::move(slot));
  }
  for (const HostDeviceDesc& d : platform_.devices) {
    if (groups_.contains(d.group)) continue;
    Type1Group desc{.id = d.group,
                    .aperture_last = UINT64_MAX,
                    .pgsize_bitmap = platform_.pgsize_bitmap};
    std::vector<std::string> names;
    std::vector<ResvRegion> resv;
    for (const HostDeviceDesc* member : platform_.GroupDevices(d.group)) {
      desc.aperture_last =
          std::min(desc.aperture_last, member->aperture_last());
      names.push_back(member->address.ToString());
      resv.insert(resv.end(), member->reserved.begin(), member->reserved.end());
    }
    desc.resv = MergeResvRegions(std::move(resv));
    groups_.emplace(d.group, std::make_unique<VfioGroupModel>(
                                 std::move(desc), std::move(names)));
  }
}

absl::StatusOr<std::unique_ptr<ModelHost>> ModelHost::Create(
    HostPlatform platform, ModelHostOptions options) {
  auto host =
      std::make_unique<ModelHost>(std::move(platform), std::move(options));
  if (!host->device_status().ok()) return host->device_status();
  return host;
}

ModelHost::~ModelHost() {
  // Close as a process exit does, so cdevs unbind and iommufd ctxs (held by
  // fds, bound devices and groups) die while the devices still exist.
  while (!fds_.empty()) Close(fds_.begin()->first);
  groups_.clear();  // detaches; the last group of a container releases it
  for (DeviceSlot& slot : devices_) {
    if (slot.ops != nullptr && slot.attached != nullptr) {
      slot.ops->AttachDomain(nullptr);
    }
  }
}

const ModelHost::FdEntry* ModelHost::Find(int fd) const {
  auto it = fds_.find(fd);
  return it == fds_.end() ? nullptr : &it->second;
}

int ModelHost::NewFd(FdEntry entry) {
  int fd = kFirstFd;
  for (const auto& [used, e] : fds_) {
    if (used != fd) break;
    ++fd;
  }
  fds_.emplace(fd, std::move(entry));
  return fd;
}

int ModelHost::Open(std::string_view path) {
  if (path == kContainerPath) {
    auto c = std::make_shared<VfioContainerModel>(
        options_.kernel, platform_.dma_entry_limit, &mem_, &faults_);
    return NewFd({.kind = FdKind::kContainer, .container = std::move(c)});
  }
  if (path == kIommufdPath) return OpenIommufd();
  if (path.substr(0, kCdevPrefix.size()) == kCdevPrefix) return OpenCdev(path);
  if (path.substr(0, kGroupPrefix.size()) == kGroupPrefix) {
    uint32_t id;
    const std::string_view num = path.substr(kGroupPrefix.size());
    // Only the canonical name exists ("/dev/vfio/01" does not).
    if (num.empty() || num.find_first_not_of("0123456789") != num.npos ||
        (num.size() > 1 && num[0] == '0') ||
        !absl::SimpleAtoi(Absl(num), &id)) {
      return -ENOENT;
    }
    auto it = groups_.find(id);
    if (it == groups_.end()) return -ENOENT;
    VfioGroupModel* group = it->second.get();
    // A device of the group bound through its cdev blocks the group; then
    // single opener (a group fd closed while its device fds are open is
    // still held by them).
    if (GroupHasBoundCdev(id)) return -EBUSY;
    if (group->fd_open || group->device_fds > 0) return -EBUSY;
    group->fd_open = true;
    return NewFd({.kind = FdKind::kGroup, .group = group});
  }
  return -ENOENT;
}

void ModelHost::ReleaseGroupIfIdle(VfioGroupModel* group) {
  if (group->fd_open || group->device_fds > 0) return;
  if (group->has_container()) {
    const int rc = group->UnsetContainer();
    (void)rc;  // cannot fail: a container is set and no device fd is open
  }
  SyncDeviceDomains();
}

int ModelHost::Close(int fd) {
  auto it = fds_.find(fd);
  if (it == fds_.end()) return -EBADF;
  FdEntry entry = std::move(it->second);
  fds_.erase(it);
  switch (entry.kind) {
    case FdKind::kContainer:
      break;  // the container lives on while a group references it
    case FdKind::kGroup:
      entry.group->fd_open = false;
      ReleaseGroupIfIdle(entry.group);
      break;
    case FdKind::kDevice:
      CloseGroupPathDevice(entry);
      --entry.group->device_fds;
      ReleaseGroupIfIdle(entry.group);
      break;
    case FdKind::kIommufd:
      break;  // the ctx lives on while a bound device or group holds it
    case FdKind::kCdev:
      CloseCdev(entry);
      break;
  }
  return 0;
}

void ModelHost::SyncDeviceDomains() {
  for (DeviceSlot& slot : devices_) {
    if (slot.cdev_bound_fd >= 0 || slot.group_ctx != nullptr) continue;
    HostIommuDomain* domain = nullptr;
    auto g = groups_.find(slot.desc->group);
    if (g != groups_.end() && g->second->container() != nullptr &&
        g->second->container()->iommu() != nullptr) {
      domain = g->second->container()->iommu()->DomainOfGroup(g->first);
    }
    if (domain == slot.attached) continue;
    slot.attached = domain;
    if (slot.ops != nullptr) slot.ops->AttachDomain(domain);
  }
}

int ModelHost::Ioctl(int fd, unsigned long request, uintptr_t arg) {
  auto it = fds_.find(fd);
  if (it == fds_.end()) return -EBADF;
  FdEntry& entry = it->second;
  switch (entry.kind) {
    case FdKind::kContainer: {
      // Hold the container: a failing SET_IOMMU must not drop it.
      std::shared_ptr<VfioContainerModel> c = entry.container;
      const int rc = c->Ioctl(request, arg);
      if (request == uapi::kVfioSetIommu) SyncDeviceDomains();
      return rc;
    }
    case FdKind::kGroup:
      return GroupIoctl(entry.group, request, arg);
    case FdKind::kDevice:
      // BIND_IOMMUFD checks its arguments, then refuses group-path fds.
      if (request == uapi::kVfioDeviceBindIommufd) {
        return BindIommufd(fd, entry, arg);
      }
      return DeviceIoctl(devices_[entry.device], request, arg);
    case FdKind::kIommufd: {
      // Hold the ctx across the call, as the kernel holds the file.
      std::shared_ptr<IommufdCtx> ctx = entry.iommufd;
      return ctx->Ioctl(request, arg);
    }
    case FdKind::kCdev:
      return CdevIoctl(fd, entry, request, arg);
  }
  return -ENOTTY;
}

int ModelHost::GroupIoctl(VfioGroupModel* group, unsigned long request,
                          uintptr_t arg) {
  switch (request) {
    case uapi::kVfioGroupGetStatus: {
      // iommu_group_dma_owner_claimed: a device still bound to an iommufd.
      bool claimed = false;
      for (const DeviceSlot& slot : devices_) {
        claimed |= slot.desc->group == group->id() && slot.group_ctx != nullptr;
      }
      return group->GetStatus(arg, claimed);
    }
    case uapi::kVfioGroupSetContainer:
      return SetContainer(group, arg);
    case uapi::kVfioGroupUnsetContainer: {
      const int rc = group->UnsetContainer();
      SyncDeviceDomains();
      return rc;
    }
    case uapi::kVfioGroupGetDeviceFd:
      return GetDeviceFd(group, arg);
    default:
      return -ENOTTY;
  }
}

int ModelHost::GetDeviceFd(VfioGroupModel* group, uintptr_t arg) {
  if (arg == 0) return -EFAULT;
  const char* name = reinterpret_cast<const char*>(arg);
  const size_t len = strnlen(name, kPageSize);
  if (len == kPageSize) return -EINVAL;  // strndup_user: longer than a page
  const std::string_view bdf(name, len);
  if (int rc = group->CheckDeviceOpen(bdf); rc < 0) return rc;
  for (size_t i = 0; i < devices_.size(); ++i) {
    if (devices_[i].desc->group == group->id() &&
        devices_[i].desc->address.ToString() == bdf) {
      if (group->iommufd() != nullptr) {
        if (int rc = GroupPathBind(group, i); rc < 0) return rc;
      }
      ++group->device_fds;
      ++devices_[i].group_path_fds;
      return NewFd({.kind = FdKind::kDevice, .group = group, .device = i});
    }
  }
  return -ENODEV;
}

int ModelHost::SetContainer(VfioGroupModel* group, uintptr_t arg) {
  if (arg == 0) return -EFAULT;
  int cfd;
  std::memcpy(&cfd, reinterpret_cast<const void*>(arg), sizeof(cfd));
  const FdEntry* target = Find(cfd);
  if (target == nullptr) return -EBADF;
  // "Already set" is checked before the fd's type.
  if (group->has_container()) return -EINVAL;
  if (target->kind == FdKind::kIommufd) {
    return group->SetIommufd(target->iommufd);  // no DMA ownership yet
  }
  if (target->kind != FdKind::kContainer) {
    return HasSetContainerEbadfd(options_.kernel) ? -EBADFD : -EINVAL;
  }
  // iommu_group_claim_dma_owner: a device still bound to an iommufd (its
  // group-path fd outlived an UNSET_CONTAINER) owns the group's DMA.
  for (const DeviceSlot& slot : devices_) {
    if (slot.desc->group == group->id() && slot.group_ctx != nullptr) {
      return -EPERM;
    }
  }
  const int rc = group->SetContainer(target->container);
  SyncDeviceDomains();
  return rc;
}

ModelHost::DeviceSlot* ModelHost::DeviceOfFd(int fd, int not_device, int* err) {
  auto it = fds_.find(fd);
  if (it == fds_.end()) {
    *err = -EBADF;
    return nullptr;
  }
  const FdEntry& e = it->second;
  if (e.kind == FdKind::kCdev && e.iommufd == nullptr) {
    *err = -EINVAL;  // read/write/mmap before BIND_IOMMUFD
    return nullptr;
  }
  if (e.kind != FdKind::kDevice && e.kind != FdKind::kCdev) {
    *err = not_device;
    return nullptr;
  }
  return &devices_[e.device];
}

int ModelHost::DeviceIoctl(DeviceSlot& slot, unsigned long request,
                           uintptr_t arg) {
  ModelDeviceOps* ops = slot.ops.get();
  switch (request) {
    case uapi::kVfioDeviceGetInfo: {
      if (arg == 0) return -EFAULT;
      uapi::vfio_device_info di{};
      constexpr size_t kMinsz = offsetof(uapi::vfio_device_info, cap_offset);
      std::memcpy(&di, reinterpret_cast<const void*>(arg), kMinsz);
      if (di.argsz < kMinsz) return -EINVAL;
      di.flags = uapi::kDeviceFlagsPci | uapi::kDeviceFlagsReset;
      di.num_regions = uapi::kPciNumRegions;
      di.num_irqs = uapi::kPciNumIrqs;
      std::memcpy(reinterpret_cast<void*>(arg), &di, kMinsz);
      return 0;
    }
    case uapi::kVfioDeviceGetRegionInfo: {
      if (arg == 0) return -EFAULT;
      uapi::vfio_region_info ri;
      std::memcpy(&ri, reinterpret_cast<const void*>(arg), sizeof(ri));
      if (ri.argsz < sizeof(ri) || ri.index >= uapi::kPciNumRegions ||
          ops == nullptr) {
        return -EINVAL;
      }
      uapi::vfio_region_info out{.argsz = ri.argsz, .index = ri.index};
      if (int rc = ops->GetRegionInfo(ri.index, &out); rc < 0) return rc;
      out.argsz = ri.argsz;
      out.index = ri.index;
      out.cap_offset = 0;
      std::memcpy(reinterpret_cast<void*>(arg), &out, sizeof(out));
      return 0;
    }
    case uapi::kVfioDeviceGetIrqInfo: {
      if (arg == 0) return -EFAULT;
      uapi::vfio_irq_info ii;
      std::memcpy(&ii, reinterpret_cast<const void*>(arg), sizeof(ii));
      if (ii.argsz < sizeof(ii) || ii.index >= uapi::kPciNumIrqs ||
          ops == nullptr) {
        return -EINVAL;
      }
      uapi::vfio_irq_info out{.argsz = ii.argsz, .index = ii.index};
      if (int rc = ops->GetIrqInfo(ii.index, &out); rc < 0) return rc;
      out.argsz = ii.argsz;
      out.index = ii.index;
      std::memcpy(reinterpret_cast<void*>(arg), &out, sizeof(out));
      return 0;
    }
    case uapi::kVfioDeviceSetIrqs: {
      if (arg == 0) return -EFAULT;
      uapi::vfio_irq_set set;
      std::memcpy(&set, reinterpret_cast<const void*>(arg), sizeof(set));
      if (set.argsz < sizeof(set) || ops == nullptr) return -EINVAL;
      return ops->SetIrqs(set,
                          reinterpret_cast<const uint8_t*>(arg) + sizeof(set));
    }
    case uapi::kVfioDeviceReset:
      return ops == nullptr ? 0 : ops->Reset();
    default:
      return -ENOTTY;
  }
}

int64_t ModelHost::Pread(int fd, void* buf, uint64_t len, uint64_t offset) {
  int err = 0;
  DeviceSlot* slot = DeviceOfFd(fd, -EINVAL, &err);
  if (slot == nullptr) return err;
  ModelDeviceOps* ops = slot->ops.get();
  if (ops == nullptr) return -EINVAL;
  return ops->RegionRead(offset, buf, len);
}

int64_t ModelHost::Pwrite(int fd, const void* buf, uint64_t len,
                          uint64_t offset) {
  int err = 0;
  DeviceSlot* slot = DeviceOfFd(fd, -EINVAL, &err);
  if (slot == nullptr) return err;
  ModelDeviceOps* ops = slot->ops.get();
  if (ops == nullptr) return -EINVAL;
  return ops->RegionWrite(offset, buf, len);
}

absl::StatusOr<void*> ModelHost::Mmap(int fd, uint64_t len, uint64_t offset) {
  int err = 0;
  DeviceSlot* slot = DeviceOfFd(fd, -ENODEV, &err);
  auto fail = [&](int errnum, absl::string_view why) {
    return absl::Status(
        absl::ErrnoToStatusCode(errnum),
        absl::StrCat("model mmap(fd=", fd, ", len=", len, ", offset=", offset,
                     "): ", why, " (errno ", errnum, ")"));
  };
  if (slot == nullptr) {
    return fail(-err, err == -EBADF    ? "bad fd"
                      : err == -EINVAL ? "cdev not bound"
                                       : "not a device fd");
  }
  ModelDeviceOps* ops = slot->ops.get();
  if (ops == nullptr) return fail(EINVAL, "no simulated device");
  if (len == 0 || (offset % kPageSize) != 0) return fail(EINVAL, "bad range");
  absl::StatusOr<void*> p = ops->Mmap(offset, len);
  if (!p.ok()) return p;
  const uint64_t addr = reinterpret_cast<uint64_t>(*p);
  const uint64_t pages_len = (len + kPageSize - 1) / kPageSize * kPageSize;
  auto [it, inserted] =
      mmaps_.try_emplace(addr, DeviceMapping{ops, pages_len, 0});
  if (inserted) mem_.AddDeviceMemory(addr, pages_len);
  ++it->second.refs;
  return p;
}

void ModelHost::Munmap(void* addr, uint64_t len) {
  auto it = mmaps_.find(reinterpret_cast<uint64_t>(addr));
  if (it == mmaps_.end()) return;
  ModelDeviceOps* ops = it->second.ops;
  if (--it->second.refs == 0) {
    mem_.RemoveDeviceMemory(it->first);
    mmaps_.erase(it);
  }
  ops->Munmap(addr, len);
}

absl::StatusOr<uint32_t> ModelHost::IommuGroupOf(const HostPciAddress& device) {
  const HostDeviceDesc* d = platform_.FindDevice(device);
  if (d == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no host device ", device.ToString(), " in the model"));
  }
  return d->group;
}

absl::StatusOr<std::vector<ResvRegion>> ModelHost::GroupReservedRegions(
    uint32_t group) {
  auto it = groups_.find(group);
  if (it == groups_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no IOMMU group ", group, " in the model"));
  }
  return it->second->desc().resv;
}

absl::StatusOr<std::string> ModelHost::DeviceCdevPath(
    const HostPciAddress& device) {
  for (size_t i = 0; i < platform_.devices.size(); ++i) {
    if (platform_.devices[i].address == device) {
      return absl::StrCat(Absl(kCdevPrefix), "vfio", i);
    }
  }
  return absl::NotFoundError(
      absl::StrCat("no host device ", device.ToString(), " in the model"));
}

void ModelHost::FailNthMapDma(uint64_t n, int err) {
  faults_.fail_map_countdown = n;
  faults_.fail_map_errno = err < 0 ? -err : err;
}

void ModelHost::FailNextGroupAttach(uint32_t group, int err) {
  faults_.fail_attach_armed = true;
  faults_.fail_attach_group = group;
  faults_.fail_attach_errno = err < 0 ? -err : err;
}

std::vector<int> ModelHost::ContainerFds() const {
  std::vector<int> out;
  for (const auto& [fd, e] : fds_) {
    if (e.kind == FdKind::kContainer) out.push_back(fd);
  }
  return out;
}

const Type1Iommu* ModelHost::ContainerIommu(int fd) const {
  const FdEntry* e = Find(fd);
  if (e == nullptr || e->kind != FdKind::kContainer) return nullptr;
  return e->container->iommu();
}

absl::StatusOr<uint64_t> ModelHost::ContainerMappingCount(int fd) const {
  const FdEntry* e = Find(fd);
  if (e == nullptr || e->kind != FdKind::kContainer) {
    return absl::NotFoundError(absl::StrCat("fd ", fd, " is not a container"));
  }
  const Type1Iommu* iommu = e->container->iommu();
  return iommu == nullptr ? 0 : iommu->mapping_count();
}

absl::StatusOr<uint64_t> ModelHost::ContainerLockedPages(int fd) const {
  const FdEntry* e = Find(fd);
  if (e == nullptr || e->kind != FdKind::kContainer) {
    return absl::NotFoundError(absl::StrCat("fd ", fd, " is not a container"));
  }
  const Type1Iommu* iommu = e->container->iommu();
  return iommu == nullptr ? 0 : iommu->locked_pages();
}

ModelDeviceOps* ModelHost::device(const HostPciAddress& address) const {
  for (const DeviceSlot& slot : devices_) {
    if (slot.desc->address == address) return slot.ops.get();
  }
  return nullptr;
}

}  // namespace viommu::vfio::model
