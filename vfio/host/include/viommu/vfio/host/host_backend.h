// viommu/vfio/host/host_backend.h — the one ioctl-shaped interface between
// viommu's VFIO layer and a host: either the in-process model
// (vfio/host/model) or the real kernel (vfio/host/linux: LinuxHost).
//
// It is deliberately the syscall surface VFIO users see: open a path, ioctl
// an fd with the kernel's structs (vfio_uapi.h), pread/pwrite/mmap device
// regions, and read the sysfs facts a VMM needs. Nothing above this
// interface knows which backend answers.
//
//   int container = backend.Open("/dev/vfio/vfio");
//   int group = backend.Open("/dev/vfio/1");
//   uapi::vfio_group_status st{.argsz = sizeof(st)};
//   backend.Ioctl(group, uapi::kVfioGroupGetStatus, AsArg(&st));
//   backend.Ioctl(group, uapi::kVfioGroupSetContainer, AsArg(&container));
//   backend.Ioctl(container, uapi::kVfioSetIommu, uapi::kVfioType1v2Iommu);
//
// Errors follow the syscalls: a negative errno (-EINVAL), never exceptions
// and never aborts. Thread-safety: one control context calls these; a
// backend documents what else it allows (the model: device DMA runs on the
// control context too).
#ifndef VIOMMU_VFIO_HOST_HOST_BACKEND_H_
#define VIOMMU_VFIO_HOST_HOST_BACKEND_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "viommu/vfio/host/host_platform.h"

namespace viommu::vfio {

// The ioctl argument for a pointer argument.
template <typename T>
uintptr_t AsArg(T* p) {
  return reinterpret_cast<uintptr_t>(p);
}

class HostBackend {
 public:
  HostBackend() = default;
  HostBackend(const HostBackend&) = delete;
  HostBackend& operator=(const HostBackend&) = delete;
  virtual ~HostBackend() = default;

  // "model" or "linux".
  virtual std::string_view name() const = 0;

  // open(2) of "/dev/vfio/vfio", "/dev/vfio/<group>", "/dev/iommu" or
  // "/dev/vfio/devices/vfio<N>". Returns the new fd (>= 0) or -errno as the
  // kernel would (-ENOENT for an unknown path, -EBUSY for a second opener
  // of a group, ...).
  [[nodiscard]] virtual int Open(std::string_view path) = 0;
  // close(2). 0 or -EBADF. Closing releases what the kernel releases.
  virtual int Close(int fd) = 0;

  // ioctl(2). `arg` is what the kernel receives: a user pointer for struct
  // ioctls (AsArg(&s)) or an integer (CHECK_EXTENSION, SET_IOMMU). Returns
  // the ioctl's non-negative result or -errno.
  [[nodiscard]] virtual int Ioctl(int fd, unsigned long request,
                                  uintptr_t arg) = 0;

  // pread(2)/pwrite(2) on a device fd (region offsets from
  // VFIO_DEVICE_GET_REGION_INFO). Bytes transferred or -errno.
  [[nodiscard]] virtual int64_t Pread(int fd, void* buf, uint64_t len,
                                      uint64_t offset) = 0;
  [[nodiscard]] virtual int64_t Pwrite(int fd, const void* buf, uint64_t len,
                                       uint64_t offset) = 0;

  // mmap(2) MAP_SHARED, read/write, of a device-fd region. The mapping is
  // device memory (VM_PFNMAP): type1 can map it for P2P, iommufd cannot.
  // Errors carry the errno in the message and the mmap arguments.
  [[nodiscard]] virtual absl::StatusOr<void*> Mmap(int fd, uint64_t len,
                                                   uint64_t offset) = 0;
  virtual void Munmap(void* addr, uint64_t len) = 0;

  // sysfs: /sys/bus/pci/devices/<bdf>/iommu_group. kNotFound for an
  // unknown device.
  [[nodiscard]] virtual absl::StatusOr<uint32_t> IommuGroupOf(
      const HostPciAddress& device) = 0;
  // sysfs: /sys/kernel/iommu_groups/<group>/reserved_regions, merged as the
  // kernel merges them (sorted; same-type overlapping or adjacent regions
  // joined).
  [[nodiscard]] virtual absl::StatusOr<std::vector<ResvRegion>>
  GroupReservedRegions(uint32_t group) = 0;
  // sysfs: /sys/bus/pci/devices/<bdf>/vfio-dev/vfio<N> as
  // "/dev/vfio/devices/vfio<N>" (the cdev for iommufd). kNotFound when the
  // device has none.
  [[nodiscard]] virtual absl::StatusOr<std::string> DeviceCdevPath(
      const HostPciAddress& device) = 0;
};

}  // namespace viommu::vfio

#endif  // VIOMMU_VFIO_HOST_HOST_BACKEND_H_
