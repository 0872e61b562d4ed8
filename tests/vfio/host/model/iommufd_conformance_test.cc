// Linux's iommufd selftest catalogue (docs/vfio-iommufd-model.md) against the
// model: fixtures iommufd, iommufd_ioas (no_domain / mock_domain /
// two_mock_domain) and iommufd_mock_domain. The VFIO compat fixture and the
// §4 rule tables are in iommufd_rules_test.cc.
#include <cerrno>
#include <cstring>
#include <memory>

#include "gtest/gtest.h"
#include "tests/vfio/host/model/iommufd_test_util.h"

namespace viommu::vfio::model::testing {
namespace {

// ---- FIXTURE iommufd
// ---------------------------------------------------------

class IommufdTest : public ::testing::Test {
 protected:
  ProcessMemory mem_;
  IommufdFd fd_{&mem_};
};

TEST_F(IommufdTest, CmdFail) {
  EXPECT_EQ(-ENOENT, fd_.Destroy(0));
  EXPECT_EQ(-EFAULT, fd_.ctx.Ioctl(u::kIommuDestroy, 0));
  EXPECT_EQ(-ENOTTY, fd_.ctx.Ioctl(u::IoNr(0x7F), 0));
}

// cmd_length: one row per command; the struct is all zero but for size.
struct CmdLengthRow {
  const char* name;
  unsigned long request;
  uint32_t size;
  uint32_t min_size;
};
const CmdLengthRow kCmdLengthRows[] = {
    {"DESTROY", u::kIommuDestroy, 8, 8},
    {"HWPT_ALLOC", u::kIommuHwptAlloc, 48, 24},
    {"IOAS_ALLOC", u::kIommuIoasAlloc, 12, 12},
    {"IOAS_IOVA_RANGES", u::kIommuIoasIovaRanges, 32, 32},
    {"IOAS_ALLOW_IOVAS", u::kIommuIoasAllowIovas, 24, 24},
    {"IOAS_MAP", u::kIommuIoasMap, 40, 40},
    {"IOAS_COPY", u::kIommuIoasCopy, 40, 40},
    {"IOAS_UNMAP", u::kIommuIoasUnmap, 24, 24},
    {"OPTION", u::kIommuOption, 24, 24},
    {"VFIO_IOAS", u::kIommuVfioIoas, 12, 12},
    {"IOAS_MAP_FILE", u::IoNr(0x8F), 40, 40},
};

TEST_F(IommufdTest, CmdLength) {
  for (const CmdLengthRow& row : kCmdLengthRows) {
    SCOPED_TRACE(row.name);
    alignas(8) uint8_t buf[64];
    auto run = [&](uint32_t size, int tail) {
      std::memset(buf, 0, sizeof(buf));
      std::memcpy(buf, &size, 4);
      if (tail >= 0) buf[size - 1] = static_cast<uint8_t>(tail);
      // A fresh ctx per call so that both runs see the same state.
      IommufdFd fresh(&mem_);
      fresh.IoasAlloc();  // id 1 exists, as the selftest's fixture ioas
      return fresh.ctx.Ioctl(row.request, reinterpret_cast<uintptr_t>(buf));
    };
    EXPECT_EQ(-EINVAL, run(row.min_size - 1, -1));
    EXPECT_EQ(-E2BIG, run(row.size + 1, 0xFF));
    EXPECT_EQ(run(row.size, -1), run(row.size + 1, 0));
  }
}

TEST_F(IommufdTest, CmdExFail) {
  struct {
    u::iommu_destroy cmd;
    uint64_t ext;
  } c{};
  c.cmd.size = sizeof(c);
  EXPECT_EQ(-ENOENT, fd_.Io(u::kIommuDestroy, &c));  // id 0, zero tail
  c.ext = 1;
  EXPECT_EQ(-E2BIG, fd_.Io(u::kIommuDestroy, &c));
  c.cmd.size = sizeof(c.cmd);
  EXPECT_EQ(-ENOENT, fd_.Io(u::kIommuDestroy, &c));
  c.cmd.size = sizeof(c.cmd) - 1;
  EXPECT_EQ(-EINVAL, fd_.Io(u::kIommuDestroy, &c));
}

TEST_F(IommufdTest, GlobalOptions) {
  uint64_t v = 0;
  EXPECT_EQ(0,
            fd_.Option(u::kIommuOptionRlimitMode, 0, u::kIommuOptionOpGet, &v));
  EXPECT_EQ(0u, v);
  v = 1;
  EXPECT_EQ(0,
            fd_.Option(u::kIommuOptionRlimitMode, 0, u::kIommuOptionOpSet, &v));
  v = 2;
  EXPECT_EQ(-EINVAL,
            fd_.Option(u::kIommuOptionRlimitMode, 0, u::kIommuOptionOpSet, &v));
  EXPECT_EQ(0,
            fd_.Option(u::kIommuOptionRlimitMode, 0, u::kIommuOptionOpGet, &v));
  EXPECT_EQ(1u, v);
  v = 0;
  EXPECT_EQ(0,
            fd_.Option(u::kIommuOptionRlimitMode, 0, u::kIommuOptionOpSet, &v));
  EXPECT_EQ(-ENOENT, fd_.HugePages(0, u::kIommuOptionOpGet, &v));
  EXPECT_EQ(-ENOENT, fd_.HugePages(0, u::kIommuOptionOpSet, &v));
}

TEST_F(IommufdTest, SimpleIoctls) {
  EXPECT_EQ(u::kVfioApiVersion, fd_.ctx.Ioctl(u::kVfioGetApiVersion, 0));
  EXPECT_EQ(1, fd_.ctx.Ioctl(u::kVfioCheckExtension, u::kVfioType1v2Iommu));
}

TEST_F(IommufdTest, UnmapCmd) {
  u::vfio_iommu_type1_dma_unmap c{.argsz = 1, .flags = 0, .iova = 0, .size = 0};
  EXPECT_EQ(-EINVAL, fd_.Io(u::kVfioIommuUnmapDma, &c));
  c.argsz = sizeof(c);
  c.flags = 1u << 31;
  EXPECT_EQ(-EINVAL, fd_.Io(u::kVfioIommuUnmapDma, &c));
  c.flags = 0;
  EXPECT_EQ(-ENODEV, fd_.Io(u::kVfioIommuUnmapDma, &c));
}

TEST_F(IommufdTest, MapCmd) {
  Buffer buf(kBufferSize);
  u::vfio_iommu_type1_dma_map c{
      .argsz = 1, .flags = 0, .vaddr = buf.addr(), .iova = 0, .size = kPage};
  EXPECT_EQ(-EINVAL, fd_.Io(u::kVfioIommuMapDma, &c));
  c.argsz = sizeof(c);
  c.flags = 1u << 31;
  EXPECT_EQ(-EINVAL, fd_.Io(u::kVfioIommuMapDma, &c));
  c.flags = u::kDmaMapFlagRead | u::kDmaMapFlagWrite;
  EXPECT_EQ(-ENODEV, fd_.Io(u::kVfioIommuMapDma, &c));
}

TEST_F(IommufdTest, InfoCmd) {
  u::vfio_iommu_type1_info c{
      .argsz = 1, .flags = 0, .iova_pgsizes = 0, .cap_offset = 0, .pad = 0};
  EXPECT_EQ(-EINVAL, fd_.Io(u::kVfioIommuGetInfo, &c));
  c.argsz = sizeof(c);
  EXPECT_EQ(-ENODEV, fd_.Io(u::kVfioIommuGetInfo, &c));
}

TEST_F(IommufdTest, SetIommuCmd) {
  EXPECT_EQ(-ENODEV, fd_.ctx.Ioctl(u::kVfioSetIommu, u::kVfioType1v2Iommu));
  EXPECT_EQ(-ENODEV, fd_.ctx.Ioctl(u::kVfioSetIommu, u::kVfioType1Iommu));
}

TEST_F(IommufdTest, VfioIoas) {
  u::iommu_vfio_ioas c{.size = sizeof(c),
                       .ioas_id = 0,
                       .op = u::kIommuVfioIoasGet,
                       .__reserved = 0};
  EXPECT_EQ(-ENODEV, fd_.Io(u::kIommuVfioIoas, &c));
  c.op = u::kIommuVfioIoasSet;
  EXPECT_EQ(-ENOENT, fd_.Io(u::kIommuVfioIoas, &c));
  const uint32_t ioas = fd_.IoasAlloc();
  c.ioas_id = ioas;
  EXPECT_EQ(0, fd_.Io(u::kIommuVfioIoas, &c));
  c.op = u::kIommuVfioIoasGet;
  c.ioas_id = 0;
  EXPECT_EQ(0, fd_.Io(u::kIommuVfioIoas, &c));
  EXPECT_EQ(ioas, c.ioas_id);
  c.op = u::kIommuVfioIoasClear;
  EXPECT_EQ(0, fd_.Io(u::kIommuVfioIoas, &c));
  c.op = u::kIommuVfioIoasGet;
  EXPECT_EQ(-ENODEV, fd_.Io(u::kIommuVfioIoas, &c));
}

// ---- FIXTURE iommufd_ioas: variants no_domain / mock_domain / two
// -------------

class IommufdIoasTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    ioas_ = fd_.IoasAlloc();
    for (int i = 0; i < GetParam(); ++i) {
      ASSERT_EQ(0, fd_.MockDomain(ioas_, &devid_, &hwpt_));
    }
    base_ = GetParam() > 0 ? kMockApertureStart : 0;
  }
  bool domain() const { return GetParam() > 0; }

