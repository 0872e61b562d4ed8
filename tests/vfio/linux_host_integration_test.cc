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
#include "tests/vfio/guest_ram_test_env.h"
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

class LinuxHostIntegrationTest : public GuestRamTestEnv {
 protected:
  ~LinuxHostIntegrationTest() override { manager_.reset(); }
  // The edu of `bdf` copies `n` bytes from IOVA `src` to IOVA `dst`.
  void EduCopy(const char* bdf, uint64_t src, uint64_t dst, uint64_t n) {
    absl::StatusOr<int> fd = manager_->DeviceFd(Bdf(bdf));
    ASSERT_TRUE(fd.ok()) << fd.status();
    GuestRamTestEnv::EduCopy(host_, *fd, src, dst, n);
  }
  // The device's 1 MiB BAR 2, mmap'd through LinuxHost and shown in the
  // guest at `gpa` as a ram_device region (QEMU's non-GUP case).
  struct Bar {
    void* host = nullptr;
    std::shared_ptr<memory::MemoryRegion> mr;
  };
  Bar MapBar2(const char* bdf, uint64_t gpa) {
    absl::StatusOr<int> fd = manager_->DeviceFd(Bdf(bdf));
    EXPECT_TRUE(fd.ok()) << fd.status();
    if (!fd.ok()) return {};
    absl::StatusOr<void*> p = host_.Mmap(*fd, kBar2Size, uint64_t{2} << 40);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return {};
    Bar bar{*p, memory::MemoryRegion::CreateRamDevice(&sys_, "bar2", kBar2Size,
                                                      *p)};
    root_->AddSubregion(gpa, bar.mr);
    return bar;
  }
  void UnmapBar(const Bar& bar) {
    root_->RemoveSubregion(bar.mr.get());
    host_.Munmap(bar.host, kBar2Size);
  }
  static constexpr uint64_t kBar2Size = 1 << 20;

  model::ModelHost model_{
      DefaultHostPlatform(),
      {.device_factory = model::ModelHostDevice::Factory({})}};
  ModelSysCalls syscalls_{&model_};
  FakeSysfs sysfs_{model_};
  LinuxHost host_{{.sysfs_root = sysfs_.root(), .syscalls = &syscalls_}};
  std::unique_ptr<VfioManager> manager_ = std::make_unique<VfioManager>(&host_);
};

TEST_F(LinuxHostIntegrationTest, IommufdPathMapsGuestRamAndDmaLands) {
  auto low = AddRam(0, 0x400000);
  auto c = manager_->AttachDevice(
      memory_.get(), {.host = Bdf("0000:01:00.0"), .iommufd = "iommufd0"});
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
      memory_.get(), {.host = Bdf("0000:02:00.0"), .iommufd = "iommufd0"});
  ASSERT_TRUE(c.ok()) << c.status();
  const Bar bar = MapBar2("0000:02:00.0", 0xe0000000);
  ASSERT_NE(bar.mr, nullptr);
  EXPECT_THAT((*c)->skipped(),
              ElementsAre(SkippedRange{0xe0000000, 0xe00fffff,
                                       "ram-device-map-failed"}));
  EXPECT_EQ((*c)->stats().warnings, 1u);
  EXPECT_EQ((*c)->stats().errors, 0u);
  // Removing a section that was never mapped: the IOAS answers ENOENT,
  // which is success.
  UnmapBar(bar);
  EXPECT_EQ((*c)->stats().errors, 0u);
}

TEST_F(LinuxHostIntegrationTest, Type1PathMapsGuestRamAndBarsForP2P) {
  auto low = AddRam(0, 0x400000);
  auto c = manager_->AttachDevice(memory_.get(), {.host = Bdf("0000:02:00.0")});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ((*c)->backend(), ContainerBackend::kType1);
  const auto& dirty = static_cast<Type1Container*>(*c)->dirty_tracking();
  ASSERT_TRUE(dirty.has_value()) << "GET_INFO's MIGRATION capability";
  EXPECT_EQ(dirty->pgsize_bitmap, 0x1000u);
  const Bar bar = MapBar2("0000:02:00.0", 0xe0000000);
  ASSERT_NE(bar.mr, nullptr);
  EXPECT_EQ((*c)->mappings().size(), 2u) << "type1 maps the BAR (P2P)";
  std::memcpy(low->host() + 0x2000, "type1", 6);
  EduCopy("0000:02:00.0", 0x2000, 0x4000, 6);
  EXPECT_STREQ(reinterpret_cast<char*>(low->host() + 0x4000), "type1");
  UnmapBar(bar);
  manager_->DetachAll();
  EXPECT_EQ(model_.locked_pages(), 0u);
  EXPECT_EQ(host_.open_fds(), 0u) << "container, group, device closed";
}

}  // namespace
}  // namespace viommu::vfio
