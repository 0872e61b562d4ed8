#include "viommu/system/qmp/qmp_dispatcher.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/system/qmp/qmp_server.h"

namespace viommu::system {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class QmpDispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    qmp_.Register("echo", [](const QmpArgs& a) -> absl::StatusOr<QmpValue> {
      auto s = a.GetString("text");
      if (!s.ok()) return s.status();
      QmpValue v = QmpValue::EmptyObject();
      json_object_set_string_member(json_node_get_object(v.node()), "text",
                                    s->c_str());
      return v;
    });
    qmp_.Register("fail", [](const QmpArgs&) -> absl::StatusOr<QmpValue> {
      return absl::FailedPreconditionError("it broke");
    });
  }
  void Negotiate() {
    session_.HandleMessage(R"({"execute": "qmp_capabilities"})");
    out_.clear();
  }
  QmpDispatcher qmp_;
  std::vector<std::string> out_;
  QmpSession session_{&qmp_,
                      [this](absl::string_view s) { out_.emplace_back(s); }};
};

TEST_F(QmpDispatcherTest, GreetingNamesQemu72) {
  session_.Greet();
  EXPECT_THAT(out_[0],
              HasSubstr(R"("qemu": {"micro": 0, "minor": 2, "major": 7})"));
}

TEST_F(QmpDispatcherTest, CommandsBeforeNegotiationAreRefused) {
  session_.HandleMessage(R"({"execute": "echo", "arguments": {"text": "x"}})");
  EXPECT_THAT(out_[0], HasSubstr("CommandNotFound"));
  EXPECT_THAT(out_[0], HasSubstr("Expecting capabilities negotiation"));
}

TEST_F(QmpDispatcherTest, SecondNegotiationIsRefused) {
  Negotiate();
  session_.HandleMessage(R"({"execute": "qmp_capabilities"})");
  EXPECT_THAT(out_[0], HasSubstr("already complete"));
}

TEST_F(QmpDispatcherTest, IdIsEchoed) {
  session_.HandleMessage(R"({"execute": "qmp_capabilities", "id": "abc"})");
  EXPECT_EQ(out_[0], R"({"return": {}, "id": "abc"})");
}

TEST_F(QmpDispatcherTest, DoubleIdIsEchoedAsQemuPrintsIt) {
  // Measured on QEMU 7.2 and 10.0: "%.17g", so out of range is inf.
  Negotiate();
  session_.HandleMessage(R"({"execute": "echo", "id": 1.5e3})");
  session_.HandleMessage(R"({"execute": "echo", "id": 0.1})");
  session_.HandleMessage(R"({"execute": "echo", "id": 1.5e3488})");
  session_.HandleMessage(R"({"execute": "echo", "id": -1.5e3488})");
  ASSERT_EQ(out_.size(), 4u);
  EXPECT_THAT(out_[0], HasSubstr(R"(, "id": 1500})"));
  EXPECT_THAT(out_[1], HasSubstr(R"(, "id": 0.10000000000000001})"));
  EXPECT_THAT(out_[2], HasSubstr(R"(, "id": inf})"));
  EXPECT_THAT(out_[3], HasSubstr(R"(, "id": -inf})"));
}

TEST_F(QmpDispatcherTest, HandlerResultIsReturned) {
  Negotiate();
  session_.HandleMessage(R"({"execute": "echo", "arguments": {"text": "hi"}})");
  EXPECT_EQ(out_[0], R"({"return": {"text":"hi"}})");
}

TEST_F(QmpDispatcherTest, ParameterErrorsAreGenericErrors) {
  Negotiate();
  session_.HandleMessage(R"({"execute": "echo"})");
  session_.HandleMessage(R"({"execute": "echo", "arguments": {"text": 3}})");
  EXPECT_THAT(out_[0], HasSubstr("Parameter 'text' is missing"));
  EXPECT_THAT(out_[1],
              HasSubstr("Invalid parameter type for 'text', expected: string"));
}

TEST_F(QmpDispatcherTest, MalformedInputGetsGenericErrors) {
  Negotiate();
  session_.HandleMessage("{oops");
  session_.HandleMessage("[1]");
  session_.HandleMessage(R"({"arguments": {}})");
  session_.HandleMessage(R"({"execute": 5})");
  session_.HandleMessage(R"({"execute": "echo", "arguments": 5})");
  ASSERT_EQ(out_.size(), 5u);
  for (const std::string& o : out_) EXPECT_THAT(o, HasSubstr("GenericError"));
  EXPECT_THAT(out_[1], HasSubstr("must be a JSON object"));
}

TEST_F(QmpDispatcherTest, UnknownCommandIsCommandNotFound) {
  Negotiate();
  session_.HandleMessage(R"({"execute": "nope"})");
  EXPECT_THAT(out_[0], HasSubstr("The command nope has not been found"));
}

TEST_F(QmpDispatcherTest, HandlerErrorIsGenericError) {
  Negotiate();
  session_.HandleMessage(R"({"execute": "fail"})");
  EXPECT_EQ(out_[0],
            R"({"error": {"class": "GenericError", "desc": "it broke"}})");
}

TEST_F(QmpDispatcherTest, StreamSplitsObjectsAcrossChunks) {
  Negotiate();
  session_.Feed(R"({"execute": "echo", "arguments": {"text": "a}"}}{"exec)");
  session_.Feed(R"(ute": "echo", "arguments": {"text": "b\"{"}})");
  ASSERT_EQ(out_.size(), 2u);
  EXPECT_THAT(out_[0], HasSubstr(R"("text":"a}")"));
  EXPECT_THAT(out_[1], HasSubstr(R"("text":"b\"{")"));
}

TEST_F(QmpDispatcherTest, EventsReachOnlyNegotiatedSessions) {
  std::vector<std::string> other;
  QmpSession fresh(&qmp_, [&](absl::string_view s) { other.emplace_back(s); });
  Negotiate();
  qmp_.EmitEvent("DEVICE_DELETED", *QmpValue::Parse(R"({"device": "d"})"));
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_THAT(out_[0], StartsWith(R"({"timestamp": {"seconds": )"));
  EXPECT_THAT(
      out_[0],
      HasSubstr(R"("event": "DEVICE_DELETED", "data": {"device":"d"})"));
  EXPECT_TRUE(other.empty());
}

TEST_F(QmpDispatcherTest, ArgumentsConvertToQdevStrings) {
  auto v = *QmpValue::Parse(R"({"driver": "edu", "n": 5, "b": true})");
  QmpArgs args(json_node_get_object(v.node()));
  auto m = args.AsStringMap();
  EXPECT_EQ(m["driver"], "edu");
  EXPECT_EQ(m["n"], "5");
  EXPECT_EQ(m["b"], "on");
}

TEST(QmpOptionTest, ParsesUnixSockets) {
  auto s = ParseQmpOption("unix:/tmp/q,server=on,wait=off");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->path, "/tmp/q");
  EXPECT_TRUE(s->server);
  EXPECT_FALSE(ParseQmpOption("tcp:1234").ok());
  EXPECT_FALSE(ParseQmpOption("unix:/tmp/q,colour=red").ok());
  EXPECT_FALSE(ParseQmpOption("unix:/tmp/q,server=maybe").ok());
}

}  // namespace
}  // namespace viommu::system