  ProcessMemory mem_;
  IommufdFd fd_{&mem_};
  Buffer buf_{kBufferSize};
  uint32_t ioas_ = 0, devid_ = 0, hwpt_ = 0;
  uint64_t base_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Variants, IommufdIoasTest, ::testing::Values(0, 1, 2),
                         [](const auto& p) {
                           return std::string(p.param == 0 ? "no_domain"
                                              : p.param == 1
                                                  ? "mock_domain"
                                                  : "two_mock_domain");
                         });

TEST_P(IommufdIoasTest, IoasDestroy) {
  EXPECT_EQ(domain() ? -EBUSY : 0, fd_.Destroy(ioas_));
}

TEST_P(IommufdIoasTest, HwptAttach) {
  uint32_t d = 0;
  if (domain()) {
    EXPECT_EQ(0, fd_.MockDomain(hwpt_, &d, nullptr));
  } else {
    EXPECT_EQ(-ENOENT, fd_.MockDomain(0, &d, nullptr));
  }
}

TEST_P(IommufdIoasTest, IoasAreaDestroy) {
  ASSERT_EQ(0, fd_.MapFixed(ioas_, buf_.addr(), kPage, base_));
  EXPECT_EQ(domain() ? -EBUSY : 0, fd_.Destroy(ioas_));
}

