// QMP against build/viommu over a real unix socket: -qmp (viommu listens)
// and -chardev/-mon (viommu connects to the test, as libqtest does).
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/qtest/unix_socket.h"
#include "tests/qtest/viommu_fixture.h"

namespace viommu::qtest {
namespace {

std::string TempSocketPath(const char* tag) {
  return (std::filesystem::temp_directory_path() /
          (std::string("viommu-qmp-") + tag + "-" + std::to_string(getpid())))
      .string();
}

// One JSON line per call (QMP lines end with \r\n).
class QmpClient {
 public:
  explicit QmpClient(int fd) : fd_(fd) {}
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
  std::string Command(const std::string& json) {
    (void)!write(fd_, json.data(), json.size());
    return ReadLine();
  }

 private:
  int fd_;
  std::string buf_;
};

class QmpTest : public ViommuTest {};

TEST_F(QmpTest, ListeningMonitorNegotiatesAndRunsCommands) {
  const std::string path = TempSocketPath("listen");
  Start({"-qmp", "unix:" + path + ",server=on,wait=off", "-device",
         "edu,addr=04.0,id=e0"});
  ASSERT_EQ(qts().Readl(0), 0u);  // the machine is up, the socket exists
  int fd = ConnectUnix(path);
  ASSERT_GE(fd, 0);
  QmpClient qmp(fd);
  EXPECT_TRUE(absl::StartsWith(qmp.ReadLine(), "{\"QMP\": {\"version\""));
  EXPECT_TRUE(absl::StrContains(qmp.Command(R"({"execute": "query-status"})"),
                                "Expecting capabilities negotiation"));
  EXPECT_EQ(qmp.Command(R"({"execute": "qmp_capabilities", "id": 7})"),
            R"({"return": {}, "id": 7})");
  EXPECT_TRUE(absl::StrContains(qmp.Command(R"({"execute": "query-status"})"),
                                R"("status":"running")"));
  EXPECT_TRUE(absl::StrContains(qmp.Command(R"({"execute": "no-such"})"),
                                "CommandNotFound"));
  EXPECT_TRUE(absl::StrContains(qmp.Command("[1, 2]"),
                                "QMP input must be a JSON object"));
  EXPECT_TRUE(absl::StrContains(
      qmp.Command(
          R"({"execute": "device_add", "arguments": {"driver": "edu", "id": "e1", "addr": "06.0"}})"),
      R"("return")"));
  EXPECT_EQ(qts().Readl(0xb0000000), 0u);
  QPciDevice slot6(&bus(), 0x30);
  EXPECT_EQ(slot6.ConfigReadl(0), 0x11e81234u);
  std::string event =
      qmp.Command(R"({"execute": "device_del", "arguments": {"id": "e1"}})");
  std::string answer = qmp.ReadLine();
  if (absl::StrContains(event, "\"return\"")) std::swap(event, answer);
  EXPECT_TRUE(absl::StrContains(event, "DEVICE_DELETED")) << event;
  EXPECT_TRUE(absl::StrContains(event, R"("device":"e1")")) << event;
  EXPECT_EQ(answer, R"({"return": {}})");
  EXPECT_EQ(slot6.ConfigReadl(0), 0xffffffffu);
  EXPECT_TRUE(absl::StrContains(
      qmp.Command(R"({"execute": "device_del", "arguments": {"id": "e1"}})"),
      "DeviceNotFound"));
  EXPECT_TRUE(absl::StrContains(
      qmp.Command(
          R"({"execute": "device_add", "arguments": {"driver": "nope"}})"),
      "GenericError"));
}

TEST_F(QmpTest, ChardevMonitorConnectsToTheTest) {
  const std::string path = TempSocketPath("connect");
  int listener = ListenUnix(path);
  ASSERT_GE(listener, 0);
  Start({"-chardev", "socket,path=" + path + ",id=mon0", "-mon",
         "chardev=mon0,mode=control"});
  pollfd p{listener, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  QmpClient qmp(accept(listener, nullptr, nullptr));
  close(listener);
  unlink(path.c_str());
  EXPECT_TRUE(absl::StartsWith(qmp.ReadLine(), "{\"QMP\""));
  EXPECT_EQ(qmp.Command(R"({"execute": "qmp_capabilities"})"),
            R"({"return": {}})");
  std::string first = qmp.Command(R"({"execute": "system_reset"})");
  std::string second = qmp.ReadLine();
  EXPECT_TRUE(absl::StrContains(first, R"("event": "RESET")")) << first;
  EXPECT_EQ(second, R"({"return": {}})");
}

}  // namespace
}  // namespace viommu::qtest
