// Edu on a real PciBus (RAM, MSI window, INTx sink, virtual clock), driven
// through configuration space and BAR0 as a guest would.
#include "viommu/hw/misc/edu.h"

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/hw/pci/fake_pci_device.h"
#include "viommu/hw/pci/pci_regs.h"

namespace viommu::hw::misc {
namespace {

using ::testing::HasSubstr;
using pci::kCfgBar0;
using pci::kCfgClassProg;
using pci::kCfgCommand;
using pci::kCfgDeviceId;
using pci::kCfgInterruptPin;
using pci::kCfgRevision;
using pci::kCfgVendorId;
using pci::kCommandMaster;
using pci::kCommandMemory;
using pci::testing::PciTestBench;

constexpr uint8_t kDevfn = 0x20;  // 04.0: INTA# -> line 16 in the bench
constexpr int kIntxLine = 16;
constexpr uint64_t kBar = 0xfe00'0000;
constexpr int64_t kMs = 1'000'000;
constexpr int64_t kDmaNs = 100 * kMs;
constexpr uint64_t kStart = Edu::kDmaStart;

// BAR0 offsets.
constexpr uint64_t kId = 0x00, kLiveness = 0x04, kFactorial = 0x08,
                   kStatus = 0x20, kIrqStatus = 0x24, kRaise = 0x60,
                   kAck = 0x64, kSrc = 0x80, kDst = 0x88, kCount = 0x90,
                   kCmd = 0x98;
// Command bits.
constexpr uint64_t kRun = 1, kToRam = 2, kIrq = 4;

class EduTest : public ::testing::Test {
 protected:
  void SetUp() override { Plug({}); }

  void Plug(const Edu::Properties& props) {
    absl::StatusOr<std::unique_ptr<Edu>> edu = Edu::Create(props);
    ASSERT_TRUE(edu.ok()) << edu.status();
    absl::StatusOr<pci::PciDevice*> dev = b_.bus().Plug(*std::move(edu), kDevfn);
    ASSERT_TRUE(dev.ok()) << dev.status();
    edu_ = static_cast<Edu*>(*dev);
    b_.SetCfg(kDevfn, kCfgBar0, kBar, 4);
    b_.SetCfg(kDevfn, kCfgCommand, kCommandMemory | kCommandMaster, 2);
  }
  void Replug(const Edu::Properties& props) {
    ASSERT_TRUE(b_.bus().Unplug(kDevfn).ok());
    Plug(props);
  }

  uint64_t R(uint64_t off, unsigned size = 4) {
    uint64_t v = 0;
    EXPECT_TRUE(b_.MemRead(kBar + off, &v, size).ok()) << off;
    return v;
  }
  void W(uint64_t off, uint64_t v, unsigned size = 4) {
    EXPECT_TRUE(b_.MemWrite(kBar + off, v, size).ok()) << off;
  }
  void PutRam(uint64_t addr, uint64_t v) {
    ASSERT_TRUE(b_.MemWrite(addr, v, 8).ok());
  }
  uint64_t GetRam(uint64_t addr) {
    uint64_t v = 0;
    EXPECT_TRUE(b_.MemRead(addr, &v, 8).ok());
    return v;
  }
  void StartDma(uint64_t src, uint64_t dst, uint64_t count, uint64_t cmd) {
    W(kSrc, src, 8);
    W(kDst, dst, 8);
    W(kCount, count, 8);
    W(kCmd, cmd, 8);
  }
  void EnableMsi(uint64_t address, uint16_t data) {
    const uint8_t cap = edu_->msi_cap();
    b_.SetCfg(kDevfn, cap + 4, static_cast<uint32_t>(address), 4);
    b_.SetCfg(kDevfn, cap + 8, static_cast<uint32_t>(address >> 32), 4);
    b_.SetCfg(kDevfn, cap + 12, data, 2);
    b_.SetCfg(kDevfn, cap + 2, 0x1, 2);
  }
  bool Intx() { return b_.irq().level(kIntxLine); }

