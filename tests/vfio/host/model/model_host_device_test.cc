// ModelHost with the real simulated devices (ModelHostDevice::Factory):
// the legacy flow end to end — edu DMA through the container's type1
// mapping into process memory, P2P into another device's mmap'd BAR2, and
// host IOMMU faults once the group leaves the container.
#include <cerrno>
#include <cstring>

#include "gtest/gtest.h"
#include "tests/vfio/host/model/type1_test_util.h"
#include "viommu/vfio/host/model/host_device.h"
#include "viommu/vfio/host/model/model_host.h"

namespace viommu::vfio::model {
namespace {

constexpr uint64_t kBar0 = 0;  // PciIndexToOffset(0)
const uint64_t kBar2 = uapi::PciIndexToOffset(2);
const uint64_t kConfig = uapi::PciIndexToOffset(7);
constexpr uint64_t kEduBuffer = 0x40000;
constexpr uint64_t kToRam = 0x2;  // edu cmd: buffer -> RAM

class ModelHostDeviceTest : public ::testing::Test {
 protected:
  ModelHostDeviceTest()
      : host_(DefaultHostPlatform(),
              {.device_factory = ModelHostDevice::Factory({})}) {
    container_ = host_.Open("/dev/vfio/vfio");
    g1_ = host_.Open("/dev/vfio/1");
    g3_ = host_.Open("/dev/vfio/3");
    EXPECT_EQ(SetContainer(g1_), 0);
    EXPECT_EQ(SetContainer(g3_), 0);
    EXPECT_EQ(
        host_.Ioctl(container_, uapi::kVfioSetIommu, uapi::kVfioType1v2Iommu),
        0);
    d1_ = host_.Ioctl(g1_, uapi::kVfioGroupGetDeviceFd, AsArg("0000:01:00.0"));
    d3_ = host_.Ioctl(g3_, uapi::kVfioGroupGetDeviceFd, AsArg("0000:03:00.0"));
    EnableMaster(d1_);
    EnableMaster(d3_);
  }
  int SetContainer(int g) {
    return host_.Ioctl(g, uapi::kVfioGroupSetContainer, AsArg(&container_));
  }
  void Write(int fd, uint64_t off, uint64_t v, unsigned size) {
    EXPECT_EQ(host_.Pwrite(fd, &v, size, off), size);
  }
  void EnableMaster(int fd) { Write(fd, kConfig + 4, 0x0006, 2); }
  // An edu DMA; without device timers it completes at the command write.
  void Dma(int fd, uint64_t src, uint64_t dst, uint64_t count, uint64_t cmd) {
    Write(fd, kBar0 + 0x80, src, 8);
    Write(fd, kBar0 + 0x88, dst, 8);
    Write(fd, kBar0 + 0x90, count, 8);
    Write(fd, kBar0 + 0x98, 0x1 | cmd, 8);
  }
  ModelHostDevice* dev(const char* bdf) {
    return static_cast<ModelHostDevice*>(
        host_.device(*HostPciAddress::Parse(bdf)));
  }

