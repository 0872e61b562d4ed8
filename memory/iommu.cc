#include "viommu/memory/iommu.h"

#include "absl/status/status.h"

namespace viommu::memory {

absl::Status IommuModel::Replay(int /*iommu_idx*/, ReplaySink /*emit*/) {
  // Deliberately no fallback: walking a 2^64 region page by page through
  // Translate() would be 2^52 calls. A model that can be replayed says so
  // by overriding this.
  return absl::UnimplementedError(
      "IOMMU model has no replay; refusing to walk the address space page "
      "by page");
}

}  // namespace viommu::memory
