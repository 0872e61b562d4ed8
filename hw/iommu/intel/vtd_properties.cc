#include "viommu/hw/iommu/vtd_properties.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "viommu/hw/core/property_parse.h"
#include "viommu/hw/iommu/vtd_regs.h"

namespace viommu::vtd {
namespace {

[[nodiscard]] absl::Status ParseOnOffAuto(absl::string_view key,
                                          absl::string_view v, OnOffAuto* out) {
  if (v == "on") {
    *out = OnOffAuto::kOn;
  } else if (v == "off") {
    *out = OnOffAuto::kOff;
  } else if (v == "auto") {
    *out = OnOffAuto::kAuto;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("Parameter '", key, "' does not accept value '", v, "'"));
  }
  return absl::OkStatus();
}

// QEMU's uint8 property: a base-0 integer (sign allowed, then range-checked).
[[nodiscard]] absl::Status ParseU8(absl::string_view key, absl::string_view v,
                                   int* out) {
  absl::string_view digits = v;
  const bool negative = absl::ConsumePrefix(&digits, "-");
  uint64_t n = 0;
  bool ok;
  if (absl::StartsWith(digits, "0x") || absl::StartsWith(digits, "0X")) {
    ok = digits.size() > 2 && absl::SimpleHexAtoi(digits.substr(2), &n);
  } else {
    ok = !digits.empty() && absl::SimpleAtoi(digits, &n);
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("Parameter '", key, "' expects integer"));
  }
  if ((negative && n != 0) || n > 0xff) {
    return absl::InvalidArgumentError(
        absl::StrCat("Parameter '", key, "' expects uint8_t"));
  }
  *out = static_cast<int>(n);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Properties> ParseProperties(
    const absl::btree_map<std::string, std::string>& props) {
  Properties p;
  for (const auto& [key, value] : props) {
    absl::Status s;
    if (key == "aw-bits") {
      s = ParseU8(key, value, &p.aw_bits);
    } else if (key == "caching-mode") {
      s = hw::ParseBoolProperty(key, value, &p.caching_mode);
    } else if (key == "dma-translation") {
      s = hw::ParseBoolProperty(key, value, &p.dma_translation);
    } else if (key == "pt") {
      s = hw::ParseBoolProperty(key, value, &p.pt);
    } else if (key == "device-iotlb") {
      s = hw::ParseBoolProperty(key, value, &p.device_iotlb);
    } else if (key == "dma-drain") {
      s = hw::ParseBoolProperty(key, value, &p.dma_drain);
    } else if (key == "intremap") {
      s = ParseOnOffAuto(key, value, &p.intremap);
    } else if (key == "eim") {
      s = ParseOnOffAuto(key, value, &p.eim);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("Property 'intel-iommu.", key, "' not found"));
    }
    if (!s.ok()) return s;
  }
  // vtd_decide_config's order.
  if (p.eim == OnOffAuto::kOn && p.intremap != OnOffAuto::kOn) {
    return absl::InvalidArgumentError(
        "eim=on cannot be selected without intremap=on");
  }
  if (p.eim == OnOffAuto::kOn) {
    return absl::InvalidArgumentError(
        "eim=on requires accel=kvm,kernel-irqchip=split");
  }
  if (p.aw_bits != 39 && p.aw_bits != 48) {
    return absl::InvalidArgumentError(
        "Supported values for aw-bits are: 39, 48");
  }
  return p;
}

uint64_t ComputeCap(const Properties& p) {
  uint64_t cap = kCapNd << kCapNdShift | kCapSslps | kCapPsi |
                 uint64_t{kFroOffset / 16} << kCapFroShift |
                 uint64_t{kNumFrcd - 1} << kCapNfrShift |
                 kMamv << kCapMamvShift |
                 uint64_t(p.aw_bits - 1) << kCapMgawShift;
  if (p.dma_drain) cap |= kCapDrain;
  if (p.dma_translation) {
    cap |= kCapSagaw39;
    if (p.aw_bits >= 48) cap |= kCapSagaw48;
  }
  if (p.caching_mode) cap |= kCapCm;
  return cap;
}

uint64_t ComputeEcap(const Properties& p) {
  uint64_t ecap = kEcapQi | uint64_t{kIroOffset / 16} << kEcapIroShift;
  if (p.ir_supported()) ecap |= kEcapIr | kEcapMhmv;
  if (p.device_iotlb) ecap |= kEcapDt;
  if (p.pt) ecap |= kEcapPt;
  return ecap;
}

}  // namespace viommu::vtd
