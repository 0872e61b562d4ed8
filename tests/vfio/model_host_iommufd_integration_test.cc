// The container layer's iommufd path (VfioManager -> IommufdContainer)
// against the model backend with simulated devices: guest RAM of the
// AddressSpace is mapped into the IOAS, the device's edu DMA lands in guest
// RAM through it, conflicts fall back to a new container, and teardown
// leaves no IOAS, mapping or pinned page.
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/vfio/guest_ram_test_env.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/memory/table_iommu.h"
#include "viommu/vfio/host/model/host_device.h"
#include "viommu/vfio/host/model/model_host.h"
#include "viommu/vfio/iommufd_container.h"
#include "viommu/vfio/vfio_manager.h"

namespace viommu::vfio {
namespace {

using ::testing::ElementsAre;

class ModelHostIommufdIntegrationTest : public GuestRamTestEnv {
 protected:
  ~ModelHostIommufdIntegrationTest() override { manager_.reset(); }
  [[nodiscard]] absl::StatusOr<VfioContainer*> Attach(const char* bdf) {
    return manager_->AttachDevice(memory_.get(),
                                  {.host = Bdf(bdf), .iommufd = "iommufd0"});
  }
  static IommufdContainer* Ic(VfioContainer* c) {
    return static_cast<IommufdContainer*>(c);
  }
  uint64_t IoasMappings(VfioContainer* c) {
    absl::StatusOr<uint64_t> n =
        host_.IoasMappingCount(Ic(c)->iommufd(), Ic(c)->ioas_id());
    EXPECT_TRUE(n.ok()) << n.status();
    return n.value_or(0);
  }
  // Device `bdf`'s edu copies `n` bytes from GPA `src` to GPA `dst`
  // (IOVA = GPA: no vIOMMU), through its buffer.
  void EduCopy(const char* bdf, uint64_t src, uint64_t dst, uint64_t n) {
    absl::StatusOr<int> fd = manager_->DeviceFd(Bdf(bdf));
    ASSERT_TRUE(fd.ok()) << fd.status();
    GuestRamTestEnv::EduCopy(host_, *fd, src, dst, n);
  }
  model::ModelHostDevice* Dev(const char* bdf) {
    return static_cast<model::ModelHostDevice*>(host_.device(Bdf(bdf)));
  }

