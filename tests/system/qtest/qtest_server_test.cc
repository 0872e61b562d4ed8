#include "viommu/system/qtest/qtest_server.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/fakes/fake_qtest_target.h"

namespace viommu::system {
namespace {

class QtestServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
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
  std::string Received() {
    fcntl(from_server_[0], F_SETFL, O_NONBLOCK);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(from_server_[0], buf, sizeof(buf))) > 0)
      out.append(buf, n);
    return out;
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
}

TEST_F(QtestServerTest, EofRunsTheCallback) {
  bool eof = false;
  QtestServer server(&target_, to_server_[0], from_server_[1], nullptr,
                     [&] { eof = true; });
  close(to_server_[1]);
  to_server_[1] = -1;
  EXPECT_FALSE(server.ServeAvailable());
  EXPECT_TRUE(eof);
}

TEST_F(QtestServerTest, OverlongLineIsRefusedAndSkipped) {
  QtestServer server(&target_, to_server_[0], from_server_[1], nullptr, {});
  fcntl(to_server_[1], F_SETFL, O_NONBLOCK);
  std::string junk(64 * 1024, 'x');
  for (int i = 0; i < 20; ++i) {
    Send(junk);
    ASSERT_TRUE(server.ServeAvailable());
  }
  Send("tail\nendianness\n");
  ASSERT_TRUE(server.ServeAvailable());
  EXPECT_EQ(Received(), "ERR line too long\nOK little\n");
}

TEST_F(QtestServerTest, LogUsesQemuFormat) {
  char path[] = "/tmp/viommu-qtest-log-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    QtestServer server(&target_, to_server_[0], from_server_[1],
                       std::fopen(path, "w"), {});
    Send("endianness\n");
    ASSERT_TRUE(server.ServeAvailable());
  }
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  unlink(path);
  // "[R +0.000012] endianness\n[S +0.000020] OK little\n"
  std::string log = ss.str();
  double t1 = -1, t2 = -1;
  char req[32] = {}, ans[32] = {};
  ASSERT_EQ(std::sscanf(log.c_str(), "[R +%lf] %31[^\n]\n[S +%lf] %31[^\n]\n",
                        &t1, req, &t2, ans),
            4)
      << log;
  EXPECT_STREQ(req, "endianness");
  EXPECT_STREQ(ans, "OK little");
  EXPECT_LE(t1, t2);
  // Six decimals, as QEMU's "%.06f".
  EXPECT_EQ(log.find('.') + 7, log.find(']')) << log;
}

TEST_F(QtestServerTest, CreateRefusesUnknownChardevs) {
  auto s = QtestServer::Create(&target_, "tcp:localhost:1", "", {});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  auto u = QtestServer::Create(&target_, "unix:/nonexistent/sock", "", {});
  EXPECT_EQ(u.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace viommu::system
