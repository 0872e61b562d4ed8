// tests/fakes/view_dump.h — renders a FlatView as text lines for
// assertions: "0x2000-0x2fff D+0x0", with " ro" when readonly.
#ifndef VIOMMU_TESTS_FAKES_VIEW_DUMP_H_
#define VIOMMU_TESTS_FAKES_VIEW_DUMP_H_

#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/flat_view.h"

namespace viommu::memory::testing {

inline std::string DumpRange(const FlatRange& fr) {
  return absl::StrFormat("0x%x-0x%x %s+0x%x%s", fr.range.first, fr.range.last,
                         fr.mr->name(), fr.offset_in_region,
                         fr.readonly ? " ro" : "");
}

inline std::vector<std::string> DumpView(const FlatView& view) {
  std::vector<std::string> out;
  view.ForEach([&](const FlatRange& fr) { out.push_back(DumpRange(fr)); });
  return out;
}

inline std::vector<std::string> DumpView(const AddressSpace& as) {
  return DumpView(*as.CurrentView());
}

}  // namespace viommu::memory::testing

#endif  // VIOMMU_TESTS_FAKES_VIEW_DUMP_H_
