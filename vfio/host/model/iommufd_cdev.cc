// IommufdCtx: the argument rules of the VFIO cdev ioctls that reach
// iommufd (docs/vfio-iommufd-model.md), for the ModelHost device fd.
#include <cerrno>
#include <cstring>

#include "viommu/vfio/host/model/iommufd_ctx.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio::model {

namespace u = ::viommu::vfio::uapi;

namespace {
constexpr uint32_t kBindFlagToken = 1;
constexpr uint32_t kPasidFlag = 1;
}  // namespace

int IommufdCtx::CheckBindArgs(uintptr_t arg, int32_t* iommufd, bool* token,
                              bool check_tail) {
  if (arg == 0) return -EFAULT;
  u::vfio_device_bind_iommufd bind{};
  std::memcpy(&bind, reinterpret_cast<const void*>(arg), u::kBindIommufdMinsz);
  if (bind.argsz < u::kBindIommufdMinsz) return -EINVAL;
  const auto* user = reinterpret_cast<const uint8_t*>(arg);
  for (size_t i = sizeof(bind); check_tail && i < bind.argsz; ++i) {
    if (user[i] != 0) return -E2BIG;
  }
  if (bind.iommufd < 0 || (bind.flags & ~kBindFlagToken)) return -EINVAL;
  *iommufd = bind.iommufd;
  *token = (bind.flags & kBindFlagToken) != 0;
  return 0;
}

int IommufdCtx::CdevAttachPt(uint32_t devid, uintptr_t arg) {
  if (arg == 0) return -EFAULT;
  u::vfio_device_attach_iommufd_pt attach{};
  std::memcpy(&attach, reinterpret_cast<const void*>(arg),
              u::kAttachIommufdPtMinsz);
  if (attach.argsz < u::kAttachIommufdPtMinsz) return -EINVAL;
  if (attach.flags & ~kPasidFlag) return -EINVAL;
  if (attach.flags & kPasidFlag) return -EOPNOTSUPP;  // no PASID support
  uint32_t pt_id = attach.pt_id;
  if (int rc = AttachDevice(devid, &pt_id); rc < 0) return rc;
  std::memcpy(reinterpret_cast<uint8_t*>(arg) +
                  offsetof(u::vfio_device_attach_iommufd_pt, pt_id),
              &pt_id, sizeof(pt_id));
  return 0;
}

int IommufdCtx::CdevDetachPt(uint32_t devid, uintptr_t arg) {
  if (arg == 0) return -EFAULT;
  u::vfio_device_detach_iommufd_pt detach{};
  std::memcpy(&detach, reinterpret_cast<const void*>(arg),
              u::kDetachIommufdPtMinsz);
  if (detach.argsz < u::kDetachIommufdPtMinsz) return -EINVAL;
  if (detach.flags & ~kPasidFlag) return -EINVAL;
  if (detach.flags & kPasidFlag) return -EOPNOTSUPP;
  DetachDevice(devid);
  return 0;
}

}  // namespace viommu::vfio::model
