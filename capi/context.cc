// The C API's context: creation and teardown, transactions, the exit
// handler's MMIO entry point, the MSI window, and the helpers every entry
// point shares (control guard, callback scopes, struct copies, errno).
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "capi/capi_internal.h"
#include "capi/vfio_state.h"
#include "viommu.h"
#include "viommu/hw/core/msi.h"
#include "viommu/util/check.h"

namespace viommu::capi {
namespace {

// The contexts whose callbacks the calling thread is running, innermost
// last (a callback may cause a callback of another context).
thread_local std::vector<const viommu_ctx*> tl_callback_ctxs;

}  // namespace

CallbackScope::CallbackScope(const viommu_ctx* ctx)
    : pause_(ctx->grace.get()) {
  tl_callback_ctxs.push_back(ctx);
}

CallbackScope::~CallbackScope() { tl_callback_ctxs.pop_back(); }

bool CallbackScope::Active(const viommu_ctx* ctx) {
  return std::find(tl_callback_ctxs.begin(), tl_callback_ctxs.end(), ctx) !=
         tl_callback_ctxs.end();
}

ControlGuard::ControlGuard(viommu_ctx* ctx, const char* fn) : ctx_(ctx) {
  if (CallbackScope::Active(ctx)) {
    status_ = -EDEADLK;
    ctx->Logf(VIOMMU_LOG_ERR, "%s: called from a callback of the same context",
              fn);
    return;
  }
  if (ctx->control_busy.exchange(true, std::memory_order_acquire)) {
    status_ = -EBUSY;
    ctx->Logf(VIOMMU_LOG_ERR,
              "%s: another control call is running on this context (control "
              "calls must be serialised)",
              fn);
  }
}

ControlGuard::~ControlGuard() {
  if (status_ == 0) ctx_->control_busy.store(false, std::memory_order_release);
}

int StatusToErrno(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return EINVAL;
    case absl::StatusCode::kNotFound:
      return ENOENT;
    case absl::StatusCode::kAlreadyExists:
      return EEXIST;
    case absl::StatusCode::kResourceExhausted:
      return ENOMEM;
    case absl::StatusCode::kUnimplemented:
      return EOPNOTSUPP;
    case absl::StatusCode::kPermissionDenied:
      return EPERM;
    case absl::StatusCode::kUnavailable:
      return EAGAIN;
    default:
      return EIO;
  }
}

int Fail(const viommu_ctx* ctx, const char* fn, const absl::Status& status) {
  ctx->Logf(VIOMMU_LOG_ERR, "%s: %s", fn, status.message());
  return -StatusToErrno(status);
}

int FailErrno(const viommu_ctx* ctx, const char* fn, int err,
              const std::string& msg) {
  ctx->Logf(VIOMMU_LOG_ERR, "%s: %s", fn, msg);
  return -err;
}

int CopyStructIn(const void* in, size_t min_size, size_t our_size, void* out) {
  if (in == nullptr) return -EINVAL;
  size_t n;
  std::memcpy(&n, in, sizeof(n));  // the leading size_t
  if (n < min_size) return -EINVAL;
  if (n > our_size) {
    const auto* bytes = static_cast<const unsigned char*>(in);
    for (size_t i = our_size; i < n; ++i) {
      if (bytes[i] != 0) return -E2BIG;
    }
    n = our_size;
  }
  std::memset(out, 0, our_size);
  std::memcpy(out, in, n);
  return 0;
}

std::string EndpointName(uint16_t segment, uint8_t bus, uint8_t devfn) {
  return absl::StrFormat("%04x:%02x:%02x.%x", segment, bus, devfn >> 3,
                         devfn & 7);
}

memory::MemTxResult MsiWindowOps::Read(uint64_t, uint64_t* value, unsigned,
                                       memory::MemTxAttrs) {
  *value = 0;
  return memory::MemTxResult::Ok();
}

memory::MemTxResult MsiWindowOps::Write(uint64_t offset, uint64_t value,
                                        unsigned size,
                                        memory::MemTxAttrs attrs) {
  // As hw::MsiController: only 4-byte writes are messages.
  if (size != 4 || ctx_->cb.msi == nullptr) return memory::MemTxResult::Ok();
  const uint32_t sid =
      attrs.has_requester_id ? uint32_t{attrs.requester_id} : VIOMMU_SID_NONE;
  CallbackScope scope(ctx_);
  ctx_->cb.msi(ctx_->opaque, hw::kMsiWindowBase + offset,
               static_cast<uint32_t>(value), sid);
  return memory::MemTxResult::Ok();
}

