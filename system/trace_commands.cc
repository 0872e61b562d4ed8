#include "viommu/system/trace_commands.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "viommu/util/status_macros.h"
#include "viommu/util/trace.h"

namespace viommu::system {
namespace {

// The events `name` selects; a plain name that is no event is an error.
[[nodiscard]] absl::StatusOr<std::vector<trace::Event>> Select(
    const QmpArgs& args) {
  VIOMMU_ASSIGN_OR_RETURN(std::string name, args.GetString("name"));
  std::vector<trace::Event> events = trace::Trace::Match(name);
  if (events.empty() && !trace::Trace::IsPattern(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown event \"", name, "\""));
  }
  return events;
}

}  // namespace

void RegisterTraceCommands(QmpDispatcher* qmp) {
  qmp->Register("trace-event-get-state",
                [](const QmpArgs& args) -> absl::StatusOr<QmpValue> {
                  VIOMMU_ASSIGN_OR_RETURN(std::vector<trace::Event> events,
                                          Select(args));
                  std::string out = "[";
                  for (trace::Event e : events) {
                    absl::StrAppend(
                        &out, out.size() > 1 ? ", " : "", "{\"name\": \"",
                        trace::Trace::Info(e).name,
                        "\", \"vcpu\": false, \"state\": \"",
                        trace::Trace::IsEnabled(e) ? "enabled" : "disabled",
                        "\"}");
                  }
                  return QmpValue::FromJsonText(out + "]");
                });
  qmp->Register("trace-event-set-state",
                [](const QmpArgs& args) -> absl::StatusOr<QmpValue> {
                  VIOMMU_ASSIGN_OR_RETURN(std::vector<trace::Event> events,
                                          Select(args));
                  std::map<std::string, std::string> a = args.AsStringMap();
                  auto it = a.find("enable");
                  if (it == a.end()) {
                    return absl::InvalidArgumentError(
                        "Parameter 'enable' is missing");
                  }
                  if (it->second != "on" && it->second != "off") {
                    return absl::InvalidArgumentError(
                        "Invalid parameter type for 'enable', expected: "
                        "boolean");
                  }
                  VIOMMU_ASSIGN_OR_RETURN(std::string name,
                                          args.GetString("name"));
                  trace::Trace::SetState(name, it->second == "on");
                  return QmpValue::EmptyObject();
                });
}

}  // namespace viommu::system
