// tests/qtest/unix_socket.h — the two socket roles the qtest tests play:
// connect to a socket viommu listens on, or listen for viommu to connect
// (libqtest's form). Both return -1 on failure.
#ifndef VIOMMU_TESTS_QTEST_UNIX_SOCKET_H_
#define VIOMMU_TESTS_QTEST_UNIX_SOCKET_H_

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace viommu::qtest {

inline sockaddr_un UnixAddress(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  return a;
}

inline int ConnectUnix(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a = UnixAddress(path);
  if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    fd = -1;
  }
  return fd;
}

// Removes any stale file at `path` first.
inline int ListenUnix(const std::string& path) {
  unlink(path.c_str());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a = UnixAddress(path);
  if (fd >= 0 && (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
                  listen(fd, 1) != 0)) {
    close(fd);
    fd = -1;
  }
  return fd;
}

}  // namespace viommu::qtest

#endif  // VIOMMU_TESTS_QTEST_UNIX_SOCKET_H_