TEST_P(IommufdIoasTest, IoasAreaAutoDestroy) {
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(0, fd_.MapFixed(ioas_, buf_.addr(), kPage, base_ + i * kPage));
  }
  EXPECT_EQ(domain() ? 10 * 1u : 0u, mem_.locked_pages());
}

TEST_P(IommufdIoasTest, Area) {
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(-ENOENT, fd_.Unmap(ioas_, base_ + i * kPage, kPage));
  }
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(0, fd_.MapFixed(ioas_, buf_.addr(), kPage, base_ + i * kPage));
    EXPECT_EQ(0, fd_.Unmap(ioas_, base_ + i * kPage, kPage));
  }
  ASSERT_EQ(0, fd_.MapFixed(ioas_, buf_.addr(), 2 * kPage, base_ + 16 * kPage));
  EXPECT_EQ(-ENOENT, fd_.Unmap(ioas_, base_ + 16 * kPage, kPage));
  EXPECT_EQ(-ENOENT, fd_.Unmap(ioas_, base_ + 17 * kPage, kPage));
  const std::pair<uint64_t, uint64_t> overlaps[] = {
      {2, 16}, {1, 16}, {1, 17}, {2, 15}, {3, 15}};
  for (auto [pages, at] : overlaps) {
    EXPECT_EQ(-EEXIST, fd_.MapFixed(ioas_, buf_.addr(), pages * kPage,
                                    base_ + at * kPage));
  }
  EXPECT_EQ(0, fd_.Unmap(ioas_, 0, UINT64_MAX));
  uint64_t len = 1;
  EXPECT_EQ(0, fd_.Unmap(ioas_, 0, UINT64_MAX, &len));
  EXPECT_EQ(0u, len);
}

TEST_P(IommufdIoasTest, UnmapFullyContainedAreas) {
  const uint64_t base = base_ + 4 * kPage;
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(
        0, fd_.MapFixed(ioas_, buf_.addr(), 8 * kPage, base + i * 16 * kPage));
  }
  EXPECT_EQ(-ENOENT, fd_.Unmap(ioas_, base - 4 * kPage, 8 * kPage));
  EXPECT_EQ(-ENOENT,
            fd_.Unmap(ioas_, base + 3 * 16 * kPage + 4 * kPage, 8 * kPage));
  uint64_t len = 0;
  EXPECT_EQ(0, fd_.Unmap(ioas_, base - 4 * kPage,
                         3 * 16 * kPage + 8 * kPage + 4 * kPage, &len));
  EXPECT_EQ(32 * kPage, len);
}

