// One 4 KiB guest mapping carried to a type1-model container, through
// virtio-iommu and through VT-d, in one run (issue 13: the virtio-iommu
// path may cost at most 1.5x the VT-d PSI path).
//  * BM_VirtioIommuMapToContainer: a MAP request (VirtioIommu::
//    HandleRequest, without the virtqueue) for a new page of a domain whose
//    endpoint (00:04.0) is a passthrough device's address space: the MAP
//    event goes down the notifier chain to the container and the model's
//    MAP_DMA.
//  * BM_VtdPsiMapToContainer: the same page through intel-iommu
//    (caching-mode=on, 3 levels): the leaf PTE written by the guest helper
//    (two table reads and a write), a register-based PSI, the shadow sync's
//    MAP to the same container.
// Both map kPages distinct pages, one per iteration (items = mappings).
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "benchmark/benchmark.h"
#include "tests/hw/iommu/vtd_machine_guest.h"
#include "viommu/hw/i386/q35_machine.h"
#include "viommu/hw/iommu/virtio/virtio_iommu.h"
#include "viommu/memory/address_space.h"
#include "viommu/vfio/host/model/model_host.h"
#include "viommu/vfio/vfio_manager.h"

namespace viommu {
namespace {

constexpr uint8_t kDevfn = 0x20;
constexpr uint64_t kPages = 20000;
constexpr uint64_t kIovaBase = 0x4000'0000;
constexpr uint64_t kGpaBase = 0x0800'0000;  // 128 MiB in, 64 MiB of pages

vfio::HostPciAddress Host() {
  return *vfio::HostPciAddress::Parse("0000:01:00.0");
}

// A machine with `iommu` and edu at 04.0, and a type1 container over the
// model host attached to 04.0's DMA address space.
struct Box {
  explicit Box(const hw::DeviceSpec& iommu)
      : host(vfio::DefaultHostPlatform()) {
    m = *hw::Q35Machine::Create({.ram_size = uint64_t{512} << 20});
    ok = m->AddDevice(iommu).ok() &&
         m->AddDevice({.driver = "edu", .props = {{"addr", "4"}}}).ok();
  }
  bool Attach() {
    as = std::make_unique<memory::AddressSpace>(
        &m->memory(), m->viommu()->DmaRoot(0, kDevfn), "dev");
    vfio = std::make_unique<vfio::VfioManager>(&host);
    auto c = vfio->AttachDevice(as.get(), {.host = Host()});
    if (!c.ok()) return false;
    container = *c;
    return true;
  }
  ~Box() {
    vfio.reset();
    as.reset();
  }
  vfio::model::ModelHost host;
  std::unique_ptr<hw::Q35Machine> m;
  std::unique_ptr<memory::AddressSpace> as;
  std::unique_ptr<vfio::VfioManager> vfio;
  vfio::VfioContainer* container = nullptr;
  bool ok = false;
};

void BM_VirtioIommuMapToContainer(benchmark::State& state) {
  Box box({.driver = "virtio-iommu-pci", .props = {{"addr", "3"}}});
  if (!box.ok) return state.SkipWithError("machine setup failed");
  auto* viommu = static_cast<virtio_iommu::VirtioIommu*>(box.m->viommu());
  std::array<uint8_t, virtio_iommu::kProbeReplySize> reply{};
  std::vector<uint8_t> attach(20, 0);
  attach[0] = virtio_iommu::kReqAttach;
  attach[4] = 1;
  attach[8] = kDevfn;
  if (!box.Attach() || viommu->HandleRequest(attach, 4, reply).used_len != 4 ||
      reply[0] != 0) {
    return state.SkipWithError("attach failed");
  }
  std::vector<uint8_t> map(36, 0);
  map[0] = virtio_iommu::kReqMap;
  map[4] = 1;
  map[32] = 3;
  uint64_t i = 0;
  for (auto _ : state) {
    const uint64_t iova = kIovaBase + i * 4096;
    const uint64_t gpa = kGpaBase + (i % 0x4000) * 4096;
    for (int b = 0; b < 8; ++b) {
      map[8 + b] = static_cast<uint8_t>(iova >> 8 * b);
      map[16 + b] = static_cast<uint8_t>((iova + 0xfff) >> 8 * b);
      map[24 + b] = static_cast<uint8_t>(gpa >> 8 * b);
    }
    viommu->HandleRequest(map, 4, reply);
    ++i;
  }
  if (box.container->mappings().size() != i || reply[0] != 0) {
    return state.SkipWithError("a MAP did not map exactly its page");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VirtioIommuMapToContainer)
    ->Iterations(kPages)
    ->Unit(benchmark::kMicrosecond);

void BM_VtdPsiMapToContainer(benchmark::State& state) {
  Box box({.driver = "intel-iommu", .props = {{"caching-mode", "on"}}});
  if (!box.ok) return state.SkipWithError("machine setup failed");
  vtd::testing::VtdMachineGuest guest(box.m.get(), 3);
  guest.SetContext(kDevfn, 1);
  // The tables down to level 1 exist before timing (leaves empty).
  for (uint64_t p = 0; p < kPages; p += 512) {
    guest.Map(kIovaBase + p * 4096, 0, 4096, memory::kIommuNone);
  }
  guest.Enable();
  if (!box.Attach()) return state.SkipWithError("attach failed");
  uint64_t i = 0;
  for (auto _ : state) {
    const uint64_t iova = kIovaBase + i * 4096;
    guest.Map(iova, kGpaBase + (i % 0x4000) * 4096, 4096,
              memory::kIommuReadWrite);
    guest.InvalidatePage(1, iova, 0);
    ++i;
  }
  if (box.container->mappings().size() != i) {
    return state.SkipWithError("a PSI did not map exactly its page");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VtdPsiMapToContainer)
    ->Iterations(kPages)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace viommu

BENCHMARK_MAIN();
