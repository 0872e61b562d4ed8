// The C API's PCI endpoints: an AddressSpace per function, on the system
// memory (identity) or on its vIOMMU's DMA root, and DMA through it.
#include <cerrno>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"
#include "capi/capi_internal.h"
#include "capi/vfio_state.h"
#include "viommu.h"
#include "viommu/util/check.h"

namespace viommu::capi {
namespace {

uint32_t EndpointKey(uint16_t segment, uint8_t bus, uint8_t devfn) {
  return uint32_t{segment} << 16 | uint32_t{bus} << 8 | devfn;
}

uint32_t FaultReason(memory::AccessFault::Kind kind) {
  switch (kind) {
    case memory::AccessFault::Kind::kIommu:
      return VIOMMU_FAULT_TRANSLATION;
    case memory::AccessFault::Kind::kUnassigned:
      return VIOMMU_FAULT_UNASSIGNED;
    case memory::AccessFault::Kind::kReadonly:
      return VIOMMU_FAULT_READONLY;
    default:
      return VIOMMU_FAULT_DEVICE;
  }
}

// The endpoint's DMA listeners, then its address space; the vIOMMU keeps
// the device's DMA root (VT-d keeps it across unplug, as QEMU).
void FreeEndpoint(viommu_ep* ep) {
  viommu_ctx* ctx = ep->ctx;
  // Its host device first: the container listens on the DMA space.
  if (ep->vfio != nullptr) DetachVfio(ep->vfio, /*notify_own=*/false);
  for (auto& [id, listener] : ep->listeners) listener->Stop();
  ep->listeners.clear();
  ep->as.reset();
  if (ep->iommu != nullptr) --ep->iommu->endpoints;
  ctx->endpoints.erase(EndpointKey(ep->segment, ep->bus, ep->devfn));
}

}  // namespace
}  // namespace viommu::capi

using viommu::capi::ControlGuard;
using viommu::capi::FailErrno;

int viommu_ep_new(viommu_ctx* ctx, uint16_t segment, uint8_t bus, uint8_t devfn,
                  viommu_iommu* iommu, viommu_ep** out) {
  if (ctx == nullptr) return -EINVAL;
  ControlGuard guard(ctx, __func__);
  if (guard.status() != 0) return guard.status();
  if (out == nullptr) return FailErrno(ctx, __func__, EINVAL, "out is NULL");
  *out = nullptr;
  const std::string name = viommu::capi::EndpointName(segment, bus, devfn);
  if (iommu != nullptr && iommu->ctx != ctx) {
    return FailErrno(ctx, __func__, EINVAL,
                     "the vIOMMU belongs to another context");
  }
  if (iommu != nullptr && segment != 0) {
    return FailErrno(
        ctx, __func__, EINVAL,
        absl::StrFormat("%s: the vIOMMU serves segment 0 only", name));
  }
  const uint32_t key = viommu::capi::EndpointKey(segment, bus, devfn);
  if (ctx->endpoints.contains(key)) {
    return FailErrno(ctx, __func__, EEXIST,
                     absl::StrFormat("%s exists already", name));
  }
  auto ep = std::make_unique<viommu_ep>();
  ep->ctx = ctx;
  ep->segment = segment;
  ep->bus = bus;
  ep->devfn = devfn;
  ep->iommu = iommu;
  ep->attrs = viommu::memory::MemTxAttrs::Requester(ep->sid());
  if (iommu != nullptr) {
    ep->as = std::make_unique<viommu::memory::AddressSpace>(
        &ctx->sys, iommu->model->DmaRoot(bus, devfn),
        iommu->model->DmaSpaceName(bus, devfn));
    ++iommu->endpoints;
  } else {
    ep->as = std::make_unique<viommu::memory::AddressSpace>(
        &ctx->sys, ctx->root, "ep-" + name);
  }
  *out = ep.get();
  ctx->endpoints[key] = std::move(ep);
  return 0;
}

void viommu_ep_free(viommu_ep* ep) {
  if (ep == nullptr) return;
  viommu_ctx* ctx = ep->ctx;
  ControlGuard guard(ctx, __func__);
  VIOMMU_CHECK(guard.status() == 0,
               "viommu_ep_free: from a callback or during another control "
               "call on the same context");
  viommu::capi::FreeEndpoint(ep);
}

int viommu_dma_rw(viommu_ep* ep, uint64_t iova, void* buf, size_t len,
                  uint32_t flags, struct viommu_dma_fault* fault) {
  if (ep == nullptr || (buf == nullptr && len > 0)) return -EINVAL;
  if ((flags & ~VIOMMU_DMA_WRITE) != 0) return -EINVAL;
  if (fault != nullptr && fault->size < sizeof(viommu_dma_fault)) {
    return -EINVAL;
  }
  if (len == 0) return 0;
  const bool is_write = (flags & VIOMMU_DMA_WRITE) != 0;
  viommu::memory::AccessFault f;
  viommu::memory::MemTxResult r =
      is_write ? ep->as->Write(iova, buf, len, ep->attrs, &f)
               : ep->as->Read(iova, buf, len, ep->attrs, &f);
  if (r.ok()) return 0;
  if (fault != nullptr) {
    viommu_dma_fault out{};
    out.size = fault->size;
    out.iova = f.addr;
    out.sid = ep->sid();
    out.reason = viommu::capi::FaultReason(f.kind);
    out.flags = is_write ? VIOMMU_FAULT_F_WRITE : 0;
    out.segment = ep->segment;
    std::memcpy(fault, &out, sizeof(out));
  }
  return f.kind == viommu::memory::AccessFault::Kind::kDevice ? -EIO : -EFAULT;
}
