// libFuzzer target: arbitrary bytes on a QMP connection of build/viommu's
// machine (q35, edu at 04.0, dma-testdev at 05.0, vfio-pci of the model
// host's 0000:01:00.0 at 06.0), with every command build/viommu registers
// (RegisterMachineCommands: device_add/device_del of edu and vfio-pci,
// system_reset, the x-query-* and x-debug-vfio-* commands).
//
// Oracle, beyond "no crash":
//  * every line the session sends is a JSON object json-glib parses, and
//    is the greeting, {"return": ...}, {"error": {"class": str, "desc":
//    str}} or an event ({"event": str, "timestamp": ...});
//  * the session answers (events aside) exactly once per message or error
//    a second QmpJsonStreamer sees in the same bytes: never more;
//  * afterwards the session still works: 0xFF (which resynchronises QEMU's
//    lexer from any state), qmp_capabilities and query-status get a
//    {"return": ...} for query-status.
//
// One machine per process, reset between inputs (machine_reuse.h). An
// input that may have changed what a reset leaves (a device_add/device_del
// or x-debug-vfio-fail-map that succeeded, seen in the decoded messages
// and their answers, an event other than RESET, a changed device set)
// gets a new machine for the next input, so an
// input's trace (the non-event answers, fuzz_trace.h) does not depend on
// the inputs before it.
#include <json-glib/json-glib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "tests/fuzz/fuzz_trace.h"
#include "tests/fuzz/machine_reuse.h"
#include "viommu/system/machine_commands.h"
#include "viommu/system/qmp/qmp_dispatcher.h"
#include "viommu/system/qmp/qmp_json_streamer.h"
#include "viommu/system/vm.h"

