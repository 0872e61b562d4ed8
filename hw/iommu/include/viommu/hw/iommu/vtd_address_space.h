// viommu/hw/iommu/vtd_address_space.h — the DMA view of one PCI function
// behind VT-d (QEMU 7.2's VTDAddressSpace): what the PCI bus hands the
// device as its DMA root.
//
//   VtdSharedRegions shared = VtdSharedRegions::Create(&sys, system_root,
//                                                      interrupt_window);
//   VtdAddressSpace as(&sys, shared, /*bus=*/0, /*devfn=*/0x20, &model);
//   AddressSpace dma(&sys, as.root(), "vtd-04.0");  // a device's DMA
//   as.SetUseIommu(true);            // DMAR on and the context not PT
//   as.notifiers()->Register(...);   // "vtd-04.0-dmar"'s MAP/UNMAP chains
//
// Layout (QEMU's vtd_find_add_as), all per device except `nodmar`'s target:
//   root "vtd-SS.F" (2^64 container)
//    ├─ "vtd-nodmar" alias (prio 0) of the shared container
//    │     "vtd-nodmar-shared": system memory (prio 0) + "vtd-ir" alias of
//    │     the interrupt window at 0xfee00000 (prio 1)
//    └─ "vtd-SS.F-dmar" IOMMU region (prio 0, 2^64), translated by `model`,
//          containing "vtd-SS.F-ir" alias of the interrupt window at
//          0xfee00000 (prio 1)
// The interrupt window is the unit's "vtd-ir" MMIO front end
// (vtd_interrupt_remap.h InterruptWindow) of the machine's MSI window:
// it forwards every access unchanged until interrupt remapping is on.
// Exactly one of nodmar / dmar is enabled. The interrupt window splits the
// IOMMU region into two sections, [0, 0xfedfffff] and [0xfef00000, 2^64-1],
// so a shadowing consumer sees two IOMMU sections per device, as with QEMU.
//
// Threading: control context only (construction, SetUseIommu). The
// regions themselves follow memory_region.h.
#ifndef VIOMMU_HW_IOMMU_VTD_ADDRESS_SPACE_H_
#define VIOMMU_HW_IOMMU_VTD_ADDRESS_SPACE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "viommu/hw/iommu/vtd_interrupt_remap.h"
#include "viommu/hw/iommu/vtd_regs.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/iommu_notifier_chains.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::vtd {

// Regions shared by every device view of one remapping unit.
struct VtdSharedRegions {
  // `system_root`: the system memory container (aliased, not modified).
  // `msi_window`: the MMIO region devices' interrupt writes to
  // 0xfee00000-0xfeefffff reach (the machine's MSI window); it may already
  // have a parent. Devices reach it through the "vtd-ir" front end.
  // REQUIRES: msi_window is MMIO and msi_window->size() >=
  // kInterruptWindowSize.
  static VtdSharedRegions Create(
      memory::MemorySystem* sys,
      std::shared_ptr<memory::MemoryRegion> system_root,
      std::shared_ptr<memory::MemoryRegion> msi_window);

  std::shared_ptr<memory::MemoryRegion> nodmar;  // the container
  // "vtd-ir" (1 MiB MMIO, ops `ir_window`), aliased by every device view.
  std::shared_ptr<memory::MemoryRegion> interrupt_window;
  std::shared_ptr<InterruptWindow> ir_window;
};

class VtdAddressSpace {
 public:
  // `sys` is not owned and outlives this; `model` translates the IOMMU
  // region (not owned; must outlive the regions, i.e. this object and
  // every FlatView still showing them). Starts with nodmar enabled.
  VtdAddressSpace(memory::MemorySystem* sys, const VtdSharedRegions& shared,
                  uint8_t bus, uint8_t devfn, memory::IommuModel* model);
  VtdAddressSpace(const VtdAddressSpace&) = delete;
  VtdAddressSpace& operator=(const VtdAddressSpace&) = delete;
  ~VtdAddressSpace();

  // Switches between the IOMMU region (true) and system memory (false),
  // QEMU's vtd_switch_address_space; one topology change when it flips.
  void SetUseIommu(bool use_iommu);
  bool use_iommu() const { return use_iommu_; }

  // The DMA root for the PCI bus (2^64 container).
  const std::shared_ptr<memory::MemoryRegion>& root() const { return root_; }
  memory::MemoryRegion* iommu_region() const { return iommu_.get(); }
  memory::IommuNotifierChains* notifiers() const { return iommu_->iommu(); }

  uint8_t bus() const { return bus_; }
  uint8_t devfn() const { return devfn_; }
  uint16_t sid() const { return static_cast<uint16_t>(bus_ << 8 | devfn_); }
  // "BB:SS.F" as in diagnostics ("00:04.0").
  std::string DeviceName() const;

 private:
  memory::MemorySystem* sys_;  // not owned
  const uint8_t bus_;
  const uint8_t devfn_;
  bool use_iommu_ = false;
  std::shared_ptr<memory::MemoryRegion> root_;
  std::shared_ptr<memory::MemoryRegion> nodmar_;
  std::shared_ptr<memory::MemoryRegion> iommu_;
};

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_ADDRESS_SPACE_H_
