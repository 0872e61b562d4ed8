// vfio/host/model/type1_iova_list.h (private) — type1's valid-IOVA list
// operations (docs/vfio-type1-model.md), kernel quirks included:
// resizing to an aperture drops a window whose last byte equals the new
// start or whose first byte equals the new last, instead of shrinking it.
//
//   std::vector<IovaWindow> copy = iova_list;
//   AperResize(&copy, 0, aperture_last);
//   if (ResvExclude(&copy, resv) < 0) return -EINVAL;   // nothing left
//
// Thread-safety: pure functions on caller-owned lists.
#ifndef VIOMMU_VFIO_HOST_MODEL_TYPE1_IOVA_LIST_H_
#define VIOMMU_VFIO_HOST_MODEL_TYPE1_IOVA_LIST_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "viommu/vfio/host/model/type1_iommu.h"

namespace viommu::vfio::model::type1 {

using IovaList = std::vector<IovaWindow>;

// vfio_iommu_aper_resize: an empty list becomes [start, last]; otherwise
// windows are trimmed/deleted to fit [start, last].
void AperResize(IovaList* list, uint64_t start, uint64_t last);
// vfio_iommu_resv_exclude: punches every region except DIRECT_RELAXABLE out
// of the list. 0, or -EINVAL when nothing is left.
int ResvExclude(IovaList* list, absl::Span<const ResvRegion> resv);
// vfio_iommu_iova_dma_valid: true iff the list is empty or one window holds
// all of [start, last].
bool DmaValid(const IovaList& list, uint64_t start, uint64_t last);

}  // namespace viommu::vfio::model::type1

#endif  // VIOMMU_VFIO_HOST_MODEL_TYPE1_IOVA_LIST_H_
