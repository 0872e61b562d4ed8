// viommu/system/qtest/qtest_server.h — serves the qtest protocol on a byte
// stream (stdio, or a unix socket viommu connects to as QEMU does for
// libqtest), on a GLib main context.
//
//   auto server = QtestServer::Create(&vm, "stdio", "/dev/null", on_eof);
//   (*server)->Attach(g_main_context_default());
//   g_main_loop_run(loop);      // answers lines; EOF calls on_eof
//
// Lines may arrive split or batched; each complete line is answered in
// order and output is flushed when the input holds no further complete
// line. A line longer than 1 MiB is answered `ERR line too long` and
// discarded. `-qtest-log FILE` gets QEMU's format: `[R +0.000123] cmd` for
// each request and `[S +0.000130] answer` for each output line, seconds
// since the server started; "/dev/null" (or none) logs nothing.
//
// Threading: control context only.
#ifndef VIOMMU_SYSTEM_QTEST_QTEST_SERVER_H_
#define VIOMMU_SYSTEM_QTEST_QTEST_SERVER_H_

#include <glib.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "viommu/system/qtest/qtest_session.h"

namespace viommu::system {

class QtestServer {
 public:
  // `spec` is -qtest's argument: "stdio" or "unix:PATH" (connects to a
  // listening socket at PATH). `log_path` may be empty. `on_eof` runs when
  // the peer closes the channel. Errors: kInvalidArgument (other chardev
  // kinds), kUnavailable (cannot connect), kPermissionDenied / kNotFound
  // (cannot open the log).
  static absl::StatusOr<std::unique_ptr<QtestServer>> Create(
      QtestTarget* target, absl::string_view spec, absl::string_view log_path,
      std::function<void()> on_eof);
  // Serves an already-open pair of descriptors (not owned).
  QtestServer(QtestTarget* target, int in_fd, int out_fd, FILE* log,
              std::function<void()> on_eof);
  QtestServer(const QtestServer&) = delete;
  QtestServer& operator=(const QtestServer&) = delete;
  ~QtestServer();

  // Watches the input on `context` (not owned, must outlive this).
  void Attach(GMainContext* context);

  // Reads what is available and answers every complete line. Returns
  // false at EOF or on a read error (on_eof has run).
  bool ServeAvailable();

 private:
  void Emit(absl::string_view out);
  void Flush();
  void Log(char dir, absl::string_view text);
  static gboolean OnReadable(gint fd, GIOCondition cond, gpointer self);

  QtestSession session_;
  int in_fd_;
  int out_fd_;
  int owned_fd_ = -1;  // a connected socket, closed with the server
  FILE* log_;          // owned when not null
  std::function<void()> on_eof_;
  std::chrono::steady_clock::time_point start_;
  std::string in_;
  std::string out_;
  bool discarding_ = false;  // inside an over-long line
  guint watch_ = 0;
};

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_QTEST_QTEST_SERVER_H_
