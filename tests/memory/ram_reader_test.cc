// RamReader: reads RAM of the map held at construction, remembers the
// last RAM range, and fails (zero-filled) on anything that is not RAM.
#include "viommu/memory/ram_reader.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fakes/fake_mmio_device.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::memory {
namespace {

using testing::FakeMmioDevice;

class RamReaderTest : public ::testing::Test {
 protected:
  RamReaderTest()
      : root_(MemoryRegion::CreateContainer(&sys_, "root", kSize2To64)),
        low_(*MemoryRegion::CreateRam(&sys_, "low", 0x2000)),
        high_(*MemoryRegion::CreateRam(&sys_, "high", 0x1000)),
        mmio_(MemoryRegion::CreateMmio(&sys_, "mmio", 0x1000, &dev_)),
        bar_(MemoryRegion::CreateRamDevice(&sys_, "bar", 0x1000,
                                           bar_bytes_.data())) {
    root_->AddSubregion(0x0, low_);
    root_->AddSubregion(0x2000, high_);  // adjacent, another region
    root_->AddSubregion(0x10000, mmio_);
    root_->AddSubregion(0x20000, bar_);
    as_ = std::make_unique<AddressSpace>(&sys_, root_, "as");
    for (uint32_t i = 0; i < 0x2000; ++i) low_->host()[i] = uint8_t(i);
    for (uint32_t i = 0; i < 0x1000; ++i) high_->host()[i] = uint8_t(~i);
  }

  MemorySystem sys_;
  FakeMmioDevice dev_{0x1000};
  std::vector<uint8_t> bar_bytes_ = std::vector<uint8_t>(0x1000, 0x5a);
  std::shared_ptr<MemoryRegion> root_, low_, high_, mmio_, bar_;
  std::unique_ptr<AddressSpace> as_;
};

TEST_F(RamReaderTest, ReadsRamAgainAndAcrossRegions) {
  RamReader ram(as_.get());
  uint64_t v = 0;
  ASSERT_TRUE(ram.Read(0x10, &v, 8));
  EXPECT_EQ(v, 0x1716151413121110u);
  ASSERT_TRUE(ram.Read(0x1ff8, &v, 8));  // same range, remembered
  EXPECT_EQ(v, 0xfffefdfcfbfaf9f8u);
  ASSERT_TRUE(ram.Read(0x2000, &v, 8));  // the next region
  EXPECT_EQ(v, 0xf8f9fafbfcfdfeffu);
  uint8_t span[4];
  ASSERT_TRUE(ram.Read(0x1ffe, span, 4));  // over both regions
  EXPECT_EQ(span[0], 0xfe);
  EXPECT_EQ(span[2], 0xff);
}

TEST_F(RamReaderTest, NotRamFailsZeroFilledWithoutDispatch) {
  RamReader ram(as_.get());
  uint64_t v = ~uint64_t{0};
  EXPECT_FALSE(ram.Read(0x10000, &v, 8));  // MMIO: never dispatched
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(dev_.accesses().empty());
  v = ~uint64_t{0};
  EXPECT_FALSE(ram.Read(0x20000, &v, 8));  // ram_device
  EXPECT_EQ(v, 0u);
  v = ~uint64_t{0};
  EXPECT_FALSE(ram.Read(0x5000, &v, 8));  // unassigned
  EXPECT_EQ(v, 0u);
  EXPECT_FALSE(ram.Read(0x2ffc, &v, 8));  // runs off the end of RAM
}

TEST_F(RamReaderTest, KeepsTheMapItWasMadeWith) {
  RamReader ram(as_.get());
  uint64_t v = 0;
  ASSERT_TRUE(ram.Read(0x2000, &v, 8));
  root_->RemoveSubregion(high_.get());  // a new map without it
  uint64_t now = 0;
  EXPECT_FALSE(as_->ReadRam(0x2008, &now, 8).ok());
  ASSERT_TRUE(ram.Read(0x2008, &v, 8));  // held map: still there
  EXPECT_EQ(v, 0xf0f1f2f3f4f5f6f7u);
  RamReader fresh(as_.get());
  EXPECT_FALSE(fresh.Read(0x2008, &v, 8));
}

}  // namespace
}  // namespace viommu::memory
