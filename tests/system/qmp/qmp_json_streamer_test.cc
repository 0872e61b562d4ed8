// QmpJsonStreamer and QmpSession::Feed against the answers QEMU 7.2 gives
// to the same bytes (measured: docs/qmp.md).
#include "viommu/system/qmp/qmp_json_streamer.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/system/qmp/qmp_dispatcher.h"

namespace viommu::system {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;

std::string Err(absl::string_view desc) {
  return absl::StrCat(R"({"error": {"class": "GenericError", "desc": ")",
                      desc, R"("}})");
}

class QmpJsonStreamerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    qmp_.Register("query-status", [](const QmpArgs&) {
      return QmpValue::Parse(R"({"status": "running"})");
    });
  }
  // Everything the session answers to `bytes`, then clears.
  std::vector<std::string> Answers(absl::string_view bytes) {
    session_.Feed(bytes);
    std::vector<std::string> a;
    a.swap(out_);
    return a;
  }
  void ExpectNegotiates() {
    EXPECT_THAT(Answers(R"({"execute":"qmp_capabilities"})"),
                ElementsAre(R"({"return": {}})"));
  }

  QmpDispatcher qmp_;
  std::vector<std::string> out_;
  QmpSession session_{&qmp_,
                      [this](absl::string_view s) { out_.emplace_back(s); }};
};

TEST_F(QmpJsonStreamerTest, GarbageWordIsOneInvalidKeywordError) {
  EXPECT_THAT(Answers("hello\n"),
              ElementsAre(Err("JSON parse error, invalid keyword 'hello'")));
  ExpectNegotiates();
}

// One error, its message cut at 1023 bytes as QEMU 7.2's (1006 of the
// 'x's, no closing quote).
TEST_F(QmpJsonStreamerTest, LongGarbageLineIsOneErrorWithQemusMessageBound) {
  const std::string line(65536, 'x');
  auto a = Answers(line + "\n");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0], Err(absl::StrCat("JSON parse error, invalid keyword '",
                                   std::string(1006, 'x'))));
  ExpectNegotiates();
}

TEST_F(QmpJsonStreamerTest, StrayCharacterSkipsToTheNextLine) {
  EXPECT_THAT(Answers(std::string(65536, 'X') + "\n"),
              ElementsAre(Err("JSON parse error, stray 'X'")));
  ExpectNegotiates();
}

TEST_F(QmpJsonStreamerTest, UnbalancedCloseIsExpectingValue) {
  EXPECT_THAT(Answers("}\n"),
              ElementsAre(Err("JSON parse error, expecting value")));
  EXPECT_THAT(Answers("]\n"),
              ElementsAre(Err("JSON parse error, expecting value")));
  ExpectNegotiates();
}

TEST_F(QmpJsonStreamerTest, NestingOf1024IsAcceptedAnd1025Refused) {
  EXPECT_THAT(Answers(std::string(1024, '[') + std::string(1024, ']')),
              ElementsAre(Err("QMP input must be a JSON object")));
  // QEMU drops the message at the 1025th '[' and then answers each of the
  // 1025 closes on its own.
  auto a = Answers(std::string(1025, '[') + std::string(1025, ']'));
  ASSERT_EQ(a.size(), 1026u);
  EXPECT_EQ(a[0], Err("JSON nesting depth limit exceeded"));
  a.erase(a.begin());
  EXPECT_THAT(a, Each(Err("JSON parse error, expecting value")));
  ExpectNegotiates();
}

TEST_F(QmpJsonStreamerTest, BracesAndBracketsCountTogetherForNesting) {
  std::string deep;
  for (int i = 0; i < 512; ++i) deep += R"({"a":[)";
  EXPECT_THAT(Answers(deep + "{"),
              ElementsAre(Err("JSON nesting depth limit exceeded")));
}

TEST_F(QmpJsonStreamerTest, DeepBracketsGiveOneErrorPer1025) {
  // 200,000 '[': QEMU answers 195 times and keeps the last 125 open.
  auto a = Answers(std::string(200000, '['));
  EXPECT_EQ(a.size(), 195u);
  EXPECT_THAT(a, Each(Err("JSON nesting depth limit exceeded")));
  // A control character resynchronises, as QEMU's QMP spec suggests.
  EXPECT_THAT(Answers("\x01"),
              ElementsAre(Err("JSON parse error, stray '\\u0001'")));
  ExpectNegotiates();
}

TEST_F(QmpJsonStreamerTest, DeepObjectsGiveThreeErrorsPer1025) {
  std::string in;
  for (int i = 0; i < 200000; ++i) in += R"({"a":)";
  auto a = Answers(in);
  ASSERT_EQ(a.size(), 585u);
  EXPECT_EQ(a[0], Err("JSON nesting depth limit exceeded"));
  EXPECT_EQ(a[1], Err("QMP input must be a JSON object"));
  EXPECT_EQ(a[2], Err("JSON parse error, expecting value"));
}

TEST_F(QmpJsonStreamerTest, CommandSplitAcrossManyFeedsIsOneMessage) {
  for (char c : std::string(R"({"execute":"qmp_capabilities"})")) {
    session_.Feed(absl::string_view(&c, 1));
  }
  EXPECT_THAT(out_, ElementsAre(R"({"return": {}})"));
}

TEST_F(QmpJsonStreamerTest, TwoCommandsInOneFeedGetTwoAnswers) {
  ExpectNegotiates();
  EXPECT_THAT(
      Answers(R"({"execute":"query-status"}{"execute":"query-status"})"),
      ElementsAre(R"({"return": {"status":"running"}})",
                  R"({"return": {"status":"running"}})"));
}

TEST_F(QmpJsonStreamerTest, SingleQuotedStringsAreAccepted) {
  EXPECT_THAT(Answers("{'execute':'qmp_capabilities'}"),
              ElementsAre(R"({"return": {}})"));
}

