// The C API's VFIO: host devices attached as endpoints through the
// context's VfioManager, their regions and device fd, the endpoints' valid
// IOVA ranges (and the iova_ranges_changed callback), and the x-query-vfio
// JSON query.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "capi/capi_internal.h"
#include "capi/vfio_state.h"
#include "viommu.h"
#include "viommu/util/check.h"
#include "viommu/vfio/host/host_platform.h"
#include "viommu/vfio/host/host_platform_dtb.h"
#include "viommu/vfio/host/linux/linux_host.h"
#include "viommu/vfio/host/model/host_device.h"
#include "viommu/vfio/host/vfio_uapi.h"
#include "viommu/vfio/vfio_query_json.h"
#include "viommu/vfio/vfio_status.h"

namespace viommu::capi {
namespace {

// The iommufd object every IOMMUFD attach of a context shares (one
// /dev/iommu, as one `-object iommufd` would).
constexpr char kIommufdId[] = "capi";

// The context whose iova_ranges_changed callback this thread runs: it may
// call viommu_ep_iova_ranges.
thread_local const viommu_ctx* tl_ranges_cb_ctx = nullptr;

// A host call's errno when the status carries one, else the mapping of
// StatusToErrno.
int VfioFail(const viommu_ctx* ctx, const char* fn, const absl::Status& s) {
  ctx->Logf(VIOMMU_LOG_ERR, "%s: %s", fn, s.message());
  const std::optional<int> e = vfio::StatusErrno(s);
  return e.has_value() && *e != 0 ? -(*e < 0 ? -*e : *e) : -StatusToErrno(s);
}

const std::vector<Range>& WholeSpace() {
  static const std::vector<Range>* const kWhole =
      new std::vector<Range>{Range{0, UINT64_MAX}};
  return *kWhole;
}

// The ranges viommu_ep_iova_ranges reports.
std::vector<Range> EpRanges(const viommu_ep* ep) {
  if (ep->vfio == nullptr) return WholeSpace();
  vfio::VfioContainer* c = ep->ctx->vfio->manager->ContainerOf(ep->vfio->host);
  if (c == nullptr || c->iova_ranges().empty()) return WholeSpace();
  return c->iova_ranges();
}

using RangeSnapshot = absl::flat_hash_map<viommu_ep*, std::vector<Range>>;

// The ranges of every endpoint with a host device, and of `extra`.
RangeSnapshot Snapshot(viommu_ctx* ctx, viommu_ep* extra) {
  RangeSnapshot snap;
  for (auto& [key, dev] : ctx->vfio->devices) snap[dev->ep] = EpRanges(dev->ep);
  if (extra != nullptr) snap[extra] = EpRanges(extra);
  return snap;
}

void NotifyRangesChanged(viommu_ctx* ctx, viommu_ep* ep) {
  if (ctx->cb.iova_ranges_changed == nullptr || ctx->vfio->closing) return;
  CallbackScope scope(ctx);
  const viommu_ctx* saved = tl_ranges_cb_ctx;
  tl_ranges_cb_ctx = ctx;
  ctx->cb.iova_ranges_changed(ctx->opaque, ep);
  tl_ranges_cb_ctx = saved;
}

// Fires iova_ranges_changed for each endpoint of `before` (but `skip`)
// whose ranges differ now.
void NotifyDiff(viommu_ctx* ctx, const RangeSnapshot& before,
                const viommu_ep* skip) {
  for (auto& [ep, ranges] : before) {
    if (ep == skip) continue;
    if (EpRanges(ep) != ranges) NotifyRangesChanged(ctx, ep);
  }
}

// A container re-read its ranges outside attach/detach (a host map
// EINVAL): tell the endpoints whose devices it holds.
void OnContainerRangesChanged(viommu_ctx* ctx, uint32_t container) {
  if (ctx->vfio->batch_depth > 0) return;
  std::vector<viommu_ep*> eps;
  for (auto& [key, dev] : ctx->vfio->devices) {
    vfio::VfioContainer* c = ctx->vfio->manager->ContainerOf(dev->host);
    if (c != nullptr && c->id() == container) eps.push_back(dev->ep);
  }
  for (viommu_ep* ep : eps) NotifyRangesChanged(ctx, ep);
}

[[nodiscard]] absl::StatusOr<std::unique_ptr<vfio::HostBackend>> MakeHost(
    const viommu_config& cfg, vfio::model::ModelHost** model) {
  const std::string_view name = cfg.host != nullptr ? cfg.host : "model";
  if (name == "linux") {
    if (cfg.host_dtb != nullptr) {
      return absl::InvalidArgumentError(
          "host_dtb is for the model host only (host \"linux\" given)");
    }
    return std::unique_ptr<vfio::HostBackend>(
        std::make_unique<vfio::LinuxHost>());
  }
  if (name != "model") {
    return absl::InvalidArgumentError(absl::StrFormat(
        "unknown host '%s' (known: model, linux)", std::string(name)));
  }
  vfio::HostPlatform platform;
  if (cfg.host_dtb != nullptr) {
    absl::StatusOr<vfio::HostPlatform> p =
        vfio::ReadHostPlatformDtbFile(cfg.host_dtb);
    if (!p.ok()) return p.status();
    platform = *std::move(p);
  } else {
    platform = vfio::DefaultHostPlatform();
  }
  // No timers: a device's DMA runs at the command write, inside the
  // viommu_vfio_region_rw that starts it. No interrupt sink: the model's
  // interrupts need SET_IRQS on a device fd, which the C API does not
  // hand out for the model.
  absl::StatusOr<std::unique_ptr<vfio::model::ModelHost>> host =
      vfio::model::ModelHost::Create(
          std::move(platform),
          vfio::model::ModelHostOptions{
              .device_factory = vfio::model::ModelHostDevice::Factory({})});
  if (!host.ok()) return host.status();
  *model = host->get();
  return std::unique_ptr<vfio::HostBackend>(*std::move(host));
}

// The device's region `index` (GET_REGION_INFO): 0 or a negative errno.
int RegionInfo(viommu_vfio* dev, uint32_t index,
               vfio::uapi::vfio_region_info* out, const char* fn) {
  viommu_ctx* ctx = dev->ep->ctx;
  VfioState& st = *ctx->vfio;
  absl::StatusOr<int> fd = st.manager->DeviceFd(dev->host);
  if (!fd.ok()) return VfioFail(ctx, fn, fd.status());
  *out = {};
  out->argsz = sizeof(*out);
  out->index = index;
  const int rc = st.host->Ioctl(*fd, vfio::uapi::kVfioDeviceGetRegionInfo,
                                vfio::AsArg(out));
  if (rc < 0) {
    return FailErrno(ctx, fn, -rc,
                     absl::StrFormat("%s: VFIO_DEVICE_GET_REGION_INFO index "
                                     "%u: %s",
                                     dev->bdf, index, std::strerror(-rc)));
  }
  return 0;
}

}  // namespace

int CreateVfioState(viommu_ctx* ctx, const viommu_config& cfg) {
  auto st = std::make_unique<VfioState>();
  absl::StatusOr<std::unique_ptr<vfio::HostBackend>> host =
      MakeHost(cfg, &st->model);
  if (!host.ok()) return Fail(ctx, "viommu_ctx_new", host.status());
  st->host = *std::move(host);
  st->manager = std::make_unique<vfio::VfioManager>(
      st->host.get(),
      vfio::VfioManager::Options{
          .on_error =
              [ctx](uint32_t id, const absl::Status& s) {
                ctx->Logf(VIOMMU_LOG_ERR, "vfio container %u: %s", id,
                          s.message());
              },
          .on_warning =
              [ctx](uint32_t id, const absl::Status& s) {
                ctx->Logf(VIOMMU_LOG_WARNING, "vfio container %u: %s", id,
                          s.message());
              },
          .on_iova_ranges_changed =
              [ctx](uint32_t id, const std::vector<Range>&) {
                OnContainerRangesChanged(ctx, id);
              }});
  ctx->vfio = std::move(st);
  return 0;
}

void DetachVfio(viommu_vfio* dev, bool notify_own) {
  viommu_ep* ep = dev->ep;
  viommu_ctx* ctx = ep->ctx;
  VfioState& st = *ctx->vfio;
  RangeSnapshot before = Snapshot(ctx, nullptr);
  ++st.batch_depth;
  if (ep->iommu != nullptr) {
    ep->iommu->model->UnsetHostIommuDevice(ep->bus, ep->devfn);
  }
  // The last device of a container takes it down: no host mapping stays.
  if (absl::Status s = st.manager->DetachDevice(dev->host); !s.ok()) {
    ctx->Logf(VIOMMU_LOG_WARNING, "viommu_vfio_detach: %s", s.message());
  }
  ep->vfio = nullptr;
  st.devices.erase(dev);
  --st.batch_depth;
  NotifyDiff(ctx, before, notify_own ? nullptr : ep);
}

}  // namespace viommu::capi

