#include "viommu/util/check.h"

#include <cstdio>
#include <cstdlib>

namespace viommu::internal {

void CheckFailed(const char* file, int line, const char* expr,
                 const char* message) {
  std::fprintf(stderr, "%s:%d: VIOMMU_CHECK(%s) failed%s%s\n", file, line,
               expr, message[0] ? ": " : "", message);
  std::abort();
}

}  // namespace viommu::internal
