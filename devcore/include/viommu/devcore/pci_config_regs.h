// viommu/devcore/pci_config_regs.h — the PCI type-0 configuration-space
// layout (PCI Local Bus spec 3.0 §6: offsets, COMMAND/STATUS bits, BAR type
// bits, the MSI capability), named after the spec / Linux pci_regs.h, and
// the one write rule every emulated config space of viommu applies: the
// guest's PCI devices (hw/pci, which re-exports these names as
// hw::pci::kCfg...) and the simulated host devices' config region
// (vfio/host/model).
//
//   ApplyConfigWrite(config, wmask, w1c, kCfgCommand, kCommandMemory, 2);
//   uint16_t cmd = LoadLe(&config[kCfgCommand], 2);
//
// Threading: constants and a pure function.
#ifndef VIOMMU_DEVCORE_PCI_CONFIG_REGS_H_
#define VIOMMU_DEVCORE_PCI_CONFIG_REGS_H_

#include <cstdint>

namespace viommu::devcore::pci_regs {

inline constexpr int kNumBars = 6;
inline constexpr uint32_t kConfigSpaceSize = 4096;

// Standard config-space offsets (PCI 3.0 §6.2).
inline constexpr uint32_t kCfgVendorId = 0x00;
inline constexpr uint32_t kCfgDeviceId = 0x02;
inline constexpr uint32_t kCfgCommand = 0x04;
inline constexpr uint32_t kCfgStatus = 0x06;
inline constexpr uint32_t kCfgRevision = 0x08;
inline constexpr uint32_t kCfgClassProg = 0x09;
inline constexpr uint32_t kCfgCacheLineSize = 0x0c;
inline constexpr uint32_t kCfgLatencyTimer = 0x0d;
inline constexpr uint32_t kCfgHeaderType = 0x0e;
inline constexpr uint32_t kCfgBar0 = 0x10;
inline constexpr uint32_t kCfgSubsystemVendorId = 0x2c;
inline constexpr uint32_t kCfgSubsystemId = 0x2e;
inline constexpr uint32_t kCfgRomAddress = 0x30;
inline constexpr uint32_t kCfgCapabilityList = 0x34;
inline constexpr uint32_t kCfgInterruptLine = 0x3c;
inline constexpr uint32_t kCfgInterruptPin = 0x3d;
// BAR `i`'s register (0..5).
constexpr uint32_t CfgBar(int i) {
  return kCfgBar0 + 4 * static_cast<uint32_t>(i);
}

inline constexpr uint16_t kCommandIo = 1 << 0;
inline constexpr uint16_t kCommandMemory = 1 << 1;
inline constexpr uint16_t kCommandMaster = 1 << 2;
inline constexpr uint16_t kCommandParity = 1 << 6;
inline constexpr uint16_t kCommandSerr = 1 << 8;
inline constexpr uint16_t kCommandIntxDisable = 1 << 10;
inline constexpr uint16_t kStatusInterrupt = 1 << 3;
inline constexpr uint16_t kStatusCapList = 1 << 4;
// Error bits, write-1-to-clear: master data parity error, signaled/received
// target abort, received master abort, signaled system error, detected
// parity error.
inline constexpr uint16_t kStatusW1cBits = 0xf900;
inline constexpr uint32_t kConfigHeaderSize = 0x40;
inline constexpr uint32_t kConventionalConfigSize = 0x100;

inline constexpr uint8_t kCapIdMsi = 0x05;
inline constexpr uint8_t kHeaderTypeMultiFunction = 0x80;

// MSI capability layout (PCI 3.0 §6.8.1), offsets from the capability.
inline constexpr uint32_t kMsiFlags = 0x02;
inline constexpr uint32_t kMsiAddressLo = 0x04;
inline constexpr uint32_t kMsiAddressHi = 0x08;  // 64-bit only
inline constexpr uint32_t kMsiData32 = 0x08;
inline constexpr uint32_t kMsiData64 = 0x0c;
inline constexpr uint16_t kMsiFlagsEnable = 1 << 0;
inline constexpr uint16_t kMsiFlagsQmask = 0x000e;  // multiple message capable
inline constexpr uint16_t kMsiFlagsQsize = 0x0070;  // multiple message enable
inline constexpr uint16_t kMsiFlags64Bit = 1 << 7;

// BAR type bits (PCI 3.0 §6.2.5.1).
inline constexpr uint32_t kBarSpaceIo = 0x1;
inline constexpr uint32_t kBarMemType64 = 0x4;
inline constexpr uint32_t kBarMemPrefetch = 0x8;

// A config write of `size` (1..4) bytes of `value` (little-endian) at
// `offset`, byte by byte: only the bits set in `wmask` take the written
// value, then the bits set in both the written value and `w1c` clear
// (write-1-to-clear). The three arrays are indexed by config offset.
// REQUIRES: the arrays hold offset + size bytes.
inline void ApplyConfigWrite(uint8_t* config, const uint8_t* wmask,
                             const uint8_t* w1c, uint32_t offset,
                             uint32_t value, unsigned size) {
  for (unsigned i = 0; i < size; ++i) {
    const uint32_t at = offset + i;
    const uint8_t b = static_cast<uint8_t>(value >> (8 * i));
    config[at] =
        static_cast<uint8_t>((config[at] & ~wmask[at]) | (b & wmask[at]));
    config[at] = static_cast<uint8_t>(config[at] & ~(b & w1c[at]));
  }
}

}  // namespace viommu::devcore::pci_regs

#endif  // VIOMMU_DEVCORE_PCI_CONFIG_REGS_H_
