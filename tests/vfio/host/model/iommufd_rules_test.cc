// iommufd model: the selftest fixture vfio_compat_mock_domain (Ver1v2 /
// Ver1v0), pin accounting, and §4 rules as input -> errno tables.
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/vfio/host/model/iommufd_test_util.h"

namespace viommu::vfio::model::testing {
namespace {

// ---- FIXTURE vfio_compat_mock_domain
// ------------------------------------------

class VfioCompatMockDomainTest
    : public ::testing::TestWithParam<unsigned long> {
 protected:
  void SetUp() override {
    ioas_ = fd_.IoasAlloc();
    ASSERT_EQ(0, fd_.MockDomain(ioas_, &devid_, nullptr));
    u::iommu_vfio_ioas c{.size = sizeof(c),
                         .ioas_id = ioas_,
                         .op = u::kIommuVfioIoasSet,
                         .__reserved = 0};
    ASSERT_EQ(0, fd_.Io(u::kIommuVfioIoas, &c));
    ASSERT_EQ(0, fd_.ctx.Ioctl(u::kVfioSetIommu, GetParam()));
  }
  bool v2() const { return GetParam() == u::kVfioType1v2Iommu; }
  int MapDma(uint64_t va, uint64_t iova, uint64_t size) {
    u::vfio_iommu_type1_dma_map m{
        .argsz = sizeof(m),
        .flags = u::kDmaMapFlagRead | u::kDmaMapFlagWrite,
        .vaddr = va,
        .iova = iova,
        .size = size};
    return fd_.Io(u::kVfioIommuMapDma, &m);
  }
  int UnmapDma(uint64_t iova, uint64_t size, uint32_t flags, uint64_t* out) {
    u::vfio_iommu_type1_dma_unmap m{
        .argsz = sizeof(m), .flags = flags, .iova = iova, .size = size};
    int rc = fd_.Io(u::kVfioIommuUnmapDma, &m);
    *out = m.size;
    return rc;
  }

  ProcessMemory mem_;
  IommufdFd fd_{&mem_};
  uint32_t ioas_ = 0, devid_ = 0;
};

INSTANTIATE_TEST_SUITE_P(
    Versions, VfioCompatMockDomainTest,
    ::testing::Values(u::kVfioType1v2Iommu, u::kVfioType1Iommu),
    [](const auto& p) {
      return std::string(p.param == u::kVfioType1v2Iommu ? "Ver1v2" : "Ver1v0");
    });

TEST_P(VfioCompatMockDomainTest, OptionHugePages) {
  uint64_t v = 7;
  ASSERT_EQ(0, fd_.HugePages(ioas_, u::kIommuOptionOpGet, &v));
  EXPECT_EQ(v2() ? 1u : 0u, v);
}

TEST_P(VfioCompatMockDomainTest, GetInfo) {
  constexpr uint32_t kTotal = 24 + 16 + 16 + 16;  // one IOVA range
  for (uint32_t argsz : {16u, 24u}) {
    u::vfio_iommu_type1_info info{};
    info.argsz = argsz;
    ASSERT_EQ(0, fd_.Io(u::kVfioIommuGetInfo, &info));
    EXPECT_EQ(u::kIommuInfoPgsizes | u::kIommuInfoCaps, info.flags);
    EXPECT_NE(0u, info.iova_pgsizes);
    EXPECT_EQ(kTotal, info.argsz);
    EXPECT_EQ(0u, info.cap_offset);
  }
  for (uint32_t argsz = 24; argsz <= kTotal; ++argsz) {
    SCOPED_TRACE(argsz);
    std::vector<uint8_t> buf(kTotal + 32, 0xAA);
    std::memcpy(buf.data(), &argsz, 4);
    ASSERT_EQ(0, fd_.ctx.Ioctl(u::kVfioIommuGetInfo,
                               reinterpret_cast<uintptr_t>(buf.data())));
    for (size_t i = argsz; i < buf.size(); ++i) ASSERT_EQ(0xAA, buf[i]) << i;
    u::vfio_iommu_type1_info info;
    std::memcpy(&info, buf.data(), sizeof(info));
    EXPECT_EQ(u::kIommuInfoPgsizes | u::kIommuInfoCaps, info.flags);
    EXPECT_EQ(kTotal, info.argsz);
    if (argsz < kTotal) {
      EXPECT_EQ(0u, info.cap_offset);
      continue;
    }
    ASSERT_EQ(24u, info.cap_offset);
    // The chain: DMA_AVAIL (12 bytes, avail U32_MAX) -> IOVA_RANGE.
    u::vfio_iommu_type1_info_dma_avail dma;
    std::memcpy(&dma, buf.data() + 24, sizeof(dma));
    EXPECT_EQ(u::kIommuTypeCapDmaAvail, dma.header.id);
    EXPECT_EQ(1, dma.header.version);
    EXPECT_EQ(UINT32_MAX, dma.avail);
    ASSERT_EQ(40u, dma.header.next);
    u::vfio_iommu_type1_info_cap_iova_range cap;
    std::memcpy(&cap, buf.data() + 40, sizeof(cap));
    EXPECT_EQ(u::kIommuTypeCapIovaRange, cap.header.id);
    EXPECT_EQ(1, cap.header.version);
    EXPECT_EQ(0u, cap.header.next);
    ASSERT_EQ(1u, cap.nr_iovas);
    u::vfio_iova_range r;
    std::memcpy(&r, buf.data() + 56, sizeof(r));
    EXPECT_EQ(kMockApertureStart, r.start);
    EXPECT_EQ(kMockApertureLast, r.end);
  }
}

TEST_P(VfioCompatMockDomainTest, Map) {
  Buffer buf(kBufferSize);
  uint64_t size = 0;
  ASSERT_EQ(0, MapDma(buf.addr(), kMockApertureStart, kBufferSize));
  ASSERT_EQ(0, UnmapDma(kMockApertureStart, kBufferSize, 0, &size));
  EXPECT_EQ(kBufferSize, size);
  EXPECT_EQ(0, UnmapDma(kMockApertureStart, kBufferSize, 0, &size));
  EXPECT_EQ(0u, size);
  ASSERT_EQ(0, MapDma(buf.addr(), kMockApertureStart, kBufferSize));
  EXPECT_EQ(-EINVAL, UnmapDma(kMockApertureStart, kBufferSize,
                              u::kDmaUnmapFlagAll, &size));
  EXPECT_EQ(0, UnmapDma(0, 0, u::kDmaUnmapFlagAll, &size));
  EXPECT_EQ(kBufferSize, size);
  std::vector<uint64_t> order;
  for (uint64_t i = 0; i < 16; ++i) {
    ASSERT_EQ(0, MapDma(buf.addr() + i * kPage, kMockApertureStart + i * kPage,
                        kPage));
    order.push_back(i);
  }
  std::shuffle(order.begin(), order.end(), std::mt19937(1));
  for (uint64_t i : order) {
    EXPECT_EQ(0, UnmapDma(kMockApertureStart + i * kPage, kPage, 0, &size));
    EXPECT_EQ(kPage, size);
  }
  EXPECT_EQ(0u, mem_.locked_pages());
}

TEST_P(VfioCompatMockDomainTest, HugeMap) {
  const uint64_t size = 2 * kHugePage;
  Buffer buf(size);
  ASSERT_EQ(0, MapDma(buf.addr(), kMockApertureStart, size));
  std::vector<uint64_t> order;
  for (uint64_t i = 0; i < 16; ++i) order.push_back(i);
  std::shuffle(order.begin(), order.end(), std::mt19937(2));
  const uint64_t chunk = size / 16;
  uint64_t pinned = size / kPage;
  for (uint64_t i : order) {
    uint64_t out = 0;
    EXPECT_EQ(v2() ? -ENOENT : 0,
              UnmapDma(kMockApertureStart + i * chunk, chunk, 0, &out));
    if (!v2()) pinned -= chunk / kPage;  // each cut piece unpins its pages
    EXPECT_EQ(pinned, mem_.locked_pages());
  }
  if (!v2()) {
    EXPECT_EQ(0u, mem_.locked_pages());
  }
}

// ---- pin accounting (§4.9, §4.13)
// -----------------------------------------------

class IommufdPinTest : public ::testing::Test {
 protected:
  ProcessMemory mem_;
  IommufdFd fd_{&mem_};
  Buffer buf_{kBufferSize};
};

TEST_F(IommufdPinTest, NothingPinnedWithoutDomain) {
  const uint32_t ioas = fd_.IoasAlloc();
  ASSERT_EQ(0, fd_.MapFixed(ioas, buf_.addr(), 4 * kPage, kMockApertureStart));
  EXPECT_EQ(0u, mem_.locked_pages());
  uint32_t dev = 0;
  ASSERT_EQ(0, fd_.MockDomain(ioas, &dev, nullptr));
  EXPECT_EQ(4u, mem_.locked_pages());
  fd_.ctx.UnbindDevice(dev);  // last domain gone: unpinned
  EXPECT_EQ(0u, mem_.locked_pages());
}

TEST_F(IommufdPinTest, LazyPinFailsAtAttach) {
  const uint32_t ioas = fd_.IoasAlloc();
  ASSERT_EQ(0, fd_.MapFixed(ioas, UnmappedVa(4 * kPage), 4 * kPage,
                            kMockApertureStart));
  const size_t objects = fd_.ctx.object_count();
  uint32_t dev = 0;
  EXPECT_EQ(-EFAULT, fd_.MockDomain(ioas, &dev, nullptr));
  EXPECT_EQ(objects, fd_.ctx.object_count());  // no hwpt left behind
  EXPECT_EQ(0u, mem_.locked_pages());
}

TEST_F(IommufdPinTest, RlimitEnomemRollsBack) {
  const uint32_t ioas = fd_.IoasAlloc();
  uint32_t dev = 0;
  ASSERT_EQ(0, fd_.MockDomain(ioas, &dev, nullptr));
  mem_.set_memlock_limit_pages(3);
  uint64_t iova = 0;
  EXPECT_EQ(-ENOMEM, fd_.Map(ioas, buf_.addr(), 4 * kPage, &iova));
  EXPECT_EQ(0, fd_.Map(ioas, buf_.addr(), 3 * kPage, &iova));
  EXPECT_EQ(3u, mem_.locked_pages());
  mem_.set_cap_ipc_lock(true);  // CAP_IPC_LOCK: not limited
  uint64_t iova2 = 0;
  EXPECT_EQ(0, fd_.Map(ioas, buf_.addr(), 4 * kPage, &iova2));
}

TEST_F(IommufdPinTest, PfnMapRefused) {
  mem_.AddDeviceMemory(buf_.addr(), 4 * kPage);
  const uint32_t ioas = fd_.IoasAlloc();
  uint32_t dev = 0;
  ASSERT_EQ(0, fd_.MockDomain(ioas, &dev, nullptr));
  uint64_t iova = 0;
  EXPECT_EQ(-EFAULT, fd_.Map(ioas, buf_.addr(), 4 * kPage, &iova));  // kPfnMap
  EXPECT_EQ(-EFAULT, fd_.Map(ioas, buf_.addr(), 8 * kPage, &iova));  // kMixed
  EXPECT_EQ(0, fd_.Map(ioas, buf_.addr() + 4 * kPage, 4 * kPage, &iova));
}

// pin_user_pages with FOLL_WRITE for a WRITEABLE map (as type1 does):
// read-only memory pins only for a read-only map. Pinning is lazy, so
// without a domain the refusal comes at attach.
TEST_F(IommufdPinTest, ReadOnlyMemoryPinsOnlyForAReadOnlyMap) {
  ASSERT_EQ(
      0, mprotect(reinterpret_cast<void*>(buf_.addr()), 4 * kPage, PROT_READ));
  const uint32_t ioas = fd_.IoasAlloc();
  uint32_t dev = 0;
  ASSERT_EQ(0, fd_.MockDomain(ioas, &dev, nullptr));
  uint64_t iova = 0;
  EXPECT_EQ(-EFAULT, fd_.Map(ioas, buf_.addr(), 4 * kPage, &iova));
  EXPECT_EQ(0,
            fd_.Map(ioas, buf_.addr(), 4 * kPage, &iova, u::kIoasMapReadable));
  const uint32_t lazy = fd_.IoasAlloc();
  ASSERT_EQ(0, fd_.MapFixed(lazy, buf_.addr(), 4 * kPage, kMockApertureStart));
  uint32_t dev2 = 0;
  EXPECT_EQ(-EFAULT, fd_.MockDomain(lazy, &dev2, nullptr));
  ASSERT_EQ(0, mprotect(reinterpret_cast<void*>(buf_.addr()), 4 * kPage,
                        PROT_READ | PROT_WRITE));
}

TEST_F(IommufdPinTest, CopyPinsOnlyTheCopiedPages) {
  const uint32_t src = fd_.IoasAlloc(), dst = fd_.IoasAlloc();
  ASSERT_EQ(0, fd_.MapFixed(src, buf_.addr(), 8 * kPage, kMockApertureStart));
  buf_.Unmap(4 * kPage, 4 * kPage);  // the source's lazy pages half gone
  uint32_t dev = 0;
  ASSERT_EQ(0, fd_.MockDomain(dst, &dev, nullptr));
  uint64_t iova = 0;
  EXPECT_EQ(0, fd_.Copy(dst, &iova, src, kMockApertureStart, 2 * kPage, kRW));
  EXPECT_EQ(2u, mem_.locked_pages());
  EXPECT_EQ(-EFAULT, fd_.Copy(dst, &iova, src, kMockApertureStart + 3 * kPage,
                              2 * kPage, kRW));
  // The same pages copied again are shared: no new charge.
  uint64_t iova2 = 0;
  EXPECT_EQ(0, fd_.Copy(dst, &iova2, src, kMockApertureStart, kPage, kRW));
  EXPECT_EQ(2u, mem_.locked_pages());
}

TEST_F(IommufdPinTest, SubPageAreasShareOnePin) {
  // Two half-page COPYs of one mapping share its page: charged once.
  const uint32_t src = fd_.IoasAlloc(), dst = fd_.IoasAlloc();
  ASSERT_EQ(0, fd_.MapFixed(src, buf_.addr(), kPage, kMockApertureStart));
  uint32_t dev = 0;
  ASSERT_EQ(0, fd_.MockDomain(dst, &dev, nullptr));
  uint64_t a = 0, b = 0;
  ASSERT_EQ(0, fd_.Copy(dst, &a, src, kMockApertureStart, kMockPageSize, kRW));
  ASSERT_EQ(0, fd_.Copy(dst, &b, src, kMockApertureStart + kMockPageSize,
                        kMockPageSize, kRW));
  EXPECT_EQ(1u, mem_.locked_pages());
  ASSERT_EQ(0, fd_.Unmap(dst, a, kMockPageSize));
  EXPECT_EQ(1u, mem_.locked_pages());
  ASSERT_EQ(0, fd_.Unmap(dst, b, kMockPageSize));
  EXPECT_EQ(0u, mem_.locked_pages());
}

// ---- §4.5 IOAS_MAP check order: input -> errno
// ---------------------------------------

struct MapRow {
  const char* name;
  uint32_t flags;
  uint32_t reserved;
  uint64_t va_off;  // from the buffer, or absolute when va_abs
  bool va_abs;
  uint64_t length;
  uint64_t iova;
  int expect;
};

TEST(IommufdMapRules, CheckOrder) {
  constexpr uint32_t F = u::kIoasMapFixedIova;
  const MapRow rows[] = {
      {"unknown flag", kRW | 8, 0, 0, false, kPage, 0, -EOPNOTSUPP},
      {"reserved field", kRW, 1, 0, false, kPage, 0, -EOPNOTSUPP},
      {"iova ULONG_MAX", kRW, 0, 0, false, kPage, UINT64_MAX, -EOVERFLOW},
      {"length ULONG_MAX", kRW, 0, 0, false, UINT64_MAX, 0, -EOVERFLOW},
      {"no R/W", F, 0, 0, false, kPage, 0, -EINVAL},
      {"length 0", kRW, 0, 0, false, 0, 0, -EINVAL},
      {"va + length wraps", kRW, 0, UINT64_MAX - 10, true, kPage, 0,
       -EOVERFLOW},
      {"auto, huge length", kRW, 0, 0, false, 1ull << 63, 0, -EOVERFLOW},
      {"fixed misaligned (domain)", kRW | F, 0, 0, false, kPage,
       kMockApertureStart + 1024, -EINVAL},
      {"length % 2K (domain)", kRW | F, 0, 0, false, 1024, kMockApertureStart,
       -EINVAL},
      {"fixed below aperture: reserved", kRW | F, 0, 0, false, kPage, 0x1000,
       -EINVAL},
      {"fixed overlaps area", kRW | F, 0, 0, false, kPage, kMockApertureStart,
       -EEXIST},
      {"reserved beats EEXIST", kRW | F, 0, 0, false, 2 * kPage,
       kMockApertureStart - kPage, -EINVAL},
      {"fixed wraps", kRW | F, 0, 0, false, 2 * kPage, UINT64_MAX - kPage + 1,
       -EOVERFLOW},
      {"va at +2K with 4K domain: page offset ok for 2K", kRW | F, 0, 2048,
       false, kPage, kMockApertureStart + 8 * kPage, 0},
  };
  for (const MapRow& row : rows) {
    SCOPED_TRACE(row.name);
    ProcessMemory mem;
    IommufdFd fd(&mem);
    Buffer buf(kBufferSize);
    const uint32_t ioas = fd.IoasAlloc();
    uint32_t dev = 0;
    ASSERT_EQ(0, fd.MockDomain(ioas, &dev, nullptr));
    ASSERT_EQ(0, fd.MapFixed(ioas, buf.addr(), kPage, kMockApertureStart));
    u::iommu_ioas_map m{
        .size = sizeof(m),
        .flags = row.flags,
        .ioas_id = ioas,
        .__reserved = row.reserved,
        .user_va = row.va_abs ? row.va_off : buf.addr() + row.va_off,
        .length = row.length,
        .iova = row.iova};
    EXPECT_EQ(row.expect, fd.Io(u::kIommuIoasMap, &m));
  }
}

TEST(IommufdMapRules, UnknownIoasIsEnoent) {
  ProcessMemory mem;
  IommufdFd fd(&mem);
  uint64_t iova = 0;
  EXPECT_EQ(-ENOENT, fd.Map(7, 0x1000, kPage, &iova));
  EXPECT_EQ(-ENOENT, fd.Unmap(7, 0, kPage));
}

TEST(IommufdMapRules, AutoIovaNeverPageZeroOrLastPage) {
  ProcessMemory mem;
  IommufdFd fd(&mem);
  const uint32_t ioas = fd.IoasAlloc();
  // Allow only page 0, and only the last page: nothing fits.
  ASSERT_EQ(0, fd.Allow(ioas, {{0, kPage - 1},
                               {UINT64_MAX - kPage + 1, UINT64_MAX}}));
  uint64_t iova = 0;
  EXPECT_EQ(-ENOSPC, fd.Map(ioas, 0x10000000, kPage, &iova));
  ASSERT_EQ(0, fd.Allow(ioas, {{0, 2 * kPage - 1}}));
  EXPECT_EQ(0, fd.Map(ioas, 0x10000000, kPage, &iova));
  EXPECT_EQ(kPage, iova);
}

TEST(IommufdMapRules, AutoIovaKeepsPageOffset) {
  ProcessMemory mem;
  IommufdFd fd(&mem);
  const uint32_t ioas = fd.IoasAlloc();
  uint64_t iova = 0;
  ASSERT_EQ(0, fd.Map(ioas, 0x10000000 + 0x234, 0x100, &iova));
  EXPECT_EQ(0x234u, iova % kPage);
}

TEST(IommufdMapRules, AutoIovaAlignmentCappedAtHugePage) {
  ProcessMemory mem;
  IommufdFd fd(&mem);
  const uint32_t ioas = fd.IoasAlloc();
  // length 8 MiB, VA 1 GiB aligned: min(8M, 1G) capped to 2 MiB, so the
  // first fit above page 0 is 2 MiB (not 8 MiB).
  uint64_t iova = 0;
  ASSERT_EQ(0, fd.Map(ioas, 1ull << 30, 8ull << 20, &iova));
  EXPECT_EQ(kHugePage, iova);
  // A VA whose lowest set bit is 8K limits the alignment to 8K.
  uint64_t iova2 = 0;
  ASSERT_EQ(0, fd.Map(ioas, (1ull << 30) + 0x2000, 0x10000, &iova2));
  EXPECT_EQ(0x2000u, iova2);
}

TEST(IommufdObjects, IdsStartAtOneLowestFreeReusedWrongTypeEnoent) {
  ProcessMemory mem;
  IommufdFd fd(&mem);
  EXPECT_EQ(1u, fd.IoasAlloc());
  EXPECT_EQ(2u, fd.IoasAlloc());
  EXPECT_EQ(3u, fd.IoasAlloc());
  EXPECT_EQ(0, fd.Destroy(2));
  EXPECT_EQ(-ENOENT, fd.Destroy(2));
  EXPECT_EQ(2u, fd.IoasAlloc());
  uint32_t dev = 0, hwpt = 0;
  ASSERT_EQ(0, fd.MockDomain(1, &dev, &hwpt));
  uint64_t iova = 0;
  EXPECT_EQ(-ENOENT, fd.Map(hwpt, 0x10000000, kPage, &iova));  // not an IOAS
  EXPECT_EQ(-EBUSY, fd.Destroy(dev));   // driver-bound device
  EXPECT_EQ(-EBUSY, fd.Destroy(hwpt));  // device attached
  EXPECT_EQ(-EBUSY, fd.Destroy(1));     // hwpt attached
  uint64_t v = 1;
  EXPECT_EQ(-EBUSY,
            fd.Option(u::kIommuOptionRlimitMode, 0, u::kIommuOptionOpSet, &v));
}

TEST(IommufdObjects, RlimitModeNeedsCapSysResource) {
  ProcessMemory mem;
  IommufdFd fd(&mem, {.cap_sys_resource = false, .vfio_container = true});
  uint64_t v = 0;
  EXPECT_EQ(0,
            fd.Option(u::kIommuOptionRlimitMode, 0, u::kIommuOptionOpGet, &v));
  EXPECT_EQ(1u, v);  // /dev/vfio/vfio starts per-mm
  EXPECT_EQ(-EPERM,
            fd.Option(u::kIommuOptionRlimitMode, 0, u::kIommuOptionOpSet, &v));
  EXPECT_EQ(-EOPNOTSUPP,
            fd.Option(u::kIommuOptionRlimitMode, 1, u::kIommuOptionOpGet, &v));
  EXPECT_EQ(-EOPNOTSUPP, fd.Option(5, 0, u::kIommuOptionOpGet, &v));
}

TEST(IommufdUnmapRules, PartialFailureKeepsEarlierRemovals) {
  ProcessMemory mem;
  IommufdFd fd(&mem);
  const uint32_t ioas = fd.IoasAlloc();
  ASSERT_EQ(0, fd.MapFixed(ioas, 0x10000000, kPage, 0x100000));
  ASSERT_EQ(0, fd.MapFixed(ioas, 0x10000000, 2 * kPage, 0x200000));
  uint64_t len = 77;
  EXPECT_EQ(-ENOENT, fd.Unmap(ioas, 0x100000, 0x100000 + kPage, &len));
  EXPECT_EQ(0x100000 + kPage, len);                     // not written back
  EXPECT_EQ(-ENOENT, fd.Unmap(ioas, 0x100000, kPage));  // already gone
  EXPECT_EQ(0, fd.Unmap(ioas, 0x200000, 2 * kPage));
  EXPECT_EQ(-EOVERFLOW, fd.Unmap(ioas, UINT64_MAX - kPage + 1, 2 * kPage));
  EXPECT_EQ(-EINVAL, fd.Unmap(ioas, 0x1000, 0));
}

TEST(IommufdCompat, CheckExtension) {
  ProcessMemory mem;
  IommufdFd fd(&mem);
  const std::pair<unsigned long, int> rows[] = {
      {u::kVfioType1Iommu, 1},        {u::kVfioType1v2Iommu, 1},
      {u::kVfioUnmapAll, 1},          {u::kVfioNoIommu, 0},
      {u::kVfioType1NestingIommu, 0}, {u::kVfioUpdateVaddr, 0},
      {u::kVfioDmaCcIommu, -ENODEV},  {99, 0}};
  for (auto [ext, want] : rows) {
    EXPECT_EQ(want, fd.ctx.Ioctl(u::kVfioCheckExtension, ext)) << ext;
  }
  EXPECT_EQ(-EINVAL, fd.ctx.Ioctl(u::kVfioSetIommu, u::kVfioSpaprTceIommu));
  EXPECT_EQ(-ENOTTY, fd.ctx.Ioctl(u::kVfioIommuDirtyPages, 0));
  uint32_t compat = 0;
  ASSERT_EQ(0, fd.ctx.GetOrCreateCompatIoas(&compat));
  EXPECT_EQ(1, fd.ctx.Ioctl(u::kVfioCheckExtension, u::kVfioDmaCcIommu));
  EXPECT_EQ(0, fd.ctx.Ioctl(u::kVfioSetIommu, u::kVfioType1v2Iommu));
  EXPECT_EQ(0, fd.ctx.Ioctl(u::kVfioSetIommu, u::kVfioType1v2Iommu));  // again
  EXPECT_EQ(0, fd.Destroy(compat));  // destroying it clears the compat IOAS
  EXPECT_EQ(-ENODEV, fd.ctx.Ioctl(u::kVfioSetIommu, u::kVfioType1v2Iommu));
}

// ---- §4.8 / §4.11 domain add: alignment, page size, pin rollback
// ----------------

TEST(IommufdDomainAdd, MisalignedAreaBlocksDomainWithEaddrinuse) {
  ProcessMemory mem;
  IommufdFd fd(&mem);
  const uint32_t ioas = fd.IoasAlloc();
  uint64_t iova = 0;
  ASSERT_EQ(0, fd.Map(ioas, 0x10000000, 1, &iova));  // alignment 1 allows it
  uint32_t dev = 0;
  const size_t objects = fd.ctx.object_count();
  EXPECT_EQ(-EADDRINUSE, fd.MockDomain(ioas, &dev, nullptr));
  EXPECT_EQ(objects, fd.ctx.object_count());
}

TEST(IommufdDomainAdd, PageLargerThanPageSizeIsEinval) {
  ProcessMemory mem;
  IommufdFd fd(&mem);
  const uint32_t ioas = fd.IoasAlloc();
  IommufdDeviceDesc desc = IommufdDeviceDesc::Mock(1);
  desc.pgsize_bitmap = 8192;
  uint32_t dev = 0, pt = ioas;
  ASSERT_EQ(0, fd.ctx.BindDevice(desc, {}, &dev));
  EXPECT_EQ(-EINVAL, fd.ctx.AttachDevice(dev, &pt));
}

TEST(IommufdDomainAdd, PinFailureAtAttachRollsBack) {
  ProcessMemory mem;
  IommufdFd fd(&mem);
  Buffer buf(kBufferSize);
  const uint32_t ioas = fd.IoasAlloc();
  ASSERT_EQ(0, fd.MapFixed(ioas, buf.addr(), 2 * kPage, kMockApertureStart));
  ASSERT_EQ(0, fd.MapFixed(ioas, buf.addr(), 4 * kPage,
                           kMockApertureStart + 8 * kPage));
  mem.set_memlock_limit_pages(3);  // the first area pins, the second fails
  uint32_t dev = 0;
  const size_t objects = fd.ctx.object_count();
  EXPECT_EQ(-ENOMEM, fd.MockDomain(ioas, &dev, nullptr));
  EXPECT_EQ(objects, fd.ctx.object_count());
  EXPECT_EQ(0u, mem.locked_pages());
}

TEST(IommufdDomainAdd, SecondDomainIsFilledWithoutRecharging) {
  ProcessMemory mem;
  IommufdFd fd(&mem);
  Buffer buf(kBufferSize);
  const uint32_t ioas = fd.IoasAlloc();
  uint32_t d1 = 0, d2 = 0;
  ASSERT_EQ(0, fd.MockDomain(ioas, &d1, nullptr));
  uint64_t iova = 0;
  ASSERT_EQ(0, fd.Map(ioas, buf.addr(), 4 * kPage, &iova));
  // A second, separate domain on the same IOAS (explicit HWPT_ALLOC).
  u::iommu_hwpt_alloc c{};
  c.size = sizeof(c);
  c.dev_id = d1;
  c.pt_id = ioas;
  ASSERT_EQ(0, fd.Io(u::kIommuHwptAlloc, &c));
  ASSERT_EQ(0, fd.MockDomain(c.out_hwpt_id, &d2, nullptr));
  EXPECT_NE(fd.ctx.DeviceDomain(d1), fd.ctx.DeviceDomain(d2));
  EXPECT_TRUE(fd.DomainMaps(d2, iova, buf.addr(), 4 * kPage));
  EXPECT_EQ(4u, mem.locked_pages());
  c.flags = u::kHwptAllocDirtyTracking;  // no dirty tracking in the model
  EXPECT_EQ(-EOPNOTSUPP, fd.Io(u::kIommuHwptAlloc, &c));
  // HUGE_PAGES=0 with domains and areas.
  uint64_t v = 0;
  EXPECT_EQ(-EINVAL, fd.HugePages(ioas, u::kIommuOptionOpSet, &v));
}

// ---- §4.6 IOAS_COPY
// ------------------------------------------------------------------

TEST(IommufdCopyRules, ContiguousAreasAndPermissions) {
  ProcessMemory mem;
  IommufdFd fd(&mem);
  Buffer buf(kBufferSize);
  const uint32_t src = fd.IoasAlloc(), dst = fd.IoasAlloc();
  ASSERT_EQ(0, fd.MapFixed(src, buf.addr(), 2 * kPage, 0x100000));
  ASSERT_EQ(0, fd.MapFixed(src, buf.addr() + 8 * kPage, 2 * kPage, 0x102000));
  const uint32_t W = u::kIoasMapWriteable, R = u::kIoasMapReadable;
  uint64_t iova = 0;
  // Spanning two contiguous areas works; into an auto IOVA.
  EXPECT_EQ(0, fd.Copy(dst, &iova, src, 0x101000, 2 * kPage, W | R));
  EXPECT_NE(0u, iova);
  // A gap -> ENOENT; zero length -> EINVAL; overflow -> EOVERFLOW.
  EXPECT_EQ(-ENOENT, fd.Copy(dst, &iova, src, 0x101000, 4 * kPage, R));
  EXPECT_EQ(-EINVAL, fd.Copy(dst, &iova, src, 0x100000, 0, R));
  EXPECT_EQ(-EOVERFLOW, fd.Copy(dst, &iova, src, UINT64_MAX - 1, 4, R));
  EXPECT_EQ(-EINVAL, fd.Copy(dst, &iova, src, 0x100000, kPage, 0));
  EXPECT_EQ(-EOPNOTSUPP, fd.Copy(dst, &iova, src, 0x100000, kPage, R | 8));
  EXPECT_EQ(-ENOENT, fd.Copy(99, &iova, src, 0x100000, kPage, R));
  EXPECT_EQ(-ENOENT, fd.Copy(dst, &iova, 99, 0x100000, kPage, R));
  // Read-only source pages cannot be copied writeable.
  uint64_t ro = 0x200000;
  ASSERT_EQ(0, fd.Map(src, buf.addr(), kPage, &ro, R | u::kIoasMapFixedIova));
  uint64_t out = 0;
  EXPECT_EQ(-EPERM, fd.Copy(dst, &out, src, 0x200000, kPage, W));
  EXPECT_EQ(0, fd.Copy(dst, &out, src, 0x200000, kPage, R));
}

// ---- §4.10 ALLOW_IOVAS argument rules
// ---------------------------------------------------

TEST(IommufdAllowRules, RangeChecks) {
  ProcessMemory mem;
  IommufdFd fd(&mem);
  const uint32_t ioas = fd.IoasAlloc();
  EXPECT_EQ(-EINVAL, fd.Allow(ioas, {{0x1000, 0x1000}}));  // one byte
  EXPECT_EQ(-EINVAL, fd.Allow(ioas, {{0x1000, 0x1fff}, {0x1800, 0x2fff}}));
  EXPECT_EQ(0, fd.Allow(ioas, {{0x1000, 0x1fff}, {0x2000, 0x2fff}}));
  EXPECT_EQ(-ENOENT, fd.Allow(99, {}));
  u::iommu_ioas_allow_iovas a{.size = sizeof(a),
                              .ioas_id = ioas,
                              .num_iovas = 1,
                              .__reserved = 1,
                              .allowed_iovas = 0};
  EXPECT_EQ(-EOPNOTSUPP, fd.Io(u::kIommuIoasAllowIovas, &a));
  a.__reserved = 0;
  EXPECT_EQ(-EFAULT, fd.Io(u::kIommuIoasAllowIovas, &a));
}

}  // namespace
}  // namespace viommu::vfio::model::testing
