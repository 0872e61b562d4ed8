#include "hw/i386/device_factory.h"

#include "absl/strings/str_cat.h"
#include "viommu/hw/misc/dma_test_device.h"
#include "viommu/hw/misc/edu.h"
#include "viommu/util/status_macros.h"

namespace viommu::hw {

absl::StatusOr<std::unique_ptr<pci::PciDevice>> CreatePciDevice(
    absl::string_view driver, const DeviceProps& props) {
  if (driver == "edu") {
    VIOMMU_ASSIGN_OR_RETURN(auto edu, misc::Edu::CreateFromProperties(props));
    return std::unique_ptr<pci::PciDevice>(std::move(edu));
  }
  if (driver == "dma-testdev") {
    VIOMMU_ASSIGN_OR_RETURN(auto dev,
                            misc::DmaTestDevice::CreateFromProperties(props));
    return std::unique_ptr<pci::PciDevice>(std::move(dev));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'", driver, "' is not a valid device model name"));
}

}  // namespace viommu::hw
