#include "vfio/host/model/vfio_group_model.h"

#include <cerrno>
#include <cstring>

namespace viommu::vfio::model {

VfioGroupModel::~VfioGroupModel() {
  if (container_ != nullptr) container_->RemoveGroup(this);
}

bool VfioGroupModel::HasDevice(std::string_view name) const {
  for (const std::string& d : device_names_) {
    if (d == name) return true;
  }
  return false;
}

int VfioGroupModel::GetStatus(uintptr_t arg, bool dma_owner_claimed) const {
  if (arg == 0) return -EFAULT;
  uapi::vfio_group_status st;
  std::memcpy(&st, reinterpret_cast<const void*>(arg), sizeof(st));
  if (st.argsz < sizeof(st)) return -EINVAL;
  // The model's groups have no kernel driver bound: viable unless a device
  // bound to an iommufd still owns the group's DMA.
  st.flags = 0;
  if (has_container()) {
    st.flags = uapi::kGroupFlagsViable | uapi::kGroupFlagsContainerSet;
  } else if (!dma_owner_claimed) {
    st.flags = uapi::kGroupFlagsViable;
  }
  std::memcpy(reinterpret_cast<void*>(arg), &st, sizeof(st));
  return 0;
}

int VfioGroupModel::SetContainer(std::shared_ptr<VfioContainerModel> c) {
  if (has_container()) return -EINVAL;
  if (int rc = c->AddGroup(this); rc < 0) return rc;
  container_ = std::move(c);
  return 0;
}

int VfioGroupModel::SetIommufd(std::shared_ptr<IommufdCtx> ctx) {
  if (has_container()) return -EINVAL;
  uint32_t ioas_id = 0;
  if (int rc = ctx->GetOrCreateCompatIoas(&ioas_id); rc < 0) return rc;
  iommufd_ = std::move(ctx);
  return 0;
}

int VfioGroupModel::UnsetContainer() {
  if (!has_container()) return -EINVAL;
  if (container_ != nullptr) {
    if (device_fds > 0) return -EBUSY;
    container_->RemoveGroup(this);
    container_.reset();
  }
  iommufd_.reset();
  return 0;
}

int VfioGroupModel::CheckDeviceOpen(std::string_view name) const {
  if (!HasDevice(name)) return -ENODEV;
  if (!has_container()) return -EINVAL;
  if (container_ != nullptr && container_->iommu() == nullptr) return -EINVAL;
  return 0;
}

}  // namespace viommu::vfio::model
