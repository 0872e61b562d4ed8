// tests/vfio/host/model/iommufd_test_util.h — helpers for the iommufd model
// tests: an IommufdCtx with the selftest harness's calls (iommufd_utils.h
// style) and real anonymous MAP_SHARED buffers for user_va.
#ifndef VIOMMU_TESTS_VFIO_HOST_MODEL_IOMMUFD_TEST_UTIL_H_
#define VIOMMU_TESTS_VFIO_HOST_MODEL_IOMMUFD_TEST_UTIL_H_

#include <sys/mman.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "viommu/vfio/host/model/iommufd_ctx.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio::model::testing {

namespace u = ::viommu::vfio::uapi;

inline constexpr uint64_t kPage = 4096;
inline constexpr uint64_t kHugePage = 2ull << 20;
inline constexpr uint64_t kBufferSize = 16 * kPage;
inline constexpr uint64_t kMockApertureStart = 1ull << 24;
inline constexpr uint64_t kMockApertureLast = (1ull << 31) - 1;
inline constexpr uint64_t kMockPageSize = 2048;
inline constexpr uint32_t kRW = u::kIoasMapWriteable | u::kIoasMapReadable;

// An anonymous MAP_SHARED mapping aligned to `align`, unmapped on scope
// exit (whatever of it is still mapped).
class Buffer {
 public:
  explicit Buffer(uint64_t size, uint64_t align = kHugePage) : size_(size) {
    void* raw = mmap(nullptr, size + align, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(raw, MAP_FAILED);
    const uint64_t start =
        (reinterpret_cast<uint64_t>(raw) + align - 1) & ~(align - 1);
    // Trim the slack so only [start, start + size) stays mapped.
    const uint64_t raw_start = reinterpret_cast<uint64_t>(raw);
    if (start > raw_start) munmap(raw, start - raw_start);
    const uint64_t end = raw_start + size + align;
    if (end > start + size)
      munmap(reinterpret_cast<void*>(start + size), end - start - size);
    addr_ = start;
  }
  ~Buffer() { munmap(reinterpret_cast<void*>(addr_), size_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  uint64_t addr() const { return addr_; }
  uint64_t size() const { return size_; }
  // munmap(2) of part of the buffer.
  void Unmap(uint64_t offset, uint64_t len) {
    munmap(reinterpret_cast<void*>(addr_ + offset), len);
  }

 private:
  uint64_t addr_ = 0;
  uint64_t size_;
};

// An address range that is certainly not mapped in this process.
inline uint64_t UnmappedVa(uint64_t len) {
  void* p = mmap(nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  munmap(p, len);
  return reinterpret_cast<uint64_t>(p);
}

// One open of /dev/iommu with the selftest harness's helpers.
class IommufdFd {
 public:
  explicit IommufdFd(ProcessMemory* mem, IommufdCtxOptions options = {})
      : ctx(mem, options) {}

  template <typename T>
  int Io(unsigned long request, T* p) {
    return ctx.Ioctl(request, reinterpret_cast<uintptr_t>(p));
  }
  uint32_t IoasAlloc() {
    u::iommu_ioas_alloc a{.size = sizeof(a), .flags = 0, .out_ioas_id = 0};
    EXPECT_EQ(0, Io(u::kIommuIoasAlloc, &a));
    return a.out_ioas_id;
  }
  int Map(uint32_t ioas, uint64_t va, uint64_t len, uint64_t* iova,
          uint32_t flags = kRW) {
    u::iommu_ioas_map m{.size = sizeof(m),
                        .flags = flags,
                        .ioas_id = ioas,
                        .__reserved = 0,
                        .user_va = va,
                        .length = len,
                        .iova = *iova};
    int rc = Io(u::kIommuIoasMap, &m);
    if (rc == 0) *iova = m.iova;
    return rc;
  }
  int MapFixed(uint32_t ioas, uint64_t va, uint64_t len, uint64_t iova) {
    return Map(ioas, va, len, &iova, kRW | u::kIoasMapFixedIova);
  }
  int Unmap(uint32_t ioas, uint64_t iova, uint64_t len,
            uint64_t* out_len = nullptr) {
    u::iommu_ioas_unmap m{
        .size = sizeof(m), .ioas_id = ioas, .iova = iova, .length = len};
    int rc = Io(u::kIommuIoasUnmap, &m);
    if (out_len != nullptr) *out_len = m.length;
    return rc;
  }
  int Allow(uint32_t ioas, std::vector<u::iommu_iova_range> ranges) {
    u::iommu_ioas_allow_iovas a{
        .size = sizeof(a),
        .ioas_id = ioas,
        .num_iovas = static_cast<uint32_t>(ranges.size()),
        .__reserved = 0,
        .allowed_iovas = reinterpret_cast<uint64_t>(ranges.data())};
    return Io(u::kIommuIoasAllowIovas, &a);
  }
  int Copy(uint32_t dst, uint64_t* dst_iova, uint32_t src, uint64_t src_iova,
           uint64_t len, uint32_t flags) {
    u::iommu_ioas_copy c{.size = sizeof(c),
                         .flags = flags,
                         .dst_ioas_id = dst,
                         .src_ioas_id = src,
                         .length = len,
                         .dst_iova = *dst_iova,
                         .src_iova = src_iova};
    int rc = Io(u::kIommuIoasCopy, &c);
    if (rc == 0) *dst_iova = c.dst_iova;
    return rc;
  }
  int Option(uint32_t id, uint32_t object, uint16_t op, uint64_t* val) {
    u::iommu_option o{.size = sizeof(o),
                      .option_id = id,
                      .op = op,
                      .__reserved = 0,
                      .object_id = object,
                      .val64 = *val};
    int rc = Io(u::kIommuOption, &o);
    *val = o.val64;
    return rc;
  }
  int HugePages(uint32_t ioas, uint16_t op, uint64_t* val) {
    return Option(u::kIommuOptionHugePages, ioas, op, val);
  }
  int Destroy(uint32_t id) {
    u::iommu_destroy d{.size = sizeof(d), .id = id};
    return Io(u::kIommuDestroy, &d);
  }
  // test_cmd_mock_domain: bind a mock device (own group) and attach it.
  int MockDomain(uint32_t pt, uint32_t* devid, uint32_t* hwpt) {
    EXPECT_EQ(
        0, ctx.BindDevice(IommufdDeviceDesc::Mock(next_group_++), {}, devid));
    uint32_t id = pt;
    int rc = ctx.AttachDevice(*devid, &id);
    if (rc < 0) {
      ctx.UnbindDevice(*devid);
      return rc;
    }
    if (hwpt != nullptr) *hwpt = id;
    return 0;
  }
  // Every domain maps [iova, iova + len) to the same VA range.
  bool DomainMaps(uint32_t devid, uint64_t iova, uint64_t va, uint64_t len) {
    HostIommuDomain* d = ctx.DeviceDomain(devid);
    if (d == nullptr) return false;
    for (uint64_t off = 0; off < len; off += kMockPageSize) {
      auto hva = d->IovaToHva(iova + off);
      if (!hva || *hva != va + off) return false;
    }
    return true;
  }

  IommufdCtx ctx;

 private:
  uint32_t next_group_ = 100;
};

}  // namespace viommu::vfio::model::testing

#endif  // VIOMMU_TESTS_VFIO_HOST_MODEL_IOMMUFD_TEST_UTIL_H_