using viommu::capi::ControlGuard;
using viommu::capi::FailErrno;

int viommu_vfio_attach(viommu_ep* ep, const char* host, uint32_t mode,
                       viommu_vfio** out) {
  if (ep == nullptr) return -EINVAL;
  viommu_ctx* ctx = ep->ctx;
  ControlGuard guard(ctx, __func__);
  if (guard.status() != 0) return guard.status();
  if (out == nullptr || host == nullptr) {
    return FailErrno(ctx, __func__, EINVAL, "host or out is NULL");
  }
  *out = nullptr;
  if (mode > VIOMMU_VFIO_IOMMUFD) {
    return FailErrno(ctx, __func__, EINVAL,
                     absl::StrFormat("unknown mode %u", mode));
  }
  absl::StatusOr<viommu::vfio::HostPciAddress> addr =
      viommu::vfio::HostPciAddress::Parse(host);
  if (!addr.ok()) return viommu::capi::Fail(ctx, __func__, addr.status());
  const std::string ep_name =
      viommu::capi::EndpointName(ep->segment, ep->bus, ep->devfn);
  if (ep->vfio != nullptr) {
    return FailErrno(ctx, __func__, EEXIST,
                     absl::StrFormat("%s has host device %s already", ep_name,
                                     ep->vfio->bdf));
  }
  viommu::capi::VfioState& st = *ctx->vfio;
  const bool iommufd =
      mode == VIOMMU_VFIO_IOMMUFD ||
      (mode == VIOMMU_VFIO_AUTO && st.host->DeviceCdevPath(*addr).ok());
  // Behind a vIOMMU the endpoint's own DMA space; identity endpoints share
  // the guest memory map, so their devices may share a container (QEMU's
  // address_space_memory).
  viommu::memory::AddressSpace* as =
      ep->iommu != nullptr ? ep->as.get() : ctx->system_as.get();
  viommu::capi::RangeSnapshot before = viommu::capi::Snapshot(ctx, ep);
  ++st.batch_depth;
  auto done = [&](int r) {
    --st.batch_depth;
    return r;
  };
  absl::StatusOr<viommu::vfio::VfioContainer*> c = st.manager->AttachDevice(
      as, {.host = *addr, .iommufd = iommufd ? viommu::capi::kIommufdId : ""});
  if (!c.ok()) return done(viommu::capi::VfioFail(ctx, __func__, c.status()));
  if (ep->iommu != nullptr) {
    absl::StatusOr<viommu::devcore::HostIommuDevice> hiod =
        st.manager->HostIommuInfo(*addr);
    absl::Status s = hiod.status();
    if (hiod.ok()) {
      hiod->name = absl::StrFormat("%s (host %s)", ep_name, addr->ToString());
      s = ep->iommu->model->SetHostIommuDevice(ep->bus, ep->devfn, *hiod);
    }
    if (!s.ok()) {
      (void)st.manager->DetachDevice(*addr);
      return done(viommu::capi::VfioFail(ctx, __func__, s));
    }
  }
  auto dev = std::make_unique<viommu_vfio>();
  dev->ep = ep;
  dev->host = *addr;
  dev->bdf = addr->ToString();
  ep->vfio = dev.get();
  *out = dev.get();
  st.devices[dev.get()] = std::move(dev);
  done(0);
  viommu::capi::NotifyDiff(ctx, before, nullptr);
  return 0;
}

