// Type1Iommu driven directly: the rules of docs/vfio-type1-model.md that
// the model host's legacy flow cannot reach (no domain, quirks A/B, v1,
// VADDR, DIRTY_PAGES, check order per kernel version) and the IOVA-list
// primitives.
#include "viommu/vfio/host/model/type1_iommu.h"

#include <cerrno>

#include "gtest/gtest.h"
#include "tests/vfio/host/model/type1_test_util.h"
#include "vfio/host/model/type1_iova_list.h"

namespace viommu::vfio::model {
namespace {

constexpr uint64_t kPage = 4096;

class Type1IommuTest : public ::testing::Test {
 protected:
  std::unique_ptr<Type1Iommu> Make(bool v2 = true,
                                   KernelVersion k = KernelVersion::k6_1) {
    return std::make_unique<Type1Iommu>(
        Type1Iommu::Config{.v2 = v2, .kernel = k}, &mem_, nullptr);
  }
  ProcessMemory mem_;
  AnonBuffer ram_{1 << 20};
};

TEST_F(Type1IommuTest, WithoutADomainMapPinsNothing) {
  auto iommu = Make();
  Type1Client c = Type1Client::ForIommu(iommu.get());
  EXPECT_EQ(c.Map(0x100000, 0x4000, /*bogus vaddr=*/0x1000), 0);
  EXPECT_EQ(mem_.locked_pages(), 0u);
  EXPECT_EQ(iommu->pgsize_bitmap(), 0xfffffffffffff000u);
  int rc;
  auto buf = c.GetInfo(24, &rc);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 0), 68u) << "no IOVA_RANGE cap (6.1)";
  buf = c.GetInfo(68, &rc);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 60), 0u) << "DMA_AVAIL ends the chain";
  EXPECT_EQ(LoadAt<uint32_t>(buf, 64), 65534u);
  auto latest = Make(true, KernelVersion::kLatest);
  EXPECT_EQ(
      LoadAt<uint32_t>(Type1Client::ForIommu(latest.get()).GetInfo(24, &rc), 0),
      72u);
}

// Linux 6.12 (measured): the newer GET_INFO layout (caps padded to 8,
// min(argsz, 24) copied back) with 6.1's nesting type and wrap errno.
TEST_F(Type1IommuTest, Linux612MixesTheTwoProfiles) {
  EXPECT_EQ(Type1Iommu::CheckExtension(KernelVersion::k6_12, nullptr,
                                       uapi::kVfioType1NestingIommu),
            1);
  auto iommu = Make(true, KernelVersion::k6_12);
  ASSERT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), 0);
  Type1Client c = Type1Client::ForIommu(iommu.get());
  int rc;
  auto buf = c.GetInfo(24, &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 0), 88u + 2 * 16) << "two IOVA ranges";
  buf = c.GetInfo(88 + 2 * 16, &rc);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 56 + 4), 72u) << "DMA_AVAIL padded to 16";
  buf = c.GetInfo(23, &rc);
  EXPECT_EQ(buf[20], 0) << "the pad is copied back (min(argsz, 24))";
  EXPECT_EQ(c.Map(0xfffffffffffff000, 0x2000, ram_.addr()), -EINVAL);
}

TEST_F(Type1IommuTest, GetInfoShortArgszCopiesBack16Bytes) {
  auto iommu = Make();
  ASSERT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), 0);
  int rc;
  auto buf = Type1Client::ForIommu(iommu.get()).GetInfo(18, &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 0), 116u);
  EXPECT_EQ(buf[16], 0xAA) << "cap_offset untouched below argsz 20";
}

