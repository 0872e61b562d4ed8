// The C API's vIOMMU: a hw::Viommu built from a driver name and QEMU
// property strings on the context's memory (no machine).
#include <cerrno>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/container/btree_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "capi/capi_internal.h"
#include "viommu.h"
#include "viommu/hw/iommu/virtio/virtio_iommu.h"
#include "viommu/hw/iommu/vtd_regs.h"
#include "viommu/hw/iommu/vtd_viommu.h"
#include "viommu/util/parse_devfn.h"
#include "viommu/util/range.h"

namespace viommu::capi {
namespace {

// "caching-mode=on,aw-bits=48" -> {{"caching-mode","on"},{"aw-bits","48"}};
// a bare "key" means key=on, as on QEMU's command line.
[[nodiscard]] absl::StatusOr<absl::btree_map<std::string, std::string>>
ParsePropertyList(absl::string_view props) {
  absl::btree_map<std::string, std::string> out;
  if (props.empty()) return out;
  for (absl::string_view item : absl::StrSplit(props, ',')) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (kv.first.empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("empty property name in '%s'", props));
    }
    const bool has_value = item.find('=') != absl::string_view::npos;
    out[std::string(kv.first)] = has_value ? std::string(kv.second) : "on";
  }
  return out;
}

// The host every vIOMMU model of `ctx` is built on.
viommu::hw::ViommuHost HostOf(viommu_ctx* ctx) {
  viommu::hw::ViommuHost host{.memory = &ctx->sys,
                              .system_root = ctx->root,
                              .system_as = ctx->system_as.get(),
                              .msi_region = ctx->msi_region};
  // Remapped interrupts reach `msi` whole (bits 63:40 carry an x2APIC
  // destination above 255), on the DMA thread that wrote the request.
  host.msi_sink = [ctx](const viommu::hw::MsiMessage& m) {
    ctx->msi_ops->Deliver(m);
  };
  return host;
}

// virtio-iommu-pci: the model, and its PCI function at `addr` (required:
// the VMM owns enumeration) on a bus whose BARs map into the context.
int NewVirtioIommu(viommu_ctx* ctx,
                   absl::btree_map<std::string, std::string> props,
                   viommu_iommu** out) {
  const char* fn = "viommu_iommu_new";
  auto addr = props.find("addr");
  if (addr == props.end()) {
    return FailErrno(ctx, fn, EINVAL,
                     "virtio-iommu-pci needs addr=SLOT.FN: the devfn on bus "
                     "0 where the VMM exposes its PCI function");
  }
  absl::StatusOr<uint8_t> devfn =
      viommu::ParseDevfn(viommu::virtio_iommu::kDriverName, addr->second);
  if (!devfn.ok()) return Fail(ctx, fn, devfn.status());
  if (ctx->endpoints.contains(uint32_t{*devfn})) {  // segment 0, bus 0
    return FailErrno(ctx, fn, EEXIST,
                     absl::StrFormat("%s is an endpoint already",
                                     EndpointName(0, 0, *devfn)));
  }
  auto model = viommu::virtio_iommu::VirtioIommu::Create(props, HostOf(ctx));
  if (!model.ok()) return Fail(ctx, fn, model.status());
  auto iommu = std::make_unique<viommu_iommu>();
  iommu->ctx = ctx;
  const uint8_t fn_devfn = *devfn;
  auto function = ViommuFunction::Create(
      &ctx->sys, model->get(), fn_devfn, ctx->root, ctx->io_root,
      [ctx, fn_devfn](int pin, bool level) {
        if (ctx->cb.intx == nullptr) return;
        CallbackScope scope(ctx);
        ctx->cb.intx(ctx->opaque, fn_devfn, static_cast<uint32_t>(pin),
                     level ? 1 : 0);
      });
  if (!function.ok()) return Fail(ctx, fn, function.status());
  iommu->model = *std::move(model);
  iommu->function = *std::move(function);
  *out = iommu.get();
  ctx->iommu = std::move(iommu);
  return 0;
}

}  // namespace
}  // namespace viommu::capi

using viommu::capi::ControlGuard;
using viommu::capi::FailErrno;

