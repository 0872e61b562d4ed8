// hw/misc/property_parse.h — -device property values as QEMU's qdev
// parses them (private to hw/misc).
//
//   VIOMMU_ASSIGN_OR_RETURN(mask, ParseU64Property("edu", "dma_mask", "0xff"));
#ifndef VIOMMU_HW_MISC_PROPERTY_PARSE_H_
#define VIOMMU_HW_MISC_PROPERTY_PARSE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "viommu/util/status_macros.h"

namespace viommu::hw::misc {

// An unsigned 64-bit number, base 0 as strtoull (0x hex, 0 octal, decimal).
inline absl::StatusOr<uint64_t> ParseU64Property(absl::string_view device,
                                                 absl::string_view key,
                                                 absl::string_view value) {
  uint64_t v = 0;
  bool ok;
  if (absl::StartsWith(value, "0x") || absl::StartsWith(value, "0X")) {
    ok = value.size() > 2 && absl::SimpleHexAtoi(value.substr(2), &v);
  } else {
    ok = !value.empty() && value[0] != '-' && absl::SimpleAtoi(value, &v);
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("Parameter '", device, ".", key, "' expects uint64, got '",
                     value, "'"));
  }
  return v;
}

inline absl::Status UnknownProperty(absl::string_view device,
                                    absl::string_view key) {
  return absl::InvalidArgumentError(
      absl::StrCat("Property '", device, ".", key, "' not found"));
}

}  // namespace viommu::hw::misc

#endif  // VIOMMU_HW_MISC_PROPERTY_PARSE_H_