TEST_F(Type1IommuTest, ReplayOfABogusVaddrFailsTheAttach) {
  auto iommu = Make();
  Type1Client c = Type1Client::ForIommu(iommu.get());
  ASSERT_EQ(c.Map(0x100000, 0x4000, ram_.addr()), 0);
  ASSERT_EQ(c.Map(0x200000, 0x1000, 0x1000), 0);
  EXPECT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), -EFAULT);
  EXPECT_EQ(mem_.locked_pages(), 0u);
  EXPECT_TRUE(iommu->iova_list().empty());
  EXPECT_EQ(iommu->group_count(), 0u);
  EXPECT_EQ(iommu->domain_count(), 0u);
  // Without the bad one the replay pins and charges.
  ASSERT_EQ(c.Unmap(0x200000, 0x1000), (UnmapResult{0, 0x1000}));
  EXPECT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), 0);
  EXPECT_EQ(mem_.locked_pages(), 4u);
  EXPECT_EQ(iommu->DomainOfGroup(1)->mapping_count(), 1u);
}

TEST_F(Type1IommuTest, ReplayOutsideTheApertureFailsInTheDomain) {
  // With no domain the list is empty, so neither the window check at MAP
  // nor the aperture-conflict check at attach sees the mapping; iommu_map
  // into the new domain refuses it.
  auto iommu = Make();
  ASSERT_EQ(
      Type1Client::ForIommu(iommu.get()).Map(1ull << 50, 0x1000, ram_.addr()),
      0);
  EXPECT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), -EINVAL);
  EXPECT_EQ(mem_.locked_pages(), 0u);
  EXPECT_TRUE(iommu->iova_list().empty());
}

TEST_F(Type1IommuTest, ReplayOverTheRlimitIsEnomem) {
  auto iommu = Make();
  mem_.set_memlock_limit_pages(2);
  ASSERT_EQ(
      Type1Client::ForIommu(iommu.get()).Map(0x100000, 0x4000, ram_.addr()), 0);
  EXPECT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), -ENOMEM);
  EXPECT_EQ(mem_.locked_pages(), 0u);
}

TEST_F(Type1IommuTest, QuirkALastDetachLeavesTheFullSpan) {
  auto iommu = Make();
  Type1Client c = Type1Client::ForIommu(iommu.get());
  ASSERT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), 0);
  ASSERT_EQ(c.Map(0x100000, 0x4000, ram_.addr()), 0);
  iommu->DetachGroup(1);
  EXPECT_EQ(iommu->mapping_count(), 0u);
  EXPECT_EQ(mem_.locked_pages(), 0u);
  EXPECT_EQ(iommu->iova_list(), (std::vector<IovaWindow>{{0, UINT64_MAX}}));
  int rc;
  auto buf = c.GetInfo(100, &rc);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 0), 100u);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 76), 1u);
  EXPECT_EQ(LoadAt<uint64_t>(buf, 92), UINT64_MAX);
}

TEST_F(Type1IommuTest, QuirkBAReservedFirstPageStaysLost) {
  auto iommu = Make();
  const ResvRegion low{0, 0xfff, ResvType::kReserved};
  ASSERT_EQ(iommu->AttachGroup(GroupDesc(7, 48, {low})), 0);
  ASSERT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), 0);
  ASSERT_EQ(iommu->domain_count(), 1u);
  iommu->DetachGroup(7);
  EXPECT_EQ(iommu->iova_list().front().start, 0x1000u);
}

TEST_F(Type1IommuTest, PgsizeBitmapIsTheAndOfDomainsAtLeastAPage) {
  auto iommu = Make();
  Type1Group a = GroupDesc(1, 48, {});
  a.pgsize_bitmap = 0x1000 | 0x200000;
  Type1Group b = GroupDesc(3, 39, {});
  b.pgsize_bitmap = 0xfffffffffffffe00;  // 512-byte pages and up
  ASSERT_EQ(iommu->AttachGroup(b), 0);
  EXPECT_EQ(iommu->pgsize_bitmap(), 0xfffffffffffff000u);
  ASSERT_EQ(iommu->AttachGroup(a), 0);
  EXPECT_EQ(iommu->pgsize_bitmap(), 0x201000u);
  iommu->DetachGroup(1);
  iommu->DetachGroup(3);
  EXPECT_EQ(iommu->pgsize_bitmap(), 0xfffffffffffff000u);
}

