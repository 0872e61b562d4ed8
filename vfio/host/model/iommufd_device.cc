// IommufdCtx: HWPT_PAGING objects and the device side — bind, attach (auto
// domain, explicit hwpt, replace), detach, unbind (§4.11, §4.14).
#include <algorithm>
#include <cerrno>

#include "vfio/host/model/iommufd_impl.h"
#include "viommu/util/check.h"
#include "viommu/vfio/host/model/iommufd_ctx.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio::model {

namespace u = ::viommu::vfio::uapi;

IommufdDeviceDesc IommufdDeviceDesc::FromHost(const HostDeviceDesc& d,
                                              uint64_t pgsize_bitmap) {
  IommufdDeviceDesc out;
  out.name = d.address.ToString();
  out.group = d.group;
  out.aperture_start = 0;
  out.aperture_last = d.aperture_last();
  out.pgsize_bitmap = pgsize_bitmap;
  out.reserved = d.reserved;
  return out;
}

IommufdDeviceDesc IommufdDeviceDesc::Mock(uint32_t group) {
  IommufdDeviceDesc out;
  out.name = "mock";
  out.group = group;
  out.aperture_start = uint64_t{1} << 24;
  out.aperture_last = (uint64_t{1} << 31) - 1;
  out.pgsize_bitmap = 2048 | (uint64_t{2048} * 512);
  out.nest_parent_capable = true;
  return out;
}

namespace {

// The same domain geometry: the model's notion of "the driver can attach
// this device to that domain" (otherwise iommu_attach_group's EINVAL).
bool Compatible(const IommufdHwpt& h, const IommufdDeviceDesc& d) {
  return h.aperture_start == d.aperture_start &&
         h.domain->aperture_last() == d.aperture_last &&
         h.domain->pgsize_bitmap() == d.pgsize_bitmap;
}

// iopt_table_enforce_dev_resv_regions: EINVAL for an MSI mix, EADDRINUSE
// for a clash; reservations are owned by `dev`.
int ReserveDeviceRegions(IoPagetable& iopt, const IommufdDevice* dev) {
  int sw_msi = 0, msi = 0;
  for (const ResvRegion& r : dev->desc.reserved) {
    sw_msi += r.type == ResvType::kSwMsi;
    msi += r.type == ResvType::kMsi;
  }
  if (sw_msi > 1 || (sw_msi > 0 && msi > 0)) return -EINVAL;
  for (const ResvRegion& r : dev->desc.reserved) {
    if (r.type == ResvType::kDirectRelaxable) continue;
    if (int rc = iopt.Reserve(r.start, r.last, dev); rc < 0) {
      iopt.RemoveReservations(dev);
      return rc;
    }
  }
  return 0;
}

void Notify(IommufdDevice* dev) {
  if (dev->on_domain) {
    dev->on_domain(dev->hwpt != nullptr ? dev->hwpt->domain.get() : nullptr);
  }
}

}  // namespace

// ---- HWPT_PAGING
// ----------------------------------------------------------------

int IommufdCtx::Impl::AllocHwptPaging(IommufdIoas* ioas,
                                      const IommufdDeviceDesc& desc,
                                      bool auto_domain, bool nest_parent,
                                      IommufdHwpt** out) {
  auto hwpt = std::make_unique<IommufdHwpt>();
  hwpt->domain =
      std::make_unique<HostIommuDomain>(desc.aperture_last, desc.pgsize_bitmap);
  hwpt->aperture_start = desc.aperture_start;
  hwpt->auto_domain = auto_domain;
  hwpt->nest_parent = nest_parent;
  if (int rc = ioas->iopt.AddDomain(
          {hwpt->domain.get(), desc.aperture_start, desc.aperture_last});
      rc < 0) {
    return rc;
  }
  hwpt->ioas = ioas;
  ++ioas->users;
  ioas->hwpts.push_back(hwpt.get());
  *out = hwpt.get();
  Insert(std::move(hwpt));
  return 0;
}

void IommufdCtx::Impl::DestroyHwpt(IommufdHwpt* hwpt) {
  VIOMMU_CHECK(hwpt->devices.empty());
  IommufdIoas* ioas = hwpt->ioas;
  ioas->iopt.RemoveDomain(hwpt->domain.get());
  std::erase(ioas->hwpts, hwpt);
  --ioas->users;
  Erase(hwpt->id);
}

