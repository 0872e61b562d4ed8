// The C API's overhead (issue 12, "Performance"), each pair in one run:
//  * BM_CapiDmaRwIotlbHit vs BM_CxxDmaRwIotlbHit: an 8-byte DMA read
//    through VT-d with the translation in the IOTLB, through
//    viommu_dma_rw and through the endpoint's C++ AddressSpace (the same
//    object: the difference is the C layer).
//  * BM_CapiRegionAdd/N: add + remove of one 4 KiB RAM region with N
//    MMIO regions present and one VFIO container listening (the model
//    host's 0000:01:00.0 attached to an identity endpoint: each add is a
//    host MAP_DMA, each remove an UNMAP_DMA): per pair.
//  * BM_CapiDmaRwParallel: 8-byte RAM reads from 1 or 2 threads while
//    another thread adds and removes an MMIO and a RAM region, paced
//    (items/s; compare the two).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "capi/capi_internal.h"
#include "viommu.h"

namespace {

constexpr uint64_t kRamSize = 16 << 20;
constexpr uint64_t kVtdBase = 0xfed9'0000;

int NopRead(void*, uint64_t, uint64_t* data, uint32_t) {
  *data = 0;
  return 0;
}
int NopWrite(void*, uint64_t, uint64_t, uint32_t) { return 0; }

// A context with 16 MiB of RAM, and (vtd) VT-d translating 00:04.0's
// IOVA 0x1000 to GPA 0x40000 (3-level tables in RAM).
struct Setup {
  // RAM page aligned (as a VMM's mmap'd RAM): a VFIO container maps it
  // with the host IOMMU, which takes whole pages.
  explicit Setup(bool vtd)
      : storage(kRamSize + 4096),
        ram(reinterpret_cast<uint8_t*>(
            (reinterpret_cast<uintptr_t>(storage.data()) + 4095) &
            ~uintptr_t{4095})) {
    viommu_config cfg{sizeof(cfg), 0};
    viommu_ctx_new(&cfg, nullptr, nullptr, &ctx);
    viommu_region r{};
    r.size = sizeof(r);
    r.kind = VIOMMU_REGION_RAM;
    r.len = kRamSize;
    r.hva = ram;
    r.fd = -1;
    uint32_t id = 0;
    viommu_region_add(ctx, &r, &id);
    if (vtd) {
      viommu_iommu_new(ctx, "intel-iommu", nullptr, &iommu);
      viommu_ep_new(ctx, 0, 0, 0x20, iommu, &ep);
      Mem64(0x100000, 0x101000 | 1);                // root: bus 0
      Mem64(0x101000 + 0x20 * 16, 0x102000 | 1);    // context 00:04.0
      Mem64(0x101000 + 0x20 * 16 + 8, 1 | 1 << 8);  // 3 levels, domain 1
      Mem64(0x102000, 0x103000 | 3);
      Mem64(0x103000, 0x104000 | 3);
      Mem64(0x104000 + 8, 0x40000 | 3);  // IOVA 0x1000
      Reg(0x20, 0x100000, 8);            // RTADDR
      Reg(0x18, 1u << 30, 4);            // SRTP
      Reg(0x18, 1u << 31, 4);            // TE
    } else {
      viommu_ep_new(ctx, 0, 0, 0x20, nullptr, &ep);
    }
  }
  ~Setup() { viommu_ctx_free(ctx); }
  void Mem64(uint64_t gpa, uint64_t v) { std::memcpy(&ram[gpa], &v, 8); }
  void Reg(uint32_t off, uint64_t v, uint32_t size) {
    viommu_mmio_access(ctx, kVtdBase + off, &v, size, 1);
  }

