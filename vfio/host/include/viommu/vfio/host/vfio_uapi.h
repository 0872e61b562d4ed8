// viommu/vfio/host/vfio_uapi.h — the Linux VFIO and iommufd user ABI, as
// viommu speaks it to every host backend.
//
// These are viommu's own definitions of the kernel's ioctl numbers, flag
// bits and x86-64 struct layouts (Linux's uapi vfio.h / iommufd.h; what
// the model does with them: docs/vfio-type1-model.md). Debian 12's
// linux-libc-dev predates iommufd, so we do not include <linux/vfio.h>;
// the static_asserts pin every layout to the kernel's size.
//
//   uapi::vfio_iommu_type1_dma_map map{.argsz = sizeof(map),
//       .flags = uapi::kDmaMapFlagRead | uapi::kDmaMapFlagWrite,
//       .vaddr = hva, .iova = iova, .size = len};
//   int rc = backend.Ioctl(container_fd, uapi::kVfioIommuMapDma,
//                          reinterpret_cast<uintptr_t>(&map));
#ifndef VIOMMU_VFIO_HOST_VFIO_UAPI_H_
#define VIOMMU_VFIO_HOST_VFIO_UAPI_H_

#include <cstddef>
#include <cstdint>

namespace viommu::vfio::uapi {

// All VFIO and iommufd ioctls are _IO(';', nr): 0x3B00 | nr.
constexpr unsigned long IoNr(unsigned nr) { return 0x3B00u | nr; }

// ---- VFIO (container, group, device, type1) -------------------------------
inline constexpr int kVfioApiVersion = 0;
inline constexpr unsigned long kVfioGetApiVersion = IoNr(100);
inline constexpr unsigned long kVfioCheckExtension = IoNr(101);
inline constexpr unsigned long kVfioSetIommu = IoNr(102);
inline constexpr unsigned long kVfioGroupGetStatus = IoNr(103);
inline constexpr unsigned long kVfioGroupSetContainer = IoNr(104);
inline constexpr unsigned long kVfioGroupUnsetContainer = IoNr(105);
inline constexpr unsigned long kVfioGroupGetDeviceFd = IoNr(106);
inline constexpr unsigned long kVfioDeviceGetInfo = IoNr(107);
inline constexpr unsigned long kVfioDeviceGetRegionInfo = IoNr(108);
inline constexpr unsigned long kVfioDeviceGetIrqInfo = IoNr(109);
inline constexpr unsigned long kVfioDeviceSetIrqs = IoNr(110);
inline constexpr unsigned long kVfioDeviceReset = IoNr(111);
inline constexpr unsigned long kVfioIommuGetInfo = IoNr(112);
inline constexpr unsigned long kVfioIommuMapDma = IoNr(113);
inline constexpr unsigned long kVfioIommuUnmapDma = IoNr(114);
inline constexpr unsigned long kVfioIommuEnable = IoNr(115);
inline constexpr unsigned long kVfioIommuDisable = IoNr(116);
inline constexpr unsigned long kVfioIommuDirtyPages = IoNr(117);
inline constexpr unsigned long kVfioDeviceBindIommufd = IoNr(118);
inline constexpr unsigned long kVfioDeviceAttachIommufdPt = IoNr(119);
inline constexpr unsigned long kVfioDeviceDetachIommufdPt = IoNr(120);

// Extension / IOMMU type ids (CHECK_EXTENSION, SET_IOMMU).
inline constexpr unsigned long kVfioType1Iommu = 1;
inline constexpr unsigned long kVfioSpaprTceIommu = 2;
inline constexpr unsigned long kVfioType1v2Iommu = 3;
inline constexpr unsigned long kVfioDmaCcIommu = 4;
inline constexpr unsigned long kVfioEeh = 5;
inline constexpr unsigned long kVfioType1NestingIommu = 6;
inline constexpr unsigned long kVfioSpaprTcev2Iommu = 7;
inline constexpr unsigned long kVfioNoIommu = 8;
inline constexpr unsigned long kVfioUnmapAll = 9;
inline constexpr unsigned long kVfioUpdateVaddr = 10;

inline constexpr uint32_t kGroupFlagsViable = 1;
inline constexpr uint32_t kGroupFlagsContainerSet = 2;
inline constexpr uint32_t kIommuInfoPgsizes = 1;
inline constexpr uint32_t kIommuInfoCaps = 2;
inline constexpr uint32_t kDmaMapFlagRead = 1;
inline constexpr uint32_t kDmaMapFlagWrite = 2;
inline constexpr uint32_t kDmaMapFlagVaddr = 4;
inline constexpr uint32_t kDmaUnmapFlagGetDirtyBitmap = 1;
inline constexpr uint32_t kDmaUnmapFlagAll = 2;
inline constexpr uint32_t kDmaUnmapFlagVaddr = 4;

// Type1 capability ids (each version 1).
inline constexpr uint16_t kIommuTypeCapIovaRange = 1;
inline constexpr uint16_t kIommuTypeCapMigration = 2;
inline constexpr uint16_t kIommuTypeCapDmaAvail = 3;

struct vfio_info_cap_header {
  uint16_t id;
  uint16_t version;
  uint32_t next;  // offset from the start of the info buffer; 0 ends
};
static_assert(sizeof(vfio_info_cap_header) == 8);

struct vfio_group_status {
  uint32_t argsz;
  uint32_t flags;
};
static_assert(sizeof(vfio_group_status) == 8);

struct vfio_iommu_type1_info {
  uint32_t argsz;
  uint32_t flags;
  uint64_t iova_pgsizes;
  uint32_t cap_offset;
  uint32_t pad;
};
static_assert(sizeof(vfio_iommu_type1_info) == 24);
inline constexpr uint32_t kIommuType1InfoMinsz = 16;

struct vfio_iova_range {
  uint64_t start;
  uint64_t end;  // inclusive
};
static_assert(sizeof(vfio_iova_range) == 16);

struct vfio_iommu_type1_info_cap_iova_range {
  vfio_info_cap_header header;
  uint32_t nr_iovas;
  uint32_t reserved;
  vfio_iova_range iova_ranges[];
};
static_assert(sizeof(vfio_iommu_type1_info_cap_iova_range) == 16);

struct vfio_iommu_type1_info_cap_migration {
  vfio_info_cap_header header;
  uint32_t flags;
  uint64_t pgsize_bitmap;
  uint64_t max_dirty_bitmap_size;
};
static_assert(sizeof(vfio_iommu_type1_info_cap_migration) == 32);

struct vfio_iommu_type1_info_dma_avail {
  vfio_info_cap_header header;
  uint32_t avail;
};
static_assert(sizeof(vfio_iommu_type1_info_dma_avail) == 12);

struct vfio_iommu_type1_dma_map {
  uint32_t argsz;
  uint32_t flags;
  uint64_t vaddr;
  uint64_t iova;
  uint64_t size;
};
static_assert(sizeof(vfio_iommu_type1_dma_map) == 32);

struct vfio_bitmap {
  uint64_t pgsize;
  uint64_t size;
  uint64_t data;  // user pointer
};
static_assert(sizeof(vfio_bitmap) == 24);

struct vfio_iommu_type1_dma_unmap {
  uint32_t argsz;
  uint32_t flags;
  uint64_t iova;
  uint64_t size;
  // uint8_t data[]: a vfio_bitmap with GET_DIRTY_BITMAP
};
static_assert(sizeof(vfio_iommu_type1_dma_unmap) == 24);

// Device info / regions / irqs (vfio-pci).
inline constexpr uint32_t kDeviceFlagsReset = 1u << 0;
inline constexpr uint32_t kDeviceFlagsPci = 1u << 1;
inline constexpr uint32_t kRegionInfoFlagRead = 1u << 0;
inline constexpr uint32_t kRegionInfoFlagWrite = 1u << 1;
inline constexpr uint32_t kRegionInfoFlagMmap = 1u << 2;
inline constexpr uint32_t kRegionInfoFlagCaps = 1u << 3;
inline constexpr uint32_t kPciBar0RegionIndex = 0;
inline constexpr uint32_t kPciBar2RegionIndex = 2;
inline constexpr uint32_t kPciRomRegionIndex = 6;
inline constexpr uint32_t kPciConfigRegionIndex = 7;
inline constexpr uint32_t kPciVgaRegionIndex = 8;
inline constexpr uint32_t kPciNumRegions = 9;
inline constexpr uint32_t kPciIntxIrqIndex = 0;
inline constexpr uint32_t kPciMsiIrqIndex = 1;
inline constexpr uint32_t kPciMsixIrqIndex = 2;
inline constexpr uint32_t kPciErrIrqIndex = 3;
inline constexpr uint32_t kPciReqIrqIndex = 4;
inline constexpr uint32_t kPciNumIrqs = 5;
// vfio-pci places region N at file offset N << 40.
constexpr uint64_t PciIndexToOffset(uint32_t index) {
  return uint64_t{index} << 40;
}

struct vfio_device_info {
  uint32_t argsz;
  uint32_t flags;
  uint32_t num_regions;
  uint32_t num_irqs;
  uint32_t cap_offset;
  uint32_t pad;
};
static_assert(sizeof(vfio_device_info) == 24);

struct vfio_region_info {
  uint32_t argsz;
  uint32_t flags;
  uint32_t index;
  uint32_t cap_offset;
  uint64_t size;
  uint64_t offset;
};
static_assert(sizeof(vfio_region_info) == 32);

inline constexpr uint32_t kIrqInfoEventfd = 1u << 0;
inline constexpr uint32_t kIrqInfoMaskable = 1u << 1;
inline constexpr uint32_t kIrqInfoAutomasked = 1u << 2;
inline constexpr uint32_t kIrqInfoNoresize = 1u << 3;

struct vfio_irq_info {
  uint32_t argsz;
  uint32_t flags;
  uint32_t index;
  uint32_t count;
};
static_assert(sizeof(vfio_irq_info) == 16);

inline constexpr uint32_t kIrqSetDataNone = 1u << 0;
inline constexpr uint32_t kIrqSetDataBool = 1u << 1;
inline constexpr uint32_t kIrqSetDataEventfd = 1u << 2;
inline constexpr uint32_t kIrqSetActionMask = 1u << 3;
inline constexpr uint32_t kIrqSetActionUnmask = 1u << 4;
inline constexpr uint32_t kIrqSetActionTrigger = 1u << 5;

struct vfio_irq_set {
  uint32_t argsz;
  uint32_t flags;
  uint32_t index;
  uint32_t start;
  uint32_t count;
  // uint8_t data[]
};
static_assert(sizeof(vfio_irq_set) == 20);

// VFIO cdev + iommufd.
struct vfio_device_bind_iommufd {
  uint32_t argsz;
  uint32_t flags;
  int32_t iommufd;
  uint32_t out_devid;
  uint64_t token_uuid_ptr;
};
static_assert(sizeof(vfio_device_bind_iommufd) == 24);
inline constexpr uint32_t kBindIommufdMinsz = 16;

struct vfio_device_attach_iommufd_pt {
  uint32_t argsz;
  uint32_t flags;
  uint32_t pt_id;
  uint32_t pasid;
};
static_assert(sizeof(vfio_device_attach_iommufd_pt) == 16);
inline constexpr uint32_t kAttachIommufdPtMinsz = 12;

struct vfio_device_detach_iommufd_pt {
  uint32_t argsz;
  uint32_t flags;
  uint32_t pasid;
};
static_assert(sizeof(vfio_device_detach_iommufd_pt) == 12);
inline constexpr uint32_t kDetachIommufdPtMinsz = 8;

// ---- iommufd (/dev/iommu) --------------------------------------------------
inline constexpr unsigned kIommufdCmdBase = 0x80;
inline constexpr unsigned long kIommuDestroy = IoNr(0x80);
inline constexpr unsigned long kIommuIoasAlloc = IoNr(0x81);
inline constexpr unsigned long kIommuIoasAllowIovas = IoNr(0x82);
inline constexpr unsigned long kIommuIoasCopy = IoNr(0x83);
inline constexpr unsigned long kIommuIoasIovaRanges = IoNr(0x84);
inline constexpr unsigned long kIommuIoasMap = IoNr(0x85);
inline constexpr unsigned long kIommuIoasUnmap = IoNr(0x86);
inline constexpr unsigned long kIommuOption = IoNr(0x87);
inline constexpr unsigned long kIommuVfioIoas = IoNr(0x88);
inline constexpr unsigned long kIommuHwptAlloc = IoNr(0x89);
inline constexpr unsigned long kIommuGetHwInfo = IoNr(0x8A);

inline constexpr uint32_t kIoasMapFixedIova = 1;
inline constexpr uint32_t kIoasMapWriteable = 2;
inline constexpr uint32_t kIoasMapReadable = 4;

struct iommu_destroy {
  uint32_t size;
  uint32_t id;
};
static_assert(sizeof(iommu_destroy) == 8);

struct iommu_ioas_alloc {
  uint32_t size;
  uint32_t flags;
  uint32_t out_ioas_id;
};
static_assert(sizeof(iommu_ioas_alloc) == 12);

struct iommu_iova_range {
  uint64_t start;
  uint64_t last;  // inclusive
};
static_assert(sizeof(iommu_iova_range) == 16);

struct iommu_ioas_allow_iovas {
  uint32_t size;
  uint32_t ioas_id;
  uint32_t num_iovas;
  uint32_t __reserved;
  uint64_t allowed_iovas;  // user pointer to iommu_iova_range[]
};
static_assert(sizeof(iommu_ioas_allow_iovas) == 24);

struct iommu_ioas_iova_ranges {
  uint32_t size;
  uint32_t ioas_id;
  uint32_t num_iovas;
  uint32_t __reserved;
  uint64_t allowed_iovas;  // user pointer to iommu_iova_range[]
  uint64_t out_iova_alignment;
};
static_assert(sizeof(iommu_ioas_iova_ranges) == 32);

struct iommu_ioas_map {
  uint32_t size;
  uint32_t flags;
  uint32_t ioas_id;
  uint32_t __reserved;
  uint64_t user_va;
  uint64_t length;
  uint64_t iova;
};
static_assert(sizeof(iommu_ioas_map) == 40);

struct iommu_ioas_copy {
  uint32_t size;
  uint32_t flags;
  uint32_t dst_ioas_id;
  uint32_t src_ioas_id;
  uint64_t length;
  uint64_t dst_iova;
  uint64_t src_iova;
};
static_assert(sizeof(iommu_ioas_copy) == 40);

struct iommu_ioas_unmap {
  uint32_t size;
  uint32_t ioas_id;
  uint64_t iova;
  uint64_t length;
};
static_assert(sizeof(iommu_ioas_unmap) == 24);

inline constexpr uint32_t kIommuOptionRlimitMode = 0;
inline constexpr uint32_t kIommuOptionHugePages = 1;
inline constexpr uint16_t kIommuOptionOpSet = 0;
inline constexpr uint16_t kIommuOptionOpGet = 1;

struct iommu_option {
  uint32_t size;
  uint32_t option_id;
  uint16_t op;
  uint16_t __reserved;
  uint32_t object_id;
  uint64_t val64;
};
static_assert(sizeof(iommu_option) == 24);

inline constexpr uint16_t kIommuVfioIoasGet = 0;
inline constexpr uint16_t kIommuVfioIoasSet = 1;
inline constexpr uint16_t kIommuVfioIoasClear = 2;

struct iommu_vfio_ioas {
  uint32_t size;
  uint32_t ioas_id;
  uint16_t op;
  uint16_t __reserved;
};
static_assert(sizeof(iommu_vfio_ioas) == 12);

inline constexpr uint32_t kHwptAllocNestParent = 1;
inline constexpr uint32_t kHwptAllocDirtyTracking = 2;
inline constexpr uint32_t kHwptAllocFaultIdValid = 4;
inline constexpr uint32_t kHwptAllocPasid = 8;

struct iommu_hwpt_alloc {
  uint32_t size;
  uint32_t flags;
  uint32_t dev_id;
  uint32_t pt_id;
  uint32_t out_hwpt_id;
  uint32_t __reserved;
  uint32_t data_type;
  uint32_t data_len;
  uint64_t data_uptr;
  uint32_t fault_id;
  uint8_t __reserved2[4];
};
static_assert(sizeof(iommu_hwpt_alloc) == 48);
inline constexpr uint32_t kIommuHwptAllocMinSize = 24;  // through __reserved

}  // namespace viommu::vfio::uapi

#endif  // VIOMMU_VFIO_HOST_VFIO_UAPI_H_
