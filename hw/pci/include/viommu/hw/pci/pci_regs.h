// viommu/hw/pci/pci_regs.h — type-0 configuration-space offsets and bits
// (PCI Local Bus spec 3.0 §6), named after the spec / Linux pci_regs.h, as
// hw::pci names: they are defined once in devcore/include/viommu/devcore/
// pci_config_regs.h (with ApplyConfigWrite), shared with vfio/host/model.
//
//   uint16_t cmd = dev->ConfigRead(kCfgCommand, 2);
//   dev->ConfigWrite(kCfgCommand, cmd | kCommandMemory | kCommandMaster, 2);
#ifndef VIOMMU_HW_PCI_PCI_REGS_H_
#define VIOMMU_HW_PCI_PCI_REGS_H_

#include <cstdint>

#include "viommu/devcore/pci_config_regs.h"

namespace viommu::hw::pci {

// One definition of the layout, shared with the simulated host devices.
using namespace ::viommu::devcore::pci_regs;  // NOLINT(build/namespaces)

}  // namespace viommu::hw::pci

#endif  // VIOMMU_HW_PCI_PCI_REGS_H_
