// viommu/hw/core/viommu.h — the vIOMMU seam: what a machine, its PCI bus
// and VFIO passthrough ask of a guest IOMMU, whichever model it is (VT-d
// today; virtio-iommu sits behind the same interface). It is the shape of
// QEMU's PCIIOMMUOps (pci_setup_iommu): a per-device DMA address space and
// the host-IOMMU facts of passthrough functions, plus what a machine needs
// to own one (reset, its driver name and qdev id).
//
//   ViommuHost host{.memory = &sys, .system_root = root,
//                   .system_as = &system_as, .msi_region = msi};
//   VIOMMU_ASSIGN_OR_RETURN(std::unique_ptr<Viommu> iommu,
//                           vtd::VtdViommu::Create(props, host));
//   pci_bus.SetIommu(iommu.get());       // devices plugged from now on
//   AddressSpace as(&sys, iommu->DmaRoot(0, 0x20), iommu->DmaSpaceName(0, 0x20));
//
// A machine holds at most one (QEMU: "QEMU does not support multiple
// vIOMMUs for x86 yet."). Requester ids are (bus, devfn) on segment 0.
// Threading: control context only; the regions DmaRoot returns follow
// memory/address_space.h for DMA from other threads.
#ifndef VIOMMU_HW_CORE_VIOMMU_H_
#define VIOMMU_HW_CORE_VIOMMU_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "viommu/devcore/host_iommu_device.h"
#include "viommu/hw/core/msi.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::hw {

// What a vIOMMU is built on, independent of any machine: the memory
// system, the system memory container (the vIOMMU maps its own registers
// there, if it has any, and aliases it for untranslated DMA), the system
// address space (where translation tables are read and translated
// addresses point) and the MSI window region devices' interrupt writes
// reach; optionally the MsiController behind that region, which then
// receives remapped interrupt messages whole (an x2APIC destination above
// 255 does not fit a write into the window). None is owned; all outlive
// the vIOMMU. Instead of `msi`, an embedder whose devices write interrupt
// messages from several threads passes `msi_sink`, a function that gets
// each remapped message whole on the thread of the write (MsiController
// is control-context only); it wins when both are set.
struct ViommuHost {
  // Where remapped interrupt messages go; called on the writing thread.
  using MsiSink = std::function<void(const MsiMessage&)>;

  memory::MemorySystem* memory = nullptr;
  std::shared_ptr<memory::MemoryRegion> system_root;
  memory::AddressSpace* system_as = nullptr;
  std::shared_ptr<memory::MemoryRegion> msi_region;
  MsiController* msi = nullptr;
  MsiSink msi_sink;
};

class Viommu {
 public:
  virtual ~Viommu() = default;

  // The -device driver name ("intel-iommu").
  virtual std::string_view driver() const = 0;

  // The root region of the DMA address space of function `devfn` on bus
  // `bus` (QEMU's get_address_space): never null; the same region for the
  // same (bus, devfn) for the vIOMMU's lifetime.
  virtual std::shared_ptr<memory::MemoryRegion> DmaRoot(uint8_t bus,
                                                        uint8_t devfn) = 0;
  // The name QEMU gives that address space ("vtd-06.0"), as x-query-vfio
  // and `info mtree` show it.
  virtual std::string DmaSpaceName(uint8_t bus, uint8_t devfn) const = 0;

  // QEMU's set_iommu_device / unset_iommu_device: the host IOMMU facts of
  // a passthrough function at (bus, devfn), which the vIOMMU may refuse
  // (its error names hiod.name and the offending property).
  [[nodiscard]] virtual absl::Status SetHostIommuDevice(
      uint8_t bus, uint8_t devfn, const devcore::HostIommuDevice& hiod) = 0;
  // Forgets them; a no-op when none were set.
  virtual void UnsetHostIommuDevice(uint8_t bus, uint8_t devfn) = 0;

  // system_reset of the vIOMMU's own state (registers, domains, caches),
  // after which every device's DMA follows the reset configuration.
  virtual void Reset() = 0;
};

}  // namespace viommu::hw

#endif  // VIOMMU_HW_CORE_VIOMMU_H_