TEST_P(IommufdIoasTest, AreaAutoIova) {
  uint64_t iovas[10];
  for (auto& iova : iovas) {
    iova = 0;
    ASSERT_EQ(0, fd_.Map(ioas_, buf_.addr(), kPage, &iova));
    EXPECT_NE(0u, iova);  // never page 0
  }
  for (uint64_t iova : iovas) EXPECT_EQ(0, fd_.Unmap(ioas_, iova, kPage));
  const uint64_t lazy_va = domain() ? buf_.addr() : (1ull << 31);
  auto check_aligned = [&](const char* what, bool in_allowed, uint64_t lo,
                           uint64_t hi) {
    SCOPED_TRACE(what);
    for (int i = 0; i < 10; ++i) {
      const uint64_t length = (i + 1) * kPage;
      iovas[i] = 0;
      ASSERT_EQ(0, fd_.Map(ioas_, lazy_va, length, &iovas[i]));
      EXPECT_EQ(0u, iovas[i] % (1ull << __builtin_ctzll(length)));
      if (in_allowed) {
        EXPECT_GE(iovas[i], lo);
        EXPECT_LE(iovas[i] + length - 1, hi);
      } else if (hi != 0) {  // outside (lo, hi)
        EXPECT_TRUE(iovas[i] + length - 1 <= lo || iovas[i] >= hi);
      }
    }
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(0, fd_.Unmap(ioas_, iovas[i], (i + 1) * kPage));
    }
  };
  check_aligned("plain", false, 0, 0);
  ASSERT_EQ(0, fd_.ctx.TestAddReserved(ioas_, 4 * kPage, 100 * kPage));
  check_aligned("reserved", false, 4 * kPage, 104 * kPage);
  EXPECT_EQ(-EADDRINUSE, fd_.Allow(ioas_, {{kPage, 600 * kPage}}));
  const uint64_t lo = domain() ? kMockApertureStart + kPage : 200 * kPage;
  const uint64_t hi =
      domain() ? kMockApertureStart + 600 * kPage - 1 : 600 * kPage - 1;
  ASSERT_EQ(0, fd_.Allow(ioas_, {{lo, hi}}));
  check_aligned("allowed", true, lo, hi);
}

TEST_P(IommufdIoasTest, ReservedOverflow) {
  ASSERT_EQ(0, fd_.ctx.TestAddReserved(ioas_, 6, 0xffffffffffff8001ull));
  uint64_t iova = 0;
  EXPECT_EQ(-ENOSPC, fd_.Map(ioas_, buf_.addr(), 0x5000, &iova));
}

TEST_P(IommufdIoasTest, AreaAllowed) {
  ASSERT_EQ(0, fd_.Allow(ioas_, {{base_, base_ + 600 * kPage}}));
  EXPECT_EQ(-EADDRINUSE, fd_.ctx.TestAddReserved(ioas_, base_ + kPage, kPage));
  EXPECT_EQ(0, fd_.Allow(ioas_, {}));
  EXPECT_EQ(0, fd_.ctx.TestAddReserved(ioas_, base_ + kPage, kPage));
  EXPECT_EQ(-EADDRINUSE, fd_.Allow(ioas_, {{base_, base_ + 600 * kPage}}));
}

TEST_P(IommufdIoasTest, CopyArea) {
  ASSERT_EQ(0, fd_.MapFixed(ioas_, buf_.addr(), kPage, base_));
  const uint32_t flags = u::kIoasMapFixedIova | u::kIoasMapWriteable;
  uint64_t dst = base_ + kPage;
  EXPECT_EQ(0, fd_.Copy(ioas_, &dst, ioas_, base_, kPage, flags));
  const uint32_t other = fd_.IoasAlloc();
  dst = 0;  // an empty IOAS accepts iova 0
  EXPECT_EQ(0, fd_.Copy(other, &dst, ioas_, base_, kPage, flags));
  // The copy shares the pages: charged once.
  EXPECT_EQ(domain() ? 1u : 0u, mem_.locked_pages());
}