namespace viommu::fuzz::qmp {
namespace {

using system::QmpDispatcher;
using system::QmpJsonStreamer;
using system::QmpSession;
using system::Vm;

[[noreturn]] void Fail(const char* what, absl::string_view line) {
  std::fprintf(stderr, "qmp_fuzzer oracle: %s: %.*s\n", what,
               static_cast<int>(std::min<size_t>(line.size(), 400)),
               line.data());
  __builtin_trap();
}

enum class Kind { kGreeting, kReturn, kError, kEvent };

// The kind of one answer line; traps on anything QMP never sends.
Kind Classify(absl::string_view line) {
  // An "id" beyond the double range is echoed as QEMU 7.2 and 10.0 echo
  // it, `inf` or `-inf` (not JSON; docs/qmp.md): parse the rest.
  std::string fixed(line);
  for (absl::string_view tail : {", \"id\": inf}", ", \"id\": -inf}"}) {
    if (absl::EndsWith(fixed, tail)) {
      fixed.resize(fixed.size() - tail.size());
      fixed += ", \"id\": null}";
      break;
    }
  }
  line = fixed;
  JsonParser* parser = json_parser_new();
  GError* error = nullptr;
  if (!json_parser_load_from_data(parser, line.data(),
                                  static_cast<gssize>(line.size()), &error)) {
    g_clear_error(&error);
    g_object_unref(parser);
    Fail("answer is not JSON", line);
  }
  JsonNode* root = json_parser_get_root(parser);
  if (root == nullptr || !JSON_NODE_HOLDS_OBJECT(root)) {
    g_object_unref(parser);
    Fail("answer is not an object", line);
  }
  JsonObject* o = json_node_get_object(root);
  auto is_string = [](JsonNode* n) {
    return n != nullptr && JSON_NODE_HOLDS_VALUE(n) &&
           json_node_get_value_type(n) == G_TYPE_STRING;
  };
  Kind kind;
  if (json_object_has_member(o, "QMP")) {
    kind = Kind::kGreeting;
  } else if (json_object_has_member(o, "return")) {
    kind = Kind::kReturn;
  } else if (json_object_has_member(o, "event")) {
    if (!is_string(json_object_get_member(o, "event")) ||
        !json_object_has_member(o, "timestamp")) {
      g_object_unref(parser);
      Fail("malformed event", line);
    }
    kind = Kind::kEvent;
  } else {
    JsonNode* err = json_object_get_member(o, "error");
    if (err == nullptr || !JSON_NODE_HOLDS_OBJECT(err)) {
      g_object_unref(parser);
      Fail("neither return, error nor event", line);
    }
    JsonObject* e = json_node_get_object(err);
    if (!is_string(json_object_get_member(e, "class")) ||
        !is_string(json_object_get_member(e, "desc"))) {
      g_object_unref(parser);
      Fail("error without class and desc strings", line);
    }
    kind = Kind::kError;
  }
  g_object_unref(parser);
  return kind;
}

// Classifies `lines` (the greeting first if `first`), traces the non-event
// ones, marks the machine dirty on events a reset may not undo; returns how
// many are answers (neither greeting nor event) and lists them.
size_t CheckAnswers(const std::vector<std::string>& lines, bool first,
                    bool* dirty, bool tracing,
                    std::vector<std::string>* answered) {
  answered->clear();
  size_t answers = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const Kind k = Classify(lines[i]);
    if ((k == Kind::kGreeting) != (first && i == 0)) {
      Fail("greeting", lines[i]);
    }
    if (k == Kind::kEvent) {
      // system_reset's RESET changes nothing a reset does not redo; any
      // other event (DEVICE_DELETED, ...) may have.
      if (!absl::StrContains(lines[i], "\"event\": \"RESET\"")) {
        *dirty = true;
      }
      continue;
    }
    if (k != Kind::kGreeting) {
      ++answers;
      answered->push_back(lines[i]);
    }
    if (tracing) Trace().Add(lines[i].data(), lines[i].size());
  }
  return answers;
}

// The PCI devices present, as text, to notice a changed device set.
std::string DeviceSet(Vm& vm) {
  std::string s;
  vm.machine().pci_bus().ForEachDevice([&](hw::pci::PciDevice* dev) {
    s += std::to_string(dev->devfn());
    s += dev->type_name();
    s += ';';
  });
  return s;
}

struct Machine {
  std::unique_ptr<Vm> vm;
  QmpDispatcher qmp;
  std::string devices;  // DeviceSet() when built
};

std::unique_ptr<Machine> NewMachine() {
  system::VmConfig config;
  config.ram_size = 16 << 20;
  config.devices.push_back({.head = "edu", .props = {{"addr", "04.0"}}});
  config.devices.push_back(
      {.head = "dma-testdev", .props = {{"addr", "05.0"}}});
  config.devices.push_back(
      {.head = "vfio-pci",
       .props = {{"host", "0000:01:00.0"}, {"addr", "06.0"}}});
  auto vm = Vm::Create(config);
  if (!vm.ok()) {
    std::fprintf(stderr, "%s\n", vm.status().ToString().c_str());
    __builtin_trap();
  }
  auto m = std::make_unique<Machine>();
  m->vm = *std::move(vm);
  system::RegisterMachineCommands(&m->qmp, m->vm.get(), [] {});
  m->devices = DeviceSet(*m->vm);
  return m;
}

}  // namespace
}  // namespace viommu::fuzz::qmp

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace viommu::fuzz::qmp;  // NOLINT: one entry point
  static std::unique_ptr<Machine> machine;
  static bool dirty = false;  // the last input may have changed the machine
  if (machine != nullptr && (viommu::fuzz::Mode().fresh || dirty)) {
    machine.reset();
  }
  if (machine == nullptr) {
    machine = NewMachine();
  } else {
    viommu::fuzz::ResetForReuse(machine->vm->machine());
  }
  dirty = false;
  if (size > (1 << 16)) return 0;  // bounded work per input

  const bool tracing = viommu::fuzz::Mode().tracing;
  viommu::fuzz::Trace().Clear();
  std::vector<std::string> lines;
  {
    QmpSession session(&machine->qmp, [&](absl::string_view line) {
      lines.emplace_back(line);
    });
    session.Greet();
    const absl::string_view input(reinterpret_cast<const char*>(data), size);
    session.Feed(input);

    // What the session saw, through a second streamer: one answer each.
    // A message that may change what a reset leaves (hot-plug, fault
    // injection) makes the machine dirty if it succeeded.
    size_t messages = 0;
    std::vector<bool> risky;
    QmpJsonStreamer observer;
    const auto count = [&](const absl::StatusOr<std::string>& m) {
      ++messages;
      risky.push_back(m.ok() && (absl::StrContains(*m, "device_") ||
                                 absl::StrContains(*m, "fail-map")));
    };
    observer.Feed(input, count);
    std::vector<std::string> answered;
    size_t answers =
        CheckAnswers(lines, /*first=*/true, &dirty, tracing, &answered);
    if (answers != messages) {
      std::fprintf(stderr, "answers %zu, messages %zu\n", answers, messages);
      Fail("answer count", input.substr(0, 200));
    }
    for (size_t i = 0; i < answered.size(); ++i) {
      if (risky[i] && absl::StartsWith(answered[i], "{\"return\"")) {
        dirty = true;
      }
    }

    // The session still works after any input: 0xFF ends what is pending
    // (at most a token's message and the stray 0xFF are answered), then
    // negotiation (answered "already complete" if the input did it) and
    // query-status.
    lines.clear();
    messages = 0;
    constexpr absl::string_view kResync =
        "\xff{\"execute\":\"qmp_capabilities\"}{\"execute\":\"query-status\"}";
    session.Feed(kResync);
    observer.Feed(kResync, count);
    std::vector<std::string> non_events;
    answers = CheckAnswers(lines, /*first=*/false, &dirty, /*tracing=*/false,
                           &answered);
    for (const std::string& l : lines) {
      if (!absl::StrContains(l, "\"timestamp\"")) non_events.push_back(l);
    }
    if (answers != messages || answers < 3 || answers > 4) {
      std::fprintf(stderr, "answers %zu, messages %zu\n", answers, messages);
      Fail("resync answers", input.substr(0, 200));
    }
    if (!absl::StartsWith(non_events.back(), "{\"return\": {\"status\"")) {
      Fail("query-status after the input", non_events.back());
    }
  }
  if (DeviceSet(*machine->vm) != machine->devices) dirty = true;
  return 0;
}

VIOMMU_FUZZ_TRACE_HOOKS()
