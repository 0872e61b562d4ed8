// ModelHost: the fd table, the legacy container/group/device state machine
// of docs/vfio-type1-model.md, device-fd delegation, sysfs facts.
#include "viommu/vfio/host/model/model_host.h"

#include <cerrno>
#include <map>
#include <string>

#include "gtest/gtest.h"
#include "tests/fakes/fake_model_device.h"
#include "tests/vfio/host/model/type1_test_util.h"

namespace viommu::vfio::model {
namespace {

class ModelHostTest : public ::testing::Test {
 protected:
  explicit ModelHostTest(KernelVersion k = KernelVersion::k6_1)
      : host_(
            DefaultHostPlatform(),
            {.kernel = k, .device_factory = FakeModelDevice::Factory(&devs_)}) {
  }

  int SetContainer(int group_fd, int container_fd) {
    return host_.Ioctl(group_fd, uapi::kVfioGroupSetContainer,
                       AsArg(&container_fd));
  }
  int SetIommu(int container_fd) {
    return host_.Ioctl(container_fd, uapi::kVfioSetIommu,
                       uapi::kVfioType1v2Iommu);
  }
  uint32_t Status(int group_fd) {
    uapi::vfio_group_status st{.argsz = sizeof(st)};
    EXPECT_EQ(host_.Ioctl(group_fd, uapi::kVfioGroupGetStatus, AsArg(&st)), 0);
    return st.flags;
  }
  int DeviceFd(int group_fd, const char* name) {
    return host_.Ioctl(group_fd, uapi::kVfioGroupGetDeviceFd, AsArg(name));
  }
  // container + group 1 + SET_IOMMU.
  void Legacy(int* c, int* g) {
    *c = host_.Open("/dev/vfio/vfio");
    *g = host_.Open("/dev/vfio/1");
    ASSERT_EQ(SetContainer(*g, *c), 0);
    ASSERT_EQ(SetIommu(*c), 0);
  }

