// ModelHostDevice behind ModelHost (ModelHostDevice::Factory): the legacy
// container/group/device uAPI end to end — region info through the ioctl,
// config and BAR0 through pwrite, edu DMA through the type1 container's
// mappings into process memory, P2P into another device's BAR2 mmap,
// faults on unmapped IOVAs.
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "gtest/gtest.h"
#include "viommu/vfio/host/model/host_device.h"
#include "viommu/vfio/host/model/model_host.h"

namespace viommu::vfio::model {
namespace {

constexpr uint64_t kBar2 = uint64_t{2} << 40;
constexpr uint64_t kCfg = uint64_t{7} << 40;
constexpr uint64_t kRamSize = 4 * 4096;

class HostDeviceModelHostTest : public ::testing::Test {
 protected:
  HostDeviceModelHostTest()
      : host_(DefaultHostPlatform(),
              {.device_factory = ModelHostDevice::Factory({})}) {}

  void SetUp() override {
    ram_ = static_cast<uint8_t*>(mmap(nullptr, kRamSize, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(ram_, MAP_FAILED);
    container_ = host_.Open("/dev/vfio/vfio");
    for (int i = 0; i < 2; ++i) {
      int group = host_.Open(i == 0 ? "/dev/vfio/1" : "/dev/vfio/2");
      ASSERT_GE(group, 0);
      ASSERT_EQ(
          host_.Ioctl(group, uapi::kVfioGroupSetContainer, AsArg(&container_)),
          0);
      if (i == 0) {
        ASSERT_EQ(host_.Ioctl(container_, uapi::kVfioSetIommu,
                              uapi::kVfioType1v2Iommu),
                  0);
      }
      const char* name = i == 0 ? "0000:01:00.0" : "0000:02:00.0";
      dev_fd_[i] = host_.Ioctl(group, uapi::kVfioGroupGetDeviceFd, AsArg(name));
      ASSERT_GE(dev_fd_[i], 0);
      dev_[i] = static_cast<ModelHostDevice*>(
          host_.device(*HostPciAddress::Parse(name)));
      ASSERT_NE(dev_[i], nullptr);
    }
    ASSERT_EQ(MapDma(0x100000, reinterpret_cast<uint64_t>(ram_), kRamSize), 0);
    const uint16_t cmd = 0x6;  // MEMORY | MASTER
    ASSERT_EQ(host_.Pwrite(dev_fd_[0], &cmd, 2, kCfg + 4), 2);
  }
  void TearDown() override { munmap(ram_, kRamSize); }

  int MapDma(uint64_t iova, uint64_t vaddr, uint64_t size) {
    uapi::vfio_iommu_type1_dma_map map{
        .argsz = sizeof(map),
        .flags = uapi::kDmaMapFlagRead | uapi::kDmaMapFlagWrite,
        .vaddr = vaddr,
        .iova = iova,
        .size = size};
    return host_.Ioctl(container_, uapi::kVfioIommuMapDma, AsArg(&map));
  }
  void Bar0(uint64_t off, uint64_t v) {
    ASSERT_EQ(host_.Pwrite(dev_fd_[0], &v, 8, off), 8);
  }
  // Device 0's edu DMA; without DeviceTimers it runs at the command write.
  void Dma(uint64_t src, uint64_t dst, uint64_t count, uint64_t cmd) {
    Bar0(0x80, src);
    Bar0(0x88, dst);
    Bar0(0x90, count);
    Bar0(0x98, cmd);
  }

  ModelHost host_;
  uint8_t* ram_ = nullptr;
  int container_ = -1;
  int dev_fd_[2] = {-1, -1};
  ModelHostDevice* dev_[2] = {nullptr, nullptr};
};

TEST_F(HostDeviceModelHostTest, RegionInfoAndIdsThroughTheDeviceFd) {
  uapi::vfio_region_info ri{.argsz = sizeof(ri), .index = 2};
  ASSERT_EQ(host_.Ioctl(dev_fd_[0], uapi::kVfioDeviceGetRegionInfo, AsArg(&ri)),
            0);
  EXPECT_EQ(ri.size, 1u << 20);
  EXPECT_EQ(ri.offset, kBar2);
  EXPECT_TRUE(ri.flags & uapi::kRegionInfoFlagMmap);
  uint32_t id = 0;
  ASSERT_EQ(host_.Pread(dev_fd_[0], &id, 4, kCfg), 4);
  EXPECT_EQ(id, 0x11e81234u);
  ASSERT_EQ(host_.Pread(dev_fd_[0], &id, 4, 0), 4);
  EXPECT_EQ(id, 0x010000edu);
}

TEST_F(HostDeviceModelHostTest, EduDmaThroughTheContainersMappings) {
  std::memcpy(ram_ + 0x1000, "through type1", 14);
  Dma(0x101000, 0x40000, 14, 0x1);
  Dma(0x40000, 0x103000, 14, 0x3);
  EXPECT_STREQ(reinterpret_cast<char*>(ram_ + 0x3000), "through type1");
  EXPECT_EQ(dev_[0]->completed_dma_count(), 2u);
  EXPECT_EQ(dev_[0]->iommu_fault_count(), 0u);
}

TEST_F(HostDeviceModelHostTest, UnmappedIovaIsAHostIommuFault) {
  Dma(0x40000, 0x2000000, 8, 0x3);
  EXPECT_EQ(dev_[0]->iommu_fault_count(), 1u);
  EXPECT_EQ(dev_[0]->last_fault_iova(), 0x2000000u);
}

TEST_F(HostDeviceModelHostTest, P2PIntoTheOtherDevicesBar2Mmap) {
  absl::StatusOr<void*> bar = host_.Mmap(dev_fd_[1], 1 << 20, kBar2);
  ASSERT_TRUE(bar.ok()) << bar.status();
  const uint64_t va = reinterpret_cast<uint64_t>(*bar);
  EXPECT_EQ(host_.process_memory().Classify(va, 1 << 20), VaddrKind::kPfnMap);
  ASSERT_EQ(MapDma(0x800000, va, 1 << 20), 0);  // type1 maps PFNMAP (P2P)
  std::memcpy(ram_, "p2p", 4);
  Dma(0x100000, 0x40000, 4, 0x1);
  Dma(0x40000, 0x800000 + 0x4000, 4, 0x3);
  char got[4] = {};
  const uint16_t cmd = 0x2;  // device 1: memory decode (already on)
  ASSERT_EQ(host_.Pwrite(dev_fd_[1], &cmd, 2, kCfg + 4), 2);
  ASSERT_EQ(host_.Pread(dev_fd_[1], got, 4, kBar2 + 0x4000), 4);
  EXPECT_STREQ(got, "p2p");
  host_.Munmap(*bar, 1 << 20);
}

}  // namespace
}  // namespace viommu::vfio::model
