// capi/vfio_state.h — the C API's VFIO: the context's host backend (the
// model host or the running kernel) and its VfioManager, the handles of
// attached host devices, and the IOVA-range bookkeeping behind the
// iova_ranges_changed callback. All logic of attach/detach, containers,
// reserved regions and valid ranges is vfio::VfioManager's.
//
// Private to capi/. Thread-safety: control calls only (the context's
// ControlGuard is held), like VfioManager.
#ifndef VIOMMU_CAPI_VFIO_STATE_H_
#define VIOMMU_CAPI_VFIO_STATE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "capi/capi_internal.h"
#include "viommu.h"
#include "viommu/util/range.h"
#include "viommu/vfio/host/host_backend.h"
#include "viommu/vfio/host/model/model_host.h"
#include "viommu/vfio/vfio_manager.h"

namespace viommu::capi {

struct VfioState {
  // Declared first, so destroyed last: containers release the host.
  std::unique_ptr<vfio::HostBackend> host;
  vfio::model::ModelHost* model = nullptr;  // `host` when it is the model
  std::unique_ptr<vfio::VfioManager> manager;
  absl::flat_hash_map<const viommu_vfio*, std::unique_ptr<viommu_vfio>> devices;
  // > 0 inside attach/detach, which report range changes themselves;
  // true while the context is freed (no callback then).
  int batch_depth = 0;
  bool closing = false;
};

// Makes ctx->vfio for cfg.host / cfg.host_dtb: 0 or a negative errno
// (logged).
int CreateVfioState(viommu_ctx* ctx, const viommu_config& cfg);
// Detaches `dev` (viommu_vfio_detach without the guard; the caller holds
// it) and frees it. iova_ranges_changed fires for the other endpoints
// whose ranges changed, and for dev's own endpoint when `notify_own`.
void DetachVfio(viommu_vfio* dev, bool notify_own);

}  // namespace viommu::capi

struct viommu_vfio {
  viommu_ep* ep = nullptr;
  viommu::vfio::HostPciAddress host;
  std::string bdf;  // "0000:01:00.0"
};

#endif  // VIOMMU_CAPI_VFIO_STATE_H_