TEST_P(IommufdIoasTest, IovaRanges) {
  u::iommu_iova_range ranges[2] = {};
  u::iommu_ioas_iova_ranges c{
      .size = sizeof(c),
      .ioas_id = ioas_,
      .num_iovas = 2,
      .__reserved = 0,
      .allowed_iovas = reinterpret_cast<uint64_t>(ranges),
      .out_iova_alignment = 0};
  ASSERT_EQ(0, fd_.Io(u::kIommuIoasIovaRanges, &c));
  ASSERT_EQ(1u, c.num_iovas);
  EXPECT_EQ(domain() ? kMockApertureStart : 0, ranges[0].start);
  EXPECT_EQ(domain() ? kMockApertureLast : UINT64_MAX, ranges[0].last);
  EXPECT_EQ(domain() ? kMockPageSize : 1, c.out_iova_alignment);

  std::memset(ranges, 0, sizeof(ranges));
  c.num_iovas = 0;
  EXPECT_EQ(-EMSGSIZE, fd_.Io(u::kIommuIoasIovaRanges, &c));
  EXPECT_EQ(1u, c.num_iovas);
  EXPECT_EQ(0u, ranges[0].start);
  EXPECT_EQ(0u, ranges[0].last);

  ASSERT_EQ(0, fd_.ctx.TestAddReserved(ioas_, kPage, kPage));
  c.num_iovas = 1;
  std::memset(ranges, 0, sizeof(ranges));
  if (domain()) {
    EXPECT_EQ(0, fd_.Io(u::kIommuIoasIovaRanges, &c));
    EXPECT_EQ(1u, c.num_iovas);
    EXPECT_EQ(kMockApertureStart, ranges[0].start);
  } else {
    EXPECT_EQ(-EMSGSIZE, fd_.Io(u::kIommuIoasIovaRanges, &c));
    EXPECT_EQ(2u, c.num_iovas);
    EXPECT_EQ(0u, ranges[0].start);
    EXPECT_EQ(kPage - 1, ranges[0].last);
  }
  EXPECT_EQ(0u, ranges[1].start);  // untouched
  EXPECT_EQ(0u, ranges[1].last);
  if (!domain()) {
    c.num_iovas = 2;
    ASSERT_EQ(0, fd_.Io(u::kIommuIoasIovaRanges, &c));
    EXPECT_EQ(2 * kPage, ranges[1].start);
    EXPECT_EQ(UINT64_MAX, ranges[1].last);
  }
}

TEST_P(IommufdIoasTest, IoasOptionHugePages) {
  uint64_t v = 0;
  EXPECT_EQ(0, fd_.HugePages(ioas_, u::kIommuOptionOpGet, &v));
  EXPECT_EQ(1u, v);
  v = 0;
  EXPECT_EQ(0, fd_.HugePages(ioas_, u::kIommuOptionOpSet, &v));
  EXPECT_EQ(0, fd_.HugePages(ioas_, u::kIommuOptionOpGet, &v));
  EXPECT_EQ(0u, v);
  v = 2;
  EXPECT_EQ(-EINVAL, fd_.HugePages(ioas_, u::kIommuOptionOpSet, &v));
  v = 1;
  EXPECT_EQ(0, fd_.HugePages(ioas_, u::kIommuOptionOpSet, &v));
}

TEST_P(IommufdIoasTest, IoasIovaAlloc) {
  for (uint64_t length = 1; length < 2 * kPage; ++length) {
    uint64_t iova = 0;
    const int rc = fd_.Map(ioas_, buf_.addr(), length, &iova);
    if (domain() && length % kMockPageSize != 0) {
      ASSERT_EQ(-EINVAL, rc) << length;
      continue;
    }
    ASSERT_EQ(0, rc) << length;
    ASSERT_EQ(0, fd_.Unmap(ioas_, iova, length)) << length;
  }
}

TEST_P(IommufdIoasTest, IoasAlignChange) {
  if (domain()) GTEST_SKIP() << "no_domain variant only";
  ASSERT_EQ(0, fd_.MapFixed(ioas_, buf_.addr(), kPage, kMockApertureStart));
  uint64_t v = 0;
  ASSERT_EQ(0, fd_.HugePages(ioas_, u::kIommuOptionOpSet, &v));
  EXPECT_EQ(-EINVAL, fd_.MapFixed(ioas_, buf_.addr() + kMockPageSize, kPage,
                                  kMockApertureStart + kPage));
  v = 1;
  ASSERT_EQ(0, fd_.HugePages(ioas_, u::kIommuOptionOpSet, &v));
  EXPECT_EQ(0, fd_.MapFixed(ioas_, buf_.addr() + kMockPageSize, kPage,
                            kMockApertureStart + kPage));
  v = 0;
  EXPECT_EQ(-EADDRINUSE, fd_.HugePages(ioas_, u::kIommuOptionOpSet, &v));
}

