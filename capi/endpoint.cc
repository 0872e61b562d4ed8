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
  // Its zero-copy mappings are revoked and forgotten.
  ctx->host_maps->DropEndpoint(ep);
  ep->revoke.reset();
  ep->as.reset();
  if (ep->iommu != nullptr) --ep->iommu->endpoints;
  ctx->endpoints.erase(EndpointKey(ep->segment, ep->bus, ep->devfn));
}

// Fills the fault record of a failed DMA of `ep`, hands it to the fault
// callback and, if the caller asked, copies it to `out` (up to its size).
void ReportFault(viommu_ep* ep, const memory::AccessFault& f, bool is_write,
                 viommu_dma_fault* out) {
  viommu_dma_fault rec{};
  rec.size = sizeof(rec);
  rec.iova = f.addr;
  rec.sid = ep->sid();
  rec.reason = FaultReason(f.kind);
  rec.flags = is_write ? VIOMMU_FAULT_F_WRITE : 0;
  rec.segment = ep->segment;
  const viommu_ctx* ctx = ep->ctx;
  if (ctx->cb.fault != nullptr) {
    CallbackScope scope(ctx);
    ctx->cb.fault(ctx->opaque, ep, &rec);
  }
  if (out != nullptr) {
    const size_t n = out->size < sizeof(rec) ? out->size : sizeof(rec);
    rec.size = out->size;
    std::memcpy(out, &rec, n);
  }
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
  ep->revoke = std::make_unique<viommu::capi::RevokeWatcher>(ep.get());
  ep->revoke->Start();
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
  {
    // RAM removal waits for this (capi/dma_grace.h).
    viommu::capi::DmaSection section(ep->ctx->grace.get());
    viommu::memory::MemTxResult r =
        is_write ? ep->as->Write(iova, buf, len, ep->attrs, &f)
                 : ep->as->Read(iova, buf, len, ep->attrs, &f);
    if (r.ok()) return 0;
  }
  viommu::capi::ReportFault(ep, f, is_write, fault);
  return f.kind == viommu::memory::AccessFault::Kind::kDevice ? -EIO : -EFAULT;
}

int viommu_dma_map_host(viommu_ep* ep, uint64_t iova, uint64_t* len,
                        uint32_t flags, void* cookie, void** host,
                        struct viommu_dma_fault* fault) {
  using viommu::memory::AccessFault;
  if (ep == nullptr || len == nullptr || host == nullptr || *len == 0) {
    return -EINVAL;
  }
  if ((flags & ~VIOMMU_DMA_WRITE) != 0) return -EINVAL;
  if (fault != nullptr && fault->size < sizeof(viommu_dma_fault)) {
    return -EINVAL;
  }
  viommu_ctx* ctx = ep->ctx;
  if (!ep->revoke->revocable.load(std::memory_order_relaxed)) {
    ctx->Logf(VIOMMU_LOG_DEBUG,
              "%s: the vIOMMU does not notify invalidations to %s (VT-d "
              "snoop-control=on): no zero-copy mapping",
              __func__, viommu::capi::EndpointName(ep->segment, ep->bus,
                                                   ep->devfn));
    return -EOPNOTSUPP;
  }
  const bool is_write = (flags & VIOMMU_DMA_WRITE) != 0;
  AccessFault f;
  {
    // Inside the grace period: a retiring region is not forgotten (and
    // cannot be reused) before the check under HostMappings' mutex.
    viommu::capi::DmaSection section(ctx->grace.get());
    for (;;) {
      const uint64_t gen =
          ep->revoke->generation.load(std::memory_order_acquire);
      viommu::memory::Translation t =
          ep->as->Translate(iova, *len, is_write, ep->attrs);
      if (t.mr == nullptr) {
        f = {t.iommu_fault ? AccessFault::Kind::kIommu
                           : AccessFault::Kind::kUnassigned,
             iova};
        break;
      }
      if (!t.mr->IsRam() || t.mr->IsRamDevice()) {
        ctx->Logf(VIOMMU_LOG_DEBUG,
                  "%s: iova 0x%x is not guest RAM (MMIO or ram_device): use "
                  "viommu_dma_rw",
                  __func__, iova);
        return -EOPNOTSUPP;
      }
      if (is_write && t.readonly) {
        f = {AccessFault::Kind::kReadonly, iova};
        break;
      }
      uint8_t* p = t.mr->host() + t.offset_in_region;
      const int r = ctx->host_maps->Insert(ep, gen, iova, t.len, p, t.mr,
                                           cookie);
      if (r == -EAGAIN) continue;  // revoked meanwhile: translate again
      if (r < 0) {                  // the region is being removed
        f = {AccessFault::Kind::kUnassigned, iova};
        break;
      }
      *len = t.len;
      *host = p;
      return 0;
    }
  }
  viommu::capi::ReportFault(ep, f, is_write, fault);
  return -EFAULT;
}

int viommu_dma_unmap_host(viommu_ep* ep, void* host, uint64_t len,
                          uint64_t access_len) {
  if (ep == nullptr || host == nullptr || access_len > len) return -EINVAL;
  return ep->ctx->host_maps->Remove(ep, host, len);
}
