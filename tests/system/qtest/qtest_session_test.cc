#include "viommu/system/qtest/qtest_session.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_qtest_target.h"

namespace viommu::system {
namespace {

using ::testing::ElementsAre;

class QtestSessionTest : public ::testing::Test {
 protected:
  std::string Run(const char* line) { return session_.HandleLine(line); }
  testing::FakeQtestTarget target_;
  std::vector<std::string> out_;
  QtestSession session_{&target_,
                        [this](absl::string_view s) { out_.emplace_back(s); }};
};

TEST_F(QtestSessionTest, ReadsFormatLikeQemu) {
  Run("writel 0x10 0x12345678");
  EXPECT_EQ(Run("readl 0x10"), "OK 0x0000000012345678");
  EXPECT_EQ(Run("readb 0x10"), "OK 0x0000000000000078");
  EXPECT_EQ(Run("read 0x10 4"), "OK 0x78563412");
  EXPECT_EQ(Run("b64read 0x10 3"), "OK eFY0");
}

TEST_F(QtestSessionTest, PortReadsUseFourDigitFormat) {
  EXPECT_EQ(Run("inb 0x80"), "OK 0x00ff");
  Run("outl 0xcf8 0x80002000");
  EXPECT_EQ(Run("inl 0xcf8"), "OK 0x80002000");
  EXPECT_EQ(target_.last_port_size, 4u);
}

TEST_F(QtestSessionTest, BufferWriteZeroFillsBeyondTheData) {
  Run("memset 0x100 4 0xaa");
  EXPECT_EQ(Run("write 0x100 4 0x0102"), "OK");
  EXPECT_EQ(Run("read 0x100 4"), "OK 0x01020000");
}

TEST_F(QtestSessionTest, LargeMemsetIsChunked) {
  EXPECT_EQ(Run("memset 0x0 0x100000 0x5a"), "OK");
  EXPECT_EQ(target_.bytes_written, 0x100000u);
  EXPECT_EQ(Run("readb 0xfffff"), "OK 0x000000000000005a");
}

TEST_F(QtestSessionTest, B64WriteWritesTheShorterLength) {
  Run("memset 0 4 0xff");
  EXPECT_EQ(Run("b64write 0 4 AQI="), "OK");
  EXPECT_EQ(Run("read 0 4"), "OK 0x0102ffff");
}

TEST_F(QtestSessionTest, ClockCommands) {
  EXPECT_EQ(Run("clock_step 10"), "OK 10");
  EXPECT_EQ(Run("clock_step"),
            "FAIL cannot advance clock to the next deadline because there "
            "is no pending deadline");
  target_.deadline = 500;
  EXPECT_EQ(Run("clock_step"), "OK 500");
  EXPECT_EQ(Run("clock_set 400"), "OK 500");
  EXPECT_EQ(Run("clock_set 900"), "OK 900");
}

TEST_F(QtestSessionTest, IrqInterceptEmitsAsyncLinesBeforeAnswers) {
  EXPECT_EQ(Run("irq_intercept_in nowhere"), "FAIL Unknown device");
  EXPECT_EQ(Run("irq_intercept_in ioapic"), "OK");
  EXPECT_EQ(Run("irq_intercept_in ioapic"),
            "FAIL IRQ intercept already enabled");
  out_.clear();
  target_.irq(20, true);
  Run("endianness");
  EXPECT_THAT(out_, ElementsAre("IRQ raise 20\n", "OK little\n"));
}

TEST_F(QtestSessionTest, OnlyOneInterceptionPerMachine) {
  EXPECT_EQ(Run("irq_intercept_out nowhere"), "FAIL Unknown device");
  EXPECT_EQ(Run("irq_intercept_out ioapic"), "OK");
  EXPECT_EQ(Run("irq_intercept_in ioapic"),
            "FAIL IRQ intercept already enabled");
}

TEST_F(QtestSessionTest, SetIrqInDrivesTheLine) {
  ASSERT_EQ(Run("irq_intercept_in ioapic"), "OK");
  out_.clear();
  EXPECT_EQ(Run("set_irq_in ioapic unnamed-gpio-in 5 1"), "OK");
  EXPECT_THAT(out_, ElementsAre("IRQ raise 5\n", "OK\n"));
  EXPECT_EQ(Run("set_irq_in nowhere unnamed-gpio-in 5 1"),
            "FAIL Unknown device");
}

TEST_F(QtestSessionTest, ErrorsKeepTheSessionGoing) {
  EXPECT_EQ(Run("readl"), "ERR readl: expected 1 argument");
  EXPECT_EQ(Run("bogus"), "FAIL Unknown command 'bogus'");
  EXPECT_EQ(Run("readl 0"), "OK 0x0000000000000000");
}

TEST_F(QtestSessionTest, BlankLinesGetNoAnswer) {
  EXPECT_EQ(Run(""), "");
  EXPECT_TRUE(out_.empty());
}

}  // namespace
}  // namespace viommu::system
