// Benchmarks of the model VFIO host (run by `make bench`):
//  * BM_Type1ModelMap/N: one MAP_DMA + UNMAP_DMA of a 4 KiB page through
//    ModelHost::Ioctl into a type1v2 container with one attached group (so
//    every map pins, charges and maps into a HostIommuDomain), with N other
//    mappings already present. items_per_second counts map+unmap pairs.
//    Goal: the N=10000 case within 2x of N=0 (btree dma list, O(log n)).
#include <sys/mman.h>

#include <cstdint>

#include "benchmark/benchmark.h"
#include "viommu/vfio/host/host_backend.h"
#include "viommu/vfio/host/model/model_host.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio::model {
namespace {

constexpr uint64_t kPage = 4096;

void BM_Type1ModelMap(benchmark::State& state) {
  const uint64_t prefill = static_cast<uint64_t>(state.range(0));
  ModelHost host(DefaultHostPlatform());
  int container = host.Open("/dev/vfio/vfio");
  const int group = host.Open("/dev/vfio/1");
  if (host.Ioctl(group, uapi::kVfioGroupSetContainer, AsArg(&container)) != 0 ||
      host.Ioctl(container, uapi::kVfioSetIommu, uapi::kVfioType1v2Iommu) !=
          0) {
    state.SkipWithError("container setup failed");
    return;
  }
  const uint64_t len = (prefill + 1) * kPage;
  void* buf = mmap(nullptr, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  const uint64_t vaddr = reinterpret_cast<uint64_t>(buf);
  uapi::vfio_iommu_type1_dma_map m{
      .argsz = sizeof(m),
      .flags = uapi::kDmaMapFlagRead | uapi::kDmaMapFlagWrite};
  // Prefill at 8 KiB strides from 1 GiB; the measured page sits in the
  // middle of them.
  for (uint64_t i = 0; i < prefill; ++i) {
    m.vaddr = vaddr + i * kPage;
    m.iova = (1ull << 30) + i * 2 * kPage;
    m.size = kPage;
    if (host.Ioctl(container, uapi::kVfioIommuMapDma, AsArg(&m)) != 0) {
      state.SkipWithError("prefill map failed");
      return;
    }
  }
  const uint64_t iova = (1ull << 30) + prefill * kPage + kPage;  // a hole
  m.vaddr = vaddr + prefill * kPage;
  m.iova = iova;
  m.size = kPage;
  uapi::vfio_iommu_type1_dma_unmap u{
      .argsz = sizeof(u), .iova = iova, .size = kPage};
  for (auto _ : state) {
    if (host.Ioctl(container, uapi::kVfioIommuMapDma, AsArg(&m)) != 0) {
      state.SkipWithError("map failed");
      break;
    }
    u.size = kPage;
    if (host.Ioctl(container, uapi::kVfioIommuUnmapDma, AsArg(&u)) != 0) {
      state.SkipWithError("unmap failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  host.Close(group);
  host.Close(container);
  munmap(buf, len);
}
BENCHMARK(BM_Type1ModelMap)->Arg(0)->Arg(10000);

}  // namespace
}  // namespace viommu::vfio::model

BENCHMARK_MAIN();
