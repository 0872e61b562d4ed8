// Tracing and guest-error logging of build/viommu, end to end: -trace,
// -d, -D and the QMP trace commands (docs/tracing.md).
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/qtest/viommu_fixture.h"
#include "tests/qtest/vtd_guest.h"

namespace viommu::qtest {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint8_t kTestdev = 0x28;  // 00:05.0
constexpr uint32_t kDmaRead = 1;
constexpr uint32_t kResultDecodeError = 2;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs build/viommu with `args` (stdin from /dev/null), returning its exit
// status and what it wrote to stdout and stderr together.
int RunViommu(const std::string& args, std::string* output) {
  const std::string cmd = std::string(std::getenv("VIOMMU_BINARY")) + " " +
                          args + " </dev/null 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class TraceTest : public ViommuTest {
 protected:
  void SetUp() override {
    char path[] = "/tmp/viommu_trace_test_XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    log_ = path;
  }
  void TearDown() override {
    ViommuTest::TearDown();
    unlink(log_.c_str());
  }
  std::string log_;
};

TEST_F(TraceTest, VtdFaultIsTracedAndLoggedAsGuestError) {
  Start({"-m", "256M", "-device", "intel-iommu", "-device",
         "dma-testdev,addr=05.0", "-trace", "enable=vtd_*", "-d",
         "guest_errors", "-D", log_});
  ASSERT_FALSE(HasFatalFailure());
  QPciDevice dev = *bus().Find(0x10f0, 0x1b36);
  dev.Enable();
  const uint64_t bar = dev.MapBar(0);
  VtdGuest vtd(&qts(), 3);
  vtd.SetContext(kTestdev, 1);
  vtd.Enable();
  qts().Writeq(bar + 0x08, 0x1234'5678);
  qts().Writel(bar + 0x10, 4);
  qts().Writel(bar + 0x14, 0);
  qts().Writel(bar + 0x18, kDmaRead);
  ASSERT_EQ(qts().Readl(bar + 0x1c), kResultDecodeError);
  ASSERT_TRUE(vtd.ReadFault().pending());

  const std::string log = ReadFile(log_);
  // GCMD.TE (offset 0x18) written by the guest driver.
  EXPECT_THAT(log, HasSubstr("vtd_reg_write addr 0x18 size 4 val 0x80000000"));
  EXPECT_THAT(log, HasSubstr("vtd_dmar_enable enable 1"));
  EXPECT_THAT(log, HasSubstr("vtd_dmar_fault sid 0x0028 iova 0x12345678 "
                             "write 0 reason 0x6 fpd 0"));
  EXPECT_THAT(log, HasSubstr("vtd_frr_new index 0 sid 0x0028 reason 0x6 "
                             "addr 0x12345678 write 0"));
  EXPECT_THAT(log, HasSubstr("guest_errors: vtd: DMA read fault: sid 0x0028 "
                             "addr 0x12345678 reason 0x6"));
  // Only the vtd_* events were enabled.
  EXPECT_THAT(log, Not(HasSubstr("qtest_command")));
}

TEST_F(TraceTest, NothingIsLoggedWithoutOptions) {
  Start({"-m", "256M", "-device", "intel-iommu", "-D", log_});
  ASSERT_FALSE(HasFatalFailure());
  qts().Writel(VtdGuest::kRegBase + VtdGuest::kFsts, 0);
  EXPECT_EQ(ReadFile(log_), "");
}

TEST_F(TraceTest, EventsFileAndDTraceEnableEvents) {
  std::ofstream(log_ + ".events") << "# front ends\n\nqtest_command\n";
  Start({"-m", "256M", "-trace", "events=" + log_ + ".events", "-d",
         "trace:qmp_*", "-D", log_});
  ASSERT_FALSE(HasFatalFailure());
  qts().Readl(0xcf8);
  unlink((log_ + ".events").c_str());
  EXPECT_THAT(ReadFile(log_), HasSubstr("qtest_command readl 0xcf8"));
}

TEST(TraceCommandLineTest, UnknownLogCategoryExitsWithStatus1) {
  std::string out;
  EXPECT_EQ(RunViommu("-M q35 -d guest_errors,bogus", &out), 1);
  EXPECT_THAT(out, HasSubstr("unknown log category 'bogus'"));
}

TEST(TraceCommandLineTest, DHelpListsCategoriesAndExits0) {
  std::string out;
  EXPECT_EQ(RunViommu("-d help", &out), 0);
  EXPECT_THAT(out, HasSubstr("guest_errors"));
  EXPECT_THAT(out, HasSubstr("unimp"));
}

TEST(TraceCommandLineTest, TraceHelpListsEvents) {
  std::string out;
  EXPECT_EQ(RunViommu("-trace help", &out), 0);
  EXPECT_THAT(out, HasSubstr("vtd_reg_write\n"));
  EXPECT_THAT(out, HasSubstr("vfio_dma_map\n"));
}

TEST(TraceCommandLineTest, UnknownEventNameWarnsAndRuns) {
  std::string out;
  EXPECT_EQ(RunViommu("-M q35 -trace enable=no_such_event -qtest stdio", &out),
            0);
  EXPECT_THAT(out, HasSubstr("-trace enable=no_such_event: warning: trace "
                             "event 'no_such_event' does not exist"));
}

TEST(TraceCommandLineTest, UnreadableEventsFileExitsWithStatus1) {
  std::string out;
  EXPECT_EQ(RunViommu("-M q35 -trace events=/nonexistent/ev", &out), 1);
  EXPECT_THAT(out, HasSubstr("/nonexistent/ev: No such file or directory"));
}

TEST(TraceCommandLineTest, UnwritableLogFileExitsWithStatus1) {
  std::string out;
  EXPECT_EQ(RunViommu("-M q35 -D /nonexistent/log", &out), 1);
  EXPECT_THAT(out, HasSubstr("-D /nonexistent/log"));
}

}  // namespace
}  // namespace viommu::qtest
