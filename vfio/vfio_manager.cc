#include "viommu/vfio/vfio_manager.h"

#include <algorithm>
#include <cerrno>
#include <optional>
#include <utility>

#include "absl/strings/str_format.h"
#include "viommu/util/status_macros.h"
#include "viommu/vfio/host/vfio_uapi.h"
#include "viommu/vfio/iommufd_container.h"
#include "viommu/vfio/type1_container.h"
#include "viommu/vfio/vfio_status.h"

namespace viommu::vfio {

VfioManager::VfioManager(HostBackend* backend, Options options)
    : backend_(backend), options_(std::move(options)) {}

VfioManager::~VfioManager() { DetachAll(); }

ContainerOptions VfioManager::OptionsFor(uint32_t id) {
  ContainerOptions o;
  o.host_page_size = options_.host_page_size;
  if (options_.on_error) {
    o.on_error = [this, id](const absl::Status& s) {
      options_.on_error(id, s);
    };
  }
  if (options_.on_warning) {
    o.on_warning = [this, id](const absl::Status& s) {
      options_.on_warning(id, s);
    };
  }
  if (options_.on_iova_ranges_changed) {
    o.on_iova_ranges_changed = [this, id](const std::vector<Range>& r) {
      options_.on_iova_ranges_changed(id, r);
    };
  }
  return o;
}

absl::StatusOr<VfioContainer*> VfioManager::AttachDevice(
    memory::AddressSpace* as, const VfioDeviceSpec& spec) {
  const std::string bdf = spec.host.ToString();
  if (ContainerOf(spec.host) != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrFormat("vfio: %s is already attached", bdf));
  }
  const std::string name = spec.name.empty() ? bdf : spec.name;
  auto dev = std::make_unique<Device>();
  dev->host = spec.host;
  dev->name = name;
  absl::StatusOr<VfioContainer*> c =
      spec.iommufd.empty() ? AttachType1(as, spec.host, name, &dev->group)
                           : AttachIommufd(as, spec, name);
  if (!c.ok()) {
    return Annotate(c.status(), absl::StrFormat("vfio: attaching %s to %s", bdf,
                                                as->name()));
  }
  dev->container = *c;
  devices_.push_back(std::move(dev));
  return *c;
}

absl::StatusOr<VfioContainer*> VfioManager::AttachType1(
    memory::AddressSpace* as, const HostPciAddress& host,
    const std::string& name, uint32_t* group_out) {
  VIOMMU_ASSIGN_OR_RETURN(uint32_t group, backend_->IommuGroupOf(host));
  *group_out = group;
  // A group already open stays in its container (and AddressSpace).
  for (const auto& c : containers_) {
    if (c->backend() != ContainerBackend::kType1) continue;
    auto* t1 = static_cast<Type1Container*>(c.get());
    if (!t1->HasGroup(group)) continue;
    if (c->address_space() != as) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "group %u used in multiple address spaces (%s and %s)", group,
          c->address_space()->name(), as->name()));
    }
    t1->AddGroupDevice(group, name);
    return c.get();
  }
  VIOMMU_ASSIGN_OR_RETURN(Type1Group g,
                          Type1Container::OpenGroup(backend_, group));
  g.devices.push_back(name);
  for (const auto& c : containers_) {
    if (c->backend() != ContainerBackend::kType1 || c->address_space() != as) {
      continue;
    }
    auto* t1 = static_cast<Type1Container*>(c.get());
    absl::Status s = t1->TryAddGroup(g);
    if (s.ok()) return c.get();
    if (StatusErrno(s) != EINVAL) return s;
    // Incompatible with this container: try the next one.
  }
  g.devices.clear();  // Create lists `name` itself
  const uint32_t id = next_id_++;
  VIOMMU_ASSIGN_OR_RETURN(std::unique_ptr<Type1Container> created,
                          Type1Container::Create(backend_, as, id, std::move(g),
                                                 name, OptionsFor(id)));
  containers_.push_back(std::move(created));
  return containers_.back().get();
}

absl::StatusOr<int> VfioManager::IommufdFd(const std::string& id) {
  auto it = iommufds_.find(id);
  if (it != iommufds_.end()) return it->second.get();
  BackendFd fd(backend_, backend_->Open("/dev/iommu"));
  if (!fd.valid()) {
    return HostCallError(fd.get(), "open",
                         absl::StrFormat("/dev/iommu (iommufd %s)", id));
  }
  const int raw = fd.get();
  iommufds_.emplace(id, std::move(fd));
  return raw;
}

