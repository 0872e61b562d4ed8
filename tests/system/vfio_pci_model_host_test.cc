// VfioPciDevice over the model backend: ModelHost with the simulated
// edu-compatible host devices, opened through the legacy group flow
// (container, group, SET_CONTAINER, SET_IOMMU type1v2, GET_DEVICE_FD) and
// plugged on a real PciBus.
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>

#include "gtest/gtest.h"
#include "tests/hw/pci/fake_pci_device.h"
#include "viommu/hw/pci/pci_regs.h"
#include "viommu/system/vfio/vfio_pci_device.h"
#include "viommu/vfio/host/host_platform.h"
#include "viommu/vfio/host/model/host_device.h"
#include "viommu/vfio/host/model/model_host.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::system {
namespace {

namespace uapi = vfio::uapi;
using hw::pci::kCfgBar0;
using hw::pci::kCfgCommand;
using hw::pci::testing::PciTestBench;
using vfio::model::ModelHost;
using vfio::model::ModelHostDevice;

constexpr uint8_t kDevfn = 0x28;  // 05.0: INTA# -> line 17 in the bench
constexpr int kIntxLine = 17;
constexpr uint64_t kBar0 = 0xfe00'0000;
constexpr uint64_t kBar2 = 0xe000'0000;

class VfioPciModelHostTest : public ::testing::Test {
 protected:
  VfioPciModelHostTest()
      : host_(vfio::DefaultHostPlatform(),
              {.device_factory =
                   ModelHostDevice::Factory({.irq_sink = &eventfds_})}) {}

  // The legacy group flow of QEMU's vfio_container_connect +
  // vfio_device_get for 0000:01:00.0 (group 1).
  void OpenDevice() {
    container_ = host_.Open("/dev/vfio/vfio");
    ASSERT_GE(container_, 0);
    group_ = host_.Open("/dev/vfio/1");
    ASSERT_GE(group_, 0);
    uapi::vfio_group_status st{.argsz = sizeof(st), .flags = 0};
    ASSERT_EQ(host_.Ioctl(group_, uapi::kVfioGroupGetStatus, vfio::AsArg(&st)),
              0);
    ASSERT_NE(st.flags & uapi::kGroupFlagsViable, 0u);
    ASSERT_EQ(host_.Ioctl(group_, uapi::kVfioGroupSetContainer,
                          vfio::AsArg(&container_)),
              0);
    ASSERT_EQ(
        host_.Ioctl(container_, uapi::kVfioSetIommu, uapi::kVfioType1v2Iommu),
        0);
    char name[] = "0000:01:00.0";
    device_fd_ =
        host_.Ioctl(group_, uapi::kVfioGroupGetDeviceFd, vfio::AsArg(name));
    ASSERT_GE(device_fd_, 0);
  }

  void Plug() {
    absl::StatusOr<std::unique_ptr<VfioPciDevice>> dev =
        VfioPciDevice::Create(&host_, device_fd_, "0000:01:00.0");
    ASSERT_TRUE(dev.ok()) << dev.status();
    absl::StatusOr<hw::pci::PciDevice*> p =
        b_.bus().Plug(*std::move(dev), kDevfn);
    ASSERT_TRUE(p.ok()) << p.status();
    dev_ = static_cast<VfioPciDevice*>(*p);
  }

  void TearDown() override {
    if (dev_ != nullptr) {
      EXPECT_TRUE(b_.bus().Unplug(kDevfn).ok());
    }
    for (int fd : {device_fd_, group_, container_}) {
      if (fd >= 0) {
        EXPECT_EQ(host_.Close(fd), 0) << fd;
      }
    }
  }

  // Plug, map BAR0 and BAR2, enable memory decoding and bus mastering.
  void PlugAndMap() {
    OpenDevice();
    Plug();
    b_.SetCfg(kDevfn, kCfgBar0, static_cast<uint32_t>(kBar0), 4);
    b_.SetCfg(kDevfn, kCfgBar0 + 8, static_cast<uint32_t>(kBar2), 4);
    b_.SetCfg(kDevfn, kCfgBar0 + 12, 0, 4);
    b_.SetCfg(kDevfn, kCfgCommand,
              hw::pci::kCommandMemory | hw::pci::kCommandMaster, 2);
  }
  void Bar0Write(uint64_t off, uint32_t v) {
    ASSERT_TRUE(b_.MemWrite(kBar0 + off, v, 4).ok());
  }

