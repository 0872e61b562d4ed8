#include "viommu/system/qtest/qtest_parser.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace viommu::system {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string Reply(const char* line) {
  auto c = ParseQtestLine(line);
  return c.ok() ? "parsed" : QtestErrorReply(c.status());
}

TEST(QtestParserTest, NumbersAreBaseZero) {
  auto c = ParseQtestLine("writel 0x1000 010");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->op, QtestOp::kWrite);
  EXPECT_EQ(c->size, 4u);
  EXPECT_EQ(c->addr, 0x1000u);
  EXPECT_EQ(c->value, 8u);
  EXPECT_EQ(ParseQtestLine("inb 128")->addr, 128u);
}

TEST(QtestParserTest, EveryWidthIsRecognised) {
  EXPECT_EQ(ParseQtestLine("readb 0")->size, 1u);
  EXPECT_EQ(ParseQtestLine("readw 0")->size, 2u);
  EXPECT_EQ(ParseQtestLine("readq 0")->size, 8u);
  EXPECT_EQ(ParseQtestLine("outw 0 1")->size, 2u);
  EXPECT_EQ(ParseQtestLine("inl 0")->size, 4u);
}

TEST(QtestParserTest, BlankLineIsNoCommand) {
  EXPECT_EQ(ParseQtestLine("")->op, QtestOp::kNone);
  EXPECT_EQ(ParseQtestLine("\r")->op, QtestOp::kNone);
}

TEST(QtestParserTest, UnknownCommandFailsLikeQemu) {
  EXPECT_EQ(Reply("frobnicate 1"), "FAIL Unknown command 'frobnicate'");
  EXPECT_EQ(Reply(" readl 0"), "FAIL Unknown command ''");
  EXPECT_EQ(Reply("readz 0"), "FAIL Unknown command 'readz'");
}

TEST(QtestParserTest, MissingArgumentsAreErrors) {
  EXPECT_THAT(Reply("readl"), StartsWith("ERR readl: expected 1 argument"));
  EXPECT_THAT(Reply("outb 0x80"), StartsWith("ERR "));
  EXPECT_THAT(Reply("write 0 4"), StartsWith("ERR "));
  EXPECT_THAT(Reply("clock_set"), StartsWith("ERR "));
  EXPECT_THAT(Reply("set_irq_in a b 1"), StartsWith("ERR "));
}

TEST(QtestParserTest, BadNumbersAreErrors) {
  EXPECT_THAT(Reply("readl 0xzz"), HasSubstr("invalid address"));
  EXPECT_THAT(Reply("readl 12abc"), HasSubstr("invalid address"));
  EXPECT_THAT(Reply("readl 0x"), HasSubstr("invalid address"));
  EXPECT_THAT(Reply("readl -1"), HasSubstr("invalid address"));
  EXPECT_THAT(Reply("readl 0x10000000000000000"), HasSubstr("invalid"));
  EXPECT_THAT(Reply("writeb 0 09"), HasSubstr("invalid value"));
  EXPECT_THAT(Reply("clock_step -5"), HasSubstr("invalid time"));
}

TEST(QtestParserTest, PortsAbove0xffffAreErrors) {
  EXPECT_THAT(Reply("outb 0x10000 0"), HasSubstr("port above 0xffff"));
  EXPECT_EQ(ParseQtestLine("inb 0xffff")->addr, 0xffffu);
}

TEST(QtestParserTest, SizesAreBoundedAndCannotWrap) {
  EXPECT_THAT(Reply("read 0 0"), HasSubstr("size must be > 0"));
  EXPECT_THAT(Reply("b64read 0 0"), HasSubstr("size must be > 0"));
  EXPECT_THAT(Reply("read 0xffffffffffffffff 2"), HasSubstr("wraps"));
  EXPECT_THAT(Reply("readq 0xfffffffffffffffc"), HasSubstr("wraps"));
  EXPECT_THAT(Reply("read 0 0xffffffffffff"), HasSubstr("too large"));
  EXPECT_THAT(Reply("memset 0 0xffffffffffffff 0"), HasSubstr("too large"));
  EXPECT_EQ(ParseQtestLine("memset 0 0 0")->value, 0u);
}

TEST(QtestParserTest, HexWriteDataIsDecodedAndValidated) {
  auto c = ParseQtestLine("write 0x10 4 0x0102");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->data, std::string("\x01\x02", 2));
  EXPECT_EQ(c->value, 4u);
  EXPECT_EQ(Reply("write 0 1 0x"), "ERR invalid argument size");
  EXPECT_THAT(Reply("write 0 1 0x123"), HasSubstr("odd"));
  EXPECT_THAT(Reply("write 0 1 0xgg"), HasSubstr("hex"));
  EXPECT_EQ(ParseQtestLine("write 0 1 0x0102")->data.size(), 1u);
}

TEST(QtestParserTest, Base64DataIsDecodedAndValidated) {
  EXPECT_EQ(ParseQtestLine("b64write 0 3 AQID")->data, "\x01\x02\x03");
  EXPECT_THAT(Reply("b64write 0 3 !!!!"), HasSubstr("base64"));
}

TEST(QtestParserTest, ClockStepArgumentIsOptional) {
  EXPECT_FALSE(ParseQtestLine("clock_step")->has_value);
  EXPECT_EQ(ParseQtestLine("clock_step 100")->value, 100u);
}

TEST(QtestParserTest, IrqCommandsKeepTheirWords) {
  auto c = ParseQtestLine("irq_intercept_out /machine/x name");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->path, "/machine/x");
  EXPECT_EQ(c->name, "name");
  EXPECT_EQ(ParseQtestLine("set_irq_in p n 3 -1")->level, -1);
}

}  // namespace
}  // namespace viommu::system
