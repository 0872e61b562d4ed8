// RamWindow (vtd_ram_window.h): ReadRam's answers, remembered RAM ranges
// forgotten on every memory-map commit, removed RAM kept alive, and the
// pinned list bounded by the distinct ranges.
#include "viommu/hw/iommu/vtd_ram_window.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <utility>

#include "gtest/gtest.h"
#include "tests/fakes/fake_mmio_device.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/memory/mmio_ops.h"
#include "viommu/util/types.h"

namespace viommu::vtd {
namespace {

class VtdRamWindowTest : public ::testing::Test {
 protected:
  VtdRamWindowTest() {
    root_ = memory::MemoryRegion::CreateContainer(&sys_, "root", kSize2To64);
    ram_ = *memory::MemoryRegion::CreateRam(&sys_, "ram", 1 << 20);
    root_->AddSubregion(0, ram_);
    as_ = std::make_unique<memory::AddressSpace>(&sys_, root_, "memory");
    window_ = std::make_unique<RamWindow>(as_.get());
    std::fill(mmio_ops_.bytes().begin(), mmio_ops_.bytes().end(), 0x5a);
  }
  ~VtdRamWindowTest() override { window_.reset(); }
  void Put(uint64_t gpa, uint64_t v) {
    ASSERT_TRUE(as_->Write(gpa, &v, 8).ok());
  }

