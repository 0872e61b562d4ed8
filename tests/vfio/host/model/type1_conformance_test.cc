// Type1 through the model host, rule by rule: every row of
// docs/real-kernel-tests.md (what Linux 6.1 answered) and the rules of
// docs/vfio-type1-model.md as input -> expected errno/result.
#include <cerrno>
#include <map>
#include <string>

#include "gtest/gtest.h"
#include "tests/fakes/fake_model_device.h"
#include "tests/vfio/host/model/type1_test_util.h"
#include "viommu/vfio/host/model/model_host.h"

namespace viommu::vfio::model {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// A model host with `group` set to a fresh container and SET_IOMMU(type)
// done: the legacy sequence of §3.3 up to GET_INFO.
class Attached {
 public:
  explicit Attached(uint32_t group, KernelVersion kernel = KernelVersion::k6_1,
                    unsigned long type = uapi::kVfioType1v2Iommu,
                    HostPlatform platform = DefaultHostPlatform())
      : host_(std::move(platform), ModelHostOptions{.kernel = kernel}) {
    container_ = host_.Open("/dev/vfio/vfio");
    group_ = host_.Open("/dev/vfio/" + std::to_string(group));
    EXPECT_EQ(
        host_.Ioctl(group_, uapi::kVfioGroupSetContainer, AsArg(&container_)),
        0);
    EXPECT_EQ(host_.Ioctl(container_, uapi::kVfioSetIommu, type), 0);
  }
  ModelHost& host() { return host_; }
  int container() const { return container_; }
  int group() const { return group_; }
  Type1Client client() { return Type1Client::ForFd(&host_, container_); }
  const Type1Iommu& iommu() { return *host_.ContainerIommu(container_); }
  // Opens `group` and sets it to this container: SET_CONTAINER's result.
  int Join(uint32_t group, int* fd) {
    *fd = host_.Open("/dev/vfio/" + std::to_string(group));
    EXPECT_GE(*fd, 0);
    return host_.Ioctl(*fd, uapi::kVfioGroupSetContainer, AsArg(&container_));
  }

 private:
  ModelHost host_;
  int container_;
  int group_;
};

// ---- real-kernel.md, row by row (group 3: 39-bit like the measured VT-d) ----

TEST(Type1ConformanceTest, ApiVersionAndExtensionsBeforeSetIommu) {
  ModelHost host(DefaultHostPlatform());
  const int c = host.Open("/dev/vfio/vfio");
  EXPECT_EQ(host.Ioctl(c, uapi::kVfioGetApiVersion, 0), 0);
  const int expected[] = {1, 0, 1, 0, 0, 1, 0, 0, 1, 0};
  for (unsigned long ext = 1; ext <= 10; ++ext) {
    EXPECT_EQ(host.Ioctl(c, uapi::kVfioCheckExtension, ext), expected[ext - 1])
        << "extension " << ext;
  }
}

TEST(Type1ConformanceTest, GroupStatusIsViable) {
  ModelHost host(DefaultHostPlatform());
  const int g = host.Open("/dev/vfio/3");
  uapi::vfio_group_status st{.argsz = sizeof(st)};
  EXPECT_EQ(host.Ioctl(g, uapi::kVfioGroupGetStatus, AsArg(&st)), 0);
  EXPECT_EQ(st.flags, uapi::kGroupFlagsViable);
}

TEST(Type1ConformanceTest, SetIommuBeforeAnyGroupIsEinval) {
  ModelHost host(DefaultHostPlatform());
  const int c = host.Open("/dev/vfio/vfio");
  EXPECT_EQ(host.Ioctl(c, uapi::kVfioSetIommu, uapi::kVfioType1v2Iommu),
            -EINVAL);
}

TEST(Type1ConformanceTest, SecondSetContainerIsEinval) {
  Attached a(3);
  const int other = a.host().Open("/dev/vfio/vfio");
  EXPECT_EQ(
      a.host().Ioctl(a.group(), uapi::kVfioGroupSetContainer, AsArg(&other)),
      -EINVAL);
}

TEST(Type1ConformanceTest, GetInfoArgsz8IsEinval) {
  Attached a(3);
  int rc;
  a.client().GetInfo(8, &rc);
  EXPECT_EQ(rc, -EINVAL);
}

TEST(Type1ConformanceTest, GetInfoFixedSizeReportsRequiredArgsz) {
  Attached a(3);
  int rc;
  auto buf = a.client().GetInfo(24, &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 0), 116u);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 4), 0x3u);
  EXPECT_EQ(LoadAt<uint64_t>(buf, 8), 0x40201000u);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 16), 0u);
  EXPECT_EQ(buf[20], 0xAA) << "6.1 copies back 20 bytes";
  EXPECT_EQ(buf[24], 0xAA) << "no cap bytes without room";
}

