// viommu/hw/core/property_parse.h — device property values spelled as QEMU's
// qdev properties take them on -device / device_add, with QEMU's error
// text, for every device model's Parse*Properties.
//
//   bool on = false;
//   VIOMMU_RETURN_IF_ERROR(ParseBoolProperty("caching-mode", "on", &on));
#ifndef VIOMMU_HW_CORE_PROPERTY_PARSE_H_
#define VIOMMU_HW_CORE_PROPERTY_PARSE_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace viommu::hw {

// A boolean: on/yes/true/y or off/no/false/n (QAPI's spellings). Anything
// else is kInvalidArgument "Parameter 'KEY' expects 'on' or 'off'"; *out is
// then unchanged.
[[nodiscard]] absl::Status ParseBoolProperty(absl::string_view key,
                                             absl::string_view value,
                                             bool* out);

}  // namespace viommu::hw

#endif  // VIOMMU_HW_CORE_PROPERTY_PARSE_H_
