// memory/mmio_access.h (private) — one guest access to an MMIO or
// ram_device region, with QEMU's valid/impl rules (see
// viommu/memory/mmio_ops.h for the semantics).
//
//   unsigned n = MmioChunkSize(*mr, offset, remaining);
//   MemTxResult r = MmioDispatchRead(*mr, offset, &value, n, attrs);
#ifndef VIOMMU_MEMORY_MMIO_ACCESS_H_
#define VIOMMU_MEMORY_MMIO_ACCESS_H_

#include <cstdint>

#include "viommu/memory/mem_tx.h"
#include "viommu/memory/memory_region.h"

namespace viommu::memory {

// Validates a `size`-byte access (1, 2, 4 or 8) at `offset` of `mr` against
// the region's `valid` rules; if valid, performs it through the `impl`
// sizes (splitting or widening, little-endian). An invalid access returns
// kDecodeError and, for reads, *value = 0. For ram_device regions the
// access is a host-endian load/store on mr.host() (valid and impl 1..8,
// unaligned allowed).
// REQUIRES: mr.kind() is kMmio or kRamDevice; offset + size <= mr.size().
MemTxResult MmioDispatchRead(MemoryRegion& mr, uint64_t offset,
                             uint64_t* value, unsigned size, MemTxAttrs attrs);
MemTxResult MmioDispatchWrite(MemoryRegion& mr, uint64_t offset,
                              uint64_t value, unsigned size, MemTxAttrs attrs);

// QEMU's memory_access_size(): the size of the next piece of a buffer
// access with `remaining` bytes left at `offset`: at most valid.max (4 when
// it is 0), capped at the natural alignment of `offset` unless
// impl.unaligned, rounded down to a power of two, at least 1.
unsigned MmioChunkSize(const MemoryRegion& mr, uint64_t offset,
                       uint64_t remaining);

}  // namespace viommu::memory

#endif  // VIOMMU_MEMORY_MMIO_ACCESS_H_
