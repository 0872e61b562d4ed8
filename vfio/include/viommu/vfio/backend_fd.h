// viommu/vfio/backend_fd.h — BackendFd, a move-only owner of one fd opened
// through a HostBackend (STYLE rule 15's ScopedFd for backend fds).
//
//   BackendFd fd(backend, backend->Open("/dev/vfio/vfio"));
//   if (!fd.valid()) return HostCallError(fd.get(), "open", path);
//   backend->Ioctl(fd.get(), ...);
//   // closed through backend->Close() on destruction or Reset().
//
// Thread-safety: none; owned by one control-context object.
#ifndef VIOMMU_VFIO_BACKEND_FD_H_
#define VIOMMU_VFIO_BACKEND_FD_H_

#include <utility>

#include "viommu/vfio/host/host_backend.h"

namespace viommu::vfio {

class BackendFd {
 public:
  BackendFd() = default;
  // Takes `fd` (closed later) when fd >= 0; a negative fd is kept as the
  // error value and never closed. `backend` is not owned and outlives this.
  BackendFd(HostBackend* backend, int fd) : backend_(backend), fd_(fd) {}
  BackendFd(BackendFd&& o) noexcept
      : backend_(o.backend_), fd_(std::exchange(o.fd_, -1)) {}
  BackendFd& operator=(BackendFd&& o) noexcept {
    if (this != &o) {
      Reset();
      backend_ = o.backend_;
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  BackendFd(const BackendFd&) = delete;
  BackendFd& operator=(const BackendFd&) = delete;
  ~BackendFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0 && backend_ != nullptr) backend_->Close(fd_);
    fd_ = -1;
  }

 private:
  HostBackend* backend_ = nullptr;  // not owned
  int fd_ = -1;
};

}  // namespace viommu::vfio

#endif  // VIOMMU_VFIO_BACKEND_FD_H_
