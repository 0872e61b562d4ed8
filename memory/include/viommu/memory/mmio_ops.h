// viommu/memory/mmio_ops.h — the interface a device implements to back an
// MMIO region, and the access-size rules the core enforces for it.
//
//   class MyRegs final : public MmioOps {
//     AccessRules valid() const override { return {4, 8, false}; }
//     AccessRules impl() const override { return {4, 8, false}; }
//     MemTxResult Read(uint64_t off, uint64_t* v, unsigned size,
//                      MemTxAttrs) override;
//     MemTxResult Write(uint64_t off, uint64_t v, unsigned size,
//                       MemTxAttrs) override;
//   };
//   auto mr = MemoryRegion::CreateMmio(sys, "regs", 0x1000, &my_regs);
//
// Semantics (QEMU's memory_region_access_valid / access_with_adjusted_size):
//  * `valid` is what the guest may do. An access outside [min, max] (a max
//    of 0 means any size), a misaligned access when !unaligned, or one that
//    Accepts() refuses, is rejected: kDecodeError, reads return 0, and the
//    callbacks are not called.
//  * `impl` is what the callbacks implement. The core splits a larger access
//    into impl.max-sized pieces and widens a smaller one to impl.min,
//    little-endian. impl.min defaults to 1 and impl.max to 4.
//  * Buffer accesses (AddressSpace::Read/Write) are chunked as QEMU's
//    memory_access_size: at most valid.max (4 when 0), naturally aligned
//    unless impl.unaligned, rounded down to a power of two.
//
// Threading: callbacks run on the thread that performs the access. Device
// models that are not thread-safe must only be accessed from the control
// context (see memory_system.h).
#ifndef VIOMMU_MEMORY_MMIO_OPS_H_
#define VIOMMU_MEMORY_MMIO_OPS_H_

#include <cstdint>

#include "viommu/memory/mem_tx.h"

namespace viommu::memory {

struct AccessRules {
  unsigned min_access_size = 1;
  unsigned max_access_size = 4;  // 0: any size (valid) / 4 (impl)
  bool unaligned = false;
};

class MmioOps {
 public:
  MmioOps() = default;
  MmioOps(const MmioOps&) = delete;
  MmioOps& operator=(const MmioOps&) = delete;
  virtual ~MmioOps() = default;

  // Required. `size` is one of the impl sizes; *value is zero on entry.
  virtual MemTxResult Read(uint64_t offset, uint64_t* value, unsigned size,
                           MemTxAttrs attrs) = 0;
  // Required. `value` holds `size` bytes, zero-extended.
  virtual MemTxResult Write(uint64_t offset, uint64_t value, unsigned size,
                            MemTxAttrs attrs) = 0;

  // Optional: default {1, 4, aligned} for both, QEMU's defaults.
  virtual AccessRules valid() const { return {}; }
  virtual AccessRules impl() const { return {}; }
  // Optional extra guest-side check (QEMU's valid.accepts); default true.
  virtual bool Accepts(uint64_t /*offset*/, unsigned /*size*/,
                       bool /*is_write*/, MemTxAttrs /*attrs*/) {
    return true;
  }
};

}  // namespace viommu::memory

#endif  // VIOMMU_MEMORY_MMIO_OPS_H_
