#include "viommu/system/qtest/qtest_parser.h"

#include <cstdint>
#include <random>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace viommu::system {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// "parsed", or the ERR/FAIL answer.
std::string Reply(absl::string_view line) {
  auto c = ParseQtestLine(line);
  return c.ok() ? "parsed" : QtestErrorReply(c.status());
}

uint64_t U64(absl::string_view w) {
  uint64_t v = 0xdead;
  EXPECT_TRUE(ParseQtestU64(w, &v)) << w;
  return v;
}

bool U64Fails(absl::string_view w) {
  uint64_t v = 0;
  return !ParseQtestU64(w, &v);
}

// ---- numbers (strtoull/strtoll base 0, whole word) ----

TEST(QtestParserTest, NumbersAreBaseZero) {
  EXPECT_EQ(U64("0x1F"), 0x1fu);
  EXPECT_EQ(U64("0X1f"), 0x1fu);
  EXPECT_EQ(U64("010"), 8u);
  EXPECT_EQ(U64("0"), 0u);
  EXPECT_EQ(U64("00"), 0u);
  EXPECT_EQ(U64("123"), 123u);
  EXPECT_EQ(U64("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(U64("0xffffffffffffffff"), UINT64_MAX);
}

TEST(QtestParserTest, UnsignedNumbersTakeSignAndSpaceLikeStrtoull) {
  EXPECT_EQ(U64("-1"), UINT64_MAX);
  EXPECT_EQ(U64("-0x10"), uint64_t{0} - 16);
  EXPECT_EQ(U64("+7"), 7u);
  EXPECT_EQ(U64("\t5"), 5u);
}

TEST(QtestParserTest, MalformedNumbersAreRejected) {
  for (const char* w : {"", "x", "0x", "0xg", "08", "1a", "12 ", "--1", "+-1",
                        "- 1", "0x1ffffffffffffffff", "18446744073709551616",
                        "1\t", "+", "-", "0b1", "1e3"}) {
    EXPECT_TRUE(U64Fails(w)) << "'" << w << "'";
  }
}

TEST(QtestParserTest, SignedNumbersHaveInt64Range) {
  int64_t v = 0;
  EXPECT_TRUE(ParseQtestI64("-9223372036854775808", &v));
  EXPECT_EQ(v, INT64_MIN);
  EXPECT_TRUE(ParseQtestI64("0x7fffffffffffffff", &v));
  EXPECT_EQ(v, INT64_MAX);
  EXPECT_TRUE(ParseQtestI64("-010", &v));
  EXPECT_EQ(v, -8);
  EXPECT_FALSE(ParseQtestI64("9223372036854775808", &v));
  EXPECT_FALSE(ParseQtestI64("-9223372036854775809", &v));
  EXPECT_FALSE(ParseQtestI64("1x", &v));
}

// ---- commands ----

TEST(QtestParserTest, PioCommands) {
  auto c = ParseQtestLine("outw 0xcf8 0x12345678");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->op, QtestOp::kOut);
  EXPECT_EQ(c->size, 2u);
  EXPECT_EQ(c->addr, 0xcf8u);
  EXPECT_EQ(c->value, 0x12345678u);
  EXPECT_EQ(ParseQtestLine("outb 0 1")->size, 1u);
  EXPECT_EQ(ParseQtestLine("outl 0 1")->size, 4u);
  auto in = ParseQtestLine("inl 0xffff");
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(in->op, QtestOp::kIn);
  EXPECT_EQ(in->size, 4u);
  EXPECT_EQ(in->addr, 0xffffu);
  EXPECT_EQ(ParseQtestLine("inb 128")->size, 1u);
  EXPECT_EQ(ParseQtestLine("inw 128")->size, 2u);
}

TEST(QtestParserTest, MmioCommandsOfEveryWidth) {
  auto c = ParseQtestLine("writel 0x1000 010");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->op, QtestOp::kWrite);
  EXPECT_EQ(c->size, 4u);
  EXPECT_EQ(c->addr, 0x1000u);
  EXPECT_EQ(c->value, 8u);
  EXPECT_EQ(ParseQtestLine("writeb 0 1")->size, 1u);
  EXPECT_EQ(ParseQtestLine("writew 0 1")->size, 2u);
  EXPECT_EQ(ParseQtestLine("writeq 0 1")->size, 8u);
  EXPECT_EQ(ParseQtestLine("readb 0")->size, 1u);
  EXPECT_EQ(ParseQtestLine("readw 0")->size, 2u);
  EXPECT_EQ(ParseQtestLine("readl 0")->size, 4u);
  EXPECT_EQ(ParseQtestLine("readq 0")->op, QtestOp::kRead);
  EXPECT_EQ(ParseQtestLine("readq 0")->size, 8u);
}

