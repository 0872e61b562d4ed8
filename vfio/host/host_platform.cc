#include "viommu/vfio/host/host_platform.h"

#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "viommu/util/parse_hex.h"

namespace viommu::vfio {

namespace {

[[nodiscard]] absl::Status BadAddress(std::string_view text) {
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid host PCI address '", absl::string_view(text.data(), text.size()),
      "': expected SSSS:BB:DD.F (hex), e.g. 0000:01:00.0"));
}

HostPlatform MakeDefaultPlatform() {
  const ResvRegion msi{0xfee00000, 0xfeefffff, ResvType::kMsi};
  HostPlatform p;
  p.devices.push_back({.address = {0, 1, 0, 0},
                       .group = 1,
                       .aperture_bits = 48,
                       .reserved = {msi}});
  p.devices.push_back(
      {.address = {0, 2, 0, 0},
       .group = 2,
       .aperture_bits = 48,
       .reserved = {{0x0f000000, 0x0f0fffff, ResvType::kDirect}, msi}});
  p.devices.push_back({.address = {0, 3, 0, 0},
                       .group = 3,
                       .aperture_bits = 39,
                       .reserved = {msi}});
  return p;
}

}  // namespace

absl::StatusOr<HostPciAddress> HostPciAddress::Parse(std::string_view text) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(absl::string_view(text.data(), text.size()), ':');
  if (parts.size() == 2) parts.insert(parts.begin(), "0000");
  if (parts.size() != 3) return BadAddress(text);
  std::vector<absl::string_view> dev_fn = absl::StrSplit(parts[2], '.');
  if (dev_fn.size() != 2) return BadAddress(text);
  uint64_t domain, bus, slot, fn;
  if (!ParseHexDigits(parts[0], 4, 0xffff, &domain) ||
      !ParseHexDigits(parts[1], 2, 0xff, &bus) ||
      !ParseHexDigits(dev_fn[0], 2, 31, &slot) ||
      !ParseHexDigits(dev_fn[1], 1, 7, &fn)) {
    return BadAddress(text);
  }
  return HostPciAddress{static_cast<uint16_t>(domain),
                        static_cast<uint8_t>(bus), static_cast<uint8_t>(slot),
                        static_cast<uint8_t>(fn)};
}

std::string HostPciAddress::ToString() const {
  return absl::StrFormat("%04x:%02x:%02x.%x", domain, bus, slot, function);
}

std::string FormatResvRegionLine(const ResvRegion& region) {
  const char* type = "reserved";
  switch (region.type) {
    case ResvType::kDirect:
      type = "direct";
      break;
    case ResvType::kDirectRelaxable:
      type = "direct-relaxable";
      break;
    case ResvType::kReserved:
      type = "reserved";
      break;
    case ResvType::kMsi:
    case ResvType::kSwMsi:
      type = "msi";
      break;
  }
  return absl::StrFormat("0x%016x 0x%016x %s", region.start, region.last, type);
}

absl::StatusOr<ResvRegion> ParseResvRegionLine(std::string_view line) {
  const absl::string_view l(line.data(), line.size());
  std::vector<absl::string_view> f = absl::StrSplit(l, ' ', absl::SkipEmpty());
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid reserved_regions line '", l,
                     "': expected '0xSTART 0xEND TYPE'"));
  };
  if (f.size() != 3) return bad();
  uint64_t start, last;
  for (auto [text, out] : {std::pair{f[0], &start}, std::pair{f[1], &last}}) {
    if (text.size() < 3 || text[0] != '0' ||
        (text[1] != 'x' && text[1] != 'X') ||
        !ParseHexDigits(text.substr(2), 16, UINT64_MAX, out)) {
      return bad();
    }
  }
  if (last < start) return bad();
  ResvType type;
  if (f[2] == "direct") {
    type = ResvType::kDirect;
  } else if (f[2] == "direct-relaxable") {
    type = ResvType::kDirectRelaxable;
  } else if (f[2] == "reserved") {
    type = ResvType::kReserved;
  } else if (f[2] == "msi") {
    type = ResvType::kMsi;
  } else {
    return bad();
  }
  return ResvRegion{start, last, type};
}

const HostDeviceDesc* HostPlatform::FindDevice(
    const HostPciAddress& address) const {
  for (const HostDeviceDesc& d : devices) {
    if (d.address == address) return &d;
  }
  return nullptr;
}

std::vector<const HostDeviceDesc*> HostPlatform::GroupDevices(
    uint32_t group) const {
  std::vector<const HostDeviceDesc*> out;
  for (const HostDeviceDesc& d : devices) {
    if (d.group == group) out.push_back(&d);
  }
  return out;
}

const HostPlatform& DefaultHostPlatform() {
  static const HostPlatform* const platform =
      new HostPlatform(MakeDefaultPlatform());
  return *platform;
}

}  // namespace viommu::vfio
