// The q35 host bridge function (QEMU's hw/pci-host/q35.c, mch_class_init).
#include "viommu/hw/pci/pci_host.h"

#include <cstring>

namespace viommu::hw::pci {

Q35HostBridge::Q35HostBridge()
    : PciDevice("mch", {.vendor_id = kQ35HostVendorId,
                        .device_id = kQ35HostDeviceId,
                        .revision = 0,  // MCH_HOST_BRIDGE_REVISION_DEFAULT
                        .class_code = kQ35HostClass}) {}

PciexbarDecode DecodePciexbar(uint64_t value) {
  PciexbarDecode d;
  d.enabled = value & 1;
  // Base bits 35:28, 35:27 or 35:26 for 256, 128 or 64 MiB.
  constexpr uint64_t kBaseBits = 0xf'ffff'ffffull;
  switch ((value >> 1) & 3) {
    case 0:
      d.window = {value & kBaseBits & ~((uint64_t{1} << 28) - 1), 256 << 20};
      break;
    case 1:
      d.window = {value & kBaseBits & ~((uint64_t{1} << 27) - 1), 128 << 20};
      break;
    case 2:
      d.window = {value & kBaseBits & ~((uint64_t{1} << 26) - 1), 64 << 20};
      break;
    default:
      d.reserved_length = true;
      break;
  }
  return d;
}

uint64_t Q35HostBridge::pciexbar() {
  return ConfigRead(kMchPciexbar, 4) | uint64_t{ConfigRead(kMchPciexbar + 4, 4)}
                                           << 32;
}

absl::Status Q35HostBridge::Realize() {
  const uint64_t v = kMchPciexbarDefault;
  std::memcpy(config() + kMchPciexbar, &v, sizeof(v));
  std::memset(wmask() + kMchPciexbar, 0xff, sizeof(v));
  return absl::OkStatus();
}

void Q35HostBridge::Reset() {
  PciDevice::Reset();
  const uint64_t v = kMchPciexbarDefault;
  std::memcpy(config() + kMchPciexbar, &v, sizeof(v));
  if (pciexbar_observer_) pciexbar_observer_(v);
}

void Q35HostBridge::ConfigWritten(uint32_t offset, unsigned size) {
  if (offset < kMchPciexbar + 8 && offset + size > kMchPciexbar &&
      pciexbar_observer_) {
    pciexbar_observer_(pciexbar());
  }
}

}  // namespace viommu::hw::pci