TEST(QtestParserTest, BufferCommands) {
  auto r = ParseQtestLine("read 0x10 0x20");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->op, QtestOp::kBufRead);
  EXPECT_EQ(r->addr, 0x10u);
  EXPECT_EQ(r->value, 0x20u);
  EXPECT_EQ(ParseQtestLine("b64read 0 3")->op, QtestOp::kB64Read);
  auto w = ParseQtestLine("write 0x10 3 0xa1b2");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->op, QtestOp::kBufWrite);
  EXPECT_EQ(w->value, 3u);
  EXPECT_EQ(w->data, "a1b2");
  auto b = ParseQtestLine("b64write 0 2 AQI=");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->op, QtestOp::kB64Write);
  EXPECT_EQ(b->data, "AQI=");
  auto m = ParseQtestLine("memset 0x100 0 0x1ab");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->op, QtestOp::kMemset);
  EXPECT_EQ(m->value, 0u);
  EXPECT_EQ(m->pattern, 0xabu);  // memset() truncates the pattern
}

TEST(QtestParserTest, ClockCommands) {
  auto s = ParseQtestLine("clock_step");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->op, QtestOp::kClockStep);
  EXPECT_FALSE(s->has_arg);
  auto n = ParseQtestLine("clock_step 100");
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(n->has_arg);
  EXPECT_EQ(n->ns, 100);
  EXPECT_EQ(ParseQtestLine("clock_step -5")->ns, -5);  // qemu_strtoi64
  auto set = ParseQtestLine("clock_set 0x10");
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->op, QtestOp::kClockSet);
  EXPECT_EQ(set->ns, 16);
  EXPECT_EQ(ParseQtestLine("endianness")->op, QtestOp::kEndianness);
}

TEST(QtestParserTest, NegativeClockSetIsErr) {
  EXPECT_EQ(Reply("clock_set -1"), "ERR clock_set: invalid time '-1'");
  EXPECT_EQ(Reply("clock_set 0"), "parsed");
}

TEST(QtestParserTest, IrqCommands) {
  auto in = ParseQtestLine("irq_intercept_in ioapic");
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(in->op, QtestOp::kIrqInterceptIn);
  EXPECT_EQ(in->path, "ioapic");
  EXPECT_FALSE(in->has_arg);
  auto out = ParseQtestLine("irq_intercept_out /machine/x sysbus-irq");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->op, QtestOp::kIrqInterceptOut);
  EXPECT_TRUE(out->has_arg);
  EXPECT_EQ(out->name, "sysbus-irq");
  auto set = ParseQtestLine("set_irq_in ioapic unnamed-gpio-in 0x3 -1");
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->op, QtestOp::kSetIrqIn);
  EXPECT_EQ(set->path, "ioapic");
  EXPECT_EQ(set->name, "unnamed-gpio-in");
  EXPECT_EQ(set->addr, 3u);
  EXPECT_EQ(set->level, -1);
  auto mod = ParseQtestLine("module_load accel tcg-x");
  ASSERT_TRUE(mod.ok());
  EXPECT_EQ(mod->op, QtestOp::kModuleLoad);
}

// ---- g_strsplit(" ") word splitting ----

TEST(QtestParserTest, BlankLineIsNoCommand) {
  EXPECT_EQ(ParseQtestLine("")->op, QtestOp::kNone);
}

TEST(QtestParserTest, ExtraSpacesMakeEmptyWords) {
  // "readl  0x0": the address word is empty, as with g_strsplit.
  EXPECT_THAT(Reply("readl  0x0"), StartsWith("ERR readl: invalid address ''"));
  EXPECT_EQ(Reply("readl 0x0 "), "parsed");  // an extra empty word is unused
  EXPECT_EQ(Reply(" readl 0"), "FAIL Unknown command ''");
  EXPECT_EQ(Reply(" "), "FAIL Unknown command ''");
}

TEST(QtestParserTest, TrailingWordsAreIgnored) {
  EXPECT_EQ(Reply("readb 0 1 2 3 4 5 6"), "parsed");
  EXPECT_EQ(Reply("endianness big"), "parsed");
}

