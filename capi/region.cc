// The C API's guest memory regions: RAM by host pointer, ram_device, MMIO
// through the VMM's callbacks, read-only; placed in the system memory
// container of the context.
#include <cerrno>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_format.h"
#include "capi/capi_internal.h"
#include "viommu.h"
#include "viommu/util/range.h"

namespace viommu::capi {

bool CallbackMmioOps::Enter() {
  // Dekker-style with Fence(): either Fence sees our increment and waits,
  // or we see `fenced_` and back out.
  inflight_.fetch_add(1, std::memory_order_seq_cst);
  if (fenced_.load(std::memory_order_seq_cst)) {
    Leave();
    return false;
  }
  return true;
}

void CallbackMmioOps::Fence() {
  fenced_.store(true, std::memory_order_seq_cst);
  while (inflight_.load(std::memory_order_seq_cst) != 0) {
    std::this_thread::yield();
  }
}

memory::MemTxResult CallbackMmioOps::Read(uint64_t offset, uint64_t* value,
                                          unsigned size, memory::MemTxAttrs) {
  if (!Enter()) return memory::MemTxResult::DecodeError();
  int r;
  {
    CallbackScope scope(ctx_);
    r = read_(opaque_, offset, value, size);
  }
  Leave();
  return r == 0 ? memory::MemTxResult::Ok() : memory::MemTxResult::Error();
}

memory::MemTxResult CallbackMmioOps::Write(uint64_t offset, uint64_t value,
                                           unsigned size, memory::MemTxAttrs) {
  if (!Enter()) return memory::MemTxResult::DecodeError();
  int r;
  {
    CallbackScope scope(ctx_);
    r = write_(opaque_, offset, value, size);
  }
  Leave();
  return r == 0 ? memory::MemTxResult::Ok() : memory::MemTxResult::Error();
}

namespace {

constexpr uint32_t kKnownRegionFlags =
    VIOMMU_REGION_F_READONLY | VIOMMU_REGION_F_IO;

// The checks of viommu_region_add that need no context state.
int ValidateRegion(const viommu_ctx* ctx, const viommu_region& r) {
  const char* fn = "viommu_region_add";
  if (r.len == 0) return FailErrno(ctx, fn, EINVAL, "len is 0");
  if (r.len - 1 > UINT64_MAX - r.gpa) {
    return FailErrno(ctx, fn, EINVAL,
                     absl::StrFormat("0x%x + 0x%x passes 2^64", r.gpa, r.len));
  }
  if ((r.flags & ~kKnownRegionFlags) != 0 || r.reserved != 0) {
    return FailErrno(ctx, fn, EINVAL,
                     absl::StrFormat("unknown flags 0x%x", r.flags));
  }
  if ((r.flags & VIOMMU_REGION_F_IO) != 0) {
    if (r.kind != VIOMMU_REGION_MMIO) {
      return FailErrno(ctx, fn, EINVAL, "F_IO is for MMIO (callback) regions");
    }
    if (r.gpa >= kIoSpaceSize || r.len > kIoSpaceSize - r.gpa) {
      return FailErrno(ctx, fn, EINVAL,
                       absl::StrFormat("ports [0x%x, +0x%x) pass 0xffff", r.gpa,
                                       r.len));
    }
  }
  switch (r.kind) {
    case VIOMMU_REGION_RAM:
    case VIOMMU_REGION_RAM_DEVICE:
      if (r.hva == nullptr) return FailErrno(ctx, fn, EINVAL, "hva is NULL");
      if (r.kind == VIOMMU_REGION_RAM && r.fd < -1) {
        return FailErrno(ctx, fn, EINVAL, "fd must be -1 or an fd");
      }
      return 0;
    case VIOMMU_REGION_MMIO:
      if (r.read == nullptr || r.write == nullptr) {
        return FailErrno(ctx, fn, EINVAL, "MMIO needs read and write");
      }
      if ((r.flags & VIOMMU_REGION_F_READONLY) != 0) {
        return FailErrno(ctx, fn, EINVAL, "READONLY is for RAM only");
      }
      return 0;
    default:
      return FailErrno(ctx, fn, EINVAL,
                       absl::StrFormat("unknown kind %u", r.kind));
  }
}

}  // namespace

void RetireRemovedRam(viommu_ctx* ctx) {
  if (ctx->retired.empty()) return;
  ctx->grace->Synchronize();
  for (const memory::MemoryRegion* mr : ctx->retired) {
    ctx->host_maps->Forget(mr);
  }
  ctx->retired.clear();
}

}  // namespace viommu::capi

using viommu::capi::ControlGuard;
using viommu::capi::FailErrno;
using viommu::memory::MemoryRegion;

