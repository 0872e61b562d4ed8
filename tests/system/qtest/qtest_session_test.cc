#include "viommu/system/qtest/qtest_session.h"

#include <glib.h>

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_qtest_target.h"

namespace viommu::system {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class QtestSessionTest : public ::testing::Test {
 protected:
  std::string Run(absl::string_view line) { return session_.HandleLine(line); }
  testing::FakeQtestTarget target_;
  std::vector<std::string> out_;
  QtestSession session_{&target_,
                        [this](absl::string_view s) { out_.emplace_back(s); }};
};

// ---- memory and ports ----

TEST_F(QtestSessionTest, ReadsFormatLikeQemu) {
  Run("writel 0x10 0x12345678");
  EXPECT_EQ(Run("readl 0x10"), "OK 0x0000000012345678");
  EXPECT_EQ(Run("readb 0x10"), "OK 0x0000000000000078");
  EXPECT_EQ(Run("readw 0x11"), "OK 0x0000000000003456");
  EXPECT_EQ(Run("read 0x10 4"), "OK 0x78563412");
  EXPECT_EQ(Run("b64read 0x10 3"), "OK eFY0");
  EXPECT_EQ(Run("b64read 0x10 4"), "OK eFY0Eg==");
  EXPECT_EQ(Run("b64read 0x10 5"), "OK eFY0EgA=");
}

TEST_F(QtestSessionTest, WritesAreLittleEndianAndTruncatedToTheWidth) {
  EXPECT_EQ(Run("writeq 0x20 0x0102030405060708"), "OK");
  EXPECT_EQ(target_.Byte(0x20), 0x08);
  EXPECT_EQ(target_.Byte(0x27), 0x01);
  EXPECT_EQ(Run("readq 0x20"), "OK 0x0102030405060708");
  Run("writew 0x20 0xabcdef");
  EXPECT_EQ(Run("readq 0x20"), "OK 0x010203040506cdef");
}

TEST_F(QtestSessionTest, PortsUseQemusFourDigitFormat) {
  EXPECT_EQ(Run("inb 0x80"), "OK 0x00ff");  // masked to the width
  EXPECT_EQ(Run("inw 0x80"), "OK 0xffff");
  Run("outl 0xcf8 0x80002000");
  EXPECT_EQ(Run("inl 0xcf8"), "OK 0x80002000");
  EXPECT_EQ(target_.last_port_size, 4u);
  Run("outb 0x70 0x1234");  // cpu_outb takes a byte
  EXPECT_EQ(target_.ports[0x70], 0x34u);
  EXPECT_EQ(Run("inb 0x70"), "OK 0x0034");
}

TEST_F(QtestSessionTest, BufferWriteZeroFillsBeyondTheData) {
  Run("memset 0x100 4 0xaa");
  EXPECT_EQ(Run("write 0x100 4 0x0102"), "OK");
  EXPECT_EQ(Run("read 0x100 4"), "OK 0x01020000");
  EXPECT_EQ(Run("write 0x100 1 0xAbCd"), "OK");  // only SIZE bytes
  EXPECT_EQ(Run("read 0x100 2"), "OK 0xab02");
}

TEST_F(QtestSessionTest, B64writeWritesSizeBytes) {
  Run("memset 0x200 4 0xff");
  EXPECT_EQ(Run("b64write 0x200 2 AQID"), "OK");  // longer: truncated
  EXPECT_EQ(Run("read 0x200 4"), "OK 0x0102ffff");
  EXPECT_EQ(Run("b64write 0x200 4 AQI="), "OK");  // shorter: zero-filled
  EXPECT_EQ(Run("read 0x200 4"), "OK 0x01020000");
}

TEST_F(QtestSessionTest, B64writeMismatchIsANote) {
  std::vector<std::string> notes;
  session_.set_note([&](absl::string_view s) { notes.emplace_back(s); });
  Run("b64write 0 2 AQI=");
  Run("b64write 0 3 AQI=");
  EXPECT_THAT(notes, ElementsAre("b64write: data length mismatch (told 3, "
                                 "found 2)"));
}

TEST_F(QtestSessionTest, B64RoundTripAcrossChunks) {
  // 100000 bytes: several 48 KiB encode chunks and 64 KiB read chunks.
  std::string data;
  for (int i = 0; i < 100000; ++i) data += static_cast<char>(i * 7 + i / 256);
  gchar* b64 = g_base64_encode(reinterpret_cast<const guchar*>(data.data()),
                               data.size());
  EXPECT_EQ(Run(std::string("b64write 0x1000 100000 ") + b64), "OK");
  EXPECT_EQ(Run("b64read 0x1000 100000"), std::string("OK ") + b64);
  g_free(b64);
  EXPECT_EQ(target_.Byte(0x1000 + 99999), static_cast<uint8_t>(data.back()));
}

TEST_F(QtestSessionTest, B64readOfSizeZeroIsAnEmptyAnswer) {
  EXPECT_EQ(Run("b64read 0 0"), "OK ");  // as QEMU's g_base64_encode(.., 0)
}

TEST_F(QtestSessionTest, LargeMemsetIsChunked) {
  EXPECT_EQ(Run("memset 0x0 0x100000 0x5a"), "OK");
  EXPECT_EQ(target_.bytes_written, 0x100000u);
  EXPECT_LE(target_.max_write_len, 64u * 1024);
  EXPECT_EQ(Run("readb 0xfffff"), "OK 0x000000000000005a");
  EXPECT_EQ(Run("memset 0 0 1"), "OK");
  EXPECT_EQ(target_.bytes_written, 0x100000u);
}

TEST_F(QtestSessionTest, HostileSizesAreErrWithoutTouchingMemory) {
  EXPECT_THAT(Run("read 0 0x100000000"), StartsWith("ERR read: size"));
  EXPECT_THAT(Run("b64read 0 0x100000000"), StartsWith("ERR b64read: size"));
  EXPECT_THAT(Run("memset 0 0x8000000000000000 0"),
              StartsWith("ERR memset: size"));
  EXPECT_THAT(Run("write 0 0x8000000000000000 0x00"),
              StartsWith("ERR write: size"));
  EXPECT_EQ(target_.bytes_read + target_.bytes_written, 0u);
}

TEST_F(QtestSessionTest, LimitsAreOptions) {
  QtestSession small(&target_, nullptr,
                     {.max_read_bytes = 8, .max_fill_bytes = 16});
  EXPECT_EQ(small.Execute("read 0 8"), "OK 0x0000000000000000\n");
  EXPECT_THAT(small.Execute("read 0 9"), HasSubstr("at most 8 bytes"));
  EXPECT_EQ(small.Execute("memset 0 16 0"), "OK\n");
  EXPECT_THAT(small.Execute("memset 0 17 0"), HasSubstr("at most 16 bytes"));
}

TEST_F(QtestSessionTest, LongReadsStreamThroughTheFlushHook) {
  QtestSession s(&target_, nullptr);
  std::string sent;
  size_t flushes = 0, largest = 0;
  s.set_stream_flush([&](std::string* out) {
    ++flushes;
    largest = std::max(largest, out->size());
    sent += *out;
    out->clear();
  });
  std::string out;
  s.Run("read 0 0x300000", &out);  // 6 MiB of hex
  sent += out;
  EXPECT_GE(flushes, 5u);
  EXPECT_LT(largest, size_t{1} << 21);
  ASSERT_EQ(sent.size(), 5 + 2 * 0x300000u + 1);
  EXPECT_EQ(sent.substr(0, 9), "OK 0x0000");
  EXPECT_EQ(sent.back(), '\n');
}

TEST_F(QtestSessionTest, ReadsWithoutTheHookAreWhole) {
  const std::string out = session_.Execute("read 0 0x200000");
  EXPECT_EQ(out.size(), 5 + 2 * 0x200000u + 1);
}

TEST_F(QtestSessionTest, EndiannessIsLittle) {
  EXPECT_EQ(Run("endianness"), "OK little");
}

// ---- clock ----

TEST_F(QtestSessionTest, ClockStepAdvancesAndAnswersTheTime) {
  EXPECT_EQ(Run("clock_step 100"), "OK 100");
  EXPECT_EQ(Run("clock_step 0x10"), "OK 116");
}

TEST_F(QtestSessionTest, ClockStepThatDoesNotAdvanceFails) {
  EXPECT_EQ(Run("clock_step 0"), "FAIL could not advance time");
  EXPECT_EQ(Run("clock_step -5"), "FAIL could not advance time");
  target_.now = 10;
  EXPECT_EQ(Run("clock_step 9223372036854775807"),
            "FAIL could not advance time");
  EXPECT_EQ(target_.now, 10);
}

TEST_F(QtestSessionTest, ClockStepWithoutArgumentGoesToTheDeadline) {
  EXPECT_EQ(Run("clock_step"),
            "FAIL cannot advance clock to the next deadline because there is "
            "no pending deadline");
  target_.deadline = 500;
  EXPECT_EQ(Run("clock_step"), "OK 500");
  target_.deadline = 500;  // already due: the time does not move
  EXPECT_EQ(Run("clock_step"), "FAIL could not advance time");
}

TEST_F(QtestSessionTest, ClockWithoutClockNowUsesTheLastSeenTime) {
  target_.hide_clock_now = true;
  EXPECT_EQ(Run("clock_step 7"), "OK 7");
  target_.deadline = 7;
  EXPECT_EQ(Run("clock_step"), "FAIL could not advance time");
  target_.deadline = 8;
  EXPECT_EQ(Run("clock_step"), "OK 8");
}

TEST_F(QtestSessionTest, ClockSetIsMonotonic) {
  EXPECT_EQ(Run("clock_set 1000"), "OK 1000");
  EXPECT_EQ(Run("clock_set 1000"), "OK 1000");
  EXPECT_EQ(Run("clock_set 10"), "FAIL 1000");
  EXPECT_EQ(target_.now, 1000);
}

// ---- IRQs ----

TEST_F(QtestSessionTest, InterceptedIrqsPrecedeTheAnswer) {
  EXPECT_EQ(Run("irq_intercept_in ioapic"), "OK");
  out_.clear();
  EXPECT_EQ(Run("set_irq_in ioapic unnamed-gpio-in 3 1"), "OK");
  EXPECT_THAT(out_, ElementsAre("IRQ raise 3\n", "OK\n"));
  EXPECT_THAT(target_.set_irq_calls,
              ElementsAre(std::pair<uint64_t, int64_t>(3, 1)));
}

TEST_F(QtestSessionTest, IrqLinesAreSentOnlyOnLevelChanges) {
  Run("irq_intercept_in ioapic");
  out_.clear();
  target_.RaiseIrq(5, true);
  target_.RaiseIrq(5, true);
  target_.RaiseIrq(5, false);
  target_.RaiseIrq(300, true);  // beyond QEMU's 256 tracked lines
  target_.RaiseIrq(300, true);
  EXPECT_THAT(out_, ElementsAre("IRQ raise 5\n", "IRQ lower 5\n",
                                "IRQ raise 300\n", "IRQ raise 300\n"));
}

TEST_F(QtestSessionTest, ExecuteReturnsIrqLinesAndAnswer) {
  EXPECT_EQ(session_.Execute("irq_intercept_in ioapic"), "OK\n");
  EXPECT_EQ(session_.Execute("set_irq_in ioapic unnamed-gpio-in 2 1"),
            "IRQ raise 2\nOK\n");
  EXPECT_EQ(session_.Execute(""), "");
}

TEST_F(QtestSessionTest, InterceptErrorsInQemusOrder) {
  EXPECT_EQ(Run("irq_intercept_in nowhere"), "FAIL Unknown device");
  EXPECT_EQ(Run("irq_intercept_in ioapic name"),
            "FAIL Interception of named in-GPIOs not yet supported");
  EXPECT_EQ(Run("irq_intercept_in /machine/peripheral/dev0"),
            "FAIL No intercepts installed");
  EXPECT_EQ(Run("irq_intercept_in ioapic"), "OK");
  EXPECT_EQ(Run("irq_intercept_in ioapic"), "OK");  // same device again
  EXPECT_EQ(Run("irq_intercept_out /machine/peripheral/dev0"),
            "FAIL IRQ intercept already enabled");
  EXPECT_EQ(Run("irq_intercept_out nowhere"), "FAIL Unknown device");
}

TEST_F(QtestSessionTest, InterceptOutAcceptsANamedList) {
  EXPECT_EQ(Run("irq_intercept_out /machine/peripheral/dev0 irq"), "OK");
  EXPECT_EQ(Run("irq_intercept_in ioapic"),
            "FAIL IRQ intercept already enabled");
}

TEST_F(QtestSessionTest, SetIrqInErrorsAreFail) {
  EXPECT_EQ(Run("set_irq_in nowhere unnamed-gpio-in 0 1"),
            "FAIL Unknown device");
  EXPECT_EQ(Run("set_irq_in ioapic unnamed-gpio-in 99 1"), "FAIL Unknown IRQ");
}

TEST_F(QtestSessionTest, IrqAfterTheSessionIsGoneIsIgnored) {
  auto s = std::make_unique<QtestSession>(&target_, nullptr);
  EXPECT_EQ(s->Execute("irq_intercept_in ioapic"), "OK\n");
  s.reset();
  target_.RaiseIrq(1, true);  // must not touch the destroyed session
  SUCCEED();
}

// ---- errors keep the session going ----

TEST_F(QtestSessionTest, MalformedLinesAnswerAndTheSessionGoesOn) {
  EXPECT_EQ(Run("bogus"), "FAIL Unknown command 'bogus'");
  EXPECT_THAT(Run("writel"), StartsWith("ERR writel: expected 2 arguments"));
  EXPECT_EQ(Run("module_load a b"), "FAIL");
  EXPECT_EQ(Run("readb 0"), "OK 0x0000000000000000");
}

TEST_F(QtestSessionTest, HandleLineEmitsEveryLineAndBlankLinesNothing) {
  EXPECT_EQ(Run(""), "");
  EXPECT_TRUE(out_.empty());
  Run("endianness");
  EXPECT_THAT(out_, ElementsAre("OK little\n"));
}

TEST_F(QtestSessionTest, RunAppendsToTheBuffer) {
  std::string out = "previous\n";
  session_.Run("endianness", &out);
  session_.Run("", &out);
  session_.Run("nope", &out);
  EXPECT_EQ(out, "previous\nOK little\nFAIL Unknown command 'nope'\n");
  EXPECT_TRUE(out_.empty());
}

}  // namespace
}  // namespace viommu::system
