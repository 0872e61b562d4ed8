// vfio/host/model/vfio_group_model.h (private) — one legacy VFIO group
// (/dev/vfio/<N>) of docs/vfio-type1-model.md: single opener, status,
// SET/UNSET_CONTAINER, and the checks of GET_DEVICE_FD.
//
//   VfioGroupModel g(type1_group_desc, {"0000:01:00.0"});
//   g.SetContainer(container);          // 0 / -EINVAL / attach errors
//   if (int rc = g.CheckDeviceOpen("0000:01:00.0"); rc < 0) return rc;
//
// The fd bookkeeping (opened, device fd count) is the model host's; the
// group only answers. Thread-safety: control context only.
#ifndef VFIO_HOST_MODEL_VFIO_GROUP_MODEL_H_
#define VFIO_HOST_MODEL_VFIO_GROUP_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vfio/host/model/vfio_container_model.h"
#include "viommu/vfio/host/model/iommufd_ctx.h"
#include "viommu/vfio/host/model/type1_iommu.h"

namespace viommu::vfio::model {

class VfioGroupModel {
 public:
  VfioGroupModel(Type1Group desc, std::vector<std::string> device_names)
      : desc_(std::move(desc)), device_names_(std::move(device_names)) {}
  VfioGroupModel(const VfioGroupModel&) = delete;
  VfioGroupModel& operator=(const VfioGroupModel&) = delete;
  ~VfioGroupModel();

  uint32_t id() const { return desc_.id; }
  const Type1Group& desc() const { return desc_; }
  bool HasDevice(std::string_view name) const;

  // GROUP_GET_STATUS on the user struct at `arg`: -EFAULT, -EINVAL
  // (argsz < 8), else 0 with flags VIABLE | CONTAINER_SET with a container
  // or iommufd; without one VIABLE unless `dma_owner_claimed` (a device of
  // the group still bound to an iommufd after UNSET_CONTAINER: flags 0, as
  // Linux 6.12 answered).
  [[nodiscard]] int GetStatus(uintptr_t arg,
                              bool dma_owner_claimed = false) const;
  // GROUP_SET_CONTAINER: -EINVAL if a container or an iommufd is set; the
  // container's attach errors otherwise.
  [[nodiscard]] int SetContainer(std::shared_ptr<VfioContainerModel> c);
  // GROUP_SET_CONTAINER with an iommufd (6.2+): -EINVAL if a container or
  // an iommufd is set; else the ctx's compat IOAS is created if missing.
  [[nodiscard]] int SetIommufd(std::shared_ptr<IommufdCtx> ctx);
  // GROUP_UNSET_CONTAINER: -EINVAL when neither is set; -EBUSY with device
  // fds open on a container (an iommufd is dropped regardless: bound
  // devices keep their own reference).
  [[nodiscard]] int UnsetContainer();
  // The checks of GROUP_GET_DEVICE_FD in order: -ENODEV (no such device),
  // -EINVAL (no container nor iommufd, or SET_IOMMU not done). 0 when a
  // device fd may be created.
  [[nodiscard]] int CheckDeviceOpen(std::string_view name) const;

  VfioContainerModel* container() const { return container_.get(); }
  const std::shared_ptr<IommufdCtx>& iommufd() const { return iommufd_; }
  bool has_container() const {
    return container_ != nullptr || iommufd_ != nullptr;
  }

  // Bookkeeping maintained by the model host.
  bool fd_open = false;  // the group fd is open (single opener)
  int device_fds = 0;    // open device fds of this group

 private:
  Type1Group desc_;
  std::vector<std::string> device_names_;
  std::shared_ptr<VfioContainerModel> container_;
  std::shared_ptr<IommufdCtx> iommufd_;
};

}  // namespace viommu::vfio::model

#endif  // VFIO_HOST_MODEL_VFIO_GROUP_MODEL_H_
