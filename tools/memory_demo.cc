// memory_demo — a guided tour of the memory/ layer, run by `make run`.
//
// Builds a small guest address space (RAM, an MMIO register block, an alias
// and an IOMMU region backed by the reference TableIommu), attaches a
// listener that prints what it is told and a notifier on each IOMMU chain,
// then changes the topology and the IOMMU mappings and shows the events and
// a few DMA accesses. Exit status 0 when every check along the way held.
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/iommu_notifier_chains.h"
#include "viommu/memory/memory_listener.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/memory/mmio_ops.h"
#include "viommu/memory/table_iommu.h"

namespace viommu::memory {
namespace {

std::string Describe(const MemoryRegionSection& s) {
  Range r = s.AddressRange();
  return absl::StrFormat("[0x%08x, 0x%08x] %-9s %-12s +0x%x%s", r.first, r.last,
                         RegionKindName(s.mr->kind()), s.mr->name(),
                         s.offset_within_region, s.readonly ? " ro" : "");
}

class PrintingListener final : public MemoryListener {
 public:
  explicit PrintingListener(std::string name) : name_(std::move(name)) {}
  void Begin() override { std::printf("  %s: begin\n", name_.c_str()); }
  void Commit() override { std::printf("  %s: commit\n", name_.c_str()); }
  void RegionAdd(const MemoryRegionSection& s) override {
    std::printf("  %s:   add %s\n", name_.c_str(), Describe(s).c_str());
  }
  void RegionDel(const MemoryRegionSection& s) override {
    std::printf("  %s:   del %s\n", name_.c_str(), Describe(s).c_str());
  }

 private:
  std::string name_;
};

class PrintingNotifier final : public IommuNotifier {
 public:
  explicit PrintingNotifier(const char* chain) : chain_(chain) {}
  void Notify(const IommuEvent& e) override {
    const char* type = e.type == IommuEventType::kMap ? "MAP" : "UNMAP";
    std::printf("  %s chain: %-5s iova 0x%" PRIx64 "-0x%" PRIx64
                " -> 0x%" PRIx64 " perm %d\n",
                chain_, type, e.entry.iova, e.entry.iova + e.entry.addr_mask,
                e.entry.translated_addr, e.entry.perm);
  }

 private:
  const char* chain_;
};

// A 16-byte register block: reads return the last value written, plus one.
class CounterRegs final : public MmioOps {
 public:
  MemTxResult Read(uint64_t offset, uint64_t* value, unsigned,
                   MemTxAttrs) override {
    *value = regs_[offset / 4] + 1;
    return MemTxResult::Ok();
  }
  MemTxResult Write(uint64_t offset, uint64_t value, unsigned,
                    MemTxAttrs) override {
    regs_[offset / 4] = static_cast<uint32_t>(value);
    return MemTxResult::Ok();
  }
  AccessRules valid() const override { return {4, 4, false}; }
  AccessRules impl() const override { return {4, 4, false}; }