  model::ModelHost host_{
      DefaultHostPlatform(),
      {.device_factory = model::ModelHostDevice::Factory({})}};
  std::unique_ptr<VfioManager> manager_ = std::make_unique<VfioManager>(&host_);
};

TEST_F(ModelHostIommufdIntegrationTest, GuestRamIsMappedAndDeviceDmaLands) {
  auto low = AddRam(0, 0x400000);
  AddRam(0x100000000, 0x100000);
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ((*c)->backend(), ContainerBackend::kIommufd);
  EXPECT_EQ((*c)->mappings().size(), 2u);
  EXPECT_EQ(IoasMappings(*c), 2u);
  EXPECT_GT(host_.locked_pages(), 0u);
  std::memcpy(low->host() + 0x1000, "guest ram via iommufd", 22);
  EduCopy("0000:01:00.0", 0x1000, 0x3000, 22);
  EXPECT_STREQ(reinterpret_cast<char*>(low->host() + 0x3000),
               "guest ram via iommufd");
  EXPECT_EQ(Dev("0000:01:00.0")->iommu_fault_count(), 0u);
  EduCopy("0000:01:00.0", 0x1000, 0x400000, 22);  // past the RAM
  EXPECT_EQ(Dev("0000:01:00.0")->iommu_fault_count(), 1u);
  EXPECT_EQ(Dev("0000:01:00.0")->last_fault_iova(), 0x400000u);
}

TEST_F(ModelHostIommufdIntegrationTest, TeardownLeavesNoMappingOrPin) {
  AddRam(0, 0x400000);
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  const int iommufd = Ic(*c)->iommufd();
  ASSERT_EQ(host_.IoasIds(iommufd)->size(), 1u);
  manager_->DetachAll();
  EXPECT_TRUE(host_.IoasIds(iommufd)->empty()) << "IOAS destroyed";
  EXPECT_EQ(host_.Iommufd(iommufd)->object_count(), 0u) << "device unbound";
  EXPECT_EQ(host_.locked_pages(), 0u);
  EXPECT_EQ(host_.DeviceDmaDomain(Bdf("0000:01:00.0")), nullptr);
  // The cdev is free again: a new attach works.
  EXPECT_TRUE(Attach("0000:01:00.0").ok());
}

TEST_F(ModelHostIommufdIntegrationTest, RamAddedAndRemovedFollowsTheIoas) {
  AddRam(0, 0x100000);
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(IoasMappings(*c), 1u);
  auto hot = AddRam(0x800000, 0x200000);
  EXPECT_EQ(IoasMappings(*c), 2u);
  root_->RemoveSubregion(hot.get());
  std::erase(added_, hot);
  EXPECT_EQ(IoasMappings(*c), 1u);
  EXPECT_EQ((*c)->stats().errors, 0u);
}

TEST_F(ModelHostIommufdIntegrationTest, SecondDeviceSharesTheIoas) {
  auto low = AddRam(0, 0x400000);
  auto a = Attach("0000:01:00.0");
  auto b = Attach("0000:03:00.0");  // 39-bit aperture: a second hwpt
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(manager_->container_count(), 1u);
  std::memcpy(low->host() + 0x2000, "both", 5);
  EduCopy("0000:03:00.0", 0x2000, 0x5000, 5);
  EXPECT_STREQ(reinterpret_cast<char*>(low->host() + 0x5000), "both");
  ASSERT_TRUE(manager_->DetachDevice(Bdf("0000:01:00.0")).ok());
  EXPECT_EQ(IoasMappings(*b), 1u) << "the last device keeps the IOAS";
  EXPECT_EQ(host_.DeviceDmaDomain(Bdf("0000:01:00.0")), nullptr);
  EduCopy("0000:03:00.0", 0x2000, 0x6000, 5);
  EXPECT_STREQ(reinterpret_cast<char*>(low->host() + 0x6000), "both");
  manager_->DetachAll();
  EXPECT_EQ(host_.locked_pages(), 0u);
}

TEST_F(ModelHostIommufdIntegrationTest,
       ReservedRegionConflictFallsBackToANewContainer) {
  // RAM where 0000:02:00.0 has a direct-mapped reserved region: attaching
  // it to the first IOAS is EADDRINUSE; QEMU then tries a new container.
  AddRam(0x0f000000, 0x200000);
  auto a = Attach("0000:01:00.0");
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = Attach("0000:02:00.0");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(*a, *b);
  EXPECT_THAT(
      (*b)->skipped(),
      ElementsAre(SkippedRange{0x0f000000, 0x0f0fffff, "outside-iova-ranges"}));
  EXPECT_EQ(IoasMappings(*b), 1u);
  EXPECT_EQ((*b)->mappings().begin()->first, 0x0f100000u);
  manager_->DetachAll();
  EXPECT_EQ(host_.locked_pages(), 0u);
}

TEST_F(ModelHostIommufdIntegrationTest, PassthroughBarIsSkippedWithAWarning) {
  // iommufd cannot pin VM_PFNMAP memory (§4.13): a BAR mmap'd into the guest
  // as a ram_device region is a warning, not an error.
  AddRam(0, 0x100000);
  auto c = Attach("0000:02:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<int> fd = manager_->DeviceFd(Bdf("0000:02:00.0"));
  ASSERT_TRUE(fd.ok()) << fd.status();
  absl::StatusOr<void*> bar = host_.Mmap(*fd, 1 << 20, uint64_t{2} << 40);
  ASSERT_TRUE(bar.ok()) << bar.status();
  auto mr = memory::MemoryRegion::CreateRamDevice(&sys_, "bar2", 1 << 20, *bar);
  root_->AddSubregion(0xe0000000, mr);
  EXPECT_THAT((*c)->skipped(),
              ElementsAre(SkippedRange{0xe0000000, 0xe00fffff,
                                       "ram-device-map-failed"}));
  EXPECT_EQ((*c)->stats().warnings, 1u);
  EXPECT_EQ((*c)->stats().errors, 0u);
  EXPECT_EQ(IoasMappings(*c), 1u);
  root_->RemoveSubregion(mr.get());
  host_.Munmap(*bar, 1 << 20);
}

TEST_F(ModelHostIommufdIntegrationTest, GuestIommuMappingsReachTheIoas) {
  auto ram = AddRam(0, 0x400000);
  memory::TableIommu table(memory_.get());
  auto dmar =
      memory::MemoryRegion::CreateIommu(&sys_, "dmar", kSize2To64, &table);
  table.Attach(dmar->iommu());
  memory::AddressSpace dev_as(&sys_, dmar, "dev0");
  ASSERT_TRUE(
      table.Map(0x100000, 0x1000, 0x3000, memory::kIommuReadWrite).ok());
  auto c = manager_->AttachDevice(
      &dev_as, {.host = Bdf("0000:01:00.0"), .iommufd = "iommufd0"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(IoasMappings(*c), 1u) << "replayed";
  ASSERT_TRUE(
      table.Map(0x200000, 0x1000, 0x5000, memory::kIommuReadWrite).ok());
  EXPECT_EQ(IoasMappings(*c), 2u);
  // IOVA 0x100000 -> GPA 0x3000, IOVA 0x200000 -> GPA 0x5000.
  std::memcpy(ram->host() + 0x3000, "viommu", 7);
  EduCopy("0000:01:00.0", 0x100000, 0x200000, 7);
  EXPECT_STREQ(reinterpret_cast<char*>(ram->host() + 0x5000), "viommu");
  ASSERT_TRUE(table.Unmap(0x100000, 0x1000).ok());
  EXPECT_EQ(IoasMappings(*c), 1u);
  EduCopy("0000:01:00.0", 0x100000, 0x200000, 7);
  EXPECT_EQ(Dev("0000:01:00.0")->iommu_fault_count(), 1u);
  EXPECT_EQ((*c)->stats().errors, 0u);
  manager_->DetachAll();
  EXPECT_EQ(host_.locked_pages(), 0u);
}

}  // namespace
}  // namespace viommu::vfio
