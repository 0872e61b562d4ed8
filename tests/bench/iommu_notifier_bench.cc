// Dispatch cost of one MAP event on an IOMMU region with N notifiers on the
// MAP chain (disjoint 4 KiB ranges), exactly one of which overlaps the
// event. Goal (issue 2): time(10000) / time(1) <= 5.
#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/iommu_notifier_chains.h"

namespace viommu::memory {
namespace {

class TrivialModel final : public IommuModel {
 public:
  IommuTlbEntry Translate(Iova iova, IommuPerm, int) override {
    return {.iova = iova & ~uint64_t{0xfff}, .addr_mask = 0xfff};
  }
};

class CountingNotifier final : public IommuNotifier {
 public:
  void Notify(const IommuEvent& event) override {
    ++calls;
    benchmark::DoNotOptimize(event.entry.iova);
  }
  uint64_t calls = 0;
};

void BM_NotifierDispatch(benchmark::State& state) {
  const int64_t n = state.range(0);
  TrivialModel model;
  IommuNotifierChains chains(&model, "bench");
  std::vector<CountingNotifier> notifiers(static_cast<size_t>(n));
  std::vector<IommuNotifierHandle> handles;
  handles.reserve(notifiers.size());
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t base = static_cast<uint64_t>(i) * 0x1000;
    auto h =
        chains.Register(&notifiers[static_cast<size_t>(i)],
                        {.flags = kNotifyMap, .range = {base, base + 0xfff}});
    if (!h.ok()) {
      state.SkipWithError("registration failed");
      return;
    }
    handles.push_back(std::move(*h));
  }
  // Hit the notifier in the middle of the chain.
  const uint64_t target = static_cast<uint64_t>(n / 2) * 0x1000;
  const IommuEvent event{.type = IommuEventType::kMap,
                         .entry = {.iova = target,
                                   .translated_addr = 0x100000,
                                   .addr_mask = 0xfff,
                                   .perm = kIommuReadWrite}};
  for (auto _ : state) {
    chains.Notify(0, event);
  }
  if (notifiers[static_cast<size_t>(n / 2)].calls !=
      static_cast<uint64_t>(state.iterations())) {
    state.SkipWithError("event did not reach exactly the target notifier");
  }
}
BENCHMARK(BM_NotifierDispatch)->Arg(1)->Arg(10000);

}  // namespace
}  // namespace viommu::memory

BENCHMARK_MAIN();
