// VT-d second-level tables without caches: WalkSl over a million 4 KiB
// leaves (the replay/shadow-sync walk, per leaf) and TranslateSl through
// four levels (an IOTLB miss). Moved here from vtd_page_walk_test.cc, where
// it ran as a unit test (also under ASan); the correctness of both is in
// tests/hw/iommu/vtd_page_walk_test.cc.
#include <cstdint>
#include <cstring>
#include <vector>

#include "benchmark/benchmark.h"
#include "viommu/hw/iommu/vtd_page_walk.h"

namespace viommu::vtd {
namespace {

constexpr uint64_t kRW = 3;
constexpr int kLeaves = 1 << 20;
constexpr int kL1Tables = kLeaves / 512;
constexpr Hwaddr kL4 = 0x1000, kL3 = 0x2000, kL2 = 0x3000, kL1 = 0x10000;

// Flat RAM from address 0: a plain memory reader.
class FlatRam final : public GuestMemory {
 public:
  explicit FlatRam(size_t size) : bytes_(size) {}
  bool Read(Hwaddr addr, void* buf, size_t len) override {
    if (addr > bytes_.size() || len > bytes_.size() - addr) return false;
    std::memcpy(buf, bytes_.data() + addr, len);
    return true;
  }
  bool Write(Hwaddr addr, const void* buf, size_t len) override {
    if (addr > bytes_.size() || len > bytes_.size() - addr) return false;
    std::memcpy(bytes_.data() + addr, buf, len);
    return true;
  }
  void Set(Hwaddr addr, uint64_t v) { std::memcpy(&bytes_[addr], &v, 8); }

 private:
  std::vector<uint8_t> bytes_;
};

// 4 levels; 2^20 4K leaves under IOVA 0 mapping to 4 GiB + IOVA: one
// level-3 table with 4 entries, 4 level-2 tables (contiguous, so entry t of
// "all of them" is at kL2 + 8t), 2048 level-1 tables.
FlatRam& MillionLeafTables() {
  static FlatRam* ram = [] {
    auto* r = new FlatRam(kL1 + kL1Tables * 0x1000);
    r->Set(kL4, kL3 | kRW);
    for (int j = 0; j < kL1Tables / 512; ++j) {
      r->Set(kL3 + j * 8, (kL2 + j * 0x1000) | kRW);
    }
    for (int t = 0; t < kL1Tables; ++t) {
      r->Set(kL2 + t * 8, (kL1 + t * 0x1000) | kRW);
      for (int i = 0; i < 512; ++i) {
        r->Set(kL1 + t * 0x1000 + i * 8,
               (0x100000000 + (uint64_t(t) * 512 + i) * 0x1000) | kRW);
      }
    }
    return r;
  }();
  return *ram;
}

TableConfig Config48() {
  TableConfig cfg;
  cfg.aw_bits = 48;
  cfg.sagaw = 0x6;
  cfg.pt_supported = true;
  return cfg;
}

const ContextEntry kCe{.lo = kL4 | 1, .hi = 2};

// One iteration walks all 2^20 leaves; items/s is leaves per second.
void BM_WalkSlMillionLeaves(benchmark::State& state) {
  FlatRam& ram = MillionLeafTables();
  const TableConfig cfg = Config48();
  for (auto _ : state) {
    uint64_t count = 0, sum = 0;
    WalkSl(ram, cfg, kCe, 0, (uint64_t{kLeaves} << 12) - 1,
           [&](const WalkEntry& e) {
             ++count;
             sum += e.gpa;
           });
    if (count != uint64_t{kLeaves}) state.SkipWithError("leaves missing");
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * kLeaves);
}
BENCHMARK(BM_WalkSlMillionLeaves)->Unit(benchmark::kMillisecond);

// One 4-level translation per iteration, over a stride through the leaves.
void BM_TranslateSlFourLevels(benchmark::State& state) {
  FlatRam& ram = MillionLeafTables();
  const TableConfig cfg = Config48();
  uint64_t i = 0;
  for (auto _ : state) {
    const Iova iova = ((i * 7919) % kLeaves) << 12;
    benchmark::DoNotOptimize(TranslateSl(ram, cfg, kCe, iova, i & 1));
    ++i;
  }
}
BENCHMARK(BM_TranslateSlFourLevels);

}  // namespace
}  // namespace viommu::vtd

BENCHMARK_MAIN();
