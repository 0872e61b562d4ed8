#include "viommu/hw/iommu/vtd_properties.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
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

// QEMU's unsigned integer property (uint8 aw-bits, uint32 version) as
// 7.2's keyval visitor reads it: strtoull with base 0 over the whole
// string (leading blanks, one sign, 0x hex, 0 octal; a negative value
// wraps modulo 2^64), an overflow of 64 bits "expects integer", then the
// range check against `max` "expects <type>".
[[nodiscard]] absl::Status ParseUnsigned(absl::string_view key,
                                         absl::string_view v, uint64_t max,
                                         absl::string_view type,
                                         uint64_t* out) {
  const absl::Status not_integer = absl::InvalidArgumentError(
      absl::StrCat("Parameter '", key, "' expects integer"));
  while (!v.empty() && absl::ascii_isspace(static_cast<unsigned char>(v[0]))) {
    v.remove_prefix(1);
  }
  const bool negative = absl::ConsumePrefix(&v, "-");
  if (!negative) absl::ConsumePrefix(&v, "+");
  int base = 10;
  if (v.size() > 2 && (v[1] == 'x' || v[1] == 'X') && v[0] == '0' &&
      absl::ascii_isxdigit(static_cast<unsigned char>(v[2]))) {
    base = 16;
    v.remove_prefix(2);
  } else if (absl::StartsWith(v, "0")) {
    base = 8;
  }
  if (v.empty()) return not_integer;
  uint64_t n = 0;
  for (char c : v) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return not_integer;
    }
    if (d >= base) return not_integer;
    if (n > (~uint64_t{0} - static_cast<uint64_t>(d)) /
                static_cast<uint64_t>(base)) {
      return not_integer;  // ERANGE
    }
    n = n * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
  }
  if (negative) n = ~n + 1;
  if (n > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("Parameter '", key, "' expects ", type));
  }
  *out = n;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Properties> ParseProperties(
    const absl::btree_map<std::string, std::string>& props) {
  Properties p;
  for (const auto& [key, value] : props) {
    absl::Status s;
    if (key == "aw-bits") {
      uint64_t n = 0;
      s = ParseUnsigned(key, value, 0xff, "uint8_t", &n);
      if (s.ok()) p.aw_bits = static_cast<int>(n);
    } else if (key == "version") {
      uint64_t n = 0;
      s = ParseUnsigned(key, value, 0xffffffff, "uint32_t", &n);
      if (s.ok()) p.version = static_cast<uint32_t>(n);
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
    } else if (key == "snoop-control") {
      s = hw::ParseBoolProperty(key, value, &p.snoop_control);
    } else if (key == "x-buggy-eim") {
      s = hw::ParseBoolProperty(key, value, &p.x_buggy_eim);
    } else if (key == "x-scalable-mode") {
      s = hw::ParseBoolProperty(key, value, &p.scalable_mode);
    } else if (key == "x-pasid-mode") {
      s = hw::ParseBoolProperty(key, value, &p.pasid);
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
  // 7.2's realize order (measured: each check wins over the later ones).
  if (p.pasid && p.device_iotlb) {
    return absl::InvalidArgumentError(
        "PASID based device IOTLB is not supported");
  }
  if (p.eim == OnOffAuto::kOn && !p.ir_supported()) {
    return absl::InvalidArgumentError(
        "eim=on cannot be selected without intremap=on");
  }
  if (p.eim == OnOffAuto::kAuto) {
    // 7.2 also turns it on with KVM's in-kernel irqchip; viommu has none.
    p.eim =
        p.x_buggy_eim && p.ir_supported() ? OnOffAuto::kOn : OnOffAuto::kOff;
  }
  if (p.eim == OnOffAuto::kOn && !p.x_buggy_eim) {
    // No KVM: the split irqchip 7.2 asks for never exists (TCG, as 7.2
    // under qtest, refuses it the same way).
    return absl::InvalidArgumentError(
        "eim=on requires accel=kvm,kernel-irqchip=split");
  }
  if (p.aw_bits != 39 && p.aw_bits != 48) {
    return absl::InvalidArgumentError(
        "Supported values for aw-bits are: 39, 48");
  }
  if (p.scalable_mode && !p.dma_drain) {
    return absl::InvalidArgumentError(
        "Need to set dma_drain for scalable mode");
  }
  if (p.pasid && !p.scalable_mode) {
    return absl::InvalidArgumentError("Need to set scalable mode for PASID");
  }
  // x-scalable-mode=on (and x-pasid-mode=on) as 7.2: vtd_scalable.h.
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
  if (p.eim_supported()) ecap |= kEcapEim;
  if (p.device_iotlb) ecap |= kEcapDt;
  if (p.pt) ecap |= kEcapPt;
  if (p.snoop_control) ecap |= kEcapSc;
  if (p.scalable_mode) ecap |= kEcapSrs | kEcapSmts | kEcapSlts;
  if (p.pasid) ecap |= kEcapPasid;  // 7.2 leaves PSS at 0
  return ecap;
}

}  // namespace viommu::vtd
