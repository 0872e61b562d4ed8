// viommu/hw/pci/pci_regs.h — type-0 configuration-space offsets and bits
// (PCI Local Bus spec 3.0 §6), named after the spec / Linux pci_regs.h.
//
//   uint16_t cmd = dev->ConfigRead(kCfgCommand, 2);
//   dev->ConfigWrite(kCfgCommand, cmd | kCommandMemory | kCommandMaster, 2);
#ifndef VIOMMU_HW_PCI_PCI_REGS_H_
#define VIOMMU_HW_PCI_PCI_REGS_H_

#include <cstdint>

namespace viommu::hw::pci {

inline constexpr int kNumBars = 6;
inline constexpr uint32_t kConfigSpaceSize = 4096;

// Standard config-space offsets and bits (PCI 3.0 §6.2).
inline constexpr uint32_t kCfgVendorId = 0x00;
inline constexpr uint32_t kCfgDeviceId = 0x02;
inline constexpr uint32_t kCfgCommand = 0x04;
inline constexpr uint32_t kCfgStatus = 0x06;
inline constexpr uint32_t kCfgRevision = 0x08;
inline constexpr uint32_t kCfgClassProg = 0x09;
inline constexpr uint32_t kCfgCacheLineSize = 0x0c;
inline constexpr uint32_t kCfgHeaderType = 0x0e;
inline constexpr uint32_t kCfgBar0 = 0x10;
inline constexpr uint32_t kCfgSubsystemVendorId = 0x2c;
inline constexpr uint32_t kCfgSubsystemId = 0x2e;
inline constexpr uint32_t kCfgRomAddress = 0x30;
inline constexpr uint32_t kCfgCapabilityList = 0x34;
inline constexpr uint32_t kCfgInterruptLine = 0x3c;
inline constexpr uint32_t kCfgInterruptPin = 0x3d;

inline constexpr uint16_t kCommandIo = 1 << 0;
inline constexpr uint16_t kCommandMemory = 1 << 1;
inline constexpr uint16_t kCommandMaster = 1 << 2;
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

}  // namespace viommu::hw::pci

#endif  // VIOMMU_HW_PCI_PCI_REGS_H_
