// viommu/hw/iommu/vtd_regs.h — Intel VT-d remapping-hardware register
// offsets and bit fields (VT-d spec §11.4), with the spec's mnemonics, as
// QEMU 7.2's intel_iommu_internal.h defines them.
//
//   uint32_t gsts = regs.GetLong(Reg32::kGsts);
//   if (gsts & kGstsTes) ...   // translation enabled
//
// A register-definition header: no code, exempt from the size guideline.
#ifndef VIOMMU_HW_IOMMU_VTD_REGS_H_
#define VIOMMU_HW_IOMMU_VTD_REGS_H_

#include <cstdint>

namespace viommu::vtd {

// Size of the register block QEMU maps (DMAR_REG_SIZE).
inline constexpr uint64_t kRegBlockSize = 0x230;

// 32-bit registers (and the upper halves of 64-bit ones, "Hi").
enum class Reg32 : uint16_t {
  kVer = 0x00,
  kGcmd = 0x18,
  kGsts = 0x1c,
  kRtaddrHi = 0x24,
  kCcmdHi = 0x2c,
  kFsts = 0x34,
  kFectl = 0x38,
  kFedata = 0x3c,
  kFeaddr = 0x40,
  kFeuaddr = 0x44,
  kPmen = 0x64,
  kIqtHi = 0x8c,
  kIqaHi = 0x94,
  kIcs = 0x9c,
  kIectl = 0xa0,
  kIedata = 0xa4,
  kIeaddr = 0xa8,
  kIeuaddr = 0xac,
  kIrtaHi = 0xbc,
  kIotlbHi = 0xfc,
  kFrcd0Dw1 = 0x224,  // FRCD[0] bits 63:32
  kFrcd0Dw3 = 0x22c,  // FRCD[0] bits 127:96 (F is bit 31 here)
};

// 64-bit registers.
enum class Reg64 : uint16_t {
  kCap = 0x08,
  kEcap = 0x10,
  kRtaddr = 0x20,
  kCcmd = 0x28,
  kIqh = 0x80,
  kIqt = 0x88,
  kIqa = 0x90,
  kIrta = 0xb8,
  kIva = 0xf0,
  kIotlb = 0xf8,
  kFrcd0Lo = 0x220,  // fault info (page address)
  kFrcd0Hi = 0x228,  // SID, FR, T, F
};

inline constexpr uint16_t Offset(Reg32 r) { return static_cast<uint16_t>(r); }
inline constexpr uint16_t Offset(Reg64 r) { return static_cast<uint16_t>(r); }

// VER.
inline constexpr uint32_t kVersion = 0x10;

// CAP.
inline constexpr uint64_t kCapNdShift = 0;  // ND=6: 16-bit domain ids
inline constexpr uint64_t kCapNd = 6;
inline constexpr uint64_t kCapCm = 1ull << 7;
inline constexpr uint64_t kCapSagaw39 = 1ull << (8 + 1);  // 3-level tables
inline constexpr uint64_t kCapSagaw48 = 1ull << (8 + 2);  // 4-level tables
inline constexpr int kCapMgawShift = 16;
inline constexpr int kCapFroShift = 24;  // bits 33:24, in 16-byte units
inline constexpr uint64_t kCapSslps = 3ull << 34;  // 2 MiB and 1 GiB pages
inline constexpr uint64_t kCapPsi = 1ull << 39;
inline constexpr int kCapNfrShift = 40;  // number of FRCDs minus one
inline constexpr int kCapMamvShift = 48;
inline constexpr uint64_t kCapDrain = 3ull << 54;  // DRD | DWD

// ECAP.
inline constexpr uint64_t kEcapQi = 1ull << 1;
inline constexpr uint64_t kEcapDt = 1ull << 2;
inline constexpr uint64_t kEcapIr = 1ull << 3;
inline constexpr uint64_t kEcapEim = 1ull << 4;
inline constexpr uint64_t kEcapPt = 1ull << 6;
inline constexpr uint64_t kEcapSc = 1ull << 7;
inline constexpr int kEcapIroShift = 8;  // bits 17:8, in 16-byte units
inline constexpr uint64_t kEcapMhmv = 15ull << 20;
// Scalable mode: QEMU 7.2 adds SRS, SMTS and SLTS for x-scalable-mode=on
// and PASID for x-pasid-mode=on (PSS stays 0). Debian's 7.2: ECAP
// 0xf00f4a -> 0x480080f00f4a -> 0x490080f00f4a.
inline constexpr uint64_t kEcapSrs = 1ull << 31;
inline constexpr uint64_t kEcapPasid = 1ull << 40;
inline constexpr uint64_t kEcapSmts = 1ull << 43;
inline constexpr uint64_t kEcapSlts = 1ull << 46;

// Where the IOTLB registers and FRCD[0] live, and how many FRCDs there are.
inline constexpr uint16_t kIroOffset = 0xf0;   // IVA; IOTLB at +8
inline constexpr uint16_t kFroOffset = 0x220;  // FRCD[0]
inline constexpr int kNumFrcd = 1;
inline constexpr uint64_t kMamv = 18;

// GCMD / GSTS (same bit positions).
inline constexpr uint32_t kGcmdTe = 1u << 31;
inline constexpr uint32_t kGcmdSrtp = 1u << 30;
inline constexpr uint32_t kGcmdSfl = 1u << 29;
inline constexpr uint32_t kGcmdEafl = 1u << 28;
inline constexpr uint32_t kGcmdWbf = 1u << 27;
inline constexpr uint32_t kGcmdQie = 1u << 26;
inline constexpr uint32_t kGcmdIre = 1u << 25;
inline constexpr uint32_t kGcmdSirtp = 1u << 24;
inline constexpr uint32_t kGcmdCfi = 1u << 23;
inline constexpr uint32_t kGstsTes = 1u << 31;
inline constexpr uint32_t kGstsRtps = 1u << 30;
inline constexpr uint32_t kGstsQies = 1u << 26;
inline constexpr uint32_t kGstsIres = 1u << 25;
inline constexpr uint32_t kGstsIrtps = 1u << 24;
inline constexpr uint32_t kGstsCfis = 1u << 23;

// RTADDR.
inline constexpr uint64_t kRtaddrSmt = 1ull << 10;

// CCMD.
inline constexpr uint64_t kCcmdIcc = 1ull << 63;
inline constexpr int kCcmdCirgShift = 61;
inline constexpr uint64_t kCcmdCirgMask = 3ull << kCcmdCirgShift;
inline constexpr int kCcmdCaigShift = 59;
inline constexpr uint64_t kCcmdCaigMask = 3ull << kCcmdCaigShift;
inline constexpr uint64_t kCcmdDidMask = 0xffff;
inline constexpr int kCcmdSidShift = 16;
inline constexpr int kCcmdFmShift = 32;

// IOTLB and IVA.
inline constexpr uint64_t kIotlbIvt = 1ull << 63;
inline constexpr int kIotlbIirgShift = 60;
inline constexpr uint64_t kIotlbIirgMask = 3ull << kIotlbIirgShift;
inline constexpr int kIotlbIaigShift = 57;
inline constexpr uint64_t kIotlbIaigMask = 3ull << kIotlbIaigShift;
inline constexpr int kIotlbDidShift = 32;
inline constexpr uint64_t kIvaAmMask = 0x3f;
inline constexpr uint64_t kIvaIh = 1ull << 6;
inline constexpr uint64_t kIvaAddrMask = ~0xfffull;

// FSTS / FECTL (IECTL uses the same IM / IP bits) / ICS.
inline constexpr uint32_t kFstsPfo = 1u << 0;
inline constexpr uint32_t kFstsPpf = 1u << 1;
inline constexpr uint32_t kFstsIqe = 1u << 4;
inline constexpr int kFstsFriShift = 8;
inline constexpr uint32_t kFstsFriMask = 0xffu << kFstsFriShift;
inline constexpr uint32_t kFectlIm = 1u << 31;
inline constexpr uint32_t kFectlIp = 1u << 30;
inline constexpr uint32_t kIcsIwc = 1u << 0;

// FRCD, high quadword.
inline constexpr uint64_t kFrcdF = 1ull << 63;
inline constexpr uint64_t kFrcdT = 1ull << 62;  // 1: read request
inline constexpr int kFrcdFrShift = 32;
inline constexpr int kFrcdPvShift = 40;          // PASID value, bits 55:40
inline constexpr uint64_t kFrcdPp = 1ull << 31;  // PASID present
// FRCD, low quadword of an interrupt-remapping fault: interrupt_index.
inline constexpr int kFrcdIrIndexShift = 48;

// The interrupt-address window (0xfee00000-0xfeefffff): every device view
// carries it (prio 1), and the unit's own interrupt messages go there.
inline constexpr uint64_t kInterruptWindowBase = 0xfee0'0000;
inline constexpr uint64_t kInterruptWindowSize = 0x10'0000;
inline constexpr uint64_t kInterruptWindowOffsetMask = kInterruptWindowSize - 1;
inline constexpr uint64_t kFrcdSidMask = 0xffff;

// IQA / IQT / IRTA.
inline constexpr uint64_t kIqaQsMask = 0x7;
inline constexpr uint64_t kIqaDw = 1ull << 11;
inline constexpr int kIqtQtShift = 4;
inline constexpr uint64_t kIqtQtMask = 0x7fff0;
inline constexpr uint64_t kIrtaSizeMask = 0xf;
inline constexpr uint64_t kIrtaEime = 1ull << 11;
inline constexpr uint64_t kIrtaAddrMask = ~0xfffull;  // bits 63:12

// Context-cache and IOTLB invalidation granularities (CIRG / IIRG values;
// the same encodings answer in CAIG / IAIG).
enum class ContextGranularity : uint8_t {
  kInvalid = 0,
  kGlobal = 1,
  kDomain = 2,
  kDevice = 3,
};
enum class IotlbGranularity : uint8_t {
  kInvalid = 0,
  kGlobal = 1,
  kDomain = 2,
  kPage = 3,
};

// Host address-width mask: bits [aw-1:0].
inline constexpr uint64_t HawMask(int aw_bits) {
  return (uint64_t{1} << aw_bits) - 1;
}

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_REGS_H_
