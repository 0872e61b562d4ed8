// viommu/util/range.h — the one address-range type: inclusive [first, last].
//
// Inclusive bounds make the whole 64-bit space representable
// (Range::Full()) without 128-bit arithmetic; Size() is 128-bit for the
// same reason.
//
//   Range r = Range::FromBaseSize(0x1000, 0x2000);   // [0x1000, 0x2fff]
//   if (r.Overlaps(other)) r = r.Intersect(other);
#ifndef VIOMMU_UTIL_RANGE_H_
#define VIOMMU_UTIL_RANGE_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <ostream>

#include "viommu/util/types.h"

namespace viommu {

struct Range {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive

  static constexpr Range Full() { return {0, UINT64_MAX}; }
  // REQUIRES: size >= 1 and base + size - 1 does not wrap.
  static constexpr Range FromBaseSize(uint64_t base, Size128 size) {
    return {base, LastByte(base, size)};
  }
  // [base, base + size) clipped to the 64-bit space; nullopt when size is 0
  // or base + size wraps past 2^64 by more than the clip allows.
  static std::optional<Range> FromBaseSizeClipped(uint64_t base,
                                                  Size128 size) {
    if (size == 0) return std::nullopt;
    Size128 end = Size128(base) + size;  // exclusive, up to 2^65
    if (end > kSize2To64) end = kSize2To64;
    return Range{base, static_cast<uint64_t>(end - 1)};
  }

  constexpr Size128 Size() const { return Size128(last - first) + 1; }
  constexpr bool Contains(uint64_t a) const { return a >= first && a <= last; }
  constexpr bool Contains(const Range& o) const {
    return o.first >= first && o.last <= last;
  }
  constexpr bool Overlaps(const Range& o) const {
    return first <= o.last && o.first <= last;
  }
  // REQUIRES: Overlaps(o).
  constexpr Range Intersect(const Range& o) const {
    return {std::max(first, o.first), std::min(last, o.last)};
  }
  friend constexpr bool operator==(const Range&, const Range&) = default;
};

inline std::ostream& operator<<(std::ostream& os, const Range& r) {
  return os << "[0x" << std::hex << r.first << ", 0x" << r.last << std::dec
            << "]";
}

}  // namespace viommu

#endif  // VIOMMU_UTIL_RANGE_H_
