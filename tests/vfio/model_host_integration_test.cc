// The container layer against the real model backend (ModelHost, type1) on
// the default host platform (ARCHITECTURE.md §4): reserved regions become
// holes, a conflicting group falls back to a new container, teardown
// leaves no host mapping or pinned page; one iommufd container (more in
// model_host_iommufd_integration_test.cc).
#include <cerrno>
#include <cstdint>
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/vfio/guest_ram_test_env.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/memory/table_iommu.h"
#include "viommu/vfio/host/model/model_host.h"
#include "viommu/vfio/type1_container.h"
#include "viommu/vfio/vfio_manager.h"
#include "viommu/vfio/vfio_status.h"

namespace viommu::vfio {
namespace {

using ::testing::ElementsAre;

class ModelHostIntegrationTest : public GuestRamTestEnv {
 protected:
  ~ModelHostIntegrationTest() override { manager_.reset(); }
  uint64_t HostMappings(VfioContainer* c) {
    return *host_.ContainerMappingCount(static_cast<Type1Container*>(c)->fd());
  }

  model::ModelHost host_{DefaultHostPlatform()};
  std::unique_ptr<VfioManager> manager_ = std::make_unique<VfioManager>(&host_);
};

TEST_F(ModelHostIntegrationTest, MsiWindowBecomesASkippedHole) {
  AddRam(0, 0x100000);
  AddRam(0xfe000000, 0x2000000);  // crosses 0xfee00000-0xfeefffff
  auto c = manager_->AttachDevice(memory_.get(), {.host = Bdf("0000:01:00.0")});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(
      (*c)->iova_ranges(),
      (std::vector<Range>{{0, 0xfedfffff}, {0xfef00000, (1ull << 48) - 1}}));
  EXPECT_EQ((*c)->HostIommuInfo().aw_bits, 48);
  EXPECT_EQ((*c)->page_size_mask(), (1ull << 12) | (1ull << 21) | (1ull << 30));
  EXPECT_EQ((*c)->dma_limit(), 65535u);
  EXPECT_EQ(HostMappings(*c), 3u);
  EXPECT_THAT(
      (*c)->skipped(),
      ElementsAre(SkippedRange{0xfee00000, 0xfeefffff, "outside-iova-ranges"}));
  EXPECT_GT(host_.locked_pages(), 0u);
}

TEST_F(ModelHostIntegrationTest,
       ConflictingReservedRegionFallsBackToANewContainer) {
  // RAM where group 2 has a direct-mapped reserved region.
  AddRam(0x0f000000, 0x200000);
  auto a = manager_->AttachDevice(memory_.get(), {.host = Bdf("0000:01:00.0")});
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = manager_->AttachDevice(memory_.get(), {.host = Bdf("0000:02:00.0")});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(*a, *b);
  // The new container learned the reserved range and skips it.
  EXPECT_THAT(
      (*b)->skipped(),
      ElementsAre(SkippedRange{0x0f000000, 0x0f0fffff, "outside-iova-ranges"}));
  EXPECT_EQ(HostMappings(*b), 1u);
  EXPECT_EQ((*b)->mappings().begin()->first, 0x0f100000u);
}

TEST_F(ModelHostIntegrationTest,
       CompatibleGroupJoinsAndTeardownUnpinsEverything) {
  AddRam(0, 0x400000);
  auto a = manager_->AttachDevice(memory_.get(), {.host = Bdf("0000:01:00.0")});
  auto b = manager_->AttachDevice(memory_.get(), {.host = Bdf("0000:02:00.0")});
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(manager_->container_count(), 1u);
  ASSERT_TRUE(manager_->DeviceFd(Bdf("0000:02:00.0")).ok());
  manager_->DetachAll();
  EXPECT_EQ(host_.locked_pages(), 0u);
  EXPECT_TRUE(host_.ContainerFds().empty());
}

TEST_F(ModelHostIntegrationTest, ApertureOf39BitsSkipsHighRam) {
  AddRam(0, 0x100000);
  AddRam(1ull << 40, 0x100000);
  auto c = manager_->AttachDevice(memory_.get(), {.host = Bdf("0000:03:00.0")});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->HostIommuInfo().aw_bits, 39);
  EXPECT_EQ(HostMappings(*c), 1u);
  EXPECT_THAT((*c)->skipped(),
              ElementsAre(SkippedRange{1ull << 40, (1ull << 40) + 0xfffff,
                                       "outside-iova-ranges"}));
}

TEST_F(ModelHostIntegrationTest, MapFailureBeforeInitFailsTheAttachCleanly) {
  AddRam(0, 0x100000);
  AddRam(0x100000000, 0x100000);
  host_.FailNthMapDma(2, ENOMEM);
  auto c = manager_->AttachDevice(memory_.get(), {.host = Bdf("0000:01:00.0")});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(StatusErrno(c.status()), ENOMEM);
  EXPECT_EQ(host_.locked_pages(), 0u);
  EXPECT_TRUE(host_.ContainerFds().empty());
  // The group is free again: a retry works.
  EXPECT_TRUE(
      manager_->AttachDevice(memory_.get(), {.host = Bdf("0000:01:00.0")})
          .ok());
}

TEST_F(ModelHostIntegrationTest, GuestIommuMappingsReachTheModelType1) {
  auto ram = AddRam(0, 0x400000);
  memory::TableIommu table(memory_.get());
  auto dmar =
      memory::MemoryRegion::CreateIommu(&sys_, "dmar", kSize2To64, &table);
  table.Attach(dmar->iommu());
  memory::AddressSpace dev_as(&sys_, dmar, "dev0");
  ASSERT_TRUE(
      table.Map(0x100000, 0x1000, 0x3000, memory::kIommuReadWrite).ok());
  auto c = manager_->AttachDevice(&dev_as, {.host = Bdf("0000:01:00.0")});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(HostMappings(*c), 1u);  // replayed
  ASSERT_TRUE(table.Map(0x200000, 0x200000, 0x200000, memory::kIommuRead).ok());
  EXPECT_EQ(HostMappings(*c), 2u);
  const model::Type1Iommu* iommu =
      host_.ContainerIommu(static_cast<Type1Container*>(*c)->fd());
  ASSERT_NE(iommu, nullptr);
  ASSERT_TRUE(table.Unmap(0x100000, 0x1000).ok());
  EXPECT_EQ(HostMappings(*c), 1u);
  EXPECT_EQ((*c)->stats().errors, 0u);
  manager_->DetachAll();
  EXPECT_EQ(host_.locked_pages(), 0u);
}

TEST_F(ModelHostIntegrationTest, IommufdContainerOnTheModel) {
  AddRam(0, 0x100000);
  AddRam(0xfe000000, 0x2000000);
  auto c = manager_->AttachDevice(
      memory_.get(), {.host = Bdf("0000:01:00.0"), .iommufd = "iommufd0"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->backend(), ContainerBackend::kIommufd);
  EXPECT_EQ((*c)->mappings().size(), 3u);
  EXPECT_THAT(
      (*c)->skipped(),
      ElementsAre(SkippedRange{0xfee00000, 0xfeefffff, "outside-iova-ranges"}));
  EXPECT_GT(host_.locked_pages(), 0u);
  auto b = manager_->AttachDevice(
      memory_.get(), {.host = Bdf("0000:03:00.0"), .iommufd = "iommufd0"});
  ASSERT_TRUE(b.ok()) << b.status();
  manager_->DetachAll();
  EXPECT_EQ(host_.locked_pages(), 0u);
}

}  // namespace
}  // namespace viommu::vfio
