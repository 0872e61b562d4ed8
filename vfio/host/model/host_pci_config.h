// vfio/host/model/host_pci_config.h (private) — the 256-byte type-0 PCI
// configuration space of a simulated host device, as the vfio-pci config
// region (index 7) shows it: the edu header (ids from HostDeviceDesc),
// COMMAND, STATUS with write-1-to-clear bits, BAR0 (32-bit memory, 1 MiB)
// and BAR2 (64-bit prefetchable memory, bar2_size) with sizing, INTA#, and
// a 64-bit single-vector MSI capability at 0x40 (edu's msi_init).
//
//   HostPciConfig cfg(desc, /*bar0_size=*/1 << 20);
//   cfg.Write(0x10, 0xffffffff, 4);          // BAR0 sizing
//   uint32_t v = cfg.Read(0x10, 4);          // 0xfff00000
//
// Byte-granular: each byte has a write mask and a write-1-to-clear mask,
// so accesses of any size and alignment inside the 256 bytes behave as a
// series of byte accesses. STATUS.INTERRUPT and MSI's enable bit belong to
// the device (set_intx_status, set_msi_enable) and are read-only here.
// Thread-safety: none; the owning device's control context.
#ifndef VIOMMU_VFIO_HOST_MODEL_HOST_PCI_CONFIG_H_
#define VIOMMU_VFIO_HOST_MODEL_HOST_PCI_CONFIG_H_

#include <array>
#include <cstdint>

#include "viommu/vfio/host/host_platform.h"

namespace viommu::vfio::model {

// Type-0 header offsets and bits (PCI Local Bus 3.0 §6.2, §6.8.1).
namespace pcicfg {
inline constexpr uint32_t kVendorId = 0x00;
inline constexpr uint32_t kDeviceId = 0x02;
inline constexpr uint32_t kCommand = 0x04;
inline constexpr uint32_t kStatus = 0x06;
inline constexpr uint32_t kRevision = 0x08;
inline constexpr uint32_t kClassProg = 0x09;
inline constexpr uint32_t kCacheLineSize = 0x0c;
inline constexpr uint32_t kLatencyTimer = 0x0d;
inline constexpr uint32_t kHeaderType = 0x0e;
inline constexpr uint32_t kBar0 = 0x10;
inline constexpr uint32_t kBar2 = 0x18;
inline constexpr uint32_t kBar3 = 0x1c;
inline constexpr uint32_t kSubsystemVendorId = 0x2c;
inline constexpr uint32_t kSubsystemId = 0x2e;
inline constexpr uint32_t kRomAddress = 0x30;
inline constexpr uint32_t kCapabilityList = 0x34;
inline constexpr uint32_t kInterruptLine = 0x3c;
inline constexpr uint32_t kInterruptPin = 0x3d;

inline constexpr uint16_t kCommandIo = 1 << 0;
inline constexpr uint16_t kCommandMemory = 1 << 1;
inline constexpr uint16_t kCommandMaster = 1 << 2;
inline constexpr uint16_t kCommandParity = 1 << 6;
inline constexpr uint16_t kCommandSerr = 1 << 8;
inline constexpr uint16_t kCommandIntxDisable = 1 << 10;
inline constexpr uint16_t kStatusInterrupt = 1 << 3;
inline constexpr uint16_t kStatusCapList = 1 << 4;
inline constexpr uint16_t kStatusW1c = 0xf900;

inline constexpr uint32_t kBarMem64 = 0x4;
inline constexpr uint32_t kBarPrefetch = 0x8;

inline constexpr uint8_t kCapIdMsi = 0x05;
inline constexpr uint32_t kMsiCap = 0x40;  // where edu's msi_init puts it
inline constexpr uint32_t kMsiFlags = kMsiCap + 0x02;
inline constexpr uint32_t kMsiAddressLo = kMsiCap + 0x04;
inline constexpr uint32_t kMsiAddressHi = kMsiCap + 0x08;
inline constexpr uint32_t kMsiData = kMsiCap + 0x0c;
inline constexpr uint16_t kMsiFlagsEnable = 1 << 0;
inline constexpr uint16_t kMsiFlagsQsize = 0x0070;
inline constexpr uint16_t kMsiFlags64Bit = 1 << 7;
}  // namespace pcicfg

class HostPciConfig {
 public:
  static constexpr uint32_t kSize = 256;

  HostPciConfig(const HostDeviceDesc& desc, uint64_t bar0_size);

  // Little-endian value of `size` (1..4) bytes at `offset`.
  // REQUIRES: offset + size <= kSize.
  uint32_t Read(uint32_t offset, unsigned size) const;
  void Write(uint32_t offset, uint32_t value, unsigned size);

  uint16_t command() const { return Load16(pcicfg::kCommand); }
  void set_intx_status(bool asserted);
  void set_msi_enable(bool on);

 private:
  uint16_t Load16(uint32_t offset) const {
    return static_cast<uint16_t>(bytes_[offset] | (bytes_[offset + 1] << 8));
  }
  void Store(uint32_t offset, uint32_t value, unsigned size,
             std::array<uint8_t, kSize>* where);

  std::array<uint8_t, kSize> bytes_{};
  std::array<uint8_t, kSize> wmask_{};  // writable bits
  std::array<uint8_t, kSize> w1c_{};    // write-1-to-clear bits
};

}  // namespace viommu::vfio::model

#endif  // VIOMMU_VFIO_HOST_MODEL_HOST_PCI_CONFIG_H_