void viommu_vfio_detach(viommu_vfio* dev) {
  if (dev == nullptr) return;
  ControlGuard guard(dev->ep->ctx, __func__);
  VIOMMU_CHECK(guard.status() == 0,
               "viommu_vfio_detach: from a callback or during another "
               "control call on the same context");
  viommu::capi::DetachVfio(dev, /*notify_own=*/true);
}

int viommu_vfio_region_info(viommu_vfio* dev, uint32_t index,
                            struct viommu_vfio_region* info) {
  if (dev == nullptr) return -EINVAL;
  viommu_ctx* ctx = dev->ep->ctx;
  ControlGuard guard(ctx, __func__);
  if (guard.status() != 0) return guard.status();
  if (info == nullptr || info->size < sizeof(viommu_vfio_region)) {
    return FailErrno(ctx, __func__, EINVAL, "info is NULL or too small");
  }
  viommu::vfio::uapi::vfio_region_info ri;
  if (int r = viommu::capi::RegionInfo(dev, index, &ri, __func__); r < 0) {
    return r;
  }
  viommu_vfio_region o{};
  o.size = info->size;
  o.flags = ri.flags & (VIOMMU_VFIO_REGION_F_READ | VIOMMU_VFIO_REGION_F_WRITE |
                        VIOMMU_VFIO_REGION_F_MMAP);
  o.len = ri.size;
  o.offset = ri.offset;
  std::memcpy(info, &o, sizeof(o));
  return 0;
}

