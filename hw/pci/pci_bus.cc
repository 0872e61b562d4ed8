// PCI bus 0: slots, plug/unplug, INTx routing, config access by devfn
// (QEMU's do_pci_register_device, pci_qdev_unrealize and
// pci_host_config_{read,write}_common).
#include "viommu/hw/pci/pci_bus.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "viommu/util/check.h"
#include "viommu/util/le_bytes.h"

namespace viommu::hw::pci {

PciBus::PciBus(memory::MemorySystem* memory, VirtualClock* clock,
               std::shared_ptr<memory::MemoryRegion> memory_space_root,
               std::shared_ptr<memory::MemoryRegion> io_space_root,
               std::shared_ptr<memory::MemoryRegion> default_dma_root)
    : memory_(memory),
      clock_(clock),
      memory_space_(std::move(memory_space_root)),
      io_space_(std::move(io_space_root)),
      default_dma_root_(std::move(default_dma_root)) {
  VIOMMU_CHECK(memory_ != nullptr && memory_space_ != nullptr &&
               io_space_ != nullptr && default_dma_root_ != nullptr);
}

PciBus::~PciBus() {
  for (int devfn = 255; devfn >= 0; --devfn) {
    if (devices_[devfn] == nullptr) continue;
    Remove(static_cast<uint8_t>(devfn));
    devices_[devfn].reset();
  }
}

absl::Status PciBus::SetIommuDevice(uint8_t devfn,
                                    const devcore::HostIommuDevice& hiod) {
  if (iommu_ == nullptr) return absl::OkStatus();
  return iommu_->SetHostIommuDevice(bus_number(), devfn, hiod);
}

void PciBus::UnsetIommuDevice(uint8_t devfn) {
  if (iommu_ != nullptr) iommu_->UnsetHostIommuDevice(bus_number(), devfn);
}

void PciBus::SetIntxSink(IrqSink* sink, IntxRouteFn route) {
  intx_sink_ = sink;
  intx_route_ = std::move(route);
  ForEachDevice([this](PciDevice* dev) { WireIntx(dev); });
}

void PciBus::WireIntx(PciDevice* device) {
  const int pin = device->info().interrupt_pin;
  if (intx_sink_ == nullptr || pin == 0 || !intx_route_) {
    device->WireIntx(nullptr, -1);
    return;
  }
  device->WireIntx(intx_sink_, intx_route_(device->devfn(), pin));
}

std::shared_ptr<memory::MemoryRegion> PciBus::DmaRootFor(uint8_t devfn) {
  if (iommu_ != nullptr) return iommu_->DmaRoot(bus_number(), devfn);
  return default_dma_root_;
}

std::optional<uint8_t> PciBus::FindFreeSlot() const {
  for (unsigned slot = 1; slot < 32; ++slot) {
    if (devices_[slot << 3] == nullptr) return static_cast<uint8_t>(slot << 3);
  }
  return std::nullopt;
}

absl::StatusOr<PciDevice*> PciBus::Plug(std::unique_ptr<PciDevice> device,
                                        std::optional<uint8_t> devfn) {
  VIOMMU_CHECK(device != nullptr && device->bus() == nullptr);
  // QEMU's do_pci_register_device messages.
  if (!devfn.has_value()) {
    devfn = FindFreeSlot();
    if (!devfn.has_value()) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "PCI: no slot/function available for %s, all in use or reserved",
          device->type_name()));
    }
  } else if (const PciDevice* other = devices_[*devfn].get()) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "PCI: slot %d function %d not available for %s, in use by %s,id=%s",
        *devfn >> 3, *devfn & 7, device->type_name(), other->type_name(),
        other->id().empty() ? "(null)" : other->id()));
  }
  const uint8_t df = *devfn;
  device->Attach(this, df, DmaRootFor(df));
  WireIntx(device.get());
  absl::Status status = device->Realize();
  if (!status.ok()) {
    device->Detach();
    return status;
  }
  device->power_on_config_ = device->config_;
  devices_[df] = std::move(device);
  return devices_[df].get();
}

void PciBus::Remove(uint8_t devfn) {
  PciDevice* dev = devices_[devfn].get();
  dev->Unrealize();
  dev->Detach();
}

absl::StatusOr<std::unique_ptr<PciDevice>> PciBus::Unplug(uint8_t devfn) {
  if (devices_[devfn] == nullptr) {
    return absl::NotFoundError(absl::StrFormat(
        "PCI: no device at slot %d function %d", devfn >> 3, devfn & 7));
  }
  Remove(devfn);
  return std::move(devices_[devfn]);
}

PciDevice* PciBus::FindById(std::string_view id) const {
  if (id.empty()) return nullptr;
  for (const auto& dev : devices_) {
    if (dev != nullptr && dev->id() == id) return dev.get();
  }
  return nullptr;
}

uint32_t PciBus::ConfigRead(uint8_t devfn, uint32_t offset, unsigned size,
                            uint32_t limit) {
  PciDevice* dev = devices_[devfn].get();
  if (dev == nullptr) return static_cast<uint32_t>(AllOnes(size));
  limit = std::min(limit, dev->config_size());
  if (offset >= limit) return static_cast<uint32_t>(AllOnes(size));
  return dev->ConfigRead(offset, std::min(size, limit - offset));
}

void PciBus::ConfigWrite(uint8_t devfn, uint32_t offset, uint32_t value,
                         unsigned size, uint32_t limit) {
  PciDevice* dev = devices_[devfn].get();
  if (dev == nullptr) return;
  limit = std::min(limit, dev->config_size());
  if (offset >= limit) return;
  dev->ConfigWrite(offset, value, std::min(size, limit - offset));
}

void PciBus::Reset() {
  ForEachDevice([](PciDevice* dev) { dev->Reset(); });
}

}  // namespace viommu::hw::pci
