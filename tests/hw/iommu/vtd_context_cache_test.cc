#include "viommu/hw/iommu/vtd_context_cache.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace viommu::vtd {
namespace {

constexpr CachedContext kCtx{.lo = 0x12345001, .hi = 0x0000000000010102};

uint16_t Sid(uint8_t bus, uint8_t devfn) {
  return static_cast<uint16_t>(bus << 8 | devfn);
}

TEST(VtdContextCacheTest, MissThenHitAfterInsert) {
  ContextCache cc;
  EXPECT_FALSE(cc.Lookup(0, 0x10).has_value());
  cc.Insert(0, 0x10, kCtx);
  EXPECT_EQ(cc.Lookup(0, 0x10), kCtx);
  EXPECT_FALSE(cc.Lookup(0, 0x11).has_value());
  EXPECT_FALSE(cc.Lookup(1, 0x10).has_value());
  EXPECT_EQ(cc.stats(), (ContextCacheStats{.hits = 1, .misses = 3}));
}

TEST(VtdContextCacheTest, GenerationStartsAtOneAsQemu) {
  ContextCache cc;
  EXPECT_EQ(cc.generation(), 1u);
}

TEST(VtdContextCacheTest, InvalidateAllBumpsGenerationAndDropsEverything) {
  ContextCache cc;
  cc.Insert(0, 0x10, kCtx);
  cc.Insert(3, 0xff, kCtx);
  cc.InvalidateAll();
  EXPECT_EQ(cc.generation(), 2u);
  EXPECT_FALSE(cc.Lookup(0, 0x10).has_value());
  EXPECT_FALSE(cc.Lookup(3, 0xff).has_value());
  cc.Insert(0, 0x10, kCtx);
  EXPECT_TRUE(cc.Lookup(0, 0x10).has_value());
}

TEST(VtdContextCacheTest, GenerationWrapResetsEntriesAndRestartsAtOne) {
  ContextCache cc;
  cc.SetGenerationForTesting(ContextCache::kGenerationMax - 1);
  cc.Insert(0, 0x10, kCtx);
  EXPECT_TRUE(cc.Lookup(0, 0x10).has_value());
  cc.InvalidateAll();  // reaches GEN_MAX: reset
  EXPECT_EQ(cc.generation(), 1u);
  EXPECT_FALSE(cc.Lookup(0, 0x10).has_value());
  EXPECT_EQ(cc.CountValidForTesting(), 0u);
  cc.Insert(0, 0x10, kCtx);
  EXPECT_TRUE(cc.Lookup(0, 0x10).has_value());
}

TEST(VtdContextCacheTest, InsertedAfterWrapIsNotConfusedWithOldEntries) {
  ContextCache cc;
  cc.Insert(0, 0x20, kCtx);  // generation 1
  cc.SetGenerationForTesting(ContextCache::kGenerationMax - 1);
  cc.InvalidateAll();  // back to 1: the old generation-1 entry must be gone
  EXPECT_FALSE(cc.Lookup(0, 0x20).has_value());
}

// Source devfn 0x15 (device 2, function 5); `dropped` has bit f set when
// function f of device 2 must be invalidated.
struct FmCase {
  uint8_t fm;
  uint8_t dropped;
};

class VtdContextCacheFmTest : public ::testing::TestWithParam<FmCase> {};

TEST_P(VtdContextCacheFmTest, DeviceInvalidationHonoursFunctionMask) {
  const FmCase c = GetParam();
  ContextCache cc;
  for (unsigned d = 0; d < 256; ++d) {
    cc.Insert(4, static_cast<uint8_t>(d), kCtx);
    cc.Insert(5, static_cast<uint8_t>(d), kCtx);
  }
  cc.InvalidateDevice(Sid(4, 0x15), c.fm);
  int dropped_count = 0;
  for (unsigned d = 0; d < 256; ++d) {
    const bool dropped = (d >> 3) == 2 && ((c.dropped >> (d & 7)) & 1) != 0;
    dropped_count += dropped ? 1 : 0;
    EXPECT_EQ(cc.Lookup(4, static_cast<uint8_t>(d)).has_value(), !dropped)
        << "devfn " << d;
    EXPECT_TRUE(cc.Lookup(5, static_cast<uint8_t>(d)).has_value()) << d;
  }
  EXPECT_EQ(cc.CountValidForTesting(), 512u - unsigned(dropped_count));
}

INSTANTIATE_TEST_SUITE_P(
    Qemu72, VtdContextCacheFmTest,
    ::testing::Values(FmCase{0, 0x20},   // exact devfn
                      FmCase{1, 0x22},   // bit 2 ignored: fn 1, 5
                      FmCase{2, 0xaa},   // bits 2:1 ignored: fn 1, 3, 5, 7
                      FmCase{3, 0xff},   // bits 2:0 ignored: the device
                      FmCase{7, 0xff}),  // only fm & 3 is used
    [](const ::testing::TestParamInfo<FmCase>& p) {
      return "Fm" + std::to_string(p.param.fm);
    });

TEST(VtdContextCacheTest, DeviceInvalidationLeavesGenerationAlone) {
  ContextCache cc;
  cc.InvalidateDevice(Sid(0, 0x10), 0);
  EXPECT_EQ(cc.generation(), 1u);
}

TEST(VtdContextCacheTest, InsertIfCurrentDropsInsertRacingAnInvalidation) {
  ContextCache cc;
  const uint64_t epoch = cc.epoch();
  cc.InvalidateDevice(Sid(9, 0), 0);  // any invalidation, even unrelated
  EXPECT_FALSE(cc.InsertIfCurrent(epoch, 0, 0x10, kCtx));
  EXPECT_FALSE(cc.Lookup(0, 0x10).has_value());
  EXPECT_EQ(cc.stats().stale_inserts, 1u);
  EXPECT_TRUE(cc.InsertIfCurrent(cc.epoch(), 0, 0x10, kCtx));
  EXPECT_TRUE(cc.Lookup(0, 0x10).has_value());
}

TEST(VtdContextCacheTest, ConcurrentLookupInsertInvalidateSmoke) {
  ContextCache cc;
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  auto dma = [&](uint8_t bus) {
    unsigned devfn = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      devfn = (devfn + 7) & 0xff;
      const CachedContext want{.lo = devfn, .hi = bus};
      if (auto ce = cc.Lookup(bus, static_cast<uint8_t>(devfn))) {
        if (!(*ce == want)) bad.fetch_add(1);
      } else {
        cc.InsertIfCurrent(cc.epoch(), bus, static_cast<uint8_t>(devfn), want);
      }
    }
  };
  std::thread a(dma, 1), b(dma, 2);
  const auto end =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(150);
  for (unsigned i = 0; std::chrono::steady_clock::now() < end; ++i) {
    if (i % 2 == 0) {
      const uint8_t bus = static_cast<uint8_t>(1 + (i / 2) % 2);
      cc.InvalidateDevice(Sid(bus, static_cast<uint8_t>(i)),
                          static_cast<uint8_t>(i % 4));
    } else {
      cc.InvalidateAll();
    }
  }
  stop = true;
  a.join();
  b.join();
  EXPECT_EQ(bad.load(), 0);
}

