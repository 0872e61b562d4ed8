// Attach logic (QEMU's vfio_container_connect / iommufd_cdev_attach), error
// policy before/after initialisation, teardown, the IOVA-range re-read and
// x-query-vfio, against FakeHostBackend (type1).
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/vfio/vfio_test_env.h"
#include "viommu/vfio/type1_container.h"
#include "viommu/vfio/vfio_status.h"

namespace viommu::vfio::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class VfioManagerTest : public VfioTestEnv {
 protected:
  memory::AddressSpace* NewAs(const std::string& name) {
    extra_as_.push_back(
        std::make_unique<memory::AddressSpace>(&sys_, root_, name));
    return extra_as_.back().get();
  }
};

TEST_F(VfioManagerTest, SecondGroupJoinsTheExistingContainer) {
  AddRam(0, 0x100000, "ram");
  auto a = Attach("0000:01:00.0");
  auto b = Attach("0000:02:00.0");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(manager_->container_count(), 1u);
  EXPECT_EQ(host_.container_count(), 1u);
  EXPECT_EQ(host_.CallCount(uapi::kVfioGroupSetContainer), 2);
  EXPECT_EQ(host_.HostMappingCount(), 1u);
  EXPECT_THAT((*a)->devices(), ElementsAre("0000:01:00.0", "0000:02:00.0"));
}

TEST_F(VfioManagerTest, EinvalFromSetContainerFallsBackToANewContainer) {
  AddRam(0, 0x100000, "ram");
  host_.refuse_join_groups = {2};
  auto a = Attach("0000:01:00.0");
  auto b = Attach("0000:02:00.0");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(*a, *b);
  EXPECT_EQ(manager_->container_count(), 2u);
  EXPECT_EQ(host_.HostMappingCount(), 2u);  // each container maps the RAM
  EXPECT_EQ((*b)->mappings().size(), 1u);
}

