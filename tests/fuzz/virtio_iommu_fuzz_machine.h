// The virtio_iommu fuzz target's machine (q35 with virtio-iommu-pci, edu,
// dma-testdev and vfio-pci over the model host, reused across inputs) and
// the MAP/UNMAP recorders on its watched endpoints.
#ifndef VIOMMU_TESTS_FUZZ_VIRTIO_IOMMU_FUZZ_MACHINE_H_
#define VIOMMU_TESTS_FUZZ_VIRTIO_IOMMU_FUZZ_MACHINE_H_

#include "tests/fuzz/machine_reuse.h"
#include "tests/fuzz/virtio_iommu_fuzz_layout.h"
#include "viommu/hw/i386/q35_machine.h"
#include "viommu/hw/virtio/virtio_pci_function.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/iommu_notifier_chains.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/system/vm.h"
#include "viommu/vfio/container.h"
#include "viommu/vfio/host/host_platform.h"

namespace viommu::fuzz::virtio_iommu_target {

// The mappings one endpoint's MAP/UNMAP notifier has heard of.
class Recorder final : public memory::IommuNotifier {
 public:
  struct Block {
    uint64_t last;
    uint64_t phys;
    uint32_t perm;
  };
  void Notify(const memory::IommuEvent& e) override {
    const uint64_t first = e.entry.iova;
    const uint64_t last = e.entry.iova + e.entry.addr_mask;
    if (e.type == memory::IommuEventType::kMap) {
      auto next = blocks_.upper_bound(last);
      if (next != blocks_.begin() && std::prev(next)->second.last >= first) {
        Fail("MAP event over a recorded mapping", first, last);
      }
      if (e.entry.perm == memory::kIommuNone) {
        Fail("MAP event without permission", first, last);
      }
      blocks_[first] = {last, e.entry.translated_addr, e.entry.perm};
    } else {
      auto it = blocks_.find(first);
      if (it == blocks_.end() || it->second.last != last) {
        Fail("UNMAP event not as mapped", first, last);
      }
      blocks_.erase(it);
    }
  }
  const std::map<uint64_t, Block>& blocks() const { return blocks_; }
  void Clear() { blocks_.clear(); }

 private:
  std::map<uint64_t, Block> blocks_;
};

struct Run {
  uint64_t first, last, phys;
  uint32_t perm;
  friend bool operator==(const Run&, const Run&) = default;
};

// Merges [first, last] -> phys pieces contiguous in IOVA and phys with the
// same permission, so block splits do not matter.
template <typename It, typename Get>
std::vector<Run> Merge(It begin, It end, Get get) {
  std::vector<Run> out;
  for (It i = begin; i != end; ++i) {
    Run r = get(*i);
    if (!out.empty()) {
      Run& p = out.back();
      if (p.last + 1 == r.first && p.perm == r.perm &&
          p.phys + (p.last - p.first) + 1 == r.phys) {
        p.last = r.last;
        continue;
      }
    }
    out.push_back(r);
  }
  return out;
}

class Machine {
 public:
  explicit Machine(bool boot_bypass) : boot_bypass_(boot_bypass) {
    system::VmConfig config;
    config.ram_size = kRamSize;
    config.devices.push_back(
        {.head = "virtio-iommu-pci",
         .props = {{"addr", "03.0"},
                   {"boot-bypass", boot_bypass ? "on" : "off"}}});
    config.devices.push_back(
        {.head = "edu",
         .props = {{"addr", "04.0"}, {"dma_mask", "0xffffffffffffffff"}}});
    config.devices.push_back(
        {.head = "dma-testdev", .props = {{"addr", "05.0"}}});
    config.devices.push_back(
        {.head = "vfio-pci",
         .props = {{"host", "0000:01:00.0"}, {"addr", "06.0"}}});
    auto vm = system::Vm::Create(config);
    if (!vm.ok()) {
      std::fprintf(stderr, "%s\n", vm.status().ToString().c_str());
      __builtin_trap();
    }
    vm_ = *std::move(vm);
    m_ = &vm_->machine();
    auto host = vfio::HostPciAddress::Parse("0000:01:00.0");
    if (!host.ok()) __builtin_trap();
    host_ = *host;
    if (container() == nullptr) Fail("vfio-pci has no container", 0, 0);
    memory::Translation t = m_->system_as().Translate(0, 1, false);
    if (t.mr == nullptr || t.mr->host() == nullptr) __builtin_trap();
    ram_hva_ = reinterpret_cast<uint64_t>(t.mr->host());
    iommu_ = dynamic_cast<vi::VirtioIommu*>(m_->viommu());
    if (iommu_ == nullptr) __builtin_trap();
    // Every function on bus 0 is an endpoint ATTACH and PROBE accept.
    m_->pci_bus().ForEachDevice(
        [&](hw::pci::PciDevice* dev) { known_.push_back(dev->devfn()); });
    for (uint16_t sid : known_) {
      if (!iommu_->EndpointBypassed(sid).has_value()) {
        Fail("a function on bus 0 is no endpoint", sid, 0);
      }
    }
    for (size_t i = 0; i < kWatched.size(); ++i) Register(i);
  }
  ~Machine() {
    for (auto& h : handles_) h.Reset();
  }

  vfio::VfioContainer* container() {
    return vm_->vfio().manager().ContainerOf(host_);
  }
  uint64_t ram_hva() const { return ram_hva_; }

  hw::Q35Machine& m() { return *m_; }
  vi::VirtioIommu& iommu() { return *iommu_; }
  bool boot_bypass() const { return boot_bypass_; }
  const std::vector<uint16_t>& known() const { return known_; }
  Recorder& recorder(size_t i) { return recorders_[i]; }
  vio::VirtioPciFunction* function() {
    return static_cast<vio::VirtioPciFunction*>(
        m_->pci_bus().Find(kIommuDevfn));
  }

  void Register(size_t i) {
    handles_[i].Reset();
    recorders_[i].Clear();
    memory::MemoryRegion* mr = iommu_->IommuRegion(kWatched[i]);
    if (mr == nullptr || mr->iommu() == nullptr) {
      Fail("a watched endpoint has no IOMMU region", kWatched[i], 0);
    }
    auto h = mr->iommu()->Register(&recorders_[i],
                                   {.flags = memory::kNotifyIotlbEvents});
    if (!h.ok()) Fail("MAP+UNMAP registration refused", kWatched[i], 0);
    handles_[i] = std::move(*h);
    if (!mr->iommu()->Replay(handles_[i]).ok()) {
      Fail("replay failed", kWatched[i], 0);
    }
  }

  void ResetForReuse() {
    fuzz::ResetForReuse(*m_);
    for (size_t i = 0; i < kWatched.size(); ++i) {
      if (!recorders_[i].blocks().empty()) {
        Fail("mappings recorded after system_reset", kWatched[i],
             recorders_[i].blocks().size());
      }
    }
  }

 private:
  const bool boot_bypass_;
  std::unique_ptr<system::Vm> vm_;
  hw::Q35Machine* m_ = nullptr;  // vm_'s
  vfio::HostPciAddress host_;
  uint64_t ram_hva_ = 0;
  vi::VirtioIommu* iommu_ = nullptr;  // the machine's
  std::vector<uint16_t> known_;
  std::array<Recorder, kWatched.size()> recorders_;
  std::array<memory::IommuNotifierHandle, kWatched.size()> handles_;
};

}  // namespace viommu::fuzz::virtio_iommu_target

#endif  // VIOMMU_TESTS_FUZZ_VIRTIO_IOMMU_FUZZ_MACHINE_H_
