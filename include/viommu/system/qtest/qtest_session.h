// viommu/system/qtest/qtest_session.h — executes qtest protocol lines
// against a QtestTarget and produces QEMU's answers.
//
//   QtestSession session(&vm, [&](absl::string_view out) { Send(out); });
//   session.HandleLine("readl 0xfe000000");   // emits "OK 0x...\n"
//
// Output goes to the `emit` callback, newline-terminated, in order:
// asynchronous `IRQ raise N` / `IRQ lower N` lines may precede an answer
// (they are produced while a command runs). Malformed lines get `ERR ...`
// (see qtest_parser.h), unknown commands `FAIL Unknown command '...'`; the
// session always keeps going.
//
// Threading: control context only.
#ifndef VIOMMU_SYSTEM_QTEST_QTEST_SESSION_H_
#define VIOMMU_SYSTEM_QTEST_QTEST_SESSION_H_

#include <functional>
#include <string>

#include "absl/strings/string_view.h"
#include "viommu/system/qtest/qtest_parser.h"
#include "viommu/system/qtest/qtest_target.h"

namespace viommu::system {

class QtestSession {
 public:
  using EmitFn = std::function<void(absl::string_view)>;
  // `target` is not owned and must outlive the session.
  QtestSession(QtestTarget* target, EmitFn emit);

  // Runs one line (without its newline) and emits the answer. Returns the
  // answer (without newline; empty for a blank line) for callers that log.
  const std::string& HandleLine(absl::string_view line);

 private:
  void Execute(const QtestCommand& c);
  void ReadBuffer(uint64_t addr, uint64_t len, bool base64);
  void Fill(uint64_t addr, uint64_t len, const std::string& head, char fill);

  QtestTarget* target_;  // not owned
  EmitFn emit_;
  std::string answer_;
  // QEMU allows one interception per machine, in or out.
  bool irq_in_intercepted_ = false;
  bool irq_out_intercepted_ = false;
};

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_QTEST_QTEST_SESSION_H_
