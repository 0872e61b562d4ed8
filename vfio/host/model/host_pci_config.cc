#include "vfio/host/model/host_pci_config.h"

#include "viommu/util/check.h"
#include "viommu/util/le_bytes.h"

namespace viommu::vfio::model {

using namespace pcicfg;  // NOLINT: register names read best unqualified

HostPciConfig::HostPciConfig(const HostDeviceDesc& desc, uint64_t bar0_size) {
  // Identity (edu: revision 0x10, class 0x00ff00 "unclassified/other", the
  // QEMU default subsystem ids it carries).
  Store(kCfgVendorId, desc.vendor_id, 2, &bytes_);
  Store(kCfgDeviceId, desc.device_id, 2, &bytes_);
  Store(kCfgRevision, 0x10, 1, &bytes_);
  Store(kCfgClassProg, 0x00ff00, 3, &bytes_);
  Store(kCfgHeaderType, 0x00, 1, &bytes_);
  Store(kCfgSubsystemVendorId, 0x1af4, 2, &bytes_);
  Store(kCfgSubsystemId, 0x1100, 2, &bytes_);
  Store(kCfgInterruptPin, 1, 1, &bytes_);  // INTA#
  // vfio-pci's open enables the device (pci_enable_device): memory decode
  // on, bus mastering left to the user.
  Store(kCfgCommand, kCommandMemory, 2, &bytes_);
  Store(kCfgStatus, kStatusCapList, 2, &bytes_);
  Store(kCfgCapabilityList, kMsiCap, 1, &bytes_);

  Store(kCfgCommand,
        kCommandIo | kCommandMemory | kCommandMaster | kCommandParity |
            kCommandSerr | kCommandIntxDisable,
        2, &wmask_);
  Store(kCfgStatus, kStatusW1cBits, 2, &w1c_);
  Store(kCfgCacheLineSize, 0xff, 1, &wmask_);
  Store(kCfgLatencyTimer, 0xff, 1, &wmask_);
  Store(kCfgInterruptLine, 0xff, 1, &wmask_);

  // BAR0: 32-bit non-prefetchable memory of bar0_size bytes.
  VIOMMU_CHECK(bar0_size >= 16 && (bar0_size & (bar0_size - 1)) == 0 &&
               bar0_size <= (uint64_t{1} << 31));
  Store(kCfgBar0, static_cast<uint32_t>(~(bar0_size - 1)) & ~0xfu, 4, &wmask_);
  // BAR2/BAR3: 64-bit prefetchable memory of bar2_size bytes.
  const uint64_t bar2_mask = ~(desc.bar2_size - 1) & ~uint64_t{0xf};
  Store(kCfgBar2, kBarMemType64 | kBarMemPrefetch, 4, &bytes_);
  Store(kCfgBar2, static_cast<uint32_t>(bar2_mask), 4, &wmask_);
  Store(kCfgBar3, static_cast<uint32_t>(bar2_mask >> 32), 4, &wmask_);

  // MSI: 64-bit address, one vector capable, no per-vector masking. The
  // enable bit is the device's (set_msi_enable); the rest is writable as
  // the spec says.
  Store(kMsiCap, kCapIdMsi, 1, &bytes_);
  Store(kMsiCapFlags, kMsiFlags64Bit, 2, &bytes_);
  Store(kMsiCapFlags, kMsiFlagsQsize, 2, &wmask_);
  Store(kMsiCapAddressLo, 0xfffffffc, 4, &wmask_);
  Store(kMsiCapAddressHi, 0xffffffff, 4, &wmask_);
  Store(kMsiCapData, 0xffff, 2, &wmask_);
}

void HostPciConfig::Store(uint32_t offset, uint32_t value, unsigned size,
                          std::array<uint8_t, kSize>* where) {
  StoreLe(where->data() + offset, value, size);
}

uint32_t HostPciConfig::Read(uint32_t offset, unsigned size) const {
  VIOMMU_CHECK(size >= 1 && size <= 4 && offset + size <= kSize);
  return static_cast<uint32_t>(LoadLe(bytes_.data() + offset, size));
}

void HostPciConfig::Write(uint32_t offset, uint32_t value, unsigned size) {
  VIOMMU_CHECK(size >= 1 && size <= 4 && offset + size <= kSize);
  ApplyConfigWrite(bytes_.data(), wmask_.data(), w1c_.data(), offset, value,
                   size);
  // MSI: an enabled vector count above the capable one (1) reads back as 1.
  const uint16_t flags = Load16(kMsiCapFlags);
  if (flags & kMsiFlagsQsize) {
    Store(kMsiCapFlags, flags & ~kMsiFlagsQsize, 2, &bytes_);
  }
}

void HostPciConfig::set_intx_status(bool asserted) {
  const uint16_t status = Load16(kCfgStatus);
  Store(kCfgStatus,
        asserted ? (status | kStatusInterrupt) : (status & ~kStatusInterrupt),
        2, &bytes_);
}

void HostPciConfig::set_msi_enable(bool on) {
  const uint16_t flags = Load16(kMsiCapFlags);
  Store(kMsiCapFlags,
        on ? (flags | kMsiFlagsEnable) : (flags & ~kMsiFlagsEnable), 2,
        &bytes_);
}

}  // namespace viommu::vfio::model