void MsiWindowOps::Deliver(const hw::MsiMessage& m) const {
  if (ctx_->cb.msi == nullptr) return;
  const uint32_t sid = m.requester_id.has_value() ? uint32_t{*m.requester_id}
                                                  : VIOMMU_SID_NONE;
  CallbackScope scope(ctx_);
  ctx_->cb.msi(ctx_->opaque, m.address, m.data, sid);
}

}  // namespace viommu::capi

using viommu::capi::ControlGuard;

void viommu_ctx::Log(int level, const std::string& msg) const {
  if (cb.log == nullptr) return;
  viommu::capi::CallbackScope scope(this);
  cb.log(opaque, level, msg.c_str());
}

uint32_t viommu_abi_version(void) { return VIOMMU_ABI_VERSION; }

int viommu_ctx_new(const struct viommu_config* cfg,
                   const struct viommu_callbacks* cb, void* opaque,
                   viommu_ctx** out) {
  using viommu::memory::MemoryRegion;
  if (out == nullptr) return -EINVAL;
  *out = nullptr;
  viommu_config c;
  // ABI 0.1/0.2 callers end at `flags`.
  constexpr size_t kConfigV0_2 = offsetof(viommu_config, host);
  if (int r = viommu::capi::CopyStructIn(cfg, kConfigV0_2, sizeof(c), &c);
      r < 0) {
    return r;
  }
  viommu_callbacks callbacks{};
  if (cb != nullptr) {
    // ABI 0.1 callers end at `msi`.
    constexpr size_t kCallbacksV0_1 = offsetof(viommu_callbacks, fault);
    if (int r = viommu::capi::CopyStructIn(cb, kCallbacksV0_1,
                                           sizeof(callbacks), &callbacks);
        r < 0) {
      return r;
    }
  }
  if (c.flags != 0) return -EINVAL;

  auto ctx = std::make_unique<viommu_ctx>();
  ctx->cb = callbacks;
  ctx->opaque = opaque;
  ctx->grace = std::make_unique<viommu::capi::DmaGrace>();
  ctx->host_maps = std::make_unique<viommu::capi::HostMappings>(ctx.get());
  ctx->root =
      MemoryRegion::CreateContainer(&ctx->sys, "system", viommu::kSize2To64);
  ctx->msi_ops = std::make_unique<viommu::capi::MsiWindowOps>(ctx.get());
  ctx->msi_region = MemoryRegion::CreateMmio(
      &ctx->sys, "msi", viommu::hw::kMsiWindowSize, ctx->msi_ops.get());
  ctx->root->AddSubregion(viommu::hw::kMsiWindowBase, ctx->msi_region);
  ctx->system_as = std::make_unique<viommu::memory::AddressSpace>(
      &ctx->sys, ctx->root, "memory");
  ctx->io_root = MemoryRegion::CreateContainer(&ctx->sys, "io",
                                               viommu::capi::kIoSpaceSize);
  ctx->io_as = std::make_unique<viommu::memory::AddressSpace>(
      &ctx->sys, ctx->io_root, "I/O");
  if (int r = viommu::capi::CreateVfioState(ctx.get(), c); r < 0) return r;
  *out = ctx.release();
  return 0;
}

void viommu_ctx_free(viommu_ctx* ctx) {
  if (ctx == nullptr) return;
  VIOMMU_CHECK(!viommu::capi::CallbackScope::Active(ctx),
               "viommu_ctx_free from a callback of the same context");
  VIOMMU_CHECK(!ctx->control_busy.load(),
               "viommu_ctx_free during another control call");
  while (ctx->txn_depth > 0) {
    ctx->sys.CommitTransaction();
    --ctx->txn_depth;
  }
  // Zero-copy mappings are revoked and forgotten (dma_revoked for each),
  // then endpoints (their listeners unmap, their address spaces go), then
  // the vIOMMU, then the regions and the system address space.
  ctx->host_maps->DropEndpoint(nullptr);
  ctx->vfio->closing = true;  // no iova_ranges_changed while tearing down
  while (!ctx->endpoints.empty()) {
    viommu_ep_free(ctx->endpoints.begin()->second.get());
  }
  ctx->vfio.reset();  // every device detached with its endpoint
  ctx->iommu.reset();
  {
    viommu::memory::MemorySystem::Transaction txn(&ctx->sys);
    for (auto& [id, region] : ctx->regions) {
      if (region->ops != nullptr) region->ops->Fence();
      (region->io ? ctx->io_root : ctx->root)
          ->RemoveSubregion(region->mr.get());
    }
    ctx->root->RemoveSubregion(ctx->msi_region.get());
  }
  ctx->grace->Synchronize();  // the VMM may unmap its RAM once we return
  ctx->io_as.reset();
  ctx->io_root.reset();
  ctx->system_as.reset();
  ctx->region_by_mr.clear();
  ctx->regions.clear();
  ctx->msi_region.reset();
  ctx->root.reset();
  delete ctx;
}

