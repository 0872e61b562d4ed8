// devcore::EduEngine on its own: the edu register semantics and the DMA
// state machine both the guest edu and the simulated host devices use.
#include "viommu/devcore/edu_engine.h"

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fakes/fake_device_timers.h"

namespace viommu::devcore {
namespace {

constexpr uint64_t kLiveness = 0x04;
constexpr uint64_t kFactorial = 0x08;
constexpr uint64_t kStatus = 0x20;
constexpr uint64_t kIrqStatus = 0x24;
constexpr uint64_t kRaise = 0x60;
constexpr uint64_t kAck = 0x64;
constexpr uint64_t kSrc = 0x80;
constexpr uint64_t kDst = 0x88;
constexpr uint64_t kCount = 0x90;
constexpr uint64_t kCmd = 0x98;
constexpr uint64_t kRun = 0x1, kToRam = 0x2, kIrq = 0x4;
constexpr int64_t kDmaNs = EduEngine::kDmaDelayMs * 1'000'000;

// Records what the engine does; RAM is a flat vector.
class RecordingBus final : public EduEngine::Bus {
 public:
  RecordingBus() : ram(0x10000) {}
  void Dma(uint64_t addr, uint8_t* buf, uint64_t len, bool to_ram) override {
    ++dmas;
    last_addr = addr;
    if (to_ram) {
      std::memcpy(ram.data() + addr, buf, len);
    } else {
      std::memcpy(buf, ram.data() + addr, len);
    }
  }
  void IrqRaised() override { ++raised; }
  void IrqCleared() override { ++cleared; }

  std::vector<uint8_t> ram;
  int dmas = 0;
  uint64_t last_addr = 0;
  int raised = 0;
  int cleared = 0;
};

class EduEngineTest : public ::testing::Test {
 protected:
  void StartDma(uint64_t src, uint64_t dst, uint64_t count, uint64_t cmd) {
    engine_.Write(kSrc, src, 8);
    engine_.Write(kDst, dst, 8);
    engine_.Write(kCount, count, 8);
    engine_.Write(kCmd, cmd, 8);
  }

