// VT-d translation caches: the IOTLB hit path against one plain
// absl::flat_hash_map probe, and the lock alternatives around that probe.
// Goal: BM_VtdIotlbLookupHit <= 2 x BM_FlatHashMapLookupBaseline.
//
// Every benchmark walks the same 1024 keys in a fixed shuffled order, so
// each iteration probes a different key (no single hot entry) while the
// whole table stays in L1/L2, as for a device streaming over its buffers.
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"
#include "viommu/hw/iommu/vtd_cache_lock.h"
#include "viommu/hw/iommu/vtd_context_cache.h"
#include "viommu/hw/iommu/vtd_iotlb.h"
#include "viommu/util/mutex.h"

namespace viommu::vtd {
namespace {

constexpr size_t kKeys = 1024;  // power of two: index with a mask
constexpr uint16_t kSid = 0x0010;

std::vector<uint64_t> ShuffledIovas() {
  std::vector<uint64_t> iovas(kKeys);
  for (size_t i = 0; i < kKeys; ++i) iovas[i] = 0x100000000 + i * 0x1000;
  std::shuffle(iovas.begin(), iovas.end(), std::mt19937_64(1));
  return iovas;
}

absl::flat_hash_map<uint64_t, uint64_t> BaselineMap() {
  absl::flat_hash_map<uint64_t, uint64_t> m;
  for (uint64_t iova : ShuffledIovas()) m[iova >> 12] = iova + 0x5000;
  return m;
}

void BM_FlatHashMapLookupBaseline(benchmark::State& state) {
  const auto m = BaselineMap();
  const auto iovas = ShuffledIovas();
  size_t i = 0;
  for (auto _ : state) {
    auto it = m.find(iovas[i++ & (kKeys - 1)] >> 12);
    benchmark::DoNotOptimize(it->second);
  }
}
BENCHMARK(BM_FlatHashMapLookupBaseline);

// The same probe under each candidate lock (uncontended).
void BM_LookupUnderSpinLock(benchmark::State& state) {
  const auto m = BaselineMap();
  const auto iovas = ShuffledIovas();
  CacheLock mu;
  size_t i = 0;
  for (auto _ : state) {
    const uint64_t key = iovas[i++ & (kKeys - 1)] >> 12;
    CacheLockGuard g(mu);
    auto it = m.find(key);
    benchmark::DoNotOptimize(it->second);
  }
}
BENCHMARK(BM_LookupUnderSpinLock);

// The same probe under `Guard` (a scoped holder of a `Mu`), uncontended.
template <typename Mu, typename Guard>
void LookupUnder(benchmark::State& state) {
  const auto m = BaselineMap();
  const auto iovas = ShuffledIovas();
  Mu mu;
  size_t i = 0;
  for (auto _ : state) {
    const uint64_t key = iovas[i++ & (kKeys - 1)] >> 12;
    Guard g(&mu);
    auto it = m.find(key);
    benchmark::DoNotOptimize(it->second);
  }
}

void BM_LookupUnderAbslMutex(benchmark::State& state) {
  LookupUnder<absl::Mutex, absl::MutexLock>(state);
}
BENCHMARK(BM_LookupUnderAbslMutex);

void BM_LookupUnderAbslReaderLock(benchmark::State& state) {
  LookupUnder<absl::Mutex, absl::ReaderMutexLock>(state);
}
BENCHMARK(BM_LookupUnderAbslReaderLock);

// viommu::Mutex (util/mutex.h, std::shared_mutex): what the register-file
// and virtio-iommu locks cost now that TSan must see them.
void BM_LookupUnderViommuMutex(benchmark::State& state) {
  LookupUnder<Mutex, MutexLock>(state);
}
BENCHMARK(BM_LookupUnderViommuMutex);

void BM_LookupUnderViommuReaderLock(benchmark::State& state) {
  LookupUnder<Mutex, ReaderMutexLock>(state);
}
BENCHMARK(BM_LookupUnderViommuReaderLock);

void BM_VtdIotlbLookupHit(benchmark::State& state) {
  const auto iovas = ShuffledIovas();
  Iotlb tlb(kKeys);
  for (uint64_t iova : iovas) {
    tlb.Insert(kSid, iova,
               {.domain_id = 1,
                .page_base = iova + 0x5000,
                .addr_mask = 0xfff,
                .perm = memory::kIommuReadWrite});
  }
  size_t i = 0;
  for (auto _ : state) {
    auto hit = tlb.Lookup(kSid, iovas[i++ & (kKeys - 1)]);
    benchmark::DoNotOptimize(hit);
  }
  if (tlb.stats().misses != 0) state.SkipWithError("unexpected miss");
}
BENCHMARK(BM_VtdIotlbLookupHit);

// Hits on 2M entries: two probes (the 4K key misses first).
void BM_VtdIotlbLookupHit2M(benchmark::State& state) {
  std::vector<uint64_t> iovas(kKeys);
  for (size_t i = 0; i < kKeys; ++i) iovas[i] = i * 0x200000 + 0x3000;
  std::shuffle(iovas.begin(), iovas.end(), std::mt19937_64(2));
  Iotlb tlb(kKeys);
  for (uint64_t iova : iovas) {
    tlb.Insert(kSid, iova,
               {.domain_id = 1,
                .page_base = 0,
                .addr_mask = 0x1fffff,
                .perm = memory::kIommuReadWrite});
  }
  size_t i = 0;
  for (auto _ : state) {
    auto hit = tlb.Lookup(kSid, iovas[i++ & (kKeys - 1)]);
    benchmark::DoNotOptimize(hit);
  }
}
BENCHMARK(BM_VtdIotlbLookupHit2M);

// Misses: three probes.
void BM_VtdIotlbLookupMiss(benchmark::State& state) {
  const auto iovas = ShuffledIovas();
  Iotlb tlb(kKeys);
  for (uint64_t iova : iovas) {
    tlb.Insert(kSid, iova,
               {.domain_id = 1,
                .page_base = 0,
                .addr_mask = 0xfff,
                .perm = memory::kIommuReadWrite});
  }
  size_t i = 0;
  for (auto _ : state) {
    auto hit = tlb.Lookup(kSid + 1, iovas[i++ & (kKeys - 1)]);
    benchmark::DoNotOptimize(hit);
  }
}
BENCHMARK(BM_VtdIotlbLookupMiss);

// Insert into a full IOTLB: one CLOCK eviction per iteration.
void BM_VtdIotlbInsertEvict(benchmark::State& state) {
  Iotlb tlb(kKeys);
  uint64_t iova = 0;
  for (auto _ : state) {
    tlb.Insert(kSid, iova,
               {.domain_id = 1,
                .page_base = 0,
                .addr_mask = 0xfff,
                .perm = memory::kIommuReadWrite});
    iova += 0x1000;
  }
}
BENCHMARK(BM_VtdIotlbInsertEvict);

// A 4K PSI on a full 1024-entry IOTLB with one source-id (probe path),
// followed by re-inserting the page.
void BM_VtdIotlbPsi4K(benchmark::State& state) {
  const auto iovas = ShuffledIovas();
  Iotlb tlb(kKeys);
  const IotlbEntry e{.domain_id = 1,
                     .page_base = 0,
                     .addr_mask = 0xfff,
                     .perm = memory::kIommuReadWrite};
  for (uint64_t iova : iovas) tlb.Insert(kSid, iova, e);
  size_t i = 0;
  for (auto _ : state) {
    const uint64_t iova = iovas[i++ & (kKeys - 1)];
    tlb.InvalidatePage(1, iova, 0);
    tlb.Insert(kSid, iova, e);
  }
}
BENCHMARK(BM_VtdIotlbPsi4K);

void BM_VtdContextCacheLookupHit(benchmark::State& state) {
  ContextCache cc;
  for (unsigned d = 0; d < 256; ++d) {
    cc.Insert(0, static_cast<uint8_t>(d), {.lo = d, .hi = 1});
  }
  uint8_t devfn = 0;
  for (auto _ : state) {
    auto ce = cc.Lookup(0, devfn);
    devfn = static_cast<uint8_t>(devfn + 37);
    benchmark::DoNotOptimize(ce);
  }
}
BENCHMARK(BM_VtdContextCacheLookupHit);

}  // namespace
}  // namespace viommu::vtd

BENCHMARK_MAIN();
