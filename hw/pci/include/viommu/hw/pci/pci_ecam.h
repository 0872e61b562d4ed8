// viommu/hw/pci/pci_ecam.h — PCI Express enhanced configuration access
// (MMCONFIG): 256 MiB of MMIO where offset = bus << 20 | devfn << 12 | reg.
//
//   PciEcam ecam(&bus);
//   root->AddSubregion(0xb0000000, MemoryRegion::CreateMmio(
//       &sys, "pcie-mmcfg", kPciEcamSize, &ecam));
//
// Semantics (QEMU's pcie_mmcfg_data_{read,write}, little-endian): 1, 2 or
// 4-byte naturally aligned accesses reach register `reg` of the function
// within its config size (256 bytes for conventional functions); an
// absent function, another bus than 0, or a register past the config size
// reads all-ones, and writes there are dropped.
//
// Threading: control context only.
#ifndef VIOMMU_HW_PCI_PCI_ECAM_H_
#define VIOMMU_HW_PCI_PCI_ECAM_H_

#include <cstdint>

#include "viommu/memory/mem_tx.h"
#include "viommu/memory/mmio_ops.h"

namespace viommu::hw::pci {

class PciBus;

inline constexpr uint64_t kPciEcamSize = uint64_t{256} << 20;

class PciEcam final : public memory::MmioOps {
 public:
  // `bus` is not owned and must outlive this.
  explicit PciEcam(PciBus* bus) : bus_(bus) {}

  memory::MemTxResult Read(uint64_t offset, uint64_t* value, unsigned size,
                           memory::MemTxAttrs attrs) override;
  memory::MemTxResult Write(uint64_t offset, uint64_t value, unsigned size,
                            memory::MemTxAttrs attrs) override;

 private:
  PciBus* bus_;  // not owned
};

}  // namespace viommu::hw::pci

#endif  // VIOMMU_HW_PCI_PCI_ECAM_H_
