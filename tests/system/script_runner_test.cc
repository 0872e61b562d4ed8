#include "viommu/system/script_runner.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/system/machine_commands.h"

namespace viommu::system {
namespace {

using ::testing::HasSubstr;

bool Contains(const char* actual, const char* expected) {
  return JsonContains(QmpValue::Parse(actual)->node(),
                      QmpValue::Parse(expected)->node());
}

TEST(JsonContainsTest, ObjectsMatchMemberByMemberRecursively) {
  EXPECT_TRUE(
      Contains(R"({"a": 1, "b": {"c": 2, "d": 3}})", R"({"b": {"c": 2}})"));
  EXPECT_TRUE(Contains(R"({"a": 1})", "{}"));
  EXPECT_FALSE(Contains(R"({"a": 1})", R"({"a": 2})"));
  EXPECT_FALSE(Contains(R"({"a": 1})", R"({"b": 1})"));
  EXPECT_FALSE(Contains(R"({"a": {"c": 2}})", R"({"a": {"c": 2, "d": 3}})"));
  EXPECT_TRUE(Contains("[1, 2]", "[1, 2]"));
  EXPECT_FALSE(Contains("[1, 2]", "[1]"));
}

class ScriptRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    VmConfig config;
    config.ram_size = 16 << 20;
    config.devices.push_back(
        {.head = "edu", .props = {{"addr", "4"}, {"id", "e"}}});
    vm_ = *Vm::Create(config);
    RegisterMachineCommands(&qmp_, vm_.get(), [] {});
  }
  int Run(const char* script) {
    ScriptRunner runner(vm_.get(), &qmp_, report_);
    return runner.Run(script, "t.qtest");
  }
  std::unique_ptr<Vm> vm_;
  QmpDispatcher qmp_;
  std::ostringstream report_;
};

TEST_F(ScriptRunnerTest, PassingScriptReportsCounts) {
  EXPECT_EQ(Run("## Title\nendianness\nexpect OK little\n"
                "qmp {\"execute\": \"query-status\"}\n"
                "expect-qmp {\"running\": true}\n"),
            0);
  EXPECT_THAT(report_.str(), HasSubstr("Title"));
  EXPECT_THAT(report_.str(),
              HasSubstr("2 commands, 2 expectations, all passed"));
}

TEST_F(ScriptRunnerTest, QmpMismatchFailsWithTheLineNumber) {
  EXPECT_EQ(Run("qmp {\"execute\": \"query-status\"}\n"
                "expect-qmp {\"running\": false}\n"),
            1);
  EXPECT_THAT(report_.str(), HasSubstr("t.qtest:2: FAILED"));
}

TEST_F(ScriptRunnerTest, QmpErrorHasNoReturnToMatch) {
  EXPECT_EQ(
      Run("qmp {\"execute\": \"device_del\", \"arguments\": {\"id\": \"x\"}}\n"
          "expect-qmp {}\n"),
      1);
}

TEST_F(ScriptRunnerTest, IntelIommuCannotBeHotPlugged) {
  EXPECT_EQ(Run("qmp {\"execute\": \"device_add\", \"arguments\": "
                "{\"driver\": \"intel-iommu\"}}\nexpect-qmp {}\n"),
            1);
  EXPECT_THAT(report_.str(), HasSubstr("expects a pluggable device type"));
}

TEST_F(ScriptRunnerTest, BadSleepAndBadJsonAreFailures) {
  EXPECT_EQ(Run("sleep forever\n"), 1);
  EXPECT_EQ(Run("expect-qmp {oops\n"), 1);
}

TEST_F(ScriptRunnerTest, EventsAreReported) {
  EXPECT_EQ(
      Run("qmp {\"execute\": \"device_del\", \"arguments\": {\"id\": \"e\"}}\n"
          "expect-qmp {}\n"),
      0);
  EXPECT_THAT(report_.str(), HasSubstr("DEVICE_DELETED"));
}

}  // namespace
}  // namespace viommu::system
