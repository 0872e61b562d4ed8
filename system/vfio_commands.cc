#include "viommu/system/vfio_commands.h"

#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "viommu/util/status_macros.h"
#include "viommu/vfio/host/model/host_device.h"
#include "viommu/vfio/vfio_query_json.h"

namespace viommu::system {
namespace {

// One JSON quoting for every VFIO query (vfio/vfio_query_json.h).
std::string Quote(absl::string_view s) { return vfio::JsonString(s); }
std::string RangesJson(const std::vector<Range>& r) {
  return vfio::JsonRanges(r);
}

}  // namespace

std::string VfioDevicesJson(const VfioPassthrough& vfio) {
  std::string out = "{\"devices\": [";
  bool first = true;
  for (const auto& a : vfio.devices()) {
    const VfioPciDevice* dev = vfio.Device(*a);
    if (dev == nullptr) continue;
    const char* mode = "none";
    if (dev->irq_mode() == VfioPciDevice::IrqMode::kIntx) mode = "intx";
    if (dev->irq_mode() == VfioPciDevice::IrqMode::kMsi) mode = "msi";
    const VfioPciDevice::Stats& st = dev->stats();
    absl::StrAppend(
        &out, first ? "" : ", ", "{\"id\": ", Quote(a->id),
        ", \"host\": ", Quote(dev->host()), ", \"devfn\": ", a->devfn,
        ", \"device-reset\": ",
        (dev->host_info().device_flags & vfio::uapi::kDeviceFlagsReset)
            ? "true"
            : "false",
        ", \"irq-mode\": ", Quote(mode),
        ", \"msi-delivered\": ", st.msi_delivered,
        ", \"intx-asserted\": ", st.intx_asserted,
        ", \"intx-unmasked\": ", st.intx_unmasked,
        ", \"host-errors\": ", st.host_errors, ", \"last-host-error\": ",
        Quote(dev->last_host_error().ok() ? ""
                                          : dev->last_host_error().message()),
        "}");
    first = false;
  }
  return out + "]}";
}

namespace {

// The debug commands look inside the model host; a real kernel has no such
// window.
[[nodiscard]] absl::Status NotModelError(const char* command) {
  return absl::FailedPreconditionError(
      absl::StrCat(command,
                   ": only with -machine vfio-host=model (this machine passes "
                   "real devices through: vfio-host=linux)"));
}

}  // namespace

void RegisterVfioCommands(QmpDispatcher* qmp, Vm* vm) {
  qmp->Register("x-query-vfio", [vm](const QmpArgs&) {
    return QmpValue::FromJsonText(vfio::VfioQueryJson(vm->vfio().Query()));
  });
  qmp->Register("x-query-vfio-devices", [vm](const QmpArgs&) {
    return QmpValue::FromJsonText(VfioDevicesJson(vm->vfio()));
  });
  qmp->Register(
      "x-debug-vfio-host", [vm](const QmpArgs&) -> absl::StatusOr<QmpValue> {
        VfioPassthrough& v = vm->vfio();
        if (v.model_host() == nullptr)
          return NotModelError("x-debug-vfio-host");
        vfio::model::ModelHost& host = *v.model_host();
        uint64_t mappings = 0;
        for (int fd : host.ContainerFds()) {
          mappings += host.ContainerMappingCount(fd).value_or(0);
        }
        std::string out = absl::StrCat(
            "{\"host-mappings\": ", mappings,
            ", \"locked-pages\": ", host.locked_pages(),
            ", \"errors\": ", v.errors(), ", \"last-error\": ",
            Quote(v.last_error().ok() ? "" : v.last_error().message()),
            ", \"devices\": [");
        bool first = true;
        for (const vfio::HostDeviceDesc& d : host.platform().devices) {
          auto* dev = static_cast<vfio::model::ModelHostDevice*>(
              host.device(d.address));
          if (dev == nullptr) continue;
          const std::optional<uint64_t> fault = dev->last_fault_iova();
          absl::StrAppend(&out, first ? "" : ", ",
                          "{\"host\": ", Quote(d.address.ToString()),
                          ", \"dma-completed\": ", dev->completed_dma_count(),
                          ", \"iommu-faults\": ", dev->iommu_fault_count(),
                          ", \"last-fault-iova\": ",
                          fault ? absl::StrCat(*fault) : "-1", "}");
          first = false;
        }
        return QmpValue::FromJsonText(out + "]}");
      });
  qmp->Register(
      "x-debug-vfio-fail-map",
      [vm](const QmpArgs& args) -> absl::StatusOr<QmpValue> {
        std::map<std::string, std::string> a = args.AsStringMap();
        uint64_t n = 0;
        int err = 0;
        if (!absl::SimpleAtoi(a["n"], &n) ||
            !absl::SimpleAtoi(a.count("errno") ? a["errno"] : "12", &err)) {
          return absl::InvalidArgumentError(
              "x-debug-vfio-fail-map: expects integers 'n' (and 'errno')");
        }
        vfio::model::ModelHost* host = vm->vfio().model_host();
        if (host == nullptr) return NotModelError("x-debug-vfio-fail-map");
        host->FailNthMapDma(n, err);
        return QmpValue::EmptyObject();
      });
  vm->vfio().set_iova_ranges_changed_handler(
      [qmp](uint32_t id, const std::vector<Range>& ranges) {
        absl::StatusOr<QmpValue> data = QmpValue::FromJsonText(
            absl::StrCat("{\"container\": ", id,
                         ", \"iova-ranges\": ", RangesJson(ranges), "}"));
        if (data.ok()) qmp->EmitEvent("VFIO_IOVA_RANGES_CHANGED", *data);
      });
}

}  // namespace viommu::system
