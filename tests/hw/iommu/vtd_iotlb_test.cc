#include "viommu/hw/iommu/vtd_iotlb.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace viommu::vtd {
namespace {

using memory::kIommuRead;
using memory::kIommuReadWrite;

constexpr uint64_t k4K = 0x1000;
constexpr uint64_t k2M = 0x200000;
constexpr uint64_t k1G = 0x40000000;

IotlbEntry Page(uint16_t did, Hwaddr base, uint64_t size,
                memory::IommuPerm perm = kIommuReadWrite) {
  return {
      .domain_id = did, .page_base = base, .addr_mask = size - 1, .perm = perm};
}

TEST(VtdIotlbTest, MissWhenEmpty) {
  Iotlb tlb;
  EXPECT_FALSE(tlb.Lookup(1, 0x1000).has_value());
  EXPECT_EQ(tlb.size(), 0u);
  EXPECT_EQ(tlb.capacity(), 1024u);
}

TEST(VtdIotlbTest, FourKEntryHitsOnlyItsPage) {
  Iotlb tlb;
  tlb.Insert(1, 0x5123, Page(7, 0x9000, k4K, kIommuRead));
  auto hit = tlb.Lookup(1, 0x5fff);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(*hit, Page(7, 0x9000, k4K, kIommuRead));
  EXPECT_TRUE(tlb.Lookup(1, 0x5000).has_value());
  EXPECT_FALSE(tlb.Lookup(1, 0x4fff).has_value());
  EXPECT_FALSE(tlb.Lookup(1, 0x6000).has_value());
}

TEST(VtdIotlbTest, TwoMegEntryHitsAnyFourKInside) {
  Iotlb tlb;
  tlb.Insert(1, 3 * k2M + 0x1234, Page(7, 0x40000000, k2M));
  for (uint64_t off : {uint64_t{0}, uint64_t{0x1000}, k2M - 1}) {
    auto hit = tlb.Lookup(1, 3 * k2M + off);
    ASSERT_TRUE(hit.has_value()) << off;
    EXPECT_EQ(hit->addr_mask, k2M - 1);
  }
  EXPECT_FALSE(tlb.Lookup(1, 3 * k2M - 1).has_value());
  EXPECT_FALSE(tlb.Lookup(1, 4 * k2M).has_value());
}

TEST(VtdIotlbTest, OneGigEntryHitsAnyFourKInside) {
  Iotlb tlb;
  tlb.Insert(1, 5 * k1G, Page(7, 2 * k1G, k1G));
  EXPECT_TRUE(tlb.Lookup(1, 5 * k1G + 0x12345678).has_value());
  EXPECT_TRUE(tlb.Lookup(1, 6 * k1G - 1).has_value());
  EXPECT_FALSE(tlb.Lookup(1, 6 * k1G).has_value());
}

TEST(VtdIotlbTest, FourKKeyWinsOverOverlappingSuperpage) {
  Iotlb tlb;
  tlb.Insert(1, 0, Page(7, 0x800000, k2M));
  tlb.Insert(1, 0x3000, Page(7, 0x123000, k4K));
  EXPECT_EQ(tlb.Lookup(1, 0x3000)->page_base, 0x123000u);
  EXPECT_EQ(tlb.Lookup(1, 0x4000)->page_base, 0x800000u);
}

TEST(VtdIotlbTest, SourceIdsAreIsolated) {
  Iotlb tlb;
  tlb.Insert(0x0010, 0x1000, Page(1, 0xa000, k4K));
  EXPECT_TRUE(tlb.Lookup(0x0010, 0x1000).has_value());
  EXPECT_FALSE(tlb.Lookup(0x0011, 0x1000).has_value());
  EXPECT_FALSE(tlb.Lookup(0x0110, 0x1000).has_value());
}

TEST(VtdIotlbTest, InsertSameKeyReplaces) {
  Iotlb tlb;
  tlb.Insert(1, 0x1000, Page(1, 0xa000, k4K));
  tlb.Insert(1, 0x1000, Page(2, 0xb000, k4K, kIommuRead));
  EXPECT_EQ(tlb.size(), 1u);
  EXPECT_EQ(*tlb.Lookup(1, 0x1000), Page(2, 0xb000, k4K, kIommuRead));
}

TEST(VtdIotlbTest, IovaAboveCacheableLimitIsNeverCached) {
  Iotlb tlb;
  const Iova high = Iotlb::kCacheableLimit;
  tlb.Insert(1, high, Page(1, 0xa000, k4K));
  EXPECT_EQ(tlb.size(), 0u);
  EXPECT_FALSE(tlb.Lookup(1, high).has_value());
  // Its truncated alias is not a hit either.
  tlb.Insert(1, 0, Page(1, 0xa000, k4K));
  EXPECT_FALSE(tlb.Lookup(1, high).has_value());
}

TEST(VtdIotlbTest, OutputAbove52BitsIsNeverCached) {
  Iotlb tlb;
  tlb.Insert(1, 0x1000, Page(1, uint64_t{1} << 52, k4K));
  EXPECT_EQ(tlb.size(), 0u);
  tlb.Insert(1, 0x1000, Page(1, (uint64_t{1} << 52) - k4K, k4K));
  EXPECT_EQ(tlb.Lookup(1, 0x1000)->page_base, (uint64_t{1} << 52) - k4K);
}

TEST(VtdIotlbTest, InvalidateAllClears) {
  Iotlb tlb;
  tlb.Insert(1, 0x1000, Page(1, 0xa000, k4K));
  tlb.Insert(2, 0, Page(2, 0, k2M));
  tlb.InvalidateAll();
  EXPECT_EQ(tlb.size(), 0u);
  EXPECT_FALSE(tlb.Lookup(1, 0x1000).has_value());
  EXPECT_FALSE(tlb.Lookup(2, 0x1000).has_value());
}

TEST(VtdIotlbTest, InvalidateDomainDropsOnlyThatDomain) {
  Iotlb tlb;
  tlb.Insert(1, 0x1000, Page(5, 0xa000, k4K));
  tlb.Insert(2, 0x1000, Page(5, 0xb000, k4K));
  tlb.Insert(3, 0x1000, Page(6, 0xc000, k4K));
  tlb.InvalidateDomain(5);
  EXPECT_EQ(tlb.size(), 1u);
  EXPECT_FALSE(tlb.Lookup(1, 0x1000).has_value());
  EXPECT_FALSE(tlb.Lookup(2, 0x1000).has_value());
  EXPECT_TRUE(tlb.Lookup(3, 0x1000).has_value());
}

class VtdIotlbPsiTest : public ::testing::TestWithParam<Iotlb::PsiStrategy> {
 protected:
  VtdIotlbPsiTest() { tlb_.set_psi_strategy_for_testing(GetParam()); }
  Iotlb tlb_{4096};
};

TEST_P(VtdIotlbPsiTest, SinglePageDropsOnlyThatPageOfThatDomain) {
  tlb_.Insert(1, 0x5000, Page(5, 0xa000, k4K));
  tlb_.Insert(1, 0x6000, Page(5, 0xb000, k4K));
  tlb_.Insert(2, 0x5000, Page(6, 0xc000, k4K));
  tlb_.InvalidatePage(5, 0x5000, 0);
  EXPECT_FALSE(tlb_.Lookup(1, 0x5000).has_value());
  EXPECT_TRUE(tlb_.Lookup(1, 0x6000).has_value());
  EXPECT_TRUE(tlb_.Lookup(2, 0x5000).has_value());  // other domain
}

TEST_P(VtdIotlbPsiTest, EveryAmDropsExactlyTheAlignedRange) {
  // 4K entries around a range of 2^am pages at 2^am-page alignment; the
  // PSI address is given unaligned (inside the range) as a guest may.
  for (uint8_t am = 0; am <= Iotlb::kMaxAm; ++am) {
    tlb_.InvalidateAll();
    const uint64_t pages = uint64_t{1} << am;
    const Iova base = 3 * pages * k4K;
    const Iova probes[] = {base - k4K, base, base + (pages / 2) * k4K,
                           base + (pages - 1) * k4K, base + pages * k4K};
    for (Iova iova : probes) tlb_.Insert(1, iova, Page(5, 0, k4K));
    tlb_.InvalidatePage(5, base + (pages - 1) * k4K, am);
    EXPECT_TRUE(tlb_.Lookup(1, base - k4K).has_value()) << int{am};
    EXPECT_FALSE(tlb_.Lookup(1, base).has_value()) << int{am};
    EXPECT_FALSE(tlb_.Lookup(1, base + (pages / 2) * k4K).has_value());
    EXPECT_FALSE(tlb_.Lookup(1, base + (pages - 1) * k4K).has_value());
    EXPECT_TRUE(tlb_.Lookup(1, base + pages * k4K).has_value()) << int{am};
  }
}

TEST_P(VtdIotlbPsiTest, FourKPsiInsideSuperpageDropsTheSuperpage) {
  tlb_.Insert(1, 4 * k2M, Page(5, 0, k2M));
  tlb_.Insert(1, 2 * k1G, Page(5, 0, k1G));
  tlb_.InvalidatePage(5, 4 * k2M + 0x7000, 0);
  EXPECT_FALSE(tlb_.Lookup(1, 4 * k2M).has_value());
  EXPECT_TRUE(tlb_.Lookup(1, 2 * k1G).has_value());
  tlb_.InvalidatePage(5, 2 * k1G + 5 * k2M, 3);
  EXPECT_FALSE(tlb_.Lookup(1, 2 * k1G).has_value());
}

TEST_P(VtdIotlbPsiTest, SuperpageSizedPsiDropsFourKEntriesInside) {
  for (uint64_t i = 0; i < 512; i += 37) {
    tlb_.Insert(1, k2M + i * k4K, Page(5, 0, k4K));
  }
  tlb_.Insert(1, k2M - k4K, Page(5, 0, k4K));
  tlb_.Insert(1, 2 * k2M, Page(5, 0, k4K));
  tlb_.InvalidatePage(5, k2M, 9);
  EXPECT_EQ(tlb_.size(), 2u);
  EXPECT_TRUE(tlb_.Lookup(1, k2M - k4K).has_value());
  EXPECT_TRUE(tlb_.Lookup(1, 2 * k2M).has_value());
}

TEST_P(VtdIotlbPsiTest, LargePsiDropsSuperpagesInside) {
  tlb_.Insert(1, 0, Page(5, 0, k2M));
  tlb_.Insert(1, 7 * k2M, Page(5, 0, k2M));
  tlb_.Insert(1, 8 * k2M, Page(5, 0, k2M));
  tlb_.InvalidatePage(5, 0, 12);  // 16 MiB
  EXPECT_EQ(tlb_.size(), 1u);
  EXPECT_TRUE(tlb_.Lookup(1, 8 * k2M).has_value());
}

INSTANTIATE_TEST_SUITE_P(Strategies, VtdIotlbPsiTest,
                         ::testing::Values(Iotlb::PsiStrategy::kAuto,
                                           Iotlb::PsiStrategy::kScan,
                                           Iotlb::PsiStrategy::kProbe));

// Random entries and PSIs: probing and scanning drop the same entries.
TEST(VtdIotlbTest, ProbeAndScanAgree) {
  std::mt19937_64 rng(42);
  const uint64_t sizes[] = {k4K, k2M, k1G};
  for (int round = 0; round < 200; ++round) {
    Iotlb scan(256), probe(256);
    scan.set_psi_strategy_for_testing(Iotlb::PsiStrategy::kScan);
    probe.set_psi_strategy_for_testing(Iotlb::PsiStrategy::kProbe);
    std::vector<std::pair<uint16_t, Iova>> inserted;
    for (int i = 0; i < 100; ++i) {
      const uint16_t sid = static_cast<uint16_t>(rng() % 4);
      const uint64_t size = sizes[rng() % 3];
      const Iova iova = (rng() % (4 * k1G)) & ~(size - 1);
      const IotlbEntry e = Page(static_cast<uint16_t>(rng() % 2), 0, size);
      scan.Insert(sid, iova, e);
      probe.Insert(sid, iova, e);
      inserted.emplace_back(sid, iova);
    }
    const uint8_t am = static_cast<uint8_t>(rng() % (Iotlb::kMaxAm + 1));
    const Iova addr = (rng() % (4 * k1G)) & ~(k4K - 1);
    const uint16_t did = static_cast<uint16_t>(rng() % 2);
    scan.InvalidatePage(did, addr, am);
    probe.InvalidatePage(did, addr, am);
    ASSERT_EQ(scan.size(), probe.size()) << round;
    for (const auto& [sid, iova] : inserted) {
      ASSERT_EQ(scan.Lookup(sid, iova), probe.Lookup(sid, iova)) << round;
    }
  }
}

// Random inserts, lookups and invalidations against a plain map model
// (capacity large enough that nothing is evicted): exercises the table's
// probing and backward-shift deletion.
TEST(VtdIotlbTest, MatchesAMapModel) {
  struct Model {
    uint16_t sid;
    Iova base;
    IotlbEntry e;
  };
  std::mt19937_64 rng(7);
  Iotlb tlb(4096);
  std::vector<Model> model;
  const uint64_t sizes[] = {k4K, k2M, k1G};
  auto model_lookup = [&](uint16_t sid,
                          Iova iova) -> std::optional<IotlbEntry> {
    for (uint64_t size : sizes) {  // 4K first, as the IOTLB
      for (const Model& m : model) {
        if (m.sid == sid && m.e.addr_mask == size - 1 &&
            m.base == (iova & ~(size - 1))) {
          return m.e;
        }
      }
    }
    return std::nullopt;
  };
  for (int op = 0; op < 20000; ++op) {
    const uint16_t sid = static_cast<uint16_t>(rng() % 3);
    const uint64_t size = sizes[rng() % 8 == 0 ? 1 + rng() % 2 : 0];
    const Iova iova = (rng() % 2048) * k4K * (size == k4K ? 1 : 64);
    switch (rng() % 8) {
      case 0:
      case 1:
      case 2: {
        const IotlbEntry e =
            Page(static_cast<uint16_t>(rng() % 3), (rng() % 1000) * k1G, size);
        tlb.Insert(sid, iova, e);
        const Iova base = iova & ~(size - 1);
        bool replaced = false;
        for (Model& m : model) {
          if (m.sid == sid && m.base == base && m.e.addr_mask == size - 1) {
            m.e = e;
            replaced = true;
          }
        }
        if (!replaced) model.push_back({sid, base, e});
        break;
      }
      case 3: {
        const uint16_t did = static_cast<uint16_t>(rng() % 3);
        const Iova page = iova & ~(k4K - 1);
        tlb.InvalidatePage(did, page, 0);
        std::erase_if(model, [&](const Model& m) {
          return m.e.domain_id == did && m.base <= page &&
                 page <= m.base + m.e.addr_mask;
        });
        break;
      }
      case 4:
        if (rng() % 50 == 0) {
          const uint16_t did = static_cast<uint16_t>(rng() % 3);
          tlb.InvalidateDomain(did);
          std::erase_if(model,
                        [&](const Model& m) { return m.e.domain_id == did; });
        }
        break;
      default:
        ASSERT_EQ(tlb.Lookup(sid, iova + rng() % k4K),
                  model_lookup(sid, iova + 0))
            << "op " << op;
    }
    ASSERT_EQ(tlb.size(), model.size()) << "op " << op;
  }
}

TEST(VtdIotlbTest, CapacityIsABound) {
  Iotlb tlb(8);
  for (uint64_t i = 0; i < 100; ++i) tlb.Insert(1, i * k4K, Page(1, 0, k4K));
  EXPECT_EQ(tlb.size(), 8u);
  EXPECT_EQ(tlb.stats().evictions, 92u);
}

TEST(VtdIotlbTest, RecentlyUsedEntrySurvivesEviction) {
  Iotlb tlb(4);
  for (uint64_t i = 0; i < 4; ++i) tlb.Insert(1, i * k4K, Page(1, 0, k4K));
  ASSERT_TRUE(tlb.Lookup(1, 0).has_value());  // the oldest, now referenced
  tlb.Insert(1, 4 * k4K, Page(1, 0, k4K));
  EXPECT_TRUE(tlb.Lookup(1, 0).has_value());
  EXPECT_FALSE(tlb.Lookup(1, 1 * k4K).has_value());  // second chance: B goes
  EXPECT_TRUE(tlb.Lookup(1, 4 * k4K).has_value());
  EXPECT_EQ(tlb.size(), 4u);
}

TEST(VtdIotlbTest, EvictionFollowsTheClockHand) {
  Iotlb tlb(4);
  for (uint64_t i = 0; i < 4; ++i) tlb.Insert(1, i * k4K, Page(1, 0, k4K));
  // None referenced: the hand evicts in ring order 0, 1, 2, ...
  tlb.Insert(1, 10 * k4K, Page(1, 0, k4K));
  tlb.Insert(1, 11 * k4K, Page(1, 0, k4K));
  EXPECT_EQ(tlb.stats().evictions, 2u);
  EXPECT_FALSE(tlb.Lookup(1, 0).has_value());
  EXPECT_FALSE(tlb.Lookup(1, k4K).has_value());
  EXPECT_TRUE(tlb.Lookup(1, 2 * k4K).has_value());
  EXPECT_TRUE(tlb.Lookup(1, 3 * k4K).has_value());
}

TEST(VtdIotlbTest, InvalidatedSlotsAreReusedWithoutEviction) {
  Iotlb tlb(4);
  for (uint64_t i = 0; i < 4; ++i) tlb.Insert(1, i * k4K, Page(1, 0, k4K));
  tlb.InvalidatePage(1, k4K, 0);
  tlb.Insert(1, 9 * k4K, Page(1, 0, k4K));
  EXPECT_EQ(tlb.stats().evictions, 0u);
  EXPECT_EQ(tlb.size(), 4u);
}

TEST(VtdIotlbTest, CountersCountHitsMissesEvictions) {
  Iotlb tlb(1);
  tlb.Insert(1, 0, Page(1, 0, k4K));
  (void)tlb.Lookup(1, 0);
  (void)tlb.Lookup(1, 0x10);
  (void)tlb.Lookup(1, k4K);
  tlb.Insert(1, k4K, Page(1, 0, k4K));
  EXPECT_EQ(tlb.stats(), (IotlbStats{.hits = 2, .misses = 1, .evictions = 1}));
}

TEST(VtdIotlbTest, InsertIfCurrentDropsInsertRacingAnInvalidation) {
  Iotlb tlb;
  const uint64_t epoch = tlb.epoch();
  tlb.InvalidatePage(9, 0x100000, 0);  // any invalidation
  EXPECT_FALSE(tlb.InsertIfCurrent(epoch, 1, 0x1000, Page(1, 0, k4K)));
  EXPECT_FALSE(tlb.Lookup(1, 0x1000).has_value());
  EXPECT_EQ(tlb.stats().stale_inserts, 1u);
  EXPECT_TRUE(tlb.InsertIfCurrent(tlb.epoch(), 1, 0x1000, Page(1, 0, k4K)));
  EXPECT_TRUE(tlb.Lookup(1, 0x1000).has_value());
}

// Two DMA-like threads look up and insert while this thread invalidates.
// Checks that nothing crashes, the bound holds, and every hit is an entry
// some thread inserted for that page.
TEST(VtdIotlbTest, ConcurrentLookupInsertInvalidateSmoke) {
  Iotlb tlb(64);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  auto dma = [&](uint16_t sid) {
    std::mt19937 rng(sid);
    while (!stop.load(std::memory_order_relaxed)) {
      const Iova iova = (rng() % 256) * k4K;
      if (auto hit = tlb.Lookup(sid, iova)) {
        if (hit->page_base != iova + 0x100000000) bad.fetch_add(1);
      } else {
        tlb.InsertIfCurrent(tlb.epoch(), sid, iova,
                            Page(sid, iova + 0x100000000, k4K));
      }
    }
  };
  std::thread a(dma, 1), b(dma, 2);
  const auto end =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(150);
  for (int i = 0; std::chrono::steady_clock::now() < end; ++i) {
    switch (i % 3) {
      case 0:
        tlb.InvalidatePage(1, (i % 256) * k4K, i % 4);
        break;
      case 1:
        tlb.InvalidateDomain(2);
        break;
      default:
        if (i % 30 == 2) tlb.InvalidateAll();
        break;
    }
    EXPECT_LE(tlb.size(), 64u);
  }
  stop = true;
  a.join();
  b.join();
  EXPECT_EQ(bad.load(), 0);
  const IotlbStats s = tlb.stats();
  EXPECT_GT(s.hits + s.misses, 0u);
}

}  // namespace
}  // namespace viommu::vtd
