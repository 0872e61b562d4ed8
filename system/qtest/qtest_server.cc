#include "viommu/system/qtest/qtest_server.h"

#include <errno.h>
#include <glib-unix.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace viommu::system {
namespace {

constexpr size_t kReadSize = 64 * 1024;
constexpr size_t kOutFlushThreshold = 1 << 20;

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

[[nodiscard]] absl::StatusOr<sockaddr_un> UnixAddress(absl::string_view path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("-qtest unix:", path, ": invalid socket path"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

[[nodiscard]] absl::StatusOr<int> ConnectUnix(absl::string_view path) {
  absl::StatusOr<sockaddr_un> addr = UnixAddress(path);
  if (!addr.ok()) return addr.status();
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket(AF_UNIX)");
  if (connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) !=
      0) {
    const int e = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat(
        "-qtest unix:", path, ": cannot connect: ", std::strerror(e)));
  }
  return fd;
}

// Listens at `path` (replacing a stale socket file) and waits for one peer.
[[nodiscard]] absl::StatusOr<int> AcceptUnix(absl::string_view path) {
  absl::StatusOr<sockaddr_un> addr = UnixAddress(path);
  if (!addr.ok()) return addr.status();
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) return absl::ErrnoToStatus(errno, "socket(AF_UNIX)");
  unlink(addr->sun_path);
  if (bind(lfd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) !=
          0 ||
      listen(lfd, 1) != 0) {
    const int e = errno;
    close(lfd);
    return absl::UnavailableError(absl::StrCat(
        "-qtest unix:", path, ",server: cannot listen: ", std::strerror(e)));
  }
  int fd;
  do {
    fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  const int e = errno;
  close(lfd);
  unlink(addr->sun_path);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat(
        "-qtest unix:", path, ",server: accept: ", std::strerror(e)));
  }
  return fd;
}

bool IsServerOption(absl::string_view opt) {
  return opt == "server" || opt == "server=on" || opt == "server=yes" ||
         opt == "server=true";
}

}  // namespace

absl::StatusOr<std::unique_ptr<QtestServer>> QtestServer::Create(
    QtestTarget* target, absl::string_view spec, absl::string_view log_path,
    std::function<void()> on_eof) {
  return Create(target, spec, log_path, std::move(on_eof), Options());
}

absl::StatusOr<std::unique_ptr<QtestServer>> QtestServer::Create(
    QtestTarget* target, absl::string_view spec, absl::string_view log_path,
    std::function<void()> on_eof, const Options& options) {
  int in_fd = -1, out_fd = -1, owned = -1;
  if (spec == "stdio") {
    in_fd = STDIN_FILENO;
    out_fd = STDOUT_FILENO;
  } else if (absl::StartsWith(spec, "unix:")) {
    std::vector<absl::string_view> parts = absl::StrSplit(spec.substr(5), ',');
    bool server = false;
    for (size_t i = 1; i < parts.size(); ++i) {
      server = server || IsServerOption(parts[i]);
    }
    absl::StatusOr<int> fd =
        server ? AcceptUnix(parts[0]) : ConnectUnix(parts[0]);
    if (!fd.ok()) return fd.status();
    in_fd = out_fd = owned = *fd;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "-qtest ", spec, ": only 'stdio' and 'unix:PATH' are supported"));
  }
  FILE* log = nullptr;
  if (!log_path.empty() && log_path != "/dev/null" && log_path != "none") {
    log = std::fopen(std::string(log_path).c_str(), "w+");
    if (log == nullptr) {
      const int e = errno;
      if (owned >= 0) close(owned);
      return absl::ErrnoToStatus(e, absl::StrCat("-qtest-log ", log_path));
    }
  }
  auto server = std::make_unique<QtestServer>(target, in_fd, out_fd, log,
                                              std::move(on_eof), options);
  server->owned_fd_ = owned;
  return server;
}

QtestServer::QtestServer(QtestTarget* target, int in_fd, int out_fd, FILE* log,
                         std::function<void()> on_eof)
    : QtestServer(target, in_fd, out_fd, log, std::move(on_eof), Options()) {}

QtestServer::QtestServer(QtestTarget* target, int in_fd, int out_fd, FILE* log,
                         std::function<void()> on_eof, const Options& options)
    : options_(options),
      session_(
          target, [this](absl::string_view out) { OnAsyncOutput(out); },
          options.session),
      in_fd_(in_fd),
      out_fd_(out_fd),
      log_(log),
      on_eof_(std::move(on_eof)),
      start_ns_(MonotonicNs()) {
  session_.set_stream_flush([this](std::string*) { Flush(); });
  if (log_ != nullptr) {
    session_.set_note([this](absl::string_view note) {
      LogOutput();
      std::fprintf(log_, "[S +%.06f] %.*s\n", Elapsed(),
                   static_cast<int>(note.size()), note.data());
    });
    // QEMU's CHR_EVENT_OPENED line has no '+'.
    std::fprintf(log_, "[I %.06f] OPENED\n", Elapsed());
  }
}

