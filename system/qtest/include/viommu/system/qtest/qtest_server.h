// viommu/system/qtest/qtest_server.h — serves the qtest protocol on a byte
// stream (stdio, or a unix socket), on a GLib main context or blocking.
//
//   auto server = QtestServer::Create(&vm, "unix:/tmp/q.sock", "/dev/null",
//                                     [loop] { g_main_loop_quit(loop); });
//   (*server)->Attach(g_main_context_default());   // beside the QMP monitor
//   g_main_loop_run(loop);
//   // or, without GLib: (*server)->RunBlocking();  // returns at EOF
//
// Framing: lines may arrive split or batched; each complete line is
// answered in order, and output is written when the input holds no further
// complete line (or a long answer passes ~1 MiB), so a batch of N commands
// costs one read and one write. A partial last line at EOF is dropped, as
// QEMU does. A line longer than Options::max_line_bytes is answered `ERR
// line too long` once and discarded up to its newline.
//
// `-qtest-log FILE`: QEMU's format (system/qtest.c), seconds since the
// channel opened with 6 decimals: `[I 0.000000] OPENED` (sic, no '+'),
// `[R +0.000123] cmd args` per request, `[S +0.000130] answer` per output
// line (async IRQ lines included), `[I +1.234567] CLOSED` at EOF. "none"
// and "/dev/null" log nothing and cost nothing; an empty path (no
// -qtest-log) logs nothing either (QEMU would log to stderr). The log is
// flushed whenever answers are written.
//
// Threading: control context only.
#ifndef VIOMMU_SYSTEM_QTEST_QTEST_SERVER_H_
#define VIOMMU_SYSTEM_QTEST_QTEST_SERVER_H_

#include <glib.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "viommu/system/qtest/qtest_session.h"

namespace viommu::system {

class QtestServer {
 public:
  struct Options {
    size_t max_line_bytes = size_t{64} << 20;
    // Reads stream, so they may be larger than a session's default.
    QtestSession::Options session{.max_read_bytes = uint64_t{1} << 30};
  };

  // `spec` is -qtest's argument: "stdio"; "unix:PATH" (connects to a socket
  // listening at PATH, as libqtest's QEMU does); "unix:PATH,server[=on]"
  // (listens at PATH and waits for one connection; other ",opt" are
  // ignored). `log_path` as above. `on_eof` runs once when the peer closes
  // the channel (or on a read error); it must not destroy the server
  // synchronously. `target` is not owned and must outlive the server.
  // Errors: kInvalidArgument (other chardev kinds, bad path), kUnavailable
  // (cannot connect/listen), errno-derived codes (cannot open the log).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<QtestServer>> Create(
      QtestTarget* target, absl::string_view spec, absl::string_view log_path,
      std::function<void()> on_eof);
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<QtestServer>> Create(
      QtestTarget* target, absl::string_view spec, absl::string_view log_path,
      std::function<void()> on_eof, const Options& options);

  // Serves an already-open pair of descriptors (not owned; may be equal).
  // `log` (may be null) is owned and closed by the server.
  QtestServer(QtestTarget* target, int in_fd, int out_fd, FILE* log,
              std::function<void()> on_eof);
  QtestServer(QtestTarget* target, int in_fd, int out_fd, FILE* log,
              std::function<void()> on_eof, const Options& options);
  QtestServer(const QtestServer&) = delete;
  QtestServer& operator=(const QtestServer&) = delete;
  ~QtestServer();

  // Watches the input on `context` (not owned, must outlive this); answers
  // from the context's dispatch. At EOF the watch removes itself.
  void Attach(GMainContext* context);

  // Reads once (blocking if the descriptor is) and answers every complete
  // line. Returns false at EOF or on a read error (on_eof has run).
  bool ServeAvailable();

  // Serves until EOF (on_eof runs), without a main loop.
  void RunBlocking();

  QtestSession& session() { return session_; }

 private:
  void ProcessLines();
  void LogRequest(absl::string_view line);
  void LogOutput();
  void LogInfo(const char* fmt);
  double Elapsed() const;
  void Flush();
  void OnAsyncOutput(absl::string_view text);
  static gboolean OnReadable(gint fd, GIOCondition cond, gpointer self);

  Options options_;
  QtestSession session_;
  int in_fd_;
  int out_fd_;
  int owned_fd_ = -1;  // a connected socket, closed with the server
  FILE* log_;          // owned when not null
  std::function<void()> on_eof_;
  bool eof_ = false;
  int64_t start_ns_;
  std::string in_;  // unprocessed input starts at in_pos_
  size_t in_pos_ = 0;
  std::string out_;            // answers not yet written
  size_t logged_ = 0;          // bytes of out_ already logged
  bool log_mid_line_ = false;  // the log's last [S] line is unfinished
  bool discarding_ = false;    // inside an over-long line
  bool in_batch_ = false;      // answering lines: async output waits
  GSource* source_ = nullptr;  // Attach's watch (a reference held)
};

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_QTEST_QTEST_SERVER_H_
