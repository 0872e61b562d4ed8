#include "viommu/system/qtest/qtest_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_qtest_target.h"

namespace viommu::system {
namespace {

using ::testing::HasSubstr;

std::string ReadAll(int fd) {
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  return out;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Replaces each log timestamp ("12.345678", QEMU's "%.06f") by "T";
// anything else that looks like a timestamp is kept, so a wrong format
// shows up in the comparison.
std::string MaskTimes(const std::string& log) {
  std::string out;
  size_t i = 0;
  while (i < log.size()) {
    const bool at_time = (i >= 2 && log.compare(i - 2, 2, " +") == 0) ||
                         (i >= 3 && log.compare(i - 3, 3, "[I ") == 0);
    size_t j = i;
    while (at_time && j < log.size() && isdigit(log[j])) ++j;
    size_t k = j + 1;
    while (j > i && k < log.size() && isdigit(log[k])) ++k;
    if (j > i && j < log.size() && log[j] == '.' && k - j == 7 &&
        k < log.size() && log[k] == ']') {
      out += 'T';
      i = k;
    } else {
      out += log[i++];
    }
  }
  return out;
}

std::string TempPath(const char* tag) {
  return "/tmp/viommu-qtest-" + std::string(tag) + "-" +
         std::to_string(getpid());
}

class QtestServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);
    ASSERT_EQ(pipe(to_server_), 0);
    ASSERT_EQ(pipe(from_server_), 0);
  }
  void TearDown() override {
    for (int fd :
         {to_server_[0], to_server_[1], from_server_[0], from_server_[1]}) {
      if (fd >= 0) close(fd);
    }
  }
  void Send(const std::string& s) {
    ASSERT_EQ(write(to_server_[1], s.data(), s.size()),
              static_cast<ssize_t>(s.size()));
  }
  void CloseInput() {
    close(to_server_[1]);
    to_server_[1] = -1;
  }
  std::string Received() {
    fcntl(from_server_[0], F_SETFL, O_NONBLOCK);
    return ReadAll(from_server_[0]);
  }

  int to_server_[2] = {-1, -1};
  int from_server_[2] = {-1, -1};
  testing::FakeQtestTarget target_;
};

TEST_F(QtestServerTest, BatchedAndSplitLinesAreAnsweredInOrder) {
  QtestServer server(&target_, to_server_[0], from_server_[1], nullptr, {});
  Send("writeb 0 7\nreadb 0\nread");
  ASSERT_TRUE(server.ServeAvailable());
  EXPECT_EQ(Received(), "OK\nOK 0x0000000000000007\n");
  Send("b 0\n");
  ASSERT_TRUE(server.ServeAvailable());
  EXPECT_EQ(Received(), "OK 0x0000000000000007\n");
  Send("\n\nendianness\nbogus\n");  // blank lines get no answer
  ASSERT_TRUE(server.ServeAvailable());
  EXPECT_EQ(Received(), "OK little\nFAIL Unknown command 'bogus'\n");
}

TEST_F(QtestServerTest, LineWithANulByteIsAnsweredWithErr) {
  // QEMU 7.2 goes deaf after a NUL (docs/qmp.md); viommu answers ERR, runs
  // nothing of the line, and serves the next one.
  QtestServer server(&target_, to_server_[0], from_server_[1], nullptr, {});
  Send(std::string("writeb 0 7\0junk\n\0writeb 0 8\nreadb 0\n", 36));
  ASSERT_TRUE(server.ServeAvailable());
  EXPECT_EQ(Received(),
            "ERR NUL byte in command\nERR NUL byte in command\n"
            "OK 0x0000000000000000\n");
  EXPECT_EQ(target_.Byte(0), 0);
}

TEST_F(QtestServerTest, EofRunsTheCallbackAndDropsAPartialLine) {
  int eofs = 0;
  QtestServer server(&target_, to_server_[0], from_server_[1], nullptr,
                     [&] { ++eofs; });
  Send("writeb 0 1\nwriteb 1 2");
  CloseInput();
  EXPECT_TRUE(server.ServeAvailable());
  EXPECT_FALSE(server.ServeAvailable());
  EXPECT_FALSE(server.ServeAvailable());  // once only
  EXPECT_EQ(eofs, 1);
  EXPECT_EQ(Received(), "OK\n");
  EXPECT_EQ(target_.Byte(1), 0);
}

TEST_F(QtestServerTest, OverlongLineIsRefusedAndSkipped) {
  QtestServer::Options options;
  options.max_line_bytes = 1000;
  QtestServer server(&target_, to_server_[0], from_server_[1], nullptr, {},
                     options);
  Send("endianness\n" + std::string(600, 'x'));
  ASSERT_TRUE(server.ServeAvailable());
  for (int i = 0; i < 5; ++i) {
    Send(std::string(600, 'x'));
    ASSERT_TRUE(server.ServeAvailable());
  }
  Send("xx\nendianness\n");
  ASSERT_TRUE(server.ServeAvailable());
  EXPECT_EQ(Received(), "OK little\nERR line too long\nOK little\n");
}

TEST_F(QtestServerTest, LongLinesUnderTheLimitAreServed) {
  QtestServer server(&target_, to_server_[0], from_server_[1], nullptr, {});
  fcntl(to_server_[1], F_SETFL, O_NONBLOCK);
  const std::string hex(2 * 100000, 'a');
  std::string line = "write 0 100000 0x" + hex + "\nreadb 99999\n";
  size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = write(to_server_[1], line.data() + sent, line.size() - sent);
    if (n > 0) sent += static_cast<size_t>(n);
    ASSERT_TRUE(server.ServeAvailable());
  }
  EXPECT_EQ(Received(), "OK\nOK 0x00000000000000aa\n");
}