  memory::MemorySystem sys_;
  // MMIO that reads 0x5a bytes if it is ever dispatched (it must not be).
  memory::testing::FakeMmioDevice mmio_ops_{0x1000};
  std::shared_ptr<memory::MemoryRegion> root_;
  std::shared_ptr<memory::MemoryRegion> ram_;
  std::unique_ptr<memory::AddressSpace> as_;
  std::unique_ptr<RamWindow> window_;
};

TEST_F(VtdRamWindowTest, ReadsRamAndRemembersItsRange) {
  Put(0x1000, 0x1122334455667788);
  Put(0x8000, 0x99);
  EXPECT_EQ(window_->RememberedForTesting(), 0u);
  uint64_t v = 0;
  ASSERT_TRUE(window_->ReadInline(0x1000, &v, 8));
  EXPECT_EQ(v, 0x1122334455667788u);
  EXPECT_EQ(window_->RememberedForTesting(), 1u);
  ASSERT_TRUE(window_->ReadInline(0x8000, &v, 8));  // the same range
  EXPECT_EQ(v, 0x99u);
  EXPECT_EQ(window_->RememberedForTesting(), 1u);
  // A guest write after the range was remembered is seen at once.
  Put(0x1000, 7);
  ASSERT_TRUE(window_->ReadInline(0x1000, &v, 8));
  EXPECT_EQ(v, 7u);
}

TEST_F(VtdRamWindowTest, MmioAndUnassignedFailAndReadAsZeroAsReadRam) {
  root_->AddSubregion(0x20'0000, memory::MemoryRegion::CreateMmio(
                                     &sys_, "mmio", 0x1000, &mmio_ops_));
  uint64_t v = 1;
  EXPECT_FALSE(window_->ReadInline(0x20'0000, &v, 8));
  EXPECT_EQ(v, 0u);
  v = 1;
  EXPECT_FALSE(window_->ReadInline(0x30'0000, &v, 8));
  EXPECT_EQ(v, 0u);
  EXPECT_EQ(window_->RememberedForTesting(), 0u);  // nothing but RAM
  // Straddling the end of RAM: fails (ReadRam's answer) although the RAM
  // range holding the first byte is remembered now.
  EXPECT_FALSE(window_->ReadInline((1 << 20) - 4, &v, 8));
  EXPECT_EQ(window_->RememberedForTesting(), 1u);
  EXPECT_FALSE(window_->ReadInline((1 << 20) - 4, &v, 8));
  EXPECT_TRUE(mmio_ops_.accesses().empty());  // never dispatched
}

TEST_F(VtdRamWindowTest, MapChangeForgetsTheRange) {
  uint64_t v = 0;
  Put(0x2000, 0x42);
  ASSERT_TRUE(window_->ReadInline(0x2000, &v, 8));
  ASSERT_EQ(window_->RememberedForTesting(), 1u);
  // MMIO laid over the RAM page: the next read must see the new map.
  auto over =
      memory::MemoryRegion::CreateMmio(&sys_, "over", 0x1000, &mmio_ops_);
  root_->AddSubregionOverlap(0x2000, over, 1);
  EXPECT_EQ(window_->RememberedForTesting(), 0u);
  EXPECT_FALSE(window_->ReadInline(0x2000, &v, 8));
  root_->RemoveSubregion(over.get());
  ASSERT_TRUE(window_->ReadInline(0x2000, &v, 8));
  EXPECT_EQ(v, 0x42u);
}

TEST_F(VtdRamWindowTest, RemovedRamStaysAliveWhileRemembered) {
  uint64_t v = 0;
  Put(0x3000, 0x77);
  ASSERT_TRUE(window_->ReadInline(0x3000, &v, 8));
  std::weak_ptr<memory::MemoryRegion> weak = ram_;
  root_->RemoveSubregion(ram_.get());
  ram_.reset();
  // Pinned by the window's list (a reader may still copy from it).
  EXPECT_FALSE(weak.expired());
  EXPECT_FALSE(window_->ReadInline(0x3000, &v, 8));  // no longer mapped
  window_.reset();
  EXPECT_TRUE(weak.expired());
}

TEST_F(VtdRamWindowTest, PinnedListBoundedByDistinctRanges) {
  auto mmio =
      memory::MemoryRegion::CreateMmio(&sys_, "bar", 0x1000, &mmio_ops_);
  uint64_t v = 0;
  for (int i = 0; i < 100; ++i) {
    // An unrelated map change (a BAR moving) between reads.
    if (i % 2 == 0) {
      root_->AddSubregion(0x40'0000, mmio);
    } else {
      root_->RemoveSubregion(mmio.get());
    }
    ASSERT_TRUE(window_->ReadInline(0x1000, &v, 8));
  }
  EXPECT_EQ(window_->PinnedForTesting(), 1u);
}

TEST_F(VtdRamWindowTest, ReadAcrossTwoRamRegionsGoesThroughReadRam) {
  auto high = *memory::MemoryRegion::CreateRam(&sys_, "high", 0x1000);
  root_->AddSubregion(1 << 20, high);
  Put((1 << 20) - 8, 0x1111);
  Put(1 << 20, 0x2222);
  uint64_t v[2] = {0, 0};
  ASSERT_TRUE(window_->ReadInline((1 << 20) - 8, v, 16));
  EXPECT_EQ(v[0], 0x1111u);
  EXPECT_EQ(v[1], 0x2222u);
}

TEST_F(VtdRamWindowTest, ConcurrentReadsDuringMapChangesSeeRam) {
  // DMA-like readers while the control thread moves an unrelated BAR
  // (every move is a commit that forgets the ranges): each read returns
  // the RAM value, never a failure or another value.
  Put(0x5000, 0xfeedface);
  auto bar = memory::MemoryRegion::CreateMmio(&sys_, "bar", 0x1000, &mmio_ops_);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::atomic<int> reading{0};  // readers past their first read
  auto reader = [&] {
    bool first = true;
    while (!stop.load(std::memory_order_relaxed)) {
      uint64_t v = 0;
      if (!window_->ReadInline(0x5000, &v, 8) || v != 0xfeedface) {
        bad.fetch_add(1);
      }
      if (std::exchange(first, false)) reading.fetch_add(1);
    }
  };
  std::thread a(reader), b(reader);
  // Both readers have read (and remembered the range) before the commits
  // start: on a loaded machine a thread may not run before the loop ends.
  while (reading.load() != 2) std::this_thread::yield();
  for (int i = 0; i < 2000; ++i) {
    if (i % 2 == 0) {
      root_->AddSubregion(0x40'0000, bar);
    } else {
      root_->RemoveSubregion(bar.get());
    }
  }
  stop = true;
  a.join();
  b.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(window_->PinnedForTesting(), 1u);
}

}  // namespace
}  // namespace viommu::vtd
