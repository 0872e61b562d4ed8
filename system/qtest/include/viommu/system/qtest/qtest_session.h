// viommu/system/qtest/qtest_session.h — executes qtest protocol lines
// against a QtestTarget and produces QEMU's answers (system/qtest.c).
//
//   QtestSession session(&vm, [&](absl::string_view out) { Send(out); });
//   session.HandleLine("readl 0xfe000000");   // emits "OK 0x...\n"
//   std::string all = session.Execute("irq_intercept_in ioapic");  // "OK\n"
//   session.Run("inb 0x61", &buffer);          // appends, for servers
//
// Output: newline-terminated lines, in order. Asynchronous `IRQ raise N` /
// `IRQ lower N` lines (emitted only when an intercepted line's level
// changes, tracked for lines 0..255 as QEMU does) precede the answer of the
// command during which they happened; between commands they go to `emit`
// at once. Malformed lines get `ERR ...` (see qtest_parser.h), unknown
// commands `FAIL Unknown command '...'`; the session always keeps going.
//
// Answers (QEMU's formats): in* `OK 0x%04x`; read[bwlq] `OK 0x%016x` (the
// little-endian value); read `OK 0x<lower-case hex>`; b64read `OK <base64>`;
// endianness `OK little`; clock_step `OK <ns>`, or `FAIL could not advance
// time` when the clock did not move (NS <= 0 or overflowing), or `FAIL
// cannot advance clock to the next deadline because there is no pending
// deadline`; clock_set `OK <ns>` when the clock is now NS, else `FAIL
// <now>`; module_load `FAIL` (viommu has no modules); irq_intercept_*
// `FAIL Unknown device`, `FAIL Interception of named in-GPIOs not yet
// supported`, `FAIL IRQ intercept already enabled` (a second path; the same
// path again is `OK`), `FAIL No intercepts installed` (target error other
// than kNotFound). write/memset/b64write write SIZE bytes: data shorter than
// SIZE is zero-filled (for b64write QEMU writes undefined bytes there and
// logs "b64write: data length mismatch (told N, found M)", which the
// session passes to the note hook).
//
// Bounds: read/b64read SIZE above Options::max_read_bytes and write/
// b64write/memset SIZE above Options::max_fill_bytes answer `ERR` (QEMU
// would g_malloc SIZE and abort if it cannot). Memory is accessed in 64 KiB
// chunks; with a stream-flush hook a long answer is handed over in pieces
// of about 1 MiB, so no SIZE makes the session hold more than that.
//
// Threading: control context only; not reentrant (a target must not run a
// qtest line from inside a call).
#ifndef VIOMMU_SYSTEM_QTEST_QTEST_SESSION_H_
#define VIOMMU_SYSTEM_QTEST_QTEST_SESSION_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "viommu/system/qtest/qtest_parser.h"
#include "viommu/system/qtest/qtest_target.h"

namespace viommu::system {

class QtestSession {
 public:
  struct Options {
    uint64_t max_read_bytes = uint64_t{64} << 20;  // read, b64read
    uint64_t max_fill_bytes = uint64_t{16} << 30;  // write, b64write, memset
  };
  // Receives output produced outside Run (async IRQ lines, and everything
  // HandleLine produces), newline-terminated.
  using EmitFn = std::function<void(absl::string_view)>;
  // Called during Run when a long answer has grown `*out` past about 1 MiB:
  // the callee consumes (writes out) and clears `*out`. Optional.
  using StreamFlushFn = std::function<void(std::string* out)>;
  // Receives log-only notes (no newline), e.g. the b64write mismatch.
  using NoteFn = std::function<void(absl::string_view)>;

  // `target` is not owned and must outlive the session.
  QtestSession(QtestTarget* target, EmitFn emit);
  QtestSession(QtestTarget* target, EmitFn emit, Options options);
  QtestSession(const QtestSession&) = delete;
  QtestSession& operator=(const QtestSession&) = delete;
  // IRQ callbacks handed to the target before become no-ops.
  ~QtestSession();

  void set_stream_flush(StreamFlushFn fn) { stream_flush_ = std::move(fn); }
  void set_note(NoteFn fn) { note_ = std::move(fn); }

  // Runs one line (without its '\n') and appends all its output (IRQ lines
  // raised meanwhile, then the answer; each with '\n') to `*out`. A blank
  // line appends nothing. The fast path: no allocation beyond `*out`.
  void Run(absl::string_view line, std::string* out);

  // Runs one line and returns all its output, newline-terminated.
  std::string Execute(absl::string_view line);

  // Runs one line and emits its output through `emit`, one call per line.
  // Returns the answer (without newline; empty for a blank line), valid
  // until the next call.
  const std::string& HandleLine(absl::string_view line);

 private:
  void RunImpl(absl::string_view line, std::string* out, bool stream);
  void Dispatch(const QtestCommand& c, std::string* out);
  void ReadBuffer(const QtestCommand& c, std::string* out);
  void WriteBuffer(const QtestCommand& c);
  void B64Write(const QtestCommand& c);
  void Memset(const QtestCommand& c);
  void ClockStep(const QtestCommand& c, std::string* out);
  void Intercept(const QtestCommand& c, std::string* out);
  void OnIrq(int n, bool level);
  void MaybeStreamFlush(std::string* out);
  void SawTime(int64_t t) { last_now_ = std::max(last_now_, t); }

  QtestTarget* target_;  // not owned
  EmitFn emit_;
  Options options_;
  StreamFlushFn stream_flush_;
  NoteFn note_;
  std::string* sink_ = nullptr;  // Run's output while a line runs
  bool streaming_ = false;       // stream_flush_ may be used now
  // Shared with the IRQ callbacks given to the target; nulled on
  // destruction so that a late callback does nothing.
  std::shared_ptr<QtestSession*> alive_;
  std::vector<uint8_t> chunk_;  // memory staging, allocated on first use
  std::string scratch_;         // HandleLine/Execute output
  std::string answer_;          // HandleLine's answer
  int64_t last_now_ = 0;        // latest clock value seen
  // QEMU allows one interception per machine, in or out.
  bool intercepted_ = false;
  std::string intercepted_path_;
  std::array<int8_t, 256> irq_levels_{};  // QEMU's MAX_IRQ
};

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_QTEST_QTEST_SESSION_H_
