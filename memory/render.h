// memory/render.h (private) — QEMU's visibility rules, evaluated for one
// window of a root region's address space.
//
//   std::vector<FlatRange> part = RenderWindow(*root, {0x1000, 0x1fff});
//   SimplifyRanges(&part);
//
// Rendering is exact per address, so rendering a window gives the same
// bytes-to-region assignment as rendering everything and cutting the window
// out: the incremental update in MemorySystem relies on that.
#ifndef VIOMMU_MEMORY_RENDER_H_
#define VIOMMU_MEMORY_RENDER_H_

#include <vector>

#include "viommu/memory/flat_range.h"
#include "viommu/memory/memory_region.h"
#include "viommu/util/range.h"

namespace viommu::memory {

// The ranges of `root`'s view that lie in `window`, sorted and disjoint,
// not merged. Cost: O(regions overlapping the window, log-factors).
std::vector<FlatRange> RenderWindow(MemoryRegion& root, const Range& window);

// Merges neighbours that continue each other (QEMU's flatview_simplify).
// REQUIRES: sorted and disjoint.
void SimplifyRanges(std::vector<FlatRange>* ranges);

}  // namespace viommu::memory

#endif  // VIOMMU_MEMORY_RENDER_H_
