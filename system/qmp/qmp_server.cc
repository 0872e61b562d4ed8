#include "viommu/system/qmp/qmp_server.h"

#include <errno.h>
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

void WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the client is gone; its EOF removes it
    data.remove_prefix(static_cast<size_t>(n));
  }
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

struct QmpEndpoint::Client {
  Client(QmpEndpoint* ep, int fd_in)
      : endpoint(ep),
        fd(fd_in),
        session(ep->dispatcher_, [this](absl::string_view json) {
          WriteAll(fd, absl::StrCat(json, "\r\n"));
        }) {}
  ~Client() {
    if (watch != 0) g_source_remove(watch);
    close(fd);
  }
  QmpEndpoint* endpoint;
  int fd;
  QmpSession session;
  guint watch = 0;
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
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    unlink(spec_.path.c_str());
  }
  if (connected_fd_ >= 0) close(connected_fd_);
}

void QmpEndpoint::Attach(GMainContext* context) {
  context_ = context;
  if (listen_fd_ >= 0) {
    GSource* s = g_unix_fd_source_new(listen_fd_, G_IO_IN);
    g_source_set_callback(s, G_SOURCE_FUNC(&QmpEndpoint::OnAccept), this,
                          nullptr);
    listen_watch_ = g_source_attach(s, context);
    g_source_unref(s);
  }
  if (connected_fd_ >= 0) {
    AddClient(connected_fd_);
    connected_fd_ = -1;
  }
}

gboolean QmpEndpoint::OnAccept(gint fd, GIOCondition, gpointer self) {
  int client = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (client >= 0) static_cast<QmpEndpoint*>(self)->AddClient(client);
  return G_SOURCE_CONTINUE;
}

void QmpEndpoint::AddClient(int fd) {
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
  char buf[16 * 1024];
  ssize_t n;
  do {
    n = read(fd, buf, sizeof(buf));
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    client->watch = 0;
    client->endpoint->RemoveClient(client);
    return G_SOURCE_REMOVE;
  }
  client->session.Feed(absl::string_view(buf, static_cast<size_t>(n)));
  return G_SOURCE_CONTINUE;
}

void QmpEndpoint::RemoveClient(Client* client) {
  clients_.erase(
      std::remove_if(clients_.begin(), clients_.end(),
                     [&](const auto& c) { return c.get() == client; }),
      clients_.end());
}

}  // namespace viommu::system
