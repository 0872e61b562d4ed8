// vfio/host/model/vfio_container_model.h (private) — the legacy VFIO
// container (/dev/vfio/vfio) of docs/vfio-type1-model.md: the group
// list, the IOMMU driver chosen by SET_IOMMU (a Type1Iommu) and the ioctls
// a container fd answers.
//
//   auto c = std::make_shared<VfioContainerModel>(KernelVersion::k6_1,
//                                                 65535, &mem, &faults);
//   group->SetContainer(c);                         // §3.2
//   c->Ioctl(uapi::kVfioSetIommu, uapi::kVfioType1v2Iommu);
//
// The container lives while its fd or any group references it
// (shared_ptr). Thread-safety: control context only.
#ifndef VFIO_HOST_MODEL_VFIO_CONTAINER_MODEL_H_
#define VFIO_HOST_MODEL_VFIO_CONTAINER_MODEL_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "viommu/vfio/host/model/type1_iommu.h"

namespace viommu::vfio::model {

class VfioGroupModel;

class VfioContainerModel {
 public:
  // `mem` and `faults` (nullable) are not owned and outlive this.
  VfioContainerModel(KernelVersion kernel, uint32_t dma_entry_limit,
                     ProcessMemory* mem, ModelFaults* faults)
      : kernel_(kernel),
        dma_entry_limit_(dma_entry_limit),
        mem_(mem),
        faults_(faults) {}
  VfioContainerModel(const VfioContainerModel&) = delete;
  VfioContainerModel& operator=(const VfioContainerModel&) = delete;

  // GET_API_VERSION (0), CHECK_EXTENSION (asks type1 without a driver,
  // forwards with one), SET_IOMMU (-EINVAL without groups or with a driver,
  // -ENODEV for an unsupported type, else the attach errors with every
  // group rolled back), anything else: -EINVAL without a driver, else
  // type1's answer (-ENOTTY for unknown requests).
  [[nodiscard]] int Ioctl(unsigned long request, uintptr_t arg);

  // SET_CONTAINER's container half: attaches the group now if a driver is
  // set (errors propagate, the group is not added). REQUIRES: not a member.
  [[nodiscard]] int AddGroup(VfioGroupModel* group);
  // UNSET_CONTAINER's half: detaches; the last group releases the driver
  // and with it every mapping. REQUIRES: a member.
  void RemoveGroup(VfioGroupModel* group);

  // nullptr before SET_IOMMU.
  Type1Iommu* iommu() const { return iommu_.get(); }
  const std::vector<VfioGroupModel*>& groups() const { return groups_; }

 private:
  int SetIommu(unsigned long type);

  const KernelVersion kernel_;
  const uint32_t dma_entry_limit_;
  ProcessMemory* const mem_;             // not owned
  ModelFaults* const faults_;            // not owned, nullable
  std::vector<VfioGroupModel*> groups_;  // not owned; groups remove themselves
  std::unique_ptr<Type1Iommu> iommu_;
};

}  // namespace viommu::vfio::model

#endif  // VFIO_HOST_MODEL_VFIO_CONTAINER_MODEL_H_
