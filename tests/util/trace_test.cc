#include "viommu/util/trace.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "viommu/util/log.h"

namespace viommu::trace {
namespace {

class TraceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Trace::DisableAll();
    log::Log::SetSink([this](const log::LogRecord& r) {
      records_.push_back(std::string(r.kind) + "|" + std::string(r.name) +
                         "|" + r.message);
    });
  }
  void TearDown() override {
    Trace::DisableAll();
    log::Log::SetSink(nullptr);
  }
  std::vector<std::string> records_;
};

TEST(GlobMatchTest, MatchesStarQuestionAndLiterals) {
  EXPECT_TRUE(GlobMatch("vtd_*", "vtd_reg_write"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("vtd_reg_????", "vtd_reg_read"));
  EXPECT_TRUE(GlobMatch("*reg*write", "vtd_reg_write"));
  EXPECT_TRUE(GlobMatch("vtd_reg_write", "vtd_reg_write"));
  EXPECT_FALSE(GlobMatch("vtd_reg_write", "vtd_reg_write_gcmd"));
  EXPECT_FALSE(GlobMatch("vfio_*", "vtd_reg_write"));
  EXPECT_FALSE(GlobMatch("vtd_reg_?", "vtd_reg_"));
  EXPECT_FALSE(GlobMatch("", "x"));
}

TEST_F(TraceTest, EnableByPatternSetsOnlyMatchingEvents) {
  const size_t n = Trace::Enable("vtd_reg_*");
  EXPECT_EQ(n, Trace::Match("vtd_reg_*").size());
  EXPECT_GE(n, 2u);
  EXPECT_TRUE(Trace::IsEnabled(Event::vtd_reg_write));
  EXPECT_TRUE(Trace::IsEnabled(Event::vtd_reg_read));
  EXPECT_FALSE(Trace::IsEnabled(Event::vfio_dma_map));
  EXPECT_EQ(Trace::Disable("vtd_reg_write"), 1u);
  EXPECT_FALSE(Trace::IsEnabled(Event::vtd_reg_write));
  EXPECT_TRUE(Trace::IsEnabled(Event::vtd_reg_read));
}

TEST_F(TraceTest, UnknownNameMatchesNothing) {
  EXPECT_EQ(Trace::Enable("no_such_event"), 0u);
  EXPECT_FALSE(Trace::IsPattern("no_such_event"));
  EXPECT_TRUE(Trace::IsPattern("vtd_*"));
}

TEST_F(TraceTest, DisabledEventDoesNotEvaluateItsArguments) {
  int evaluated = 0;
  auto arg = [&] {
    ++evaluated;
    return uint64_t{1};
  };
  VIOMMU_TRACE(vtd_reg_write, arg(), 4u, arg());
  EXPECT_EQ(evaluated, 0);
  EXPECT_TRUE(records_.empty());
}

TEST_F(TraceTest, EnabledEventReachesTheSinkFormatted) {
  Trace::Enable("vtd_reg_write");
  VIOMMU_TRACE(vtd_reg_write, uint64_t{0x88}, 4u, uint64_t{0x1000});
  VIOMMU_TRACE(vtd_reg_read, uint64_t{0x1c}, 4u, uint64_t{0});
  ASSERT_EQ(records_.size(), 1u);
  EXPECT_EQ(records_[0], "trace|vtd_reg_write|addr 0x88 size 4 val 0x1000");
}

TEST_F(TraceTest, EventWithoutArgumentsFormats) {
  Trace::Enable("vtd_inv_desc_cc_global");
  VIOMMU_TRACE(vtd_inv_desc_cc_global);
  ASSERT_EQ(records_.size(), 1u);
  EXPECT_EQ(records_[0], "trace|vtd_inv_desc_cc_global|");
}

TEST_F(TraceTest, InfoNamesEveryEventOnce) {
  std::vector<std::string> names;
  for (size_t i = 0; i < kEventCount; ++i) {
    const EventInfo& info = Trace::Info(Event(i));
    EXPECT_FALSE(info.name.empty());
    EXPECT_FALSE(info.category.empty());
    EXPECT_EQ(Trace::Match(info.name).size(), 1u) << info.name;
  }
}

}  // namespace
}  // namespace viommu::trace