TEST_F(Type1IommuTest, DirectRelaxableNeitherConflictsNorIsExcluded) {
  auto iommu = Make();
  Type1Client c = Type1Client::ForIommu(iommu.get());
  ASSERT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), 0);
  ASSERT_EQ(c.Map(0x0f000000, 0x1000, ram_.addr()), 0);
  const ResvRegion rmrr{0x0f000000, 0x0f0fffff, ResvType::kDirectRelaxable};
  EXPECT_EQ(iommu->AttachGroup(GroupDesc(2, 48, {rmrr, MsiWindow()})), 0);
  EXPECT_EQ(iommu->iova_list().size(), 2u);
}

TEST_F(Type1IommuTest, V1UnmapStopsInsideAMappingAndRemovesWholeOnes) {
  auto iommu = Make(/*v2=*/false);
  Type1Client c = Type1Client::ForIommu(iommu.get());
  ASSERT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), 0);
  ASSERT_EQ(c.Map(0x100000, 0x10000, ram_.addr()), 0);
  EXPECT_EQ(c.Unmap(0x104000, 0x1000), (UnmapResult{0, 0}));
  EXPECT_EQ(c.Unmap(0x100000, 0x1000), (UnmapResult{0, 0x10000}))
      << "the whole mapping goes; size exceeds the request";
  EXPECT_EQ(iommu->mapping_count(), 0u);
  EXPECT_EQ(mem_.locked_pages(), 0u);
}

TEST_F(Type1IommuTest, V2UnmapCoversHolesAndSeveralMappings) {
  auto iommu = Make();
  Type1Client c = Type1Client::ForIommu(iommu.get());
  ASSERT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), 0);
  ASSERT_EQ(c.Map(0x100000, 0x2000, ram_.addr()), 0);
  ASSERT_EQ(c.Map(0x108000, 0x1000, ram_.addr()), 0);
  EXPECT_EQ(c.Unmap(0x100000, 0x10000), (UnmapResult{0, 0x3000}));
  EXPECT_EQ(iommu->dma_avail(), 65535u);
  EXPECT_EQ(iommu->DomainOfGroup(1)->mapping_count(), 0u);
}

struct CheckRow {
  const char* what;
  uint32_t argsz;
  uint32_t flags;
  uint64_t iova;
  uint64_t size;
  int expect_6_1;
  int expect_latest;
};

TEST_F(Type1IommuTest, MapCheckOrderPerKernel) {
  const CheckRow rows[] = {
      {"argsz 31", 31, kRW, 0x100000, 0x1000, -EINVAL, -EINVAL},
      {"unknown flag", 32, kRW | 8, 0x100000, 0x1000, -EINVAL, -EINVAL},
      {"wrap + misaligned", 32, kRW, 0xfffffffffffff800, 0x2000, -EINVAL,
       -EOVERFLOW},
      {"wrap + no prot", 32, 0, 0xfffffffffffff000, 0x2000, -EINVAL,
       -EOVERFLOW},
      {"size 0 + no prot", 32, 0, 0x100000, 0, -EINVAL, -EINVAL},
      {"VADDR + READ", 32, uapi::kDmaMapFlagVaddr | 1, 0x100000, 0x1000,
       -EINVAL, -EINVAL},
      {"VADDR, no dma", 32, uapi::kDmaMapFlagVaddr, 0x900000, 0x1000, -ENOENT,
       -ENOENT},
      {"VADDR, dma valid", 32, uapi::kDmaMapFlagVaddr, 0x100000, 0x1000,
       -EINVAL, -EINVAL},
      {"overlap before range", 32, kRW, 0x100000, 0x1000, -EEXIST, -EEXIST},
  };
  // Linux 6.12 checks ranges as 6.1 does (measured by the real-kernel suite).
  for (KernelVersion k : {KernelVersion::k6_1, KernelVersion::k6_12,
                          KernelVersion::kLatest}) {
    auto iommu = Make(true, k);
    ASSERT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), 0);
    ASSERT_EQ(
        Type1Client::ForIommu(iommu.get()).Map(0x100000, 0x1000, ram_.addr()),
        0);
    for (const CheckRow& r : rows) {
      uapi::vfio_iommu_type1_dma_map m{.argsz = r.argsz,
                                       .flags = r.flags,
                                       .vaddr = ram_.addr(),
                                       .iova = r.iova,
                                       .size = r.size};
      EXPECT_EQ(iommu->Ioctl(uapi::kVfioIommuMapDma, AsArg(&m)),
                k == KernelVersion::kLatest ? r.expect_latest : r.expect_6_1)
          << r.what << (k == KernelVersion::kLatest ? " (latest)" : " (6.x)");
    }
  }
}

