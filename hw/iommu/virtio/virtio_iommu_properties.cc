#include "viommu/hw/iommu/virtio/virtio_iommu_properties.h"

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "viommu/hw/core/property_parse.h"

namespace viommu::virtio_iommu {
namespace {

// Properties `help` lists that change nothing here at their default.
struct InertProperty {
  absl::string_view key;
  absl::string_view default_value;  // as QEMU spells it
  bool is_bool;
};
constexpr InertProperty kInert[] = {
    {"acpi-index", "0", false},
    {"aer", "off", true},
    {"any_layout", "on", true},
    {"ats", "off", true},
    {"class", "0", false},
    {"disable-legacy", "auto", false},
    {"disable-modern", "off", true},
    {"iommu_platform", "off", true},
    {"migrate-extra", "on", true},
    {"modern-pio-notify", "off", true},
    {"multifunction", "off", true},
    {"notify_on_empty", "on", true},
    {"packed", "off", true},
    {"page-per-vq", "off", true},
    {"rombar", "1", false},
    {"use-disabled-flag", "on", true},
    {"use-started", "on", true},
    {"virtio-pci-bus-master-bug-migration", "off", true},
    {"x-ats-page-aligned", "on", true},
    {"x-disable-legacy-check", "off", true},
    {"x-disable-pcie", "off", true},
    {"x-ignore-backend-features", "off", true},
    {"x-pcie-deverr-init", "on", true},
    {"x-pcie-extcap-init", "on", true},
    {"x-pcie-flr-init", "on", true},
    {"x-pcie-lnkctl-init", "on", true},
    {"x-pcie-lnksta-dllla", "on", true},
    {"x-pcie-pm-init", "on", true},
};

[[nodiscard]] absl::Status CheckInert(const InertProperty& p,
                                      absl::string_view value) {
  bool same = value == p.default_value;
  if (p.is_bool) {
    bool want = false, got = false;
    (void)hw::ParseBoolProperty(p.key, p.default_value, &want);
    if (absl::Status s = hw::ParseBoolProperty(p.key, value, &got); !s.ok()) {
      return s;
    }
    same = got == want;
  }
  if (same) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("Property '", kDriverName, ".", p.key,
                   "' is not supported with value '", value,
                   "' by this model"));
}

}  // namespace

absl::StatusOr<Properties> ParseProperties(
    const absl::btree_map<std::string, std::string>& props) {
  Properties p;
  for (const auto& [key, value] : props) {
    absl::Status s;
    if (key == "boot-bypass") {
      s = hw::ParseBoolProperty(key, value, &p.boot_bypass);
    } else if (key == "indirect_desc") {
      s = hw::ParseBoolProperty(key, value, &p.indirect_desc);
    } else if (key == "event_idx") {
      s = hw::ParseBoolProperty(key, value, &p.event_idx);
    } else if (key == "queue_reset") {
      s = hw::ParseBoolProperty(key, value, &p.queue_reset);
    } else if (key == "addr") {
      // The machine parses and places the function.
    } else if (key == "len-reserved-regions") {
      s = absl::InvalidArgumentError(
          "array size property len-reserved-regions may not be set more "
          "than once");
    } else {
      const InertProperty* inert = nullptr;
      for (const InertProperty& i : kInert) {
        if (i.key == key) inert = &i;
      }
      if (inert == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("Property '", kDriverName, ".", key, "' not found"));
      }
      s = CheckInert(*inert, value);
    }
    if (!s.ok()) return s;
  }
  return p;
}

}  // namespace viommu::virtio_iommu
