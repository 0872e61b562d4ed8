// build/viommu's QMP socket tried as a hostile client would: one fresh
// process per input, answers counted as QEMU 7.2 gives them.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace {

using ::testing::Each;
using ::testing::ElementsAre;

class QmpHostileClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("VIOMMU_BINARY");
    if (bin == nullptr) GTEST_SKIP() << "VIOMMU_BINARY is not set";
    char dir[] = "/tmp/qmp-hostile-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    sock_ = dir_ + "/qmp.sock";
    const std::string qmp = absl::StrCat("unix:", sock_, ",server=on,wait=off");
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      execl(bin, bin, "-M", "q35", "-display", "none", "-qmp", qmp.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  void TearDown() override {
    for (int fd : fds_) close(fd);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (!dir_.empty()) {
      unlink(sock_.c_str());
      rmdir(dir_.c_str());
    }
  }
  bool Alive() {
    int status = 0;
    return waitpid(pid_, &status, WNOHANG) == 0;
  }
  // A connected client that has read the greeting.
  int Connect() {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, sock_.data(), sock_.size());
    for (int i = 0; i < 800 && Alive(); ++i) {
      int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
        fds_.push_back(fd);
        pending_[fd].clear();
        EXPECT_EQ(Read(fd, 1).size(), 1u);  // the greeting
        return fd;
      }
      close(fd);
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    ADD_FAILURE() << "viommu never listened on " << sock_;
    return -1;
  }
  // Sends `bytes` while reading answers (QEMU's own client does both).
  void Send(int fd, absl::string_view bytes) {
    while (!bytes.empty()) {
      pollfd p{fd, POLLOUT | POLLIN, 0};
      ASSERT_GT(poll(&p, 1, 5000), 0) << "viommu stopped reading";
      if (p.revents & POLLIN) Drain(fd, 0);
      if (p.revents & POLLOUT) {
        ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        ASSERT_GT(n, 0);
        bytes.remove_prefix(static_cast<size_t>(n));
      }
    }
  }
  // Reads what arrives within `timeout_ms`, then until 100 ms of silence.
  void Drain(int fd, int timeout_ms) {
    char buf[65536];
    pollfd p{fd, POLLIN, 0};
    while (poll(&p, 1, timeout_ms) > 0) {
      ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n <= 0) return;
      pending_[fd].append(buf, static_cast<size_t>(n));
      timeout_ms = 100;
    }
  }
  // Up to `want` answer lines (fewer after a 2 s silence).
  std::vector<std::string> Read(int fd, size_t want) {
    std::vector<std::string> lines;
    for (;;) {
      std::string& buf = pending_[fd];
      size_t end;
      while (lines.size() < want && (end = buf.find("\r\n")) != buf.npos) {
        lines.push_back(buf.substr(0, end));
        buf.erase(0, end + 2);
      }
      if (lines.size() >= want) return lines;
      const size_t before = buf.size();
      Drain(fd, 2000);
      if (buf.size() == before) return lines;
    }
  }
  std::string Err(absl::string_view desc) {
    return absl::StrCat(R"({"error": {"class": "GenericError", "desc": ")",
                        desc, R"("}})");
  }

  std::string dir_, sock_;
  pid_t pid_ = -1;
  std::vector<int> fds_;
  std::map<int, std::string> pending_;
};

TEST_F(QmpHostileClientTest, DeepBracketsAreRefusedNotACrash) {
  int fd = Connect();
  Send(fd, std::string(200000, '['));
  auto a = Read(fd, 196);
  EXPECT_EQ(a.size(), 195u);
  EXPECT_THAT(a, Each(Err("JSON nesting depth limit exceeded")));
  ASSERT_TRUE(Alive());
  Send(fd, "\n\x01{\"execute\":\"qmp_capabilities\"}");
  EXPECT_THAT(Read(fd, 2),
              ElementsAre(Err("JSON parse error, stray '\\u0001'"),
                          R"({"return": {}})"));
}

TEST_F(QmpHostileClientTest, GarbageLineIsAnsweredOnce) {
  int fd = Connect();
  Send(fd, std::string(65536, 'x') + "\n{\"execute\":\"qmp_capabilities\"}");
  auto a = Read(fd, 3);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0], Err(absl::StrCat("JSON parse error, invalid keyword '",
                                   std::string(1006, 'x'))));
  EXPECT_EQ(a[1], R"({"return": {}})");
}

TEST_F(QmpHostileClientTest, ClientThatNeverReadsIsDroppedOthersServed) {
  int hog = Connect();
  int good = Connect();
  // Every ']' is a message of its own (84 bytes of answer each): the hog
  // asks for far more than the 16 MiB viommu keeps for it, then is dropped.
  const std::string chunk(1 << 20, ']');
  size_t sent = 0;
  for (int i = 0; i < 8; ++i) {
    pollfd p{hog, POLLOUT, 0};
    if (poll(&p, 1, 5000) <= 0) break;
    ssize_t n = send(hog, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n <= 0) break;  // dropped already
    sent += static_cast<size_t>(n);
  }
  EXPECT_GT(sent, size_t{256} << 10);  // > 16 MiB of answers asked for
  Send(good, R"({"execute":"qmp_capabilities"})");
  EXPECT_THAT(Read(good, 1), ElementsAre(R"({"return": {}})"));
  // The hog's connection ends: EOF after at most the bounded backlog.
  char buf[65536];
  size_t got = 0;
  for (;;) {
    pollfd p{hog, POLLIN, 0};
    ASSERT_GT(poll(&p, 1, 5000), 0) << "hog never dropped";
    ssize_t n = recv(hog, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  EXPECT_LT(got, size_t{64} << 20);
  EXPECT_TRUE(Alive());
}

}  // namespace
