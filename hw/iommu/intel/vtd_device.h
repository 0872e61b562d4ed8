// hw/iommu/intel/vtd_device.h (private) — one PCI function behind VT-d:
// its address space, the IommuModel that translates its IOMMU region, the
// mappings its notifiers have been told (ShadowMap) and its notifier flags.
//
// Threading: Translate from any thread (forwards to the engine); the rest
// in the control context.
#ifndef VIOMMU_HW_IOMMU_INTEL_VTD_DEVICE_H_
#define VIOMMU_HW_IOMMU_INTEL_VTD_DEVICE_H_

#include <cstdint>
#include <memory>

#include "viommu/hw/iommu/vtd_address_space.h"
#include "viommu/hw/iommu/vtd_engine.h"
#include "viommu/hw/iommu/vtd_shadow_map.h"
#include "viommu/memory/iommu.h"

namespace viommu::vtd {

class VtdDevice final : public memory::IommuModel {
 public:
  VtdDevice(VtdEngine* engine, memory::MemorySystem* sys,
            const VtdSharedRegions& shared, uint8_t bus, uint8_t devfn)
      : engine_(engine), as_(sys, shared, bus, devfn, this) {}

  memory::IommuTlbEntry Translate(Iova iova, memory::IommuPerm access,
                                  int /*iommu_idx*/) override {
    return engine_->Translate(*this, iova, access);
  }
  [[nodiscard]] absl::Status Replay(int iommu_idx,
                                    memory::ReplaySink emit) override {
    return engine_->Replay(*this, iommu_idx, emit);
  }
  [[nodiscard]] absl::Status NotifyFlagChanged(
      memory::NotifierFlags old_flags,
      memory::NotifierFlags new_flags) override {
    return engine_->NotifyFlagChanged(*this, old_flags, new_flags);
  }

  VtdAddressSpace& as() { return as_; }
  const VtdAddressSpace& as() const { return as_; }
  uint16_t sid() const { return as_.sid(); }
  ShadowMap& shadow() { return shadow_; }
  memory::NotifierFlags notifier_flags() const { return flags_; }
  void set_notifier_flags(memory::NotifierFlags f) { flags_ = f; }

 private:
  VtdEngine* const engine_;  // not owned, owns this
  VtdAddressSpace as_;
  ShadowMap shadow_;
  memory::NotifierFlags flags_ = memory::kNotifyNone;
};

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_INTEL_VTD_DEVICE_H_
