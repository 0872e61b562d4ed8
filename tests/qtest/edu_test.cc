// edu through build/viommu's qtest front end: registers, factorial, IRQs
// and DMA in both directions, with and without bus mastering.
#include "gtest/gtest.h"
#include "tests/qtest/viommu_fixture.h"

namespace viommu::qtest {
namespace {

constexpr int64_t kDmaDelayNs = 100'000'000;

class EduTest : public ViommuTest {
 protected:
  void StartEdu(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"-m", "256M", "-device", "edu,addr=04.0"};
    args.insert(args.end(), extra.begin(), extra.end());
    Start(args);
    if (HasFatalFailure()) return;
    edu_ = std::make_unique<QPciDevice>(*bus().Find(0x11e8, 0x1234));
    edu_->Enable();
    bar_ = edu_->MapBar(0);
  }
  uint64_t bar_ = 0;
  std::unique_ptr<QPciDevice> edu_;
};

TEST_F(EduTest, IdentificationAndLiveness) {
  StartEdu();
  EXPECT_EQ(qts().Readl(bar_), 0x010000edu);
  qts().Writel(bar_ + 4, 0x12345678);
  EXPECT_EQ(qts().Readl(bar_ + 4), ~0x12345678u);
}

TEST_F(EduTest, NarrowAccessesAreIgnored) {
  StartEdu();
  qts().Writel(bar_ + 4, 0);
  qts().Writew(bar_ + 4, 0x5555);  // below the 4-byte minimum: dropped
  EXPECT_EQ(qts().Readl(bar_ + 4), 0xffffffffu);
  EXPECT_EQ(qts().Readw(bar_ + 0), 0u);  // rejected reads give 0
}

TEST_F(EduTest, EightByteAccessBelow0x80IsIgnored) {
  StartEdu();
  // An aligned 8-byte read of the id register is refused by edu itself.
  EXPECT_EQ(qts().Readq(bar_ + 0), ~uint64_t{0});
}

TEST_F(EduTest, FactorialAndItsInterruptStatus) {
  StartEdu();
  qts().Writel(bar_ + 0x20, 0x80);
  qts().Writel(bar_ + 0x08, 5);
  qts().ClockStep(kDmaDelayNs);
  EXPECT_EQ(qts().Readl(bar_ + 0x20) & 1, 0u);
  EXPECT_EQ(qts().Readl(bar_ + 0x08), 120u);
  EXPECT_EQ(qts().Readl(bar_ + 0x24), 1u);
  qts().Writel(bar_ + 0x64, 1);
  EXPECT_EQ(qts().Readl(bar_ + 0x24), 0u);
}

TEST_F(EduTest, RaiseAndAckAccumulateBits) {
  StartEdu();
  qts().Writel(bar_ + 0x60, 0x5);
  EXPECT_EQ(qts().Readl(bar_ + 0x24), 5u);
  qts().Writel(bar_ + 0x64, 0x4);
  EXPECT_EQ(qts().Readl(bar_ + 0x24), 1u);
}

TEST_F(EduTest, FourByteWritesToDmaRegistersZeroExtend) {
  StartEdu();
  qts().Writeq(bar_ + 0x80, 0x123456789abcdef0ull);
  qts().Writel(bar_ + 0x80, 0xaabbccdd);
  EXPECT_EQ(qts().Readq(bar_ + 0x80), 0xaabbccddull);
}

TEST_F(EduTest, DmaRoundTripThroughTheDeviceBuffer) {
  StartEdu();
  qts().Memwrite(0x100000, {1, 2, 3, 4, 5, 6, 7, 8});
  qts().Writeq(bar_ + 0x80, 0x100000);
  qts().Writeq(bar_ + 0x88, 0x40000);
  qts().Writeq(bar_ + 0x90, 8);
  qts().Writeq(bar_ + 0x98, 1);
  qts().ClockStep(kDmaDelayNs / 2);
  EXPECT_EQ(qts().Readq(bar_ + 0x98) & 1, 1u) << "done before 100 ms";
  qts().ClockStep(kDmaDelayNs / 2);
  EXPECT_EQ(qts().Readq(bar_ + 0x98) & 1, 0u);
  qts().Writeq(bar_ + 0x80, 0x40000);
  qts().Writeq(bar_ + 0x88, 0x200000);
  qts().Writeq(bar_ + 0x98, 3);
  qts().ClockStep(kDmaDelayNs);
  EXPECT_EQ(qts().Memread(0x200000, 8),
            (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST_F(EduTest, DmaWithoutBusMasteringLeavesRamUntouched) {
  StartEdu();
  edu_->ConfigWritew(0x04, 0x2);  // memory decode only
  qts().Writeq(bar_ + 0x80, 0x40000);
  qts().Writeq(bar_ + 0x88, 0x200000);
  qts().Writeq(bar_ + 0x90, 8);
  qts().Memset(0x200000, 8, 0xaa);
  qts().Writeq(bar_ + 0x98, 3);
  qts().ClockStep(kDmaDelayNs);
  EXPECT_EQ(qts().Memread(0x200000, 8), std::vector<uint8_t>(8, 0xaa));
}

TEST_F(EduTest, DmaDoneInterruptRaisesIntxLine) {
  StartEdu();
  ASSERT_EQ(*qts().Command("irq_intercept_in ioapic"), "OK");
  qts().Writeq(bar_ + 0x80, 0x40000);
  qts().Writeq(bar_ + 0x88, 0x200000);
  qts().Writeq(bar_ + 0x90, 8);
  qts().Writeq(bar_ + 0x98, 0x7);
  qts().ClockStep(kDmaDelayNs);
  EXPECT_EQ(qts().Readl(bar_ + 0x24), 0x100u);
  qts().Readl(bar_);  // collects async lines
  ASSERT_FALSE(qts().irq_events().empty());
  EXPECT_EQ(qts().irq_events().front().rfind("IRQ raise ", 0), 0u);
}

}  // namespace
}  // namespace viommu::qtest
