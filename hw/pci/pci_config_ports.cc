// CF8/CFC configuration access (QEMU's hw/pci/pci_host.c).
#include "viommu/hw/pci/pci_config_ports.h"

#include <algorithm>

#include "viommu/hw/pci/pci_bus.h"
#include "viommu/util/le_bytes.h"

namespace viommu::hw::pci {
namespace {

using memory::MemTxAttrs;
using memory::MemTxResult;

constexpr uint32_t kConfigAddressEnable = 1u << 31;
constexpr uint64_t kDataOffset = kPciConfigDataPort - kPciConfigAddressPort;

uint8_t BusOf(uint32_t addr) { return static_cast<uint8_t>(addr >> 16); }
uint8_t DevfnOf(uint32_t addr) { return static_cast<uint8_t>(addr >> 8); }

}  // namespace

MemTxResult PciConfigPorts::Read(uint64_t offset, uint64_t* value,
                                 unsigned size, MemTxAttrs /*attrs*/) {
  const uint64_t mask = AllOnes(std::min(size, 4u));  // 32-bit registers
  if (offset < kDataOffset) {
    *value = config_address_ & mask;
    return MemTxResult::Ok();
  }
  if (!(config_address_ & kConfigAddressEnable)) {
    *value = mask;
    return MemTxResult::Ok();
  }
  const uint32_t addr =
      config_address_ | static_cast<uint32_t>(offset - kDataOffset);
  if (BusOf(addr) != bus_->bus_number()) {
    *value = mask;
    return MemTxResult::Ok();
  }
  *value = bus_->ConfigRead(DevfnOf(addr), addr & 0xff, size,
                            kConventionalConfigSize) &
           mask;
  return MemTxResult::Ok();
}

MemTxResult PciConfigPorts::Write(uint64_t offset, uint64_t value,
                                  unsigned size, MemTxAttrs /*attrs*/) {
  if (offset < kDataOffset) {
    if (offset == 0 && size == 4) {
      config_address_ = static_cast<uint32_t>(value);
    }
    return MemTxResult::Ok();
  }
  if (!(config_address_ & kConfigAddressEnable)) return MemTxResult::Ok();
  const uint32_t addr =
      config_address_ | static_cast<uint32_t>(offset - kDataOffset);
  if (BusOf(addr) != bus_->bus_number()) return MemTxResult::Ok();
  bus_->ConfigWrite(DevfnOf(addr), addr & 0xff, static_cast<uint32_t>(value),
                    size, kConventionalConfigSize);
  return MemTxResult::Ok();
}

}  // namespace viommu::hw::pci
