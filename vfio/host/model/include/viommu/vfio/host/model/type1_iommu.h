// viommu/vfio/host/model/type1_iommu.h — the in-process model of one Linux
// vfio_iommu_type1 instance (one container's driver data after SET_IOMMU):
// the dma list, the valid IOVA windows, the host IOMMU domains with their
// groups, dma_avail, pgsize_bitmap, pinning and locked_vm accounting.
//
// Semantics: docs/vfio-type1-model.md (checked against real kernels:
// docs/real-kernel-tests.md): Linux 6.1
// by default (EINVAL on wrap, GET_INFO caps unpadded: IOVA_RANGE at 68,
// argsz 84 + 16N), Linux 6.12 behind KernelVersion::k6_12, the newest
// kernel behind KernelVersion::kLatest.
//
//   ProcessMemory mem;
//   Type1Iommu iommu({.v2 = true}, &mem, /*faults=*/nullptr);
//   int rc = iommu.AttachGroup(group_desc);            // 0 or -EINVAL, ...
//   uapi::vfio_iommu_type1_dma_map m{.argsz = sizeof(m), .flags = 3,
//       .vaddr = hva, .iova = 0x100000, .size = 0x1000};
//   rc = iommu.Ioctl(uapi::kVfioIommuMapDma, AsArg(&m));
//
// Ioctl takes the kernel's user pointer (a pointer into this process) and
// returns 0/-errno exactly as the kernel's ioctl would. Not modelled: mdev /
// emulated groups and external pinning (vfio_pin_pages), MSI isolation
// (always assumed isolated: no EPERM), the 6.1 killable wait on invalid
// vaddrs (the model answers EBUSY as newer kernels do), cache-coherency
// enforcement (model domains never enforce it). Thread-safety: not
// thread-safe; one control context calls it (the model host's).
#ifndef VIOMMU_VFIO_HOST_MODEL_TYPE1_IOMMU_H_
#define VIOMMU_VFIO_HOST_MODEL_TYPE1_IOMMU_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/types/span.h"
#include "viommu/vfio/host/host_platform.h"
#include "viommu/vfio/host/model/host_iommu_domain.h"
#include "viommu/vfio/host/model/process_memory.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio::model {

// Which kernel's observable behaviour to model. k6_12 is Linux 6.12 as the
// real-kernel suite measured it: 6.1's range checks (EINVAL on wrap, 6.1's
// MAP check order) and nesting type (6), the newer GET_INFO (caps padded to
// 8, min(argsz, 24) copied back) and SET_CONTAINER's EBADFD; for iommufd
// its ioctl table (through FAULT_QUEUE_ALLOC, 0x8e) and BIND_IOMMUFD
// without the E2BIG tail check.
enum class KernelVersion { k6_1, k6_12, kLatest };

// Range wraps answer EOVERFLOW (MAP/UNMAP/DIRTY_PAGES; MAP checks size 0 and
// wrap first), not EINVAL.
constexpr bool HasOverflowErrno(KernelVersion k) {
  return k == KernelVersion::kLatest;
}
// VFIO_TYPE1_NESTING_IOMMU (6) is a type1 iommu type (retired in 6.13).
constexpr bool HasType1Nesting(KernelVersion k) {
  return k != KernelVersion::kLatest;
}
// GET_INFO pads each capability to 8 bytes and copies back min(argsz, 24).
constexpr bool HasPaddedInfoCaps(KernelVersion k) {
  return k != KernelVersion::k6_1;
}
// GROUP_SET_CONTAINER with an fd that is no container: EBADFD (6.2+).
constexpr bool HasSetContainerEbadfd(KernelVersion k) {
  return k != KernelVersion::k6_1;
}

// What type1 learns about an IOMMU group at attach.
struct Type1Group {
  uint32_t id = 0;
  uint64_t aperture_last = 0;  // the domain aperture is [0, aperture_last]
  uint64_t pgsize_bitmap = 0;
  std::vector<ResvRegion> resv;  // the group's merged reserved regions
};

// One valid IOVA window, inclusive.
struct IovaWindow {
  uint64_t start = 0;
  uint64_t last = 0;
  friend bool operator==(const IovaWindow&, const IovaWindow&) = default;
};

// Fault injection shared by a model host and its containers (LevelDB's
// ErrorEnv role). Counters count MAP_DMA ioctls that reach a type1 driver.
struct ModelFaults {
  uint64_t fail_map_countdown = 0;  // 0: off; the call taking it to 0 fails
  int fail_map_errno = 0;           // positive errno
  bool fail_attach_armed = false;   // the next attach of fail_attach_group
  uint32_t fail_attach_group = 0;
  int fail_attach_errno = 0;
};

// iommu_get_group_resv_regions' merge: sorted by start (type breaks ties),
// overlapping or adjacent regions of the same type joined.
std::vector<ResvRegion> MergeResvRegions(std::vector<ResvRegion> regions);

class Type1Iommu {
 public:
  struct Config {
    bool v2 = true;        // TYPE1v2 (no-bisect unmap) vs TYPE1
    bool nesting = false;  // opened as VFIO_TYPE1_NESTING_IOMMU (6.1)
    KernelVersion kernel = KernelVersion::k6_1;
    uint32_t dma_entry_limit = 65535;
  };

