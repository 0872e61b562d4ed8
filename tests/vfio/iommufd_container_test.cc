// IommufdContainer through VfioManager against FakeHostBackend: IOAS
// allocation, cdev bind/attach, IOVA_RANGES with the EMSGSIZE retry,
// sharing and the EINVAL fallback, ENOENT-tolerant unmap, teardown.
#include "viommu/vfio/iommufd_container.h"

#include <cerrno>
#include <cstdint>
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/vfio/vfio_test_env.h"
#include "viommu/vfio/vfio_status.h"

namespace viommu::vfio::testing {
namespace {

using ::testing::ElementsAre;

class IommufdContainerTest : public VfioTestEnv {};

TEST_F(IommufdContainerTest, AttachAllocatesAnIoasAndMapsRam) {
  host_.iova_ranges = {{0, 0xfedfffff}, {0xfef00000, (1ull << 48) - 1}};
  auto ram = AddRam(0, 0x100000, "ram");
  auto c = Attach("0000:01:00.0", nullptr, "iommufd0");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->backend(), ContainerBackend::kIommufd);
  EXPECT_EQ(host_.CallCount(uapi::kIommuIoasAlloc), 1);
  EXPECT_EQ(host_.CallCount(uapi::kVfioDeviceBindIommufd), 1);
  EXPECT_EQ(host_.CallCount(uapi::kVfioDeviceAttachIommufdPt), 1);
  // First call sized 0 gets EMSGSIZE, the second fetches.
  EXPECT_EQ(host_.CallCount(uapi::kIommuIoasIovaRanges), 2);
  EXPECT_EQ((*c)->iova_ranges(), host_.iova_ranges);
  EXPECT_EQ((*c)->page_size_mask(), 0x1000u);
  auto m = host_.AllMappings();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].vaddr, reinterpret_cast<uintptr_t>(ram->host()));
  EXPECT_EQ(manager_->Query()[0].backend, "iommufd");
}

TEST_F(IommufdContainerTest, SecondDeviceSharesTheIoas) {
  AddRam(0, 0x100000, "ram");
  auto a = Attach("0000:01:00.0", nullptr, "iommufd0");
  auto b = Attach("0000:02:00.0", nullptr, "iommufd0");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(host_.ioas_count(), 1u);
  EXPECT_EQ(host_.HostMappingCount(), 1u);
  EXPECT_THAT((*a)->devices(), ElementsAre("0000:01:00.0", "0000:02:00.0"));
}

TEST_F(IommufdContainerTest, EinvalFromAttachFallsBackToANewIoas) {
  AddRam(0, 0x100000, "ram");
  host_.refuse_join_devices = {"0000:02:00.0"};
  auto a = Attach("0000:01:00.0", nullptr, "iommufd0");
  auto b = Attach("0000:02:00.0", nullptr, "iommufd0");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(host_.ioas_count(), 2u);
  EXPECT_EQ(host_.HostMappingCount(), 2u);
}

TEST_F(IommufdContainerTest, DifferentIommufdObjectsDoNotShare) {
  auto a = Attach("0000:01:00.0", nullptr, "iommufd0");
  auto b = Attach("0000:02:00.0", nullptr, "iommufd1");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_NE(static_cast<IommufdContainer*>(*a)->iommufd(),
            static_cast<IommufdContainer*>(*b)->iommufd());
}

TEST_F(IommufdContainerTest, FirstMapErrorFailsTheAttachAndFreesTheIoas) {
  AddRam(0, 0x100000, "ram");
  host_.fail_map_nth = 1;
  host_.fail_map_errno = ENOMEM;
  auto c = Attach("0000:01:00.0", nullptr, "iommufd0");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(StatusErrno(c.status()), ENOMEM);
  EXPECT_THAT(std::string(c.status().message()),
              ::testing::HasSubstr("IOMMU_IOAS_MAP"));
  EXPECT_EQ(host_.ioas_count(), 0u);
  EXPECT_EQ(manager_->container_count(), 0u);
}

TEST_F(IommufdContainerTest, RedundantUnmapIsNotAnError) {
  auto c = Attach("0000:01:00.0", nullptr, "iommufd0");
  ASSERT_TRUE(c.ok());
  auto ram = AddRam(0, 0x100000, "ram");
  // The host lost the mapping already: IOAS_UNMAP answers ENOENT.
  host_.fail_ioctl[uapi::kIommuIoasUnmap] = -ENOENT;
  Remove(ram);
  EXPECT_EQ((*c)->stats().errors, 0u);
  EXPECT_TRUE((*c)->mappings().empty());
}

TEST_F(IommufdContainerTest, TeardownLeavesNoMappingsNoIoasNoDeviceFds) {
  AddRam(0, 0x100000, "ram");
  AddRam(0x100000000, 0x100000, "high");
  ASSERT_TRUE(Attach("0000:01:00.0", nullptr, "iommufd0").ok());
  ASSERT_TRUE(Attach("0000:02:00.0", nullptr, "iommufd0").ok());
  ASSERT_TRUE(manager_->DeviceFd(Bdf("0000:02:00.0")).ok());
  ASSERT_TRUE(manager_->DetachDevice(Bdf("0000:01:00.0")).ok());
  EXPECT_EQ(host_.HostMappingCount(), 2u);
  manager_.reset();
  EXPECT_EQ(host_.HostMappingCount(), 0u);
  EXPECT_EQ(host_.ioas_count(), 0u);
  EXPECT_EQ(host_.open_fds(), 0u);  // cdevs and /dev/iommu closed
}

}  // namespace
}  // namespace viommu::vfio::testing