TEST(QtestParserTest, TrailingIrqNameWordCountsAsNamed) {
  // "irq_intercept_in ioapic " has words[2] == "" in QEMU: named.
  auto c = ParseQtestLine("irq_intercept_in ioapic ");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->has_arg);
}

TEST(QtestParserTest, CarriageReturnIsPartOfTheWord) {
  EXPECT_EQ(Reply("endianness\r"), "FAIL Unknown command 'endianness\r'");
  EXPECT_THAT(Reply("readb 0\r"), StartsWith("ERR readb: invalid address"));
}

TEST(QtestParserTest, NulByteAnywhereIsErr) {
  // QEMU 7.2 never answers again after a NUL (it asserts on one at the
  // start of a line); viommu answers ERR like other malformed lines.
  EXPECT_EQ(Reply(absl::string_view("readb 0\0junk", 12)),
            "ERR NUL byte in command");
  EXPECT_EQ(Reply(absl::string_view("\0readb 0", 8)),
            "ERR NUL byte in command");
  EXPECT_EQ(Reply(absl::string_view("\0", 1)), "ERR NUL byte in command");
}

// ---- errors ----

TEST(QtestParserTest, UnknownCommandIsQemusFail) {
  EXPECT_EQ(Reply("frobnicate 1 2"), "FAIL Unknown command 'frobnicate'");
  EXPECT_EQ(Reply("inq 0"), "FAIL Unknown command 'inq'");
  EXPECT_EQ(Reply("outq 0 0"), "FAIL Unknown command 'outq'");
  EXPECT_EQ(Reply("reads 0"), "FAIL Unknown command 'reads'");
  EXPECT_EQ(Reply("READB 0"), "FAIL Unknown command 'READB'");
  EXPECT_EQ(Reply("readbb 0"), "FAIL Unknown command 'readbb'");
}

TEST(QtestParserTest, MissingArgumentsAreErr) {
  for (const char* line :
       {"outb", "outb 1", "inw", "writeq 0", "readl", "read 0", "write 0 1",
        "b64read 0", "b64write 0 1", "memset 0 1", "clock_set",
        "irq_intercept_in", "irq_intercept_out", "set_irq_in a b 1",
        "module_load x"}) {
    EXPECT_THAT(Reply(line), StartsWith("ERR ")) << line;
    EXPECT_THAT(Reply(line), HasSubstr("expected")) << line;
  }
}

TEST(QtestParserTest, BadNumbersAreErrNamingTheWord) {
  EXPECT_EQ(Reply("writel 0x1000 zz"), "ERR writel: invalid value 'zz'");
  EXPECT_EQ(Reply("readq 0xg"), "ERR readq: invalid address '0xg'");
  EXPECT_EQ(Reply("outb x 1"), "ERR outb: invalid port 'x'");
  EXPECT_EQ(Reply("read 0 z"), "ERR read: invalid size 'z'");
  EXPECT_EQ(Reply("memset 0 1 q"), "ERR memset: invalid pattern 'q'");
  EXPECT_EQ(Reply("clock_step 1.5"), "ERR clock_step: invalid time '1.5'");
  EXPECT_EQ(Reply("clock_set 9223372036854775808"),
            "ERR clock_set: invalid time '9223372036854775808'");
}

TEST(QtestParserTest, PortAbove0xffffIsErr) {
  EXPECT_EQ(Reply("inb 0x10000"), "ERR inb: port above 0xffff");
  EXPECT_EQ(Reply("outl 0x10000 0"), "ERR outl: port above 0xffff");
  EXPECT_EQ(Reply("inb -1"), "ERR inb: port above 0xffff");
  EXPECT_EQ(Reply("outb 0xffff 0x1ff"), "parsed");
}

TEST(QtestParserTest, ReadOfSizeZeroIsErrButB64readAndMemsetAreNot) {
  EXPECT_EQ(Reply("read 0 0"), "ERR read: size must not be 0");
  EXPECT_EQ(Reply("b64read 0 0"), "parsed");  // QEMU answers "OK "
  EXPECT_EQ(Reply("memset 0 0 0"), "parsed");
}