int IommufdCtx::Impl::CmdHwptAlloc(Ucmd& uc) {
  auto& cmd = *static_cast<u::iommu_hwpt_alloc*>(uc.cmd);
  if (cmd.__reserved != 0) return -EOPNOTSUPP;
  if ((cmd.data_type == 0 && cmd.data_len != 0) ||
      (cmd.data_type != 0 && cmd.data_len == 0)) {
    return -EINVAL;
  }
  auto* dev = FindAs<IommufdDevice>(cmd.dev_id, IommufdObjType::kDevice);
  if (dev == nullptr) return -ENOENT;
  IommufdObject* pt = Find(cmd.pt_id);
  if (pt == nullptr) return -EINVAL;  // not ENOENT here (§4.11)
  constexpr uint32_t kKnown = u::kHwptAllocNestParent |
                              u::kHwptAllocDirtyTracking |
                              u::kHwptAllocFaultIdValid | u::kHwptAllocPasid;
  IommufdHwpt* hwpt = nullptr;
  if (pt->type == IommufdObjType::kIoas) {
    if ((cmd.flags & ~kKnown) || cmd.data_type != 0) return -EOPNOTSUPP;
    const bool nest_parent = cmd.flags & u::kHwptAllocNestParent;
    if (nest_parent && (cmd.flags & u::kHwptAllocFaultIdValid)) {
      return -EOPNOTSUPP;
    }
    // The model's host IOMMU has no dirty tracking.
    if (cmd.flags & u::kHwptAllocDirtyTracking) return -EOPNOTSUPP;
    if (nest_parent && !dev->desc.nest_parent_capable) return -EOPNOTSUPP;
    // There are no FAULT objects in the model.
    if (cmd.flags & u::kHwptAllocFaultIdValid) return -ENOENT;
    if (int rc = AllocHwptPaging(static_cast<IommufdIoas*>(pt), dev->desc,
                                 /*auto_domain=*/false, nest_parent, &hwpt);
        rc < 0) {
      return rc;
    }
  } else if (pt->type == IommufdObjType::kHwptPaging) {
    // A nested hwpt: the model's drivers have no nesting support.
    auto* parent = static_cast<IommufdHwpt*>(pt);
    if ((cmd.flags & ~u::kHwptAllocFaultIdValid) || cmd.data_len == 0) {
      return -EOPNOTSUPP;
    }
    if (parent->auto_domain || !parent->nest_parent) return -EINVAL;
    return -EOPNOTSUPP;
  } else {
    return -EINVAL;
  }
  cmd.out_hwpt_id = hwpt->id;
  return Respond(uc);
}

// ---- attach / replace / detach
// -------------------------------------------------------

int IommufdCtx::Impl::AttachToHwpt(IommufdDevice* dev, IommufdHwpt* hwpt) {
  IommufdHwpt* old = dev->hwpt;
  if (old == hwpt) return 0;
  // The devices that move together: the device and, on replace, its
  // group-mates (they all share the group's domain).
  std::vector<IommufdDevice*> movers{dev};
  for (const auto& [id, o] : objects_) {
    if (o->type != IommufdObjType::kDevice || o.get() == dev) continue;
    auto* mate = static_cast<IommufdDevice*>(o.get());
    if (mate->desc.group != dev->desc.group || mate->hwpt == nullptr) continue;
    if (old == nullptr && mate->hwpt != hwpt) return -EINVAL;
    if (old != nullptr) movers.push_back(mate);
  }
  const bool new_ioas = old == nullptr || old->ioas != hwpt->ioas;
  if (new_ioas) {
    for (size_t i = 0; i < movers.size(); ++i) {
      if (int rc = ReserveDeviceRegions(hwpt->ioas->iopt, movers[i]); rc < 0) {
        for (size_t j = 0; j < i; ++j) {
          hwpt->ioas->iopt.RemoveReservations(movers[j]);
        }
        return rc;
      }
    }
  }
  if (!Compatible(*hwpt, dev->desc)) {
    if (new_ioas) {
      for (IommufdDevice* m : movers) hwpt->ioas->iopt.RemoveReservations(m);
    }
    return -EINVAL;
  }
  for (IommufdDevice* m : movers) {
    if (old != nullptr) {
      std::erase(old->devices, m);
      --old->users;
      if (new_ioas) old->ioas->iopt.RemoveReservations(m);
    }
    hwpt->devices.push_back(m);
    ++hwpt->users;
    m->hwpt = hwpt;
    Notify(m);
  }
  if (old != nullptr && old->auto_domain && old->devices.empty()) {
    DestroyHwpt(old);
  }
  return 0;
}

