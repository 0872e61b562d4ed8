#include "viommu/system/script_runner.h"

#include <chrono>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace viommu::system {

bool JsonContains(JsonNode* actual, JsonNode* expected) {
  if (actual == nullptr || expected == nullptr) return actual == expected;
  if (JSON_NODE_HOLDS_OBJECT(expected)) {
    if (!JSON_NODE_HOLDS_OBJECT(actual)) return false;
    JsonObject* a = json_node_get_object(actual);
    JsonObject* e = json_node_get_object(expected);
    GList* members = json_object_get_members(e);
    bool ok = true;
    for (GList* m = members; ok && m != nullptr; m = m->next) {
      const char* key = static_cast<const char*>(m->data);
      ok = json_object_has_member(a, key) &&
           JsonContains(json_object_get_member(a, key),
                        json_object_get_member(e, key));
    }
    g_list_free(members);
    return ok;
  }
  return json_node_equal(actual, expected);
}

ScriptRunner::ScriptRunner(Vm* vm, QmpDispatcher* qmp, std::ostream& report)
    : report_(report),
      qtest_(vm,
             [this](absl::string_view out) {
               if (absl::StartsWith(out, "IRQ "))
                 irq_lines_ += std::string(out);
             }),
      qmp_(qmp, [this](absl::string_view json) {
        // Events are reported; answers are kept for expect-qmp.
        if (absl::StrContains(json, "\"event\"")) {
          report_ << "      event " << json << "\n";
        } else {
          last_qmp_ = std::string(json);
        }
      }) {
  qmp_.HandleMessage(R"({"execute": "qmp_capabilities"})");
}

bool ScriptRunner::Fail(absl::string_view name, int line_no,
                        const std::string& why) {
  report_ << "\n" << name << ":" << line_no << ": FAILED: " << why << "\n";
  return false;
}

int ScriptRunner::Run(absl::string_view script, absl::string_view name) {
  int commands = 0, expectations = 0, line_no = 0;
  for (absl::string_view raw : absl::StrSplit(script, '\n')) {
    ++line_no;
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty()) continue;
    if (absl::ConsumePrefix(&line, "##")) {
      report_ << "\n" << absl::StripAsciiWhitespace(line) << "\n";
      continue;
    }
    if (absl::StartsWith(line, "#")) continue;
    if (absl::ConsumePrefix(&line, "expect-qmp ")) {
      ++expectations;
      absl::StatusOr<QmpValue> want = QmpValue::Parse(line);
      absl::StatusOr<QmpValue> got = QmpValue::Parse(last_qmp_);
      if (!want.ok()) {
        Fail(name, line_no, std::string(want.status().message()));
        return 1;
      }
      JsonNode* ret = nullptr;
      if (got.ok() && JSON_NODE_HOLDS_OBJECT(got->node())) {
        ret =
            json_object_get_member(json_node_get_object(got->node()), "return");
      }
      if (ret == nullptr || !JsonContains(ret, want->node())) {
        Fail(name, line_no,
             absl::StrCat("expected a return containing ", line, ", got ",
                          last_qmp_));
        return 1;
      }
      report_ << "      ok: QMP answer contains " << line << "\n";
      continue;
    }
    if (absl::ConsumePrefix(&line, "expect ")) {
      ++expectations;
      if (line != last_qtest_) {
        Fail(name, line_no,
             absl::StrCat("expected '", line, "', got '", last_qtest_, "'"));
        return 1;
      }
      continue;
    }
    if (absl::ConsumePrefix(&line, "qmp ")) {
      ++commands;
      last_qmp_.clear();
      qmp_.HandleMessage(line);
      report_ << "  qmp " << line << "\n      -> " << last_qmp_ << "\n";
      continue;
    }
    if (absl::ConsumePrefix(&line, "sleep ")) {
      uint32_t ms = 0;
      if (!absl::SimpleAtoi(line, &ms) || ms > 600'000) {
        Fail(name, line_no, absl::StrCat("bad sleep '", line, "'"));
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      continue;
    }
    ++commands;
    irq_lines_.clear();
    last_qtest_ = qtest_.HandleLine(line);
    report_ << "  " << line << "\n";
    for (absl::string_view irq :
         absl::StrSplit(irq_lines_, '\n', absl::SkipEmpty())) {
      report_ << "      " << irq << "\n";
    }
    report_ << "      -> " << last_qtest_ << "\n";
  }
  report_ << "\n"
          << name << ": " << commands << " commands, " << expectations
          << " expectations, all passed\n";
  return 0;
}

}  // namespace viommu::system
