// tests/host/differential.h — the pieces of the model-vs-kernel differential
// programs (type1_differential.cc): an output sink that prints one
// deterministic line per operation, anonymous buffers, and logged wrappers
// of the type1 ioctls on a HostBackend.
//
//   DiffEnv env{.host = &backend, .group_path = "/dev/vfio/1", ...};
//   env.Section("map_rows");
//   int c = OpenContainer(env);        // prints "open container -> fd"
//   LogMap(env, c, 0x100000, 0x10000, buf.addr(), kRw);
//
// Output rules: lines are compared verbatim between backends, so they never
// hold an fd number or a user address (vaddrs print relative to their
// buffer); lines starting with '#' are device- or backend-specific facts
// that the harness shows but does not compare.
// Thread-safety: single-threaded test program.
#ifndef VIOMMU_TESTS_HOST_DIFFERENTIAL_H_
#define VIOMMU_TESTS_HOST_DIFFERENTIAL_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/str_format.h"
#include "viommu/vfio/host/host_backend.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio::difftest {

inline constexpr uint32_t kRw = uapi::kDmaMapFlagRead | uapi::kDmaMapFlagWrite;

struct DiffEnv {
  HostBackend* host = nullptr;  // not owned
  std::string group_path;       // "/dev/vfio/<group>"
  std::string bdf;              // the group's device, "SSSS:BB:DD.F"
  int failures = 0;             // internal errors (not kernel answers)

  // One output line (prefixed with two spaces inside a section).
  template <typename... Args>
  void Log(const absl::FormatSpec<Args...>& format, const Args&... args) {
    Emit("  " + absl::StrFormat(format, args...));
  }
  // An informational line, not compared ('#').
  template <typename... Args>
  void Info(const absl::FormatSpec<Args...>& format, const Args&... args) {
    Emit("# " + absl::StrFormat(format, args...));
  }
  void Section(std::string_view name);
  // A problem of the test program itself (mmap failed, ...): printed and
  // counted; the program exits non-zero.
  void Fail(std::string_view what);
  void Emit(const std::string& line);
};

// "0", "-EINVAL", ... for an ioctl/close result; "fd" for a non-negative
// result when `fd_result` (fd numbers differ between backends).
std::string Rc(int rc, bool fd_result = false);
// "EINVAL" etc., or "E<number>".
std::string ErrnoName(int err);
// Lowercase hex of bytes.
std::string Hex(const void* data, size_t len);

// Anonymous private read/write memory, every page touched. addr() is 0
// (and the env records a failure) if mmap failed.
class AnonBuffer {
 public:
  AnonBuffer(DiffEnv& env, uint64_t len);
  ~AnonBuffer();
  AnonBuffer(const AnonBuffer&) = delete;
  AnonBuffer& operator=(const AnonBuffer&) = delete;
  uint64_t addr() const { return addr_; }
  uint64_t len() const { return len_; }

 private:
  uint64_t addr_ = 0;
  uint64_t len_;
};

// Logged operations. Each prints one line naming the operation and its
// arguments, then "-> " and the result (and written-back fields), and
// returns the backend's result.
int OpenContainer(DiffEnv& env);
int OpenGroup(DiffEnv& env);
int OpenPath(DiffEnv& env, std::string_view label, std::string_view path);
int CloseFd(DiffEnv& env, std::string_view label, int fd);
int SetContainer(DiffEnv& env, int group, int container);
int UnsetContainer(DiffEnv& env, int group);
int SetIommu(DiffEnv& env, int container, unsigned long type);
int CheckExtension(DiffEnv& env, int container, unsigned long ext);
int GroupStatus(DiffEnv& env, int group);
// `vaddr` is printed as "buf+0x..." relative to `base` (0: printed raw).
int Map(DiffEnv& env, int container, uint64_t iova, uint64_t size,
        uint64_t vaddr, uint32_t flags, uint64_t base = 0,
        uint32_t argsz = sizeof(uapi::vfio_iommu_type1_dma_map));
// Prints the size field after the call (written back or not).
int Unmap(DiffEnv& env, int container, uint64_t iova, uint64_t size,
          uint32_t flags = 0,
          uint32_t argsz = sizeof(uapi::vfio_iommu_type1_dma_unmap));
// GET_INFO with `argsz` in a 4 KiB buffer prefilled with 0xa5: prints the
// fixed fields, the decoded capability chain and the raw bytes up to
// max(argsz, 24) (capped at 160).
int GetInfo(DiffEnv& env, int container, uint32_t argsz);
// Container + group + SET_CONTAINER + SET_IOMMU(type), logged. Returns
// false (and logs) if a step failed; the fds are set to what was opened
// (-1 otherwise).
bool Setup(DiffEnv& env, int* container, int* group,
           unsigned long type = uapi::kVfioType1v2Iommu);
void Teardown(DiffEnv& env, int container, int group);

}  // namespace viommu::vfio::difftest

#endif  // VIOMMU_TESTS_HOST_DIFFERENTIAL_H_
