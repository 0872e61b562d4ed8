// hw/misc/property_parse.h — -device property values as QEMU's qdev
// parses them (private to hw/misc).
//
//   VIOMMU_ASSIGN_OR_RETURN(mask, ParseU64Property("edu", "dma_mask", "0xff"));
#ifndef VIOMMU_HW_MISC_PROPERTY_PARSE_H_
#define VIOMMU_HW_MISC_PROPERTY_PARSE_H_

#include <charconv>
#include <cstdint>
#include <system_error>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace viommu::hw::misc {

// An unsigned 64-bit number in base 0 as QEMU's qemu_strtou64: "0x"/"0X"
// hex, a leading 0 octal, otherwise decimal; the whole text must be the
// number (no sign, no spaces, no suffix) and fit in 64 bits.
// Errors: kInvalidArgument naming `device`.`key` and the text.
[[nodiscard]] inline absl::StatusOr<uint64_t> ParseU64Property(
    absl::string_view device, absl::string_view key, absl::string_view value) {
  absl::string_view digits = value;
  int base = 10;
  if (digits.size() > 2 && digits[0] == '0' &&
      (digits[1] == 'x' || digits[1] == 'X')) {
    digits.remove_prefix(2);
    base = 16;
  } else if (digits.size() > 1 && digits[0] == '0') {
    digits.remove_prefix(1);
    base = 8;
  }
  uint64_t v = 0;
  const char* end = digits.data() + digits.size();
  // from_chars takes no sign or prefix itself; a second prefix ("0x0x1")
  // or a sign fails here.
  const auto [ptr, ec] = std::from_chars(digits.data(), end, v, base);
  if (digits.empty() || ec != std::errc() || ptr != end) {
    return absl::InvalidArgumentError(
        absl::StrCat("Parameter '", device, ".", key, "' expects uint64, got '",
                     value, "'"));
  }
  return v;
}

[[nodiscard]] inline absl::Status UnknownProperty(absl::string_view device,
                                                  absl::string_view key) {
  return absl::InvalidArgumentError(
      absl::StrCat("Property '", device, ".", key, "' not found"));
}

}  // namespace viommu::hw::misc

#endif  // VIOMMU_HW_MISC_PROPERTY_PARSE_H_
