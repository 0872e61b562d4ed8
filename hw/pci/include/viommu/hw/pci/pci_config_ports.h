// viommu/hw/pci/pci_config_ports.h — configuration mechanism #1: the
// CONFIG_ADDRESS (0xcf8) and CONFIG_DATA (0xcfc) I/O ports of the host
// bridge, as one 8-byte MMIO region of the I/O space.
//
//   PciConfigPorts ports(&bus);
//   io_root->AddSubregion(0xcf8, MemoryRegion::CreateMmio(
//       &sys, "pci-conf", 8, &ports));
//   // outl 0xcf8 0x80002000 ; inl 0xcfc  -> vendor/device of 04.0
//
// Semantics (QEMU's pci_host_config_{read,write} and
// pci_host_data_{read,write}, little-endian):
//  * CONFIG_ADDRESS (offsets 0..3): only a 4-byte write at 0xcf8 latches
//    it; any read returns the latched value (truncated to the access
//    size, without shifting, as QEMU does). Bit 31 enable, bits 23:16 bus,
//    15:8 devfn, 7:0 register.
//  * CONFIG_DATA (offsets 4..7, 1/2/4 bytes, naturally aligned): with the
//    enable bit clear, reads return all-ones and writes are dropped;
//    otherwise the access goes to register (CONFIG_ADDRESS | (port & 3)) &
//    0xff of that function, within its first 256 bytes. Only bus 0 exists:
//    other buses read all-ones.
//
// Threading: control context only.
#ifndef VIOMMU_HW_PCI_PCI_CONFIG_PORTS_H_
#define VIOMMU_HW_PCI_PCI_CONFIG_PORTS_H_

#include <cstdint>

#include "viommu/memory/mem_tx.h"
#include "viommu/memory/mmio_ops.h"

namespace viommu::hw::pci {

class PciBus;

inline constexpr uint64_t kPciConfigAddressPort = 0xcf8;
inline constexpr uint64_t kPciConfigDataPort = 0xcfc;
inline constexpr uint64_t kPciConfigPortsSize = 8;

class PciConfigPorts final : public memory::MmioOps {
 public:
  // `bus` is not owned and must outlive this.
  explicit PciConfigPorts(PciBus* bus) : bus_(bus) {}

  uint32_t config_address() const { return config_address_; }
  // Forgets the latched address (system reset).
  void Reset() { config_address_ = 0; }

  memory::MemTxResult Read(uint64_t offset, uint64_t* value, unsigned size,
                           memory::MemTxAttrs attrs) override;
  memory::MemTxResult Write(uint64_t offset, uint64_t value, unsigned size,
                            memory::MemTxAttrs attrs) override;

 private:
  PciBus* bus_;  // not owned
  uint32_t config_address_ = 0;
};

}  // namespace viommu::hw::pci

#endif  // VIOMMU_HW_PCI_PCI_CONFIG_PORTS_H_