  RecordingBus bus_;
  vfio::model::FakeDeviceTimers timers_;
  EduEngine engine_{&bus_, &timers_, EduEngine::kDefaultDmaMask};
};

TEST_F(EduEngineTest, IdReadsVersionAndMagic) {
  EXPECT_EQ(engine_.Read(0x00, 4), 0x010000edu);
}

TEST_F(EduEngineTest, LivenessReadsTheComplementOfTheValueWritten) {
  engine_.Write(kLiveness, 0x12345678, 4);
  EXPECT_EQ(engine_.Read(kLiveness, 4), 0xedcba987u);
}

TEST_F(EduEngineTest, WrongSizedAccessIsIgnoredAndReadsAllOnesOfItsSize) {
  engine_.Write(kLiveness, 0x1, 8);  // below 0x80: 4 bytes only
  EXPECT_EQ(engine_.Read(kLiveness, 4), 0u);
  EXPECT_EQ(engine_.Read(kLiveness, 8), ~uint64_t{0});
  EXPECT_EQ(engine_.Read(kSrc, 2), 0xffffu);
  EXPECT_EQ(engine_.Read(0x40, 4), 0xffffffffu);  // no register there
}

TEST_F(EduEngineTest, FactorialIsModuloTwoToThe32AndRaisesWhenAsked) {
  engine_.Write(kFactorial, 12, 4);
  EXPECT_EQ(engine_.Read(kFactorial, 4), 479001600u);
  EXPECT_EQ(bus_.raised, 0);
  engine_.Write(kStatus, 0x80, 4);
  engine_.Write(kFactorial, 13, 4);
  EXPECT_EQ(engine_.Read(kFactorial, 4), 1932053504u);  // 13! mod 2^32
  EXPECT_EQ(engine_.irq_status(), 0x1u);
  EXPECT_EQ(bus_.raised, 1);
  engine_.Write(kFactorial, 0xffffffff, 4);  // ends early, reads 0
  EXPECT_EQ(engine_.Read(kFactorial, 4), 0u);
}

TEST_F(EduEngineTest, RaiseAndAckDriveTheIrqStatus) {
  engine_.Write(kRaise, 0x5, 4);
  EXPECT_EQ(engine_.Read(kIrqStatus, 4), 0x5u);
  engine_.Write(kAck, 0x1, 4);
  EXPECT_EQ(bus_.cleared, 0);  // 0x4 still set
  engine_.Write(kAck, 0x4, 4);
  EXPECT_EQ(engine_.irq_status(), 0u);
  EXPECT_EQ(bus_.cleared, 1);
}

TEST_F(EduEngineTest, DmaRunsOneHundredMillisecondsAfterTheCommand) {
  bus_.ram[0x1000] = 0xab;
  StartDma(0x1000, EduEngine::kDmaStart, 1, kRun | kIrq);
  EXPECT_TRUE(engine_.dma_pending());
  timers_.Advance(kDmaNs - 1);
  EXPECT_EQ(bus_.dmas, 0);
  timers_.Advance(1);
  EXPECT_EQ(bus_.dmas, 1);
  EXPECT_FALSE(engine_.dma_pending());
  EXPECT_EQ(engine_.Read(kCmd, 8) & kRun, 0u);
  EXPECT_EQ(engine_.irq_status(), 0x100u);
  // Back out to RAM: the buffer held the byte.
  StartDma(EduEngine::kDmaStart, 0x2000, 1, kRun | kToRam);
  timers_.Advance(kDmaNs);
  EXPECT_EQ(bus_.ram[0x2000], 0xab);
}

TEST_F(EduEngineTest, DeadlineIsTheNextWholeMillisecondPlusTheDelay) {
  timers_.Advance(1'500'000);  // 1.5 ms: QEMU's clock reads 1 ms
  StartDma(0x1000, EduEngine::kDmaStart, 1, kRun);
  timers_.AdvanceTo(101'000'000 - 1);
  EXPECT_EQ(bus_.dmas, 0);
  timers_.AdvanceTo(101'000'000);
  EXPECT_EQ(bus_.dmas, 1);
}

TEST_F(EduEngineTest, DmaRegistersIgnoreWritesWhileADmaRuns) {
  StartDma(0x1000, EduEngine::kDmaStart, 8, kRun);
  engine_.Write(kSrc, 0x3000, 8);
  engine_.Write(kCount, 16, 4);
  EXPECT_EQ(engine_.Read(kSrc, 8), 0x1000u);
  EXPECT_EQ(engine_.Read(kCount, 8), 8u);
}

TEST_F(EduEngineTest, CommandWithoutRunIsIgnored) {
  engine_.Write(kCmd, kToRam | kIrq, 8);
  EXPECT_EQ(engine_.Read(kCmd, 8), 0u);
  EXPECT_EQ(timers_.pending_count(), 0u);
}

TEST_F(EduEngineTest, RamSideAddressIsMaskedWithDmaMask) {
  EduEngine masked(&bus_, &timers_, /*dma_mask=*/0xfff);
  masked.Write(kSrc, 0x12345678, 8);
  masked.Write(kDst, EduEngine::kDmaStart, 8);
  masked.Write(kCount, 1, 8);
  masked.Write(kCmd, kRun, 8);
  timers_.Advance(kDmaNs);
  EXPECT_EQ(bus_.last_addr, 0x678u);
}

TEST_F(EduEngineTest, OutOfBufferDmaIsRefusedCountedAndStillRaisesTheIrq) {
  StartDma(0x1000, EduEngine::kDmaStart + EduEngine::kDmaSize - 4, 8,
           kRun | kIrq);
  timers_.Advance(kDmaNs);
  EXPECT_EQ(bus_.dmas, 0);
  EXPECT_EQ(engine_.refused_dma_count(), 1u);
  EXPECT_FALSE(engine_.dma_pending());
  EXPECT_EQ(engine_.irq_status(), 0x100u);
}

TEST_F(EduEngineTest, WithoutTimersTheDmaRunsAtTheCommandWrite) {
  EduEngine immediate(&bus_, nullptr, EduEngine::kDefaultDmaMask);
  immediate.Write(kSrc, 0x1000, 8);
  immediate.Write(kDst, EduEngine::kDmaStart, 8);
  immediate.Write(kCount, 4, 8);
  immediate.Write(kCmd, kRun, 8);
  EXPECT_EQ(bus_.dmas, 1);
  EXPECT_FALSE(immediate.dma_pending());
}

TEST_F(EduEngineTest, ResetZeroesRegistersAndCancelsAPendingDma) {
  engine_.Write(kLiveness, 0x1, 4);
  engine_.Write(kRaise, 0x2, 4);
  StartDma(0x1000, EduEngine::kDmaStart + EduEngine::kDmaSize, 8, kRun);
  timers_.Advance(kDmaNs);  // refused
  StartDma(0x1000, EduEngine::kDmaStart, 8, kRun);
  engine_.Reset();
  EXPECT_EQ(timers_.pending_count(), 0u);
  EXPECT_EQ(engine_.Read(kLiveness, 4), 0u);
  EXPECT_EQ(engine_.irq_status(), 0u);
  EXPECT_EQ(engine_.Read(kCmd, 8), 0u);
  EXPECT_EQ(engine_.refused_dma_count(), 1u);  // kept
  timers_.Advance(kDmaNs);
  EXPECT_EQ(bus_.dmas, 0);
}

TEST_F(EduEngineTest, StopDmaCancelsAndClearsRunButKeepsRegisters) {
  StartDma(0x1000, EduEngine::kDmaStart, 8, kRun | kIrq);
  engine_.StopDma();
  EXPECT_FALSE(engine_.dma_pending());
  EXPECT_EQ(engine_.Read(kCmd, 8), kIrq);
  EXPECT_EQ(engine_.Read(kSrc, 8), 0x1000u);
  timers_.Advance(kDmaNs);
  EXPECT_EQ(bus_.dmas, 0);
  EXPECT_EQ(bus_.raised, 0);
}

}  // namespace
}  // namespace viommu::devcore
