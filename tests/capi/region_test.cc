// The C API's guest memory regions, the MMIO entry point and
// transactions.
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/capi/capi_fixture.h"
#include "viommu.h"

namespace viommu::capi::testing {
namespace {

using CapiRegionTest = CapiTest;

using Device = RecordingDevice;

viommu_region Mmio(uint64_t gpa, uint64_t len, Device* d) {
  return CallbackRegion(gpa, len, d);
}

TEST_F(CapiRegionTest, MmioAccessReachesTheRegionsCallbacks) {
  Device d;
  viommu_region r = Mmio(0x2000'0000, 0x1000, &d);
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  EXPECT_NE(id, 0u);
  uint64_t v = 0xabcd;
  ASSERT_EQ(viommu_mmio_access(ctx_, 0x2000'0010, &v, 2, 1), 0);
  ASSERT_EQ(viommu_mmio_access(ctx_, 0x2000'0008, &v, 8, 0), 0);
  EXPECT_EQ(v, 0x1122334455667788u);
  ASSERT_EQ(d.log.size(), 2u);
  EXPECT_EQ(d.log[0], "w 16/2=43981");
  EXPECT_EQ(d.log[1], "r 8/8");
}

TEST_F(CapiRegionTest, MmioAccessWhereNothingIsOursIsEnoent) {
  uint64_t v = 0;
  EXPECT_EQ(viommu_mmio_access(ctx_, 0x3000'0000, &v, 4, 0), -ENOENT);
  EXPECT_EQ(viommu_mmio_access(ctx_, 0x3000'0000, &v, 4, 1), -ENOENT);
}

TEST_F(CapiRegionTest, MmioAccessOfABadSizeIsEinval) {
  uint64_t v = 0;
  EXPECT_EQ(viommu_mmio_access(ctx_, 0, &v, 3, 0), -EINVAL);
  EXPECT_EQ(viommu_mmio_access(ctx_, 0, nullptr, 4, 0), -EINVAL);
}

TEST_F(CapiRegionTest, MmioCallbackErrorIsEio) {
  Device d;
  d.result = 1;
  viommu_region r = Mmio(0x2000'0000, 0x1000, &d);
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  uint64_t v = 0;
  EXPECT_EQ(viommu_mmio_access(ctx_, 0x2000'0000, &v, 4, 0), -EIO);
}

TEST_F(CapiRegionTest, RamIsReachedThroughMmioAccessToo) {
  AddRam();
  ram_[0x100] = 0x5a;
  uint64_t v = 0;
  ASSERT_EQ(viommu_mmio_access(ctx_, 0x100, &v, 1, 0), 0);
  EXPECT_EQ(v, 0x5au);
}

TEST_F(CapiRegionTest, OverlappingRegionsAreEexist) {
  AddRam();
  Device d;
  viommu_region r = Mmio(kRamSize - 0x1000, 0x2000, &d);
  uint32_t id = 0;
  EXPECT_EQ(viommu_region_add(ctx_, &r, &id), -EEXIST);
  EXPECT_TRUE(rec_.LogContains("overlaps 'ram'"));
  r = Mmio(0xfee0'0000, 0x1000, &d);  // the MSI window
  EXPECT_EQ(viommu_region_add(ctx_, &r, &id), -EEXIST);
}

TEST_F(CapiRegionTest, MalformedRegionsAreEinval) {
  Device d;
  uint32_t id = 0;
  viommu_region r = Mmio(0x1000, 0, &d);
  EXPECT_EQ(viommu_region_add(ctx_, &r, &id), -EINVAL);  // len 0
  r = Mmio(UINT64_MAX - 0xfff, 0x2000, &d);
  EXPECT_EQ(viommu_region_add(ctx_, &r, &id), -EINVAL);  // wraps
  r = Mmio(0x1000, 0x1000, &d);
  r.kind = 9;
  EXPECT_EQ(viommu_region_add(ctx_, &r, &id), -EINVAL);
  r = Mmio(0x1000, 0x1000, &d);
  r.flags = VIOMMU_REGION_F_READONLY;
  EXPECT_EQ(viommu_region_add(ctx_, &r, &id), -EINVAL);  // RAM only
  r = Mmio(0x1000, 0x1000, &d);
  r.flags = 1u << 7;
  EXPECT_EQ(viommu_region_add(ctx_, &r, &id), -EINVAL);
  r = Mmio(0x1000, 0x1000, &d);
  r.read = nullptr;
  EXPECT_EQ(viommu_region_add(ctx_, &r, &id), -EINVAL);
  r = Mmio(0x1000, 0x1000, &d);
  r.kind = VIOMMU_REGION_RAM;  // without hva
  EXPECT_EQ(viommu_region_add(ctx_, &r, &id), -EINVAL);
  r = Mmio(0x1000, 0x1000, &d);
  r.size = 8;
  EXPECT_EQ(viommu_region_add(ctx_, &r, &id), -EINVAL);
  EXPECT_EQ(viommu_region_add(ctx_, nullptr, &id), -EINVAL);
  r = Mmio(0x1000, 0x1000, &d);
  EXPECT_EQ(viommu_region_add(ctx_, &r, nullptr), -EINVAL);
}

TEST_F(CapiRegionTest, DelOfAnUnknownIdIsEnoent) {
  EXPECT_EQ(viommu_region_del(ctx_, 42), -ENOENT);
}

TEST_F(CapiRegionTest, DelRemovesTheRegionAndFreesItsRange) {
  Device d;
  viommu_region r = Mmio(0x2000'0000, 0x1000, &d);
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  ASSERT_EQ(viommu_region_del(ctx_, id), 0);
  uint64_t v = 0;
  EXPECT_EQ(viommu_mmio_access(ctx_, 0x2000'0000, &v, 4, 0), -ENOENT);
  EXPECT_TRUE(d.log.empty());
  uint32_t id2 = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id2), 0);
  EXPECT_NE(id2, id);
}

TEST_F(CapiRegionTest, ReadonlyRamDropsWritesWithEio) {
  viommu_region r{};
  r.size = sizeof(r);
  r.kind = VIOMMU_REGION_RAM;
  r.flags = VIOMMU_REGION_F_READONLY;
  r.gpa = 0;
  r.len = 0x1000;
  r.hva = ram_;
  r.fd = -1;
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  uint64_t v = 0xff;
  EXPECT_EQ(viommu_mmio_access(ctx_, 0x10, &v, 1, 1), -EIO);
  EXPECT_EQ(ram_[0x10], 0);
}

TEST_F(CapiRegionTest, RemoveAndAddInATransactionLeaveNoHole) {
  // Two 8 KiB RAM mappings of different host memory at the same GPA.
  viommu_region a{};
  a.size = sizeof(a);
  a.kind = VIOMMU_REGION_RAM;
  a.gpa = 0x10000;
  a.len = 0x2000;
  a.hva = ram_;
  a.fd = -1;
  viommu_region b = a;
  b.hva = ram_ + 0x4000;
  ram_[0] = 0xaa;
  ram_[0x4000] = 0xbb;
  uint32_t ida = 0, idb = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &a, &ida), 0);
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, nullptr, &ep), 0);

  ASSERT_EQ(viommu_transaction_begin(ctx_), 0);
  ASSERT_EQ(viommu_region_del(ctx_, ida), 0);
  ASSERT_EQ(viommu_region_add(ctx_, &b, &idb), 0);  // no overlap with a now
  // DMA still sees the map published before the transaction.
  uint8_t byte = 0;
  ASSERT_EQ(viommu_dma_rw(ep, 0x10000, &byte, 1, VIOMMU_DMA_READ, nullptr), 0);
  EXPECT_EQ(byte, 0xaa);
  ASSERT_EQ(viommu_transaction_commit(ctx_), 0);
  ASSERT_EQ(viommu_dma_rw(ep, 0x10000, &byte, 1, VIOMMU_DMA_READ, nullptr), 0);
  EXPECT_EQ(byte, 0xbb);
}

// DMA threads hammer an MMIO region while it is removed: once
// viommu_region_del returns, its callbacks never run again.
struct Fenced {
  std::atomic<bool> freed{false};
  std::atomic<int> calls_after_free{0};
  std::atomic<int> calls{0};
  static int Read(void* opaque, uint64_t, uint64_t* data, uint32_t) {
    auto* self = static_cast<Fenced*>(opaque);
    self->calls.fetch_add(1);
    if (self->freed.load()) self->calls_after_free.fetch_add(1);
    std::this_thread::yield();
    if (self->freed.load()) self->calls_after_free.fetch_add(1);
    *data = 1;
    return 0;
  }
  static int Write(void*, uint64_t, uint64_t, uint32_t) { return 0; }
};

TEST_F(CapiRegionTest, DelWaitsForRunningCallbacksAndFencesLaterOnes) {
  Fenced f;
  viommu_region r{};
  r.size = sizeof(r);
  r.kind = VIOMMU_REGION_MMIO;
  r.gpa = 0x2000'0000;
  r.len = 0x1000;
  r.read = &Fenced::Read;
  r.write = &Fenced::Write;
  r.opaque = &f;
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, nullptr, &ep), 0);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        uint32_t v = 0;
        (void)viommu_dma_rw(ep, 0x2000'0000, &v, 4, VIOMMU_DMA_READ, nullptr);
      }
    });
  }
  while (f.calls.load() < 100) std::this_thread::yield();
  ASSERT_EQ(viommu_region_del(ctx_, id), 0);
  f.freed.store(true);  // the VMM may free what the callbacks use now
  for (int i = 0; i < 1000; ++i) std::this_thread::yield();
  stop.store(true);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(f.calls_after_free.load(), 0);
}

}  // namespace
}  // namespace viommu::capi::testing
