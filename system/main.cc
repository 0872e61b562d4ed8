// build/viommu: a QEMU-compatible front end to the viommu machine.
//
//   viommu -M q35 -m 256M -device edu -qtest stdio     # like QEMU
//   viommu run [SCRIPT] [machine options]              # the script runner
#include <glib.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "viommu/system/command_line.h"
#include "viommu/system/log_options.h"
#include "viommu/system/machine_commands.h"
#include "viommu/system/qmp/qmp_dispatcher.h"
#include "viommu/system/qmp/qmp_server.h"
#include "viommu/system/qtest/qtest_server.h"
#include "viommu/system/script_runner.h"
#include "viommu/system/vm.h"
#include "viommu/util/status_macros.h"

namespace viommu::system {
namespace {

int Die(const absl::Status& s) {
  std::fprintf(stderr, "viommu: %s\n", std::string(s.message()).c_str());
  return 1;
}

// The QMP endpoints of -qmp and of -mon chardev=ID,mode=control.
[[nodiscard]] absl::StatusOr<std::vector<std::unique_ptr<QmpEndpoint>>>
QmpEndpoints(const VmConfig& config, QmpDispatcher* qmp) {
  std::vector<std::unique_ptr<QmpEndpoint>> out;
  for (const std::string& q : config.qmp) {
    VIOMMU_ASSIGN_OR_RETURN(QmpSocketSpec spec, ParseQmpOption(q));
    VIOMMU_ASSIGN_OR_RETURN(auto ep, QmpEndpoint::Create(qmp, spec));
    out.push_back(std::move(ep));
  }
  for (const OptionList& mon : config.monitors) {
    std::optional<std::string> id = mon.Get("chardev");
    std::optional<std::string> mode = mon.Get("mode");
    if (mode && *mode != "control") {
      return absl::InvalidArgumentError(
          "-mon: only mode=control (QMP) is supported");
    }
    const OptionList* chardev = nullptr;
    for (const OptionList& c : config.chardevs) {
      if (c.Get("id") == id) chardev = &c;
    }
    if (!id || chardev == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("-mon: chardev '", id.value_or(""), "' not found"));
    }
    if (chardev->head != "socket" || !chardev->Get("path")) {
      return absl::InvalidArgumentError(
          absl::StrCat("-chardev ", chardev->head,
                       ": only socket,path=PATH is supported for the monitor"));
    }
    QmpSocketSpec spec{.path = *chardev->Get("path"),
                       .server = chardev->Get("server") == "on"};
    VIOMMU_ASSIGN_OR_RETURN(auto ep, QmpEndpoint::Create(qmp, spec));
    out.push_back(std::move(ep));
  }
  return out;
}

// Delivers passthrough interrupts on every main-loop iteration (QMP
// commands and anything else the loop dispatches); qtest commands deliver
// them themselves before answering.
struct PollSource {
  GSource base;
  Vm* vm;
};

gboolean PollPrepare(GSource*, gint* timeout) {
  *timeout = -1;
  return FALSE;
}

gboolean PollCheck(GSource* source) {
  reinterpret_cast<PollSource*>(source)->vm->PollInterrupts();
  return FALSE;
}

gboolean PollDispatch(GSource*, GSourceFunc, gpointer) { return TRUE; }

GSourceFuncs kPollFuncs = {PollPrepare, PollCheck, PollDispatch,
                           nullptr,     nullptr,   nullptr};

int Serve(const std::vector<std::string>& args) {
  absl::StatusOr<VmConfig> config = ParseCommandLine(args);
  if (!config.ok()) return Die(config.status());
  absl::StatusOr<bool> help = ApplyLogOptions(*config, std::cout, std::cerr);
  if (!help.ok()) return Die(help.status());
  if (*help) return 0;
  absl::StatusOr<std::unique_ptr<Vm>> vm = Vm::Create(*config);
  if (!vm.ok()) return Die(vm.status());

  GMainContext* context = g_main_context_default();
  GMainLoop* loop = g_main_loop_new(context, FALSE);
  GSource* poll = g_source_new(&kPollFuncs, sizeof(PollSource));
  reinterpret_cast<PollSource*>(poll)->vm = vm->get();
  g_source_attach(poll, context);
  QmpDispatcher qmp;
  RegisterMachineCommands(&qmp, vm->get(), [loop] { g_main_loop_quit(loop); });
  auto endpoints = QmpEndpoints(*config, &qmp);
  if (!endpoints.ok()) return Die(endpoints.status());
  for (auto& ep : *endpoints) ep->Attach(context);

  std::unique_ptr<QtestServer> qtest;
  if (config->qtest) {
    auto server = QtestServer::Create(vm->get(), *config->qtest,
                                      config->qtest_log.value_or(""),
                                      [loop] { g_main_loop_quit(loop); });
    if (!server.ok()) return Die(server.status());
    qtest = *std::move(server);
    qtest->Attach(context);
  }
  g_main_loop_run(loop);
  g_source_destroy(poll);
  g_source_unref(poll);
  qtest.reset();
  endpoints->clear();
  g_main_loop_unref(loop);
  return 0;
}

int Run(std::vector<std::string> args) {
  std::string script_name = "default workload";
  std::string script(DefaultWorkload());
  if (!args.empty() && !absl::StartsWith(args[0], "-")) {
    script_name = args[0];
    std::ifstream in(args[0]);
    if (!in) {
      return Die(absl::NotFoundError(
          absl::StrCat("run: cannot read script '", args[0], "'")));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    script = ss.str();
    args.erase(args.begin());
  }
  if (args.empty()) args = DefaultWorkloadMachineArgs();
  absl::StatusOr<VmConfig> config = ParseCommandLine(args);
  if (!config.ok()) return Die(config.status());
  absl::StatusOr<bool> help = ApplyLogOptions(*config, std::cout, std::cerr);
  if (!help.ok()) return Die(help.status());
  if (*help) return 0;
  absl::StatusOr<std::unique_ptr<Vm>> vm = Vm::Create(*config);
  if (!vm.ok()) return Die(vm.status());
  QmpDispatcher qmp;
  RegisterMachineCommands(&qmp, vm->get(), [] {});
  std::cout << "viommu run: " << script_name << " on q35 with";
  for (const std::string& a : args) std::cout << " " << a;
  std::cout << "\n";
  ScriptRunner runner(vm->get(), &qmp, std::cout);
  return runner.Run(script, script_name);
}

}  // namespace
}  // namespace viommu::system

int main(int argc, char** argv) {
  // As QEMU: a peer that goes away is an EOF or a write error, not a signal.
  signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "run") {
    args.erase(args.begin());
    return viommu::system::Run(std::move(args));
  }
  return viommu::system::Serve(args);
}
