#include "viommu/system/log_options.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/system/command_line.h"
#include "viommu/system/qmp/qmp_dispatcher.h"
#include "viommu/system/trace_commands.h"
#include "viommu/util/log.h"
#include "viommu/util/trace.h"

namespace viommu::system {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class LogOptionsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    trace::Trace::DisableAll();
    log::Log::SetMask(0);
    (void)log::Log::SetFile("");
  }
};

TEST_F(LogOptionsTest, TraceFormsAreParsedInOrder) {
  auto c = ParseCommandLine({"-trace", "vtd_*", "-trace", "enable=vfio_dma_*",
                             "-trace", "events=/tmp/ev", "-d",
                             "guest_errors,trace:qmp_*", "-D", "/tmp/log"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->trace_patterns, ElementsAre("vtd_*", "vfio_dma_*", "qmp_*"));
  EXPECT_THAT(c->trace_event_files, ElementsAre("/tmp/ev"));
  EXPECT_EQ(c->log_mask, log::kLogGuestErrors);
  EXPECT_EQ(*c->log_file, "/tmp/log");
  EXPECT_FALSE(c->log_help);
}

TEST_F(LogOptionsTest, DAcceptsBothCategoriesAndHelp) {
  auto c = ParseCommandLine({"-d", "unimp", "-d", "guest_errors", "-d", "help"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->log_mask, log::kLogGuestErrors | log::kLogUnimp);
  EXPECT_TRUE(c->log_help);
}

TEST_F(LogOptionsTest, UnknownCategoryIsAnError) {
  auto c = ParseCommandLine({"-d", "guest_errors,in_asm"});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("'in_asm'"));
}

TEST_F(LogOptionsTest, UnknownTraceParameterIsAnError) {
  auto c = ParseCommandLine({"-trace", "enable=vtd_*,colour=red"});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("'colour'"));
}

TEST_F(LogOptionsTest, MissingValueIsAnError) {
  EXPECT_FALSE(ParseCommandLine({"-D"}).ok());
  EXPECT_FALSE(ParseCommandLine({"-trace"}).ok());
}

TEST_F(LogOptionsTest, ApplyEnablesPatternsAndEventsFile) {
  char path[] = "/tmp/viommu_events_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << "# comment\n\n  vfio_dma_map  \n-vtd_reg_read\nbogus\n";
  VmConfig c;
  c.trace_patterns = {"vtd_reg_*"};
  c.trace_event_files = {path};
  c.log_mask = log::kLogUnimp;
  std::ostringstream out, warn;
  absl::StatusOr<bool> help = ApplyLogOptions(c, out, warn);
  unlink(path);
  ASSERT_TRUE(help.ok()) << help.status();
  EXPECT_FALSE(*help);
  EXPECT_TRUE(trace::Trace::IsEnabled(trace::Event::vfio_dma_map));
  EXPECT_TRUE(trace::Trace::IsEnabled(trace::Event::vtd_reg_write));
  // The command-line patterns come after the files.
  EXPECT_TRUE(trace::Trace::IsEnabled(trace::Event::vtd_reg_read));
  EXPECT_FALSE(trace::Trace::IsEnabled(trace::Event::vfio_dma_unmap));
  EXPECT_EQ(log::Log::Mask(), log::kLogUnimp);
  EXPECT_THAT(warn.str(), HasSubstr(":5: warning: trace event 'bogus' does "
                                    "not exist"));
}

TEST_F(LogOptionsTest, HelpPrintsAndAsksToExit) {
  VmConfig c;
  c.log_help = true;
  std::ostringstream out, warn;
  absl::StatusOr<bool> help = ApplyLogOptions(c, out, warn);
  ASSERT_TRUE(help.ok());
  EXPECT_TRUE(*help);
  EXPECT_THAT(out.str(), HasSubstr("guest_errors"));
}

TEST_F(LogOptionsTest, MissingEventsFileIsAnError) {
  VmConfig c;
  c.trace_event_files = {"/nonexistent/events"};
  std::ostringstream out, warn;
  absl::StatusOr<bool> help = ApplyLogOptions(c, out, warn);
  EXPECT_EQ(help.status().code(), absl::StatusCode::kNotFound);
}

class TraceCommandsTest : public LogOptionsTest {
 protected:
  void SetUp() override {
    RegisterTraceCommands(&qmp_);
    session_.HandleMessage(R"({"execute": "qmp_capabilities"})");
    sent_.clear();
  }
  std::string Run(const std::string& json) {
    sent_.clear();
    session_.HandleMessage(json);
    return sent_;
  }
  QmpDispatcher qmp_;
  std::string sent_;
  QmpSession session_{&qmp_,
                      [this](absl::string_view s) { sent_.append(s.data(), s.size()); }};
};

TEST_F(TraceCommandsTest, SetStateEnablesByPatternAndGetStateReports) {
  EXPECT_THAT(Run(R"({"execute": "trace-event-set-state", "arguments":
                     {"name": "vtd_reg_*", "enable": true}})"),
              HasSubstr(R"("return": {})"));
  EXPECT_TRUE(trace::Trace::IsEnabled(trace::Event::vtd_reg_write));
  EXPECT_THAT(Run(R"({"execute": "trace-event-get-state", "arguments":
                     {"name": "vtd_reg_write"}})"),
              HasSubstr(R"([{"name": "vtd_reg_write", "vcpu": false, )"
                        R"("state": "enabled"}])"));
  Run(R"({"execute": "trace-event-set-state", "arguments":
         {"name": "vtd_reg_write", "enable": false}})");
  EXPECT_FALSE(trace::Trace::IsEnabled(trace::Event::vtd_reg_write));
  EXPECT_TRUE(trace::Trace::IsEnabled(trace::Event::vtd_reg_read));
}

TEST_F(TraceCommandsTest, UnknownEventNameIsAnError) {
  EXPECT_THAT(Run(R"({"execute": "trace-event-get-state", "arguments":
                     {"name": "nosuch"}})"),
              HasSubstr(R"("desc": "unknown event \"nosuch\"")"));
  // A pattern matching nothing is an empty answer, as in QEMU.
  EXPECT_THAT(Run(R"({"execute": "trace-event-get-state", "arguments":
                     {"name": "nosuch*"}})"),
              HasSubstr(R"("return": [])"));
}

}  // namespace
}  // namespace viommu::system
