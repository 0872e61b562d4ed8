// viommu/hw/pci/pci_host.h — the q35 host bridge function (QEMU's "mch",
// 8086:29c0 at 00.0) and, for convenience, the two ways to reach
// configuration space it provides: the CF8/CFC ports (pci_config_ports.h)
// and ECAM (pci_ecam.h).
//
//   bus.Plug(std::make_unique<Q35HostBridge>(), /*devfn=*/0);
//   PciConfigPorts ports(&bus);   // map at I/O 0xcf8, size 8
//   PciEcam ecam(&bus);           // map at 0xb0000000, size 256 MiB
//
// The bridge models identification only (vendor, device, class 0x060000,
// revision 0): none of the MCH's chipset registers (PCIEXBAR, PAM, SMRAM).
// It cannot be hot-unplugged.
//
// Threading: control context only.
#ifndef VIOMMU_HW_PCI_PCI_HOST_H_
#define VIOMMU_HW_PCI_PCI_HOST_H_

#include "viommu/hw/pci/pci_config_ports.h"
#include "viommu/hw/pci/pci_device.h"
#include "viommu/hw/pci/pci_ecam.h"

namespace viommu::hw::pci {

inline constexpr uint16_t kQ35HostVendorId = 0x8086;
inline constexpr uint16_t kQ35HostDeviceId = 0x29c0;
inline constexpr uint32_t kQ35HostClass = 0x060000;  // host bridge

class Q35HostBridge final : public PciDevice {
 public:
  Q35HostBridge();
  bool hotpluggable() const override { return false; }
};

}  // namespace viommu::hw::pci

#endif  // VIOMMU_HW_PCI_PCI_HOST_H_
