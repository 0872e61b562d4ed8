// viommu/vfio/host/linux/linux_host.h — the real-kernel HostBackend: the
// only code in viommu that opens /dev/vfio and /dev/iommu, calls ioctl(2)
// on their fds and mmaps device regions.
//
//   LinuxHost host;                                  // the running kernel
//   int c = host.Open("/dev/vfio/vfio");             // -ENOENT: no vfio
//   absl::StatusOr<uint32_t> g = host.IommuGroupOf(bdf);  // from sysfs
//   ...everything else as with any HostBackend (host_backend.h)
//
// Every call passes straight to the syscall and returns its result or
// -errno, exactly what the kernel said: the container layer above decides
// what an errno means. Sysfs facts are read below `sysfs_root` ("/sys").
//
// Fd ownership: the fds this backend opened (Open, and the device fds that
// GROUP_GET_DEVICE_FD returns) are owned by it, move-only (UniqueFd), and
// closed by Close or when the LinuxHost is destroyed. Mmaps are the
// caller's to Munmap.
//
// The syscalls themselves go through a `SysCalls` table so tests can
// script the kernel (a fake that answers as the iommufd model does, since
// the kernels reachable here have no iommufd); production uses
// RealSysCalls(). Thread-safety: one control context.
#ifndef VIOMMU_VFIO_HOST_LINUX_LINUX_HOST_H_
#define VIOMMU_VFIO_HOST_LINUX_LINUX_HOST_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "viommu/vfio/host/host_backend.h"
#include "viommu/vfio/host/linux/unique_fd.h"

namespace viommu::vfio {

// The syscalls LinuxHost makes, raw: each returns what libc returns and
// leaves the reason in errno (Mmap: MAP_FAILED and errno).
class SysCalls {
 public:
  virtual ~SysCalls() = default;
  virtual int Open(const char* path, int flags) = 0;
  virtual int Close(int fd) = 0;
  virtual int Ioctl(int fd, unsigned long request, uintptr_t arg) = 0;
  virtual int64_t Pread(int fd, void* buf, uint64_t len, uint64_t off) = 0;
  virtual int64_t Pwrite(int fd, const void* buf, uint64_t len,
                         uint64_t off) = 0;
  virtual void* Mmap(int fd, uint64_t len, uint64_t off) = 0;
  virtual int Munmap(void* addr, uint64_t len) = 0;
};

// The process's real syscalls (a static instance).
SysCalls& RealSysCalls();

struct LinuxHostOptions {
  std::string sysfs_root = "/sys";
  SysCalls* syscalls = nullptr;  // null: RealSysCalls()
};

class LinuxHost final : public HostBackend {
 public:
  explicit LinuxHost(LinuxHostOptions options = {});
  ~LinuxHost() override;

  std::string_view name() const override { return "linux"; }

  [[nodiscard]] int Open(std::string_view path) override;
  int Close(int fd) override;
  [[nodiscard]] int Ioctl(int fd, unsigned long request,
                          uintptr_t arg) override;
  [[nodiscard]] int64_t Pread(int fd, void* buf, uint64_t len,
                              uint64_t offset) override;
  [[nodiscard]] int64_t Pwrite(int fd, const void* buf, uint64_t len,
                               uint64_t offset) override;
  [[nodiscard]] absl::StatusOr<void*> Mmap(int fd, uint64_t len,
                                           uint64_t offset) override;
  void Munmap(void* addr, uint64_t len) override;

  [[nodiscard]] absl::StatusOr<uint32_t> IommuGroupOf(
      const HostPciAddress& device) override;
  [[nodiscard]] absl::StatusOr<std::vector<ResvRegion>> GroupReservedRegions(
      uint32_t group) override;
  [[nodiscard]] absl::StatusOr<std::string> DeviceCdevPath(
      const HostPciAddress& device) override;

  // The fds this backend owns now (tests: nothing leaks).
  size_t open_fds() const { return fds_.size(); }

 private:
  int Adopt(int fd);

  LinuxHostOptions options_;
  SysCalls& sys_;
  std::map<int, UniqueFd> fds_;
};

}  // namespace viommu::vfio

#endif  // VIOMMU_VFIO_HOST_LINUX_LINUX_HOST_H_
