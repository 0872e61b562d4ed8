// viommu/util/types.h — address and size vocabulary shared by every layer.
//
// Addresses are 64-bit; sizes can be 2^64 (a region covering the whole
// address space), so sizes are 128-bit. The aliases name what an address
// means in public signatures:
//
//   viommu::Gpa gpa = 0x1000;        // guest-physical address
//   viommu::Iova iova = 0x20000;     // device-visible (pre-IOMMU) address
//   viommu::Size128 size = viommu::kSize2To64;
#ifndef VIOMMU_UTIL_TYPES_H_
#define VIOMMU_UTIL_TYPES_H_

#include <cstdint>

#include "absl/numeric/int128.h"

namespace viommu {

using Hwaddr = uint64_t;  // an address in some address space (no claim which)
using Gpa = uint64_t;     // guest-physical address
using Iova = uint64_t;    // I/O virtual address, before IOMMU translation
using Size128 = absl::uint128;

inline constexpr Size128 kSize2To64 = absl::MakeUint128(1, 0);

// Last byte of [base, base + size); REQUIRES: size >= 1 and the range fits
// in 64 bits.
constexpr uint64_t LastByte(uint64_t base, Size128 size) {
  return base + static_cast<uint64_t>(size - 1);
}

}  // namespace viommu

#endif  // VIOMMU_UTIL_TYPES_H_
