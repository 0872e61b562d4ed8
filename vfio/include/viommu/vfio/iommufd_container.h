// viommu/vfio/iommufd_container.h — IommufdContainer, a VFIO container on
// an iommufd IOAS (QEMU's VFIOIOMMUFDContainer), with devices attached
// through their VFIO cdevs.
//
//   // One /dev/iommu fd per `-object iommufd` (owned by the caller).
//   auto dev = IommufdContainer::BindDevice(backend, iommufd_fd,
//                                           "/dev/vfio/devices/vfio0",
//                                           "0000:01:00.0");
//   absl::Status s = existing->TryAttachDevice(*dev);  // EINVAL: next one
//   auto c = IommufdContainer::Create(backend, &as, /*id=*/2, iommufd_fd,
//                                     std::move(*dev), options);
//
// Setup: IOMMU_IOAS_ALLOC, VFIO_DEVICE_ATTACH_IOMMUFD_PT(ioas),
// IOMMU_IOAS_IOVA_RANGES (EMSGSIZE retry; alignment = page sizes; on
// failure the 64-bit/4 KiB fallback with a warning, as QEMU), then the
// listener. Maps are IOMMU_IOAS_MAP with FIXED_IOVA; IOMMU_IOAS_UNMAP's
// ENOENT counts as success (vIOMMUs send redundant unmaps). Teardown: the
// listener off, everything unmapped, each device detached and its cdev fd
// closed (unbinds), IOMMU_DESTROY of the IOAS. The iommufd fd is not
// closed.
//
// Thread-safety: control context only. HostBackend, AddressSpace and the
// iommufd fd are not owned and must outlive the container.
#ifndef VIOMMU_VFIO_IOMMUFD_CONTAINER_H_
#define VIOMMU_VFIO_IOMMUFD_CONTAINER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "viommu/vfio/backend_fd.h"
#include "viommu/vfio/container.h"

namespace viommu::vfio {

// A device cdev opened and bound to an iommufd, not yet attached.
struct IommufdDevice {
  std::string name;
  BackendFd fd;
  uint32_t devid = 0;
};

class IommufdContainer final : public VfioContainer {
 public:
  // open(cdev) + VFIO_DEVICE_BIND_IOMMUFD.
  // Errors: HostCallError of the open or ioctl.
  [[nodiscard]] static absl::StatusOr<IommufdDevice> BindDevice(
      HostBackend* backend, int iommufd, const std::string& cdev,
      std::string name);

  // A new IOAS with `device` attached; the listener maps `as` at once.
  // Errors: the first host error or listener error; everything done so
  // far is undone (the device fd is closed).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<IommufdContainer>> Create(
      HostBackend* backend, memory::AddressSpace* as, uint32_t id, int iommufd,
      IommufdDevice device, ContainerOptions options);

  ~IommufdContainer() override;

  // VFIO_DEVICE_ATTACH_IOMMUFD_PT to this IOAS. On success the device
  // moves in and the IOVA ranges are re-read. Errors: the ioctl's; errno
  // EINVAL means incompatible, EADDRINUSE conflicting (a reserved region
  // or the aperture against this IOAS's areas): try the next. On error
  // `device` is left untouched.
  [[nodiscard]] absl::Status TryAttachDevice(IommufdDevice& device);
  // VFIO_DEVICE_DETACH_IOMMUFD_PT and close. False if unknown.
  bool DetachDevice(const std::string& name);
  // The device's cdev fd (for region access), or -1.
  int DeviceFd(const std::string& name) const;

  int iommufd() const { return iommufd_; }
  uint32_t ioas_id() const { return ioas_id_; }
  size_t device_count() const { return attached_.size(); }

 protected:
  [[nodiscard]] absl::Status HostMap(Iova iova, uint64_t size, Hva hva,
                                     bool readonly) override;
  [[nodiscard]] absl::Status HostUnmap(Iova iova, uint64_t size) override;
  bool HasUnmapAll() const override { return true; }  // iova 0, length ~0
  [[nodiscard]] absl::Status HostUnmapAll() override;
  [[nodiscard]] absl::Status ReadIovaInfo() override;
  void ReleaseHost() override;

 private:
  IommufdContainer(HostBackend* backend, memory::AddressSpace* as, uint32_t id,
                   int iommufd, ContainerOptions options);
  [[nodiscard]] absl::Status Setup(IommufdDevice device);
  [[nodiscard]] absl::Status Attach(IommufdDevice& device);
  void Detach(IommufdDevice& device);

  const int iommufd_;  // not owned
  uint32_t ioas_id_ = 0;
  bool ioas_allocated_ = false;
  std::vector<IommufdDevice> attached_;
};

}  // namespace viommu::vfio

#endif  // VIOMMU_VFIO_IOMMUFD_CONTAINER_H_