int viommu_iommu_new(viommu_ctx* ctx, const char* driver, const char* props,
                     viommu_iommu** out) {
  if (ctx == nullptr) return -EINVAL;
  ControlGuard guard(ctx, __func__);
  if (guard.status() != 0) return guard.status();
  if (out == nullptr || driver == nullptr) {
    return FailErrno(ctx, __func__, EINVAL, "driver or out is NULL");
  }
  *out = nullptr;
  const std::string_view name(driver);
  const bool is_vtd = name == viommu::vtd::VtdViommu::kDriver;
  const bool is_virtio = name == viommu::virtio_iommu::VirtioIommu::kDriver;
  if (!is_vtd && !is_virtio) {
    return FailErrno(ctx, __func__, EOPNOTSUPP,
                     absl::StrFormat("unknown vIOMMU driver '%s' (known: "
                                     "intel-iommu, virtio-iommu-pci)",
                                     name));
  }
  if (ctx->iommu != nullptr) {
    return FailErrno(ctx, __func__, EEXIST, "the context has a vIOMMU already");
  }
  auto parsed = viommu::capi::ParsePropertyList(props != nullptr ? props : "");
  if (!parsed.ok()) return viommu::capi::Fail(ctx, __func__, parsed.status());
  if (is_virtio) return viommu::capi::NewVirtioIommu(ctx, *parsed, out);
  const viommu::Range regs = viommu::Range::FromBaseSize(
      viommu::vtd::kRegBase, viommu::vtd::kRegBlockSize);
  bool clash = false;
  ctx->root->ForEachSubregionOverlapping(
      regs, [&](viommu::memory::MemoryRegion*) { clash = true; });
  if (clash) {
    return FailErrno(ctx, __func__, EEXIST,
                     absl::StrFormat("a region overlaps the VT-d registers "
                                     "[0x%x, 0x%x]",
                                     regs.first, regs.last));
  }
  auto model =
      viommu::vtd::VtdViommu::Create(*parsed, viommu::capi::HostOf(ctx));
  if (!model.ok()) return viommu::capi::Fail(ctx, __func__, model.status());
  auto iommu = std::make_unique<viommu_iommu>();
  iommu->ctx = ctx;
  iommu->model = *std::move(model);
  *out = iommu.get();
  ctx->iommu = std::move(iommu);
  return 0;
}

int viommu_iommu_free(viommu_iommu* iommu) {
  if (iommu == nullptr) return 0;
  viommu_ctx* ctx = iommu->ctx;
  ControlGuard guard(ctx, __func__);
  if (guard.status() != 0) return guard.status();
  if (iommu->endpoints > 0) {
    return FailErrno(
        ctx, __func__, EBUSY,
        absl::StrFormat("%d endpoint(s) still behind it", iommu->endpoints));
  }
  // Its destructor takes the function's lock (a DMA thread's fault may be
  // on the way); the model it refers to goes after it.
  iommu->function.reset();
  ctx->iommu.reset();
  return 0;
}

int viommu_iommu_reset(viommu_iommu* iommu) {
  if (iommu == nullptr) return -EINVAL;
  ControlGuard guard(iommu->ctx, __func__);
  if (guard.status() != 0) return guard.status();
  viommu::capi::ViommuFunction::Hold hold(iommu->function.get());
  iommu->model->Reset();
  if (iommu->function != nullptr) iommu->function->Reset();
  return 0;
}

int viommu_iommu_pci_config(viommu_iommu* iommu, uint32_t offset,
                            uint32_t* data, uint32_t size, int is_write) {
  if (iommu == nullptr) return -EINVAL;
  viommu_ctx* ctx = iommu->ctx;
  ControlGuard guard(ctx, __func__);
  if (guard.status() != 0) return guard.status();
  viommu::capi::ViommuFunction* fn = iommu->function.get();
  if (fn == nullptr) {
    return FailErrno(
        ctx, __func__, EOPNOTSUPP,
        absl::StrFormat("%s is not a PCI function", iommu->model->driver()));
  }
  if (data == nullptr || (size != 1 && size != 2 && size != 4) ||
      offset >= fn->config_size() || size > fn->config_size() - offset) {
    return FailErrno(
        ctx, __func__, EINVAL,
        absl::StrFormat("bad config access: size %u at 0x%x (space 0x%x)", size,
                        offset, fn->config_size()));
  }
  viommu::capi::ViommuFunction::Hold hold(fn);
  if (is_write != 0) {
    fn->ConfigWrite(offset, *data, size);
  } else {
    *data = fn->ConfigRead(offset, size);
  }
  return 0;
}
