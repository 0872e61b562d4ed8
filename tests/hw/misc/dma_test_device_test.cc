// dma-testdev on a real PciBus (RAM, MSI window), driven through
// configuration space and BAR0 as a guest would.
#include "viommu/hw/misc/dma_test_device.h"

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/hw/pci/fake_pci_device.h"
#include "viommu/hw/core/msi.h"
#include "viommu/hw/pci/pci_regs.h"

namespace viommu::hw::misc {
namespace {

using ::testing::HasSubstr;
using pci::kCfgBar0;
using pci::kCfgClassProg;
using pci::kCfgCommand;
using pci::kCfgDeviceId;
using pci::kCfgInterruptPin;
using pci::kCfgVendorId;
using pci::kCommandMaster;
using pci::kCommandMemory;
using pci::testing::PciTestBench;

constexpr uint8_t kDevfn = 0x28;  // 05.0
constexpr uint64_t kBar = 0xfe00'0000;
// BAR0 offsets.
constexpr uint64_t kId = 0x00, kIova = 0x08, kIovaHi = 0x0c, kLen = 0x10,
                   kOffset = 0x14, kCmd = 0x18, kResult = 0x1c, kCount = 0x20,
                   kRid = 0x24, kBuf = DmaTestDevice::kBufferOffset;
constexpr uint32_t kRead = 1, kWrite = 2;

class DmaTestDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<pci::PciDevice*> dev =
        b_.bus().Plug(std::make_unique<DmaTestDevice>(), kDevfn);
    ASSERT_TRUE(dev.ok()) << dev.status();
    dev_ = static_cast<DmaTestDevice*>(*dev);
    b_.SetCfg(kDevfn, kCfgBar0, kBar, 4);
    b_.SetCfg(kDevfn, kCfgCommand, kCommandMemory | kCommandMaster, 2);
  }

  uint64_t R(uint64_t off, unsigned size = 4) {
    uint64_t v = 0;
    EXPECT_TRUE(b_.MemRead(kBar + off, &v, size).ok()) << off;
    return v;
  }
  void W(uint64_t off, uint64_t v, unsigned size = 4) {
    EXPECT_TRUE(b_.MemWrite(kBar + off, v, size).ok()) << off;
  }
  // Programs IOVA/LEN/OFFSET, issues `cmd` and returns RESULT.
  uint32_t Dma(uint64_t iova, uint32_t len, uint32_t cmd,
               uint32_t offset = 0) {
    W(kIova, iova, 8);
    W(kLen, len);
    W(kOffset, offset);
    W(kCmd, cmd);
    return static_cast<uint32_t>(R(kResult));
  }
  uint64_t GetRam(uint64_t addr) {
    uint64_t v = 0;
    EXPECT_TRUE(b_.MemRead(addr, &v, 8).ok());
    return v;
  }

  PciTestBench b_;
  DmaTestDevice* dev_ = nullptr;
};

TEST_F(DmaTestDeviceTest, ConfigSpaceIdentifiesIt) {
  EXPECT_EQ(b_.Cfg(kDevfn, kCfgVendorId, 2), 0x1b36u);
  EXPECT_EQ(b_.Cfg(kDevfn, kCfgDeviceId, 2), 0x10f0u);
  EXPECT_EQ(b_.Cfg(kDevfn, kCfgClassProg, 4) & 0xffffff, 0x00ff00u);
  EXPECT_EQ(b_.Cfg(kDevfn, kCfgInterruptPin, 1), 0u);
  EXPECT_EQ(dev_->type_name(), "dma-testdev");
}

TEST_F(DmaTestDeviceTest, Bar0IsEightKibibytesOf32BitMemory) {
  b_.SetCfg(kDevfn, kCfgBar0, 0xffffffff, 4);
  EXPECT_EQ(b_.Cfg(kDevfn, kCfgBar0, 4), 0xffffe000u);
}

TEST_F(DmaTestDeviceTest, IdleRegistersReadTheirResetValues) {
  EXPECT_EQ(R(kId), DmaTestDevice::kId);
  EXPECT_EQ(R(kResult), DmaTestDevice::kResultIdle);
  EXPECT_EQ(R(kCount), 0u);
  EXPECT_EQ(R(kRid), kDevfn);
  EXPECT_EQ(R(kCmd), 0u);
}