TEST_F(Type1IommuTest, UnmapCheckOrderPerKernel) {
  const CheckRow rows[] = {
      {"argsz 16", 16, 0, 0x100000, 0x1000, -EINVAL, -EINVAL},
      {"unknown flag", 24, 8, 0x100000, 0x1000, -EINVAL, -EINVAL},
      {"bitmap + ALL", 48, 3, 0, 0, -EINVAL, -EINVAL},
      {"ALL, misaligned iova", 24, uapi::kDmaUnmapFlagAll, 0x800, 0, -EINVAL,
       -EINVAL},
      {"ALL with a size", 24, uapi::kDmaUnmapFlagAll, 0, 0x1000, -EINVAL,
       -EINVAL},
      {"size 0", 24, 0, 0x100000, 0, -EINVAL, -EINVAL},
      {"size misaligned", 24, 0, 0x100000, 0x800, -EINVAL, -EINVAL},
      {"wraps", 24, 0, 0xfffffffffffff000, 0x2000, -EINVAL, -EOVERFLOW},
      {"bitmap, tracking off", 48, 1, 0x100000, 0x1000, -EINVAL, -EINVAL},
  };
  for (KernelVersion k : {KernelVersion::k6_1, KernelVersion::k6_12,
                          KernelVersion::kLatest}) {
    auto iommu = Make(true, k);
    ASSERT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), 0);
    for (const CheckRow& r : rows) {
      uint64_t bits = 0;
      struct {
        uapi::vfio_iommu_type1_dma_unmap u;
        uapi::vfio_bitmap b;
      } req{{r.argsz, r.flags, r.iova, r.size},
            {kPage, sizeof(bits), reinterpret_cast<uint64_t>(&bits)}};
      EXPECT_EQ(iommu->Ioctl(uapi::kVfioIommuUnmapDma, AsArg(&req)),
                k == KernelVersion::kLatest ? r.expect_latest : r.expect_6_1)
          << r.what;
    }
  }
}

TEST_F(Type1IommuTest, VaddrInvalidateAndUpdate) {
  auto iommu = Make();
  Type1Client c = Type1Client::ForIommu(iommu.get());
  ASSERT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), 0);
  ASSERT_EQ(c.Map(0x100000, 0x1000, ram_.addr()), 0);
  ASSERT_EQ(c.Map(0x200000, 0x1000, ram_.addr() + kPage), 0);
  EXPECT_EQ(c.Unmap(0x200000, 0x1000, uapi::kDmaUnmapFlagVaddr),
            (UnmapResult{0, 0x1000}));
  EXPECT_EQ(iommu->mapping_count(), 2u) << "invalidate keeps the mapping";
  EXPECT_EQ(iommu->AttachGroup(GroupDesc(3, 39, {MsiWindow()})), -EBUSY);
  // One already invalid: the whole call reverts.
  EXPECT_EQ(c.Unmap(0x100000, 0x200000, uapi::kDmaUnmapFlagVaddr).rc, -EINVAL);
  EXPECT_EQ(c.Map(0x100000, 0x1000, ram_.addr(), uapi::kDmaMapFlagVaddr),
            -EINVAL)
      << "the first mapping was not left invalid";
  EXPECT_EQ(c.Map(0x200000, 0x2000, ram_.addr(), uapi::kDmaMapFlagVaddr),
            -EINVAL)
      << "size must match";
  EXPECT_EQ(
      c.Map(0x200000, 0x1000, ram_.addr() + 2 * kPage, uapi::kDmaMapFlagVaddr),
      0);
  EXPECT_EQ(iommu->AttachGroup(GroupDesc(3, 39, {MsiWindow()})), 0);
}

