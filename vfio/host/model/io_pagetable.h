// vfio/host/model/io_pagetable.h — the model of iommufd's io_pagetable
// (docs/vfio-iommufd-model.md, Pieces): one IOAS's areas, reserved and
// allowed ranges, iova_alignment, automatic IOVA allocation, and the
// domains that mirror the areas.
//
//   IoPagetable iopt(&process_memory);
//   auto pages = std::make_shared<IoptPages>(IoptPages{uva, len, true});
//   uint64_t iova = 0;
//   int rc = iopt.Map({{pages, 0, len}}, kPermRead | kPermWrite,
//                     /*fixed=*/false, &iova);   // 0 or -errno
//
// Pinning is lazy as in the kernel: the pages an area spans are pinned
// (GUP-classified and charged to ProcessMemory) only while the area lives in
// an io_pagetable with at least one domain. Pins are counted per page of
// the IoptPages, so a page shared by several areas (COPY, cuts, sub-page
// areas) or domains is charged once, when its count leaves 0.
// Thread-safety: none; the owning IommufdCtx serialises all calls.
#ifndef VIOMMU_VFIO_HOST_MODEL_IO_PAGETABLE_H_
#define VIOMMU_VFIO_HOST_MODEL_IO_PAGETABLE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/btree_map.h"
#include "viommu/vfio/host/model/host_iommu_domain.h"
#include "viommu/vfio/host/model/process_memory.h"

namespace viommu::vfio::model {

// The kernel's PAGE_SIZE and HPAGE_SIZE (THP on) for iommufd's rules.
inline constexpr uint64_t kIoptPageSize = 4096;
inline constexpr uint64_t kIoptHugePageSize = 2ull << 20;

// A user VA range that areas map (iopt_pages). Shared by IOAS_COPY.
struct IoptPages {
  uint64_t uva = 0;
  uint64_t length = 0;
  bool writable = false;
  // Pin counts per page index (0 = the page holding `uva`): start index ->
  // segment; pages absent from the map are not pinned.
  struct PinSeg {
    uint64_t last;  // inclusive page index
    uint64_t count;
  };
  absl::btree_map<uint64_t, PinSeg> pins;
};

// One element of a map request: `length` bytes of `pages` from `offset`.
struct IoptPagesSlice {
  std::shared_ptr<IoptPages> pages;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// An inclusive IOVA range.
struct IovaSpan {
  uint64_t start = 0;
  uint64_t last = 0;
};

// A domain mirrored by the io_pagetable. Not owned.
struct IoptDomain {
  HostIommuDomain* domain = nullptr;
  uint64_t aperture_start = 0;
  uint64_t aperture_last = UINT64_MAX;
};

class IoPagetable {
 public:
  // `memory` is not owned and outlives this.
  explicit IoPagetable(ProcessMemory* memory) : memory_(memory) {}
  IoPagetable(const IoPagetable&) = delete;
  IoPagetable& operator=(const IoPagetable&) = delete;
  ~IoPagetable();

  // §4.5 steps 7-11 for one or more contiguous slices: alignment,
  // automatic (fixed == false) or fixed IOVA, area insertion, domain fill.
  // `*iova` is the fixed IOVA in, the chosen one out. Errors: EINVAL,
  // EOVERFLOW, ENOSPC, EEXIST, EPERM, EFAULT, ENOMEM; nothing changes on
  // error. REQUIRES: slices non-empty, each length >= 1.
  [[nodiscard]] int Map(const std::vector<IoptPagesSlice>& slices,
                        uint32_t perm, bool fixed, uint64_t* iova);
  // iopt_get_pages (§4.6 step 5): the slices covering [iova, iova+len).
  // EINVAL (len 0), EOVERFLOW, ENOENT (a gap).
  [[nodiscard]] int GetPages(uint64_t iova, uint64_t length,
                             std::vector<IoptPagesSlice>* out) const;
  // §4.7 step 4-7 for [start, last]: ENOENT (partial area / nothing) with
  // the earlier whole areas already removed. `*unmapped` = bytes removed.
  [[nodiscard]] int UnmapRange(uint64_t start, uint64_t last,
                               uint64_t* unmapped);
  // Splits the area containing `iova` (if any) after `iova` (iopt_cut_iova).
  // EINVAL when the cut is not on the alignment.
  [[nodiscard]] int CutAfter(uint64_t iova);
  bool AnyAreaIn(uint64_t start, uint64_t last) const;

