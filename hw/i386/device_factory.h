// hw/i386/device_factory.h — creates the PCI devices -device / device_add
// name, from their text properties (private to the machine).
//
//   auto dev = CreatePciDevice("edu", {{"dma_mask", "0xffffffff"}});
//
// Errors: kInvalidArgument "'foo' is not a valid device model name"
// (unknown driver, QEMU's text), kInvalidArgument for an unknown property
// ("Property 'edu.foo' not found") or a bad value, naming both.
#ifndef VIOMMU_HW_I386_DEVICE_FACTORY_H_
#define VIOMMU_HW_I386_DEVICE_FACTORY_H_

#include <memory>
#include <string>

#include "absl/container/btree_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "viommu/hw/pci/pci_device.h"

namespace viommu::hw {

using DeviceProps = absl::btree_map<std::string, std::string>;

[[nodiscard]] absl::StatusOr<std::unique_ptr<pci::PciDevice>> CreatePciDevice(
    absl::string_view driver, const DeviceProps& props);

}  // namespace viommu::hw

#endif  // VIOMMU_HW_I386_DEVICE_FACTORY_H_