TEST_F(QtestServerTest, AsyncIrqLinesAreWrittenAtOnce) {
  QtestServer server(&target_, to_server_[0], from_server_[1], nullptr, {});
  Send("irq_intercept_in ioapic\n");
  ASSERT_TRUE(server.ServeAvailable());
  EXPECT_EQ(Received(), "OK\n");
  target_.RaiseIrq(4, true);  // between commands
  EXPECT_EQ(Received(), "IRQ raise 4\n");
  Send("set_irq_in ioapic unnamed-gpio-in 4 0\n");
  ASSERT_TRUE(server.ServeAvailable());
  EXPECT_EQ(Received(), "IRQ lower 4\nOK\n");
}

TEST_F(QtestServerTest, LogUsesQemuFormat) {
  const std::string path = TempPath("log");
  {
    QtestServer server(&target_, to_server_[0], from_server_[1],
                       std::fopen(path.c_str(), "w+"), {});
    Send("endianness\nirq_intercept_in ioapic\n");
    ASSERT_TRUE(server.ServeAvailable());
    Send("set_irq_in ioapic unnamed-gpio-in 1 1\nb64write 0 3 AQI=\n\n");
    ASSERT_TRUE(server.ServeAvailable());
    CloseInput();
    EXPECT_FALSE(server.ServeAvailable());
  }
  const std::string log = Slurp(path);
  unlink(path.c_str());
  EXPECT_EQ(MaskTimes(log),
            "[I T] OPENED\n"
            "[R +T] endianness\n"
            "[S +T] OK little\n"
            "[R +T] irq_intercept_in ioapic\n"
            "[S +T] OK\n"
            "[R +T] set_irq_in ioapic unnamed-gpio-in 1 1\n"
            "[S +T] IRQ raise 1\n"
            "[S +T] OK\n"
            "[R +T] b64write 0 3 AQI=\n"
            "[S +T] b64write: data length mismatch (told 3, found 2)\n"
            "[S +T] OK\n"
            "[I +T] CLOSED\n")
      << log;
}

TEST_F(QtestServerTest, LogOfAStreamedAnswerIsOneLine) {
  const std::string path = TempPath("biglog");
  std::thread reader;
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  std::string got;
  reader = std::thread([&] { got = ReadAll(sv[1]); });
  {
    QtestServer server(&target_, to_server_[0], sv[0],
                       std::fopen(path.c_str(), "w+"), {});
    Send("read 0 0x100000\n");  // 2 MiB answer: streamed in pieces
    ASSERT_TRUE(server.ServeAvailable());
  }
  shutdown(sv[0], SHUT_WR);
  reader.join();
  close(sv[0]);
  close(sv[1]);
  EXPECT_EQ(got.size(), 5 + 2 * 0x100000u + 1);
  const std::string log = Slurp(path);
  unlink(path.c_str());
  std::istringstream lines(log);
  std::string line;
  int s_lines = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("[S ", 0) == 0) {
      ++s_lines;
      EXPECT_EQ(line.size(), line.find("] OK 0x") + 7 + 2 * 0x100000u);
    }
  }
  EXPECT_EQ(s_lines, 1);
}

TEST_F(QtestServerTest, RunBlockingServesUntilEof) {
  bool eof = false;
  QtestServer server(&target_, to_server_[0], from_server_[1], nullptr,
                     [&] { eof = true; });
  Send("writel 0x40 0xcafe\nreadl 0x40\nclock_step 5\n");
  CloseInput();
  server.RunBlocking();
  EXPECT_TRUE(eof);
  EXPECT_EQ(Received(), "OK\nOK 0x000000000000cafe\nOK 5\n");
}

