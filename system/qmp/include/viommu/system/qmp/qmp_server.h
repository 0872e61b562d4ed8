// viommu/system/qmp/qmp_server.h — QMP over unix sockets on a GLib main
// context: `-qmp unix:PATH,server=on,wait=off` listens (any number of
// clients); `-chardev socket,path=P,id=ID` + `-mon chardev=ID,mode=control`
// connects to a listening test (libqtest's form) unless the chardev says
// server=on. Each connection is greeted and gets its own QmpSession.
//
//   auto ep = QmpEndpoint::FromQmpOption(&qmp,
//   "unix:/tmp/q,server=on,wait=off");
//   (*ep)->Attach(g_main_context_default());
//
// Threading: control context only.
#ifndef VIOMMU_SYSTEM_QMP_QMP_SERVER_H_
#define VIOMMU_SYSTEM_QMP_QMP_SERVER_H_

#include <glib.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "viommu/system/qmp/qmp_dispatcher.h"

namespace viommu::system {

struct QmpSocketSpec {
  std::string path;
  bool server = false;  // listen (true) or connect (false)
};

// "unix:PATH[,server=on|off][,wait=on|off]" (-qmp). QEMU's -qmp defaults
// to server=on. Errors: kInvalidArgument (other backends, bad options).
[[nodiscard]] absl::StatusOr<QmpSocketSpec> ParseQmpOption(
    absl::string_view text);

// Hostile clients: each reply waits in a per-client output buffer written
// without blocking; a client with more than kMaxPendingOutput bytes unread
// is disconnected. At most kMaxClients clients are served at once (QEMU's
// -qmp serves one); further connections are closed at once.
class QmpEndpoint {
 public:
  static constexpr size_t kMaxPendingOutput = size_t{16} << 20;
  static constexpr size_t kMaxClients = 64;

  [[nodiscard]] static absl::StatusOr<std::unique_ptr<QmpEndpoint>> Create(
      QmpDispatcher* dispatcher, const QmpSocketSpec& spec);
  QmpEndpoint(const QmpEndpoint&) = delete;
  QmpEndpoint& operator=(const QmpEndpoint&) = delete;
  ~QmpEndpoint();

  // Starts serving on `context` (not owned; must outlive this).
  void Attach(GMainContext* context);

 private:
  struct Client;
  QmpEndpoint(QmpDispatcher* dispatcher, const QmpSocketSpec& spec);
  void AddClient(int fd);
  void RemoveClient(Client* client);
  void WatchListener();
  void ScheduleReap();  // drops closing clients from an idle callback
  static gboolean OnReap(gpointer self);
  static gboolean OnRetryAccept(gpointer self);
  static gboolean OnAccept(gint fd, GIOCondition cond, gpointer self);
  static gboolean OnClientReadable(gint fd, GIOCondition cond, gpointer c);

  QmpDispatcher* dispatcher_;  // not owned
  QmpSocketSpec spec_;
  GMainContext* context_ = nullptr;
  int listen_fd_ = -1;
  guint listen_watch_ = 0;
  GSource* retry_accept_ = nullptr;  // accept paused (out of fds)
  GSource* reap_ = nullptr;
  int connected_fd_ = -1;  // connect mode, until attached
  std::vector<std::unique_ptr<Client>> clients_;
};

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_QMP_QMP_SERVER_H_