int viommu_transaction_begin(viommu_ctx* ctx) {
  if (ctx == nullptr) return -EINVAL;
  ControlGuard guard(ctx, __func__);
  if (guard.status() != 0) return guard.status();
  ctx->sys.BeginTransaction();
  ++ctx->txn_depth;
  return 0;
}

int viommu_transaction_commit(viommu_ctx* ctx) {
  if (ctx == nullptr) return -EINVAL;
  ControlGuard guard(ctx, __func__);
  if (guard.status() != 0) return guard.status();
  if (ctx->txn_depth == 0) {
    return viommu::capi::FailErrno(ctx, __func__, EINVAL,
                                   "no open transaction");
  }
  --ctx->txn_depth;
  ctx->sys.CommitTransaction();
  if (ctx->txn_depth == 0) viommu::capi::RetireRemovedRam(ctx);
  return 0;
}

int viommu_mmio_access(viommu_ctx* ctx, uint64_t addr, uint64_t* data,
                       uint32_t size, int is_write) {
  if (ctx == nullptr) return -EINVAL;
  ControlGuard guard(ctx, __func__);
  if (guard.status() != 0) return guard.status();
  if (data == nullptr || (size != 1 && size != 2 && size != 4 && size != 8)) {
    return viommu::capi::FailErrno(
        ctx, __func__, EINVAL,
        absl::StrFormat("bad access: size %u at 0x%x", size, addr));
  }
  // A vIOMMU PCI function's BARs may be there (its queues then run here).
  viommu::capi::ViommuFunction::Hold hold(
      ctx->iommu != nullptr ? ctx->iommu->function.get() : nullptr);
  viommu::memory::Translation t =
      ctx->system_as->Translate(addr, size, is_write != 0);
  if (t.mr == nullptr) return -ENOENT;  // not ours: no log, the VMM chains
  viommu::memory::AccessFault fault;
  viommu::memory::MemTxResult r;
  if (is_write != 0) {
    // The value's low `size` bytes, little-endian (the host's order).
    r = ctx->system_as->Write(
        addr, data, size, viommu::memory::MemTxAttrs::Unspecified(), &fault);
  } else {
    uint64_t v = 0;
    r = ctx->system_as->Read(addr, &v, size,
                             viommu::memory::MemTxAttrs::Unspecified(), &fault);
    *data = v;
  }
  if (r.ok()) return 0;
  ctx->Logf(VIOMMU_LOG_DEBUG, "%s: %s of %u bytes at 0x%x failed at 0x%x",
            __func__, is_write != 0 ? "write" : "read", size, addr, fault.addr);
  return -EIO;
}

int viommu_pio_access(viommu_ctx* ctx, uint16_t port, uint32_t* data,
                      uint32_t size, int is_write) {
  if (ctx == nullptr) return -EINVAL;
  ControlGuard guard(ctx, __func__);
  if (guard.status() != 0) return guard.status();
  if (data == nullptr || (size != 1 && size != 2 && size != 4) ||
      uint32_t{port} + size > viommu::capi::kIoSpaceSize) {
    return viommu::capi::FailErrno(
        ctx, __func__, EINVAL,
        absl::StrFormat("bad access: size %u at port 0x%x", size, port));
  }
  viommu::capi::ViommuFunction::Hold hold(
      ctx->iommu != nullptr ? ctx->iommu->function.get() : nullptr);
  viommu::memory::Translation t =
      ctx->io_as->Translate(port, size, is_write != 0);
  if (t.mr == nullptr) return -ENOENT;  // not ours: no log, the VMM chains
  viommu::memory::AccessFault fault;
  viommu::memory::MemTxResult r;
  if (is_write != 0) {
    const uint32_t v = *data;  // low `size` bytes, little-endian
    r = ctx->io_as->Write(port, &v, size,
                          viommu::memory::MemTxAttrs::Unspecified(), &fault);
  } else {
    uint32_t v = 0;
    r = ctx->io_as->Read(port, &v, size,
                         viommu::memory::MemTxAttrs::Unspecified(), &fault);
    *data = r.ok() ? v : 0;
  }
  if (r.ok()) return 0;
  ctx->Logf(VIOMMU_LOG_DEBUG, "%s: %s of %u bytes at port 0x%x failed",
            __func__, is_write != 0 ? "write" : "read", size, port);
  return -EIO;
}