TEST_F(DmaTestDeviceTest, ReadCopiesGuestMemoryIntoTheBuffer) {
  ASSERT_TRUE(b_.MemWrite(0x3000, 0x0102'0304'0506'0708, 8).ok());
  EXPECT_EQ(Dma(0x3000, 8, kRead, /*offset=*/0x10), 0u);
  EXPECT_EQ(R(kBuf + 0x10, 8), 0x0102'0304'0506'0708u);
  EXPECT_EQ(R(kBuf, 8), 0u);
  EXPECT_EQ(R(kCount), 1u);
}

TEST_F(DmaTestDeviceTest, WriteCopiesTheBufferIntoGuestMemory) {
  W(kBuf + 0x20, 0xa1b2'c3d4'e5f6'0718, 8);
  EXPECT_EQ(Dma(0x4000, 8, kWrite, /*offset=*/0x20), 0u);
  EXPECT_EQ(GetRam(0x4000), 0xa1b2'c3d4'e5f6'0718u);
}

TEST_F(DmaTestDeviceTest, WholeBufferRoundTrips) {
  std::vector<uint8_t> in(DmaTestDevice::kBufferSize);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint8_t>(i * 3);
  ASSERT_TRUE(b_.system_as().Write(0x10000, in.data(), in.size()).ok());
  EXPECT_EQ(Dma(0x10000, 4096, kRead), 0u);
  EXPECT_EQ(Dma(0x20000, 4096, kWrite), 0u);
  std::vector<uint8_t> out(in.size());
  ASSERT_TRUE(b_.system_as().Read(0x20000, out.data(), out.size()).ok());
  EXPECT_EQ(out, in);
}

TEST_F(DmaTestDeviceTest, BadLengthOrOffsetIsRefusedWithoutCopying) {
  ASSERT_TRUE(b_.MemWrite(0x3000, 0x77, 8).ok());
  struct Case {
    uint32_t len, offset;
  };
  for (const Case& c : std::vector<Case>{{0, 0},
                                         {4097, 0},
                                         {0xffffffff, 0},
                                         {0x10, 0xff8},
                                         {1, 4096},
                                         {8, 0xfffffffc}}) {
    EXPECT_EQ(Dma(0x3000, c.len, kWrite, c.offset),
              DmaTestDevice::kResultBadLength)
        << c.len << " " << c.offset;
    EXPECT_EQ(Dma(0x3000, c.len, kRead, c.offset),
              DmaTestDevice::kResultBadLength);
  }
  EXPECT_EQ(GetRam(0x3000), 0x77u);
  EXPECT_EQ(R(kBuf, 8), 0u);
  EXPECT_EQ(R(kCount), 12u);  // refused commands are counted too
}

TEST_F(DmaTestDeviceTest, LastByteOfTheBufferIsUsable) {
  W(kBuf + 0xfff, 0x5a, 1);
  EXPECT_EQ(Dma(0x5000, 1, kWrite, 0xfff), 0u);
  EXPECT_EQ(GetRam(0x5000) & 0xff, 0x5au);
}

TEST_F(DmaTestDeviceTest, UnknownCommandIsRefused) {
  for (uint32_t cmd : {0u, 3u, 7u, 0xffffffffu}) {
    EXPECT_EQ(Dma(0x3000, 8, cmd), DmaTestDevice::kResultBadCommand) << cmd;
  }
}

TEST_F(DmaTestDeviceTest, UnmappedIovaIsADecodeError) {
  EXPECT_EQ(Dma(0xf000'0000, 8, kRead), 2u);
  EXPECT_EQ(Dma(0xf000'0000, 8, kWrite), 2u);
  EXPECT_EQ(Dma(~uint64_t{0} - 3, 8, kRead), 2u);  // wraps past 2^64
}

TEST_F(DmaTestDeviceTest, DmaRunningOffTheEndOfRamIsADecodeError) {
  EXPECT_EQ(Dma(pci::testing::kBenchRamSize - 4, 8, kRead), 2u);
}

TEST_F(DmaTestDeviceTest, NoBusMasteringIsADecodeErrorAndCopiesNothing) {
  ASSERT_TRUE(b_.MemWrite(0x3000, 0x1234, 8).ok());
  W(kBuf, 0x9999, 8);
  b_.SetCfg(kDevfn, kCfgCommand, kCommandMemory, 2);
  EXPECT_EQ(Dma(0x3000, 8, kWrite), 2u);
  EXPECT_EQ(GetRam(0x3000), 0x1234u);
}

TEST_F(DmaTestDeviceTest, DmaCarriesTheRequesterId) {
  W(kBuf, 0x4041, 4);
  EXPECT_EQ(Dma(kMsiWindowBase + 0x1000, 4, kWrite), 0u);
  ASSERT_EQ(b_.msi().Count(kDevfn), 1u);
  EXPECT_EQ(b_.msi().Last(kDevfn)->data, 0x4041u);
}

TEST_F(DmaTestDeviceTest, DmaAimedAtItsOwnBarIsBlocked) {
  W(kBuf, kWrite, 4);
  EXPECT_EQ(Dma(kBar + kCmd, 4, kWrite), 4u);  // access error, no recursion
  EXPECT_EQ(dev_->blocked_reentrant_count(), 1u);
  EXPECT_EQ(R(kCount), 1u);
  EXPECT_EQ(Dma(kBar + kBuf + 0x100, 8, kRead), 4u);
}

TEST_F(DmaTestDeviceTest, IovaTakesEightByteOrTwoFourByteAccesses) {
  W(kIova, 0x1122'3344'5566'7788, 8);
  EXPECT_EQ(R(kIova, 8), 0x1122'3344'5566'7788u);
  EXPECT_EQ(R(kIova), 0x5566'7788u);
  EXPECT_EQ(R(kIovaHi), 0x1122'3344u);
  W(kIovaHi, 0xaabbccdd);
  W(kIova, 0x01020304);
  EXPECT_EQ(R(kIova, 8), 0xaabb'ccdd'0102'0304u);
}

TEST_F(DmaTestDeviceTest, OtherRegisterAccessSizesAreIgnoredAndReadAllOnes) {
  W(kLen, 0x10);
  W(kLen, 0xff, 1);
  W(kLen, 0xffff, 2);
  W(kLen, 0xff, 8);
  EXPECT_EQ(R(kLen), 0x10u);
  EXPECT_EQ(R(kLen, 1), 0xffu);
  EXPECT_EQ(R(kLen, 2), 0xffffu);
  EXPECT_EQ(R(kLen, 8), ~uint64_t{0});
  EXPECT_EQ(R(0x28), 0xffffffffu);
  EXPECT_EQ(R(0xffc), 0xffffffffu);
  W(kCmd, kRead, 8);  // not a command
  EXPECT_EQ(R(kCount), 0u);
}

TEST_F(DmaTestDeviceTest, BufferTakesEveryAccessSizeLittleEndian) {
  W(kBuf + 0x8, 0x1122'3344'5566'7788, 8);
  EXPECT_EQ(R(kBuf + 0x8, 1), 0x88u);
  EXPECT_EQ(R(kBuf + 0xa, 2), 0x5566u);
  EXPECT_EQ(R(kBuf + 0xc, 4), 0x1122'3344u);
  W(kBuf + 0x9, 0xee, 1);
  EXPECT_EQ(R(kBuf + 0x8, 8), 0x1122'3344'5566'ee88u);
  W(kBuf + 0xff8, ~uint64_t{0}, 8);
  EXPECT_EQ(R(kBuf + 0xff8, 8), ~uint64_t{0});
}

TEST_F(DmaTestDeviceTest, ResetClearsRegistersAndBuffer) {
  W(kBuf, 0x42, 8);
  EXPECT_EQ(Dma(0x3000, 8, kRead), 0u);
  b_.bus().Reset();
  b_.SetCfg(kDevfn, kCfgBar0, kBar, 4);
  b_.SetCfg(kDevfn, kCfgCommand, kCommandMemory, 2);
  EXPECT_EQ(R(kIova, 8), 0u);
  EXPECT_EQ(R(kLen), 0u);
  EXPECT_EQ(R(kResult), DmaTestDevice::kResultIdle);
  EXPECT_EQ(R(kCount), 0u);
  EXPECT_EQ(R(kBuf, 8), 0u);
}

TEST(DmaTestDevicePropertiesTest, AnyPropertyIsInvalidArgument) {
  EXPECT_TRUE(DmaTestDevice::CreateFromProperties({}).ok());
  absl::StatusOr<std::unique_ptr<DmaTestDevice>> dev =
      DmaTestDevice::CreateFromProperties({{"len", "4"}});
  EXPECT_EQ(dev.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dev.status().message(),
              HasSubstr("Property 'dma-testdev.len' not found"));
}

}  // namespace
}  // namespace viommu::hw::misc
