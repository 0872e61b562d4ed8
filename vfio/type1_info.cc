#include "vfio/type1_info.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio {
namespace {

template <typename T>
T Load(absl::Span<const uint8_t> buf, size_t offset) {
  T v;
  std::memcpy(&v, buf.data() + offset, sizeof(T));
  return v;
}

[[nodiscard]] absl::Status Malformed(const std::string& what) {
  return absl::DataLossError(
      absl::StrCat("VFIO_IOMMU_GET_INFO: malformed reply: ", what));
}

}  // namespace

absl::StatusOr<Type1Info> ParseType1Info(absl::Span<const uint8_t> buffer) {
  if (buffer.size() < uapi::kIommuType1InfoMinsz) {
    return Malformed(absl::StrFormat("%d bytes, need %d",
                                     static_cast<int>(buffer.size()),
                                     uapi::kIommuType1InfoMinsz));
  }
  const auto argsz = Load<uint32_t>(buffer, 0);
  const auto flags = Load<uint32_t>(buffer, 4);
  // Only the bytes both returned and described by argsz are data.
  const size_t len = std::min<size_t>(buffer.size(), argsz);
  if (len < uapi::kIommuType1InfoMinsz) {
    return Malformed(absl::StrFormat("argsz %u below the minimum", argsz));
  }
  absl::Span<const uint8_t> data = buffer.subspan(0, len);
  Type1Info info;
  if (flags & uapi::kIommuInfoPgsizes) {
    info.pgsizes = Load<uint64_t>(data, 8);
  }
  if (!(flags & uapi::kIommuInfoCaps)) return info;
  if (len < sizeof(uapi::vfio_iommu_type1_info)) return info;  // no caps room
  uint32_t offset = Load<uint32_t>(data, 16);
  size_t min_next = sizeof(uapi::vfio_iommu_type1_info);
  int guard = 0;
  while (offset != 0) {
    if (++guard > 64) return Malformed("capability chain too long");
    if (offset < min_next) {
      return Malformed(absl::StrFormat(
          "capability at offset %u points backwards or into the header",
          offset));
    }
    if (size_t{offset} + sizeof(uapi::vfio_info_cap_header) > len) {
      return Malformed(absl::StrFormat(
          "capability header at offset %u past the %d bytes returned", offset,
          static_cast<int>(len)));
    }
    const auto hdr = Load<uapi::vfio_info_cap_header>(data, offset);
    if (hdr.version == 1 && hdr.id == uapi::kIommuTypeCapIovaRange) {
      constexpr size_t kFixed =
          sizeof(uapi::vfio_iommu_type1_info_cap_iova_range);
      if (offset + kFixed > len) {
        return Malformed(
            absl::StrFormat("IOVA_RANGE capability at %u truncated", offset));
      }
      const auto nr = Load<uint32_t>(data, offset + 8);
      const size_t need = offset + kFixed + size_t{nr} * 16;
      if (nr > (len - offset - kFixed) / 16 || need > len) {
        return Malformed(absl::StrFormat(
            "IOVA_RANGE nr_iovas %u runs past the %d bytes returned", nr,
            static_cast<int>(len)));
      }
      std::vector<Range> ranges;
      ranges.reserve(nr);
      for (uint32_t i = 0; i < nr; ++i) {
        const auto r =
            Load<uapi::vfio_iova_range>(data, offset + kFixed + size_t{i} * 16);
        if (r.start > r.end) {
          return Malformed(absl::StrFormat(
              "IOVA range %u [0x%x, 0x%x] is inverted", i, r.start, r.end));
        }
        if (!ranges.empty() && r.start <= ranges.back().last) {
          return Malformed(absl::StrFormat(
              "IOVA range %u starts at 0x%x, not after the previous one", i,
              r.start));
        }
        ranges.push_back({r.start, r.end});
      }
      info.iova_ranges = std::move(ranges);
    } else if (hdr.version == 1 && hdr.id == uapi::kIommuTypeCapDmaAvail) {
      if (offset + sizeof(uapi::vfio_iommu_type1_info_dma_avail) > len) {
        return Malformed(
            absl::StrFormat("DMA_AVAIL capability at %u truncated", offset));
      }
      info.dma_avail = Load<uint32_t>(data, offset + 8);
    } else if (hdr.version == 1 && hdr.id == uapi::kIommuTypeCapMigration) {
      if (offset + sizeof(uapi::vfio_iommu_type1_info_cap_migration) > len) {
        return Malformed(
            absl::StrFormat("MIGRATION capability at %u truncated", offset));
      }
      const auto m =
          Load<uapi::vfio_iommu_type1_info_cap_migration>(data, offset);
      info.migration = Type1Info::Migration{
          .flags = m.flags,
          .pgsize_bitmap = m.pgsize_bitmap,
          .max_dirty_bitmap_size = m.max_dirty_bitmap_size};
    }
    min_next = size_t{offset} + sizeof(uapi::vfio_info_cap_header);
    offset = hdr.next;
  }
  return info;
}

}  // namespace viommu::vfio
