// vfio/type1_info.h (private) — parses the bytes VFIO_IOMMU_GET_INFO filled
// in: the fixed vfio_iommu_type1_info and its capability chain
// (IOVA_RANGE, DMA_AVAIL, MIGRATION; others are skipped).
//
//   absl::StatusOr<Type1Info> info = ParseType1Info(buffer);
//
// Nothing in the buffer is trusted: every offset and count is
// bounds-checked against the bytes actually returned (min(argsz, buffer
// size)), the chain must move forward (no loops) and ranges must be
// ordered. Thread-safety: pure function.
#ifndef VIOMMU_VFIO_TYPE1_INFO_H_
#define VIOMMU_VFIO_TYPE1_INFO_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "viommu/util/range.h"

namespace viommu::vfio {

struct Type1Info {
  std::optional<uint64_t> pgsizes;  // when VFIO_IOMMU_INFO_PGSIZES
  // Present when the IOVA_RANGE capability was found (inclusive ranges in
  // the kernel's order).
  std::optional<std::vector<Range>> iova_ranges;
  std::optional<uint32_t> dma_avail;  // DMA_AVAIL capability
  // MIGRATION capability: dirty-page tracking (VFIO_IOMMU_DIRTY_PAGES)
  // granularities and the largest bitmap one GET_BITMAP may ask for.
  struct Migration {
    uint32_t flags = 0;
    uint64_t pgsize_bitmap = 0;
    uint64_t max_dirty_bitmap_size = 0;
    friend bool operator==(const Migration&, const Migration&) = default;
  };
  std::optional<Migration> migration;
};

// Errors: kDataLoss naming the malformed field (short buffer, an offset or
// count running past the data, a backwards chain, an inverted range).
[[nodiscard]] absl::StatusOr<Type1Info> ParseType1Info(
    absl::Span<const uint8_t> buffer);

}  // namespace viommu::vfio

#endif  // VIOMMU_VFIO_TYPE1_INFO_H_
