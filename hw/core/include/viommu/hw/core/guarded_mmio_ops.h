// viommu/hw/core/guarded_mmio_ops.h — a device's register block behind the
// MMIO re-entrancy guard (QEMU's per-device mem_reentrancy_guard): while a
// guest access to the block is running, a nested access to the same block
// (a DMA the access started that lands on the device's own BAR) is refused
// with an access error, reads all-ones and is counted, instead of recursing.
// The one guard of hw/'s devices (edu, dma-testdev).
//
//   ops_ = std::make_unique<GuardedMmioOps>(
//       [this](uint64_t off, unsigned size) { return RegRead(off, size); },
//       [this](uint64_t off, uint64_t v, unsigned size) {
//         RegWrite(off, v, size);
//       },
//       memory::AccessRules{4, 8, false});   // valid and impl
//   mmio_ = memory::MemoryRegion::CreateMmio(sys, "regs", size, ops_.get());
//
// Thread-safety: as the device's (control context only).
#ifndef VIOMMU_HW_CORE_GUARDED_MMIO_OPS_H_
#define VIOMMU_HW_CORE_GUARDED_MMIO_OPS_H_

#include <cstdint>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "viommu/memory/mmio_ops.h"
#include "viommu/util/le_bytes.h"

namespace viommu::hw {

class GuardedMmioOps final : public memory::MmioOps {
 public:
  using ReadFn = absl::AnyInvocable<uint64_t(uint64_t offset, unsigned size)>;
  using WriteFn =
      absl::AnyInvocable<void(uint64_t offset, uint64_t value, unsigned size)>;

  // `rules` are both the valid and the implemented access sizes.
  GuardedMmioOps(ReadFn read, WriteFn write, memory::AccessRules rules)
      : read_(std::move(read)), write_(std::move(write)), rules_(rules) {}

  memory::MemTxResult Read(uint64_t offset, uint64_t* value, unsigned size,
                           memory::MemTxAttrs) override {
    if (active_) {
      ++blocked_;
      *value = AllOnes(size);
      return memory::MemTxResult::AccessError();
    }
    active_ = true;
    *value = read_(offset, size);
    active_ = false;
    return memory::MemTxResult::Ok();
  }
  memory::MemTxResult Write(uint64_t offset, uint64_t value, unsigned size,
                            memory::MemTxAttrs) override {
    if (active_) {
      ++blocked_;
      return memory::MemTxResult::AccessError();
    }
    active_ = true;
    write_(offset, value, size);
    active_ = false;
    return memory::MemTxResult::Ok();
  }
  memory::AccessRules valid() const override { return rules_; }
  memory::AccessRules impl() const override { return rules_; }

  // Accesses the guard refused.
  uint64_t blocked_count() const { return blocked_; }
  void ResetBlockedCount() { blocked_ = 0; }

 private:
  ReadFn read_;
  WriteFn write_;
  const memory::AccessRules rules_;
  bool active_ = false;  // an access to this block is running
  uint64_t blocked_ = 0;
};

}  // namespace viommu::hw

#endif  // VIOMMU_HW_CORE_GUARDED_MMIO_OPS_H_
