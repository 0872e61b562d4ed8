#include "viommu/hw/core/property_parse.h"

#include "absl/strings/str_cat.h"

namespace viommu::hw {

absl::Status ParseBoolProperty(absl::string_view key, absl::string_view value,
                               bool* out) {
  if (value == "on" || value == "yes" || value == "true" || value == "y") {
    *out = true;
  } else if (value == "off" || value == "no" || value == "false" ||
             value == "n") {
    *out = false;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("Parameter '", key, "' expects 'on' or 'off'"));
  }
  return absl::OkStatus();
}

}  // namespace viommu::hw