// Peek: the lock-free lookup of the DMA fast path (scalable mode).
TEST(VtdContextCacheTest, PeekSeesInsertsAndCountsNothing) {
  ContextCache cc;
  EXPECT_FALSE(cc.Peek(0, 0x10).has_value());  // no bus array yet
  cc.Insert(0, 0x10, kCtx);
  EXPECT_EQ(cc.Peek(0, 0x10), kCtx);
  EXPECT_FALSE(cc.Peek(0, 0x11).has_value());
  EXPECT_EQ(cc.stats(), ContextCacheStats{});
}

TEST(VtdContextCacheTest, PeekMissesAfterGlobalInvalidation) {
  ContextCache cc;
  cc.Insert(3, 0x20, kCtx);
  cc.InvalidateAll();
  EXPECT_FALSE(cc.Peek(3, 0x20).has_value());
  cc.Insert(3, 0x20, kCtx);
  EXPECT_EQ(cc.Peek(3, 0x20), kCtx);
}

TEST(VtdContextCacheTest, PeekMissesAfterDeviceInvalidationOfItsFunction) {
  ContextCache cc;
  cc.Insert(3, 0x20, kCtx);
  cc.Insert(3, 0x28, kCtx);
  cc.InvalidateDevice(Sid(3, 0x28), /*fm=*/0);
  EXPECT_EQ(cc.Peek(3, 0x20), kCtx);
  EXPECT_FALSE(cc.Peek(3, 0x28).has_value());
  cc.InvalidateDevice(Sid(3, 0x21), /*fm=*/3);  // ignores devfn bits 2:0
  EXPECT_FALSE(cc.Peek(3, 0x20).has_value());
}

TEST(VtdContextCacheTest, PeekMissesAcrossGenerationWrap) {
  ContextCache cc;
  cc.SetGenerationForTesting(ContextCache::kGenerationMax - 1);
  cc.Insert(0, 1, kCtx);
  EXPECT_EQ(cc.Peek(0, 1), kCtx);
  cc.InvalidateAll();  // wraps to 1, entries reset to 0
  EXPECT_FALSE(cc.Peek(0, 1).has_value());
  EXPECT_EQ(cc.generation(), 1u);
}

TEST(VtdContextCacheTest, ConcurrentPeekNeverSeesATornOrInvalidatedEntry) {
  // Writers store {lo, hi} pairs with hi == ~lo; an invalidation happens
  // between every insert. A reader must only ever see a consistent pair.
  ContextCache cc;
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::atomic<uint64_t> seen{0};
  std::thread reader([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      if (auto ce = cc.Peek(5, 0x40)) {
        if (ce->hi != ~ce->lo) bad.fetch_add(1);
        seen.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });
  const auto end =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(150);
  for (uint64_t i = 1; std::chrono::steady_clock::now() < end; ++i) {
    cc.Insert(5, 0x40, CachedContext{.lo = i, .hi = ~i});
    if (i % 3 == 0) cc.InvalidateAll();
    if (i % 3 == 1) cc.InvalidateDevice(Sid(5, 0x40), 0);
  }
  stop = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace viommu::vtd
