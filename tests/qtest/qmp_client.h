// tests/qtest/qmp_client.h — a line-oriented QMP client over a connected
// socket, for the qtest-style tests.
//
//   QmpClient qmp(ConnectUnix(path));
//   qmp.ReadLine();                                   // the greeting
//   qmp.Command(R"({"execute": "qmp_capabilities"})"); // the next line
//   qmp.Execute(R"({"execute": "device_del", ...})");  // the answer; events
//                                                     // before it -> events()
// QMP lines end with \r\n; ReadLine strips it. Reads time out after 5 s
// ("<timeout>"); a closed socket reads "<eof>".
#ifndef VIOMMU_TESTS_QTEST_QMP_CLIENT_H_
#define VIOMMU_TESTS_QTEST_QMP_CLIENT_H_

#include <poll.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"

namespace viommu::qtest {

class QmpClient {
 public:
  explicit QmpClient(int fd) : fd_(fd) {}
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;
  ~QmpClient() { close(fd_); }

  std::string ReadLine() {
    for (;;) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      }
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 5000) <= 0) return "<timeout>";
      char tmp[4096];
      ssize_t n = read(fd_, tmp, sizeof(tmp));
      if (n <= 0) return "<eof>";
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

  // Sends `json` and returns the next line, whatever it is.
  std::string Command(const std::string& json) {
    (void)!write(fd_, json.data(), json.size());
    return ReadLine();
  }

  // Sends `json` and returns its answer; event lines read before it are
  // kept in events().
  std::string Execute(const std::string& json) {
    (void)!write(fd_, json.data(), json.size());
    for (;;) {
      std::string line = ReadLine();
      if (absl::StrContains(line, "\"event\"")) {
        events_.push_back(line);
        continue;
      }
      return line;
    }
  }
  const std::vector<std::string>& events() const { return events_; }

 private:
  int fd_;
  std::string buf_;
  std::vector<std::string> events_;
};

}  // namespace viommu::qtest

#endif  // VIOMMU_TESTS_QTEST_QMP_CLIENT_H_
