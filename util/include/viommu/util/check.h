// viommu/util/check.h — VIOMMU_CHECK for broken internal invariants.
//
// Only an internal invariant may abort the process (STYLE.md rule 11);
// guest- or user-triggerable errors become absl::Status or architectural
// error state instead.
//
//   VIOMMU_CHECK(depth_ > 0) << "commit without begin";   // not supported:
//   VIOMMU_CHECK(depth_ > 0, "commit without begin");      // this form is.
#ifndef VIOMMU_UTIL_CHECK_H_
#define VIOMMU_UTIL_CHECK_H_

namespace viommu::internal {
[[noreturn]] void CheckFailed(const char* file, int line, const char* expr,
                              const char* message);
}  // namespace viommu::internal

#define VIOMMU_CHECK(cond, ...)                                        \
  do {                                                                 \
    if (__builtin_expect(!(cond), 0)) {                                \
      ::viommu::internal::CheckFailed(__FILE__, __LINE__, #cond,       \
                                      "" __VA_ARGS__);                 \
    }                                                                  \
  } while (0)

#endif  // VIOMMU_UTIL_CHECK_H_
