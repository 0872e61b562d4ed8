// viommu/util/parse_hex.h — the one strict hex-number parser: digits only
// (no sign, no spaces, nothing after), bounded by a digit count and a
// value. ParseHex adds the optional 0x prefix QEMU's property values take;
// ParseHexDigits alone is the fixed-width form of host PCI addresses
// ("0000:01:00.0") and sysfs fields.
//
//   uint64_t bus;
//   if (!ParseHexDigits("01", 2, 0xff, &bus)) ...   // bus == 1
//   unsigned slot;
//   if (!ParseHex("0x1f", 0x1f, &slot)) ...         // slot == 31
#ifndef VIOMMU_UTIL_PARSE_HEX_H_
#define VIOMMU_UTIL_PARSE_HEX_H_

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <system_error>

#include "absl/strings/string_view.h"

namespace viommu {

// `s` as 1..max_digits hex digits (either case, nothing else) whose value
// is at most `max` into *out; false (and *out untouched) otherwise.
inline bool ParseHexDigits(absl::string_view s, size_t max_digits,
                           uint64_t max, uint64_t* out) {
  if (s.empty() || s.size() > max_digits) return false;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc() || p != s.data() + s.size() || v > max) return false;
  *out = v;
  return true;
}

// `s` as hex (optional 0x/0X prefix, at least one digit, any number of
// them, nothing after) no greater than `max` into *out; false (and *out
// untouched) otherwise.
inline bool ParseHex(absl::string_view s, unsigned max, unsigned* out) {
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
  }
  uint64_t v = 0;
  if (!ParseHexDigits(s, std::numeric_limits<size_t>::max(), max, &v)) {
    return false;
  }
  *out = static_cast<unsigned>(v);
  return true;
}

}  // namespace viommu

#endif  // VIOMMU_UTIL_PARSE_HEX_H_
