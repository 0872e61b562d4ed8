// LinuxHost over a scripted kernel (ModelSysCalls + FakeSysfs): syscalls
// pass through with -errno, fds are owned and closed exactly once, sysfs
// facts are read as the kernel lays them out.
#include "viommu/vfio/host/linux/linux_host.h"

#include <sys/mman.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/vfio/host/linux/model_syscalls.h"
#include "viommu/vfio/host/model/host_device.h"
#include "viommu/vfio/host/model/model_host.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

HostPciAddress Bdf(const char* s) { return *HostPciAddress::Parse(s); }

class LinuxHostTest : public ::testing::Test {
 protected:
  LinuxHostTest()
      : model_(DefaultHostPlatform(),
               {.device_factory = model::ModelHostDevice::Factory({})}),
        sys_(&model_),
        sysfs_(model_),
        host_(std::make_unique<LinuxHost>(LinuxHostOptions{
            .sysfs_root = sysfs_.root(), .syscalls = &sys_})) {}

  model::ModelHost model_;
  ModelSysCalls sys_;
  FakeSysfs sysfs_;
  std::unique_ptr<LinuxHost> host_;
};

TEST_F(LinuxHostTest, SyscallErrorsComeBackAsNegativeErrno) {
  EXPECT_EQ(host_->Open("/dev/vfio/4242"), -ENOENT);
  const int c = host_->Open("/dev/vfio/vfio");
  ASSERT_GE(c, 0);
  EXPECT_EQ(host_->Ioctl(c, uapi::kVfioGetApiVersion, 0), 0);
  EXPECT_EQ(host_->Ioctl(c, uapi::kVfioSetIommu, uapi::kVfioType1v2Iommu),
            -EINVAL);
  uint8_t b = 0;
  EXPECT_EQ(host_->Pread(c, &b, 1, 0), -EINVAL);
  EXPECT_EQ(host_->Close(c), 0);
  EXPECT_EQ(host_->Close(c), -EBADF) << "closed once";
  EXPECT_EQ(host_->Close(12345), -EBADF) << "never closes a stranger's fd";
}

TEST_F(LinuxHostTest, OwnsOpenedAndDeviceFdsAndClosesThemOnDestruction) {
  const int c = host_->Open("/dev/vfio/vfio");
  const int g = host_->Open("/dev/vfio/1");
  ASSERT_GE(c, 0);
  ASSERT_GE(g, 0);
  ASSERT_EQ(host_->Ioctl(g, uapi::kVfioGroupSetContainer, AsArg(&c)), 0);
  ASSERT_EQ(host_->Ioctl(c, uapi::kVfioSetIommu, uapi::kVfioType1v2Iommu), 0);
  const char name[] = "0000:01:00.0";
  const int d = host_->Ioctl(g, uapi::kVfioGroupGetDeviceFd, AsArg(name));
  ASSERT_GE(d, 0);
  EXPECT_EQ(host_->open_fds(), 3u) << "the device fd is owned too";
  EXPECT_EQ(model_.Open("/dev/vfio/1"), -EBUSY);
  host_.reset();
  EXPECT_EQ(sys_.closes, 3);
  const int again = model_.Open("/dev/vfio/1");
  EXPECT_GE(again, 0) << "the group was released";
  model_.Close(again);
}

TEST_F(LinuxHostTest, DeviceRegionsAreReadWrittenAndMapped) {
  const int c = host_->Open("/dev/vfio/vfio");
  const int g = host_->Open("/dev/vfio/1");
  ASSERT_EQ(host_->Ioctl(g, uapi::kVfioGroupSetContainer, AsArg(&c)), 0);
  ASSERT_EQ(host_->Ioctl(c, uapi::kVfioSetIommu, uapi::kVfioType1v2Iommu), 0);
  const int d =
      host_->Ioctl(g, uapi::kVfioGroupGetDeviceFd, AsArg("0000:01:00.0"));
  ASSERT_GE(d, 0);
  uint32_t id = 0;
  EXPECT_EQ(host_->Pread(d, &id, 4, 0), 4);
  EXPECT_EQ(id, 0x010000edu) << "edu identification register";
  const uint32_t v = 0x12345678;
  EXPECT_EQ(host_->Pwrite(d, &v, 4, 4), 4);
  uint32_t inv = 0;
  EXPECT_EQ(host_->Pread(d, &inv, 4, 4), 4);
  EXPECT_EQ(inv, ~v);
  absl::StatusOr<void*> bar2 = host_->Mmap(d, 1 << 20, uint64_t{2} << 40);
  ASSERT_TRUE(bar2.ok()) << bar2.status();
  host_->Munmap(*bar2, 1 << 20);
  absl::StatusOr<void*> bad = host_->Mmap(d, 4096, uint64_t{9} << 40);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("mmap(fd "));
  EXPECT_THAT(bad.status().message(), HasSubstr("offset 0x90000000000"));
}

TEST_F(LinuxHostTest, SysfsFacts) {
  EXPECT_EQ(*host_->IommuGroupOf(Bdf("0000:02:00.0")), 2u);
  absl::StatusOr<uint32_t> none = host_->IommuGroupOf(Bdf("0000:09:00.0"));
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(), HasSubstr("0000:09:00.0"));
  EXPECT_EQ(*host_->GroupReservedRegions(2), *model_.GroupReservedRegions(2));
  EXPECT_EQ(host_->GroupReservedRegions(99).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(*host_->DeviceCdevPath(Bdf("0000:01:00.0")),
            *model_.DeviceCdevPath(Bdf("0000:01:00.0")));
}

TEST_F(LinuxHostTest, ReservedRegionLinesAreValidated) {
  std::ofstream(std::filesystem::path(sysfs_.root()) /
                "kernel/iommu_groups/1/reserved_regions")
      << "0x00000000fee00000 0x00000000feefffff msi\n0xfee junk\n";
  absl::StatusOr<std::vector<ResvRegion>> r = host_->GroupReservedRegions(1);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("reserved_regions"));
}

TEST(LinuxHostSysfsTest, Linux61HasVfioDevButNoCdev) {
  // 6.1 creates vfio-dev/vfio0 without a character device behind it.
  model::ModelHost model(DefaultHostPlatform());
  ModelSysCalls sys(&model);
  FakeSysfs sysfs(model, /*cdevs=*/false);
  std::filesystem::create_directories(std::filesystem::path(sysfs.root()) /
                                      "bus/pci/devices/0000:01:00.0/vfio-dev/"
                                      "vfio0");
  LinuxHost host({.sysfs_root = sysfs.root(), .syscalls = &sys});
  absl::StatusOr<std::string> cdev = host.DeviceCdevPath(Bdf("0000:01:00.0"));
  EXPECT_EQ(cdev.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(cdev.status().message(), HasSubstr("6.6"));
}

TEST(LinuxHostRealTest, NameAndRealSyscallsReportErrno) {
  LinuxHost host;
  EXPECT_EQ(host.name(), "linux");
  EXPECT_EQ(host.Open("/nonexistent/vfio"), -ENOENT);
  EXPECT_EQ(host.Ioctl(-1, uapi::kVfioGetApiVersion, 0), -EBADF);
}

}  // namespace
}  // namespace viommu::vfio
