// viommu/hw/pci/pci_host.h — the q35 host bridge function (QEMU's "mch",
// 8086:29c0 at 00.0) and, for convenience, the two ways to reach
// configuration space it provides: the CF8/CFC ports (pci_config_ports.h)
// and ECAM (pci_ecam.h).
//
//   bus.Plug(std::make_unique<Q35HostBridge>(), /*devfn=*/0);
//   PciConfigPorts ports(&bus);   // map at I/O 0xcf8, size 8
//   PciEcam ecam(&bus);           // map at 0xb0000000, size 256 MiB
//
// The bridge models identification (vendor, device, class 0x060000,
// revision 0) and PCIEXBAR (config 0x60, 64 bits, all writable, default
// 0xb0000000 with the enable bit clear), whose changes it reports to the
// machine, which maps ECAM accordingly (decode with DecodePciexbar). Other
// MCH chipset registers (PAM, SMRAM) are not modelled. It cannot be
// hot-unplugged.
//
// Threading: control context only.
#ifndef VIOMMU_HW_PCI_PCI_HOST_H_
#define VIOMMU_HW_PCI_PCI_HOST_H_

#include <functional>

#include "viommu/hw/pci/pci_config_ports.h"
#include "viommu/hw/pci/pci_device.h"
#include "viommu/hw/pci/pci_ecam.h"

namespace viommu::hw::pci {

inline constexpr uint16_t kQ35HostVendorId = 0x8086;
inline constexpr uint16_t kQ35HostDeviceId = 0x29c0;
inline constexpr uint32_t kQ35HostClass = 0x060000;  // host bridge

inline constexpr uint32_t kMchPciexbar = 0x60;
inline constexpr uint64_t kMchPciexbarDefault = 0xb000'0000;

// The ECAM window PCIEXBAR selects; nullopt when disabled. A reserved
// length encoding (3) gives nullopt in `known`: QEMU keeps the previous
// window then.
struct PciexbarWindow {
  uint64_t base = 0;
  uint64_t size = 0;
};
struct PciexbarDecode {
  bool enabled = false;
  bool reserved_length = false;
  PciexbarWindow window;
};
PciexbarDecode DecodePciexbar(uint64_t value);

class Q35HostBridge final : public PciDevice {
 public:
  Q35HostBridge();
  bool hotpluggable() const override { return false; }
  void Reset() override;

  uint64_t pciexbar();
  // Called with the new PCIEXBAR value whenever a config write or reset
  // changes it.
  void set_pciexbar_observer(std::function<void(uint64_t)> fn) {
    pciexbar_observer_ = std::move(fn);
  }

 protected:
  [[nodiscard]] absl::Status Realize() override;
  void ConfigWritten(uint32_t offset, unsigned size) override;

 private:
  std::function<void(uint64_t)> pciexbar_observer_;
};

}  // namespace viommu::hw::pci

#endif  // VIOMMU_HW_PCI_PCI_HOST_H_
