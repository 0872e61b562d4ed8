// One guest access to an MMIO or ram_device region: QEMU's
// memory_region_access_valid, access_with_adjusted_size and
// memory_access_size, little-endian only.
#include "memory/mmio_access.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "viommu/util/check.h"
#include "viommu/util/le_bytes.h"

namespace viommu::memory {
namespace {

// ram_device regions accept and implement 1..8 bytes, unaligned allowed
// (QEMU's ram_device_mem_ops).
constexpr AccessRules kRamDeviceRules = {1, 8, true};

// QEMU's memory_region_access_valid.
bool AccessValid(const MemoryRegion& mr, uint64_t offset, unsigned size,
                 bool is_write, MemTxAttrs attrs) {
  if (mr.IsRamDevice()) {
    return size >= kRamDeviceRules.min_access_size &&
           size <= kRamDeviceRules.max_access_size;
  }
  MmioOps* ops = mr.mmio_ops();
  if (!ops->Accepts(offset, size, is_write, attrs)) return false;
  AccessRules valid = ops->valid();
  if (!valid.unaligned && (offset & (size - 1)) != 0) return false;
  if (valid.max_access_size == 0) return true;  // any size
  return size >= valid.min_access_size && size <= valid.max_access_size;
}

// The size the callbacks see for a `size`-byte access: clamp(size,
// impl.min, impl.max) with QEMU's defaults for zeros.
unsigned ImplAccessSize(const MmioOps& ops, unsigned size) {
  AccessRules impl = ops.impl();
  unsigned min = impl.min_access_size == 0 ? 1 : impl.min_access_size;
  unsigned max = impl.max_access_size == 0 ? 4 : impl.max_access_size;
  return std::max(std::min(size, max), min);
}

void CheckRegion(const MemoryRegion& mr) {
  VIOMMU_CHECK(mr.IsRamDevice() ||
                   (mr.kind() == RegionKind::kMmio && mr.mmio_ops() != nullptr),
               "MMIO dispatch on a region that is neither MMIO nor "
               "ram_device");
}

}  // namespace

MemTxResult MmioDispatchRead(MemoryRegion& mr, uint64_t offset, uint64_t* value,
                             unsigned size, MemTxAttrs attrs) {
  CheckRegion(mr);
  *value = 0;
  if (!AccessValid(mr, offset, size, /*is_write=*/false, attrs)) {
    return MemTxResult::DecodeError();  // QEMU's unassigned_mem_read: 0
  }
  if (mr.IsRamDevice()) {
    std::memcpy(value, mr.host() + offset, size);  // little-endian host
    return MemTxResult::Ok();
  }
  MmioOps& ops = *mr.mmio_ops();
  unsigned access_size = ImplAccessSize(ops, size);
  uint64_t access_mask = AllOnes(access_size);
  MemTxResult result;
  uint64_t v = 0;
  // Pieces at increasing offsets hold increasing significance; a widened
  // access is one piece.
  for (unsigned i = 0; i < size; i += access_size) {
    uint64_t piece = 0;
    result |= ops.Read(offset + i, &piece, access_size, attrs);
    v |= (piece & access_mask) << (8 * i);
  }
  *value = v & AllOnes(size);
  return result;
}

MemTxResult MmioDispatchWrite(MemoryRegion& mr, uint64_t offset, uint64_t value,
                              unsigned size, MemTxAttrs attrs) {
  CheckRegion(mr);
  if (!AccessValid(mr, offset, size, /*is_write=*/true, attrs)) {
    return MemTxResult::DecodeError();  // discarded
  }
  if (mr.IsRamDevice()) {
    std::memcpy(mr.host() + offset, &value, size);  // little-endian host
    return MemTxResult::Ok();
  }
  MmioOps& ops = *mr.mmio_ops();
  unsigned access_size = ImplAccessSize(ops, size);
  uint64_t access_mask = AllOnes(access_size);
  value &= AllOnes(size);
  MemTxResult result;
  for (unsigned i = 0; i < size; i += access_size) {
    result |= ops.Write(offset + i, (value >> (8 * i)) & access_mask,
                        access_size, attrs);
  }
  return result;
}

unsigned MmioChunkSize(const MemoryRegion& mr, uint64_t offset,
                       uint64_t remaining) {
  CheckRegion(mr);
  uint64_t max;
  bool impl_unaligned;
  if (mr.IsRamDevice()) {
    max = kRamDeviceRules.max_access_size;
    impl_unaligned = kRamDeviceRules.unaligned;
  } else {
    const MmioOps& ops = *mr.mmio_ops();
    max = ops.valid().max_access_size;
    if (max == 0) max = 4;
    impl_unaligned = ops.impl().unaligned;
  }
  if (!impl_unaligned && offset != 0) {
    max = std::min(max, offset & -offset);  // natural alignment of offset
  }
  uint64_t n = std::min(remaining, max);
  return n == 0 ? 1 : static_cast<unsigned>(std::bit_floor(n));
}

}  // namespace viommu::memory
