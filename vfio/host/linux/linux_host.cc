#include "viommu/vfio/host/linux/linux_host.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio {
namespace {

namespace fs = std::filesystem;

class Real final : public SysCalls {
 public:
  int Open(const char* path, int flags) override { return ::open(path, flags); }
  int Close(int fd) override { return ::close(fd); }
  int Ioctl(int fd, unsigned long request, uintptr_t arg) override {
    return ::ioctl(fd, request, arg);
  }
  int64_t Pread(int fd, void* buf, uint64_t len, uint64_t off) override {
    return ::pread(fd, buf, len, static_cast<off_t>(off));
  }
  int64_t Pwrite(int fd, const void* buf, uint64_t len, uint64_t off) override {
    return ::pwrite(fd, buf, len, static_cast<off_t>(off));
  }
  void* Mmap(int fd, uint64_t len, uint64_t off) override {
    return ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                  static_cast<off_t>(off));
  }
  int Munmap(void* addr, uint64_t len) override { return ::munmap(addr, len); }
};

// A syscall's failure as the HostBackend contract wants it: -errno, never
// 0 (a broken fake that fails without errno still fails).
int NegErrno() { return errno > 0 ? -errno : -EIO; }

// The first line of a sysfs attribute, without the newline.
[[nodiscard]] absl::StatusOr<std::string> ReadAttr(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path.string(), ": ",
                                            std::strerror(errno)));
  }
  return line;
}

}  // namespace

SysCalls& RealSysCalls() {
  static Real real;
  return real;
}

LinuxHost::LinuxHost(LinuxHostOptions options)
    : options_(std::move(options)),
      sys_(options_.syscalls != nullptr ? *options_.syscalls : RealSysCalls()) {
}

LinuxHost::~LinuxHost() = default;  // fds_ closes every owned fd

int LinuxHost::Adopt(int fd) {
  SysCalls* sys = &sys_;
  fds_.insert_or_assign(fd,
                        UniqueFd(fd, [sys](int f) { return sys->Close(f); }));
  return fd;
}

int LinuxHost::Open(std::string_view path) {
  const std::string p(path);
  const int fd = sys_.Open(p.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return NegErrno();
  return Adopt(fd);
}

int LinuxHost::Close(int fd) {
  auto it = fds_.find(fd);
  if (it == fds_.end()) return -EBADF;  // not ours: never close a stranger
  UniqueFd owned = std::move(it->second);
  fds_.erase(it);
  return owned.reset() < 0 ? NegErrno() : 0;
}

int LinuxHost::Ioctl(int fd, unsigned long request, uintptr_t arg) {
  const int rc = sys_.Ioctl(fd, request, arg);
  if (rc < 0) return NegErrno();
  // The one ioctl in VFIO's surface that creates an fd.
  if (request == uapi::kVfioGroupGetDeviceFd) Adopt(rc);
  return rc;
}

int64_t LinuxHost::Pread(int fd, void* buf, uint64_t len, uint64_t offset) {
  const int64_t n = sys_.Pread(fd, buf, len, offset);
  return n < 0 ? NegErrno() : n;
}

int64_t LinuxHost::Pwrite(int fd, const void* buf, uint64_t len,
                          uint64_t offset) {
  const int64_t n = sys_.Pwrite(fd, buf, len, offset);
  return n < 0 ? NegErrno() : n;
}

absl::StatusOr<void*> LinuxHost::Mmap(int fd, uint64_t len, uint64_t offset) {
  void* p = sys_.Mmap(fd, len, offset);
  if (p == MAP_FAILED) {
    const int err = errno;
    return absl::Status(
        absl::ErrnoToStatusCode(err),
        absl::StrFormat("mmap(fd %d, len 0x%x, offset 0x%x): %s", fd, len,
                        offset, std::strerror(err)));
  }
  return p;
}

void LinuxHost::Munmap(void* addr, uint64_t len) { sys_.Munmap(addr, len); }

absl::StatusOr<uint32_t> LinuxHost::IommuGroupOf(const HostPciAddress& device) {
  const fs::path link = fs::path(options_.sysfs_root) / "bus/pci/devices" /
                        device.ToString() / "iommu_group";
  std::error_code ec;
  const fs::path target = fs::read_symlink(link, ec);
  if (ec) {
    return absl::NotFoundError(
        absl::StrCat("host device ", device.ToString(), " has no IOMMU group (",
                     link.string(), ": ", ec.message(), ")"));
  }
  const std::string name = target.filename().string();
  uint32_t group = 0;
  auto [end, err] =
      std::from_chars(name.data(), name.data() + name.size(), group);
  if (err != std::errc() || end != name.data() + name.size()) {
    return absl::InternalError(absl::StrCat(link.string(), " points to '",
                                            target.string(),
                                            "', not an IOMMU group"));
  }
  return group;
}

absl::StatusOr<std::vector<ResvRegion>> LinuxHost::GroupReservedRegions(
    uint32_t group) {
  const fs::path path = fs::path(options_.sysfs_root) / "kernel/iommu_groups" /
                        std::to_string(group) / "reserved_regions";
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path.string(), ": ",
                                            std::strerror(errno)));
  }
  // The kernel prints the group's list already merged and sorted.
  std::vector<ResvRegion> out;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    absl::StatusOr<ResvRegion> r = ParseResvRegionLine(line);
    if (!r.ok()) {
      return absl::Status(
          r.status().code(),
          absl::StrCat(path.string(), ": ", r.status().message()));
    }
    out.push_back(*r);
  }
  return out;
}

absl::StatusOr<std::string> LinuxHost::DeviceCdevPath(
    const HostPciAddress& device) {
  const fs::path dir = fs::path(options_.sysfs_root) / "bus/pci/devices" /
                       device.ToString() / "vfio-dev";
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!name.starts_with("vfio")) continue;
    // 6.1 already has vfio-dev/vfioN but no character device behind it
    // (the cdev came with iommufd in 6.6): only a "dev" attribute
    // ("major:minor") means /dev/vfio/devices/vfioN exists.
    if (!ReadAttr(e.path() / "dev").ok()) break;
    return absl::StrCat("/dev/vfio/devices/", name);
  }
  return absl::NotFoundError(absl::StrCat(
      "host device ", device.ToString(), " has no VFIO character device (",
      dir.string(),
      "/vfioN/dev; needs Linux >= 6.6 with VFIO_DEVICE_CDEV and the device "
      "bound to vfio-pci)"));
}

}  // namespace viommu::vfio
