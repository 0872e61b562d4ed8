#include "viommu/system/machine_commands.h"

#include <map>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "viommu/system/trace_commands.h"
#include "viommu/system/vfio_commands.h"
#include "viommu/util/status_macros.h"

namespace viommu::system {
namespace {

QmpValue DeviceDeletedData(const std::string& id) {
  QmpValue data = QmpValue::EmptyObject();
  JsonObject* o = json_node_get_object(data.node());
  json_object_set_string_member(o, "device", id.c_str());
  json_object_set_string_member(
      o, "path", absl::StrCat("/machine/peripheral/", id).c_str());
  return data;
}

}  // namespace

void RegisterMachineCommands(QmpDispatcher* qmp, Vm* vm,
                             std::function<void()> quit) {
  qmp->Register("query-status", [](const QmpArgs&) {
    return QmpValue::Parse(
        R"({"status": "running", "singlestep": false, "running": true})");
  });
  qmp->Register("quit", [quit](const QmpArgs&) -> absl::StatusOr<QmpValue> {
    quit();
    return QmpValue::EmptyObject();
  });
  qmp->Register(
      "system_reset", [qmp, vm](const QmpArgs&) -> absl::StatusOr<QmpValue> {
        vm->SystemReset();
        VIOMMU_ASSIGN_OR_RETURN(
            QmpValue data,
            QmpValue::Parse(R"({"guest": false, "reason": "host-qmp-reset"})"));
        qmp->EmitEvent("RESET", data);
        return QmpValue::EmptyObject();
      });
  // A guest reset (port 0xcf9) is announced like QEMU's.
  vm->machine().set_guest_reset_handler([qmp, vm] {
    vm->SystemReset();
    absl::StatusOr<QmpValue> data =
        QmpValue::Parse(R"({"guest": true, "reason": "guest-reset"})");
    if (data.ok()) qmp->EmitEvent("RESET", *data);
  });
  qmp->Register(
      "device_add", [vm](const QmpArgs& args) -> absl::StatusOr<QmpValue> {
        VIOMMU_ASSIGN_OR_RETURN(std::string driver, args.GetString("driver"));
        hw::DeviceSpec spec{.driver = driver};
        for (auto& [k, v] : args.AsStringMap()) {
          if (k == "driver") continue;
          if (k == "id") {
            spec.id = v;
          } else {
            spec.props[k] = v;
          }
        }
        VIOMMU_RETURN_IF_ERROR(vm->DeviceAdd(spec));
        return QmpValue::EmptyObject();
      });
  qmp->Register("device_del",
                [qmp, vm](const QmpArgs& args) -> absl::StatusOr<QmpValue> {
                  VIOMMU_ASSIGN_OR_RETURN(std::string id, args.GetString("id"));
                  VIOMMU_RETURN_IF_ERROR(vm->DeviceDel(id));
                  qmp->EmitEvent("DEVICE_DELETED", DeviceDeletedData(id));
                  return QmpValue::EmptyObject();
                });
  qmp->Register(
      "x-query-msi", [vm](const QmpArgs& args) -> absl::StatusOr<QmpValue> {
        const hw::MsiController& msi = vm->machine().msi();
        std::string out = absl::StrCat("{\"total\": ", msi.TotalCount());
        if (args.Has("requester-id")) {
          std::map<std::string, std::string> a = args.AsStringMap();
          uint32_t rid = 0;
          if (!absl::SimpleAtoi(a["requester-id"], &rid) || rid > 0xffff) {
            return absl::InvalidArgumentError(
                "x-query-msi: 'requester-id' must be an integer 0..65535");
          }
          const auto id = static_cast<uint16_t>(rid);
          absl::StrAppend(&out, ", \"count\": ", msi.Count(id));
          if (std::optional<hw::MsiMessage> m = msi.Last(id)) {
            absl::StrAppend(&out, ", \"last\": {\"address\": ", m->address,
                            ", \"data\": ", m->data, "}");
          }
        }
        return QmpValue::FromJsonText(out + "}");
      });
  RegisterVfioCommands(qmp, vm);
  RegisterTraceCommands(qmp);
}

}  // namespace viommu::system