  // iopt_reserve_iova: EADDRINUSE if [start, last] meets an area or an
  // allowed range. Owners may be null (selftest ADD_RESERVED).
  [[nodiscard]] int Reserve(uint64_t start, uint64_t last, const void* owner);
  void RemoveReservations(const void* owner);
  // ALLOW_IOVAS: replaces the allowed set; EADDRINUSE if any range meets a
  // reserved range (the old set is kept). REQUIRES: non-overlapping.
  [[nodiscard]] int SetAllowed(std::vector<IovaSpan> allowed);
  // The holes of the reserved ranges over [0, ~0], ascending.
  std::vector<IovaSpan> UsableRanges() const;

  // iopt_table_add_domain (§4.11): EINVAL (page > PAGE_SIZE), EADDRINUSE
  // (misaligned areas, aperture vs areas/allowed), EFAULT/ENOMEM (pin);
  // undone completely on error.
  [[nodiscard]] int AddDomain(const IoptDomain& d);
  // Unmaps everything from the domain and drops its reservations; the last
  // domain unpins all pages. Never fails.
  void RemoveDomain(HostIommuDomain* domain);

  // HUGE_PAGES=0: EINVAL (domains and areas), EADDRINUSE (misaligned).
  [[nodiscard]] int DisableLargePages();
  void EnableLargePages();
  bool large_pages_disabled() const { return disable_large_pages_; }

  uint64_t alignment() const { return alignment_; }
  size_t domain_count() const { return domains_.size(); }
  const std::vector<IoptDomain>& domains() const { return domains_; }
  size_t area_count() const { return areas_.size(); }

 private:
  struct Area {
    uint64_t last;
    std::shared_ptr<IoptPages> pages;
    uint64_t offset;  // into pages
    uint32_t perm;
    uint64_t uva() const { return pages->uva + offset; }
  };
  struct Reserved {
    uint64_t start;
    uint64_t last;
    const void* owner;
  };

  int AllocIova(uint64_t addr, uint64_t length, uint64_t* iova) const;
  int CheckFixedIova(uint64_t iova, uint64_t length) const;
  bool ReservedIn(uint64_t start, uint64_t last) const;
  bool AllowedIn(uint64_t start, uint64_t last) const;
  // Lowest hole of reserved ∪ areas inside [lo, hi] fitting the request.
  bool FindHole(uint64_t lo, uint64_t hi, uint64_t length, uint64_t align,
                uint64_t page_offset, uint64_t* iova) const;
  uint64_t ComputeAlignment(bool disable_large, uint64_t extra) const;
  bool AreasAligned(uint64_t align) const;
  // Pins/unpins the pages of [offset, offset + len) of `p`: EFAULT (not
  // ordinary memory), ENOMEM (rlimit); nothing changes on error.
  int PinSpan(IoptPages* p, uint64_t offset, uint64_t len);
  void UnpinSpan(IoptPages* p, uint64_t offset, uint64_t len);
  int PinArea(uint64_t iova, const Area& a) {
    return PinSpan(a.pages.get(), a.offset, a.last - iova + 1);
  }
  void UnpinArea(uint64_t iova, const Area& a) {
    UnpinSpan(a.pages.get(), a.offset, a.last - iova + 1);
  }
  int MapAreaIntoDomains(uint64_t iova, const Area& a);
  void RemoveArea(absl::btree_map<uint64_t, Area>::iterator it);

  ProcessMemory* memory_;                  // not owned
  absl::btree_map<uint64_t, Area> areas_;  // iova -> area
  std::vector<Reserved> reserved_;         // may overlap each other
  std::vector<IovaSpan> allowed_;          // sorted, disjoint; empty = all
  std::vector<IoptDomain> domains_;
  uint64_t alignment_ = 1;
  bool disable_large_pages_ = false;
};

}  // namespace viommu::vfio::model

#endif  // VIOMMU_VFIO_HOST_MODEL_IO_PAGETABLE_H_