TEST_P(IommufdIoasTest, CopySweep) {
  const uint64_t mapped = domain() ? kBufferSize : kBufferSize - 1;
  ASSERT_EQ(0, fd_.MapFixed(ioas_, buf_.addr(), mapped, kMockApertureStart));
  const uint32_t dst_ioas = fd_.IoasAlloc();
  const uint64_t first = kMockApertureStart, last = first + mapped - 1;
  const uint32_t flags = u::kIoasMapFixedIova | u::kIoasMapWriteable;
  int ok = 0;
  for (uint64_t src = first - kPage; src <= last; src += 511) {
    uint64_t dst = kMockApertureStart;
    const int rc = fd_.Copy(dst_ioas, &dst, ioas_, src, kMockPageSize, flags);
    if (src >= first && src + kMockPageSize - 1 <= last) {
      ASSERT_EQ(0, rc) << std::hex << src;
      ASSERT_EQ(0, fd_.Unmap(dst_ioas, dst, kMockPageSize));
      ++ok;
    } else {
      ASSERT_EQ(-ENOENT, rc) << std::hex << src;
    }
  }
  EXPECT_GT(ok, 100);
}

// ---- FIXTURE iommufd_mock_domain
// ---------------------------------------------------

class IommufdMockDomainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ioas_ = fd_.IoasAlloc();
    ASSERT_EQ(0, fd_.MockDomain(ioas_, &devid_, &hwpt_));
  }
  ProcessMemory mem_;
  IommufdFd fd_{&mem_};
  uint32_t ioas_ = 0, devid_ = 0, hwpt_ = 0;
};

TEST_F(IommufdMockDomainTest, BasicMmap) {
  Buffer buf(8 * kPage);
  uint64_t iova = 0;
  ASSERT_EQ(0, fd_.Map(ioas_, buf.addr(), kPage, &iova));
  EXPECT_TRUE(fd_.DomainMaps(devid_, iova, buf.addr(), kPage));
  ASSERT_EQ(0, fd_.Unmap(ioas_, iova, kPage));
  buf.Unmap(4 * kPage, 4 * kPage);
  iova = 0;
  EXPECT_EQ(-EFAULT, fd_.Map(ioas_, buf.addr(), 8 * kPage, &iova));
  buf.Unmap(0, 4 * kPage);
  EXPECT_EQ(-EFAULT, fd_.Map(ioas_, buf.addr(), 8 * kPage, &iova));
  uint64_t len = 1;
  EXPECT_EQ(0, fd_.Unmap(ioas_, 0, UINT64_MAX, &len));
  EXPECT_EQ(0u, len);  // nothing left behind
  EXPECT_EQ(0u, mem_.locked_pages());
}

TEST_F(IommufdMockDomainTest, AllAligns) {
  Buffer buf(4 * kPage);
  for (uint64_t start = 0; start < buf.size(); start += kMockPageSize) {
    for (uint64_t end = start + kMockPageSize; end <= buf.size();
         end += kMockPageSize) {
      uint64_t iova = 0;
      ASSERT_EQ(0, fd_.Map(ioas_, buf.addr() + start, end - start, &iova));
      ASSERT_TRUE(
          fd_.DomainMaps(devid_, iova, buf.addr() + start, end - start));
      ASSERT_GT(mem_.locked_pages(), 0u);
      ASSERT_EQ(0, fd_.Unmap(ioas_, iova, end - start));
      ASSERT_EQ(0u, mem_.locked_pages());
    }
  }
}

