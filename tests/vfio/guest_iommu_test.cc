// IOMMU sections: the listener's notifier on the MAP and UNMAP chains,
// replay at attach, and guest MAP/UNMAP events flowing to host map/unmap
// (QEMU's vfio_iommu_map_notify), with TableIommu as the vIOMMU.
#include <cerrno>
#include <cstdint>
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/vfio/vfio_test_env.h"
#include "viommu/memory/table_iommu.h"
#include "viommu/vfio/vfio_status.h"

namespace viommu::vfio::testing {
namespace {

using memory::IommuEventType;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

class GuestIommuTest : public VfioTestEnv {
 protected:
  GuestIommuTest() {
    ram_ = AddRam(0, 0x1000000, "ram");  // 16 MiB
    dmar_ =
        memory::MemoryRegion::CreateIommu(&sys_, "dmar", kSize2To64, &table_);
    table_.Attach(dmar_->iommu());
    dev_as_ = std::make_unique<memory::AddressSpace>(&sys_, dmar_, "dev0");
  }
  ~GuestIommuTest() override {
    manager_.reset();  // drops the notifiers before the region goes
    dev_as_.reset();
  }
  uintptr_t Host(uint64_t gpa) const {
    return reinterpret_cast<uintptr_t>(ram_->host()) + gpa;
  }

  std::shared_ptr<memory::MemoryRegion> ram_;
  memory::TableIommu table_{memory_.get()};
  std::shared_ptr<memory::MemoryRegion> dmar_;
  std::unique_ptr<memory::AddressSpace> dev_as_;
};

TEST_F(GuestIommuTest, IommuSectionRegistersOneNotifierOnEachChain) {
  auto c = Attach("0000:01:00.0", dev_as_.get());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(dmar_->iommu()->ChainSize(IommuEventType::kMap), 1u);
  EXPECT_EQ(dmar_->iommu()->ChainSize(IommuEventType::kUnmap), 1u);
  EXPECT_EQ(dmar_->iommu()->flags(), memory::kNotifyIotlbEvents);
  // The guest IOMMU's space maps nothing by itself.
  EXPECT_EQ(host_.HostMappingCount(), 0u);
}

TEST_F(GuestIommuTest, ExistingGuestMappingsAreReplayedAtAttach) {
  ASSERT_TRUE(
      table_.Map(0x10000, 0x1000, 0x5000, memory::kIommuReadWrite).ok());
  ASSERT_TRUE(
      table_.Map(0x200000, 0x200000, 0x400000, memory::kIommuRead).ok());
  auto c = Attach("0000:01:00.0", dev_as_.get());
  ASSERT_TRUE(c.ok()) << c.status();
  auto m = host_.AllMappings();
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0x10000].size, 0x1000u);
  EXPECT_EQ(m[0x10000].vaddr, Host(0x5000));
  EXPECT_FALSE(m[0x10000].readonly);
  EXPECT_EQ(m[0x200000].size, 0x200000u);
  EXPECT_EQ(m[0x200000].vaddr, Host(0x400000));
  EXPECT_TRUE(m[0x200000].readonly);
  EXPECT_EQ((*c)->stats().giommu_map_events, 2u);
}

TEST_F(GuestIommuTest, GuestMapAndUnmapEventsReachTheHost) {
  auto c = Attach("0000:01:00.0", dev_as_.get());
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(
      table_.Map(0x30000, 0x1000, 0x7000, memory::kIommuReadWrite).ok());
  auto m = host_.AllMappings();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0x30000].vaddr, Host(0x7000));

  ASSERT_TRUE(table_.Unmap(0x30000, 0x1000).ok());
  EXPECT_EQ(host_.HostMappingCount(), 0u);
  EXPECT_TRUE((*c)->mappings().empty());
  EXPECT_EQ((*c)->stats().giommu_unmap_events, 1u);
}

TEST_F(GuestIommuTest, InPlaceChangeUnmapsThenMaps) {
  auto c = Attach("0000:01:00.0", dev_as_.get());
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(
      table_.Map(0x30000, 0x1000, 0x7000, memory::kIommuReadWrite).ok());
  ASSERT_TRUE(
      table_.Map(0x30000, 0x1000, 0x9000, memory::kIommuReadWrite).ok());
  auto m = host_.AllMappings();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0x30000].vaddr, Host(0x9000));
  EXPECT_EQ((*c)->stats().errors, 0u);  // no EEXIST from a bare MAP
}

