#include "viommu/util/log.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "viommu/util/trace.h"

namespace viommu::log {
namespace {

void GuestErrorAt(int value) {
  VIOMMU_LOG_GUEST_ERROR("bad value %d", value);  // one call site
}

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Log::ResetCounters();
    now_ += 10 * Log::kWindowNs;  // past any window an earlier test opened
    Log::SetMask(kLogGuestErrors | kLogUnimp);
    Log::SetClockForTest([this] { return now_; });
    Log::SetSink([this](const LogRecord& r) {
      kinds_.push_back(std::string(r.kind));
      messages_.push_back(r.message);
    });
  }
  void TearDown() override {
    // Flush GuestErrorAt's pending "suppressed" summary into this test's
    // sink, so the next test starts that site with a fresh window.
    Log::SetMask(kLogGuestErrors);
    now_ += 10 * Log::kWindowNs;
    GuestErrorAt(0);
    Log::SetSink(nullptr);
    Log::SetClockForTest(nullptr);
    Log::SetMask(0);
    (void)Log::SetFile("");
    Log::ResetCounters();
  }
  static inline int64_t now_ = 0;
  std::vector<std::string> kinds_;
  std::vector<std::string> messages_;
};

TEST_F(LogTest, GuestErrorIsFormattedAndCounted) {
  VIOMMU_LOG_GUEST_ERROR("register 0x%x is read-only", 0x20);
  ASSERT_EQ(messages_.size(), 1u);
  EXPECT_EQ(kinds_[0], "guest_errors");
  EXPECT_EQ(messages_[0], "register 0x20 is read-only");
  EXPECT_EQ(Log::Count(kLogGuestErrors), 1u);
  EXPECT_EQ(Log::Count(kLogUnimp), 0u);
}

TEST_F(LogTest, DisabledCategoryIsCountedButNotPrinted) {
  Log::SetMask(kLogUnimp);
  int formatted = 0;
  auto arg = [&] { return ++formatted; };
  VIOMMU_LOG_GUEST_ERROR("x %d", arg());
  EXPECT_TRUE(messages_.empty());
  EXPECT_EQ(formatted, 0);
  EXPECT_EQ(Log::Count(kLogGuestErrors), 1u);
}

TEST_F(LogTest, UnimpUsesItsOwnCategory) {
  VIOMMU_LOG_UNIMP("feature %s", "pasid");
  ASSERT_EQ(kinds_.size(), 1u);
  EXPECT_EQ(kinds_[0], "unimp");
  EXPECT_EQ(Log::Count(kLogUnimp), 1u);
}

TEST_F(LogTest, RateLimitSuppressesBurstAndSummarisesInTheNextWindow) {
  messages_.clear();
  for (int i = 0; i < 25; ++i) GuestErrorAt(i);
  EXPECT_EQ(messages_.size(), Log::kBurst);
  EXPECT_EQ(Log::Count(kLogGuestErrors), 25u);
  EXPECT_EQ(Log::Suppressed(kLogGuestErrors), 25u - Log::kBurst);

  now_ += Log::kWindowNs / 2;  // same window: still suppressed
  GuestErrorAt(99);
  EXPECT_EQ(messages_.size(), Log::kBurst);

  now_ += Log::kWindowNs;  // next window: summary, then the line
  GuestErrorAt(100);
  ASSERT_EQ(messages_.size(), Log::kBurst + 2);
  EXPECT_NE(messages_[Log::kBurst].find("suppressed 16 similar messages"),
            std::string::npos)
      << messages_[Log::kBurst];
  EXPECT_EQ(messages_[Log::kBurst + 1], "bad value 100");
}

TEST_F(LogTest, CallSitesAreLimitedIndependently) {
  for (int i = 0; i < 20; ++i) GuestErrorAt(i);
  VIOMMU_LOG_GUEST_ERROR("another site");
  EXPECT_EQ(messages_.back(), "another site");
}

TEST_F(LogTest, ParseMaskAcceptsCategoriesAndRejectsUnknown) {
  uint32_t mask = 0;
  ASSERT_TRUE(Log::ParseMask("guest_errors,unimp", &mask).ok());
  EXPECT_EQ(mask, kLogGuestErrors | kLogUnimp);
  absl::Status s = Log::ParseMask("guest_errors,bogus", &mask);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'bogus'"), std::string::npos);
  EXPECT_NE(Log::CategoryHelp().find("guest_errors"), std::string::npos);
}

TEST_F(LogTest, LogFileReceivesTraceAndGuestErrorLines) {
  Log::SetSink(nullptr);
  char path[] = "/tmp/viommu_log_test_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  ASSERT_TRUE(Log::SetFile(path).ok());
  trace::Trace::Enable("vtd_reg_read");
  VIOMMU_TRACE(vtd_reg_read, uint64_t{0x1c}, 4u, uint64_t{0x7});
  trace::Trace::DisableAll();
  VIOMMU_LOG_GUEST_ERROR("oops %d", 3);
  ASSERT_TRUE(Log::SetFile("").ok());
  Log::SetSink([](const LogRecord&) {});  // keep TearDown's flush quiet
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  unlink(path);
  EXPECT_EQ(ss.str(),
            "vtd_reg_read addr 0x1c size 4 val 0x7\n"
            "guest_errors: oops 3\n");
}

TEST_F(LogTest, SetFileReportsAnUnwritablePath) {
  absl::Status s = Log::SetFile("/nonexistent-dir/x.log");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("/nonexistent-dir/x.log"), std::string::npos);
}

}  // namespace
}  // namespace viommu::log