TEST_F(IommufdMockDomainTest, AllAlignsCopy) {
  // As all_aligns, with a second domain added and destroyed while each
  // area exists: it must be filled from the areas and change no charge.
  Buffer buf(2 * kPage);
  for (uint64_t start = 0; start < buf.size(); start += kMockPageSize) {
    for (uint64_t end = start + kMockPageSize; end <= buf.size();
         end += kMockPageSize) {
      const uint64_t len = end - start;
      uint64_t iova = 0;
      ASSERT_EQ(0, fd_.Map(ioas_, buf.addr() + start, len, &iova));
      const uint64_t locked = mem_.locked_pages();
      u::iommu_hwpt_alloc c{};
      c.size = sizeof(c);
      c.dev_id = devid_;
      c.pt_id = ioas_;
      ASSERT_EQ(0, fd_.Io(u::kIommuHwptAlloc, &c));
      uint32_t d2 = 0;
      ASSERT_EQ(0, fd_.MockDomain(c.out_hwpt_id, &d2, nullptr));
      ASSERT_TRUE(fd_.DomainMaps(d2, iova, buf.addr() + start, len));
      ASSERT_EQ(locked, mem_.locked_pages());
      fd_.ctx.UnbindDevice(d2);
      ASSERT_EQ(0, fd_.Destroy(c.out_hwpt_id));
      ASSERT_EQ(locked, mem_.locked_pages());
      ASSERT_EQ(0, fd_.Unmap(ioas_, iova, len));
      ASSERT_EQ(0u, mem_.locked_pages());
    }
  }
}

TEST_F(IommufdMockDomainTest, Replace) {
  const uint32_t ioas2 = fd_.IoasAlloc();
  uint32_t pt = ioas2;
  ASSERT_EQ(0, fd_.ctx.AttachDevice(devid_, &pt));
  EXPECT_NE(hwpt_, pt);
  uint32_t old = hwpt_;
  EXPECT_EQ(-ENOENT, fd_.ctx.AttachDevice(devid_, &old));  // auto hwpt freed
  uint32_t again = ioas2;
  EXPECT_EQ(0, fd_.ctx.AttachDevice(devid_, &again));
  EXPECT_EQ(pt, again);
  EXPECT_EQ(0, fd_.Destroy(ioas_));  // no longer used
}

TEST_F(IommufdMockDomainTest, AllocHwpt) {
  u::iommu_hwpt_alloc c{};
  c.size = sizeof(c);
  c.dev_id = devid_;
  c.pt_id = ioas_;
  c.flags = ~u::kHwptAllocNestParent;
  EXPECT_EQ(-EOPNOTSUPP, fd_.Io(u::kIommuHwptAlloc, &c));
  for (uint32_t flags : {0u, u::kHwptAllocNestParent}) {
    c.flags = flags;
    ASSERT_EQ(0, fd_.Io(u::kIommuHwptAlloc, &c));
    const uint32_t hwpt = c.out_hwpt_id;
    uint32_t pt = hwpt;
    ASSERT_EQ(0, fd_.ctx.AttachDevice(devid_, &pt));
    EXPECT_EQ(-EBUSY, fd_.Destroy(hwpt));
    pt = ioas_;
    ASSERT_EQ(0, fd_.ctx.AttachDevice(devid_, &pt));
    EXPECT_EQ(0, fd_.Destroy(hwpt));
    // mock_domain directly on a manual hwpt.
    ASSERT_EQ(0, fd_.Io(u::kIommuHwptAlloc, &c));
    uint32_t d2 = 0, h2 = 0;
    EXPECT_EQ(0, fd_.MockDomain(c.out_hwpt_id, &d2, &h2));
    EXPECT_EQ(c.out_hwpt_id, h2);
    fd_.ctx.UnbindDevice(d2);
    EXPECT_EQ(0, fd_.Destroy(c.out_hwpt_id));
  }
}

TEST_F(IommufdMockDomainTest, AllocHwptNestedNegative) {
  u::iommu_hwpt_alloc c{};
  c.size = sizeof(c);
  c.dev_id = ioas_;  // not a device
  c.pt_id = ioas_;
  EXPECT_EQ(-ENOENT, fd_.Io(u::kIommuHwptAlloc, &c));
  c.dev_id = devid_;
  c.pt_id = devid_;  // not a page table
  EXPECT_EQ(-EINVAL, fd_.Io(u::kIommuHwptAlloc, &c));
  c.pt_id = ioas_;
  c.flags = u::kHwptAllocNestParent | u::kHwptAllocFaultIdValid;
  EXPECT_EQ(-EOPNOTSUPP, fd_.Io(u::kIommuHwptAlloc, &c));
  c.pt_id = 999;
  c.flags = 0;
  EXPECT_EQ(-EINVAL, fd_.Io(u::kIommuHwptAlloc, &c));  // unknown pt_id
}

}  // namespace
}  // namespace viommu::vfio::model::testing
