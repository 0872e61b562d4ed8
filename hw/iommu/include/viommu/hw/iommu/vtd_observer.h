// viommu/hw/iommu/vtd_observer.h — how the VT-d register model tells the
// translation engine what the guest asked for.
//
//   class Engine final : public vtd::Observer {
//     void OnRootTableChanged(uint64_t root) override { FlushAll(); ... }
//   };
//   iommu->set_observer(&engine);
//
// Every callback is optional (no-op default) and runs synchronously inside
// the guest's register write (control context), after the registers show
// the new state (GSTS bits set, RTADDR latched) and, for the invalidations,
// before the completion is visible in CCMD / IOTLB. Within one GCMD write
// the order is QEMU's: TE, SRTP, QIE (OnQueueTailWritten), SIRTP, IRE.
// Callbacks may call IntelIommu's engine-side methods (RecordFault,
// SetQueueHead, ...) but must not write guest registers.
#ifndef VIOMMU_HW_IOMMU_VTD_OBSERVER_H_
#define VIOMMU_HW_IOMMU_VTD_OBSERVER_H_

#include <cstdint>

#include "viommu/hw/iommu/vtd_regs.h"

namespace viommu::vtd {

class Observer {
 public:
  Observer() = default;
  Observer(const Observer&) = delete;
  Observer& operator=(const Observer&) = delete;
  virtual ~Observer() = default;

  // GCMD.SRTP: `root` is RTADDR masked to the address width (bits 11:0
  // clear). QEMU also drops every cache here.
  virtual void OnRootTableChanged(uint64_t /*root*/) {}
  // GCMD.TE changed (never called with dma-translation=off). QEMU drops
  // every cache and switches all device address spaces.
  virtual void OnTranslationEnabled(bool /*enabled*/) {}
  // Register-based context-cache invalidation (CCMD.ICC with QI off), as
  // requested: `granularity` is CIRG (kInvalid for 0; QEMU 7.2 treats
  // kDomain as global); did/sid/fm are the CCMD fields.
  virtual void OnContextInvalidate(ContextGranularity /*granularity*/,
                                   uint16_t /*did*/, uint16_t /*sid*/,
                                   uint8_t /*fm*/) {}
  // Register-based IOTLB invalidation (IOTLB.IVT with QI off) that QEMU
  // performs: global, domain, or page (`addr`/`am`/`ih` from IVA, am <=
  // MAMV). Not called for an invalid granularity or am > MAMV.
  virtual void OnIotlbInvalidate(IotlbGranularity /*granularity*/,
                                 uint16_t /*did*/, uint64_t /*addr*/,
                                 uint8_t /*am*/, bool /*ih*/) {}
  // The queue should be processed: IQT was written (or QI was enabled with
  // a non-zero tail) while QI is enabled and FSTS.IQE is clear. `tail` is
  // the descriptor index (IQT.QT). The engine reports progress with
  // IntelIommu::SetQueueHead.
  virtual void OnQueueTailWritten(uint32_t /*tail*/) {}
  // GCMD.SIRTP: the interrupt-remapping table pointer was latched.
  virtual void OnInterruptRemapTableChanged(uint64_t /*irta*/) {}
  // Device reset (system_reset): registers are back to their defaults.
  virtual void OnReset() {}
};

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_OBSERVER_H_
