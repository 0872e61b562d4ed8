// hw/i386/ich9_functions.h — the ICH9 functions QEMU's q35 always creates
// (LPC bridge 1f.0, AHCI 1f.2, SMBus 1f.3), modelled as identification only
// so that a guest enumerating bus 0 sees the same functions as on QEMU.
// They have no BARs and do nothing; they are not hot-pluggable.
#ifndef VIOMMU_HW_I386_ICH9_FUNCTIONS_H_
#define VIOMMU_HW_I386_ICH9_FUNCTIONS_H_

#include <memory>

#include "viommu/hw/pci/pci_device.h"

namespace viommu::hw {

class Ich9Function final : public pci::PciDevice {
 public:
  static std::unique_ptr<Ich9Function> Lpc();
  static std::unique_ptr<Ich9Function> Ahci();
  static std::unique_ptr<Ich9Function> Smbus();
  bool hotpluggable() const override { return false; }

 private:
  Ich9Function(std::string type_name, const pci::PciDeviceInfo& info)
      : PciDevice(std::move(type_name), info) {}
};

}  // namespace viommu::hw

#endif  // VIOMMU_HW_I386_ICH9_FUNCTIONS_H_
