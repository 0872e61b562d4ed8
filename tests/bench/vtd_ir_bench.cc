// VT-d interrupt remapping: InterruptRemapper::Remap of a remappable-format
// MSI, with the IRTE in the interrupt-entry cache and without, against one
// flat_hash_map probe. The unit (IntelIommu) is programmed through its
// registers; the table lives in guest RAM read through the system
// AddressSpace, as in a machine.
// Goals (issue 14):
//   BM_VtdIrHit  <= 2 x BM_IrFlatHashMapLookupBaseline
//   BM_VtdIrMiss <= 250 ns
// Each benchmark checks it measured what it claims (cache hits, IRTE
// reads, nothing blocked) and fails with SkipWithError otherwise.
// Measured (build/, debugoptimized, 2 vCPUs shared with a CI build, CPU
// time, medians of 9 in one run): baseline 2.53 ns, hit 4.71 ns (1.86x:
// met, since the hit became an inline probe of a direct-indexed cache
// holding the composed message), miss 47.5 ns (one 16-byte AddressSpace
// read). Before that inline path: hit 9.0 ns against 2.8 ns (3.2x).
#include <cstdint>
#include <memory>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "benchmark/benchmark.h"
#include "viommu/hw/iommu/intel_iommu.h"
#include "viommu/hw/iommu/vtd_guest_memory.h"
#include "viommu/hw/iommu/vtd_interrupt_remap.h"
#include "viommu/hw/iommu/vtd_properties.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/util/types.h"

namespace viommu::vtd {
namespace {

constexpr uint32_t kEntries = 1024;  // IRTA.S = 9
constexpr uint64_t kIrt = 0x10'0000;
constexpr uint16_t kSid = 0x0020;

uint64_t Remappable(uint32_t handle) {
  return 0xfee0'0000 | uint64_t{handle & 0x7fff} << 5 | 1 << 4;
}

// RAM, an IntelIommu with IR on over a 1024-entry table of valid IRTEs
// (SVT 1, requester 00:04.0), and a remapper reading it.
struct IrBox {
  IrBox() {
    root = memory::MemoryRegion::CreateContainer(&sys, "root", kSize2To64);
    root->AddSubregion(0, *memory::MemoryRegion::CreateRam(&sys, "ram",
                                                           4 << 20));
    as = std::make_unique<memory::AddressSpace>(&sys, root, "memory");
    iommu = *IntelIommu::Create(Properties{}, as.get());
    mem = std::make_unique<AddressSpaceGuestMemory>(as.get());
    ir = std::make_unique<InterruptRemapper>(
        iommu.get(), mem.get(), [](uint16_t, FaultReason, uint16_t) {});
    for (uint32_t i = 0; i < kEntries; ++i) {
      const uint64_t e[2] = {1 | uint64_t{0x20 + i % 200} << 16 |
                                 uint64_t{i & 0xff} << 40,
                             uint64_t{1} << 18 | kSid};
      (void)as->Write(kIrt + i * 16, e, sizeof(e));
    }
    (void)iommu->Write(Offset(Reg64::kIrta), kIrt | 9, 8, {});
    (void)iommu->Write(Offset(Reg32::kGcmd), kGcmdSirtp, 4, {});
    (void)iommu->Write(Offset(Reg32::kGcmd), kGcmdIre, 4, {});
  }
  bool ok() const {
    return iommu->ir_enabled() && iommu->ir_table_size() == kEntries;
  }

  memory::MemorySystem sys;
  std::shared_ptr<memory::MemoryRegion> root;
  std::unique_ptr<memory::AddressSpace> as;
  std::unique_ptr<IntelIommu> iommu;
  std::unique_ptr<AddressSpaceGuestMemory> mem;
  std::unique_ptr<InterruptRemapper> ir;
};

// Handles in a scattered order, so neither the cache nor the table is
// walked sequentially.
uint32_t HandleAt(size_t i) {
  return static_cast<uint32_t>((i * 617) & (kEntries - 1));
}

void BM_IrFlatHashMapLookupBaseline(benchmark::State& state) {
  absl::flat_hash_map<uint16_t, uint64_t> m;
  for (uint32_t i = 0; i < kEntries; ++i) m[static_cast<uint16_t>(i)] = i * 3;
  size_t i = 0;
  for (auto _ : state) {
    auto it = m.find(static_cast<uint16_t>(HandleAt(i++)));
    benchmark::DoNotOptimize(it->second);
  }
}
BENCHMARK(BM_IrFlatHashMapLookupBaseline);

// Every IRTE cached: decode, cache probe, checks, compose.
void BM_VtdIrHit(benchmark::State& state) {
  IrBox box;
  if (!box.ok()) return state.SkipWithError("IR setup failed");
  for (uint32_t h = 0; h < kEntries; ++h) {
    (void)box.ir->Remap(Remappable(h), 0, kSid);
  }
  const InterruptRemapStats before = box.ir->stats();
  size_t i = 0;
  for (auto _ : state) {
    std::optional<InterruptMessage> m =
        box.ir->Remap(Remappable(HandleAt(i++)), 0, kSid);
    benchmark::DoNotOptimize(m);
  }
  const InterruptRemapStats& after = box.ir->stats();
  if (after.irte_reads != before.irte_reads ||
      after.remapped - before.remapped !=
          static_cast<uint64_t>(state.iterations()) ||
      after.blocked != 0) {
    state.SkipWithError("not every remap hit the interrupt-entry cache");
  }
}
BENCHMARK(BM_VtdIrHit);

// The IRTE read from guest memory each time (its cache entry dropped by
// an index-selective invalidation first, as an IEC descriptor would).
void BM_VtdIrMiss(benchmark::State& state) {
  IrBox box;
  if (!box.ok()) return state.SkipWithError("IR setup failed");
  size_t i = 0;
  for (auto _ : state) {
    const uint32_t h = HandleAt(i++);
    box.ir->InvalidateEntries(static_cast<uint16_t>(h), 0);
    std::optional<InterruptMessage> m = box.ir->Remap(Remappable(h), 0, kSid);
    benchmark::DoNotOptimize(m);
  }
  const InterruptRemapStats& s = box.ir->stats();
  if (s.irte_reads != static_cast<uint64_t>(state.iterations()) ||
      s.blocked != 0) {
    state.SkipWithError("not every remap read its IRTE");
  }
}
BENCHMARK(BM_VtdIrMiss);

}  // namespace
}  // namespace viommu::vtd

BENCHMARK_MAIN();
