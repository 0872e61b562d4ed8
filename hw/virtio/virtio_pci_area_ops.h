// hw/virtio/virtio_pci_area_ops.h (private) — the MmioOps behind each of
// the four BAR4 areas of a VirtioPciFunction, with the function-wide
// re-entrancy guard: an access that arrives while another of the function's
// register accesses is running (a DMA of its own into its BAR) is refused,
// reads all ones, and is counted.
//
// Access sizes as QEMU 7.2's virtio-pci areas: any size the guest asks for
// (valid max 0), implemented as 1..4 bytes, naturally aligned.
#ifndef VIOMMU_HW_VIRTIO_VIRTIO_PCI_AREA_OPS_H_
#define VIOMMU_HW_VIRTIO_VIRTIO_PCI_AREA_OPS_H_

#include <cstdint>

#include "viommu/hw/virtio/virtio_pci_function.h"
#include "viommu/memory/mmio_ops.h"
#include "viommu/util/le_bytes.h"

namespace viommu::hw::virtio {

class VirtioPciFunction::AreaOps final : public memory::MmioOps {
 public:
  AreaOps(VirtioPciFunction* fn, Area area) : fn_(fn), area_(area) {}

  memory::MemTxResult Read(uint64_t offset, uint64_t* value, unsigned size,
                           memory::MemTxAttrs) override {
    if (fn_->in_mmio_) {
      ++fn_->refused_reentrant_;
      *value = AllOnes(size);
      return memory::MemTxResult::AccessError();
    }
    fn_->in_mmio_ = true;
    *value = fn_->AreaRead(area_, offset, size);
    fn_->in_mmio_ = false;
    return memory::MemTxResult::Ok();
  }
  memory::MemTxResult Write(uint64_t offset, uint64_t value, unsigned size,
                            memory::MemTxAttrs) override {
    if (fn_->in_mmio_) {
      ++fn_->refused_reentrant_;
      return memory::MemTxResult::AccessError();
    }
    fn_->in_mmio_ = true;
    fn_->AreaWrite(area_, offset, value, size);
    fn_->in_mmio_ = false;
    return memory::MemTxResult::Ok();
  }
  memory::AccessRules valid() const override { return {1, 0, false}; }
  memory::AccessRules impl() const override { return {1, 4, false}; }

 private:
  VirtioPciFunction* fn_;  // not owned, owns this
  Area area_;
};

}  // namespace viommu::hw::virtio

#endif  // VIOMMU_HW_VIRTIO_VIRTIO_PCI_AREA_OPS_H_
