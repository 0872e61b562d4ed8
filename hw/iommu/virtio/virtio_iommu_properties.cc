#include "viommu/hw/iommu/virtio/virtio_iommu_properties.h"

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace viommu::virtio_iommu {
namespace {

// QEMU's qapi boolean spellings.
[[nodiscard]] absl::Status ParseBool(absl::string_view key, absl::string_view v,
                                     bool* out) {
  if (v == "on" || v == "yes" || v == "true" || v == "y") {
    *out = true;
  } else if (v == "off" || v == "no" || v == "false" || v == "n") {
    *out = false;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("Parameter '", key, "' expects 'on' or 'off'"));
  }
  return absl::OkStatus();
}

// Properties `help` lists that change nothing here at their default.
struct InertProperty {
  absl::string_view key;
  absl::string_view default_value;  // as QEMU spells it; bools by ParseBool
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
    (void)ParseBool(p.key, p.default_value, &want);
    if (absl::Status s = ParseBool(p.key, value, &got); !s.ok()) return s;
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
      s = ParseBool(key, value, &p.boot_bypass);
    } else if (key == "indirect_desc") {
      s = ParseBool(key, value, &p.indirect_desc);
    } else if (key == "event_idx") {
      s = ParseBool(key, value, &p.event_idx);
    } else if (key == "queue_reset") {
      s = ParseBool(key, value, &p.queue_reset);
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