TEST_F(GuestIommuTest, MapToNonRamIsReportedButTheContainerKeepsWorking) {
  auto c = Attach("0000:01:00.0", dev_as_.get());
  ASSERT_TRUE(c.ok()) << c.status();
  // GPA 0x40000000 is unassigned in the memory address space.
  ASSERT_TRUE(table_.Map(0x50000, 0x1000, 0x40000000, memory::kIommuRead).ok());
  EXPECT_EQ((*c)->stats().errors, 1u);
  ASSERT_EQ(errors_.size(), 1u);
  EXPECT_EQ(errors_[0].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT((*c)->skipped(), ElementsAre(SkippedRange{
                                   0x50000, 0x50fff, "iommu-target-not-ram"}));
  ASSERT_TRUE(table_.Map(0x60000, 0x1000, 0x1000, memory::kIommuRead).ok());
  EXPECT_EQ(host_.HostMappingCount(), 1u);
  // The UNMAP forgets the skipped record.
  ASSERT_TRUE(table_.Unmap(0x50000, 0x1000).ok());
  EXPECT_THAT((*c)->skipped(), IsEmpty());
}

TEST_F(GuestIommuTest, HostMapFailureOfAGuestMappingIsCountedNotFatal) {
  auto c = Attach("0000:01:00.0", dev_as_.get());
  ASSERT_TRUE(c.ok()) << c.status();
  host_.fail_map_nth = host_.map_calls + 1;
  ASSERT_TRUE(
      table_.Map(0x30000, 0x1000, 0x7000, memory::kIommuReadWrite).ok());
  EXPECT_EQ((*c)->stats().errors, 1u);
  EXPECT_EQ(StatusErrno((*c)->last_error()), EIO);
  ASSERT_TRUE(
      table_.Map(0x40000, 0x1000, 0x8000, memory::kIommuReadWrite).ok());
  EXPECT_EQ(host_.HostMappingCount(), 1u);
}

TEST_F(GuestIommuTest, NotifierRangeIsCroppedToTheSection) {
  // The IOMMU region shows only [0x100000, 0x1fffff] of itself at 0.
  auto root =
      memory::MemoryRegion::CreateContainer(&sys_, "dev1-root", kSize2To64);
  root->AddSubregion(0, memory::MemoryRegion::CreateAlias(
                            &sys_, "window", dmar_, 0x100000, 0x100000));
  memory::AddressSpace as(&sys_, root, "dev1");
  ASSERT_TRUE(table_.Map(0x100000, 0x1000, 0x2000, memory::kIommuRead).ok());
  ASSERT_TRUE(table_.Map(0x300000, 0x1000, 0x3000, memory::kIommuRead).ok());
  auto c = Attach("0000:01:00.0", &as);
  ASSERT_TRUE(c.ok()) << c.status();
  auto m = host_.AllMappings();
  ASSERT_EQ(m.size(), 1u);
  // IOVA in the device's space: region offset 0x100000 sits at 0.
  ASSERT_TRUE(m.count(0));
  EXPECT_EQ(m[0].vaddr, Host(0x2000));
  manager_.reset();
}

TEST_F(GuestIommuTest, VetoedRegistrationFailsTheAttachCleanly) {
  table_.set_veto_map(true);  // VT-d without caching mode
  auto c = Attach("0000:01:00.0", dev_as_.get());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager_->container_count(), 0u);
  EXPECT_EQ(host_.open_fds(), 0u);
  EXPECT_EQ(dmar_->iommu()->ChainSize(IommuEventType::kMap), 0u);
}

TEST_F(GuestIommuTest, DetachDropsTheNotifiersAndEveryMapping) {
  ASSERT_TRUE(
      table_.Map(0x10000, 0x1000, 0x5000, memory::kIommuReadWrite).ok());
  ASSERT_TRUE(Attach("0000:01:00.0", dev_as_.get()).ok());
  ASSERT_TRUE(manager_->DetachDevice(Bdf("0000:01:00.0")).ok());
  EXPECT_EQ(host_.HostMappingCount(), 0u);
  EXPECT_EQ(dmar_->iommu()->ChainSize(IommuEventType::kMap), 0u);
  EXPECT_EQ(dmar_->iommu()->ChainSize(IommuEventType::kUnmap), 0u);
  EXPECT_EQ(host_.open_fds(), 0u);
}

}  // namespace
}  // namespace viommu::vfio::testing
