// viommu/vfio/container_types.h — the plain data a VFIO container exposes:
// its DMA mappings, skipped ranges, counters and the x-query-vfio record
// (the host-IOMMU facts a vIOMMU consumes are devcore::HostIommuDevice).
//
//   ContainerQuery q = container->Query();
//   for (const SkippedRange& s : q.skipped) printf("%s\n", s.reason.c_str());
//
// Thread-safety: values; copy freely.
#ifndef VIOMMU_VFIO_CONTAINER_TYPES_H_
#define VIOMMU_VFIO_CONTAINER_TYPES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "viommu/util/range.h"
#include "viommu/util/types.h"

namespace viommu::vfio {

using Hva = uint64_t;  // host virtual address (the process's own memory)

enum class ContainerBackend : uint8_t { kType1, kIommufd };
// "type1" or "iommufd" (x-query-vfio's "backend").
const char* ContainerBackendName(ContainerBackend backend);

// One host DMA mapping the container made: [iova, iova + size) -> hva.
struct DmaMapping {
  uint64_t size = 0;
  Hva hva = 0;
  bool readonly = false;
  friend bool operator==(const DmaMapping&, const DmaMapping&) = default;
};

// Why a guest range was not mapped.
enum class SkipReason {
  kMmio,                // not RAM
  kBit63,               // address with bit 63 set
  kPageOffsetMismatch,  // page offset differs from the region's
  kRamDeviceMisaligned,
  kRamDeviceMapFailed,
  kOutsideIovaRanges,
  kIommuTargetNotRam,
};

// The one mapping of SkipReason to the strings x-query-vfio shows (and the
// vfio_listener_region_add_skip trace event prints).
constexpr const char* SkipReasonName(SkipReason r) {
  switch (r) {
    case SkipReason::kMmio:
      return "mmio";
    case SkipReason::kBit63:
      return "bit63";
    case SkipReason::kPageOffsetMismatch:
      return "page-offset-mismatch";
    case SkipReason::kRamDeviceMisaligned:
      return "ram-device-misaligned";
    case SkipReason::kRamDeviceMapFailed:
      return "ram-device-map-failed";
    case SkipReason::kOutsideIovaRanges:
      return "outside-iova-ranges";
    case SkipReason::kIommuTargetNotRam:
      return "iommu-target-not-ram";
  }
  return "unknown";
}

// A guest range the listener did not map, inclusive [start, end];
// `reason` is SkipReasonName's string.
struct SkippedRange {
  uint64_t start = 0;
  uint64_t end = 0;  // inclusive
  std::string reason;
  friend bool operator==(const SkippedRange&, const SkippedRange&) = default;
};

struct ContainerStats {
  uint64_t maps = 0;          // successful host map calls
  uint64_t unmaps = 0;        // successful host unmap calls
  uint64_t map_errors = 0;    // failed host map calls
  uint64_t unmap_errors = 0;  // failed host unmap calls
  uint64_t errors = 0;        // errors reported after initialisation
  uint64_t warnings = 0;      // ram_device map failures, misalignment
  uint64_t iova_range_rereads = 0;
  uint64_t iova_range_changes = 0;  // QMP VFIO_IOVA_RANGES_CHANGED count
  uint64_t giommu_map_events = 0;
  uint64_t giommu_unmap_events = 0;
  // Guest IOMMU MAP events whose host map failed (DmaMap error; not the
  // non-RAM targets, which are skipped): HostIommuDevice::map_failures.
  uint64_t giommu_map_errors = 0;
};

// One container in x-query-vfio (ARCHITECTURE.md §5).
struct ContainerQuery {
  uint32_t id = 0;
  std::string backend;        // "type1" | "iommufd"
  std::string address_space;  // AddressSpace::name()
  std::vector<std::string> devices;
  std::vector<Range> iova_ranges;
  uint64_t mappings = 0;
  uint64_t dma_avail = 0;
  std::vector<SkippedRange> skipped;
};

}  // namespace viommu::vfio

#endif  // VIOMMU_VFIO_CONTAINER_TYPES_H_
