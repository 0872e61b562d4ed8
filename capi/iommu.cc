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
#include "viommu/hw/iommu/vtd_regs.h"
#include "viommu/hw/iommu/vtd_viommu.h"
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
  if (name != viommu::vtd::VtdViommu::kDriver) {
    return FailErrno(ctx, __func__, EOPNOTSUPP,
                     absl::StrFormat("unknown vIOMMU driver '%s' (known: "
                                     "intel-iommu)",
                                     name));
  }
  if (ctx->iommu != nullptr) {
    return FailErrno(ctx, __func__, EEXIST, "the context has a vIOMMU already");
  }
  auto parsed = viommu::capi::ParsePropertyList(props != nullptr ? props : "");
  if (!parsed.ok()) return viommu::capi::Fail(ctx, __func__, parsed.status());
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
  viommu::hw::ViommuHost host{.memory = &ctx->sys,
                              .system_root = ctx->root,
                              .system_as = ctx->system_as.get(),
                              .msi_region = ctx->msi_region};
  auto model = viommu::vtd::VtdViommu::Create(*parsed, host);
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
  ctx->iommu.reset();
  return 0;
}

int viommu_iommu_reset(viommu_iommu* iommu) {
  if (iommu == nullptr) return -EINVAL;
  ControlGuard guard(iommu->ctx, __func__);
  if (guard.status() != 0) return guard.status();
  iommu->model->Reset();
  return 0;
}
