// tests/vfio/host/linux/model_syscalls.h — a scripted kernel for LinuxHost:
// SysCalls answered by a model HostBackend (errno set as libc would), and
// a sysfs tree written to a temporary directory from the model's platform.
// The kernels reachable here (6.1) have no iommufd, so LinuxHost's iommufd
// path is exercised against this fake, which answers as the iommufd model
// does.
//
//   model::ModelHost model(DefaultHostPlatform());
//   ModelSysCalls sys(&model);
//   FakeSysfs sysfs(model);
//   LinuxHost host({.sysfs_root = sysfs.root(), .syscalls = &sys});
#ifndef VIOMMU_TESTS_VFIO_HOST_LINUX_MODEL_SYSCALLS_H_
#define VIOMMU_TESTS_VFIO_HOST_LINUX_MODEL_SYSCALLS_H_

#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "viommu/util/check.h"
#include "viommu/vfio/host/linux/linux_host.h"
#include "viommu/vfio/host/model/model_host.h"

namespace viommu::vfio {

class ModelSysCalls final : public SysCalls {
 public:
  explicit ModelSysCalls(HostBackend* model) : model_(model) {}

  int Open(const char* path, int /*flags*/) override {
    ++opens;
    return Ret(model_->Open(path));
  }
  int Close(int fd) override {
    ++closes;
    return Ret(model_->Close(fd));
  }
  int Ioctl(int fd, unsigned long request, uintptr_t arg) override {
    ++ioctls;
    return Ret(model_->Ioctl(fd, request, arg));
  }
  int64_t Pread(int fd, void* buf, uint64_t len, uint64_t off) override {
    const int64_t n = model_->Pread(fd, buf, len, off);
    return n < 0 ? Fail(static_cast<int>(-n)) : n;
  }
  int64_t Pwrite(int fd, const void* buf, uint64_t len, uint64_t off) override {
    const int64_t n = model_->Pwrite(fd, buf, len, off);
    return n < 0 ? Fail(static_cast<int>(-n)) : n;
  }
  void* Mmap(int fd, uint64_t len, uint64_t off) override {
    absl::StatusOr<void*> p = model_->Mmap(fd, len, off);
    if (!p.ok()) {
      errno = EINVAL;
      return MAP_FAILED;
    }
    return *p;
  }
  int Munmap(void* addr, uint64_t len) override {
    model_->Munmap(addr, len);
    return 0;
  }

  int opens = 0, closes = 0, ioctls = 0;

 private:
  static int Fail(int err) {
    errno = err;
    return -1;
  }
  static int Ret(int rc) { return rc < 0 ? Fail(-rc) : rc; }

  HostBackend* model_;
};

// /sys as the kernel lays it out for the model's devices: the iommu_group
// link, the group's reserved_regions, and (when `cdevs`) vfio-dev/vfioN/dev.
class FakeSysfs {
 public:
  explicit FakeSysfs(model::ModelHost& model, bool cdevs = true) {
    char tmpl[] = "/tmp/viommu-sysfs-XXXXXX";
    const char* dir = ::mkdtemp(tmpl);
    VIOMMU_CHECK(dir != nullptr);  // a test machine without a writable /tmp
    root_ = dir;
    namespace fs = std::filesystem;
    for (const HostDeviceDesc& d : model.platform().devices) {
      const fs::path dev =
          fs::path(root_) / "bus/pci/devices" / d.address.ToString();
      const fs::path group =
          fs::path(root_) / "kernel/iommu_groups" / std::to_string(d.group);
      fs::create_directories(dev);
      fs::create_directories(group);
      fs::create_symlink(
          "../../../kernel/iommu_groups/" + std::to_string(d.group),
          dev / "iommu_group");
      std::ofstream resv(group / "reserved_regions");
      const std::vector<ResvRegion> regions =
          model.GroupReservedRegions(d.group).value_or(
              std::vector<ResvRegion>{});
      for (const ResvRegion& r : regions)
        resv << FormatResvRegionLine(r) << "\n";
      absl::StatusOr<std::string> cdev = model.DeviceCdevPath(d.address);
      if (cdevs && cdev.ok()) {
        const fs::path node = dev / "vfio-dev" / fs::path(*cdev).filename();
        fs::create_directories(node);
        std::ofstream(node / "dev") << "511:0\n";
      }
    }
  }
  ~FakeSysfs() { std::filesystem::remove_all(root_); }
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

}  // namespace viommu::vfio

#endif  // VIOMMU_TESTS_VFIO_HOST_LINUX_MODEL_SYSCALLS_H_
