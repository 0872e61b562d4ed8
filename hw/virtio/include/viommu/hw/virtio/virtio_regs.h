// viommu/hw/virtio/virtio_regs.h — the numbers of the VIRTIO 1.x spec the
// transport and its devices share: device status bits, the transport
// feature bits, split-ring flags and layout, the virtio PCI capability
// types and the common configuration structure's offsets (VIRTIO 1.2
// §2.1, §2.7, §4.1.4, §6).
//
//   if (status & kStatusDriverOk) ...
//   uint64_t offered = device_bits | FeatureBit(kFeatureVersion1);
//   switch (static_cast<CommonCfg>(offset)) { case CommonCfg::kQueueSize: ...
#ifndef VIOMMU_HW_VIRTIO_VIRTIO_REGS_H_
#define VIOMMU_HW_VIRTIO_VIRTIO_REGS_H_

#include <cstdint>

namespace viommu::hw::virtio {

// Device status (§2.1).
inline constexpr uint8_t kStatusAcknowledge = 0x01;
inline constexpr uint8_t kStatusDriver = 0x02;
inline constexpr uint8_t kStatusDriverOk = 0x04;
inline constexpr uint8_t kStatusFeaturesOk = 0x08;
inline constexpr uint8_t kStatusNeedsReset = 0x40;
inline constexpr uint8_t kStatusFailed = 0x80;

// Reserved (transport and ring) feature bit numbers (§6).
inline constexpr unsigned kFeatureIndirectDesc = 28;
inline constexpr unsigned kFeatureEventIdx = 29;
inline constexpr unsigned kFeatureVersion1 = 32;
inline constexpr unsigned kFeatureAccessPlatform = 33;
inline constexpr unsigned kFeatureRingPacked = 34;
inline constexpr unsigned kFeatureRingReset = 40;

constexpr uint64_t FeatureBit(unsigned bit) { return uint64_t{1} << bit; }

// Split virtqueues (§2.7). Descriptor: le64 addr, le32 len, le16 flags,
// le16 next. Available ring: le16 flags, le16 idx, le16 ring[size],
// le16 used_event. Used ring: le16 flags, le16 idx, {le32 id, le32 len}
// ring[size], le16 avail_event.
inline constexpr uint16_t kDescFlagNext = 0x1;
inline constexpr uint16_t kDescFlagWrite = 0x2;
inline constexpr uint16_t kDescFlagIndirect = 0x4;
inline constexpr uint16_t kAvailFlagNoInterrupt = 0x1;
inline constexpr uint16_t kUsedFlagNoNotify = 0x1;
inline constexpr uint64_t kDescSize = 16;
inline constexpr uint64_t kUsedElemSize = 8;
inline constexpr uint64_t kRingHeaderSize = 4;  // flags + idx

// QEMU 7.2's limits (VIRTIO_QUEUE_MAX, VIRTQUEUE_MAX_SIZE): queue_select
// takes values below kMaxQueues, queue_size values 1..kMaxQueueSize, and a
// descriptor chain (direct or indirect) has at most kMaxQueueSize buffers.
inline constexpr unsigned kMaxQueues = 1024;
inline constexpr unsigned kMaxQueueSize = 1024;

// "No MSI-X vector" in msix_config / queue_msix_vector.
inline constexpr uint16_t kNoVector = 0xffff;

// PCI identity (§4.1.2): modern device id = kPciDeviceIdBase + device id.
inline constexpr uint16_t kPciVendorId = 0x1af4;
inline constexpr uint16_t kPciDeviceIdBase = 0x1040;
inline constexpr uint8_t kPciModernRevision = 0x01;

// Vendor-specific capability (id 0x09) layout (§4.1.4): cap_vndr, cap_next,
// cap_len, cfg_type, bar, id, padding[2], le32 offset, le32 length; the
// notify capability adds le32 notify_off_multiplier, the PCI configuration
// access capability u8 pci_cfg_data[4].
inline constexpr uint8_t kPciCapIdVendor = 0x09;
inline constexpr uint8_t kPciCapCommonCfg = 1;
inline constexpr uint8_t kPciCapNotifyCfg = 2;
inline constexpr uint8_t kPciCapIsrCfg = 3;
inline constexpr uint8_t kPciCapDeviceCfg = 4;
inline constexpr uint8_t kPciCapPciCfg = 5;
inline constexpr uint8_t kPciCapLen = 16;
inline constexpr uint8_t kPciNotifyCapLen = 20;
inline constexpr uint8_t kPciCfgCapLen = 20;
inline constexpr uint32_t kPciCapOffLen = 2;
inline constexpr uint32_t kPciCapOffType = 3;
inline constexpr uint32_t kPciCapOffBar = 4;
inline constexpr uint32_t kPciCapOffOffset = 8;
inline constexpr uint32_t kPciCapOffLength = 12;
inline constexpr uint32_t kPciCapOffNotifyMultiplier = 16;
inline constexpr uint32_t kPciCapOffCfgData = 16;

// ISR status bits (§4.1.4.5).
inline constexpr uint8_t kIsrQueue = 0x1;
inline constexpr uint8_t kIsrConfig = 0x2;

// The common configuration structure (§4.1.4.3), by offset.
enum class CommonCfg : uint32_t {
  kDeviceFeatureSelect = 0x00,  // le32 RW
  kDeviceFeature = 0x04,        // le32 RO
  kDriverFeatureSelect = 0x08,  // le32 RW
  kDriverFeature = 0x0c,        // le32 RW
  kMsixConfig = 0x10,           // le16 RW
  kNumQueues = 0x12,            // le16 RO
  kDeviceStatus = 0x14,         // u8 RW
  kConfigGeneration = 0x15,     // u8 RO
  kQueueSelect = 0x16,          // le16 RW
  kQueueSize = 0x18,            // le16 RW
  kQueueMsixVector = 0x1a,      // le16 RW
  kQueueEnable = 0x1c,          // le16 RW
  kQueueNotifyOff = 0x1e,       // le16 RO
  kQueueDescLo = 0x20,
  kQueueDescHi = 0x24,
  kQueueDriverLo = 0x28,  // the available ring
  kQueueDriverHi = 0x2c,
  kQueueDeviceLo = 0x30,  // the used ring
  kQueueDeviceHi = 0x34,
  kQueueReset = 0x3a,  // le16 RW (VIRTIO_F_RING_RESET)
};

}  // namespace viommu::hw::virtio

#endif  // VIOMMU_HW_VIRTIO_VIRTIO_REGS_H_