  std::map<std::string, FakeModelDevice*> devs_;
  ModelHost host_;
};

TEST_F(ModelHostTest, OpenPaths) {
  const int c = host_.Open("/dev/vfio/vfio");
  EXPECT_GE(c, ModelHost::kFirstFd);
  EXPECT_EQ(host_.Open("/dev/vfio/vfio"), c + 1) << "each open: a container";
  EXPECT_EQ(host_.Open("/dev/vfio/9"), -ENOENT);
  EXPECT_EQ(host_.Open("/dev/vfio/abc"), -ENOENT);
  EXPECT_EQ(host_.Open("/dev/vfio/"), -ENOENT);
  EXPECT_EQ(host_.Open("/dev/vfio/01"), -ENOENT);
  EXPECT_EQ(host_.Open("/dev/vfio/+1"), -ENOENT);
  EXPECT_EQ(host_.Open("/dev/vfio/ 1"), -ENOENT);
  EXPECT_EQ(host_.Open("/dev/null"), -ENOENT);
  EXPECT_GE(host_.Open("/dev/iommu"), ModelHost::kFirstFd);
  EXPECT_GE(host_.Open("/dev/vfio/devices/vfio0"), ModelHost::kFirstFd);
  EXPECT_EQ(host_.Open("/dev/vfio/devices/vfio3"), -ENOENT);
  EXPECT_EQ(host_.name(), "model");
}

TEST_F(ModelHostTest, FdsReuseTheLowestFree) {
  const int a = host_.Open("/dev/vfio/vfio");
  const int b = host_.Open("/dev/vfio/vfio");
  EXPECT_EQ(host_.Close(a), 0);
  EXPECT_EQ(host_.Open("/dev/vfio/vfio"), a);
  EXPECT_EQ(host_.Close(b), 0);
  EXPECT_EQ(host_.Close(b), -EBADF);
  EXPECT_EQ(host_.Ioctl(b, uapi::kVfioGetApiVersion, 0), -EBADF);
}

TEST_F(ModelHostTest, GroupHasASingleOpener) {
  const int g = host_.Open("/dev/vfio/1");
  ASSERT_GE(g, 0);
  EXPECT_EQ(host_.Open("/dev/vfio/1"), -EBUSY);
  EXPECT_GE(host_.Open("/dev/vfio/2"), 0);
  EXPECT_EQ(host_.Close(g), 0);
  EXPECT_GE(host_.Open("/dev/vfio/1"), 0);
}

TEST_F(ModelHostTest, GroupStatus) {
  const int c = host_.Open("/dev/vfio/vfio");
  const int g = host_.Open("/dev/vfio/1");
  uapi::vfio_group_status st{.argsz = 4};
  EXPECT_EQ(host_.Ioctl(g, uapi::kVfioGroupGetStatus, AsArg(&st)), -EINVAL);
  EXPECT_EQ(host_.Ioctl(g, uapi::kVfioGroupGetStatus, 0), -EFAULT);
  EXPECT_EQ(Status(g), uapi::kGroupFlagsViable);
  ASSERT_EQ(SetContainer(g, c), 0);
  EXPECT_EQ(Status(g), uapi::kGroupFlagsViable | uapi::kGroupFlagsContainerSet);
}

TEST_F(ModelHostTest, SetContainerErrors) {
  const int c = host_.Open("/dev/vfio/vfio");
  const int g = host_.Open("/dev/vfio/1");
  const int g2 = host_.Open("/dev/vfio/2");
  EXPECT_EQ(SetContainer(g, 4242), -EBADF);
  EXPECT_EQ(SetContainer(g, g2), -EINVAL) << "6.1: a non-container fd";
  EXPECT_EQ(host_.Ioctl(g, uapi::kVfioGroupSetContainer, 0), -EFAULT);
  ASSERT_EQ(SetContainer(g, c), 0);
  EXPECT_EQ(SetContainer(g, c), -EINVAL) << "already set";
}

class ModelHostLatestTest : public ModelHostTest {
 protected:
  ModelHostLatestTest() : ModelHostTest(KernelVersion::kLatest) {}
};

TEST_F(ModelHostLatestTest, SetContainerWithANonContainerFdIsEbadfd) {
  const int g = host_.Open("/dev/vfio/1");
  const int g2 = host_.Open("/dev/vfio/2");
  EXPECT_EQ(SetContainer(g, g2), -EBADFD);
  const int c = host_.Open("/dev/vfio/vfio");
  ASSERT_EQ(SetContainer(g, c), 0);
  EXPECT_EQ(SetContainer(g, g2), -EINVAL) << "already set is checked first";
}

TEST_F(ModelHostTest, SetContainerAttachesAtOnceWhenTheDriverIsSet) {
  int c, g1;
  Legacy(&c, &g1);
  const int g3 = host_.Open("/dev/vfio/3");
  ASSERT_EQ(SetContainer(g3, c), 0);
  EXPECT_TRUE(host_.ContainerIommu(c)->HasGroup(3));
  EXPECT_NE(devs_["0000:03:00.0"]->domain, nullptr);
}

TEST_F(ModelHostTest, ContainerIoctlsWithoutADriver) {
  const int c = host_.Open("/dev/vfio/vfio");
  EXPECT_EQ(host_.Ioctl(c, uapi::kVfioIommuGetInfo, 0), -EINVAL);
  EXPECT_EQ(host_.Ioctl(c, 0x3b99, 0), -EINVAL);
  EXPECT_EQ(host_.ContainerMappingCount(c).value(), 0u);
  const int g = host_.Open("/dev/vfio/1");
  ASSERT_EQ(SetContainer(g, c), 0);
  ASSERT_EQ(SetIommu(c), 0);
  EXPECT_EQ(host_.Ioctl(c, 0x3b99, 0), -ENOTTY) << "forwarded to type1";
  EXPECT_EQ(host_.Ioctl(c, uapi::kVfioIommuEnable, 0), -ENOTTY);
  EXPECT_FALSE(host_.ContainerMappingCount(g).ok());
}

TEST_F(ModelHostTest, GetDeviceFdChecksInOrder) {
  const int c = host_.Open("/dev/vfio/vfio");
  const int g = host_.Open("/dev/vfio/1");
  EXPECT_EQ(DeviceFd(g, "0000:02:00.0"), -ENODEV) << "another group's device";
  EXPECT_EQ(DeviceFd(g, "0000:01:00.0"), -EINVAL) << "no container";
  ASSERT_EQ(SetContainer(g, c), 0);
  EXPECT_EQ(DeviceFd(g, "0000:01:00.0"), -EINVAL) << "no SET_IOMMU";
  EXPECT_EQ(DeviceFd(g, "nonsense"), -ENODEV);
  ASSERT_EQ(SetIommu(c), 0);
  const int d = DeviceFd(g, "0000:01:00.0");
  EXPECT_GE(d, ModelHost::kFirstFd);
  EXPECT_GE(DeviceFd(g, "0000:01:00.0"), 0) << "may be opened many times";
  EXPECT_EQ(host_.Ioctl(g, uapi::kVfioDeviceGetInfo, 0), -ENOTTY)
      << "other group ioctls";
}

TEST_F(ModelHostTest, UnsetContainerRules) {
  int g = host_.Open("/dev/vfio/1");
  EXPECT_EQ(host_.Ioctl(g, uapi::kVfioGroupUnsetContainer, 0), -EINVAL);
  EXPECT_EQ(host_.Close(g), 0);
  int c;
  Legacy(&c, &g);
  const int d = DeviceFd(g, "0000:01:00.0");
  ASSERT_GE(d, 0);
  EXPECT_EQ(host_.Ioctl(g, uapi::kVfioGroupUnsetContainer, 0), -EBUSY);
  EXPECT_EQ(host_.Close(d), 0);
  AnonBuffer ram(1 << 20);
  ASSERT_EQ(Type1Client::ForFd(&host_, c).Map(0x100000, 0x4000, ram.addr()), 0);
  EXPECT_EQ(host_.Ioctl(g, uapi::kVfioGroupUnsetContainer, 0), 0);
  EXPECT_EQ(host_.locked_pages(), 0u) << "the last group released the driver";
  EXPECT_EQ(host_.ContainerIommu(c), nullptr);
  EXPECT_EQ(devs_["0000:01:00.0"]->domain, nullptr);
  EXPECT_EQ(SetIommu(c), -EINVAL) << "no groups";
}

TEST_F(ModelHostTest, DeviceFdsKeepAClosedGroupAttached) {
  int c, g;
  Legacy(&c, &g);
  const int d = DeviceFd(g, "0000:01:00.0");
  ASSERT_EQ(host_.Close(g), 0);
  EXPECT_EQ(host_.Open("/dev/vfio/1"), -EBUSY);
  EXPECT_NE(devs_["0000:01:00.0"]->domain, nullptr);
  EXPECT_NE(host_.ContainerIommu(c), nullptr);
  ASSERT_EQ(host_.Close(d), 0);
  EXPECT_EQ(devs_["0000:01:00.0"]->domain, nullptr);
  EXPECT_EQ(host_.ContainerIommu(c), nullptr);
  EXPECT_GE(host_.Open("/dev/vfio/1"), 0);
}

TEST_F(ModelHostTest, ContainerOutlivesItsFdWhileGroupsHoldIt) {
  int c, g;
  Legacy(&c, &g);
  AnonBuffer ram(1 << 20);
  ASSERT_EQ(Type1Client::ForFd(&host_, c).Map(0x100000, 0x4000, ram.addr()), 0);
  ASSERT_EQ(host_.Close(c), 0);
  EXPECT_EQ(host_.locked_pages(), 4u);
  FakeModelDevice* dev = devs_["0000:01:00.0"];
  const uint8_t byte = 0x77;
  EXPECT_TRUE(dev->DmaWrite(0x100001, &byte, 1));
  EXPECT_EQ(ram.data()[1], 0x77);
  ASSERT_EQ(host_.Close(g), 0);
  EXPECT_EQ(host_.locked_pages(), 0u);
  EXPECT_FALSE(dev->DmaWrite(0x100001, &byte, 1));
}

TEST_F(ModelHostTest, DeviceInfoRegionsIrqsReset) {
  int c, g;
  Legacy(&c, &g);
  const int d = DeviceFd(g, "0000:01:00.0");
  uapi::vfio_device_info di{.argsz = sizeof(di), .cap_offset = 0x5555};
  ASSERT_EQ(host_.Ioctl(d, uapi::kVfioDeviceGetInfo, AsArg(&di)), 0);
  EXPECT_EQ(di.flags, uapi::kDeviceFlagsPci | uapi::kDeviceFlagsReset);
  EXPECT_EQ(di.num_regions, 9u);
  EXPECT_EQ(di.num_irqs, 5u);
  EXPECT_EQ(di.cap_offset, 0x5555u) << "16 bytes copied back";
  di.argsz = 15;
  EXPECT_EQ(host_.Ioctl(d, uapi::kVfioDeviceGetInfo, AsArg(&di)), -EINVAL);

  uapi::vfio_region_info ri{.argsz = sizeof(ri), .index = 2};
  ASSERT_EQ(host_.Ioctl(d, uapi::kVfioDeviceGetRegionInfo, AsArg(&ri)), 0);
  EXPECT_EQ(ri.size, FakeModelDevice::kBar2Size);
  EXPECT_EQ(ri.offset, uint64_t{2} << 40);
  EXPECT_TRUE(ri.flags & uapi::kRegionInfoFlagMmap);
  ri.index = 9;
  EXPECT_EQ(host_.Ioctl(d, uapi::kVfioDeviceGetRegionInfo, AsArg(&ri)),
            -EINVAL);
  ri = {.argsz = 16, .index = 0};
  EXPECT_EQ(host_.Ioctl(d, uapi::kVfioDeviceGetRegionInfo, AsArg(&ri)),
            -EINVAL);

  uapi::vfio_irq_info ii{.argsz = sizeof(ii), .index = 1};
  ASSERT_EQ(host_.Ioctl(d, uapi::kVfioDeviceGetIrqInfo, AsArg(&ii)), 0);
  EXPECT_EQ(ii.count, 1u);
  ii.index = 5;
  EXPECT_EQ(host_.Ioctl(d, uapi::kVfioDeviceGetIrqInfo, AsArg(&ii)), -EINVAL);

  uapi::vfio_irq_set set{
      .argsz = sizeof(set),
      .flags = uapi::kIrqSetDataNone | uapi::kIrqSetActionTrigger,
      .index = 1,
      .count = 0};
  EXPECT_EQ(host_.Ioctl(d, uapi::kVfioDeviceSetIrqs, AsArg(&set)), 0);
  EXPECT_EQ(devs_["0000:01:00.0"]->last_irq_set.index, 1u);
  EXPECT_EQ(host_.Ioctl(d, uapi::kVfioDeviceReset, 0), 0);
  EXPECT_EQ(devs_["0000:01:00.0"]->resets, 1);
  EXPECT_EQ(host_.Ioctl(d, uapi::kVfioIommuMapDma, 0), -ENOTTY);
}

TEST_F(ModelHostTest, PreadPwriteGoToTheDevice) {
  int c, g;
  Legacy(&c, &g);
  const int d = DeviceFd(g, "0000:01:00.0");
  const uint32_t v = 0x12345678;
  EXPECT_EQ(host_.Pwrite(d, &v, 4, 0x80), 4);
  uint32_t back = 0;
  EXPECT_EQ(host_.Pread(d, &back, 4, 0x80), 4);
  EXPECT_EQ(back, v);
  EXPECT_EQ(host_.Pread(d, &back, 4, uint64_t{5} << 40), -EINVAL);
  EXPECT_EQ(host_.Pread(c, &back, 4, 0), -EINVAL);
  EXPECT_EQ(host_.Pread(4242, &back, 4, 0), -EBADF);
}

TEST_F(ModelHostTest, MmapRegistersDeviceMemory) {
  int c, g;
  Legacy(&c, &g);
  const int d = DeviceFd(g, "0000:01:00.0");
  const uint64_t bar2 = uapi::PciIndexToOffset(2);
  EXPECT_FALSE(host_.Mmap(c, 4096, bar2).ok());
  EXPECT_FALSE(host_.Mmap(d, 4096, 0).ok()) << "BAR0 is not mmap-able";
  auto p = host_.Mmap(d, 4096, bar2);
  ASSERT_TRUE(p.ok());
  auto p2 = host_.Mmap(d, 4096, bar2);
  ASSERT_TRUE(p2.ok());
  const uint64_t a = reinterpret_cast<uint64_t>(*p);
  EXPECT_EQ(host_.process_memory().Classify(a, 4096), VaddrKind::kPfnMap);
  host_.Munmap(*p, 4096);
  EXPECT_EQ(host_.process_memory().Classify(a, 4096), VaddrKind::kPfnMap);
  host_.Munmap(*p2, 4096);
  EXPECT_EQ(host_.process_memory().Classify(a, 4096), VaddrKind::kAnonymous);
  EXPECT_EQ(devs_["0000:01:00.0"]->mmaps, 0);
}

TEST_F(ModelHostTest, SysfsFacts) {
  EXPECT_EQ(*host_.IommuGroupOf(*HostPciAddress::Parse("0000:02:00.0")), 2u);
  EXPECT_FALSE(host_.IommuGroupOf(*HostPciAddress::Parse("0000:09:00.0")).ok());
  const std::vector<ResvRegion> want = {
      {0x0f000000, 0x0f0fffff, ResvType::kDirect}, MsiWindow()};
  EXPECT_EQ(*host_.GroupReservedRegions(2), want);
  EXPECT_FALSE(host_.GroupReservedRegions(9).ok());
  EXPECT_EQ(*host_.DeviceCdevPath(*HostPciAddress::Parse("0000:03:00.0")),
            "/dev/vfio/devices/vfio2");
  EXPECT_FALSE(host_.DeviceCdevPath(*HostPciAddress::Parse("01:01.0")).ok());
}

TEST(ModelHostPlatformTest, GroupOfSeveralDevicesMergesTheirRegions) {
  HostPlatform p;
  p.devices.push_back(
      {.address = {0, 5, 0, 0},
       .group = 5,
       .reserved = {{0x1000, 0x1fff, ResvType::kReserved}, MsiWindow()}});
  p.devices.push_back({.address = {0, 5, 0, 1},
                       .group = 5,
                       .aperture_bits = 39,
                       .reserved = {{0x2000, 0x2fff, ResvType::kReserved}}});
  ModelHost host(p);
  const std::vector<ResvRegion> want = {{0x1000, 0x2fff, ResvType::kReserved},
                                        MsiWindow()};
  EXPECT_EQ(*host.GroupReservedRegions(5), want);
  const int c = host.Open("/dev/vfio/vfio");
  const int g = host.Open("/dev/vfio/5");
  ASSERT_EQ(host.Ioctl(g, uapi::kVfioGroupSetContainer, AsArg(&c)), 0);
  ASSERT_EQ(host.Ioctl(c, uapi::kVfioSetIommu, uapi::kVfioType1Iommu), 0);
  EXPECT_EQ(host.ContainerIommu(c)->iova_list().back().last, 0x7fffffffffu)
      << "the group's aperture is its narrowest device's";
  EXPECT_FALSE(host.ContainerIommu(c)->config().v2);
  EXPECT_GE(host.Ioctl(g, uapi::kVfioGroupGetDeviceFd, AsArg("0000:05:00.1")),
            0);
  // Without a device factory the device fd still answers GET_INFO.
  EXPECT_EQ(host.device(p.devices[0].address), nullptr);
}

}  // namespace
}  // namespace viommu::vfio::model