TEST(Type1ConformanceTest, GetInfoCapabilityChainBytes) {
  Attached a(3);
  int rc;
  auto buf = a.client().GetInfo(116, &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 0), 116u);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 16), 24u);  // cap_offset
  // MIGRATION at 24.
  EXPECT_EQ(LoadAt<uint16_t>(buf, 24), 2);
  EXPECT_EQ(LoadAt<uint16_t>(buf, 26), 1);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 28), 56u);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 32), 0u);  // flags
  EXPECT_EQ(LoadAt<uint64_t>(buf, 40), 0x1000u);
  EXPECT_EQ(LoadAt<uint64_t>(buf, 48), 0x10000000u);
  // DMA_AVAIL at 56, 12 bytes unpadded.
  EXPECT_EQ(LoadAt<uint16_t>(buf, 56), 3);
  EXPECT_EQ(LoadAt<uint16_t>(buf, 58), 1);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 60), 68u);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 64), 65535u);
  // IOVA_RANGE at 68.
  EXPECT_EQ(LoadAt<uint16_t>(buf, 68), 1);
  EXPECT_EQ(LoadAt<uint16_t>(buf, 70), 1);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 72), 0u);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 76), 2u);
  EXPECT_EQ(LoadAt<uint64_t>(buf, 84), 0u);
  EXPECT_EQ(LoadAt<uint64_t>(buf, 92), 0xfedfffffu);
  EXPECT_EQ(LoadAt<uint64_t>(buf, 100), 0xfef00000u);
  EXPECT_EQ(LoadAt<uint64_t>(buf, 108), 0x7fffffffffu);
  EXPECT_EQ(buf[116], 0xAA) << "nothing written past argsz";
}

TEST(Type1ConformanceTest, GetInfoLatestLayoutPadsDmaAvail) {
  Attached a(3, KernelVersion::kLatest);
  int rc;
  auto small = a.client().GetInfo(24, &rc);
  EXPECT_EQ(LoadAt<uint32_t>(small, 0), 120u);  // 88 + 16 * 2
  auto buf = a.client().GetInfo(120, &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 60), 72u);
  EXPECT_EQ(LoadAt<uint16_t>(buf, 72), 1);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 80), 2u);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 20), 0u) << "latest zero-fills the pad";
}

struct MapRow {
  const char* what;
  uint64_t iova;
  uint64_t size;
  uint32_t flags;
  int expect_6_1;
  int expect_latest;
};

