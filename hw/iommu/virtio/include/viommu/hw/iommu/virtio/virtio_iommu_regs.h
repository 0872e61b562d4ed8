// viommu/hw/iommu/virtio/virtio_iommu_regs.h — the numbers and wire layouts
// of the virtio-iommu device (VIRTIO 1.2 §5.13): feature bits, the
// configuration space, request types and their little-endian layouts,
// statuses, MAP flags, PROBE properties and fault records.
//
//   uint8_t type = out[0];
//   if (type == kReqMap && out.size() >= kMapReqSize) ...
//   StoreLe(&reply[0], kStatusRange, 1);
//
// Layouts are given as byte offsets (read with util/le_bytes.h), never as
// structs cast over guest bytes.
#ifndef VIOMMU_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_REGS_H_
#define VIOMMU_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_REGS_H_

#include <cstdint>

namespace viommu::virtio_iommu {

// Device identity (§5.13.1): virtio device id 23, PCI 1af4:1057.
inline constexpr uint16_t kDeviceId = 23;
inline constexpr unsigned kRequestQueue = 0;
inline constexpr unsigned kEventQueue = 1;
inline constexpr uint16_t kQueueSize = 256;  // QEMU 7.2, both queues

// Feature bits (§5.13.3).
inline constexpr unsigned kFeatureInputRange = 0;
inline constexpr unsigned kFeatureDomainRange = 1;
inline constexpr unsigned kFeatureMapUnmap = 2;
inline constexpr unsigned kFeatureBypass = 3;
inline constexpr unsigned kFeatureProbe = 4;
inline constexpr unsigned kFeatureMmio = 5;
inline constexpr unsigned kFeatureBypassConfig = 6;
// What QEMU 7.2 offers: every bit but the deprecated BYPASS (0x77).
inline constexpr uint64_t kOfferedFeatures =
    (1u << kFeatureInputRange) | (1u << kFeatureDomainRange) |
    (1u << kFeatureMapUnmap) | (1u << kFeatureProbe) | (1u << kFeatureMmio) |
    (1u << kFeatureBypassConfig);

// Configuration space (§5.13.4), little-endian.
enum class ConfigOffset : uint32_t {
  kPageSizeMask = 0,      // le64
  kInputRangeStart = 8,   // le64
  kInputRangeEnd = 16,    // le64
  kDomainRangeStart = 24,  // le32
  kDomainRangeEnd = 28,    // le32
  kProbeSize = 32,         // le32
  kBypass = 36,            // u8, the only writable field
};
inline constexpr uint32_t kConfigSize = 40;
// QEMU 7.2's defaults: 4 KiB granule (TARGET_PAGE_MASK), every IOVA.
inline constexpr uint64_t kPageSizeMask = 0xffff'ffff'ffff'f000;
inline constexpr uint64_t kGranule = 0x1000;  // with 3 reserved bytes

// Request types (§5.13.6).
inline constexpr uint8_t kReqAttach = 1;
inline constexpr uint8_t kReqDetach = 2;
inline constexpr uint8_t kReqMap = 3;
inline constexpr uint8_t kReqUnmap = 4;
inline constexpr uint8_t kReqProbe = 5;

// Statuses (§5.13.6), the first byte of the tail.
inline constexpr uint8_t kStatusOk = 0;
inline constexpr uint8_t kStatusIoerr = 1;
inline constexpr uint8_t kStatusUnsupp = 2;
inline constexpr uint8_t kStatusDeverr = 3;
inline constexpr uint8_t kStatusInval = 4;
inline constexpr uint8_t kStatusRange = 5;
inline constexpr uint8_t kStatusNoent = 6;
inline constexpr uint8_t kStatusFault = 7;
inline constexpr uint8_t kStatusNomem = 8;

// Every request starts with head {u8 type, u8 rsvd[3]} and ends with the
// writable tail {u8 status, u8 rsvd[3]}. The sizes below are the readable
// part (head + payload), as QEMU copies it.
inline constexpr uint32_t kHeadSize = 4;
inline constexpr uint32_t kTailSize = 4;
// ATTACH: le32 domain @4, le32 endpoint @8, le32 flags @12, u8 rsvd[4].
inline constexpr uint32_t kAttachReqSize = 20;
inline constexpr uint32_t kAttachFlagBypass = 1;
// DETACH: le32 domain @4, le32 endpoint @8, u8 rsvd[8].
inline constexpr uint32_t kDetachReqSize = 20;
// MAP: le32 domain @4, le64 virt_start @8, le64 virt_end @16,
// le64 phys_start @24, le32 flags @32.
inline constexpr uint32_t kMapReqSize = 36;
inline constexpr uint32_t kMapFlagRead = 1;
inline constexpr uint32_t kMapFlagWrite = 2;
inline constexpr uint32_t kMapFlagMmio = 4;
inline constexpr uint32_t kMapFlagsKnown =
    kMapFlagRead | kMapFlagWrite | kMapFlagMmio;
// UNMAP: le32 domain @4, le64 virt_start @8, le64 virt_end @16, u8 rsvd[4].
inline constexpr uint32_t kUnmapReqSize = 28;
// PROBE: le32 endpoint @4, u8 rsvd[64]; the writable part is
// properties[probe_size] then the tail.
inline constexpr uint32_t kProbeReqSize = 72;
inline constexpr uint32_t kProbeSize = 512;  // QEMU 7.2's probe_size
inline constexpr uint32_t kProbeReplySize = kProbeSize + kTailSize;  // 516

// PROBE properties (§5.13.6.5): le16 type, le16 length, then `length`
// bytes. RESV_MEM: u8 subtype, u8 rsvd[3], le64 start, le64 end.
inline constexpr uint16_t kProbeTypeResvMem = 1;
inline constexpr uint16_t kResvMemLength = 20;
inline constexpr uint32_t kPropertyHeaderSize = 4;
inline constexpr uint8_t kResvMemReserved = 0;
inline constexpr uint8_t kResvMemMsi = 1;

// Fault record (§5.13.6.6), 24 bytes: u8 reason, u8 rsvd[3], le32 flags
// @4, le32 endpoint @8, u8 rsvd1[4], le64 address @16.
inline constexpr uint32_t kFaultSize = 24;
inline constexpr uint8_t kFaultReasonUnknown = 0;
inline constexpr uint8_t kFaultReasonDomain = 1;
inline constexpr uint8_t kFaultReasonMapping = 2;
inline constexpr uint32_t kFaultFlagRead = 1;
inline constexpr uint32_t kFaultFlagWrite = 2;
inline constexpr uint32_t kFaultFlagAddress = 0x100;

// The x86 MSI window q35 reserves for every endpoint (QEMU's pc pre-plug
// hook sets reserved-regions[0] to it).
inline constexpr uint64_t kMsiWindowFirst = 0xfee0'0000;
inline constexpr uint64_t kMsiWindowLast = 0xfeef'ffff;

}  // namespace viommu::virtio_iommu

#endif  // VIOMMU_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_REGS_H_
