#include "vfio/host/model/host_pci_config.h"

#include "viommu/util/check.h"

namespace viommu::vfio::model {

using namespace pcicfg;  // NOLINT: register names read best unqualified

HostPciConfig::HostPciConfig(const HostDeviceDesc& desc, uint64_t bar0_size) {
  // Identity (edu: revision 0x10, class 0x00ff00 "unclassified/other", the
  // QEMU default subsystem ids it carries).
  Store(kVendorId, desc.vendor_id, 2, &bytes_);
  Store(kDeviceId, desc.device_id, 2, &bytes_);
  Store(kRevision, 0x10, 1, &bytes_);
  Store(kClassProg, 0x00ff00, 3, &bytes_);
  Store(kHeaderType, 0x00, 1, &bytes_);
  Store(kSubsystemVendorId, 0x1af4, 2, &bytes_);
  Store(kSubsystemId, 0x1100, 2, &bytes_);
  Store(kInterruptPin, 1, 1, &bytes_);  // INTA#
  // vfio-pci's open enables the device (pci_enable_device): memory decode
  // on, bus mastering left to the user.
  Store(kCommand, kCommandMemory, 2, &bytes_);
  Store(kStatus, kStatusCapList, 2, &bytes_);
  Store(kCapabilityList, kMsiCap, 1, &bytes_);

  Store(kCommand,
        kCommandIo | kCommandMemory | kCommandMaster | kCommandParity |
            kCommandSerr | kCommandIntxDisable,
        2, &wmask_);
  Store(kStatus, kStatusW1c, 2, &w1c_);
  Store(kCacheLineSize, 0xff, 1, &wmask_);
  Store(kLatencyTimer, 0xff, 1, &wmask_);
  Store(kInterruptLine, 0xff, 1, &wmask_);

  // BAR0: 32-bit non-prefetchable memory of bar0_size bytes.
  VIOMMU_CHECK(bar0_size >= 16 && (bar0_size & (bar0_size - 1)) == 0 &&
               bar0_size <= (uint64_t{1} << 31));
  Store(kBar0, static_cast<uint32_t>(~(bar0_size - 1)) & ~0xfu, 4, &wmask_);
  // BAR2/BAR3: 64-bit prefetchable memory of bar2_size bytes.
  const uint64_t bar2_mask = ~(desc.bar2_size - 1) & ~uint64_t{0xf};
  Store(kBar2, kBarMem64 | kBarPrefetch, 4, &bytes_);
  Store(kBar2, static_cast<uint32_t>(bar2_mask), 4, &wmask_);
  Store(kBar3, static_cast<uint32_t>(bar2_mask >> 32), 4, &wmask_);

  // MSI: 64-bit address, one vector capable, no per-vector masking. The
  // enable bit is the device's (set_msi_enable); the rest is writable as
  // the spec says.
  Store(kMsiCap, kCapIdMsi, 1, &bytes_);
  Store(kMsiFlags, kMsiFlags64Bit, 2, &bytes_);
  Store(kMsiFlags, kMsiFlagsQsize, 2, &wmask_);
  Store(kMsiAddressLo, 0xfffffffc, 4, &wmask_);
  Store(kMsiAddressHi, 0xffffffff, 4, &wmask_);
  Store(kMsiData, 0xffff, 2, &wmask_);
}

void HostPciConfig::Store(uint32_t offset, uint32_t value, unsigned size,
                          std::array<uint8_t, kSize>* where) {
  for (unsigned i = 0; i < size; ++i) {
    (*where)[offset + i] = static_cast<uint8_t>(value >> (8 * i));
  }
}

uint32_t HostPciConfig::Read(uint32_t offset, unsigned size) const {
  VIOMMU_CHECK(size >= 1 && size <= 4 && offset + size <= kSize);
  uint32_t v = 0;
  for (unsigned i = 0; i < size; ++i) {
    v |= uint32_t{bytes_[offset + i]} << (8 * i);
  }
  return v;
}

void HostPciConfig::Write(uint32_t offset, uint32_t value, unsigned size) {
  VIOMMU_CHECK(size >= 1 && size <= 4 && offset + size <= kSize);
  for (unsigned i = 0; i < size; ++i) {
    const uint32_t at = offset + i;
    const uint8_t b = static_cast<uint8_t>(value >> (8 * i));
    bytes_[at] =
        static_cast<uint8_t>((bytes_[at] & ~wmask_[at]) | (b & wmask_[at]));
    bytes_[at] = static_cast<uint8_t>(bytes_[at] & ~(b & w1c_[at]));
  }
  // MSI: an enabled vector count above the capable one (1) reads back as 1.
  const uint16_t flags = Load16(kMsiFlags);
  if (flags & kMsiFlagsQsize) {
    Store(kMsiFlags, flags & ~kMsiFlagsQsize, 2, &bytes_);
  }
}

void HostPciConfig::set_intx_status(bool asserted) {
  const uint16_t status = Load16(kStatus);
  Store(kStatus,
        asserted ? (status | kStatusInterrupt) : (status & ~kStatusInterrupt),
        2, &bytes_);
}

void HostPciConfig::set_msi_enable(bool on) {
  const uint16_t flags = Load16(kMsiFlags);
  Store(kMsiFlags, on ? (flags | kMsiFlagsEnable) : (flags & ~kMsiFlagsEnable),
        2, &bytes_);
}

}  // namespace viommu::vfio::model