TEST(QtestParserTest, AccessesWrappingPast2To64AreErr) {
  EXPECT_THAT(Reply("readl 0xfffffffffffffffd"), HasSubstr("wraps"));
  EXPECT_EQ(Reply("readl 0xfffffffffffffffc"), "parsed");
  EXPECT_THAT(Reply("writeq -1 0"), HasSubstr("wraps"));
  EXPECT_EQ(Reply("writeb -1 0"), "parsed");
  EXPECT_THAT(Reply("read 0xffffffffffffff00 0x101"), HasSubstr("wraps"));
  EXPECT_EQ(Reply("read 0xffffffffffffff00 0x100"), "parsed");
  EXPECT_THAT(Reply("memset 2 -1 0"), HasSubstr("wraps"));
  EXPECT_EQ(Reply("memset 1 -1 0"), "parsed");  // ends at 2^64 - 1
  EXPECT_EQ(Reply("memset -1 0 0"), "parsed");
  EXPECT_THAT(Reply("b64read 2 0xffffffffffffffff"), HasSubstr("wraps"));
}

TEST(QtestParserTest, ShortDataIsQemusInvalidArgumentSize) {
  EXPECT_EQ(Reply("write 0 1 0x"), "ERR invalid argument size");
  EXPECT_EQ(Reply("write 0 1 "), "ERR invalid argument size");
  EXPECT_EQ(Reply("b64write 0 1 QQ"), "ERR invalid argument size");
}

TEST(QtestParserTest, WriteHexIsCheckedOnlyWhereUsed) {
  EXPECT_EQ(Reply("write 0 2 0xzz12"),
            "ERR write: invalid hex digit at offset 2");
  EXPECT_EQ(Reply("write 0 2 0x12g4"),
            "ERR write: invalid hex digit at offset 4");
  // QEMU skips the 2-character prefix unchecked and uses SIZE bytes.
  EXPECT_EQ(Reply("write 0 1 ab12zz"), "parsed");
  EXPECT_EQ(Reply("write 0 4 0x123"), "parsed");  // odd nibble unused
}

TEST(QtestParserTest, B64writeRejectsCharactersOutsideTheAlphabet) {
  EXPECT_EQ(Reply("b64write 0 3 AQI*"),
            "ERR b64write: invalid base64 character at offset 3");
  EXPECT_EQ(Reply("b64write 0 3 +/9a=="), "parsed");
}

TEST(QtestParserTest, SetIrqInNumbersAreCInts) {
  EXPECT_THAT(Reply("set_irq_in p n -1 1"), HasSubstr("invalid irq number"));
  EXPECT_THAT(Reply("set_irq_in p n 0x80000000 1"),
              HasSubstr("invalid irq number"));
  EXPECT_THAT(Reply("set_irq_in p n 1 0x80000000"), HasSubstr("invalid level"));
  EXPECT_EQ(Reply("set_irq_in p n 0x7fffffff -0x80000000"), "parsed");
}

TEST(QtestParserTest, ErrorReplyPrefixFollowsTheStatusCode) {
  EXPECT_EQ(QtestErrorReply(absl::NotFoundError("x")), "FAIL x");
  EXPECT_EQ(QtestErrorReply(absl::InvalidArgumentError("y")), "ERR y");
}

// Random lines over the protocol's alphabet never crash and always answer
// parsed / ERR / FAIL (the fuzz target's property, deterministic here).
TEST(QtestParserTest, RandomLinesNeverCrash) {
  static const char* kWords[] = {"readb",
                                 "writeq",
                                 "read",
                                 "write",
                                 "b64read",
                                 "b64write",
                                 "memset",
                                 "outb",
                                 "inl",
                                 "clock_step",
                                 "clock_set",
                                 "set_irq_in",
                                 "irq_intercept_in",
                                 "module_load",
                                 "0",
                                 "0x",
                                 "-1",
                                 "0xffffffffffffffff",
                                 "",
                                 "AAAA",
                                 "0xzz",
                                 "18446744073709551616",
                                 "ioapic",
                                 "\t",
                                 "\r"};
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::string line;
    const int n = static_cast<int>(rng() % 6);
    for (int j = 0; j < n; ++j) {
      if (j > 0) line += ' ';
      if (rng() % 4 == 0) {
        line += static_cast<char>(rng() % 256);
      } else {
        line += kWords[rng() % (sizeof(kWords) / sizeof(kWords[0]))];
      }
    }
    const std::string r = Reply(line);
    EXPECT_TRUE(r == "parsed" || r.rfind("ERR ", 0) == 0 ||
                r.rfind("FAIL ", 0) == 0)
        << line;
  }
}

}  // namespace
}  // namespace viommu::system
