// Benchmarks of the memory/ hot paths (run by `make bench`):
//  * BM_FlatViewAddRegion/N: add and remove one region in a view of N
//    ranges (two commits, a listener attached). Goal: the 100000 case costs
//    at most 3x the 1000 case (a full re-render would be ~100x).
//  * BM_AddressSpaceTranslateRam vs BM_BtreeMapLookupBaseline: translating
//    a RAM address in a view of 10k ranges vs one absl::btree_map lookup
//    among 10k keys. Goal: ratio <= 3.
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "absl/container/btree_map.h"
#include "benchmark/benchmark.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::memory {
namespace {

class NullMmio final : public MmioOps {
 public:
  MemTxResult Read(uint64_t, uint64_t* v, unsigned, MemTxAttrs) override {
    *v = 0;
    return MemTxResult::Ok();
  }
  MemTxResult Write(uint64_t, uint64_t, unsigned, MemTxAttrs) override {
    return MemTxResult::Ok();
  }
};

class CountingListener final : public MemoryListener {
 public:
  void RegionAdd(const MemoryRegionSection&) override { ++events; }
  void RegionDel(const MemoryRegionSection&) override { ++events; }
  uint64_t events = 0;
};

std::vector<uint64_t> RandomIndexes(size_t count, uint64_t bound) {
  std::mt19937_64 rng(42);
  std::vector<uint64_t> v(count);
  for (auto& x : v) x = rng() % bound;
  return v;
}

void BM_FlatViewAddRegion(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  MemorySystem sys;
  NullMmio ops;
  auto root = MemoryRegion::CreateContainer(&sys, "root", kSize2To64);
  {
    MemorySystem::Transaction txn(&sys);
    for (uint64_t i = 0; i < n; ++i) {
      root->AddSubregion(i * 0x2000,
                         MemoryRegion::CreateMmio(&sys, "r", 0x1000, &ops));
    }
  }
  AddressSpace as(&sys, root, "bench");
  CountingListener listener;
  ListenerHandle h = as.RegisterListener(&listener);
  auto extra = MemoryRegion::CreateMmio(&sys, "extra", 0x1000, &ops);
  std::vector<uint64_t> slots = RandomIndexes(1024, n);
  size_t k = 0;
  for (auto _ : state) {
    // Into a hole between two existing ranges.
    root->AddSubregion(slots[k++ & 1023] * 0x2000 + 0x1000, extra);
    root->RemoveSubregion(extra.get());
  }
  state.counters["ranges"] = static_cast<double>(as.CurrentView()->size());
  benchmark::DoNotOptimize(listener.events);
}
BENCHMARK(BM_FlatViewAddRegion)->Arg(1000)->Arg(10000)->Arg(100000);

constexpr uint64_t kTranslateRanges = 10000;

void BM_AddressSpaceTranslateRam(benchmark::State& state) {
  MemorySystem sys;
  auto root = MemoryRegion::CreateContainer(&sys, "root", kSize2To64);
  auto ram = *MemoryRegion::CreateRam(&sys, "ram", kTranslateRanges * 0x1000);
  {
    MemorySystem::Transaction txn(&sys);
    // Non-adjacent aliases of one RAM block: 10k distinct ranges.
    for (uint64_t i = 0; i < kTranslateRanges; ++i) {
      root->AddSubregion(
          i * 0x2000,
          MemoryRegion::CreateAlias(&sys, "a", ram, i * 0x1000, 0x1000));
    }
  }
  AddressSpace as(&sys, root, "bench");
  if (as.CurrentView()->size() != kTranslateRanges) {
    state.SkipWithError("unexpected view size");
    return;
  }
  std::vector<uint64_t> idx = RandomIndexes(4096, kTranslateRanges);
  size_t k = 0;
  for (auto _ : state) {
    Translation t = as.Translate(idx[k++ & 4095] * 0x2000 + 0x10, 4, false);
    benchmark::DoNotOptimize(t.offset_in_region);
  }
}
BENCHMARK(BM_AddressSpaceTranslateRam);

void BM_BtreeMapLookupBaseline(benchmark::State& state) {
  absl::btree_map<uint64_t, uint64_t> map;
  for (uint64_t i = 0; i < kTranslateRanges; ++i) map[i * 0x2000] = i;
  std::vector<uint64_t> idx = RandomIndexes(4096, kTranslateRanges);
  size_t k = 0;
  for (auto _ : state) {
    auto it = map.upper_bound(idx[k++ & 4095] * 0x2000 + 0x10);
    benchmark::DoNotOptimize(std::prev(it)->second);
  }
}
BENCHMARK(BM_BtreeMapLookupBaseline);

}  // namespace
}  // namespace viommu::memory

BENCHMARK_MAIN();
