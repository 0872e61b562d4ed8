#include "viommu/system/qmp/qmp_server.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace viommu::system {
namespace {

[[nodiscard]] absl::StatusOr<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid unix socket path '", path, "'"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

bool OnOff(absl::string_view v, bool* out) {
  if (v == "on" || v == "yes" || v == "true") {
    *out = true;
  } else if (v == "off" || v == "no" || v == "false") {
    *out = false;
  } else {
    return false;
  }
  return true;
}

bool SetNonBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

}  // namespace

absl::StatusOr<QmpSocketSpec> ParseQmpOption(absl::string_view text) {
  QmpSocketSpec spec{.server = true};
  std::vector<absl::string_view> parts = absl::StrSplit(text, ',');
  absl::string_view head = parts[0];
  if (!absl::ConsumePrefix(&head, "unix:")) {
    return absl::InvalidArgumentError(
        absl::StrCat("-qmp ", text, ": only unix:PATH sockets are supported"));
  }
  spec.path = std::string(head);
  for (size_t i = 1; i < parts.size(); ++i) {
    absl::string_view p = parts[i];
    bool flag = false;
    if (p == "server" || p == "nowait") {
      if (p == "server") spec.server = true;
    } else if (absl::ConsumePrefix(&p, "server=") && OnOff(p, &flag)) {
      spec.server = flag;
    } else if (absl::ConsumePrefix(&p, "wait=") && OnOff(p, &flag)) {
      // wait=on would block until a client connects; viommu never does.
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("-qmp ", text, ": unknown option '", parts[i], "'"));
    }
  }
  return spec;
}

// One connection. Replies go to a bounded output buffer written without
// blocking as the socket drains: a client that stops reading cannot stall
// the main loop, and once more than kMaxPendingOutput bytes wait for it,
// it is dropped (after the callback that overflowed it returns).
struct QmpEndpoint::Client {
  Client(QmpEndpoint* ep, int fd_in)
      : endpoint(ep),
        fd(fd_in),
        session(ep->dispatcher_,
                [this](absl::string_view json) { Send(json); }) {}
  ~Client() {
    if (watch != 0) g_source_remove(watch);
    if (out_watch != 0) g_source_remove(out_watch);
    close(fd);
  }
  void Send(absl::string_view json) {
    if (closing) return;
    if (out.size() - out_pos > kMaxPendingOutput) {
      closing = true;
      endpoint->ScheduleReap();
      return;
    }
    absl::StrAppend(&out, json, "\r\n");
    Flush();
  }
  // Writes what the socket takes now; watches for room for the rest.
  void Flush() {
    while (out_pos < out.size()) {
      ssize_t n = send(fd, out.data() + out_pos, out.size() - out_pos,
                       MSG_NOSIGNAL);  // a gone client is EPIPE, not SIGPIPE
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) {  // the client is gone
        closing = true;
        endpoint->ScheduleReap();
        out.clear();
        out_pos = 0;
        return;
      }
      out_pos += static_cast<size_t>(n);
    }
    if (out_pos == out.size()) {
      out.clear();
      out_pos = 0;
      if (out_watch != 0) {
        g_source_remove(out_watch);
        out_watch = 0;
      }
      return;
    }
    if (out_pos > (size_t{1} << 20)) {  // keep the buffer compact
      out.erase(0, out_pos);
      out_pos = 0;
    }
    if (out_watch == 0) {
      GSource* s = g_unix_fd_source_new(fd, G_IO_OUT);
      g_source_set_callback(s, G_SOURCE_FUNC(&Client::OnWritable), this,
                            nullptr);
      out_watch = g_source_attach(s, endpoint->context_);
      g_source_unref(s);
    }
  }
  static gboolean OnWritable(gint, GIOCondition, gpointer c) {
    auto* client = static_cast<Client*>(c);
    client->out_watch = 0;  // Flush adds a new watch if it needs one
    client->Flush();
    return G_SOURCE_REMOVE;
  }
  QmpEndpoint* endpoint;
  int fd;
  QmpSession session;
  guint watch = 0;
  guint out_watch = 0;
  std::string out;     // replies not written yet, from out_pos
  size_t out_pos = 0;
  bool closing = false;  // dropped at the next reap
};

QmpEndpoint::QmpEndpoint(QmpDispatcher* dispatcher, const QmpSocketSpec& spec)
    : dispatcher_(dispatcher), spec_(spec) {}

absl::StatusOr<std::unique_ptr<QmpEndpoint>> QmpEndpoint::Create(
    QmpDispatcher* dispatcher, const QmpSocketSpec& spec) {
  absl::StatusOr<sockaddr_un> addr = UnixAddress(spec.path);
  if (!addr.ok()) return addr.status();
  std::unique_ptr<QmpEndpoint> ep(new QmpEndpoint(dispatcher, spec));
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  auto* sa = reinterpret_cast<const sockaddr*>(&*addr);
  if (spec.server) {
    unlink(spec.path.c_str());
    if (bind(fd, sa, sizeof(*addr)) != 0 || listen(fd, 8) != 0) {
      int e = errno;
      close(fd);
      return absl::ErrnoToStatus(
          e, absl::StrCat("cannot listen on '", spec.path, "'"));
    }
    ep->listen_fd_ = fd;
  } else {
    if (connect(fd, sa, sizeof(*addr)) != 0) {
      int e = errno;
      close(fd);
      return absl::ErrnoToStatus(
          e, absl::StrCat("cannot connect to '", spec.path, "'"));
    }
    ep->connected_fd_ = fd;
  }
  return ep;
}

