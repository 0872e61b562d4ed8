// viommu/util/parse_devfn.h — QEMU's PCI "addr" property (SLOT[.FN], both
// hex, an optional 0x prefix on each), shared by every -device driver that
// takes one (q35's built-in devices, vfio-pci).
//
//   absl::StatusOr<uint8_t> devfn = ParseDevfn("edu", "04.0");   // 0x20
//   // "Property 'edu.addr' doesn't take value '20.0'" for a bad one.
#ifndef VIOMMU_UTIL_PARSE_DEVFN_H_
#define VIOMMU_UTIL_PARSE_DEVFN_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "viommu/util/parse_hex.h"

namespace viommu {

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