TEST_F(VfioManagerTest, FallbackTriesEveryExistingContainerInOrder) {
  host_.refuse_join_groups = {2, 3};
  ASSERT_TRUE(Attach("0000:01:00.0").ok());
  ASSERT_TRUE(Attach("0000:02:00.0").ok());  // refused by #1: new #2
  host_.refuse_join_groups = {};
  host_.calls.clear();
  // 3 joins #1 (the first that accepts).
  auto c = Attach("0000:03:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->id(), 1u);
  EXPECT_EQ(host_.CallCount(uapi::kVfioGroupSetContainer), 1);
}

TEST_F(VfioManagerTest, EachDeviceAddressSpaceGetsItsOwnContainer) {
  AddRam(0, 0x100000, "ram");
  auto a = Attach("0000:01:00.0", NewAs("dev1"));
  auto b = Attach("0000:02:00.0", NewAs("dev2"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(host_.CallCount(uapi::kVfioGroupSetContainer), 2);
  EXPECT_EQ(host_.container_count(), 2u);
}

TEST_F(VfioManagerTest, SecondDeviceOfAGroupSharesItsContainer) {
  auto a = Attach("0000:01:00.0");
  auto b = Attach("0000:01:00.1");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(host_.CallCount(uapi::kVfioGroupSetContainer), 1);
}

TEST_F(VfioManagerTest, GroupInTwoAddressSpacesIsRefused) {
  ASSERT_TRUE(Attach("0000:01:00.0", NewAs("dev1")).ok());
  auto b = Attach("0000:01:00.1", NewAs("dev2"));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(b.status().message()),
              HasSubstr("multiple address spaces"));
}

TEST_F(VfioManagerTest, AttachingTwiceIsAlreadyExists) {
  ASSERT_TRUE(Attach("0000:01:00.0").ok());
  EXPECT_EQ(Attach("0000:01:00.0").status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(VfioManagerTest, NonViableGroupFailsTheAttach) {
  host_.nonviable_groups = {1};
  auto c = Attach("0000:01:00.0");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(host_.open_fds(), 0u);
}

TEST_F(VfioManagerTest, OtherJoinErrorsFailTheAttachInsteadOfFallingBack) {
  ASSERT_TRUE(Attach("0000:01:00.0").ok());
  host_.fail_ioctl[uapi::kVfioGroupSetContainer] = -EPERM;
  auto c = Attach("0000:02:00.0");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(StatusErrno(c.status()), EPERM);
  EXPECT_EQ(manager_->container_count(), 1u);
}

TEST_F(VfioManagerTest, FirstErrorBeforeInitFailsTheAttachAndLeavesNothing) {
  AddRam(0, 0x100000, "low");
  AddRam(0x100000000, 0x100000, "high");
  host_.fail_map_nth = 2;  // the second RAM section
  auto c = Attach("0000:01:00.0");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(StatusErrno(c.status()), EIO);
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("VFIO_IOMMU_MAP_DMA"));
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("0000:01:00.0"));
  EXPECT_EQ(manager_->container_count(), 0u);
  EXPECT_EQ(host_.HostMappingCount(), 0u);
  EXPECT_EQ(host_.open_fds(), 0u);
  EXPECT_TRUE(errors_.empty());  // not reported as a runtime error
}

TEST_F(VfioManagerTest, ErrorsAfterInitAreCountedAndTheContainerKeepsWorking) {
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok());
  host_.fail_map_nth = host_.map_calls + 1;
  AddRam(0, 0x100000, "a");
  EXPECT_EQ((*c)->stats().errors, 1u);
  ASSERT_EQ(errors_.size(), 1u);
  EXPECT_EQ(StatusErrno(errors_[0]), EIO);
  AddRam(0x200000, 0x100000, "b");
  EXPECT_EQ(host_.HostMappingCount(), 1u);
  EXPECT_EQ(manager_->container_count(), 1u);
}

TEST_F(VfioManagerTest, DetachingTheLastDeviceLeavesZeroHostMappings) {
  AddRam(0, 0x100000, "ram");
  AddRam(0x100000000, 0x200000, "high");
  ASSERT_TRUE(Attach("0000:01:00.0").ok());
  ASSERT_TRUE(Attach("0000:02:00.0").ok());
  ASSERT_TRUE(manager_->DetachDevice(Bdf("0000:01:00.0")).ok());
  EXPECT_EQ(host_.HostMappingCount(), 2u);  // the other group still uses them
  ASSERT_TRUE(manager_->DetachDevice(Bdf("0000:02:00.0")).ok());
  EXPECT_EQ(host_.HostMappingCount(), 0u);
  EXPECT_EQ(manager_->container_count(), 0u);
  EXPECT_EQ(host_.open_fds(), 0u);
  // Unmapped explicitly before the groups left the container.
  EXPECT_EQ(host_.CallCount(uapi::kVfioIommuUnmapDma), 2);
  EXPECT_EQ(manager_->DetachDevice(Bdf("0000:02:00.0")).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(VfioManagerTest, DestroyingTheManagerTearsEverythingDown) {
  AddRam(0, 0x100000, "ram");
  host_.refuse_join_groups = {2};
  ASSERT_TRUE(Attach("0000:01:00.0").ok());
  ASSERT_TRUE(Attach("0000:02:00.0").ok());
  ASSERT_TRUE(manager_->DeviceFd(Bdf("0000:01:00.0")).ok());
  manager_.reset();
  EXPECT_EQ(host_.HostMappingCount(), 0u);
  EXPECT_EQ(host_.open_fds(), 0u);
}

TEST_F(VfioManagerTest, GetInfoIsRetriedWithTheReportedArgsz) {
  host_.iova_ranges = {{0, 0xfedfffff}, {0xfef00000, (1ull << 48) - 1}};
  host_.dma_limit = 1000;
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(host_.CallCount(uapi::kVfioIommuGetInfo), 2);
  EXPECT_EQ((*c)->iova_ranges(), host_.iova_ranges);
  EXPECT_EQ((*c)->dma_limit(), 1000u);
  EXPECT_EQ((*c)->page_size_mask(), host_.pgsizes);
}

TEST_F(VfioManagerTest, MalformedGetInfoFailsTheAttach) {
  // flags say CAPS, cap_offset points past the 24 bytes returned.
  std::vector<uint8_t> reply(24, 0);
  const uint32_t argsz = 24, flags = 3, cap_offset = 64;
  std::memcpy(&reply[0], &argsz, 4);
  std::memcpy(&reply[4], &flags, 4);
  std::memcpy(&reply[16], &cap_offset, 4);
  host_.get_info_reply = reply;
  auto c = Attach("0000:01:00.0");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(host_.open_fds(), 0u);
}

TEST_F(VfioManagerTest, EinvalMapRereadsTheIovaRangesOnceAndSplits) {
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok());
  // The host's reserved regions change behind our back.
  host_.iova_ranges = {{0, 0xfedfffff}, {0xfef00000, (1ull << 48) - 1}};
  AddRam(0xfe000000, 0x2000000, "ram");
  // 2 at setup; the one re-read needs the argsz retry (the reply grew).
  EXPECT_EQ(host_.CallCount(uapi::kVfioIommuGetInfo), 4);
  EXPECT_EQ((*c)->stats().iova_range_rereads, 1u);
  EXPECT_EQ((*c)->stats().iova_range_changes, 1u);
  ASSERT_EQ(range_changes_.size(), 1u);
  EXPECT_EQ(range_changes_[0], host_.iova_ranges);
  EXPECT_EQ(host_.HostMappingCount(), 2u);
  EXPECT_THAT(
      (*c)->skipped(),
      ElementsAre(SkippedRange{0xfee00000, 0xfeefffff, "outside-iova-ranges"}));
  EXPECT_EQ((*c)->stats().errors, 0u);
  EXPECT_THAT(std::string((*c)->last_error().message()),
              HasSubstr("iova ranges changed"));
}

TEST_F(VfioManagerTest, EinvalWithUnchangedRangesIsAnErrorAfterOneReread) {
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok());
  host_.map_hook = [](uint64_t, uint64_t, uint64_t) { return -EINVAL; };
  AddRam(0, 0x100000, "ram");
  EXPECT_EQ(host_.CallCount(uapi::kVfioIommuGetInfo), 3);
  EXPECT_EQ((*c)->stats().iova_range_changes, 0u);
  EXPECT_EQ((*c)->stats().errors, 1u);
  EXPECT_TRUE(range_changes_.empty());
  EXPECT_EQ(StatusErrno(errors_.at(0)), EINVAL);
}

TEST_F(VfioManagerTest, HostIommuInfoAndQueryDescribeTheContainer) {
  host_.iova_ranges = {{0, 0xfedfffff}, {0xfef00000, (1ull << 48) - 1}};
  AddRam(0, 0x100000, "ram");
  AddRam(0x8000000000000000ull, 0x1000, "bar-sizing");
  ASSERT_TRUE(Attach("0000:01:00.0").ok());
  auto h = manager_->HostIommuInfo(Bdf("0000:01:00.0"));
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->aw_bits, 48);
  EXPECT_EQ(h->page_size_mask, host_.pgsizes);
  EXPECT_EQ(h->iova_ranges, host_.iova_ranges);
  auto q = manager_->Query();
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].id, 1u);
  EXPECT_EQ(q[0].backend, "type1");
  EXPECT_EQ(q[0].address_space, "memory");
  EXPECT_THAT(q[0].devices, ElementsAre("0000:01:00.0"));
  EXPECT_EQ(q[0].iova_ranges, host_.iova_ranges);
  EXPECT_EQ(q[0].mappings, 1u);
  EXPECT_EQ(q[0].dma_avail, 65534u);
  EXPECT_THAT(q[0].skipped,
              ElementsAre(SkippedRange{0x8000000000000000ull,
                                       0x8000000000000fffull, "bit63"}));
}