QmpEndpoint::~QmpEndpoint() {
  clients_.clear();
  if (listen_watch_ != 0) g_source_remove(listen_watch_);
  for (GSource* s : {retry_accept_, reap_}) {
    if (s != nullptr) {
      g_source_destroy(s);
      g_source_unref(s);
    }
  }
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    unlink(spec_.path.c_str());
  }
  if (connected_fd_ >= 0) close(connected_fd_);
}

void QmpEndpoint::Attach(GMainContext* context) {
  context_ = context;
  if (listen_fd_ >= 0) WatchListener();
  if (connected_fd_ >= 0) {
    AddClient(connected_fd_);
    connected_fd_ = -1;
  }
}

gboolean QmpEndpoint::OnAccept(gint fd, GIOCondition, gpointer self) {
  auto* ep = static_cast<QmpEndpoint*>(self);
  int client = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (client < 0) {
    if (errno == EMFILE || errno == ENFILE) {
      // The connection stays queued and the socket readable: stop watching
      // it for a while rather than spin.
      ep->listen_watch_ = 0;
      ep->retry_accept_ = g_timeout_source_new(100);
      g_source_set_callback(ep->retry_accept_, &QmpEndpoint::OnRetryAccept,
                            ep, nullptr);
      g_source_attach(ep->retry_accept_, ep->context_);
      return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
  }
  if (ep->clients_.size() >= kMaxClients) {
    close(client);  // refused: the client sees EOF before any greeting
    return G_SOURCE_CONTINUE;
  }
  ep->AddClient(client);
  return G_SOURCE_CONTINUE;
}

gboolean QmpEndpoint::OnRetryAccept(gpointer self) {
  auto* ep = static_cast<QmpEndpoint*>(self);
  g_source_unref(ep->retry_accept_);
  ep->retry_accept_ = nullptr;
  ep->WatchListener();
  return G_SOURCE_REMOVE;
}

void QmpEndpoint::WatchListener() {
  GSource* s = g_unix_fd_source_new(listen_fd_, G_IO_IN);
  g_source_set_callback(s, G_SOURCE_FUNC(&QmpEndpoint::OnAccept), this,
                        nullptr);
  listen_watch_ = g_source_attach(s, context_);
  g_source_unref(s);
}

void QmpEndpoint::ScheduleReap() {
  if (reap_ != nullptr) return;
  reap_ = g_idle_source_new();
  // Above the fd sources: a closing client's readable socket must not
  // starve its own removal.
  g_source_set_priority(reap_, G_PRIORITY_HIGH);
  g_source_set_callback(reap_, &QmpEndpoint::OnReap, this, nullptr);
  g_source_attach(reap_, context_);
}

gboolean QmpEndpoint::OnReap(gpointer self) {
  auto* ep = static_cast<QmpEndpoint*>(self);
  g_source_unref(ep->reap_);
  ep->reap_ = nullptr;
  ep->clients_.erase(std::remove_if(ep->clients_.begin(), ep->clients_.end(),
                                    [](const auto& c) { return c->closing; }),
                     ep->clients_.end());
  return G_SOURCE_REMOVE;
}

void QmpEndpoint::AddClient(int fd) {
  if (!SetNonBlocking(fd)) {
    close(fd);
    return;
  }
  auto client = std::make_unique<Client>(this, fd);
  GSource* s = g_unix_fd_source_new(
      fd, static_cast<GIOCondition>(G_IO_IN | G_IO_HUP | G_IO_ERR));
  g_source_set_callback(s, G_SOURCE_FUNC(&QmpEndpoint::OnClientReadable),
                        client.get(), nullptr);
  client->watch = g_source_attach(s, context_);
  g_source_unref(s);
  client->session.Greet();
  clients_.push_back(std::move(client));
}

gboolean QmpEndpoint::OnClientReadable(gint fd, GIOCondition, gpointer c) {
  auto* client = static_cast<Client*>(c);
  if (client->closing) {  // marked by an event or a failed write
    client->watch = 0;
    client->endpoint->RemoveClient(client);
    return G_SOURCE_REMOVE;
  }
  char buf[16 * 1024];
  ssize_t n;
  do {
    n = read(fd, buf, sizeof(buf));
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    return G_SOURCE_CONTINUE;
  }
  if (n <= 0) {
    client->watch = 0;
    client->endpoint->RemoveClient(client);
    return G_SOURCE_REMOVE;
  }
  // Feed may overflow the client's output; it is then only marked closing
  // (the session must outlive Feed) and removed below.
  client->session.Feed(absl::string_view(buf, static_cast<size_t>(n)));
  if (client->closing) {  // overflowed by these answers: drop it now
    client->watch = 0;
    client->endpoint->RemoveClient(client);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

void QmpEndpoint::RemoveClient(Client* client) {
  clients_.erase(
      std::remove_if(clients_.begin(), clients_.end(),
                     [&](const auto& c) { return c.get() == client; }),
      clients_.end());
}

}  // namespace viommu::system