 private:
  uint32_t regs_[4] = {};
};

int failures = 0;

void Check(bool ok, const char* what) {
  std::printf("  %s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

int Run() {
  MemorySystem sys;
  auto system_root = MemoryRegion::CreateContainer(&sys, "system", kSize2To64);
  auto ram = *MemoryRegion::CreateRam(&sys, "ram", 0x10'0000);
  CounterRegs regs;
  auto mmio = MemoryRegion::CreateMmio(&sys, "counter", 0x10, &regs);
  auto ram_hi =
      MemoryRegion::CreateAlias(&sys, "ram-hi-alias", ram, 0x8'0000, 0x8'0000);

  std::printf("1. Build the system address space (one transaction)\n");
  AddressSpace system_as(&sys, system_root, "memory");
  PrintingListener listener("listener");
  ListenerHandle lh = system_as.RegisterListener(&listener);
  {
    MemorySystem::Transaction txn(&sys);
    system_root->AddSubregion(0, ram);
    system_root->AddSubregion(0x1000'0000, mmio);
    system_root->AddSubregion(0x2000'0000, ram_hi);
  }

  std::printf(
      "\n2. Overlap: a higher-priority MMIO block over RAM at 0x4000\n");
  auto overlay = MemoryRegion::CreateMmio(&sys, "overlay", 0x10, &regs);
  system_root->AddSubregionOverlap(0x4000, overlay, 1);

  std::printf("\n3. Accesses through the address space\n");
  uint32_t v = 0x1234;
  Check(system_as.Write(0x8'0010, &v, 4).ok(), "write RAM at 0x80010");
  uint32_t back = 0;
  Check(system_as.Read(0x2000'0010, &back, 4).ok() && back == 0x1234,
        "read it back through the alias at 0x20000010");
  v = 41;
  Check(system_as.Write(0x1000'0000, &v, 4).ok(), "MMIO write 41");
  Check(system_as.Read(0x1000'0000, &back, 4).ok() && back == 42,
        "MMIO read returns 42");
  uint16_t half = 0;
  Check(system_as.Read(0x1000'0000, &half, 2) == MemTxResult::DecodeError(),
        "a 2-byte MMIO access is rejected (valid sizes are 4..4)");

  std::printf("\n4. An IOMMU region for a device, notifiers on both chains\n");
  TableIommu table(&system_as);
  auto dmar = MemoryRegion::CreateIommu(&sys, "dmar", kSize2To64, &table);
  table.Attach(dmar->iommu());
  AddressSpace dev_as(&sys, dmar, "device-dma");
  PrintingNotifier map_printer("MAP  "), unmap_printer("UNMAP");
  auto map_handle = dmar->iommu()->Register(
      &map_printer, {.flags = kNotifyMap, .range = {0, 0xffff'ffff}});
  auto unmap_handle = dmar->iommu()->Register(
      &unmap_printer, {.flags = kNotifyUnmap, .range = {0, 0xffff'ffff}});
  Check(map_handle.ok() && unmap_handle.ok(), "registered both notifiers");

  std::printf("\n5. Map IOVA 0x10000 -> GPA 0x80000, remap in place, unmap\n");
  Check(table.Map(0x1'0000, 0x1000, 0x8'0000, kIommuReadWrite).ok(),
        "map (MAP only)");
  Check(dev_as.Read(0x1'0010, &back, 4).ok() && back == 0x1234,
        "device DMA at IOVA 0x10010 reads the RAM value");
  Check(table.Map(0x1'0000, 0x1000, 0x9'0000, kIommuRead).ok(),
        "remap in place (UNMAP strictly before MAP)");
  Check(dev_as.Write(0x1'0010, &v, 4) == MemTxResult::DecodeError(),
        "device DMA write to a read-only IOVA is refused");
  Check(table.Unmap(0x1'0000, 0x1000).ok(), "unmap (UNMAP only)");
  Check(dev_as.Read(0x1'0010, &back, 4) == MemTxResult::DecodeError(),
        "device DMA to an unmapped IOVA is refused");

  std::printf("\n6. Replay delivers the existing mappings as MAPs\n");
  Check(table.Map(0x2'0000, 0x1000, 0xa'0000, kIommuReadWrite).ok(),
        "map one more page");
  Check(dmar->iommu()->Replay(*map_handle).ok(), "replay to the MAP notifier");
  Check(dmar->iommu()->Replay(*unmap_handle).ok(),
        "replay to the UNMAP-only notifier (delivers nothing)");

  std::printf(
      "\n7. Tear down: the listener's handle replays the view as dels\n");
  map_handle->Reset();
  unmap_handle->Reset();
  lh.Reset();

  std::printf("\n%s\n", failures == 0 ? "memory_demo: all checks passed"
                                      : "memory_demo: some checks FAILED");
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace viommu::memory

int main() { return viommu::memory::Run(); }
