// ECAM configuration access (QEMU's hw/pci/pcie_host.c).
#include "viommu/hw/pci/pci_ecam.h"

#include <algorithm>

#include "viommu/hw/pci/pci_bus.h"
#include "viommu/util/le_bytes.h"

namespace viommu::hw::pci {

using memory::MemTxAttrs;
using memory::MemTxResult;

MemTxResult PciEcam::Read(uint64_t offset, uint64_t* value, unsigned size,
                          MemTxAttrs /*attrs*/) {
  const uint8_t bus = static_cast<uint8_t>(offset >> 20);
  const uint8_t devfn = static_cast<uint8_t>(offset >> 12);
  const uint32_t reg = static_cast<uint32_t>(offset & 0xfff);
  const uint64_t mask = AllOnes(std::min(size, 4u));  // 32-bit config data
  if (bus != bus_->bus_number()) {
    *value = mask;
    return MemTxResult::Ok();
  }
  *value = bus_->ConfigRead(devfn, reg, size) & mask;
  return MemTxResult::Ok();
}

MemTxResult PciEcam::Write(uint64_t offset, uint64_t value, unsigned size,
                           MemTxAttrs /*attrs*/) {
  const uint8_t bus = static_cast<uint8_t>(offset >> 20);
  if (bus != bus_->bus_number()) return MemTxResult::Ok();
  bus_->ConfigWrite(static_cast<uint8_t>(offset >> 12),
                    static_cast<uint32_t>(offset & 0xfff),
                    static_cast<uint32_t>(value), size);
  return MemTxResult::Ok();
}

}  // namespace viommu::hw::pci