TEST_F(Type1IommuTest, DirtyPages) {
  auto v1 = Make(/*v2=*/false);
  struct {
    uint32_t argsz, flags;
    uint64_t iova, size;
    uapi::vfio_bitmap bitmap;
  } req{};
  static_assert(sizeof(req) == 48);
  req.argsz = 8;
  req.flags = 1;
  EXPECT_EQ(v1->Ioctl(uapi::kVfioIommuDirtyPages, AsArg(&req)), -EACCES);

  auto iommu = Make();
  ASSERT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), 0);
  Type1Client c = Type1Client::ForIommu(iommu.get());
  ASSERT_EQ(c.Map(0x102000, 0x3000, ram_.addr()), 0);
  auto dirty = [&](uint32_t argsz, uint32_t flags, uint64_t iova, uint64_t size,
                   uint64_t pgsize, uint64_t* bits) {
    req = {argsz,
           flags,
           iova,
           size,
           {pgsize, sizeof(uint64_t), reinterpret_cast<uint64_t>(bits)}};
    return iommu->Ioctl(uapi::kVfioIommuDirtyPages, AsArg(&req));
  };
  uint64_t bits = 0;
  EXPECT_EQ(dirty(8, 0, 0, 0, 0, &bits), -EINVAL) << "no flag";
  EXPECT_EQ(dirty(8, 3, 0, 0, 0, &bits), -EINVAL) << "two flags";
  EXPECT_EQ(dirty(8, 8, 0, 0, 0, &bits), -EINVAL) << "unknown flag";
  EXPECT_EQ(dirty(48, 4, 0x100000, 0x8000, kPage, &bits), -EINVAL)
      << "tracking off";
  EXPECT_EQ(dirty(8, 1, 0, 0, 0, &bits), 0);
  EXPECT_EQ(dirty(8, 1, 0, 0, 0, &bits), 0) << "START is idempotent";
  EXPECT_EQ(dirty(40, 4, 0x100000, 0x8000, kPage, &bits), -EINVAL)
      << "payload too small";
  EXPECT_EQ(dirty(48, 4, 0x100000, 0x8000, 0x200000, &bits), -EINVAL)
      << "bitmap pgsize";
  EXPECT_EQ(dirty(48, 4, 0x103000, 0x1000, kPage, &bits), -EINVAL)
      << "bisects the mapping";
  EXPECT_EQ(dirty(48, 4, 0x100000, 0x8000, kPage, &bits), 0);
  EXPECT_EQ(bits, 0x1cu);
  EXPECT_EQ(dirty(8, 2, 0, 0, 0, &bits), 0);
  EXPECT_FALSE(iommu->dirty_tracking());
}

