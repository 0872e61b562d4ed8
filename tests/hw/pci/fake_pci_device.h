// tests/hw/pci/fake_pci_device.h — a configurable PCI function for tests,
// and a bench with a small q35-like topology (RAM at 0, the MSI window,
// CF8/CFC, ECAM at 0xb0000000) around a PciBus.
//
//   PciTestBench b;
//   FakePciDevice* dev = b.PlugFake(0x20);
//   b.bus().ConfigWrite(0x20, kCfgCommand, kCommandMaster, 2);
//   EXPECT_TRUE(dev->DoDmaWrite(0x1000, "x", 1).ok());
#ifndef VIOMMU_TESTS_HW_PCI_FAKE_PCI_DEVICE_H_
#define VIOMMU_TESTS_HW_PCI_FAKE_PCI_DEVICE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_mmio_device.h"
#include "viommu/hw/core/irq.h"
#include "viommu/hw/core/msi.h"
#include "viommu/hw/core/virtual_clock.h"
#include "viommu/hw/pci/pci_bus.h"
#include "viommu/hw/pci/pci_device.h"
#include "viommu/hw/pci/pci_host.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::hw::pci::testing {

using memory::testing::FakeMmioDevice;

struct FakePciOptions {
  bool bars = true;          // BAR0 mem32 4 KiB, BAR2 mem64 pref 1 MiB,
                             // BAR4 I/O 32 bytes
  unsigned msi_vectors = 1;  // 0: no MSI capability
  bool msi_64bit = true;
  uint8_t interrupt_pin = 1;  // INTA#
  absl::Status realize_status = absl::OkStatus();
};

class FakePciDevice final : public PciDevice {
 public:
  explicit FakePciDevice(FakePciOptions options = {})
      : PciDevice("fake-pci", {.vendor_id = 0x1234,
                               .device_id = 0xbeef,
                               .revision = 0x01,
                               .class_code = 0x00ff00,
                               .interrupt_pin = options.interrupt_pin}),
        options_(std::move(options)) {}

  // Protected services, opened for tests.
  memory::MemTxResult DoDmaRead(uint64_t a, void* buf, size_t len) {
    return DmaRead(a, buf, len);
  }
  memory::MemTxResult DoDmaWrite(uint64_t a, const void* buf, size_t len) {
    return DmaWrite(a, buf, len);
  }
  void DoSetIntx(bool level) { SetIntx(level); }
  bool DoMsiNotify(unsigned vector) { return MsiNotify(vector); }
  bool IsMsiEnabled() const { return msi_enabled(); }
  uint8_t* RawConfig() { return config(); }
  [[nodiscard]] absl::StatusOr<uint8_t> DoAddMsiCapability(unsigned v,
                                                           bool is64) {
    return AddMsiCapability(v, is64);
  }

  FakeMmioDevice& bar0() { return bar0_ops_; }
  FakeMmioDevice& bar4() { return bar4_ops_; }
  int realize_count() const { return realize_count_; }
  int unrealize_count() const { return unrealize_count_; }

 protected:
  [[nodiscard]] absl::Status Realize() override {
    ++realize_count_;
    if (!options_.realize_status.ok()) return options_.realize_status;
    if (options_.bars) {
      RegisterBar(0, BarType::kMem32, false,
                  memory::MemoryRegion::CreateMmio(memory(), "fake-bar0",
                                                   0x1000, &bar0_ops_));
      RegisterBar(2, BarType::kMem64, true,
                  memory::MemoryRegion::CreateMmio(memory(), "fake-bar2",
                                                   1 << 20, &bar2_ops_));
      RegisterBar(4, BarType::kIo, false,
                  memory::MemoryRegion::CreateMmio(memory(), "fake-bar4", 32,
                                                   &bar4_ops_));
    }
    if (options_.msi_vectors != 0) {
      absl::StatusOr<uint8_t> cap =
          AddMsiCapability(options_.msi_vectors, options_.msi_64bit);
      if (!cap.ok()) return cap.status();
    }
    return absl::OkStatus();
  }
  void Unrealize() override { ++unrealize_count_; }

 private:
  FakePciOptions options_;
  FakeMmioDevice bar0_ops_{0x1000};
  FakeMmioDevice bar2_ops_{1 << 20};
  FakeMmioDevice bar4_ops_{32};
  int realize_count_ = 0;
  int unrealize_count_ = 0;
};

// Records line levels.
class RecordingIrqSink final : public IrqSink {
 public:
  void SetIrq(int line, bool level) override {
    levels[line] = level;
    ++changes;
  }
  bool level(int line) const {
    auto it = levels.find(line);
    return it != levels.end() && it->second;
  }
  std::map<int, bool> levels;
  int changes = 0;
};