  PciTestBench b_;
  Edu* edu_ = nullptr;
};

// --- identification and configuration space -------------------------------

TEST_F(EduTest, ConfigSpaceIdentifiesQemuEdu) {
  EXPECT_EQ(b_.Cfg(kDevfn, kCfgVendorId, 2), 0x1234u);
  EXPECT_EQ(b_.Cfg(kDevfn, kCfgDeviceId, 2), 0x11e8u);
  EXPECT_EQ(b_.Cfg(kDevfn, kCfgRevision, 1), 0x10u);
  EXPECT_EQ(b_.Cfg(kDevfn, kCfgClassProg, 4) & 0xffffff, 0x00ff00u);
  EXPECT_EQ(b_.Cfg(kDevfn, kCfgInterruptPin, 1), 1u);
  EXPECT_EQ(edu_->type_name(), "edu");
}

TEST_F(EduTest, Bar0IsOneMebibyteOf32BitMemory) {
  b_.SetCfg(kDevfn, kCfgBar0, 0xffffffff, 4);
  EXPECT_EQ(b_.Cfg(kDevfn, kCfgBar0, 4), 0xfff00000u);
}

TEST_F(EduTest, HasOneVector64BitMsiCapability) {
  const uint8_t cap = edu_->msi_cap();
  ASSERT_NE(cap, 0);
  EXPECT_EQ(b_.Cfg(kDevfn, cap, 1), 0x05u);
  const uint32_t flags = b_.Cfg(kDevfn, cap + 2, 2);
  EXPECT_EQ(flags & 0x0e, 0u);      // multiple message capable: 1
  EXPECT_NE(flags & 0x80, 0u);      // 64-bit
  EXPECT_EQ(flags & 0x100, 0u);     // no per-vector masking
}

// --- registers ----------------------------------------------------------------

TEST_F(EduTest, IdRegisterReadsVersionAndMagic) {
  EXPECT_EQ(R(kId), 0x010000edu);
  W(kId, 0x12345678);
  EXPECT_EQ(R(kId), 0x010000edu);
}

TEST_F(EduTest, LivenessReadsTheComplement) {
  W(kLiveness, 0x12345678);
  EXPECT_EQ(R(kLiveness), 0xedcba987u);
  W(kLiveness, 0);
  EXPECT_EQ(R(kLiveness), 0xffffffffu);
}

TEST_F(EduTest, EightByteAccessBelow0x80IsIgnoredAndReadsAllOnes) {
  W(kLiveness, 0x1);
  W(kId, uint64_t{0x55} << 32, 8);  // covers liveness, but not 4 bytes: dropped
  EXPECT_EQ(R(kLiveness), 0xfffffffeu);
  EXPECT_EQ(R(kId, 8), ~uint64_t{0});
}

// As QEMU's address_space_write, the core splits an access that is not
// aligned to its size into aligned pieces of the implemented sizes: a
// writeq at 0x04 is two 4-byte writes, to liveness and to factorial
// (tests/conformance/scenarios/edu_registers.qtest checks it against QEMU).
TEST_F(EduTest, MisalignedEightByteWriteIsSplitIntoFourByteWrites) {
  W(kLiveness, 0x1);
  W(kLiveness, 0x55, 8);
  EXPECT_EQ(R(kLiveness), 0xffffffaau);
  EXPECT_EQ(R(kFactorial), 1u);  // 0!
  EXPECT_EQ(R(0x00, 8), ~uint64_t{0});
}

TEST_F(EduTest, NarrowAccessesDoNotReachTheRegisters) {
  W(kLiveness, 0x1);
  uint64_t v = 0x55;
  (void)b_.system_as().Write(kBar + kLiveness, &v, 1);
  (void)b_.system_as().Write(kBar + kLiveness, &v, 2);
  EXPECT_EQ(R(kLiveness), 0xfffffffeu);
}

TEST_F(EduTest, UnknownOffsetsReadAllOnesOfTheAccessSize) {
  EXPECT_EQ(R(0x0c), 0xffffffffu);
  EXPECT_EQ(R(0x60), 0xffffffffu);  // raise is write-only
  EXPECT_EQ(R(0x84), 0xffffffffu);  // no upper halves
  EXPECT_EQ(R(0xa0, 8), ~uint64_t{0});
  EXPECT_EQ(R(kStart), 0xffffffffu);  // the DMA buffer is not in BAR0
  EXPECT_EQ(R(Edu::kBarSize - 8, 8), ~uint64_t{0});
}

TEST_F(EduTest, FactorialIsReadyAtOnce) {
  W(kFactorial, 5);
  EXPECT_EQ(R(kStatus) & 0x1, 0u);
  EXPECT_EQ(R(kFactorial), 120u);
  W(kFactorial, 0);
  EXPECT_EQ(R(kFactorial), 1u);
}

TEST_F(EduTest, FactorialWrapsModulo2To32) {
  W(kFactorial, 13);  // 6227020800 mod 2^32
  EXPECT_EQ(R(kFactorial), 0x7328cc00u);
  W(kFactorial, 34);  // 32 factors of two
  EXPECT_EQ(R(kFactorial), 0u);
  W(kFactorial, 0xffffffff);  // must not loop 2^32 times
  EXPECT_EQ(R(kFactorial), 0u);
}

TEST_F(EduTest, FactorialRaisesIrqOnlyWhenStatusBit7IsSet) {
  W(kFactorial, 3);
  EXPECT_EQ(R(kIrqStatus), 0u);
  EXPECT_FALSE(Intx());
  W(kStatus, 0x80);
  W(kFactorial, 3);
  EXPECT_EQ(R(kIrqStatus), 0x1u);
  EXPECT_TRUE(Intx());
}

TEST_F(EduTest, StatusComputingBitIsReadOnly) {
  W(kStatus, 0x81);
  EXPECT_EQ(R(kStatus), 0x80u);
  W(kStatus, 0x01);
  EXPECT_EQ(R(kStatus), 0x00u);
}

TEST_F(EduTest, IrqStatusIsReadOnly) {
  W(kIrqStatus, 0xff);
  EXPECT_EQ(R(kIrqStatus), 0u);
  EXPECT_FALSE(Intx());
}

TEST_F(EduTest, RaiseAndAckDriveIntxLevel) {
  W(kRaise, 0x5);
  EXPECT_EQ(R(kIrqStatus), 0x5u);
  EXPECT_TRUE(Intx());
  W(kAck, 0x1);
  EXPECT_EQ(R(kIrqStatus), 0x4u);
  EXPECT_TRUE(Intx());
  W(kAck, 0x4);
  EXPECT_EQ(R(kIrqStatus), 0u);
  EXPECT_FALSE(Intx());
  EXPECT_EQ(b_.msi().TotalCount(), 0u);
}

TEST_F(EduTest, RaiseOfZeroRaisesNothing) {
  W(kRaise, 0);
  EXPECT_FALSE(Intx());
}

TEST_F(EduTest, RaiseSendsMsiWithRequesterIdWhenEnabled) {
  EnableMsi(0xfee0'1000, 0x4041);
  W(kRaise, 0x100);
  ASSERT_EQ(b_.msi().Count(kDevfn), 1u);
  EXPECT_EQ(b_.msi().Last(kDevfn)->address, 0xfee0'1000u);
  EXPECT_EQ(b_.msi().Last(kDevfn)->data, 0x4041u);
  EXPECT_FALSE(Intx());
  W(kAck, 0x100);
  EXPECT_EQ(b_.msi().TotalCount(), 1u);  // ack sends nothing
  EXPECT_EQ(R(kIrqStatus), 0u);
}

TEST_F(EduTest, EveryRaiseWithPendingStatusSendsAnotherMsi) {
  EnableMsi(0xfee0'1000, 0x41);
  W(kRaise, 0x1);
  W(kRaise, 0x1);
  EXPECT_EQ(b_.msi().Count(kDevfn), 2u);
}

TEST_F(EduTest, MsiAimedAtItsOwnBarIsBlockedNotRecursed) {
  EnableMsi(kBar + kRaise, 0x1);
  W(kRaise, 0x1);
  EXPECT_EQ(edu_->blocked_reentrant_count(), 1u);
  EXPECT_EQ(R(kIrqStatus), 0x1u);
}

// --- DMA register quirks ---------------------------------------------------

TEST_F(EduTest, DmaRegistersReadBackAtEightAndFourBytes) {
  W(kSrc, 0x1122'3344'5566'7788, 8);
  W(kDst, 0x40000, 8);
  W(kCount, 0x10, 8);
  EXPECT_EQ(R(kSrc, 8), 0x1122'3344'5566'7788u);
  EXPECT_EQ(R(kSrc, 4), 0x5566'7788u);
  EXPECT_EQ(R(kDst, 8), 0x40000u);
  EXPECT_EQ(R(kCount, 8), 0x10u);
}

TEST_F(EduTest, FourByteWritesZeroExtend) {
  for (uint64_t reg : {kSrc, kDst, kCount}) {
    W(reg, ~uint64_t{0}, 8);
    W(reg, 0x1234, 4);
    EXPECT_EQ(R(reg, 8), 0x1234u) << reg;
  }
}

TEST_F(EduTest, CommandWithoutRunBitIsIgnored) {
  W(kCmd, kToRam | kIrq, 8);
  EXPECT_EQ(R(kCmd, 8), 0u);
  EXPECT_FALSE(b_.clock().NextDeadline().has_value());
}

TEST_F(EduTest, DmaRegistersIgnoreWritesWhileRunning) {
  StartDma(0x1000, kStart, 8, kRun);
  W(kSrc, 0x5000, 8);
  W(kDst, kStart + 8, 4);
  W(kCount, 16, 8);
  W(kCmd, kRun | kToRam, 8);
  EXPECT_EQ(R(kSrc, 8), 0x1000u);
  EXPECT_EQ(R(kDst, 8), kStart);
  EXPECT_EQ(R(kCount, 8), 8u);
  EXPECT_EQ(R(kCmd, 8), kRun);
  b_.clock().Step(kDmaNs);
  W(kSrc, 0x5000, 8);
  EXPECT_EQ(R(kSrc, 8), 0x5000u);
}

// --- DMA ------------------------------------------------------------------------

TEST_F(EduTest, DmaRoundTripsThroughTheBufferAfter100Ms) {
  PutRam(0x1000, 0x1122'3344'5566'7788);
  StartDma(0x1000, kStart + 0x10, 8, kRun);
  b_.clock().Step(kDmaNs - 1);
  EXPECT_EQ(R(kCmd, 8), kRun);
  b_.clock().Step(1);
  EXPECT_EQ(R(kCmd, 8), 0u);

  StartDma(kStart + 0x10, 0x2000, 8, kRun | kToRam);
  b_.clock().Step(kDmaNs - 1);
  EXPECT_EQ(GetRam(0x2000), 0u);  // nothing before the deadline
  EXPECT_EQ(R(kCmd, 8), kRun | kToRam);
  b_.clock().Step(1);
  EXPECT_EQ(GetRam(0x2000), 0x1122'3344'5566'7788u);
  EXPECT_EQ(R(kCmd, 8), kToRam);
  EXPECT_EQ(edu_->refused_dma_count(), 0u);
}

TEST_F(EduTest, DmaCoversTheWholeBuffer) {
  std::vector<uint8_t> in(Edu::kDmaSize);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint8_t>(i * 7);
  ASSERT_TRUE(b_.system_as().Write(0x10000, in.data(), in.size()).ok());
  StartDma(0x10000, kStart, Edu::kDmaSize, kRun);
  b_.clock().Step(kDmaNs);
  StartDma(kStart, 0x20000, Edu::kDmaSize, kRun | kToRam);
  b_.clock().Step(kDmaNs);
  std::vector<uint8_t> out(Edu::kDmaSize);
  ASSERT_TRUE(b_.system_as().Read(0x20000, out.data(), out.size()).ok());
  EXPECT_EQ(out, in);
  EXPECT_EQ(edu_->refused_dma_count(), 0u);
}

TEST_F(EduTest, DmaDeadlineUsesWholeMilliseconds) {
  b_.clock().Step(kMs + kMs / 2);  // 1.5 ms
  StartDma(kStart, 0x2000, 8, kRun | kToRam);
  ASSERT_TRUE(b_.clock().NextDeadline().has_value());
  EXPECT_EQ(*b_.clock().NextDeadline(), 101 * kMs);
  b_.clock().AdvanceTo(101 * kMs - 1);
  EXPECT_EQ(R(kCmd, 8) & kRun, kRun);
  b_.clock().AdvanceTo(101 * kMs);
  EXPECT_EQ(R(kCmd, 8) & kRun, 0u);
}

TEST_F(EduTest, DmaDoneRaisesIrq0x100WhenAsked) {
  StartDma(kStart, 0x2000, 8, kRun | kToRam);
  b_.clock().Step(kDmaNs);
  EXPECT_EQ(R(kIrqStatus), 0u);
  StartDma(kStart, 0x2000, 8, kRun | kToRam | kIrq);
  b_.clock().Step(kDmaNs - 1);
  EXPECT_FALSE(Intx());
  b_.clock().Step(1);
  EXPECT_EQ(R(kIrqStatus), 0x100u);
  EXPECT_TRUE(Intx());
}

TEST_F(EduTest, DmaDoneSendsMsiWhenEnabled) {
  EnableMsi(0xfee0'2000, 0x30);
  StartDma(kStart, 0x2000, 8, kRun | kToRam | kIrq);
  b_.clock().Step(kDmaNs);
  EXPECT_EQ(b_.msi().Count(kDevfn), 1u);
  EXPECT_FALSE(Intx());
}

TEST_F(EduTest, DmaWithoutBusMasteringLeavesRamUntouched) {
  PutRam(0x1000, 0xabcd);
  StartDma(0x1000, kStart, 8, kRun);
  b_.clock().Step(kDmaNs);  // buffer now holds 0xabcd
  b_.SetCfg(kDevfn, kCfgCommand, kCommandMemory, 2);
  PutRam(0x3000, 0x7777);
  StartDma(kStart, 0x3000, 8, kRun | kToRam | kIrq);
  b_.clock().Step(kDmaNs);
  EXPECT_EQ(GetRam(0x3000), 0x7777u);
  EXPECT_EQ(R(kCmd, 8) & kRun, 0u);
  EXPECT_EQ(R(kIrqStatus), 0x100u);  // done is still signalled
  // With bus mastering back the same transfer lands.
  b_.SetCfg(kDevfn, kCfgCommand, kCommandMemory | kCommandMaster, 2);
  StartDma(kStart, 0x3000, 8, kRun | kToRam);
  b_.clock().Step(kDmaNs);
  EXPECT_EQ(GetRam(0x3000), 0xabcdu);
}

TEST_F(EduTest, DefaultDmaMaskIs256MiB) {
  EXPECT_EQ(edu_->properties().dma_mask, 0x0fff'ffffu);
  PutRam(0x4000, 0x99);
  StartDma(0x1000'4000, kStart, 8, kRun);  // 256 MiB + 0x4000 -> 0x4000
  b_.clock().Step(kDmaNs);
  StartDma(kStart, 0x5000, 8, kRun | kToRam);
  b_.clock().Step(kDmaNs);
  EXPECT_EQ(GetRam(0x5000), 0x99u);
}

TEST_F(EduTest, DmaMaskClampsTheRamAddressBothWays) {
  Replug({.dma_mask = 0xfffff});
  PutRam(0x1'0010, 0x5a);
  StartDma(0x4'0001'0010, kStart, 1, kRun);  // -> 0x10010
  b_.clock().Step(kDmaNs);
  StartDma(kStart, 0x7'0003'0000, 1, kRun | kToRam);  // -> 0x30000
  b_.clock().Step(kDmaNs);
  EXPECT_EQ(GetRam(0x3'0000), 0x5au);
  EXPECT_EQ(R(kDst, 8), 0x7'0003'0000u);  // the register keeps the value
}

TEST_F(EduTest, DmaMaskDoesNotApplyToTheDeviceSide) {
  Replug({.dma_mask = 0xffff});  // would clamp 0x40000 to 0
  StartDma(0x1000, kStart, 8, kRun);
  b_.clock().Step(kDmaNs);
  EXPECT_EQ(edu_->refused_dma_count(), 0u);
}

// --- refused DMA (deliberate difference from QEMU) --------------------------

TEST_F(EduTest, OutOfBufferDmaIsRefusedAndCounted) {
  PutRam(0x2000, 0x1111);
  struct Case {
    uint64_t dev, count;
  };
  const std::vector<Case> cases = {
      {kStart - 1, 1},                    // below the buffer
      {kStart + Edu::kDmaSize, 1},        // just past it
      {kStart + 0xff8, 0x10},             // runs off the end
      {kStart, Edu::kDmaSize + 1},        // too long
      {kStart + 8, ~uint64_t{0} - 4},     // count overflows the check
      {~uint64_t{0}, 2},                  // address overflow
      {0, 8},
  };
  uint64_t n = 0;
  for (const Case& c : cases) {
    StartDma(c.dev, 0x2000, c.count, kRun | kToRam);
    b_.clock().Step(kDmaNs);
    EXPECT_EQ(edu_->refused_dma_count(), ++n) << c.dev << " " << c.count;
    EXPECT_EQ(R(kCmd, 8) & kRun, 0u);
    StartDma(0x2000, c.dev, c.count, kRun);  // RAM -> device
    b_.clock().Step(kDmaNs);
    EXPECT_EQ(edu_->refused_dma_count(), ++n) << c.dev << " " << c.count;
  }
  EXPECT_EQ(GetRam(0x2000), 0x1111u);
}

TEST_F(EduTest, RefusedDmaStillRaisesTheDoneIrq) {
  StartDma(0x2000, 0x0, 8, kRun | kIrq);
  b_.clock().Step(kDmaNs);
  EXPECT_EQ(edu_->refused_dma_count(), 1u);
  EXPECT_EQ(R(kIrqStatus), 0x100u);
  EXPECT_TRUE(Intx());
}

TEST_F(EduTest, ZeroLengthDmaAtTheBufferEndIsAccepted) {
  StartDma(kStart + Edu::kDmaSize, 0x2000, 0, kRun | kToRam);
  b_.clock().Step(kDmaNs);
  // The range [0x41000, 0x41000) is empty, so it is inside.
  EXPECT_EQ(edu_->refused_dma_count(), 0u);
}

// --- reset and unplug -------------------------------------------------------

TEST_F(EduTest, ResetKeepsRegistersAsQemuAndUnmapsBar) {
  W(kLiveness, 0x1);
  W(kStatus, 0x80);
  b_.bus().Reset();
  EXPECT_FALSE(edu_->BarMappedAddress(0).has_value());
  b_.SetCfg(kDevfn, kCfgBar0, kBar, 4);
  b_.SetCfg(kDevfn, kCfgCommand, kCommandMemory, 2);
  EXPECT_EQ(R(kLiveness), 0xfffffffeu);
  EXPECT_EQ(R(kStatus), 0x80u);
}

TEST_F(EduTest, DmaPendingAcrossResetReachesNothing) {
  PutRam(0x1000, 0x1234);
  StartDma(0x1000, kStart, 8, kRun);
  b_.clock().Step(kDmaNs);
  PutRam(0x3000, 0x5555);
  StartDma(kStart, 0x3000, 8, kRun | kToRam);
  b_.bus().Reset();  // bus mastering off
  b_.clock().Step(kDmaNs);
  EXPECT_EQ(GetRam(0x3000), 0x5555u);
  b_.SetCfg(kDevfn, kCfgBar0, kBar, 4);
  b_.SetCfg(kDevfn, kCfgCommand, kCommandMemory, 2);
  EXPECT_EQ(R(kCmd, 8) & kRun, 0u);
}

TEST_F(EduTest, PowerOnResetForgetsRegistersBufferAndPendingDma) {
  PutRam(0x1000, 0x1234);
  StartDma(0x1000, kStart, 8, kRun);
  b_.clock().Step(kDmaNs);  // the buffer holds 0x1234
  W(kLiveness, 0x1);
  W(kStatus, 0x80);
  W(kRaise, 0x2);
  StartDma(kStart, 0x3000, 8, kRun | kToRam);  // pending
  b_.bus().Reset();
  edu_->PowerOnReset();
  EXPECT_FALSE(b_.clock().NextDeadline().has_value());
  EXPECT_FALSE(Intx());
  b_.SetCfg(kDevfn, kCfgBar0, kBar, 4);
  b_.SetCfg(kDevfn, kCfgCommand, kCommandMemory | kCommandMaster, 2);
  EXPECT_EQ(R(kLiveness), 0u);  // as a new edu
  EXPECT_EQ(R(kStatus), 0u);
  EXPECT_EQ(R(kIrqStatus), 0u);
  EXPECT_EQ(R(kCmd, 8), 0u);
  StartDma(kStart, 0x3000, 8, kRun | kToRam);
  b_.clock().Step(kDmaNs);
  EXPECT_EQ(GetRam(0x3000), 0u);  // the buffer is zero again
}

TEST_F(EduTest, UnplugCancelsAPendingDma) {
  StartDma(kStart, 0x3000, 8, kRun | kToRam | kIrq);
  absl::StatusOr<std::unique_ptr<pci::PciDevice>> dev =
      b_.bus().Unplug(kDevfn);
  ASSERT_TRUE(dev.ok());
  EXPECT_FALSE(b_.clock().NextDeadline().has_value());
  b_.clock().Step(kDmaNs);
  EXPECT_FALSE(Intx());
}

// --- properties ---------------------------------------------------------------

TEST(EduPropertiesTest, DmaMaskAcceptsDecimalHexAndOctal) {
  EXPECT_EQ(Edu::ParseProperties({{"dma_mask", "4095"}})->dma_mask, 4095u);
  EXPECT_EQ(Edu::ParseProperties({{"dma_mask", "0xFfF"}})->dma_mask, 4095u);
  EXPECT_EQ(Edu::ParseProperties({{"dma_mask", "0X10"}})->dma_mask, 16u);
  EXPECT_EQ(Edu::ParseProperties({{"dma_mask", "010"}})->dma_mask, 8u);
  EXPECT_EQ(Edu::ParseProperties({{"dma_mask", "0"}})->dma_mask, 0u);
  EXPECT_EQ(
      Edu::ParseProperties({{"dma_mask", "0xffffffffffffffff"}})->dma_mask,
      ~uint64_t{0});
  EXPECT_EQ(Edu::ParseProperties({})->dma_mask, 0x0fff'ffffu);
}

TEST(EduPropertiesTest, BadDmaMaskIsInvalidArgumentNamingIt) {
  for (const char* bad : {"", "12x", "0x", "-1", "+1", " 1", "0x-1", "08",
                          "0x10000000000000000", "18446744073709551616"}) {
    absl::StatusOr<Edu::Properties> p =
        Edu::ParseProperties({{"dma_mask", bad}});
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(p.status().message(), HasSubstr("edu.dma_mask")) << bad;
  }
}

TEST(EduPropertiesTest, UnknownPropertyIsInvalidArgumentNamingIt) {
  absl::StatusOr<std::unique_ptr<Edu>> edu =
      Edu::CreateFromProperties({{"colour", "red"}});
  EXPECT_EQ(edu.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(edu.status().message(),
              HasSubstr("Property 'edu.colour' not found"));
}

TEST(EduPropertiesTest, CreateFromPropertiesAppliesThem) {
  absl::StatusOr<std::unique_ptr<Edu>> edu =
      Edu::CreateFromProperties({{"dma_mask", "0xffffffff"}});
  ASSERT_TRUE(edu.ok());
  EXPECT_EQ((*edu)->properties().dma_mask, 0xffffffffu);
}

}  // namespace
}  // namespace viommu::hw::misc