  std::vector<uint8_t> storage;
  uint8_t* ram;  // page aligned, in storage
  viommu_ctx* ctx = nullptr;
  viommu_iommu* iommu = nullptr;
  viommu_ep* ep = nullptr;
};

void BM_CapiDmaRwIotlbHit(benchmark::State& state) {
  Setup s(/*vtd=*/true);
  uint64_t v = 0;
  if (viommu_dma_rw(s.ep, 0x1008, &v, 8, VIOMMU_DMA_READ, nullptr) != 0) {
    state.SkipWithError("DMA through VT-d failed");
    return;
  }
  for (auto _ : state) {
    viommu_dma_rw(s.ep, 0x1008, &v, 8, VIOMMU_DMA_READ, nullptr);
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_CapiDmaRwIotlbHit);

void BM_CxxDmaRwIotlbHit(benchmark::State& state) {
  Setup s(/*vtd=*/true);
  viommu::memory::AddressSpace* as = s.ep->as.get();
  const viommu::memory::MemTxAttrs attrs = s.ep->attrs;
  uint64_t v = 0;
  if (!as->Read(0x1008, &v, 8, attrs).ok()) {
    state.SkipWithError("DMA through VT-d failed");
    return;
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(as->Read(0x1008, &v, 8, attrs));
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_CxxDmaRwIotlbHit);

viommu_region MmioAt(uint64_t gpa) {
  viommu_region r{};
  r.size = sizeof(r);
  r.kind = VIOMMU_REGION_MMIO;
  r.gpa = gpa;
  r.len = 0x1000;
  r.read = &NopRead;
  r.write = &NopWrite;
  return r;
}

void BM_CapiRegionAdd(benchmark::State& state) {
  Setup s(/*vtd=*/false);
  viommu_vfio* dev = nullptr;
  if (viommu_vfio_attach(s.ep, "0000:01:00.0", VIOMMU_VFIO_TYPE1, &dev) != 0) {
    state.SkipWithError("viommu_vfio_attach failed");
    return;
  }
  const uint64_t base = 0x1'0000'0000;
  for (int64_t i = 0; i < state.range(0); ++i) {
    viommu_region r = MmioAt(base + uint64_t(i) * 0x2000);
    uint32_t id = 0;
    viommu_region_add(s.ctx, &r, &id);
  }
  std::vector<uint8_t> page(0x2000);  // a page-aligned 4 KiB inside
  viommu_region extra{};
  extra.size = sizeof(extra);
  extra.kind = VIOMMU_REGION_RAM;
  extra.gpa = base - 0x10000;
  extra.len = 0x1000;
  extra.hva = reinterpret_cast<void*>(
      (reinterpret_cast<uintptr_t>(page.data()) + 0xfff) & ~uintptr_t{0xfff});
  extra.fd = -1;
  for (auto _ : state) {
    uint32_t id = 0;
    viommu_region_add(s.ctx, &extra, &id);
    viommu_region_del(s.ctx, id);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CapiRegionAdd)->Arg(100)->Arg(10000);

// Thread 0 owns the context and a churn thread; every thread reads RAM.
Setup* g_parallel = nullptr;
std::atomic<bool> g_stop{false};
std::thread g_churn;

void BM_CapiDmaRwParallel(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_parallel = new Setup(/*vtd=*/false);
    g_stop = false;
    g_churn = std::thread([] {
      // An MMIO region and a RAM region (whose removal waits for the DMA
      // grace period) come and go, paced at ~10k changes/s: on a 2-core
      // machine an unpaced churn thread takes a whole core from the
      // readers, and the ratio would measure CPU share, not locking.
      viommu_region mmio = MmioAt(0x2'0000'0000);
      std::vector<uint8_t> mem(4096);
      viommu_region ram{};
      ram.size = sizeof(ram);
      ram.kind = VIOMMU_REGION_RAM;
      ram.gpa = 0x3'0000'0000;
      ram.len = mem.size();
      ram.hva = mem.data();
      ram.fd = -1;
      uint64_t n = 0;
      while (!g_stop.load(std::memory_order_relaxed)) {
        uint32_t id = 0;
        viommu_region_add(g_parallel->ctx, n++ % 2 == 0 ? &mmio : &ram, &id);
        viommu_region_del(g_parallel->ctx, id);
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    });
  }
  // The benchmark library starts the timed loop on every thread together,
  // after thread 0's setup above.
  uint64_t v = 0;
  const uint64_t off = 0x1000 * uint64_t(state.thread_index() + 1);
  for (auto _ : state) {
    viommu_dma_rw(g_parallel->ep, off, &v, 8, VIOMMU_DMA_READ, nullptr);
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    g_stop = true;
    g_churn.join();
    delete g_parallel;
    g_parallel = nullptr;
  }
}
BENCHMARK(BM_CapiDmaRwParallel)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