QtestServer::~QtestServer() {
  if (source_ != nullptr) {
    if (!g_source_is_destroyed(source_)) g_source_destroy(source_);
    g_source_unref(source_);
  }
  Flush();
  if (owned_fd_ >= 0) close(owned_fd_);
  if (log_ != nullptr) std::fclose(log_);
}

void QtestServer::Attach(GMainContext* context) {
  source_ = g_unix_fd_source_new(
      in_fd_, static_cast<GIOCondition>(G_IO_IN | G_IO_HUP | G_IO_ERR));
  g_source_set_callback(source_, G_SOURCE_FUNC(&QtestServer::OnReadable), this,
                        nullptr);
  g_source_attach(source_, context);
}

gboolean QtestServer::OnReadable(gint, GIOCondition, gpointer self) {
  return static_cast<QtestServer*>(self)->ServeAvailable() ? G_SOURCE_CONTINUE
                                                           : G_SOURCE_REMOVE;
}

void QtestServer::RunBlocking() {
  while (ServeAvailable()) {
  }
}

bool QtestServer::ServeAvailable() {
  if (eof_) return false;
  // Drop consumed input once it dominates the buffer (amortised O(1)).
  if (in_pos_ > 0 && in_pos_ >= in_.size() / 2) {
    in_.erase(0, in_pos_);
    in_pos_ = 0;
  }
  char buf[kReadSize];
  ssize_t n;
  do {
    n = read(in_fd_, buf, sizeof(buf));
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
  if (n <= 0) {
    Flush();
    eof_ = true;
    if (log_ != nullptr) {
      std::fprintf(log_, "[I +%.06f] CLOSED\n", Elapsed());
      std::fflush(log_);
    }
    if (on_eof_) on_eof_();
    return false;
  }
  in_.append(buf, static_cast<size_t>(n));
  ProcessLines();
  Flush();
  return true;
}

void QtestServer::ProcessLines() {
  in_batch_ = true;
  for (;;) {
    const char* base = in_.data() + in_pos_;
    const size_t avail = in_.size() - in_pos_;
    const void* nl = std::memchr(base, '\n', avail);
    if (nl == nullptr) break;
    const absl::string_view line(base, static_cast<const char*>(nl) - base);
    in_pos_ += line.size() + 1;
    if (discarding_) {  // the tail of an over-long line
      discarding_ = false;
      continue;
    }
    if (log_ != nullptr) LogRequest(line);
    session_.Run(line, &out_);
    if (log_ != nullptr) LogOutput();
    if (out_.size() >= kOutFlushThreshold) Flush();
  }
  const size_t pending = in_.size() - in_pos_;
  if (discarding_ || pending > options_.max_line_bytes) {
    if (!discarding_) {
      out_.append("ERR line too long\n");
      if (log_ != nullptr) LogOutput();
    }
    discarding_ = true;
    in_pos_ = in_.size();
  }
  in_batch_ = false;
}

double QtestServer::Elapsed() const {
  return static_cast<double>(MonotonicNs() - start_ns_) / 1e9;
}

void QtestServer::LogRequest(absl::string_view line) {
  // QEMU prints "[R +t]" and then " word" for each word: the line itself,
  // up to a NUL byte (where its copy of the line ends).
  if (const void* nul = std::memchr(line.data(), '\0', line.size())) {
    line = line.substr(0, static_cast<const char*>(nul) - line.data());
  }
  if (line.empty()) return;  // no command (QEMU asserts)
  LogOutput();               // async output that came before
  std::fprintf(log_, "[R +%.06f] ", Elapsed());
  std::fwrite(line.data(), 1, line.size(), log_);
  std::fputc('\n', log_);
}

void QtestServer::LogOutput() {
  if (log_ == nullptr || logged_ >= out_.size()) return;
  const double t = Elapsed();
  while (logged_ < out_.size()) {
    if (!log_mid_line_) std::fprintf(log_, "[S +%.06f] ", t);
    const size_t nl = out_.find('\n', logged_);
    const size_t end = nl == std::string::npos ? out_.size() : nl + 1;
    std::fwrite(out_.data() + logged_, 1, end - logged_, log_);
    log_mid_line_ = nl == std::string::npos;
    logged_ = end;
  }
}

void QtestServer::OnAsyncOutput(absl::string_view text) {
  out_.append(text.data(), text.size());
  if (log_ != nullptr) LogOutput();
  if (!in_batch_) Flush();
}

void QtestServer::Flush() {
  LogOutput();
  const bool socket = owned_fd_ >= 0 && owned_fd_ == out_fd_;
  size_t done = 0;
  while (done < out_.size()) {
    const char* p = out_.data() + done;
    const size_t left = out_.size() - done;
    const ssize_t n =
        socket ? send(out_fd_, p, left, MSG_NOSIGNAL) : write(out_fd_, p, left);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd pfd{.fd = out_fd_, .events = POLLOUT, .revents = 0};
      poll(&pfd, 1, -1);
    } else {
      break;  // the peer is gone; EOF on the input follows
    }
  }
  out_.clear();
  logged_ = 0;
  if (log_ != nullptr) std::fflush(log_);
}

}  // namespace viommu::system