  ModelHost host_;
  int container_, g1_, g3_, d1_, d3_;
};

TEST_F(ModelHostDeviceTest, EduDmaGoesThroughTheContainerMapping) {
  AnonBuffer ram(1 << 20);
  Type1Client c = Type1Client::ForFd(&host_, container_);
  ASSERT_EQ(c.Map(0x100000, 0x10000, ram.addr()), 0);
  std::memcpy(ram.data(), "through type1", 13);
  Dma(d1_, 0x100000, kEduBuffer, 13, 0);
  Dma(d1_, kEduBuffer, 0x100000 + 0x2000, 13, kToRam);
  EXPECT_EQ(std::memcmp(ram.data() + 0x2000, "through type1", 13), 0);
  EXPECT_EQ(dev("0000:01:00.0")->iommu_fault_count(), 0u);
  // The other group's device DMAs through its own (replayed) domain.
  Dma(d3_, kEduBuffer, 0x100000 + 0x3000, 13, kToRam);
  EXPECT_EQ(dev("0000:03:00.0")->iommu_fault_count(), 0u);
}

TEST_F(ModelHostDeviceTest, UnmappedIovaIsAHostIommuFault) {
  Dma(d1_, kEduBuffer, 0x500000, 8, kToRam);
  EXPECT_EQ(dev("0000:01:00.0")->iommu_fault_count(), 1u);
  EXPECT_EQ(dev("0000:01:00.0")->last_fault_iova(), 0x500000u);
}

TEST_F(ModelHostDeviceTest, PeerToPeerIntoAnotherDevicesBar2) {
  auto bar = host_.Mmap(d3_, 1 << 20, kBar2);
  ASSERT_TRUE(bar.ok()) << bar.status();
  Type1Client c = Type1Client::ForFd(&host_, container_);
  ASSERT_EQ(c.Map(0x800000, 1 << 20, reinterpret_cast<uint64_t>(*bar)), 0);
  EXPECT_EQ(host_.locked_pages(), 0u) << "device memory is not charged";
  AnonBuffer ram(4096);
  ASSERT_EQ(c.Map(0x100000, 4096, ram.addr()), 0);
  std::memcpy(ram.data(), "peer-to-peer", 12);
  Dma(d1_, 0x100000, kEduBuffer, 12, 0);
  Dma(d1_, kEduBuffer, 0x800000 + 0x2000, 12, kToRam);
  char got[12];
  ASSERT_EQ(host_.Pread(d3_, got, 12, kBar2 + 0x2000), 12);
  EXPECT_EQ(std::memcmp(got, "peer-to-peer", 12), 0);
  ASSERT_EQ(c.Unmap(0x800000, 1 << 20).rc, 0);
  host_.Munmap(*bar, 1 << 20);
}

TEST_F(ModelHostDeviceTest, LeavingTheContainerBlocksDma) {
  AnonBuffer ram(1 << 16);
  ASSERT_EQ(
      Type1Client::ForFd(&host_, container_).Map(0x100000, 1 << 16, ram.addr()),
      0);
  ASSERT_EQ(host_.Close(d3_), 0);
  ASSERT_EQ(host_.Ioctl(g3_, uapi::kVfioGroupUnsetContainer, 0), 0);
  EXPECT_EQ(dev("0000:03:00.0")->domain(), nullptr);
  // The hardware keeps running without a domain: its DMA faults.
  ModelHostDevice* d = dev("0000:03:00.0");
  const uint64_t regs[] = {kEduBuffer, 0x100000, 8, 0x1 | kToRam};
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(d->RegionWrite(kBar0 + 0x80 + 8 * i, &regs[i], 8), 8);
  }
  EXPECT_EQ(d->iommu_fault_count(), 1u);
  const int d3 =
      host_.Ioctl(g3_, uapi::kVfioGroupGetDeviceFd, AsArg("0000:03:00.0"));
  EXPECT_EQ(d3, -EINVAL) << "no container";
  EXPECT_NE(dev("0000:01:00.0")->domain(), nullptr);
  EXPECT_EQ(host_.ContainerIommu(container_)->domain_count(), 1u);
}

TEST(ModelHostDeviceFactoryTest, ADeviceThatCannotBeMadeFailsModelHostCreate) {
  HostPlatform platform = DefaultHostPlatform();
  platform.devices[1].bar2_size = 100;  // not a power of two >= 4 KiB
  absl::StatusOr<std::unique_ptr<ModelHost>> host = ModelHost::Create(
      platform, {.device_factory = ModelHostDevice::Factory({})});
  ASSERT_FALSE(host.ok());
  EXPECT_EQ(host.status().code(), absl::StatusCode::kInvalidArgument);
  // The constructor keeps the error and leaves that device without ops.
  ModelHost direct(platform, {.device_factory = ModelHostDevice::Factory({})});
  EXPECT_EQ(direct.device_status(), host.status());
  EXPECT_EQ(direct.device(platform.devices[1].address), nullptr);
  EXPECT_NE(direct.device(platform.devices[0].address), nullptr);
}

TEST(ModelHostDeviceFactoryTest, ModelHostCreateSucceedsWhenEveryDeviceIsMade) {
  absl::StatusOr<std::unique_ptr<ModelHost>> host = ModelHost::Create(
      DefaultHostPlatform(), {.device_factory = ModelHostDevice::Factory({})});
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_TRUE((*host)->device_status().ok());
}

}  // namespace
}  // namespace viommu::vfio::model
