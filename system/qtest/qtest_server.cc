#include "viommu/system/qtest/qtest_server.h"

#include <errno.h>
#include <glib-unix.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace viommu::system {
namespace {

constexpr size_t kMaxLine = 1 << 20;

absl::StatusOr<int> ConnectUnix(absl::string_view path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("-qtest unix:", path, ": invalid socket path"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int e = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat(
        "-qtest unix:", path, ": cannot connect: ", std::strerror(e)));
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<QtestServer>> QtestServer::Create(
    QtestTarget* target, absl::string_view spec, absl::string_view log_path,
    std::function<void()> on_eof) {
  FILE* log = nullptr;
  if (!log_path.empty() && log_path != "/dev/null") {
    log = std::fopen(std::string(log_path).c_str(), "w");
    if (log == nullptr) {
      return absl::ErrnoToStatus(errno, absl::StrCat("-qtest-log ", log_path));
    }
  }
  std::unique_ptr<QtestServer> server;
  if (spec == "stdio") {
    server = std::make_unique<QtestServer>(target, STDIN_FILENO, STDOUT_FILENO,
                                           log, std::move(on_eof));
  } else if (absl::StartsWith(spec, "unix:")) {
    absl::string_view rest = spec.substr(5);
    rest = rest.substr(0, rest.find(','));  // ",server=off" and the like
    absl::StatusOr<int> fd = ConnectUnix(rest);
    if (!fd.ok()) {
      if (log != nullptr) std::fclose(log);
      return fd.status();
    }
    server =
        std::make_unique<QtestServer>(target, *fd, *fd, log, std::move(on_eof));
    server->owned_fd_ = *fd;
  } else {
    if (log != nullptr) std::fclose(log);
    return absl::InvalidArgumentError(absl::StrCat(
        "-qtest ", spec, ": only 'stdio' and 'unix:PATH' are supported"));
  }
  return server;
}

QtestServer::QtestServer(QtestTarget* target, int in_fd, int out_fd, FILE* log,
                         std::function<void()> on_eof)
    : session_(target, [this](absl::string_view out) { Emit(out); }),
      in_fd_(in_fd),
      out_fd_(out_fd),
      log_(log),
      on_eof_(std::move(on_eof)),
      start_(std::chrono::steady_clock::now()) {}

QtestServer::~QtestServer() {
  if (watch_ != 0) g_source_remove(watch_);
  Flush();
  if (owned_fd_ >= 0) close(owned_fd_);
  if (log_ != nullptr) std::fclose(log_);
}

void QtestServer::Attach(GMainContext* context) {
  GSource* source = g_unix_fd_source_new(
      in_fd_, static_cast<GIOCondition>(G_IO_IN | G_IO_HUP | G_IO_ERR));
  g_source_set_callback(source, G_SOURCE_FUNC(&QtestServer::OnReadable), this,
                        nullptr);
  watch_ = g_source_attach(source, context);
  g_source_unref(source);
}

gboolean QtestServer::OnReadable(gint, GIOCondition, gpointer self) {
  auto* server = static_cast<QtestServer*>(self);
  if (server->ServeAvailable()) return G_SOURCE_CONTINUE;
  server->watch_ = 0;
  return G_SOURCE_REMOVE;
}

bool QtestServer::ServeAvailable() {
  char buf[64 * 1024];
  ssize_t n;
  do {
    n = read(in_fd_, buf, sizeof(buf));
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    Flush();
    if (on_eof_) on_eof_();
    return false;
  }
  in_.append(buf, static_cast<size_t>(n));
  size_t pos = 0;
  for (;;) {
    size_t nl = in_.find('\n', pos);
    if (nl == std::string::npos) break;
    absl::string_view line(in_.data() + pos, nl - pos);
    pos = nl + 1;
    if (discarding_) {
      discarding_ = false;
      continue;
    }
    Log('R', line);
    session_.HandleLine(line);
  }
  in_.erase(0, pos);
  if (in_.size() > kMaxLine) {
    in_.clear();
    if (!discarding_) Emit("ERR line too long\n");
    discarding_ = true;
  }
  Flush();
  return true;
}

void QtestServer::Emit(absl::string_view out) {
  if (log_ != nullptr) {
    absl::string_view text = out;
    if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    Log('S', text);
  }
  out_.append(out.data(), out.size());
}

void QtestServer::Flush() {
  size_t done = 0;
  while (done < out_.size()) {
    ssize_t n = write(out_fd_, out_.data() + done, out_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the peer is gone; EOF on input will follow
    done += static_cast<size_t>(n);
  }
  out_.clear();
}

void QtestServer::Log(char dir, absl::string_view text) {
  if (log_ == nullptr) return;
  double t =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
          .count();
  absl::FPrintF(log_, "[%c +%.06f] %s\n", dir, t, text);
  std::fflush(log_);
}

}  // namespace viommu::system
