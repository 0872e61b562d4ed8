#include "viommu/hw/iommu/vtd_address_space.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_format.h"
#include "viommu/util/check.h"
#include "viommu/util/types.h"

namespace viommu::vtd {

using memory::MemoryRegion;

VtdSharedRegions VtdSharedRegions::Create(
    memory::MemorySystem* sys, std::shared_ptr<MemoryRegion> system_root,
    std::shared_ptr<MemoryRegion> msi_window) {
  memory::MemorySystem::Transaction txn(sys);
  VtdSharedRegions s;
  // InterruptWindow checks msi_window (MMIO, >= 1 MiB).
  s.ir_window = std::make_shared<InterruptWindow>(std::move(msi_window));
  s.interrupt_window = MemoryRegion::CreateMmio(
      sys, "vtd-ir", kInterruptWindowSize, s.ir_window.get());
  s.nodmar =
      MemoryRegion::CreateContainer(sys, "vtd-nodmar-shared", kSize2To64);
  s.nodmar->AddSubregion(
      0, MemoryRegion::CreateAlias(sys, "vtd-sys-alias", std::move(system_root),
                                   0, kSize2To64));
  s.nodmar->AddSubregionOverlap(
      kInterruptWindowBase,
      MemoryRegion::CreateAlias(sys, "vtd-ir", s.interrupt_window, 0,
                                kInterruptWindowSize),
      /*priority=*/1);
  return s;
}

VtdAddressSpace::VtdAddressSpace(memory::MemorySystem* sys,
                                 const VtdSharedRegions& shared, uint8_t bus,
                                 uint8_t devfn, memory::IommuModel* model)
    : sys_(sys), bus_(bus), devfn_(devfn) {
  // QEMU names the views by slot and function only ("vtd-04.0").
  const std::string name =
      absl::StrFormat("vtd-%02x.%x", devfn >> 3, devfn & 7);
  memory::MemorySystem::Transaction txn(sys);
  root_ = MemoryRegion::CreateContainer(sys, name, kSize2To64);
  nodmar_ = MemoryRegion::CreateAlias(sys, name + "-nodmar", shared.nodmar, 0,
                                      kSize2To64);
  iommu_ = MemoryRegion::CreateIommu(sys, name + "-dmar", kSize2To64, model);
  iommu_->AddSubregionOverlap(
      kInterruptWindowBase,
      MemoryRegion::CreateAlias(sys, name + "-ir", shared.interrupt_window, 0,
                                kInterruptWindowSize),
      /*priority=*/1);
  iommu_->SetEnabled(false);
  root_->AddSubregion(0, nodmar_);
  root_->AddSubregion(0, iommu_);
}

VtdAddressSpace::~VtdAddressSpace() = default;

void VtdAddressSpace::SetUseIommu(bool use_iommu) {
  if (use_iommu == use_iommu_) return;
  use_iommu_ = use_iommu;
  memory::MemorySystem::Transaction txn(sys_);
  // Disable first so no view shows both.
  if (use_iommu) {
    nodmar_->SetEnabled(false);
    iommu_->SetEnabled(true);
  } else {
    iommu_->SetEnabled(false);
    nodmar_->SetEnabled(true);
  }
}

std::string VtdAddressSpace::DeviceName() const {
  return absl::StrFormat("%02x:%02x.%x", bus_, devfn_ >> 3, devfn_ & 7);
}

}  // namespace viommu::vtd