absl::StatusOr<VfioContainer*> VfioManager::AttachIommufd(
    memory::AddressSpace* as, const VfioDeviceSpec& spec,
    const std::string& name) {
  VIOMMU_ASSIGN_OR_RETURN(int iommufd, IommufdFd(spec.iommufd));
  VIOMMU_ASSIGN_OR_RETURN(std::string cdev,
                          backend_->DeviceCdevPath(spec.host));
  VIOMMU_ASSIGN_OR_RETURN(
      IommufdDevice dev,
      IommufdContainer::BindDevice(backend_, iommufd, cdev, name));
  for (const auto& c : containers_) {
    if (c->backend() != ContainerBackend::kIommufd ||
        c->address_space() != as) {
      continue;
    }
    auto* ic = static_cast<IommufdContainer*>(c.get());
    if (ic->iommufd() != iommufd) continue;
    absl::Status s = ic->TryAttachDevice(dev);
    if (s.ok()) return c.get();
    // iommufd answers a conflict (a reserved region or the aperture against
    // this IOAS's areas) with EADDRINUSE where type1 says EINVAL; a fresh
    // IOAS has no areas, so try the next container for both (QEMU tries it
    // on any error).
    const std::optional<int> err = StatusErrno(s);
    if (err != EINVAL && err != EADDRINUSE) return s;
  }
  const uint32_t id = next_id_++;
  VIOMMU_ASSIGN_OR_RETURN(
      std::unique_ptr<IommufdContainer> created,
      IommufdContainer::Create(backend_, as, id, iommufd, std::move(dev),
                               OptionsFor(id)));
  containers_.push_back(std::move(created));
  return containers_.back().get();
}

void VfioManager::DestroyContainer(VfioContainer* c) {
  auto it = std::find_if(containers_.begin(), containers_.end(),
                         [&](const auto& p) { return p.get() == c; });
  if (it != containers_.end()) containers_.erase(it);  // Shutdown()
}

absl::Status VfioManager::DetachDevice(const HostPciAddress& host) {
  auto it = std::find_if(devices_.begin(), devices_.end(),
                         [&](const auto& d) { return d->host == host; });
  if (it == devices_.end()) {
    return absl::NotFoundError(
        absl::StrFormat("vfio: %s is not attached", host.ToString()));
  }
  std::unique_ptr<Device> dev = std::move(*it);
  devices_.erase(it);
  dev->device_fd.Reset();
  VfioContainer* c = dev->container;
  if (c->devices().size() <= 1) {
    DestroyContainer(c);  // unmaps everything before releasing the host
  } else if (c->backend() == ContainerBackend::kType1) {
    static_cast<Type1Container*>(c)->RemoveGroupDevice(dev->group, dev->name);
  } else {
    static_cast<IommufdContainer*>(c)->DetachDevice(dev->name);
  }
  return absl::OkStatus();
}

void VfioManager::DetachAll() {
  for (auto& d : devices_) d->device_fd.Reset();
  devices_.clear();
  // Newest first, as QEMU unwinds.
  while (!containers_.empty()) containers_.pop_back();
}

absl::StatusOr<int> VfioManager::DeviceFd(const HostPciAddress& host) {
  for (auto& d : devices_) {
    if (!(d->host == host)) continue;
    if (d->container->backend() == ContainerBackend::kIommufd) {
      return static_cast<IommufdContainer*>(d->container)->DeviceFd(d->name);
    }
    if (d->device_fd.valid()) return d->device_fd.get();
    const int gfd =
        static_cast<Type1Container*>(d->container)->GroupFd(d->group);
    std::string bdf = d->host.ToString();  // NUL-terminated for the kernel
    int rc =
        backend_->Ioctl(gfd, uapi::kVfioGroupGetDeviceFd, AsArg(bdf.data()));
    if (rc < 0) {
      return HostCallError(rc, "VFIO_GROUP_GET_DEVICE_FD",
                           absl::StrFormat("group=%u %s", d->group, bdf));
    }
    d->device_fd = BackendFd(backend_, rc);
    return rc;
  }
  return absl::NotFoundError(
      absl::StrFormat("vfio: %s is not attached", host.ToString()));
}

VfioContainer* VfioManager::ContainerOf(const HostPciAddress& host) const {
  for (const auto& d : devices_) {
    if (d->host == host) return d->container;
  }
  return nullptr;
}

std::vector<VfioContainer*> VfioManager::ContainersOf(
    const memory::AddressSpace* as) const {
  std::vector<VfioContainer*> out;
  for (const auto& c : containers_) {
    if (c->address_space() == as) out.push_back(c.get());
  }
  return out;
}

absl::StatusOr<devcore::HostIommuDevice> VfioManager::HostIommuInfo(
    const HostPciAddress& host) const {
  VfioContainer* c = ContainerOf(host);
  if (c == nullptr) {
    return absl::NotFoundError(
        absl::StrFormat("vfio: %s is not attached", host.ToString()));
  }
  return c->HostIommuInfo();
}

std::vector<ContainerQuery> VfioManager::Query() const {
  std::vector<ContainerQuery> out;
  for (const auto& c : containers_) out.push_back(c->Query());
  std::sort(out.begin(), out.end(),
            [](const ContainerQuery& a, const ContainerQuery& b) {
              return a.id < b.id;
            });
  return out;
}

}  // namespace viommu::vfio