// Linux 6.1.192 (tests/host real-kernel diff): the user bitmap is written
// in whole 64-bit words per mapping; a mapping at an unaligned bit offset
// is shifted in place and ORs the user's word in, and GET_BITMAP clears
// only its low page bits afterwards, so the shifted copy stays and shows
// up again in the next GET_BITMAP and in UNMAP's bitmap.
TEST_F(Type1IommuTest, DirtyBitmapWholeWordsAndStaleShiftedBits) {
  auto iommu = Make();
  ASSERT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), 0);
  Type1Client c = Type1Client::ForIommu(iommu.get());
  ASSERT_EQ(c.Map(0x100000, 16 * kPage, ram_.addr()), 0);
  ASSERT_EQ(c.Map(0x110000, 4 * kPage, ram_.addr(), uapi::kDmaMapFlagRead), 0);
  struct {
    uint32_t argsz, flags;
    uint64_t iova, size;
    uapi::vfio_bitmap bitmap;
  } req{.argsz = 8, .flags = 1};
  ASSERT_EQ(iommu->Ioctl(uapi::kVfioIommuDirtyPages, AsArg(&req)), 0);
  uint64_t bits[2];
  auto get = [&] {
    bits[0] = bits[1] = 0xa5a5a5a5a5a5a5a5;
    req = {48,
           4,
           0x100000,
           20 * kPage,
           {kPage, 8, reinterpret_cast<uint64_t>(bits)}};
    return iommu->Ioctl(uapi::kVfioIommuDirtyPages, AsArg(&req));
  };
  ASSERT_EQ(get(), 0);
  EXPECT_EQ(bits[0], 0xfffffu) << "whole word written, other bits zero";
  EXPECT_EQ(bits[1], 0xa5a5a5a5a5a5a5a5u);
  ASSERT_EQ(get(), 0);
  EXPECT_EQ(bits[0], 0xfffffffffu) << "stale shifted bits of the 2nd dma";
  struct {
    uapi::vfio_iommu_type1_dma_unmap u;
    uapi::vfio_bitmap bitmap;
  } unmap{};
  bits[0] = 0;
  unmap.u = {
      .argsz = sizeof(unmap), .flags = 1, .iova = 0x110000, .size = 4 * kPage};
  unmap.bitmap = {kPage, 8, reinterpret_cast<uint64_t>(bits)};
  ASSERT_EQ(iommu->Ioctl(uapi::kVfioIommuUnmapDma, AsArg(&unmap)), 0);
  EXPECT_EQ(bits[0], 0xfffffffffu);
}

TEST_F(Type1IommuTest, CheckExtensionDependsOnTheDriverAndVersion) {
  auto iommu = Make();
  EXPECT_EQ(Type1Iommu::CheckExtension(KernelVersion::k6_1, nullptr,
                                       uapi::kVfioDmaCcIommu),
            0);
  EXPECT_EQ(Type1Iommu::CheckExtension(KernelVersion::k6_1, iommu.get(),
                                       uapi::kVfioDmaCcIommu),
            1)
      << "no domain";
  EXPECT_EQ(Type1Iommu::CheckExtension(KernelVersion::kLatest, nullptr,
                                       uapi::kVfioType1NestingIommu),
            0);
  EXPECT_EQ(Type1Iommu::CheckExtension(KernelVersion::k6_1, nullptr,
                                       uapi::kVfioType1NestingIommu),
            1);
  EXPECT_EQ(iommu->Ioctl(uapi::kVfioIommuEnable, 0), -ENOTTY);
}

TEST_F(Type1IommuTest, MixedPfnMapAndRamChargesOnlyRam) {
  auto iommu = Make();
  ASSERT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), 0);
  mem_.AddDeviceMemory(ram_.addr() + kPage, 2 * kPage);
  EXPECT_EQ(
      Type1Client::ForIommu(iommu.get()).Map(0x100000, 4 * kPage, ram_.addr()),
      0);
  EXPECT_EQ(mem_.locked_pages(), 2u);
  mem_.RemoveDeviceMemory(ram_.addr() + kPage);
}