TEST_F(VfioManagerTest, QueryListsTheGivenDeviceName) {
  MakeManager();
  auto c = manager_->AttachDevice(
      memory_.get(), {.host = Bdf("0000:02:00.0"), .name = "hostdev0"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(manager_->Query()[0].devices, ElementsAre("hostdev0"));
  ASSERT_TRUE(manager_->DeviceFd(Bdf("0000:02:00.0")).ok());
  ASSERT_TRUE(manager_->DetachDevice(Bdf("0000:02:00.0")).ok());
  EXPECT_EQ(host_.open_fds(), 0u);
}

TEST_F(VfioManagerTest, MappingLimitIsReportedAndEnforcedByTheHost) {
  host_.dma_limit = 2;
  AddRam(0, 0x100000, "a");
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->dma_limit(), 2u);
  EXPECT_EQ((*c)->dma_avail(), 1u);
  AddRam(0x200000, 0x100000, "b");
  EXPECT_EQ((*c)->dma_avail(), 0u);
  AddRam(0x400000, 0x100000, "c");
  EXPECT_EQ((*c)->stats().errors, 1u);
  EXPECT_EQ(StatusErrno((*c)->last_error()), ENOSPC);
}

TEST_F(VfioManagerTest, Type1MapEbusyUnmapsAndRetriesOnce) {
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok());
  int busy = 1;
  host_.map_hook = [&busy](uint64_t, uint64_t, uint64_t) {
    return busy-- > 0 ? -EBUSY : 0;
  };
  host_.calls.clear();
  AddRam(0, 0x100000, "ram");
  EXPECT_EQ(host_.CallCount(uapi::kVfioIommuMapDma), 2);
  EXPECT_EQ(host_.CallCount(uapi::kVfioIommuUnmapDma), 1);
  EXPECT_EQ(host_.HostMappingCount(), 1u);
  EXPECT_EQ((*c)->stats().errors, 0u);
  host_.map_hook = nullptr;
}

