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

#include "viommu/devcore/pci_config_regs.h"
#include "viommu/vfio/host/host_platform.h"

namespace viommu::vfio::model {

// The type-0 layout is devcore's (one definition with hw/pci); what is this
// device's own: where its BARs and MSI capability sit.
namespace pcicfg {
using namespace ::viommu::devcore::pci_regs;  // NOLINT(build/namespaces)
inline constexpr uint32_t kCfgBar2 = CfgBar(2);
inline constexpr uint32_t kCfgBar3 = CfgBar(3);
inline constexpr uint32_t kMsiCap = 0x40;  // where edu's msi_init puts it
inline constexpr uint32_t kMsiCapFlags = kMsiCap + kMsiFlags;
inline constexpr uint32_t kMsiCapAddressLo = kMsiCap + kMsiAddressLo;
inline constexpr uint32_t kMsiCapAddressHi = kMsiCap + kMsiAddressHi;
inline constexpr uint32_t kMsiCapData = kMsiCap + kMsiData64;
}  // namespace pcicfg

class HostPciConfig {
 public:
  static constexpr uint32_t kSize = 256;

  HostPciConfig(const HostDeviceDesc& desc, uint64_t bar0_size);

  // Little-endian value of `size` (1..4) bytes at `offset`.
  // REQUIRES: offset + size <= kSize.
  uint32_t Read(uint32_t offset, unsigned size) const;
  void Write(uint32_t offset, uint32_t value, unsigned size);

  uint16_t command() const { return Load16(pcicfg::kCfgCommand); }
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
