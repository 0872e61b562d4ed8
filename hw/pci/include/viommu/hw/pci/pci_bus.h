// viommu/hw/pci/pci_bus.h — PCI bus 0 (QEMU's PCIBus of the q35 host):
// 256 device/function slots, the memory and I/O spaces BARs are mapped
// into, the DMA root each device's bus-master space aliases (the vIOMMU's,
// hw/core/viommu.h, or system memory), INTx routing, and configuration
// access by devfn.
//
//   PciBus bus(&sys, &clock, system_root, io_root, system_root);
//   bus.SetIntxSink(&gsi, [](uint8_t devfn, int pin) { return 16 + pin; });
//   VIOMMU_ASSIGN_OR_RETURN(PciDevice* edu,
//                           bus.Plug(std::make_unique<Edu>(), std::nullopt));
//   uint32_t id = bus.ConfigRead(edu->devfn(), kCfgVendorId, 4);
//
// Semantics (QEMU's hw/pci/pci.c and pci_host.c):
//  * Plug without a devfn takes function 0 of the lowest slot from 1 up
//    whose function 0 is free. The device's DMA root is asked of the
//    vIOMMU at plug time (QEMU's pci_device_iommu_address_space at
//    realize), so SetIommu affects devices plugged afterwards.
//  * Config reads of an absent function, or beyond a function's config
//    space, return all-ones (of the access size); such writes are dropped.
//
// Ownership: the bus owns its devices. Devices are unrealized and detached
// (BARs unmapped) when the bus is destroyed, in descending devfn order.
// Threading: control context only.
#ifndef VIOMMU_HW_PCI_PCI_BUS_H_
#define VIOMMU_HW_PCI_PCI_BUS_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "viommu/devcore/host_iommu_device.h"
#include "viommu/hw/core/irq.h"
#include "viommu/hw/core/viommu.h"
#include "viommu/hw/core/virtual_clock.h"
#include "viommu/hw/pci/pci_device.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::hw::pci {

class PciBus {
 public:
  // The sink line for INTx `pin` (1 = INTA# .. 4 = INTD#) of `devfn`.
  using IntxRouteFn = std::function<int(uint8_t devfn, int pin)>;

  // `memory`, `clock`: not owned, outlive the bus. `memory_space_root`:
  // where memory BARs are mapped (priority 1, as QEMU); `io_space_root`:
  // where I/O BARs are mapped; `default_dma_root`: what devices reach by
  // DMA when no IOMMU claims them (system memory).
  PciBus(memory::MemorySystem* memory, VirtualClock* clock,
         std::shared_ptr<memory::MemoryRegion> memory_space_root,
         std::shared_ptr<memory::MemoryRegion> io_space_root,
         std::shared_ptr<memory::MemoryRegion> default_dma_root);
  PciBus(const PciBus&) = delete;
  PciBus& operator=(const PciBus&) = delete;
  ~PciBus();

  // QEMU's pci_setup_iommu: the vIOMMU that gives devices plugged from
  // now on their DMA roots, and takes passthrough functions' host IOMMU
  // facts (nullptr: none; devices reach the default DMA root). Not owned;
  // it outlives the bus or is replaced first.
  void SetIommu(Viommu* iommu) { iommu_ = iommu; }
  Viommu* iommu() const { return iommu_; }
  // Hands `hiod` for the function at `devfn` to the vIOMMU (QEMU's
  // pci_device_set_iommu_device). OK when there is none. Errors: the
  // vIOMMU's (e.g. kFailedPrecondition, kInvalidArgument naming the
  // device and the offending property).
  [[nodiscard]] absl::Status SetIommuDevice(
      uint8_t devfn, const devcore::HostIommuDevice& hiod);
  // Forgets it (no-op without a hook or when none was set).
  void UnsetIommuDevice(uint8_t devfn);
  // Connects every device's INTx pin, present and future, to
  // sink->SetIrq(route(devfn, pin), level). `sink` is not owned and must
  // outlive the bus (or be replaced); nullptr disconnects.
  void SetIntxSink(IrqSink* sink, IntxRouteFn route);

  // Attaches `device` at `devfn` (or the lowest free slot from 1 up,
  // function 0) and realizes it.
  // Errors: kAlreadyExists (devfn in use), kResourceExhausted (no free
  // slot), or the device's Realize() error; on error nothing stays
  // attached (the device is destroyed).
  [[nodiscard]] absl::StatusOr<PciDevice*> Plug(
      std::unique_ptr<PciDevice> device, std::optional<uint8_t> devfn);
  // Unrealizes and detaches the device at `devfn` (INTx lowered, BARs
  // unmapped, DMA space gone) and hands it back.
  // Errors: kNotFound (no device there).
  [[nodiscard]] absl::StatusOr<std::unique_ptr<PciDevice>> Unplug(
      uint8_t devfn);

  PciDevice* Find(uint8_t devfn) const { return devices_[devfn].get(); }
  // The device with qdev id `id`; nullptr if none or `id` is empty.
  PciDevice* FindById(std::string_view id) const;
  // Calls fn(PciDevice*) for every device in ascending devfn order. `fn`
  // must not plug or unplug.
  template <typename Fn>
  void ForEachDevice(Fn&& fn) const {
    for (const auto& dev : devices_) {
      if (dev != nullptr) fn(dev.get());
    }
  }

  // Configuration access to function `devfn` at `offset`, `size` 1, 2 or
  // 4 bytes, little-endian, within min(limit, the function's config
  // size) (QEMU's pci_host_config_{read,write}_common: an access that
  // starts inside and runs past the limit is shortened). Absent function
  // or offset at/after the limit: reads all-ones, writes are dropped.
  uint32_t ConfigRead(uint8_t devfn, uint32_t offset, unsigned size,
                      uint32_t limit = kConfigSpaceSize);
  void ConfigWrite(uint8_t devfn, uint32_t offset, uint32_t value,
                   unsigned size, uint32_t limit = kConfigSpaceSize);

  // System reset: resets every device, in ascending devfn order.
  void Reset();

  uint8_t bus_number() const { return 0; }
  memory::MemorySystem* memory_system() const { return memory_; }
  VirtualClock* clock() const { return clock_; }
  memory::MemoryRegion* memory_space() const { return memory_space_.get(); }
  memory::MemoryRegion* io_space() const { return io_space_.get(); }
  // The DMA root a device plugged at `devfn` now would get.
  std::shared_ptr<memory::MemoryRegion> DmaRootFor(uint8_t devfn);

 private:
  std::optional<uint8_t> FindFreeSlot() const;
  void Remove(uint8_t devfn);  // Unrealize + Detach, keeps the object
  void WireIntx(PciDevice* device);

  memory::MemorySystem* memory_;  // not owned
  VirtualClock* clock_;           // not owned
  std::shared_ptr<memory::MemoryRegion> memory_space_;
  std::shared_ptr<memory::MemoryRegion> io_space_;
  std::shared_ptr<memory::MemoryRegion> default_dma_root_;
  Viommu* iommu_ = nullptr;  // not owned
  IrqSink* intx_sink_ = nullptr;  // not owned
  IntxRouteFn intx_route_;
  std::array<std::unique_ptr<PciDevice>, 256> devices_;
};

}  // namespace viommu::hw::pci

#endif  // VIOMMU_HW_PCI_PCI_BUS_H_