  vfio::model::EventfdIrqSink eventfds_;  // the kernel's eventfd_signal
  ModelHost host_;                        // outlives the bus
  PciTestBench b_;
  int container_ = -1;
  int group_ = -1;
  int device_fd_ = -1;
  VfioPciDevice* dev_ = nullptr;
};

TEST_F(VfioPciModelHostTest, GuestSeesTheHostEduThroughTheLegacyGroupFlow) {
  OpenDevice();
  Plug();
  EXPECT_EQ(b_.Cfg(kDevfn, hw::pci::kCfgVendorId, 2), 0x1234u);
  EXPECT_EQ(b_.Cfg(kDevfn, hw::pci::kCfgDeviceId, 2), 0x11e8u);
  EXPECT_NE(dev_->msi_cap(), 0);
  // BAR0: the edu registers (1 MiB, 32-bit); BAR2: 64-bit, mmap'd.
  b_.SetCfg(kDevfn, kCfgBar0, 0xffffffff, 4);
  EXPECT_EQ(b_.Cfg(kDevfn, kCfgBar0, 4), 0xfff00000u);
  b_.SetCfg(kDevfn, kCfgBar0, static_cast<uint32_t>(kBar0), 4);
  b_.SetCfg(kDevfn, kCfgBar0 + 8, static_cast<uint32_t>(kBar2), 4);
  b_.SetCfg(kDevfn, kCfgBar0 + 12, 0, 4);
  b_.SetCfg(kDevfn, kCfgCommand,
            hw::pci::kCommandMemory | hw::pci::kCommandMaster, 2);
  uint64_t id = 0;
  ASSERT_TRUE(b_.MemRead(kBar0, &id, 4).ok());
  EXPECT_EQ(id, 0x010000edu);  // edu's identification register
  EXPECT_TRUE(dev_->BarIsMmapped(2));
  ASSERT_TRUE(b_.MemWrite(kBar2 + 0x10, 0xcafef00d, 4).ok());
  auto* model = static_cast<ModelHostDevice*>(
      host_.device(*vfio::HostPciAddress::Parse("0000:01:00.0")));
  ASSERT_NE(model, nullptr);
  uint32_t seen = 0;
  std::memcpy(&seen, model->bar2() + 0x10, 4);
  EXPECT_EQ(seen, 0xcafef00du);
  EXPECT_EQ(dev_->stats().host_errors, 0u) << dev_->last_host_error();
}

// edu's "raise interrupt" register (0x60) on the host device: MSI through
// the eventfd the vfio-pci device registered, delivered by PollInterrupts
// with the guest's address/data.
TEST_F(VfioPciModelHostTest, HostEduMsiReachesTheGuestMsiWindow) {
  PlugAndMap();
  const uint64_t intx_generation = dev_->interrupt_fds_generation();
  const uint8_t cap = dev_->msi_cap();
  b_.SetCfg(kDevfn, cap + 4, 0xfee02000, 4);
  b_.SetCfg(kDevfn, cap + 8, 0, 4);
  b_.SetCfg(kDevfn, cap + 12, 0x0055, 2);
  b_.SetCfg(kDevfn, cap + 2, 0x1, 2);
  ASSERT_EQ(dev_->irq_mode(), VfioPciDevice::IrqMode::kMsi)
      << dev_->last_host_error();
  EXPECT_NE(dev_->interrupt_fds_generation(), intx_generation);
  Bar0Write(0x60, 0x1);
  dev_->PollInterrupts();
  const uint16_t rid = dev_->requester_id();
  ASSERT_EQ(b_.msi().Count(rid), 1u);
  EXPECT_EQ(b_.msi().Last(rid)->address, 0xfee02000u);
  EXPECT_EQ(b_.msi().Last(rid)->data, 0x55u);
  EXPECT_EQ(dev_->stats().host_errors, 0u) << dev_->last_host_error();
}

// With MSI off the host device asserts INTx: the pin rises at the next
// poll; the guest's acknowledgement through BAR0 lowers it and unmasks.
TEST_F(VfioPciModelHostTest, HostEduIntxRaisesAndAckLowersThePin) {
  PlugAndMap();
  ASSERT_EQ(dev_->irq_mode(), VfioPciDevice::IrqMode::kIntx);
  Bar0Write(0x60, 0x1);
  dev_->PollInterrupts();
  EXPECT_TRUE(b_.irq().level(kIntxLine));
  Bar0Write(0x64, 0x1);  // ack: host line low, our pin low, unmasked
  dev_->PollInterrupts();
  EXPECT_FALSE(b_.irq().level(kIntxLine));
  EXPECT_EQ(dev_->stats().intx_unmasked, 1u);
  EXPECT_EQ(dev_->stats().host_errors, 0u) << dev_->last_host_error();
}

}  // namespace
}  // namespace viommu::system
