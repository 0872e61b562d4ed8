// viommu/memory/flat_range.h — one piece of a rendered address space
// (QEMU's FlatRange) and the section handed to listeners
// (QEMU's MemoryRegionSection).
//
//   const FlatRange* fr = view->Lookup(gpa);
//   if (fr && fr->mr->IsRam()) host = fr->mr->host() + fr->OffsetOf(gpa);
#ifndef VIOMMU_MEMORY_FLAT_RANGE_H_
#define VIOMMU_MEMORY_FLAT_RANGE_H_

#include <cstdint>
#include <memory>

#include "viommu/memory/memory_region.h"
#include "viommu/util/range.h"

namespace viommu::memory {

// What a listener is told about. `mr` stays valid at least until the
// callback returns (and as long as any FlatView showing it is alive).
struct MemoryRegionSection {
  MemoryRegion* mr = nullptr;
  uint64_t offset_within_region = 0;
  uint64_t offset_within_address_space = 0;
  Size128 size = 0;  // 2^64 is representable
  bool readonly = false;

  Range AddressRange() const {
    return Range::FromBaseSize(offset_within_address_space, size);
  }
  friend bool operator==(const MemoryRegionSection&,
                         const MemoryRegionSection&) = default;
};

struct FlatRange {
  Range range;                      // in the address space
  std::shared_ptr<MemoryRegion> mr; // keeps the region alive with the view
  uint64_t offset_in_region = 0;    // of range.first
  bool readonly = false;
  uint8_t log_mask = 0;             // dirty-log clients

  uint64_t OffsetOf(uint64_t addr) const {
    return offset_in_region + (addr - range.first);
  }
  MemoryRegionSection ToSection() const {
    return {mr.get(), offset_in_region, range.first, range.Size(), readonly};
  }
  // QEMU's flatrange_equal: same place, region, offset and attributes
  // (the dirty-log mask is not compared; it changes via LogStart/LogStop).
  bool SameMapping(const FlatRange& o) const {
    return range == o.range && mr == o.mr &&
           offset_in_region == o.offset_in_region && readonly == o.readonly;
  }
  // QEMU's can_merge: `next` continues this range seamlessly.
  bool CanMerge(const FlatRange& next) const {
    return range.last != UINT64_MAX && range.last + 1 == next.range.first &&
           mr == next.mr &&
           offset_in_region + (range.last - range.first) + 1 ==
               next.offset_in_region &&
           readonly == next.readonly && log_mask == next.log_mask;
  }
};

}  // namespace viommu::memory

#endif  // VIOMMU_MEMORY_FLAT_RANGE_H_
