// viommu/vfio/host/host_platform.h — what a host offers for passthrough:
// PCI devices, their IOMMU groups, apertures and reserved regions.
//
// The model backend is built from a HostPlatform: the embedded default
// (ARCHITECTURE.md §4, a contract) or one read from a device-tree blob
// (`-object vfio-host-model,id=ID,dtb=FILE`; binding in
// docs/vfio-host-model.md).
//
//   const HostPlatform& p = DefaultHostPlatform();
//   const HostDeviceDesc* d =
//   p.FindDevice(*HostPciAddress::Parse("0000:02:00.0"));
//   // d->group == 2, d->reserved has the MSI window and the direct range.
#ifndef VIOMMU_VFIO_HOST_HOST_PLATFORM_H_
#define VIOMMU_VFIO_HOST_HOST_PLATFORM_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace viommu::vfio {

// Linux's enum iommu_resv_type (docs/vfio-host-model.md, reserved@UNIT);
// the values
// are the kernel's.
enum class ResvType : uint8_t {
  kDirect = 0,           // sysfs "direct"
  kDirectRelaxable = 1,  // sysfs "direct-relaxable"
  kReserved = 2,         // sysfs "reserved"
  kMsi = 3,              // sysfs "msi"
  kSwMsi = 4,            // sysfs "msi" as well
};

// One reserved IOVA region, inclusive [start, last].
struct ResvRegion {
  uint64_t start = 0;
  uint64_t last = 0;
  ResvType type = ResvType::kReserved;

  friend bool operator==(const ResvRegion&, const ResvRegion&) = default;
};

// Parses one line of /sys/kernel/iommu_groups/N/reserved_regions
// ("0x00000000fee00000 0x00000000feefffff msi"). kInvalidArgument otherwise.
[[nodiscard]] absl::StatusOr<ResvRegion> ParseResvRegionLine(
    std::string_view line);
// The inverse, as the kernel prints it ("0x%016llx 0x%016llx %s"; kSwMsi
// prints as "msi" too).
std::string FormatResvRegionLine(const ResvRegion& region);

// A PCI address SSSS:BB:DD.F.
struct HostPciAddress {
  uint16_t domain = 0;
  uint8_t bus = 0;
  uint8_t slot = 0;      // 0..31
  uint8_t function = 0;  // 0..7

  // Accepts "SSSS:BB:DD.F" (hex, as lspci -D prints) and "BB:DD.F"
  // (domain 0). kInvalidArgument names the bad text.
  [[nodiscard]] static absl::StatusOr<HostPciAddress> Parse(
      std::string_view text);
  std::string ToString() const;  // "0000:01:00.0"

  friend bool operator==(const HostPciAddress&,
                         const HostPciAddress&) = default;
};

// One passthrough-capable host device of the model: an edu-compatible DMA
// engine (BAR0) plus `bar2_size` bytes of mmap-able device memory (BAR2).
struct HostDeviceDesc {
  HostPciAddress address;
  uint32_t group = 0;                // IOMMU group number (/dev/vfio/<group>)
  uint8_t aperture_bits = 48;        // host IOMMU aperture [0, 2^bits - 1]
  std::vector<ResvRegion> reserved;  // sorted by start
  uint16_t vendor_id = 0x1234;
  uint16_t device_id = 0x11e8;
  uint64_t bar2_size = 1 << 20;

  uint64_t aperture_last() const {
    return aperture_bits >= 64 ? UINT64_MAX
                               : (uint64_t{1} << aperture_bits) - 1;
  }
};

struct HostPlatform {
  std::vector<HostDeviceDesc> devices;
  uint64_t pgsize_bitmap = (1ull << 12) | (1ull << 21) | (1ull << 30);
  uint32_t dma_entry_limit = 65535;  // type1's module parameter

  // nullptr when no device has that address.
  const HostDeviceDesc* FindDevice(const HostPciAddress& address) const;
  // The devices of one group, in table order.
  std::vector<const HostDeviceDesc*> GroupDevices(uint32_t group) const;
};

// The embedded platform of ARCHITECTURE.md §4.
const HostPlatform& DefaultHostPlatform();

// Reads a platform from a flattened device tree (libfdt). Errors are
// kInvalidArgument with the node/property at fault and libfdt's message.
[[nodiscard]] absl::StatusOr<HostPlatform> ParseHostPlatformDtb(
    absl::Span<const uint8_t> blob);

}  // namespace viommu::vfio

#endif  // VIOMMU_VFIO_HOST_HOST_PLATFORM_H_
