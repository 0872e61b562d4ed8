// build/viommu as a process: the unix-socket qtest transport libqtest uses,
// exit on EOF, system_reset semantics, and command-line errors.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/qtest/unix_socket.h"
#include "tests/qtest/viommu_fixture.h"

namespace viommu::qtest {
namespace {

std::string Binary() { return std::getenv("VIOMMU_BINARY"); }

class MachineTest : public ViommuTest {};

TEST_F(MachineTest, QtestOverAUnixSocketTheTestListensOn) {
  const std::string path = "/tmp/viommu-qtest-" + std::to_string(getpid());
  unlink(path.c_str());
  int listener = ListenUnix(path);
  ASSERT_GE(listener, 0);
  pid_t pid = fork();
  if (pid == 0) {
    execl(Binary().c_str(), "viommu", "-M", "q35", "-qtest",
          ("unix:" + path).c_str(), nullptr);
    _exit(127);
  }
  pollfd p{listener, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  int fd = accept(listener, nullptr, nullptr);
  close(listener);
  unlink(path.c_str());
  const char kCmd[] = "outl 0xcf8 0x80000000\ninl 0xcfc\n";
  ASSERT_EQ(write(fd, kCmd, sizeof(kCmd) - 1), ssize_t{sizeof(kCmd) - 1});
  std::string got;
  char buf[256];
  while (std::count(got.begin(), got.end(), '\n') < 2) {
    pollfd q{fd, POLLIN, 0};
    ASSERT_EQ(poll(&q, 1, 5000), 1);
    ssize_t n = read(fd, buf, sizeof(buf));
    ASSERT_GT(n, 0);
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got, "OK\nOK 0x29c08086\n");
  close(fd);  // EOF ends the process
  int status = 0;
  for (int i = 0; i < 500 && waitpid(pid, &status, WNOHANG) == 0; ++i) {
    usleep(10'000);
  }
  ASSERT_TRUE(WIFEXITED(status)) << "viommu did not exit on EOF";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(MachineTest, SystemResetUnmapsBarsAndKeepsRam) {
  const std::string path = "/tmp/viommu-qmp-reset-" + std::to_string(getpid());
  Start({"-device", "edu,addr=04.0", "-qmp", "unix:" + path + ",server=on"});
  QPciDevice edu = *bus().Find(0x11e8);
  edu.Enable();
  uint64_t bar = edu.MapBar(0);
  qts().Writel(0x1000, 0xcafe);
  ASSERT_EQ(qts().Readl(bar), 0x010000edu);
  int fd = ConnectUnix(path);
  ASSERT_GE(fd, 0);
  const char kCmds[] =
      "{\"execute\":\"qmp_capabilities\"}{\"execute\":\"system_reset\"}";
  ASSERT_GT(write(fd, kCmds, sizeof(kCmds) - 1), 0);
  std::string got;
  char buf[1024];
  while (std::count(got.begin(), got.end(), '\n') < 4) {
    pollfd q{fd, POLLIN, 0};
    ASSERT_EQ(poll(&q, 1, 5000), 1);
    ssize_t n = read(fd, buf, sizeof(buf));
    ASSERT_GT(n, 0);
    got.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  EXPECT_TRUE(absl::StrContains(got, "RESET")) << got;
  EXPECT_EQ(edu.ConfigReadw(0x04), 0u);
  EXPECT_EQ(qts().Readl(bar), 0u);          // BAR no longer decoded
  EXPECT_EQ(qts().Readl(0x1000), 0xcafeu);  // RAM kept
}

TEST_F(MachineTest, MalformedQtestInputNeverStopsTheMachine) {
  Start({});
  for (const char* bad : {"readl", "outb 0x10000 1", "read 0 0", "write 0 1 0x",
                          "readq 0xfffffffffffffffc", "b64write 0 1 ***",
                          "memset 0 0xffffffffffffffff 0", "clock_set -1"}) {
    auto a = qts().Command(bad);
    ASSERT_TRUE(a.ok()) << bad;
    EXPECT_TRUE(absl::StartsWith(*a, "ERR ")) << bad << " -> " << *a;
  }
  EXPECT_EQ(*qts().Command("what"), "FAIL Unknown command 'what'");
  EXPECT_EQ(qts().Inl(0xcf8), 0u);
}

TEST_F(MachineTest, RunFailsAtTheFirstWrongExpectation) {
  const std::string script = "/tmp/viommu-run-" + std::to_string(getpid());
  FILE* f = std::fopen(script.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs(
      "# a comment\noutl 0xcf8 0x80000000\nexpect OK\ninl 0xcfc\n"
      "expect OK 0x12345678\nreadl 0\n",
      f);
  std::fclose(f);
  std::string cmd = Binary() + " run " + script + " -m 64M 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  int status = pclose(p);
  unlink(script.c_str());
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_TRUE(absl::StrContains(
      out,
      script + ":5: FAILED: expected 'OK 0x12345678', got 'OK 0x29c08086'"))
      << out;
  EXPECT_FALSE(absl::StrContains(out, "readl 0")) << "ran past the failure";
}

TEST_F(MachineTest, CommandLineErrorsNameTheProblem) {
  struct Case {
    const char* args;
    const char* message;
  };
  for (const Case& c : {
           Case{"-frob", "-frob: invalid option"},
           Case{"-device nope", "'nope' is not a valid device model name"},
           Case{"-device edu,colour=red", "Property 'edu.colour' not found"},
           Case{"-device edu,addr=4 -device edu,addr=04.0",
                "slot 4 function 0 not available"},
           Case{"-m 64Q", "Parameter 'size' expects"},
           Case{"-m 100T", "cannot allocate"},
           Case{"-object memory-backend-ram,id=m0",
                "object type 'memory-backend-ram' is not supported"},
           Case{"-machine q35,vfio-host=linux -device "
                "vfio-pci,host=0000:7f:1f.7,id=r0",
                "vfio-pci 'r0' (host 0000:7f:1f.7): host device 0000:7f:1f.7 "
                "has no IOMMU group"},
           Case{"-machine q35,vfio-host=linux -object "
                "vfio-host-model,id=h0,dtb=x.dtb",
                "cannot be used with -machine vfio-host=linux"},
           Case{"-device vfio-pci,host=0000:09:00.0,id=v9",
                "vfio-pci 'v9' (host 0000:09:00.0): host device 0000:09:00.0 "
                "does not exist"},
           Case{"-device vfio-pci,host=0000:01:00.0 -device "
                "vfio-pci,host=0000:01:00.0",
                "0000:01:00.0 is already attached"},
           Case{"-device vfio-pci,host=0000:01:00.0,iommufd=nope",
                "Property 'vfio-pci.iommufd' can't find value 'nope'"},
           Case{"-object vfio-host-model,id=h0,dtb=/nonexistent.dtb",
                "-object vfio-host-model,id=h0,dtb=/nonexistent.dtb: "},
           Case{"-qtest tcp:1", "only 'stdio' and 'unix:PATH'"},
       }) {
    FILE* p =
        popen((Binary() + " " + c.args + " </dev/null 2>&1").c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[512];
    while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
    EXPECT_EQ(WEXITSTATUS(pclose(p)), 1) << c.args;
    EXPECT_TRUE(absl::StrContains(out, c.message)) << c.args << ": " << out;
  }
}

TEST_F(MachineTest, DefaultWorkloadPasses) {
  FILE* p = popen((Binary() + " run 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  EXPECT_EQ(WEXITSTATUS(pclose(p)), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "all passed")) << out;
  // The default machine has a passthrough device behind caching-mode VT-d,
  // and the workload hot-plugs and unplugs a second one.
  EXPECT_TRUE(absl::StrContains(out, "intel-iommu,caching-mode=on")) << out;
  EXPECT_TRUE(absl::StrContains(out, "vfio-pci,host=0000:01:00.0")) << out;
  EXPECT_TRUE(absl::StrContains(out, R"("address-space": "vtd-07.0")")) << out;
  EXPECT_TRUE(absl::StrContains(out, R"("device":"hp")")) << out;
}

TEST_F(MachineTest, QmpQuitEndsTheProcess) {
  const std::string path = "/tmp/viommu-qmp-quit-" + std::to_string(getpid());
  Start({"-qmp", "unix:" + path + ",server=on,wait=off"});
  ASSERT_EQ(*qts().Command("endianness"), "OK little");
  int fd = ConnectUnix(path);
  ASSERT_GE(fd, 0);
  const char kCmds[] =
      "{\"execute\":\"qmp_capabilities\"}{\"execute\":\"quit\"}";
  ASSERT_GT(write(fd, kCmds, sizeof(kCmds) - 1), 0);
  // The qtest channel closes when the process exits.
  bool closed = false;
  for (int i = 0; i < 100 && !closed; ++i) {
    closed = !qts().Command("endianness").ok();
    if (!closed) usleep(10'000);
  }
  close(fd);
  EXPECT_TRUE(closed) << "viommu did not quit";
  qts_.reset();  // the channel is gone; nothing more to check
}

}  // namespace
}  // namespace viommu::qtest