int viommu_vfio_region_rw(viommu_vfio* dev, uint32_t index, uint64_t offset,
                          void* buf, size_t len, int is_write) {
  if (dev == nullptr) return -EINVAL;
  viommu_ctx* ctx = dev->ep->ctx;
  ControlGuard guard(ctx, __func__);
  if (guard.status() != 0) return guard.status();
  if (buf == nullptr && len > 0) {
    return FailErrno(ctx, __func__, EINVAL, "buf is NULL");
  }
  viommu::vfio::uapi::vfio_region_info ri;
  if (int r = viommu::capi::RegionInfo(dev, index, &ri, __func__); r < 0) {
    return r;
  }
  const uint32_t need =
      is_write != 0 ? VIOMMU_VFIO_REGION_F_WRITE : VIOMMU_VFIO_REGION_F_READ;
  if ((ri.flags & need) == 0 || offset > ri.size || len > ri.size - offset) {
    return FailErrno(
        ctx, __func__, EINVAL,
        absl::StrFormat("%s region %u (0x%x bytes, flags 0x%x): %s of 0x%x "
                        "bytes at 0x%x",
                        dev->bdf, index, ri.size, ri.flags,
                        is_write != 0 ? "write" : "read", len, offset));
  }
  if (len == 0) return 0;
  viommu::capi::VfioState& st = *ctx->vfio;
  absl::StatusOr<int> fd = st.manager->DeviceFd(dev->host);
  if (!fd.ok()) return viommu::capi::VfioFail(ctx, __func__, fd.status());
  const int64_t n = is_write != 0
                        ? st.host->Pwrite(*fd, buf, len, ri.offset + offset)
                        : st.host->Pread(*fd, buf, len, ri.offset + offset);
  if (n == static_cast<int64_t>(len)) return 0;
  const int err = n < 0 ? static_cast<int>(-n) : EIO;
  return FailErrno(
      ctx, __func__, err,
      absl::StrFormat("%s region %u: %s of 0x%x bytes at 0x%x: %s", dev->bdf,
                      index, is_write != 0 ? "write" : "read", len, offset,
                      n < 0 ? std::strerror(err) : "short transfer"));
}

int viommu_vfio_device_fd(viommu_vfio* dev, int* fd) {
  if (dev == nullptr) return -EINVAL;
  viommu_ctx* ctx = dev->ep->ctx;
  ControlGuard guard(ctx, __func__);
  if (guard.status() != 0) return guard.status();
  if (fd == nullptr) return FailErrno(ctx, __func__, EINVAL, "fd is NULL");
  *fd = -1;
  viommu::capi::VfioState& st = *ctx->vfio;
  if (st.model != nullptr) {
    return FailErrno(ctx, __func__, EOPNOTSUPP,
                     "the model host's device fds are in-process handles, "
                     "not kernel fds (use viommu_vfio_region_rw)");
  }
  absl::StatusOr<int> r = st.manager->DeviceFd(dev->host);
  if (!r.ok()) return viommu::capi::VfioFail(ctx, __func__, r.status());
  *fd = *r;
  return 0;
}

int viommu_ep_iova_ranges(viommu_ep* ep, struct viommu_iova_range* ranges,
                          size_t n, size_t* count) {
  if (ep == nullptr) return -EINVAL;
  viommu_ctx* ctx = ep->ctx;
  // Allowed inside the context's iova_ranges_changed callback, whose
  // control call is waiting on this thread.
  std::optional<ControlGuard> guard;
  if (viommu::capi::tl_ranges_cb_ctx != ctx) {
    guard.emplace(ctx, __func__);
    if (guard->status() != 0) return guard->status();
  }
  if (count == nullptr || (ranges == nullptr && n > 0)) {
    return FailErrno(ctx, __func__, EINVAL, "count is NULL, or ranges with n");
  }
  const std::vector<viommu::Range> r = viommu::capi::EpRanges(ep);
  for (size_t i = 0; i < n && i < r.size(); ++i) {
    ranges[i].start = r[i].first;
    ranges[i].end = r[i].last;
  }
  *count = r.size();
  return 0;
}

int viommu_query_json(viommu_ctx* ctx, const char* what, char** json) {
  if (ctx == nullptr) return -EINVAL;
  ControlGuard guard(ctx, __func__);
  if (guard.status() != 0) return guard.status();
  if (what == nullptr || json == nullptr) {
    return FailErrno(ctx, __func__, EINVAL, "what or json is NULL");
  }
  *json = nullptr;
  const std::string_view w(what);
  if (w != "x-query-vfio" && w != "vfio") {
    return FailErrno(ctx, __func__, EOPNOTSUPP,
                     absl::StrFormat("unknown query '%s' (known: "
                                     "x-query-vfio)",
                                     std::string(w)));
  }
  const std::string text =
      viommu::vfio::VfioQueryJson(ctx->vfio->manager->Query());
  auto* p = static_cast<char*>(std::malloc(text.size() + 1));
  if (p == nullptr) return FailErrno(ctx, __func__, ENOMEM, "out of memory");
  std::memcpy(p, text.c_str(), text.size() + 1);
  *json = p;
  return 0;
}

void viommu_free(void* p) { std::free(p); }
