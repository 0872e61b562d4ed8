// tests/capi/cxx17_header.cc — viommu.h from a C++17 translation unit
// (built with -std=c++17 -Wall -Wextra -Wpedantic -Werror); the symbols
// have C linkage, so this links against the C API unchanged.
#include <cstdio>

#include "viommu.h"

int main() {
  static_assert(sizeof(viommu_config) >= sizeof(size_t));
  viommu_config cfg{};
  cfg.size = sizeof(cfg);
  viommu_ctx* ctx = nullptr;
  if (viommu_ctx_new(&cfg, nullptr, nullptr, &ctx) != 0) return 1;
  viommu_ctx_free(ctx);
  std::printf("c++17 header: ok\n");
  return viommu_abi_version() == VIOMMU_ABI_VERSION ? 0 : 1;
}
