#include "vfio/host/model/vfio_container_model.h"

#include <algorithm>
#include <cerrno>

#include "vfio/host/model/vfio_group_model.h"
#include "viommu/util/check.h"

namespace viommu::vfio::model {

int VfioContainerModel::Ioctl(unsigned long request, uintptr_t arg) {
  switch (request) {
    case uapi::kVfioGetApiVersion:
      return uapi::kVfioApiVersion;
    case uapi::kVfioCheckExtension:
      // Without a driver every registered driver is asked (only type1
      // here); with one, the question is forwarded to it.
      return Type1Iommu::CheckExtension(kernel_, iommu_.get(), arg);
    case uapi::kVfioSetIommu:
      return SetIommu(arg);
    default:
      if (iommu_ == nullptr) return -EINVAL;
      return iommu_->Ioctl(request, arg);
  }
}

int VfioContainerModel::SetIommu(unsigned long type) {
  if (groups_.empty() || iommu_ != nullptr) return -EINVAL;
  if (Type1Iommu::CheckExtension(kernel_, nullptr, type) <= 0) return -ENODEV;
  // type1's open() accepts only its iommu types (UNMAP_ALL answers 1 to
  // CHECK_EXTENSION but is not one: EINVAL).
  Type1Iommu::Config config{.kernel = kernel_,
                            .dma_entry_limit = dma_entry_limit_};
  switch (type) {
    case uapi::kVfioType1Iommu:
      config.v2 = false;
      break;
    case uapi::kVfioType1NestingIommu:
      config.nesting = true;
      config.v2 = true;
      break;
    case uapi::kVfioType1v2Iommu:
      config.v2 = true;
      break;
    default:
      return -EINVAL;
  }
  auto iommu = std::make_unique<Type1Iommu>(config, mem_, faults_);
  for (size_t i = 0; i < groups_.size(); ++i) {
    if (int rc = iommu->AttachGroup(groups_[i]->desc()); rc < 0) {
      for (size_t j = 0; j < i; ++j) iommu->DetachGroup(groups_[j]->id());
      return rc;
    }
  }
  iommu_ = std::move(iommu);
  return 0;
}

int VfioContainerModel::AddGroup(VfioGroupModel* group) {
  VIOMMU_CHECK(std::find(groups_.begin(), groups_.end(), group) ==
               groups_.end());
  if (iommu_ != nullptr) {
    if (int rc = iommu_->AttachGroup(group->desc()); rc < 0) return rc;
  }
  groups_.push_back(group);
  return 0;
}

void VfioContainerModel::RemoveGroup(VfioGroupModel* group) {
  auto it = std::find(groups_.begin(), groups_.end(), group);
  VIOMMU_CHECK(it != groups_.end());
  if (iommu_ != nullptr) iommu_->DetachGroup(group->id());
  groups_.erase(it);
  if (groups_.empty()) iommu_.reset();  // the driver's release
}

}  // namespace viommu::vfio::model