// real-kernel.md's MAP rows, applied in order to one container.
const MapRow kRealKernelMapRows[] = {
    {"map 0x100000+0x10000", 0x100000, 0x10000, kRW, 0, 0},
    {"overlapping 0x108000", 0x108000, 0x1000, kRW, -EEXIST, -EEXIST},
    {"size 0", 0x300000, 0, kRW, -EINVAL, -EINVAL},
    {"misaligned 0x200800", 0x200800, 0x1000, kRW, -EINVAL, -EINVAL},
    {"inside the MSI window", 0xfee00000, 0x1000, kRW, -EINVAL, -EINVAL},
    {"straddling the MSI start", 0xfedff000, 0x2000, kRW, -EINVAL, -EINVAL},
    {"flags 0", 0x400000, 0x1000, 0, -EINVAL, -EINVAL},
    {"wraps", 0xfffffffffffff000, 0x2000, kRW, -EINVAL, -EOVERFLOW},
    {"past the 39-bit aperture", 0x8000000000, 0x1000, kRW, -EINVAL, -EINVAL},
    {"last aperture page", 0x7ffffff000, 0x1000, kRW, 0, 0},
};

class MapRowsTest : public ::testing::TestWithParam<KernelVersion> {};

TEST_P(MapRowsTest, RealKernelMapRows) {
  AnonBuffer ram(kMiB);
  Attached a(3, GetParam());
  for (const MapRow& row : kRealKernelMapRows) {
    const int want =
        GetParam() == KernelVersion::k6_1 ? row.expect_6_1 : row.expect_latest;
    EXPECT_EQ(a.client().Map(row.iova, row.size, ram.addr(), row.flags), want)
        << row.what;
  }
  EXPECT_EQ(a.iommu().mapping_count(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Kernels, MapRowsTest,
                         ::testing::Values(KernelVersion::k6_1,
                                           KernelVersion::kLatest));

TEST(Type1ConformanceTest, UnmapBisectIsEinvalAndSizeNotWrittenBack) {
  AnonBuffer ram(kMiB);
  Attached a(3);
  ASSERT_EQ(a.client().Map(0x100000, 0x10000, ram.addr()), 0);
  EXPECT_EQ(a.client().Unmap(0x104000, 0x1000), (UnmapResult{-EINVAL, 0x1000}));
  EXPECT_EQ(a.client().Unmap(0x100000, 0x1000), (UnmapResult{-EINVAL, 0x1000}));
  EXPECT_EQ(a.iommu().mapping_count(), 1u);
}

TEST(Type1ConformanceTest, UnmapEmptyRangeIsZeroSizeZero) {
  Attached a(3);
  EXPECT_EQ(a.client().Unmap(0x500000, 0x1000), (UnmapResult{0, 0}));
}

TEST(Type1ConformanceTest, UnmapAllReturnsTotalBytes) {
  AnonBuffer ram(kMiB);
  Attached a(3);
  ASSERT_EQ(a.client().Map(0x100000, 0x10000, ram.addr()), 0);
  ASSERT_EQ(a.client().Map(0x7ffffff000, 0x1000, ram.addr()), 0);
  EXPECT_EQ(a.client().Unmap(0, 0, uapi::kDmaUnmapFlagAll),
            (UnmapResult{0, 0x11000}));
  EXPECT_EQ(a.iommu().mapping_count(), 0u);
  EXPECT_EQ(a.host().locked_pages(), 0u);
}

TEST(Type1ConformanceTest, MapOfAnMmappedBarIsAcceptedUncharged) {
  std::map<std::string, FakeModelDevice*> devs;
  ModelHost host(DefaultHostPlatform(),
                 {.device_factory = FakeModelDevice::Factory(&devs)});
  const int c = host.Open("/dev/vfio/vfio");
  const int g = host.Open("/dev/vfio/3");
  ASSERT_EQ(host.Ioctl(g, uapi::kVfioGroupSetContainer, AsArg(&c)), 0);
  ASSERT_EQ(host.Ioctl(c, uapi::kVfioSetIommu, uapi::kVfioType1v2Iommu), 0);
  const int d =
      host.Ioctl(g, uapi::kVfioGroupGetDeviceFd, AsArg("0000:03:00.0"));
  ASSERT_GE(d, 0);
  auto bar = host.Mmap(d, FakeModelDevice::kBar2Size,
                       uapi::PciIndexToOffset(uapi::kPciBar2RegionIndex));
  ASSERT_TRUE(bar.ok()) << bar.status();
  Type1Client client = Type1Client::ForFd(&host, c);
  EXPECT_EQ(client.Map(0x40000000, FakeModelDevice::kBar2Size,
                       reinterpret_cast<uint64_t>(*bar)),
            0);
  EXPECT_EQ(host.locked_pages(), 0u);
  EXPECT_EQ(*host.ContainerMappingCount(c), 1u);
  host.Munmap(*bar, FakeModelDevice::kBar2Size);
}

TEST(Type1ConformanceTest, GetDeviceFdUnknownNameIsEnodev) {
  Attached a(3);
  EXPECT_EQ(a.host().Ioctl(a.group(), uapi::kVfioGroupGetDeviceFd,
                           AsArg("0000:09:00.0")),
            -ENODEV);
}

// ---- §2.8 attach: the seed case and its relatives -----------------------

TEST(Type1ConformanceTest, SeedDirectRegionConflictFailsAttachListUnchanged) {
  AnonBuffer ram(256 * kMiB);  // guest RAM mapped 1:1 from IOVA 0
  Attached a(1);
  ASSERT_EQ(a.client().Map(0, ram.size(), ram.addr()), 0);
  const std::vector<IovaWindow> before = a.iommu().iova_list();
  int g2;
  EXPECT_EQ(a.Join(2, &g2), -EINVAL);
  EXPECT_EQ(a.iommu().iova_list(), before);
  EXPECT_EQ(a.iommu().group_count(), 1u);
  EXPECT_EQ(a.iommu().mapping_count(), 1u);
  uapi::vfio_group_status st{.argsz = sizeof(st)};
  ASSERT_EQ(a.host().Ioctl(g2, uapi::kVfioGroupGetStatus, AsArg(&st)), 0);
  EXPECT_EQ(st.flags, uapi::kGroupFlagsViable) << "group 2 has no container";
  // A fresh container takes group 2 (QEMU's fallback).
  const int c2 = a.host().Open("/dev/vfio/vfio");
  EXPECT_EQ(a.host().Ioctl(g2, uapi::kVfioGroupSetContainer, AsArg(&c2)), 0);
  EXPECT_EQ(a.host().Ioctl(c2, uapi::kVfioSetIommu, uapi::kVfioType1v2Iommu),
            0);
}

TEST(Type1ConformanceTest, SetIommuSurfacesTheSameConflictOnlyWithMappings) {
  // Without mappings group 2 joins group 1's domain and the direct range
  // leaves the IOVA list.
  Attached a(1);
  int g2;
  ASSERT_EQ(a.Join(2, &g2), 0);
  EXPECT_EQ(a.iommu().domain_count(), 1u) << "same hardware: domain reused";
  const std::vector<IovaWindow> want = {
      {0, 0x0effffff}, {0x0f100000, 0xfedfffff}, {0xfef00000, 0xffffffffffff}};
  EXPECT_EQ(a.iommu().iova_list(), want);
  AnonBuffer ram(kMiB);
  EXPECT_EQ(a.client().Map(0x0f000000, 0x1000, ram.addr()), -EINVAL);
}

TEST(Type1ConformanceTest, ApertureConflictFailsAttach) {
  AnonBuffer ram(kMiB);
  Attached a(1);  // 48-bit
  ASSERT_EQ(a.client().Map(0x8000000000, 0x1000, ram.addr()), 0);
  const std::vector<IovaWindow> before = a.iommu().iova_list();
  int g3;
  EXPECT_EQ(a.Join(3, &g3), -EINVAL);  // 39-bit would cut the mapping off
  EXPECT_EQ(a.iommu().iova_list(), before);
}

TEST(Type1ConformanceTest, SecondDomainGetsEveryMappingReplayed) {
  std::map<std::string, FakeModelDevice*> devs;
  ModelHost host(DefaultHostPlatform(),
                 {.device_factory = FakeModelDevice::Factory(&devs)});
  const int c = host.Open("/dev/vfio/vfio");
  const int g1 = host.Open("/dev/vfio/1");
  ASSERT_EQ(host.Ioctl(g1, uapi::kVfioGroupSetContainer, AsArg(&c)), 0);
  ASSERT_EQ(host.Ioctl(c, uapi::kVfioSetIommu, uapi::kVfioType1v2Iommu), 0);
  AnonBuffer ram(kMiB);
  Type1Client client = Type1Client::ForFd(&host, c);
  ASSERT_EQ(client.Map(0x100000, 0x4000, ram.addr()), 0);
  ASSERT_EQ(client.Map(0x200000, 0x2000, ram.addr() + 0x8000), 0);
  const uint64_t locked = host.locked_pages();
  const int g3 = host.Open("/dev/vfio/3");
  ASSERT_EQ(host.Ioctl(g3, uapi::kVfioGroupSetContainer, AsArg(&c)), 0);
  const Type1Iommu& iommu = *host.ContainerIommu(c);
  EXPECT_EQ(iommu.domain_count(), 2u) << "39-bit hardware: its own domain";
  EXPECT_EQ(host.locked_pages(), locked) << "replay copies, charges nothing";
  FakeModelDevice* dev3 = devs["0000:03:00.0"];
  ASSERT_NE(dev3->domain, nullptr);
  EXPECT_NE(dev3->domain, devs["0000:01:00.0"]->domain);
  EXPECT_EQ(dev3->domain->mapping_count(), 2u);
  const uint32_t word = 0x5a5a1234;
  EXPECT_TRUE(dev3->DmaWrite(0x200010, &word, sizeof(word)));
  uint32_t seen;
  std::memcpy(&seen, ram.data() + 0x8010, sizeof(seen));
  EXPECT_EQ(seen, word);
  // A new mapping lands in both domains.
  ASSERT_EQ(client.Map(0x300000, 0x1000, ram.addr()), 0);
  EXPECT_EQ(dev3->domain->mapping_count(), 3u);
  EXPECT_EQ(devs["0000:01:00.0"]->domain->mapping_count(), 3u);
  // The list is the intersection: 39-bit now.
  EXPECT_EQ(iommu.iova_list().back().last, 0x7fffffffffu);
}

TEST(Type1ConformanceTest, DetachWidensTheListBackToTheRemainingAperture) {
  AnonBuffer ram(kMiB);
  Attached a(1);
  int g3;
  ASSERT_EQ(a.Join(3, &g3), 0);
  ASSERT_EQ(a.client().Map(0x100000, 0x1000, ram.addr()), 0);
  EXPECT_EQ(a.iommu().iova_list().back().last, 0x7fffffffffu);
  EXPECT_EQ(a.host().Ioctl(g3, uapi::kVfioGroupUnsetContainer, 0), 0);
  const std::vector<IovaWindow> want = {{0, 0xfedfffff},
                                        {0xfef00000, 0xffffffffffff}};
  EXPECT_EQ(a.iommu().iova_list(), want);
  EXPECT_EQ(a.iommu().domain_count(), 1u);
  EXPECT_EQ(a.iommu().mapping_count(), 1u) << "mappings survive";
  EXPECT_EQ(a.client().Map(0x8000000000, 0x1000, ram.addr()), 0);
}

TEST(Type1ConformanceTest, LastGroupLeavingReleasesEveryMapping) {
  AnonBuffer ram(kMiB);
  Attached a(1);
  ASSERT_EQ(a.client().Map(0x100000, 0x10000, ram.addr()), 0);
  EXPECT_EQ(a.host().locked_pages(), 16u);
  EXPECT_EQ(a.host().Ioctl(a.group(), uapi::kVfioGroupUnsetContainer, 0), 0);
  EXPECT_EQ(a.host().locked_pages(), 0u);
  EXPECT_EQ(a.host().ContainerIommu(a.container()), nullptr);
  EXPECT_EQ(a.client().Map(0x100000, 0x1000, ram.addr()), -EINVAL)
      << "no driver: container ioctls are EINVAL";
}

// ---- §2.6 locked memory -----------------------------------------------------

TEST(Type1ConformanceTest, LockedMemoryRlimitGivesEnomemAndRollsBack) {
  AnonBuffer ram(kMiB);
  Attached a(1);
  a.host().process_memory().set_memlock_limit_pages(16);
  EXPECT_EQ(a.client().Map(0x100000, 0x10000, ram.addr()), 0);
  EXPECT_EQ(a.client().Map(0x200000, 0x1000, ram.addr()), -ENOMEM);
  EXPECT_EQ(a.iommu().mapping_count(), 1u);
  EXPECT_EQ(a.iommu().dma_avail(), 65534u);
  EXPECT_EQ(*a.host().ContainerLockedPages(a.container()), 16u);
  a.host().process_memory().set_cap_ipc_lock(true);
  EXPECT_EQ(a.client().Map(0x200000, 0x1000, ram.addr()), 0);
  EXPECT_EQ(a.host().locked_pages(), 17u);
}

TEST(Type1ConformanceTest, UnmappedVaddrIsEfault) {
  Attached a(1);
  AnonBuffer ram(4 * 4096);
  munmap(ram.data() + 4096, 4096);
  EXPECT_EQ(a.client().Map(0x100000, 4 * 4096, ram.addr()), -EFAULT);
  EXPECT_EQ(a.iommu().mapping_count(), 0u);
  EXPECT_EQ(a.host().locked_pages(), 0u);
  EXPECT_EQ(a.iommu().dma_avail(), 65535u);
}

// ---- fault injection --------------------------------------------------------

TEST(Type1ConformanceTest, FailNthMapDma) {
  AnonBuffer ram(kMiB);
  Attached a(1);
  a.host().FailNthMapDma(2, ENOMEM);
  EXPECT_EQ(a.client().Map(0x100000, 0x1000, ram.addr()), 0);
  EXPECT_EQ(a.client().Map(0x200000, 0x1000, ram.addr()), -ENOMEM);
  EXPECT_EQ(a.client().Map(0x200000, 0x1000, ram.addr()), 0);
  EXPECT_EQ(a.iommu().mapping_count(), 2u);
}

TEST(Type1ConformanceTest, RefusedAttachOnSetContainer) {
  Attached a(1);
  a.host().FailNextGroupAttach(3, EIO);
  int g3;
  EXPECT_EQ(a.Join(3, &g3), -EIO);
  EXPECT_EQ(a.iommu().group_count(), 1u);
  int cfd = a.container();
  EXPECT_EQ(a.host().Ioctl(g3, uapi::kVfioGroupSetContainer, AsArg(&cfd)), 0)
      << "one-shot";
}

TEST(Type1ConformanceTest, RefusedAttachRollsSetIommuBack) {
  ModelHost host(DefaultHostPlatform());
  const int c = host.Open("/dev/vfio/vfio");
  const int g1 = host.Open("/dev/vfio/1");
  const int g3 = host.Open("/dev/vfio/3");
  ASSERT_EQ(host.Ioctl(g1, uapi::kVfioGroupSetContainer, AsArg(&c)), 0);
  ASSERT_EQ(host.Ioctl(g3, uapi::kVfioGroupSetContainer, AsArg(&c)), 0);
  host.FailNextGroupAttach(3, EIO);
  EXPECT_EQ(host.Ioctl(c, uapi::kVfioSetIommu, uapi::kVfioType1v2Iommu), -EIO);
  EXPECT_EQ(host.ContainerIommu(c), nullptr);
  EXPECT_EQ(host.Ioctl(c, uapi::kVfioSetIommu, uapi::kVfioType1v2Iommu), 0);
  EXPECT_EQ(host.ContainerIommu(c)->group_count(), 2u);
}

// ---- §2.12 / §3.1 extensions and SET_IOMMU types
// -------------------------------

TEST(Type1ConformanceTest, ExtensionsWithTheDriverSet) {
  Attached a(1);
  EXPECT_EQ(a.host().Ioctl(a.container(), uapi::kVfioCheckExtension,
                           uapi::kVfioUpdateVaddr),
            1);
  EXPECT_EQ(a.host().Ioctl(a.container(), uapi::kVfioCheckExtension,
                           uapi::kVfioDmaCcIommu),
            0);
  EXPECT_EQ(a.host().Ioctl(a.container(), uapi::kVfioSetIommu,
                           uapi::kVfioType1v2Iommu),
            -EINVAL)
      << "driver already set";
}

struct SetIommuRow {
  unsigned long type;
  KernelVersion kernel;
  int expect;
};

TEST(Type1ConformanceTest, SetIommuTypes) {
  const SetIommuRow rows[] = {
      {uapi::kVfioType1Iommu, KernelVersion::k6_1, 0},
      {uapi::kVfioType1v2Iommu, KernelVersion::k6_1, 0},
      {uapi::kVfioType1NestingIommu, KernelVersion::k6_1, 0},
      {uapi::kVfioType1NestingIommu, KernelVersion::kLatest, -ENODEV},
      {uapi::kVfioSpaprTceIommu, KernelVersion::k6_1, -ENODEV},
      {uapi::kVfioNoIommu, KernelVersion::k6_1, -ENODEV},
      {uapi::kVfioUnmapAll, KernelVersion::k6_1, -EINVAL},
      {uapi::kVfioUpdateVaddr, KernelVersion::k6_1, -ENODEV},
      {42, KernelVersion::k6_1, -ENODEV},
  };
  for (const SetIommuRow& row : rows) {
    ModelHost host(DefaultHostPlatform(), {.kernel = row.kernel});
    const int c = host.Open("/dev/vfio/vfio");
    const int g = host.Open("/dev/vfio/1");
    ASSERT_EQ(host.Ioctl(g, uapi::kVfioGroupSetContainer, AsArg(&c)), 0);
    EXPECT_EQ(host.Ioctl(c, uapi::kVfioSetIommu, row.type), row.expect)
        << "type " << row.type;
  }
}

TEST(Type1ConformanceTest, DmaEntryLimitFromThePlatform) {
  HostPlatform p = DefaultHostPlatform();
  p.dma_entry_limit = 2;
  AnonBuffer ram(kMiB);
  Attached a(1, KernelVersion::k6_1, uapi::kVfioType1v2Iommu, p);
  EXPECT_EQ(a.client().Map(0x100000, 0x1000, ram.addr()), 0);
  EXPECT_EQ(a.client().Map(0x200000, 0x1000, ram.addr()), 0);
  EXPECT_EQ(a.client().Map(0x300000, 0x1000, ram.addr()), -ENOSPC);
  EXPECT_EQ(a.client().Map(0x100000, 0x1000, ram.addr()), -EEXIST)
      << "EEXIST is checked before ENOSPC";
  EXPECT_EQ(a.client().Map(0xfee00000, 0x1000, ram.addr()), -ENOSPC)
      << "ENOSPC is checked before the IOVA windows";
  int rc;
  auto buf = a.client().GetInfo(116, &rc);
  EXPECT_EQ(LoadAt<uint32_t>(buf, 64), 0u);
  EXPECT_EQ(a.client().Unmap(0x100000, 0x1000), (UnmapResult{0, 0x1000}));
  EXPECT_EQ(a.client().Map(0x300000, 0x1000, ram.addr()), 0);
}

}  // namespace
}  // namespace viommu::vfio::model
