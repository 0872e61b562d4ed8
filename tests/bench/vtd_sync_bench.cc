// Cost of the VT-d shadow sync state machine (vtd_shadow_map.h) with N 4K
// pages mapped, over a synthetic sorted walk (real page-table walks are
// measured elsewhere: here the cost is the merge plus the generator).
// Goals: BM_VtdPsiSync/1000000 <= 5 us per sync;
//        BM_VtdFullSyncUnchanged/1000000 >= 10M items (entries) per second.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "benchmark/benchmark.h"
#include "viommu/hw/iommu/vtd_shadow_map.h"

namespace viommu::vtd {
namespace {

constexpr uint64_t kPage = 0x1000;

class CountingEmitter final : public ShadowEmitter {
 public:
  void MappingChanged(Iova iova, uint64_t,
                      const std::optional<ShadowTranslation>&,
                      const std::optional<ShadowTranslation>&) override {
    ++calls;
    benchmark::DoNotOptimize(iova);
  }
  uint64_t calls = 0;
};

// N consecutive 4K leaves from IOVA 0; page i maps to gpa
// (i + gen[i] * N) * 4K, so flipping gen[i] remaps the page in place.
class SyntheticTables {
 public:
  explicit SyntheticTables(uint64_t n) : gen_(n, 0) {}
  void Flip(uint64_t page) { gen_[page] ^= 1; }
  void Walk(const Range& r, WalkSink sink) const {
    const uint64_t n = gen_.size();
    const uint64_t first = r.first / kPage;
    const uint64_t last = std::min(r.last / kPage, n - 1);
    WalkEntry e{.addr_mask = kPage - 1, .perm = memory::kIommuReadWrite};
    for (uint64_t i = first; i <= last && i < n; ++i) {
      e.iova = i * kPage;
      e.gpa = (i + gen_[i] * n) * kPage;
      sink(e);
    }
  }

 private:
  std::vector<uint8_t> gen_;
};

// One page-selective sync of a page the guest just remapped (UNMAP + MAP).
void BM_VtdPsiSync(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  SyntheticTables tables(n);
  auto walk = [&](const Range& r, WalkSink sink) { tables.Walk(r, sink); };
  ShadowMap shadow;
  CountingEmitter out;
  shadow.Sync(Range::Full(), walk, out);
  uint64_t x = 88172645463325252ull;
  for (auto _ : state) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const uint64_t page = x % n;
    tables.Flip(page);
    benchmark::DoNotOptimize(
        shadow.Sync(Range::FromBaseSize(page * kPage, kPage), walk, out));
  }
  if (shadow.size() != n || out.calls != n + state.iterations()) {
    state.SkipWithError("unexpected shadow state");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VtdPsiSync)->Arg(1000)->Arg(1000000);

// The same with an unchanged page: the lookup and compare only.
void BM_VtdPsiSyncUnchanged(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  SyntheticTables tables(n);
  auto walk = [&](const Range& r, WalkSink sink) { tables.Walk(r, sink); };
  ShadowMap shadow;
  CountingEmitter out;
  shadow.Sync(Range::Full(), walk, out);
  uint64_t x = 88172645463325252ull;
  for (auto _ : state) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const uint64_t page = x % n;
    benchmark::DoNotOptimize(
        shadow.Sync(Range::FromBaseSize(page * kPage, kPage), walk, out));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VtdPsiSyncUnchanged)->Arg(1000000);

// A full-range sync (DSI, global invalidation) where nothing changed.
void BM_VtdFullSyncUnchanged(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  SyntheticTables tables(n);
  auto walk = [&](const Range& r, WalkSink sink) { tables.Walk(r, sink); };
  ShadowMap shadow;
  CountingEmitter out;
  shadow.Sync(Range::Full(), walk, out);
  for (auto _ : state) {
    benchmark::DoNotOptimize(shadow.Sync(Range::Full(), walk, out));
  }
  if (out.calls != n) state.SkipWithError("an unchanged sync emitted events");
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}
BENCHMARK(BM_VtdFullSyncUnchanged)->Arg(1000000)->Unit(benchmark::kMillisecond);

// Building the state from nothing: N MAPs (first sync after replay/enable).
void BM_VtdFullSyncFromEmpty(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  SyntheticTables tables(n);
  auto walk = [&](const Range& r, WalkSink sink) { tables.Walk(r, sink); };
  CountingEmitter out;
  for (auto _ : state) {
    ShadowMap shadow;
    benchmark::DoNotOptimize(shadow.Sync(Range::Full(), walk, out));
    state.PauseTiming();  // the destructor is not the subject
    shadow.UnmapAll(out);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}
BENCHMARK(BM_VtdFullSyncFromEmpty)->Arg(1000000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace viommu::vtd

BENCHMARK_MAIN();