inline constexpr uint64_t kBenchEcamBase = 0xb000'0000;
inline constexpr uint64_t kBenchRamSize = 1 << 20;

class PciTestBench {
 public:
  PciTestBench() {
    ram_ = *memory::MemoryRegion::CreateRam(&sys_, "ram", kBenchRamSize);
    system_root_ =
        memory::MemoryRegion::CreateContainer(&sys_, "system", kSize2To64);
    io_root_ = memory::MemoryRegion::CreateContainer(&sys_, "io", 0x10000);
    system_root_->AddSubregion(0, ram_);
    system_root_->AddSubregionOverlap(
        kMsiWindowBase,
        memory::MemoryRegion::CreateMmio(&sys_, "msi", kMsiWindowSize, &msi_),
        -1);
    bus_ = std::make_unique<PciBus>(&sys_, &clock_, system_root_, io_root_,
                                    system_root_);
    bus_->SetIntxSink(&irq_, [](uint8_t devfn, int pin) {
      return 16 + ((devfn >> 3) + pin - 1) % 4;
    });
    ports_ = std::make_unique<PciConfigPorts>(bus_.get());
    ecam_ = std::make_unique<PciEcam>(bus_.get());
    io_root_->AddSubregion(
        kPciConfigAddressPort,
        memory::MemoryRegion::CreateMmio(&sys_, "pci-conf", kPciConfigPortsSize,
                                         ports_.get()));
    system_root_->AddSubregion(
        kBenchEcamBase, memory::MemoryRegion::CreateMmio(
                            &sys_, "pcie-mmcfg", kPciEcamSize, ecam_.get()));
    system_as_ =
        std::make_unique<memory::AddressSpace>(&sys_, system_root_, "memory");
    io_as_ = std::make_unique<memory::AddressSpace>(&sys_, io_root_, "I/O");
  }
  ~PciTestBench() { bus_.reset(); }

  FakePciDevice* PlugFake(std::optional<uint8_t> devfn,
                          FakePciOptions options = {}) {
    absl::StatusOr<PciDevice*> dev =
        bus_->Plug(std::make_unique<FakePciDevice>(std::move(options)), devfn);
    EXPECT_TRUE(dev.ok()) << dev.status();
    return dev.ok() ? static_cast<FakePciDevice*>(*dev) : nullptr;
  }

  uint32_t Cfg(uint8_t devfn, uint32_t off, unsigned size = 4) {
    return bus_->ConfigRead(devfn, off, size);
  }
  void SetCfg(uint8_t devfn, uint32_t off, uint32_t v, unsigned size = 4) {
    bus_->ConfigWrite(devfn, off, v, size);
  }

  // One `size`-byte access in the I/O or memory space.
  uint64_t In(uint64_t port, unsigned size) {
    uint64_t v = 0;
    EXPECT_TRUE(io_as_->Read(port, &v, size).ok());
    return v;
  }
  void Out(uint64_t port, uint64_t v, unsigned size) {
    EXPECT_TRUE(io_as_->Write(port, &v, size).ok());
  }
  memory::MemTxResult MemRead(uint64_t addr, uint64_t* v, unsigned size) {
    *v = 0;
    return system_as_->Read(addr, v, size);
  }
  memory::MemTxResult MemWrite(uint64_t addr, uint64_t v, unsigned size) {
    return system_as_->Write(addr, &v, size);
  }

  memory::MemorySystem& sys() { return sys_; }
  PciBus& bus() { return *bus_; }
  MsiController& msi() { return msi_; }
  RecordingIrqSink& irq() { return irq_; }
  VirtualClock& clock() { return clock_; }
  memory::MemoryRegion* ram() { return ram_.get(); }
  memory::AddressSpace& system_as() { return *system_as_; }
  memory::AddressSpace& io_as() { return *io_as_; }

 private:
  memory::MemorySystem sys_;
  VirtualClock clock_;
  MsiController msi_;
  RecordingIrqSink irq_;
  std::shared_ptr<memory::MemoryRegion> ram_;
  std::shared_ptr<memory::MemoryRegion> system_root_;
  std::shared_ptr<memory::MemoryRegion> io_root_;
  std::unique_ptr<PciBus> bus_;
  std::unique_ptr<PciConfigPorts> ports_;
  std::unique_ptr<PciEcam> ecam_;
  std::unique_ptr<memory::AddressSpace> system_as_;
  std::unique_ptr<memory::AddressSpace> io_as_;
};

}  // namespace viommu::hw::pci::testing

#endif  // VIOMMU_TESTS_HW_PCI_FAKE_PCI_DEVICE_H_