// Linux 6.1.192 (tests/host real-kernel diff): GUP pins with FOLL_WRITE for
// a writable mapping, so read-only memory maps READ only; the failed MAP
// charges nothing and leaves no mapping.
TEST_F(Type1IommuTest, ReadOnlyMemoryMapsForReadOnly) {
  auto iommu = Make();
  ASSERT_EQ(iommu->AttachGroup(GroupDesc(1, 48, {MsiWindow()})), 0);
  AnonBuffer ro(2 * kPage);
  ASSERT_EQ(mprotect(ro.data(), 2 * kPage, PROT_READ), 0);
  Type1Client c = Type1Client::ForIommu(iommu.get());
  EXPECT_EQ(c.Map(0x100000, 2 * kPage, ro.addr()), -EFAULT);
  EXPECT_EQ(c.Map(0x100000, 2 * kPage, ro.addr(), uapi::kDmaMapFlagWrite),
            -EFAULT);
  EXPECT_EQ(mem_.locked_pages(), 0u);
  EXPECT_EQ(iommu->mapping_count(), 0u);
  EXPECT_EQ(c.Map(0x100000, 2 * kPage, ro.addr(), uapi::kDmaMapFlagRead), 0);
  EXPECT_EQ(mem_.locked_pages(), 2u);
  // One writable page is not enough: every page must allow the write.
  ASSERT_EQ(mprotect(ro.data(), kPage, PROT_READ | PROT_WRITE), 0);
  EXPECT_EQ(c.Map(0x200000, 2 * kPage, ro.addr()), -EFAULT);
  EXPECT_EQ(c.Map(0x200000, kPage, ro.addr()), 0);
}

// ---- IOVA list primitives --------------------------------------------------

TEST(Type1IovaListTest, AperResizeDropsWindowsTouchingTheNewEdges) {
  type1::IovaList l = {{0, 0x1000}, {0x2000, 0x3000}};
  type1::AperResize(&l, 0x1000, UINT64_MAX);
  EXPECT_EQ(l, (type1::IovaList{{0x2000, 0x3000}}));
  l = {{0, 0x1000}, {0x2000, 0x3000}};
  type1::AperResize(&l, 0, 0x2000);
  EXPECT_EQ(l, (type1::IovaList{{0, 0x1000}}));
  l = {{0, 0x1000}, {0x2000, 0x3000}};
  type1::AperResize(&l, 0x800, 0x2800);
  EXPECT_EQ(l, (type1::IovaList{{0x800, 0x1000}, {0x2000, 0x2800}}));
  l.clear();
  type1::AperResize(&l, 0, 0xffff);
  EXPECT_EQ(l, (type1::IovaList{{0, 0xffff}}));
}

TEST(Type1IovaListTest, ResvExcludeSplitsAndFailsWhenNothingIsLeft) {
  type1::IovaList l = {{0, 0xffff}};
  const ResvRegion mid{0x1000, 0x1fff, ResvType::kMsi};
  EXPECT_EQ(type1::ResvExclude(&l, {&mid, 1}), 0);
  EXPECT_EQ(l, (type1::IovaList{{0, 0xfff}, {0x2000, 0xffff}}));
  const ResvRegion all{0, UINT64_MAX, ResvType::kReserved};
  EXPECT_EQ(type1::ResvExclude(&l, {&all, 1}), -EINVAL);
  EXPECT_TRUE(type1::DmaValid({}, 5, 6));
}

TEST(Type1IovaListTest, MergeJoinsSameTypeOverlappingOrAdjacent) {
  const std::vector<ResvRegion> in = {
      {0xfee00000, 0xfeefffff, ResvType::kMsi},
      {0x1000, 0x1fff, ResvType::kDirect},
      {0x2000, 0x2fff, ResvType::kDirect},
      {0x2800, 0x3fff, ResvType::kReserved},
      {0xfee80000, 0xfef0ffff, ResvType::kMsi},
  };
  const std::vector<ResvRegion> want = {
      {0x1000, 0x2fff, ResvType::kDirect},
      {0x2800, 0x3fff, ResvType::kReserved},
      {0xfee00000, 0xfef0ffff, ResvType::kMsi},
  };
  EXPECT_EQ(MergeResvRegions(in), want);
}

}  // namespace
}  // namespace viommu::vfio::model
