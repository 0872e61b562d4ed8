// viommu/vfio/host/linux/unique_fd.h — a move-only owner of one file
// descriptor: closed exactly once, when the owner dies or reset() is called.
//
//   UniqueFd fd(::open(path, O_RDWR | O_CLOEXEC));
//   if (!fd.valid()) return -errno;
//   ioctl(fd.get(), ...);
//   int raw = fd.release();  // the caller owns it now
#ifndef VIOMMU_VFIO_HOST_LINUX_UNIQUE_FD_H_
#define VIOMMU_VFIO_HOST_LINUX_UNIQUE_FD_H_

#include <unistd.h>

#include <functional>
#include <utility>

namespace viommu::vfio {

class UniqueFd {
 public:
  // `closer` closes the fd (default ::close); tests pass a scripted one.
  using Closer = std::function<int(int)>;

  UniqueFd() = default;
  explicit UniqueFd(int fd, Closer closer = {})
      : fd_(fd), closer_(std::move(closer)) {}
  UniqueFd(UniqueFd&& other) noexcept
      : fd_(other.release()), closer_(std::move(other.closer_)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.release();
      closer_ = std::move(other.closer_);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership without closing.
  int release() { return std::exchange(fd_, -1); }
  // Closes the fd now (if any); returns close's result (0 when none).
  int reset() {
    const int fd = release();
    if (fd < 0) return 0;
    return closer_ ? closer_(fd) : ::close(fd);
  }

 private:
  int fd_ = -1;
  Closer closer_;
};

}  // namespace viommu::vfio

#endif  // VIOMMU_VFIO_HOST_LINUX_UNIQUE_FD_H_
