// viommu/util/status_macros.h — early-return helpers for absl::Status.
//
// Debian's Abseil (20220623) ships none, so viommu keeps its own:
//
//   VIOMMU_RETURN_IF_ERROR(container.Map(iova, size));
//   VIOMMU_ASSIGN_OR_RETURN(auto fd, OpenGroup(n));
#ifndef VIOMMU_UTIL_STATUS_MACROS_H_
#define VIOMMU_UTIL_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define VIOMMU_RETURN_IF_ERROR(expr)                     \
  do {                                                   \
    ::absl::Status viommu_status_ = (expr);              \
    if (!viommu_status_.ok()) return viommu_status_;     \
  } while (0)

#define VIOMMU_STATUS_CONCAT_INNER_(a, b) a##b
#define VIOMMU_STATUS_CONCAT_(a, b) VIOMMU_STATUS_CONCAT_INNER_(a, b)

#define VIOMMU_ASSIGN_OR_RETURN(lhs, expr)                               \
  VIOMMU_ASSIGN_OR_RETURN_IMPL_(                                         \
      VIOMMU_STATUS_CONCAT_(viommu_statusor_, __LINE__), lhs, expr)

#define VIOMMU_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = std::move(tmp).value()

#endif  // VIOMMU_UTIL_STATUS_MACROS_H_
