#include "viommu/vfio/vfio_query_json.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace viommu::vfio {

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string JsonRanges(const std::vector<Range>& ranges) {
  std::string out = "[";
  for (size_t i = 0; i < ranges.size(); ++i) {
    absl::StrAppend(&out, i ? ", " : "", "{\"start\": ", ranges[i].first,
                    ", \"end\": ", ranges[i].last, "}");
  }
  return out + "]";
}

std::string VfioQueryJson(const std::vector<ContainerQuery>& q) {
  std::string out = "{\"containers\": [";
  for (size_t i = 0; i < q.size(); ++i) {
    const ContainerQuery& c = q[i];
    absl::StrAppend(&out, i ? ", " : "", "{\"id\": ", c.id,
                    ", \"backend\": ", JsonString(c.backend),
                    ", \"address-space\": ", JsonString(c.address_space),
                    ", \"devices\": [");
    for (size_t d = 0; d < c.devices.size(); ++d) {
      absl::StrAppend(&out, d ? ", " : "", JsonString(c.devices[d]));
    }
    absl::StrAppend(&out, "], \"iova-ranges\": ", JsonRanges(c.iova_ranges),
                    ", \"mappings\": ", c.mappings,
                    ", \"dma-avail\": ", c.dma_avail, ", \"skipped\": [");
    for (size_t s = 0; s < c.skipped.size(); ++s) {
      absl::StrAppend(&out, s ? ", " : "", "{\"start\": ", c.skipped[s].start,
                      ", \"end\": ", c.skipped[s].end,
                      ", \"reason\": ", JsonString(c.skipped[s].reason), "}");
    }
    out += "]}";
  }
  return out + "]}";
}

}  // namespace viommu::vfio
