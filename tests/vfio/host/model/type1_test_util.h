// tests/vfio/host/model/type1_test_util.h — helpers shared by the type1 and
// model-host tests: real anonymous buffers for vaddrs, and a thin client
// that issues type1 ioctls (to a ModelHost fd or a Type1Iommu directly)
// and returns the kernel-style results.
//
//   AnonBuffer ram(1 << 20);
//   Type1Client c = Type1Client::ForIommu(&iommu);
//   EXPECT_EQ(c.Map(0x100000, 0x1000, ram.addr()), 0);
//   EXPECT_EQ(c.Unmap(0x100000, 0x1000), (UnmapResult{0, 0x1000}));
//
// Thread-safety: test thread only.
#ifndef TESTS_VFIO_HOST_MODEL_TYPE1_TEST_UTIL_H_
#define TESTS_VFIO_HOST_MODEL_TYPE1_TEST_UTIL_H_

#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <ostream>
#include <vector>

#include "viommu/vfio/host/host_backend.h"
#include "viommu/vfio/host/model/type1_iommu.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio::model {

class AnonBuffer {
 public:
  explicit AnonBuffer(uint64_t len) : len_(len) {
    p_ = mmap(nullptr, len, PROT_READ | PROT_WRITE,
              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  }
  ~AnonBuffer() {
    if (p_ != MAP_FAILED) munmap(p_, len_);
  }
  AnonBuffer(const AnonBuffer&) = delete;
  AnonBuffer& operator=(const AnonBuffer&) = delete;
  uint64_t addr() const { return reinterpret_cast<uint64_t>(p_); }
  uint8_t* data() const { return static_cast<uint8_t*>(p_); }
  uint64_t size() const { return len_; }

 private:
  void* p_;
  uint64_t len_;
};

struct UnmapResult {
  int rc;
  uint64_t size;  // the size field after the call
  friend bool operator==(const UnmapResult&, const UnmapResult&) = default;
  friend std::ostream& operator<<(std::ostream& os, const UnmapResult& r) {
    return os << "{rc " << r.rc << ", size 0x" << std::hex << r.size << std::dec
              << "}";
  }
};

inline constexpr uint32_t kRW = uapi::kDmaMapFlagRead | uapi::kDmaMapFlagWrite;

class Type1Client {
 public:
  using IoctlFn = std::function<int(unsigned long, uintptr_t)>;
  explicit Type1Client(IoctlFn fn) : fn_(std::move(fn)) {}
  static Type1Client ForIommu(Type1Iommu* iommu) {
    return Type1Client(
        [iommu](unsigned long r, uintptr_t a) { return iommu->Ioctl(r, a); });
  }
  static Type1Client ForFd(HostBackend* host, int fd) {
    return Type1Client([host, fd](unsigned long r, uintptr_t a) {
      return host->Ioctl(fd, r, a);
    });
  }

  int Ioctl(unsigned long request, uintptr_t arg) const {
    return fn_(request, arg);
  }
  int Map(uint64_t iova, uint64_t size, uint64_t vaddr,
          uint32_t flags = kRW) const {
    uapi::vfio_iommu_type1_dma_map m{.argsz = sizeof(m),
                                     .flags = flags,
                                     .vaddr = vaddr,
                                     .iova = iova,
                                     .size = size};
    return fn_(uapi::kVfioIommuMapDma, AsArg(&m));
  }
  // Returns the rc and what the call left in the size field (the request's
  // size when nothing was copied back).
  UnmapResult Unmap(uint64_t iova, uint64_t size, uint32_t flags = 0) const {
    uapi::vfio_iommu_type1_dma_unmap u{
        .argsz = sizeof(u), .flags = flags, .iova = iova, .size = size};
    const int rc = fn_(uapi::kVfioIommuUnmapDma, AsArg(&u));
    return {rc, u.size};
  }
  // GET_INFO into a buffer of `argsz` bytes (at least 24 allocated) filled
  // with 0xAA first, so untouched bytes are visible.
  std::vector<uint8_t> GetInfo(uint32_t argsz, int* rc) const {
    std::vector<uint8_t> buf(std::max<uint32_t>(argsz, 24) + 64, 0xAA);
    std::memcpy(buf.data(), &argsz, sizeof(argsz));
    *rc = fn_(uapi::kVfioIommuGetInfo, AsArg(buf.data()));
    return buf;
  }

 private:
  IoctlFn fn_;
};

template <typename T>
T LoadAt(const std::vector<uint8_t>& buf, size_t offset) {
  T v;
  std::memcpy(&v, buf.data() + offset, sizeof(v));
  return v;
}

// A Type1Group as the model host derives it from the default platform.
inline Type1Group GroupDesc(uint32_t id, uint8_t aperture_bits,
                            std::vector<ResvRegion> resv) {
  return Type1Group{.id = id,
                    .aperture_last = (uint64_t{1} << aperture_bits) - 1,
                    .pgsize_bitmap = 0x40201000,
                    .resv = std::move(resv)};
}
inline ResvRegion MsiWindow() {
  return {0xfee00000, 0xfeefffff, ResvType::kMsi};
}

}  // namespace viommu::vfio::model

#endif  // TESTS_VFIO_HOST_MODEL_TYPE1_TEST_UTIL_H_
