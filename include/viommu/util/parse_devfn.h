// viommu/util/parse_devfn.h — QEMU's PCI "addr" property (SLOT[.FN], both
// hex, an optional 0x prefix on each), shared by every -device driver that
// takes one (q35's built-in devices, vfio-pci).
//
//   absl::StatusOr<uint8_t> devfn = ParseDevfn("edu", "04.0");   // 0x20
//   // "Property 'edu.addr' doesn't take value '20.0'" for a bad one.
#ifndef VIOMMU_UTIL_PARSE_DEVFN_H_
#define VIOMMU_UTIL_PARSE_DEVFN_H_

#include <charconv>
#include <cstdint>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace viommu {

// `s` as hex (optional 0x/0X prefix, at least one digit, nothing after) no
// greater than `max` into *out; false (and *out untouched) otherwise.
inline bool ParseHex(absl::string_view s, unsigned max, unsigned* out) {
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
  }
  if (s.empty()) return false;
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc() || p != s.data() + s.size() || v > max) return false;
  *out = v;
  return true;
}

// SLOT (0..0x1f) [.FN (0..7)] as a devfn. Errors: kInvalidArgument with
// QEMU's message, naming `driver`.
[[nodiscard]] inline absl::StatusOr<uint8_t> ParseDevfn(
    absl::string_view driver, absl::string_view value) {
  std::vector<absl::string_view> parts = absl::StrSplit(value, '.');
  unsigned slot = 0, fn = 0;
  if (parts.size() > 2 || !ParseHex(parts[0], 0x1f, &slot) ||
      (parts.size() == 2 && !ParseHex(parts[1], 7, &fn))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Property '", driver, ".addr' doesn't take value '", value, "'"));
  }
  return static_cast<uint8_t>(slot << 3 | fn);
}

}  // namespace viommu

#endif  // VIOMMU_UTIL_PARSE_DEVFN_H_