  // `mem` (the process) and `faults` (nullable) are not owned and outlive
  // this.
  Type1Iommu(const Config& config, ProcessMemory* mem, ModelFaults* faults);
  Type1Iommu(const Type1Iommu&) = delete;
  Type1Iommu& operator=(const Type1Iommu&) = delete;
  // The driver's release: every dma removed, every charge returned.
  ~Type1Iommu();

  // type1's CHECK_EXTENSION; `iommu` is nullptr before SET_IOMMU.
  static int CheckExtension(KernelVersion kernel, const Type1Iommu* iommu,
                            unsigned long extension);

  // The container ioctls type1 handles: IOMMU_GET_INFO, IOMMU_MAP_DMA,
  // IOMMU_UNMAP_DMA, IOMMU_DIRTY_PAGES, CHECK_EXTENSION. Others: -ENOTTY.
  [[nodiscard]] int Ioctl(unsigned long request, uintptr_t arg);

  // vfio_iommu_type1_attach_group (§2.8): 0, -EINVAL (already attached,
  // aperture or reserved-region conflict with existing dmas, nothing left
  // of the IOVA space), -EBUSY (invalid vaddrs outstanding), replay errors
  // (-EFAULT, -ENOMEM), or an injected errno. On failure nothing changed.
  [[nodiscard]] int AttachGroup(const Type1Group& group);
  // vfio_iommu_type1_detach_group (§2.9); never fails, no-op when unknown.
  void DetachGroup(uint32_t group_id);
  bool HasGroup(uint32_t group_id) const;
  // The domain the group's devices DMA through; nullptr when not attached.
  // Valid until the group detaches.
  HostIommuDomain* DomainOfGroup(uint32_t group_id) const;

  const Config& config() const { return config_; }
  uint64_t mapping_count() const { return dmas_.size(); }
  uint32_t dma_avail() const { return dma_avail_; }
  uint64_t pgsize_bitmap() const { return pgsize_bitmap_; }
  const std::vector<IovaWindow>& iova_list() const { return iova_list_; }
  size_t domain_count() const { return domains_.size(); }
  size_t group_count() const { return groups_.size(); }
  // Pages this container has charged to locked_vm.
  uint64_t locked_pages() const;
  bool dirty_tracking() const { return dirty_tracking_; }

 private:
  struct Dma {
    uint64_t last;  // inclusive
    uint64_t vaddr;
    uint32_t perm;  // kPermRead | kPermWrite
    bool iommu_mapped = false;
    bool vaddr_invalid = false;
    uint64_t locked_pages = 0;
    // While dirty tracking is on: vfio_dma's bitmap, one bit per page of
    // the smallest page size plus one spare word (the kernel shifts it in
    // place when copying to an unaligned user offset; see CopyDirtyBits).
    std::vector<uint64_t> dirty_bitmap;
  };
  struct Domain {
    std::unique_ptr<HostIommuDomain> domain;
    std::vector<uint32_t> groups;
  };
  using DmaMap = absl::btree_map<uint64_t, Dma>;

  int GetInfo(uintptr_t arg);
  int MapDma(uintptr_t arg);
  int UnmapDma(uintptr_t arg);
  int DirtyPages(uintptr_t arg);
  std::vector<uint8_t> BuildCaps() const;

  // The lowest dma overlapping [start, last], or dmas_.end().
  DmaMap::iterator FindDma(uint64_t start, uint64_t last);
  DmaMap::const_iterator FindDma(uint64_t start, uint64_t last) const;
  // Pins and charges [vaddr, vaddr + size) for a mapping with `perm`
  // (kPerm*): pages charged, or -EFAULT (unmapped, or RAM the process
  // cannot read / write as perm asks) / -ENOMEM with nothing charged.
  int64_t Pin(uint64_t vaddr, uint64_t size, uint32_t perm);
  void RemoveDma(DmaMap::iterator it);
  void RemoveAllDmas();
  uint64_t MinPageSize() const;
  void UpdatePgsizeBitmap();
  bool AperConflict(uint64_t start, uint64_t last) const;
  int Replay(HostIommuDomain* domain, std::vector<uint64_t>* charged);
  // Sets the dirty bits of every dma inside [iova, iova + npages * pgsize)
  // in the user bitmap at `data`.
  // DIRTY_PAGES GET_BITMAP / UNMAP GET_DIRTY_BITMAP for [iova, last] into
  // the user bitmap at `data` (bit 0 = iova), dma by dma in IOVA order as
  // Linux 6.1 does: whole 64-bit user words are written (bits of other
  // pages in them zeroed, the user's word at an unaligned start ORed in),
  // and with `clear_after` (GET_BITMAP) the low page bits are cleared
  // afterwards, leaving the kernel's stale shifted bits in place.
  void CopyDirtyBits(uint64_t iova, uint64_t last, uint64_t data,
                     bool clear_after);
  void AllocDirtyBitmap(uint64_t iova, Dma& dma) const;

  Config config_;
  ProcessMemory* const mem_;   // not owned
  ModelFaults* const faults_;  // not owned, nullable
  DmaMap dmas_;
  std::vector<IovaWindow> iova_list_;  // empty: no restriction
  std::vector<Domain> domains_;
  absl::btree_map<uint32_t, Type1Group> groups_;
  uint64_t pgsize_bitmap_;
  uint32_t dma_avail_;
  uint64_t vaddr_invalid_count_ = 0;
  bool dirty_tracking_ = false;
};

}  // namespace viommu::vfio::model

#endif  // VIOMMU_VFIO_HOST_MODEL_TYPE1_IOMMU_H_