TEST_F(VfioManagerTest, DeviceFdComesFromTheGroup) {
  ASSERT_TRUE(Attach("0000:01:00.0").ok());
  auto fd = manager_->DeviceFd(Bdf("0000:01:00.0"));
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_GE(*fd, 0);
  EXPECT_EQ(*manager_->DeviceFd(Bdf("0000:01:00.0")), *fd);  // cached
  EXPECT_EQ(host_.CallCount(uapi::kVfioGroupGetDeviceFd), 1);
}

TEST_F(VfioManagerTest, UnmappingTheWholeTableIsOneUnmapAllCall) {
  AddRam(0, 0x100000, "a");
  AddRam(0x200000, 0x100000, "b");
  AddRam(0x100000000, 0x100000, "c");
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ((*c)->mappings().size(), 3u);
  const int before = host_.CallCount(uapi::kVfioIommuUnmapDma);
  ASSERT_TRUE((*c)->DmaUnmap(0, kSize2To64).ok());
  EXPECT_EQ(host_.CallCount(uapi::kVfioIommuUnmapDma), before + 1);
  EXPECT_TRUE((*c)->mappings().empty());
  EXPECT_EQ(host_.HostMappingCount(), 0u);
}

TEST_F(VfioManagerTest, WithoutUnmapAllTheTableIsUnmappedMappingByMapping) {
  host_.has_unmap_all = false;
  AddRam(0, 0x100000, "a");
  AddRam(0x200000, 0x100000, "b");
  AddRam(0x100000000, 0x100000, "c");
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  const int before = host_.CallCount(uapi::kVfioIommuUnmapDma);
  ASSERT_TRUE((*c)->DmaUnmap(0, kSize2To64).ok());
  EXPECT_EQ(host_.CallCount(uapi::kVfioIommuUnmapDma), before + 3);
  EXPECT_EQ(host_.HostMappingCount(), 0u);
  // A part of the table is never an unmap-all, even with the extension.
  host_.has_unmap_all = true;
  AddRam(0x400000, 0x100000, "d");
  AddRam(0x600000, 0x100000, "e");
  const int mid = host_.CallCount(uapi::kVfioIommuUnmapDma);
  ASSERT_TRUE((*c)->DmaUnmap(0x400000, 0x100000).ok());
  EXPECT_EQ(host_.CallCount(uapi::kVfioIommuUnmapDma), mid + 1);
  EXPECT_EQ(host_.HostMappingCount(), 1u);
}

}  // namespace
}  // namespace viommu::vfio::testing
