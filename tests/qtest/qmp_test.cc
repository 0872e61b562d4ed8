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
#include "tests/qtest/qmp_client.h"
#include "tests/qtest/unix_socket.h"
#include "tests/qtest/viommu_fixture.h"

namespace viommu::qtest {
namespace {

std::string TempSocketPath(const char* tag) {
  return (std::filesystem::temp_directory_path() /
          (std::string("viommu-qmp-") + tag + "-" + std::to_string(getpid())))
      .string();
}

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
