// The container layer over LinuxHost, with the kernel scripted by the model
// (ModelSysCalls + FakeSysfs). The kernels reachable here (Linux 6.1) have
// no iommufd, so this is where the iommufd path of the real backend is
// tested: cdev found through sysfs, BIND_IOMMUFD, IOAS map/unmap, a
// non-GUP BAR map reported as a P2P warning; and the type1 path the same
// way, so both paths pass through LinuxHost's fd table.
#include <cstring>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/vfio/host/linux/model_syscalls.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/vfio/host/linux/linux_host.h"
#include "viommu/vfio/host/model/host_device.h"
#include "viommu/vfio/host/model/model_host.h"
#include "viommu/vfio/iommufd_container.h"
#include "viommu/vfio/type1_container.h"
#include "viommu/vfio/vfio_manager.h"

namespace viommu::vfio {
namespace {

using ::testing::ElementsAre;

constexpr uint64_t kCfg = uint64_t{7} << 40;

HostPciAddress Bdf(const char* s) { return *HostPciAddress::Parse(s); }

class LinuxHostIntegrationTest : public ::testing::Test {
 protected:
  LinuxHostIntegrationTest()
      : model_(DefaultHostPlatform(),
               {.device_factory = model::ModelHostDevice::Factory({})}),
        sys_(&model_),
        sysfs_(model_),
        host_({.sysfs_root = sysfs_.root(), .syscalls = &sys_}),
        root_(memory::MemoryRegion::CreateContainer(&mem_, "system",
                                                    kSize2To64)) {
    as_ = std::make_unique<memory::AddressSpace>(&mem_, root_, "memory");
    manager_ = std::make_unique<VfioManager>(&host_);
  }
  ~LinuxHostIntegrationTest() override {
    manager_.reset();
    for (auto& mr : added_) root_->RemoveSubregion(mr.get());
  }
  std::shared_ptr<memory::MemoryRegion> AddRam(uint64_t gpa, uint64_t size) {
    auto ram = *memory::MemoryRegion::CreateRam(&mem_, "ram", size);
    root_->AddSubregion(gpa, ram);
    added_.push_back(ram);
    return ram;
  }
  // The edu of `bdf` copies `n` bytes from IOVA `src` to IOVA `dst`.
  void EduCopy(const char* bdf, uint64_t src, uint64_t dst, uint64_t n) {
    absl::StatusOr<int> fd = manager_->DeviceFd(Bdf(bdf));
    ASSERT_TRUE(fd.ok()) << fd.status();
    const uint16_t cmd = 0x6;  // MEMORY | MASTER
    ASSERT_EQ(host_.Pwrite(*fd, &cmd, 2, kCfg + 4), 2);
    const uint64_t regs[][2] = {{0x80, src}, {0x88, 0x40000}, {0x90, n},
                                {0x98, 0x1}, {0x80, 0x40000}, {0x88, dst},
                                {0x90, n},   {0x98, 0x3}};
    for (const auto& r : regs) ASSERT_EQ(host_.Pwrite(*fd, &r[1], 8, r[0]), 8);
  }