int IommufdCtx::Impl::Attach(IommufdDevice* dev, uint32_t* pt_id) {
  IommufdObject* pt = Find(*pt_id);
  if (pt == nullptr) return -ENOENT;
  if (pt->type == IommufdObjType::kHwptPaging) {
    return AttachToHwpt(dev, static_cast<IommufdHwpt*>(pt));
  }
  if (pt->type != IommufdObjType::kIoas) return -EINVAL;
  auto* ioas = static_cast<IommufdIoas*>(pt);
  // Existing automatic domains first; EINVAL means "incompatible, next".
  const std::vector<IommufdHwpt*> candidates = ioas->hwpts;
  for (IommufdHwpt* h : candidates) {
    if (!h->auto_domain) continue;
    const uint32_t id = h->id;
    int rc = AttachToHwpt(dev, h);
    if (rc == 0) {
      *pt_id = id;
      return 0;
    }
    if (rc != -EINVAL) return rc;
  }
  // A new automatic HWPT_PAGING. As the kernel's immediate attach, the
  // device's reserved regions are enforced before the domain is added.
  const bool fresh = dev->hwpt == nullptr;
  if (fresh) {
    if (int rc = ReserveDeviceRegions(ioas->iopt, dev); rc < 0) return rc;
  }
  IommufdHwpt* hwpt = nullptr;
  int rc = AllocHwptPaging(ioas, dev->desc, /*auto_domain=*/true,
                           /*nest_parent=*/false, &hwpt);
  if (fresh) ioas->iopt.RemoveReservations(dev);
  if (rc < 0) return rc;
  rc = AttachToHwpt(dev, hwpt);
  if (rc < 0) {
    DestroyHwpt(hwpt);
    return rc;
  }
  *pt_id = hwpt->id;
  return 0;
}

void IommufdCtx::Impl::Detach(IommufdDevice* dev) {
  IommufdHwpt* h = dev->hwpt;
  if (h == nullptr) return;
  std::erase(h->devices, dev);
  --h->users;
  h->ioas->iopt.RemoveReservations(dev);
  dev->hwpt = nullptr;
  Notify(dev);
  if (h->auto_domain && h->devices.empty()) DestroyHwpt(h);
}

int IommufdCtx::Impl::BindDevice(const IommufdDeviceDesc& desc,
                                 IommufdDomainFn fn, uint32_t* out_devid) {
  auto dev = std::make_unique<IommufdDevice>();
  dev->desc = desc;
  dev->on_domain = std::move(fn);
  dev->users = 1;  // the VFIO driver's reference: DESTROY gives EBUSY
  *out_devid = Insert(std::move(dev));
  return 0;
}

void IommufdCtx::Impl::Unbind(uint32_t devid) {
  auto* dev = FindAs<IommufdDevice>(devid, IommufdObjType::kDevice);
  if (dev == nullptr) return;
  Detach(dev);
  Erase(devid);
}

// ---- IommufdCtx device API
// ---------------------------------------------------------------

int IommufdCtx::BindDevice(const IommufdDeviceDesc& desc,
                           IommufdDomainFn on_domain, uint32_t* out_devid) {
  return impl_->BindDevice(desc, std::move(on_domain), out_devid);
}

int IommufdCtx::AttachDevice(uint32_t devid, uint32_t* pt_id) {
  auto* dev = impl_->FindAs<IommufdDevice>(devid, IommufdObjType::kDevice);
  if (dev == nullptr) return -ENOENT;
  return impl_->Attach(dev, pt_id);
}

void IommufdCtx::DetachDevice(uint32_t devid) {
  auto* dev = impl_->FindAs<IommufdDevice>(devid, IommufdObjType::kDevice);
  if (dev != nullptr) impl_->Detach(dev);
}

void IommufdCtx::UnbindDevice(uint32_t devid) { impl_->Unbind(devid); }

int IommufdCtx::GetOrCreateCompatIoas(uint32_t* out_ioas_id) {
  if (impl_->compat_ioas_ == nullptr) {
    const uint32_t id =
        impl_->Insert(std::make_unique<IommufdIoas>(impl_->memory_));
    impl_->compat_ioas_ = impl_->FindIoas(id);
  }
  *out_ioas_id = impl_->compat_ioas_->id;
  return 0;
}

int IommufdCtx::AttachDeviceToCompatIoas(uint32_t devid) {
  if (impl_->compat_ioas_ == nullptr) return -ENODEV;
  uint32_t pt = impl_->compat_ioas_->id;
  return AttachDevice(devid, &pt);
}

int IommufdCtx::TestAddReserved(uint32_t ioas_id, uint64_t start,
                                uint64_t length) {
  if (length == 0) return -EINVAL;
  uint64_t last;
  if (__builtin_add_overflow(start, length - 1, &last)) return -EOVERFLOW;
  IommufdIoas* ioas = impl_->FindIoas(ioas_id);
  if (ioas == nullptr) return -ENOENT;
  return ioas->iopt.Reserve(start, last, nullptr);
}

HostIommuDomain* IommufdCtx::DeviceDomain(uint32_t devid) const {
  auto* dev = impl_->FindAs<IommufdDevice>(devid, IommufdObjType::kDevice);
  return dev != nullptr && dev->hwpt != nullptr ? dev->hwpt->domain.get()
                                                : nullptr;
}

uint32_t IommufdCtx::DeviceHwpt(uint32_t devid) const {
  auto* dev = impl_->FindAs<IommufdDevice>(devid, IommufdObjType::kDevice);
  return dev != nullptr && dev->hwpt != nullptr ? dev->hwpt->id : 0;
}

}  // namespace viommu::vfio::model
