// The container layer's own cost on the direct MAP/UNMAP path, with the
// kernel taken out: LinuxHost over a SysCalls table whose MAP_DMA and
// UNMAP_DMA return 0 at once (the attach before the loop is answered by
// the model). What real hardware adds on top is the ioctl itself
// (tests/host/type1_map_bench.cc measures both on a real Linux 6.1).
//  * BM_NullKernelRawPair: MAP_DMA + UNMAP_DMA straight into SysCalls.
//  * BM_NullKernelContainerPair/N: VfioContainer::DmaMap + DmaUnmap of the
//    same 4 KiB page through Type1Container and LinuxHost, with N other
//    mappings in the container's table.
// The difference per pair is what the container adds to every mapping.
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <memory>

#include "benchmark/benchmark.h"
#include "tests/vfio/host/linux/model_syscalls.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/vfio/host/linux/linux_host.h"
#include "viommu/vfio/host/model/model_host.h"
#include "viommu/vfio/host/vfio_uapi.h"
#include "viommu/vfio/type1_container.h"
#include "viommu/vfio/vfio_manager.h"

namespace viommu::vfio {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kIova = 0x100000;

// The model answers everything but MAP/UNMAP once `null_dma` is set.
class NullDmaSysCalls final : public SysCalls {
 public:
  explicit NullDmaSysCalls(HostBackend* model) : model_(model) {}
  int Open(const char* path, int flags) override {
    return model_.Open(path, flags);
  }
  int Close(int fd) override { return model_.Close(fd); }
  int Ioctl(int fd, unsigned long request, uintptr_t arg) override {
    if (null_dma && (request == uapi::kVfioIommuMapDma ||
                     request == uapi::kVfioIommuUnmapDma)) {
      return 0;
    }
    return model_.Ioctl(fd, request, arg);
  }
  int64_t Pread(int fd, void* buf, uint64_t len, uint64_t off) override {
    return model_.Pread(fd, buf, len, off);
  }
  int64_t Pwrite(int fd, const void* buf, uint64_t len, uint64_t off) override {
    return model_.Pwrite(fd, buf, len, off);
  }
  void* Mmap(int fd, uint64_t len, uint64_t off) override {
    return model_.Mmap(fd, len, off);
  }
  int Munmap(void* addr, uint64_t len) override {
    return model_.Munmap(addr, len);
  }
  bool null_dma = false;

 private:
  ModelSysCalls model_;
};

struct Stack {
  model::ModelHost model{DefaultHostPlatform()};
  NullDmaSysCalls sys{&model};
  FakeSysfs sysfs{model};
  LinuxHost host{{.sysfs_root = sysfs.root(), .syscalls = &sys}};
  memory::MemorySystem mem;
  std::shared_ptr<memory::MemoryRegion> root =
      memory::MemoryRegion::CreateContainer(&mem, "system", kSize2To64);
  memory::AddressSpace as{&mem, root, "memory"};
  std::unique_ptr<VfioManager> manager = std::make_unique<VfioManager>(&host);
  Type1Container* container = nullptr;
  void* page = mmap(nullptr, kPage, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

  Stack() {
    absl::StatusOr<VfioContainer*> c = manager->AttachDevice(
        &as, {.host = *HostPciAddress::Parse("0000:01:00.0")});
    if (c.ok() && (*c)->backend() == ContainerBackend::kType1) {
      container = static_cast<Type1Container*>(*c);
    }
    sys.null_dma = true;
  }
  ~Stack() {
    sys.null_dma = false;
    manager.reset();
    munmap(page, kPage);
  }
};

void BM_NullKernelRawPair(benchmark::State& state) {
  Stack s;
  if (s.container == nullptr) {
    state.SkipWithError("attach failed");
    return;
  }
  uapi::vfio_iommu_type1_dma_map map{
      .argsz = sizeof(map),
      .flags = uapi::kDmaMapFlagRead | uapi::kDmaMapFlagWrite,
      .vaddr = reinterpret_cast<uint64_t>(s.page),
      .iova = kIova,
      .size = kPage};
  uapi::vfio_iommu_type1_dma_unmap unmap{
      .argsz = sizeof(unmap), .flags = 0, .iova = kIova, .size = kPage};
  const int fd = s.container->fd();
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        s.sys.Ioctl(fd, uapi::kVfioIommuMapDma, AsArg(&map)));
    benchmark::DoNotOptimize(
        s.sys.Ioctl(fd, uapi::kVfioIommuUnmapDma, AsArg(&unmap)));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NullKernelRawPair);

void BM_NullKernelContainerPair(benchmark::State& state) {
  Stack s;
  if (s.container == nullptr) {
    state.SkipWithError("attach failed");
    return;
  }
  const Hva hva = reinterpret_cast<Hva>(s.page);
  // N other mappings in the table (guest RAM, earlier guest mappings).
  for (int64_t i = 0; i < state.range(0); ++i) {
    if (!s.container
             ->DmaMap(0x40000000 + uint64_t(i) * kPage, kPage, hva, false)
             .ok()) {
      state.SkipWithError("prefill failed");
      return;
    }
  }
  for (auto _ : state) {
    if (!s.container->DmaMap(kIova, kPage, hva, false).ok() ||
        !s.container->DmaUnmap(kIova, Size128(kPage)).ok()) {
      state.SkipWithError("container map/unmap failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NullKernelContainerPair)->Arg(0)->Arg(16)->Arg(100000);

}  // namespace
}  // namespace viommu::vfio

BENCHMARK_MAIN();
