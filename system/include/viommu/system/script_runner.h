// viommu/system/script_runner.h — `viommu run`: plays a qtest script
// against a machine and prints a report (ARCHITECTURE.md §5, a CONTRACT).
//
//   ScriptRunner runner(vm.get(), &qmp, std::cout);
//   int status = runner.Run(script_text, "workload.qtest");   // 0 or 1
//
// Script lines: a qtest command; `# comment` (`## Title` also prints a
// heading in the report); `expect TEXT` — the previous command's answer
// must equal TEXT; `qmp JSON` — a QMP command (the runner has already
// negotiated capabilities); `expect-qmp JSON` — the previous QMP answer's
// "return" must contain JSON (every member present with an equal value,
// recursively for objects); `sleep MS` — wait in real time. A failed
// expectation stops the run with the script line number, status 1.
//
// Threading: control context only.
#ifndef VIOMMU_SYSTEM_SCRIPT_RUNNER_H_
#define VIOMMU_SYSTEM_SCRIPT_RUNNER_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "viommu/system/qmp/qmp_dispatcher.h"
#include "viommu/system/qtest/qtest_session.h"
#include "viommu/system/vm.h"

namespace viommu::system {

class ScriptRunner {
 public:
  // Not owned; all must outlive the runner.
  ScriptRunner(Vm* vm, QmpDispatcher* qmp, std::ostream& report);
  // Returns the exit status: 0 when every expectation held.
  int Run(absl::string_view script, absl::string_view name);

 private:
  bool Fail(absl::string_view name, int line_no, const std::string& why);

  std::ostream& report_;
  QtestSession qtest_;
  QmpSession qmp_;
  std::string last_qtest_;
  std::string last_qmp_;
  std::string irq_lines_;
};

// The default workload `viommu run` plays without a script, and the
// machine arguments it uses when none are given.
absl::string_view DefaultWorkload();
std::vector<std::string> DefaultWorkloadMachineArgs();

// True if `actual` contains `expected`: objects member by member
// (recursively), other values by equality.
bool JsonContains(JsonNode* actual, JsonNode* expected);

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_SCRIPT_RUNNER_H_