TEST_F(QmpJsonStreamerTest, ControlCharacterInAMessageDropsIt) {
  EXPECT_THAT(Answers("{\"execute\":\x01\"x\"}\n"),
              ElementsAre(Err("JSON parse error, stray '\\u0001'"),
                          Err("JSON parse error, expecting value")));
}

TEST_F(QmpJsonStreamerTest, NulInAStringEndsTheStrayText) {
  EXPECT_THAT(Answers(absl::string_view("{\"exe\0cute\"}\n", 13)),
              ElementsAre(Err("JSON parse error, stray '\\\"exe'"),
                          Err("JSON parse error, expecting value")));
}

TEST_F(QmpJsonStreamerTest, InvalidByteIsQuotedAsReplacementCharacter) {
  EXPECT_THAT(Answers("{\"execute\":\xff"),
              ElementsAre(Err("JSON parse error, stray '\\uFFFD'")));
}

TEST_F(QmpJsonStreamerTest, GrammarErrorsUseQemuTexts) {
  EXPECT_THAT(Answers(R"({"a" 1})"),
              ElementsAre(Err("JSON parse error, missing : in object pair")));
  EXPECT_THAT(
      Answers("{1:2}"),
      ElementsAre(Err("JSON parse error, key is not a string in object")));
  EXPECT_THAT(
      Answers("{{}:1}"),
      ElementsAre(Err("JSON parse error, key is not a string in object")));
  EXPECT_THAT(Answers("[1,]"),
              ElementsAre(Err("JSON parse error, expecting value")));
  EXPECT_THAT(Answers("[1 2]"),
              ElementsAre(Err("JSON parse error, expected separator in list")));
  EXPECT_THAT(Answers("[1}"),
              ElementsAre(Err("JSON parse error, expected separator in list")));
  EXPECT_THAT(Answers(R"({"a":1,"a":2})"),
              ElementsAre(Err("JSON parse error, duplicate key")));
  EXPECT_THAT(Answers("01\n"), ElementsAre(Err("JSON parse error, stray '01'")));
  EXPECT_THAT(Answers("-x\n"), ElementsAre(Err("JSON parse error, stray '-x'")));
}

TEST_F(QmpJsonStreamerTest, StringErrorsUseQemuTexts) {
  EXPECT_THAT(
      Answers(R"("\q")"),
      ElementsAre(Err("JSON parse error, invalid escape sequence in string")));
  EXPECT_THAT(Answers(R"("x\ud800")"),
              ElementsAre(Err("JSON parse error, \\\\ud800 is not a valid "
                              "Unicode character")));
  EXPECT_THAT(Answers(R"("\u12")"),
              ElementsAre(Err("JSON parse error, \\\\u12\\\" is not a valid "
                              "Unicode character")));
  EXPECT_THAT(
      Answers("\"\xc3(\""),
      ElementsAre(Err("JSON parse error, invalid UTF-8 sequence in string")));
}

TEST_F(QmpJsonStreamerTest, EscapesAndUtf8ReachTheCommand) {
  ExpectNegotiates();
  EXPECT_THAT(
      Answers(R"({"execute":"\u0071uery-st\u0061tus"})"),
      ElementsAre(R"({"return": {"status":"running"}})"));
  EXPECT_THAT(Answers("{\"execute\":\"\xf0\x9f\x98\x80\"}"),
              ElementsAre(R"({"error": {"class": "CommandNotFound", "desc": )"
                          R"("The command \uD83D\uDE00 has not been found"}})"));
}

TEST_F(QmpJsonStreamerTest, OverlongTokenIsOneSizeErrorWithoutKeepingIt) {
  // Lexed to its end without being stored past the limit.
  std::string big(QmpJsonStreamer::kMaxTokenSize + 10, 'a');
  big.front() = '"';
  big.back() = '"';
  EXPECT_THAT(Answers(big), ElementsAre(Err("JSON token size limit exceeded")));
  ExpectNegotiates();
}

TEST_F(QmpJsonStreamerTest, TooManyTokensIsOneCountError) {
  std::string many = "[";
  many.reserve(QmpJsonStreamer::kMaxTokenCount * 2 + 2);
  while (many.size() < QmpJsonStreamer::kMaxTokenCount * 2) many += "1,";
  auto a = Answers(many);
  ASSERT_GE(a.size(), 1u);
  EXPECT_EQ(a[0], Err("JSON token count limit exceeded"));
}

TEST(QmpJsonStreamerParseTest, PrematureEndOfMessage) {
  using T = QmpJsonStreamer::TokenType;
  auto r = QmpJsonStreamer::Parse({{T::kLSquare, "["}});
  EXPECT_EQ(r.status().message(), "JSON parse error, premature EOI");
  r = QmpJsonStreamer::Parse(
      {{T::kLCurly, "{"}, {T::kString, "'a'"}, {T::kColon, ":"},
       {T::kInteger, "1"}});
  EXPECT_EQ(r.status().message(), "JSON parse error, premature EOI");
}

TEST(QmpJsonStreamerParseTest, ReencodesAsStandardJson) {
  using T = QmpJsonStreamer::TokenType;
  auto r = QmpJsonStreamer::Parse(
      {{T::kLCurly, "{"}, {T::kString, R"('a"\'\n\u0001')"}, {T::kColon, ":"},
       {T::kLSquare, "["}, {T::kKeyword, "null"}, {T::kComma, ","},
       {T::kFloat, "-1.5e3"}, {T::kRSquare, "]"}, {T::kRCurly, "}"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, R"({"a\"'\u000a\u0001":[null,-1.5e3]})");
}

}  // namespace
}  // namespace viommu::system