  model::ModelHost model_;
  ModelSysCalls sys_;
  FakeSysfs sysfs_;
  LinuxHost host_;
  memory::MemorySystem mem_;
  std::shared_ptr<memory::MemoryRegion> root_;
  std::unique_ptr<memory::AddressSpace> as_;
  std::vector<std::shared_ptr<memory::MemoryRegion>> added_;
  std::unique_ptr<VfioManager> manager_;
};

TEST_F(LinuxHostIntegrationTest, IommufdPathMapsGuestRamAndDmaLands) {
  auto low = AddRam(0, 0x400000);
  auto c = manager_->AttachDevice(
      as_.get(), {.host = Bdf("0000:01:00.0"), .iommufd = "iommufd0"});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ((*c)->backend(), ContainerBackend::kIommufd);
  auto* ic = static_cast<IommufdContainer*>(*c);
  EXPECT_EQ(*model_.IoasMappingCount(ic->iommufd(), ic->ioas_id()), 1u);
  std::memcpy(low->host() + 0x1000, "through LinuxHost", 18);
  EduCopy("0000:01:00.0", 0x1000, 0x3000, 18);
  EXPECT_STREQ(reinterpret_cast<char*>(low->host() + 0x3000),
               "through LinuxHost");
  manager_->DetachAll();
  EXPECT_EQ(model_.locked_pages(), 0u);
  EXPECT_EQ(host_.open_fds(), 1u) << "cdev closed; the iommufd object stays";
  manager_.reset();
  EXPECT_EQ(host_.open_fds(), 0u);
}

TEST_F(LinuxHostIntegrationTest, IommufdBarMapEfaultIsAP2PWarning) {
  AddRam(0, 0x100000);
  auto c = manager_->AttachDevice(
      as_.get(), {.host = Bdf("0000:02:00.0"), .iommufd = "iommufd0"});
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<int> fd = manager_->DeviceFd(Bdf("0000:02:00.0"));
  ASSERT_TRUE(fd.ok()) << fd.status();
  absl::StatusOr<void*> bar = host_.Mmap(*fd, 1 << 20, uint64_t{2} << 40);
  ASSERT_TRUE(bar.ok()) << bar.status();
  auto mr = memory::MemoryRegion::CreateRamDevice(&mem_, "bar2", 1 << 20, *bar);
  root_->AddSubregion(0xe0000000, mr);
  EXPECT_THAT((*c)->skipped(),
              ElementsAre(SkippedRange{0xe0000000, 0xe00fffff,
                                       "ram-device-map-failed"}));
  EXPECT_EQ((*c)->stats().warnings, 1u);
  EXPECT_EQ((*c)->stats().errors, 0u);
  // Removing a section that was never mapped: the IOAS answers ENOENT,
  // which is success.
  root_->RemoveSubregion(mr.get());
  EXPECT_EQ((*c)->stats().errors, 0u);
  host_.Munmap(*bar, 1 << 20);
}

TEST_F(LinuxHostIntegrationTest, Type1PathMapsGuestRamAndBarsForP2P) {
  auto low = AddRam(0, 0x400000);
  auto c = manager_->AttachDevice(as_.get(), {.host = Bdf("0000:02:00.0")});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ((*c)->backend(), ContainerBackend::kType1);
  const auto& dirty = static_cast<Type1Container*>(*c)->dirty_tracking();
  ASSERT_TRUE(dirty.has_value()) << "GET_INFO's MIGRATION capability";
  EXPECT_EQ(dirty->pgsize_bitmap, 0x1000u);
  absl::StatusOr<int> fd = manager_->DeviceFd(Bdf("0000:02:00.0"));
  ASSERT_TRUE(fd.ok()) << fd.status();
  absl::StatusOr<void*> bar = host_.Mmap(*fd, 1 << 20, uint64_t{2} << 40);
  ASSERT_TRUE(bar.ok()) << bar.status();
  auto mr = memory::MemoryRegion::CreateRamDevice(&mem_, "bar2", 1 << 20, *bar);
  root_->AddSubregion(0xe0000000, mr);
  EXPECT_EQ((*c)->mappings().size(), 2u) << "type1 maps the BAR (P2P)";
  std::memcpy(low->host() + 0x2000, "type1", 6);
  EduCopy("0000:02:00.0", 0x2000, 0x4000, 6);
  EXPECT_STREQ(reinterpret_cast<char*>(low->host() + 0x4000), "type1");
  root_->RemoveSubregion(mr.get());
  host_.Munmap(*bar, 1 << 20);
  manager_->DetachAll();
  EXPECT_EQ(model_.locked_pages(), 0u);
  EXPECT_EQ(host_.open_fds(), 0u) << "container, group, device closed";
}

}  // namespace
}  // namespace viommu::vfio
