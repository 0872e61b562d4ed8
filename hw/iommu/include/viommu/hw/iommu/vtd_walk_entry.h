// viommu/hw/iommu/vtd_walk_entry.h — what a second-level page-table walk
// (WalkSl in vtd_page_walk.h) reports: one WalkEntry per slot it visits,
// in increasing IOVA order, through a WalkSink.
//
//   WalkSl(mem, cfg, ce, first, last, [&](const WalkEntry& e) {
//     if (e.perm == memory::kIommuNone) Unmap(e.iova, e.addr_mask);
//     else Map(e.iova, e.gpa, e.addr_mask, e.perm);
//   });
//
// Threading: a plain value type.
#ifndef VIOMMU_HW_IOMMU_VTD_WALK_ENTRY_H_
#define VIOMMU_HW_IOMMU_VTD_WALK_ENTRY_H_

#include <cstdint>

#include "absl/functional/function_ref.h"
#include "viommu/memory/iommu.h"
#include "viommu/util/types.h"

namespace viommu::vtd {

// One slot of a second-level page-table walk, as the walk visits it in
// increasing IOVA order.
struct WalkEntry {
  Iova iova = 0;           // slot base, aligned to addr_mask + 1
  uint64_t addr_mask = 0;  // slot size - 1 (4K, 2M, 1G leaves; an invalid
                           // slot at any level, up to 512G)
  Hwaddr gpa = 0;          // leaf: output page base; 0 when perm == kIommuNone
  // kIommuNone: the slot is not mapped (entry without R and W).
  memory::IommuPerm perm = memory::kIommuNone;
  friend bool operator==(const WalkEntry&, const WalkEntry&) = default;
};

// Receives each slot; the WalkEntry reference is valid only during the call.
using WalkSink = absl::FunctionRef<void(const WalkEntry&)>;

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_WALK_ENTRY_H_
