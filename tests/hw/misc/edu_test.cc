// edu inside a q35 machine: the behaviours a qtest script cannot easily
// see (MSI messages, INTx levels, refused DMA counts, property parsing).
#include "viommu/hw/misc/edu.h"

#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/hw/i386/q35_machine.h"

namespace viommu::hw::misc {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kBar = 0xfe00'0000;
constexpr int64_t kDmaNs = 100'000'000;

class EduTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_ = *Q35Machine::Create({.ram_size = 64 << 20});
    ASSERT_TRUE(
        m_->AddDevice({.driver = "edu",
                       .props = {{"addr", "04.0"}, {"dma_mask", "0xffffffff"}}})
            .ok());
    edu_ = static_cast<Edu*>(m_->pci_bus().Find(0x20));
    Config(0x10, 0xfe00'0000, 4);
    Config(0x04, 0x6, 2);  // memory + bus master
  }
  void Config(uint32_t off, uint32_t v, unsigned size) {
    m_->pci_bus().ConfigWrite(0x20, off, v, size);
  }
  void W64(uint64_t off, uint64_t v) {
    ASSERT_TRUE(m_->system_as().Write(kBar + off, &v, 8).ok());
  }
  void W32(uint64_t off, uint32_t v) {
    ASSERT_TRUE(m_->system_as().Write(kBar + off, &v, 4).ok());
  }
  uint64_t R64(uint64_t off) {
    uint64_t v = 0;
    (void)m_->system_as().Read(kBar + off, &v, 8);
    return v;
  }
  void StartDma(uint64_t src, uint64_t dst, uint64_t n, uint64_t cmd) {
    W64(0x80, src);
    W64(0x88, dst);
    W64(0x90, n);
    W64(0x98, cmd);
  }

  std::unique_ptr<Q35Machine> m_;
  Edu* edu_ = nullptr;
};

TEST_F(EduTest, IntxFollowsIrqStatusWhenMsiIsOff) {
  W32(0x60, 0x1);
  const int gsi = 16 + ((4 + 1 - 1) % 4) + 4;
  EXPECT_TRUE(m_->gsi().level(gsi));
  W32(0x64, 0x1);
  EXPECT_FALSE(m_->gsi().level(gsi));
}

TEST_F(EduTest, MsiCarriesTheRequesterIdWhenEnabled) {
  Config(0x44, 0xfee0'1000, 4);  // address
  Config(0x4c, 0x4041, 2);       // data (64-bit layout)
  Config(0x42, 0x1, 2);          // enable
  W32(0x60, 0x100);
  ASSERT_EQ(m_->msi().Count(0x20), 1u);
  EXPECT_EQ(m_->msi().Last(0x20)->address, 0xfee0'1000u);
  EXPECT_EQ(m_->msi().Last(0x20)->data, 0x4041u);
}

TEST_F(EduTest, DmaLandsOnlyAfterOneHundredMilliseconds) {
  uint64_t pattern = 0x1122334455667788;
  ASSERT_TRUE(m_->system_as().Write(0x10000, &pattern, 8).ok());
  StartDma(0x10000, Edu::kDmaStart, 8, 1);
  m_->clock().Step(kDmaNs - 1);
  EXPECT_EQ(R64(0x98) & 1, 1u);
  m_->clock().Step(1);
  EXPECT_EQ(R64(0x98) & 1, 0u);
  StartDma(Edu::kDmaStart, 0x20000, 8, 3);
  m_->clock().Step(kDmaNs);
  uint64_t out = 0;
  ASSERT_TRUE(m_->system_as().Read(0x20000, &out, 8).ok());
  EXPECT_EQ(out, pattern);
}

TEST_F(EduTest, RegistersIgnoreWritesWhileDmaRuns) {
  StartDma(0x10000, Edu::kDmaStart, 8, 1);
  W64(0x80, 0x5000);
  EXPECT_EQ(R64(0x80), 0x10000u);
}

TEST_F(EduTest, OutOfBufferDmaIsRefusedAndCounted) {
  StartDma(0x10000, Edu::kDmaStart + 0xff8, 0x10, 1);
  m_->clock().Step(kDmaNs);
  EXPECT_EQ(edu_->refused_dma_count(), 1u);
  EXPECT_EQ(R64(0x98) & 1, 0u);
  StartDma(0x10000, Edu::kDmaStart, ~uint64_t{0}, 1);  // count overflow
  m_->clock().Step(kDmaNs);
  EXPECT_EQ(edu_->refused_dma_count(), 2u);
}

TEST_F(EduTest, DoneIrqIsRaisedEvenForARefusedDma) {
  StartDma(0x10000, 0x0, 8, 0x5);
  m_->clock().Step(kDmaNs);
  EXPECT_EQ(R64(0x24) & 0xffffffff, 0x100u);
}

TEST(EduPropertiesTest, DmaMaskClampsTheRamAddress) {
  auto m = *Q35Machine::Create({.ram_size = 64 << 20});
  ASSERT_TRUE(m->AddDevice({.driver = "edu",
                            .props = {{"addr", "4"}, {"dma_mask", "0xfffff"}}})
                  .ok());
  m->pci_bus().ConfigWrite(0x20, 0x10, kBar, 4);
  m->pci_bus().ConfigWrite(0x20, 0x04, 0x6, 2);
  uint8_t byte = 0x5a;
  ASSERT_TRUE(m->system_as().Write(0x1'0010, &byte, 1).ok());
  uint64_t v = 0x4'0001'0010;  // clamped to 0x10010
  (void)m->system_as().Write(kBar + 0x80, &v, 8);
  v = Edu::kDmaStart;
  (void)m->system_as().Write(kBar + 0x88, &v, 8);
  v = 1;
  (void)m->system_as().Write(kBar + 0x90, &v, 8);
  (void)m->system_as().Write(kBar + 0x98, &v, 8);
  m->clock().Step(kDmaNs);
  v = Edu::kDmaStart;
  (void)m->system_as().Write(kBar + 0x80, &v, 8);
  v = 0x3'0000;
  (void)m->system_as().Write(kBar + 0x88, &v, 8);
  v = 3;
  (void)m->system_as().Write(kBar + 0x98, &v, 8);
  m->clock().Step(kDmaNs);
  uint8_t out = 0;
  ASSERT_TRUE(m->system_as().Read(0x3'0000, &out, 1).ok());
  EXPECT_EQ(out, 0x5a);
}

TEST(EduPropertiesTest, BadPropertiesAreNamed) {
  EXPECT_THAT(
      Edu::CreateFromProperties({{"dma_mask", "12x"}}).status().message(),
      HasSubstr("edu.dma_mask"));
  EXPECT_THAT(Edu::CreateFromProperties({{"colour", "red"}}).status().message(),
              HasSubstr("Property 'edu.colour' not found"));
}

}  // namespace
}  // namespace viommu::hw::misc
