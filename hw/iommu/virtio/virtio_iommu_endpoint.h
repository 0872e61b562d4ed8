// hw/iommu/virtio/virtio_iommu_endpoint.h — the DMA view of one endpoint
// (PCI function) behind virtio-iommu (QEMU 7.2's IOMMUDevice with its
// bypass and IOMMU regions). Private to hw/iommu/virtio.
//
//   EndpointSpace ep(&sys, system_root, /*bus=*/0, /*devfn=*/0x20, &viommu);
//   bus_master_root = ep.root();       // "virtio-iommu-04.0"
//   ep.SetBypass(false);               // translate through the domain
//   ep.notifiers()->Register(...);     // MAP/UNMAP chains
//
// Layout: root "virtio-iommu-SS.F" (2^64 container) holding
//   "virtio-iommu-SS.F-bypass", an alias of the system memory container,
//   and "virtio-iommu-SS.F-iommu", the IOMMU region (2^64) translated by
//   the VirtioIommu for this endpoint's requester id;
// exactly one is enabled (QEMU's virtio_iommu_switch_address_space).
// The x86 MSI window needs no alias: translation maps it to itself.
//
// Lifetime: the regions refer to the model member, which is destroyed
// last; the VirtioIommu (not owned) outlives this.
// Threading: control context only (SetBypass); Translate via the model on
// any thread.
#ifndef VIOMMU_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_ENDPOINT_H_
#define VIOMMU_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_ENDPOINT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "viommu/hw/iommu/virtio/virtio_iommu.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/iommu_notifier_chains.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::virtio_iommu {

class EndpointSpace {
 public:
  // Starts with the bypass alias enabled when `bypassed`.
  EndpointSpace(memory::MemorySystem* sys,
                std::shared_ptr<memory::MemoryRegion> system_root,
                uint8_t bus, uint8_t devfn, VirtioIommu* iommu, bool bypassed);
  EndpointSpace(const EndpointSpace&) = delete;
  EndpointSpace& operator=(const EndpointSpace&) = delete;
  ~EndpointSpace();

  // One topology change when it flips.
  void SetBypass(bool bypassed);
  bool bypassed() const { return bypassed_; }

  const std::shared_ptr<memory::MemoryRegion>& root() const { return root_; }
  memory::MemoryRegion* iommu_region() const { return iommu_.get(); }
  memory::IommuNotifierChains* notifiers() const { return iommu_->iommu(); }
  uint16_t sid() const { return model_.sid(); }

  // "virtio-iommu-SS.F".
  static std::string Name(uint8_t devfn);

 private:
  class Model final : public memory::IommuModel {
   public:
    Model(VirtioIommu* iommu, uint16_t sid) : iommu_(iommu), sid_(sid) {}
    memory::IommuTlbEntry Translate(Iova iova, memory::IommuPerm access,
                                    int iommu_idx) override;
    [[nodiscard]] absl::Status Replay(int iommu_idx,
                                      memory::ReplaySink emit) override;
    // QEMU 7.2 refuses DEVIOTLB_UNMAP notifiers.
    [[nodiscard]] absl::Status NotifyFlagChanged(
        memory::NotifierFlags old_flags,
        memory::NotifierFlags new_flags) override;
    uint16_t sid() const { return sid_; }

   private:
    VirtioIommu* iommu_;  // not owned
    uint16_t sid_;
  };

  memory::MemorySystem* sys_;  // not owned
  Model model_;                // declared first: destroyed after regions
  bool bypassed_;
  std::shared_ptr<memory::MemoryRegion> root_;
  std::shared_ptr<memory::MemoryRegion> bypass_;
  std::shared_ptr<memory::MemoryRegion> iommu_;
};

}  // namespace viommu::virtio_iommu

#endif  // VIOMMU_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_ENDPOINT_H_
