// The q35 host bridge function (QEMU's hw/pci-host/q35.c, mch_class_init).
#include "viommu/hw/pci/pci_host.h"

namespace viommu::hw::pci {

Q35HostBridge::Q35HostBridge()
    : PciDevice("mch", {.vendor_id = kQ35HostVendorId,
                        .device_id = kQ35HostDeviceId,
                        .revision = 0,  // MCH_HOST_BRIDGE_REVISION_DEFAULT
                        .class_code = kQ35HostClass}) {}

}  // namespace viommu::hw::pci
