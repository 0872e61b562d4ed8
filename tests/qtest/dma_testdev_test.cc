// dma-testdev through build/viommu: synchronous DMA, results and limits.
#include "gtest/gtest.h"
#include "tests/qtest/viommu_fixture.h"

namespace viommu::qtest {
namespace {

class DmaTestdevTest : public ViommuTest {
 protected:
  void StartDev() {
    Start({"-m", "256M", "-device", "dma-testdev,addr=05.0"});
    if (HasFatalFailure()) return;
    dev_ = std::make_unique<QPciDevice>(*bus().Find(0x10f0, 0x1b36));
    dev_->Enable();
    bar_ = dev_->MapBar(0);
  }
  void Dma(uint64_t iova, uint32_t len, uint32_t cmd, uint32_t offset = 0) {
    qts().Writeq(bar_ + 0x08, iova);
    qts().Writel(bar_ + 0x10, len);
    qts().Writel(bar_ + 0x14, offset);
    qts().Writel(bar_ + 0x18, cmd);
  }
  uint32_t Result() { return qts().Readl(bar_ + 0x1c); }
  uint64_t bar_ = 0;
  std::unique_ptr<QPciDevice> dev_;
};

TEST_F(DmaTestdevTest, IdentifiesItself) {
  StartDev();
  EXPECT_EQ(qts().Readl(bar_), 0x7e570001u);
  EXPECT_EQ(Result(), 0xffffffffu);
  EXPECT_EQ(qts().Readl(bar_ + 0x24), 0x28u);  // requester id 00:05.0
}

TEST_F(DmaTestdevTest, ReadCopiesGuestMemoryIntoTheBuffer) {
  StartDev();
  qts().Memwrite(0x300000, {9, 8, 7, 6});
  Dma(0x300000, 4, 1);
  EXPECT_EQ(Result(), 0u);
  EXPECT_EQ(qts().Readl(bar_ + 0x1000), 0x06070809u);
  EXPECT_EQ(qts().Readl(bar_ + 0x20), 1u);
}

TEST_F(DmaTestdevTest, WriteCopiesTheBufferIntoGuestMemory) {
  StartDev();
  qts().Writel(bar_ + 0x1010, 0xa1b2c3d4);
  Dma(0x310000, 4, 2, /*offset=*/0x10);
  EXPECT_EQ(Result(), 0u);
  EXPECT_EQ(qts().Readl(0x310000), 0xa1b2c3d4u);
}

TEST_F(DmaTestdevTest, UnassignedAddressIsADecodeError) {
  StartDev();
  Dma(0xf0000000, 8, 1);
  EXPECT_EQ(Result(), 2u);
}

TEST_F(DmaTestdevTest, BadLengthsAndCommandsAreRefused) {
  StartDev();
  Dma(0x300000, 0, 1);
  EXPECT_EQ(Result(), 0x100u);
  Dma(0x300000, 0x1001, 1);
  EXPECT_EQ(Result(), 0x100u);
  Dma(0x300000, 0x10, 1, /*offset=*/0xff8);
  EXPECT_EQ(Result(), 0x100u);
  Dma(0x300000, 0x10, 7);
  EXPECT_EQ(Result(), 0x200u);
}

TEST_F(DmaTestdevTest, NoBusMasteringMeansNoDma) {
  StartDev();
  dev_->ConfigWritew(0x04, 0x2);
  qts().Memwrite(0x300000, {1, 2, 3, 4});
  Dma(0x300000, 4, 1);
  EXPECT_EQ(Result(), 2u);
  EXPECT_EQ(qts().Readl(bar_ + 0x1000), 0u);
}

}  // namespace
}  // namespace viommu::qtest