int viommu_region_add(viommu_ctx* ctx, const struct viommu_region* region,
                      uint32_t* id) {
  if (ctx == nullptr) return -EINVAL;
  ControlGuard guard(ctx, __func__);
  if (guard.status() != 0) return guard.status();
  viommu_region r;
  if (int e = viommu::capi::CopyIn(region, &r); e < 0) {
    return FailErrno(ctx, __func__, -e, "bad struct viommu_region or size");
  }
  if (id == nullptr) return FailErrno(ctx, __func__, EINVAL, "id is NULL");
  if (int e = viommu::capi::ValidateRegion(ctx, r); e < 0) return e;

  const bool io = (r.flags & VIOMMU_REGION_F_IO) != 0;
  const std::shared_ptr<MemoryRegion>& space = io ? ctx->io_root : ctx->root;
  const viommu::Range range = viommu::Range::FromBaseSize(r.gpa, r.len);
  std::string clash;
  space->ForEachSubregionOverlapping(range, [&](MemoryRegion* mr) {
    if (clash.empty()) clash = mr->name();
  });
  if (!clash.empty()) {
    return FailErrno(ctx, __func__, EEXIST,
                     absl::StrFormat("[0x%x, 0x%x] overlaps '%s'", range.first,
                                     range.last, clash));
  }

  auto rec = std::make_unique<viommu::capi::Region>();
  rec->id = ctx->next_region_id;
  rec->kind = r.kind;
  rec->io = io;
  rec->gpa = r.gpa;
  rec->len = r.len;
  rec->fd = r.kind == VIOMMU_REGION_RAM ? r.fd : -1;
  rec->fd_offset = rec->fd >= 0 ? r.fd_offset : 0;
  std::string name = r.name != nullptr ? std::string(r.name)
                                       : absl::StrFormat("region-%u", rec->id);
  switch (r.kind) {
    case VIOMMU_REGION_RAM: {
      auto mr = MemoryRegion::CreateRamPtr(&ctx->sys, name, r.len, r.hva);
      if (!mr.ok()) return viommu::capi::Fail(ctx, __func__, mr.status());
      rec->mr = *std::move(mr);
      break;
    }
    case VIOMMU_REGION_RAM_DEVICE:
      rec->mr = MemoryRegion::CreateRamDevice(&ctx->sys, name, r.len, r.hva);
      break;
    default: {  // VIOMMU_REGION_MMIO
      auto ops = std::make_unique<viommu::capi::CallbackMmioOps>(ctx, r);
      rec->ops = ops.get();
      rec->mr = MemoryRegion::CreateMmio(&ctx->sys, name, r.len,
                                         std::move(ops));
      break;
    }
  }
  if ((r.flags & VIOMMU_REGION_F_READONLY) != 0) rec->mr->SetReadonly(true);
  ++ctx->next_region_id;
  if (ctx->next_region_id == 0) ctx->next_region_id = 1;
  *id = rec->id;
  ctx->region_by_mr[rec->mr.get()] = rec.get();
  std::shared_ptr<MemoryRegion> mr = rec->mr;
  ctx->regions[rec->id] = std::move(rec);
  // DMA listeners run here (outside a transaction) and look the region up.
  space->AddSubregion(r.gpa, std::move(mr));
  return 0;
}

int viommu_region_del(viommu_ctx* ctx, uint32_t id) {
  if (ctx == nullptr) return -EINVAL;
  ControlGuard guard(ctx, __func__);
  if (guard.status() != 0) return guard.status();
  auto it = ctx->regions.find(id);
  if (it == ctx->regions.end()) {
    return FailErrno(ctx, __func__, ENOENT,
                     absl::StrFormat("no region %u", id));
  }
  const bool ram = it->second->kind == VIOMMU_REGION_RAM ||
                   it->second->kind == VIOMMU_REGION_RAM_DEVICE;
  if (ram) {
    // Live zero-copy mappings into it are revoked (dma_revoked, which may
    // unmap them at once); while any is left the removal is refused.
    if (int left = ctx->host_maps->Retire(it->second->mr.get()); left > 0) {
      return FailErrno(ctx, __func__, EBUSY,
                       absl::StrFormat("region %u: %d zero-copy mapping(s) "
                                       "into it still mapped",
                                       id, left));
    }
    ctx->retired.push_back(it->second->mr.get());
  }
  std::unique_ptr<viommu::capi::Region> rec = std::move(it->second);
  ctx->regions.erase(it);
  // Fence the VMM's callbacks first: DMA on an older memory map may still
  // reach the region, but no longer its callbacks.
  if (rec->ops != nullptr) rec->ops->Fence();
  // DMA listeners unmap by range: they need no record of the region.
  ctx->region_by_mr.erase(rec->mr.get());
  (rec->io ? ctx->io_root : ctx->root)->RemoveSubregion(rec->mr.get());
  // Outside a transaction the new map is published: once the DMA calls
  // that may still use the old one return, the VMM may unmap the memory.
  if (ctx->txn_depth == 0) viommu::capi::RetireRemovedRam(ctx);
  return 0;
}