TEST_F(QtestServerTest, ServesFromAGMainContext) {
  GMainContext* context = g_main_context_new();
  bool eof = false;
  {
    QtestServer server(&target_, to_server_[0], from_server_[1], nullptr,
                       [&] { eof = true; });
    server.Attach(context);
    Send("endianness\ninb 0x10\n");
    CloseInput();
    while (!eof) g_main_context_iteration(context, TRUE);
    EXPECT_EQ(Received(), "OK little\nOK 0x00ff\n");
  }
  g_main_context_unref(context);
}

TEST_F(QtestServerTest, DestroyingAnAttachedServerRemovesItsWatch) {
  GMainContext* context = g_main_context_new();
  {
    QtestServer server(&target_, to_server_[0], from_server_[1], nullptr, {});
    server.Attach(context);
  }
  Send("endianness\n");
  EXPECT_FALSE(g_main_context_iteration(context, FALSE));
  g_main_context_unref(context);
}

// A listening socket, as libqtest makes for `-qtest unix:PATH`.
int Listen(const std::string& path) {
  unlink(path.c_str());
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 1) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

TEST_F(QtestServerTest, CreateConnectsToAUnixSocket) {
  const std::string path = TempPath("sock");
  int lfd = Listen(path);
  ASSERT_GE(lfd, 0);
  bool eof = false;
  auto server = QtestServer::Create(&target_, "unix:" + path, "/dev/null",
                                    [&] { eof = true; });
  ASSERT_TRUE(server.ok()) << server.status();
  int peer = accept(lfd, nullptr, nullptr);
  ASSERT_GE(peer, 0);
  ASSERT_EQ(write(peer, "endianness\n", 11), 11);
  shutdown(peer, SHUT_WR);
  (*server)->RunBlocking();
  EXPECT_TRUE(eof);
  server->reset();  // closes the connection
  EXPECT_EQ(ReadAll(peer), "OK little\n");
  close(peer);
  close(lfd);
  unlink(path.c_str());
}

TEST_F(QtestServerTest, CreateListensForUnixServerSpecs) {
  const std::string path = TempPath("srv");
  unlink(path.c_str());
  std::thread client([&] {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    for (int i = 0; i < 500; ++i) {
      if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    (void)!write(fd, "inw 0\n", 6);
    shutdown(fd, SHUT_WR);
    EXPECT_EQ(ReadAll(fd), "OK 0xffff\n");
    close(fd);
  });
  auto server = QtestServer::Create(
      &target_, "unix:" + path + ",server=on,wait=on", "none", {});
  ASSERT_TRUE(server.ok()) << server.status();
  (*server)->RunBlocking();
  server->reset();
  client.join();
}

TEST_F(QtestServerTest, CreateRefusesUnknownChardevsAndBadPaths) {
  auto s = QtestServer::Create(&target_, "tcp:localhost:1", "", {});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("only 'stdio' and 'unix:PATH'"));
  auto u = QtestServer::Create(&target_, "unix:/nonexistent/sock", "", {});
  EXPECT_EQ(u.status().code(), absl::StatusCode::kUnavailable);
  auto e = QtestServer::Create(&target_, "unix:", "", {});
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  auto l = QtestServer::Create(&target_, "stdio", "/nonexistent/dir/log", {});
  EXPECT_FALSE(l.ok());
}

// Commands pipelined through a pipe, batched as a client that pipelines
// them would send: every one is answered, none lost at buffer boundaries.
// (Throughput is measured in tests/bench/qtest_throughput_bench.cc.)
TEST_F(QtestServerTest, AnswersEveryPipelinedCommand) {
  constexpr int kCommands = 20000;
  std::string batch;
  for (int i = 0; i < kCommands; ++i) {
    batch += (i % 2 == 0) ? "writel 0x1000 0x12345678\n" : "readl 0x1000\n";
  }
  size_t answered = 0;
  std::thread writer([&] {
    size_t sent = 0;
    while (sent < batch.size()) {
      ssize_t n =
          write(to_server_[1], batch.data() + sent, batch.size() - sent);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    CloseInput();
  });
  std::thread reader([&] {
    char buf[65536];
    ssize_t n;
    while ((n = read(from_server_[0], buf, sizeof(buf))) > 0) {
      for (ssize_t i = 0; i < n; ++i) answered += buf[i] == '\n';
    }
  });
  {
    QtestServer server(&target_, to_server_[0], from_server_[1], nullptr, {});
    server.RunBlocking();
  }
  writer.join();
  close(from_server_[1]);
  from_server_[1] = -1;
  reader.join();
  EXPECT_EQ(answered, static_cast<size_t>(kCommands));
}

}  // namespace
}  // namespace viommu::system
