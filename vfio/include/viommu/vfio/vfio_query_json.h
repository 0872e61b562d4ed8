// viommu/vfio/vfio_query_json.h — the x-query-vfio record as JSON text
// (ARCHITECTURE.md §5, a CONTRACT): the one producer both QMP's
// `x-query-vfio` (system/) and the C API's viommu_query_json (capi/) use,
// so the two can never drift apart.
//
//   std::string json = VfioQueryJson(manager.Query());
//   // {"containers": [{"id": 1, "backend": "type1", ...}]}
//
// Schema: {"containers": [{"id", "backend" ("type1" | "iommufd"),
// "address-space", "devices" (host BDFs), "iova-ranges" [{"start","end"}],
// "mappings", "dma-avail", "skipped" [{"start","end","reason"}]}]} in the
// order given (VfioManager::Query: container id order); every number is a
// JSON integer, addresses unsigned 64-bit with inclusive ends.
//
// Thread-safety: pure functions.
#ifndef VIOMMU_VFIO_VFIO_QUERY_JSON_H_
#define VIOMMU_VFIO_VFIO_QUERY_JSON_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "viommu/util/range.h"
#include "viommu/vfio/container_types.h"

namespace viommu::vfio {

// `s` as a JSON string literal, quotes included ('"' and '\\' escaped,
// control characters as \u00XX).
std::string JsonString(absl::string_view s);
// [{"start": A, "end": B}, ...] (inclusive ends).
std::string JsonRanges(const std::vector<Range>& ranges);
// The x-query-vfio "return" value.
std::string VfioQueryJson(const std::vector<ContainerQuery>& q);

}  // namespace viommu::vfio

#endif  // VIOMMU_VFIO_VFIO_QUERY_JSON_H_
