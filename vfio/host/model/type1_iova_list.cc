#include "vfio/host/model/type1_iova_list.h"

#include <algorithm>
#include <cerrno>

namespace viommu::vfio::model {

std::vector<ResvRegion> MergeResvRegions(std::vector<ResvRegion> regions) {
  std::sort(regions.begin(), regions.end(),
            [](const ResvRegion& a, const ResvRegion& b) {
              return a.start != b.start ? a.start < b.start : a.type < b.type;
            });
  std::vector<ResvRegion> out;
  for (const ResvRegion& r : regions) {
    // The last kept region of the same type: join when overlapping or
    // adjacent.
    auto same =
        std::find_if(out.rbegin(), out.rend(),
                     [&](const ResvRegion& o) { return o.type == r.type; });
    if (same != out.rend() &&
        (same->last == UINT64_MAX || r.start <= same->last + 1)) {
      same->last = std::max(same->last, r.last);
      continue;
    }
    out.push_back(r);
  }
  return out;
}

namespace type1 {

void AperResize(IovaList* list, uint64_t start, uint64_t last) {
  if (list->empty()) {
    list->push_back({start, last});
    return;
  }
  // Trim the front: windows wholly before `start` go, and so does one whose
  // last byte is exactly `start` (the kernel's exclusive test).
  size_t drop = 0;
  for (IovaWindow& w : *list) {
    if (start < w.start) break;
    if (start < w.last) {
      w.start = start;
      break;
    }
    ++drop;
  }
  list->erase(list->begin(), list->begin() + static_cast<ptrdiff_t>(drop));
  // Trim the back: a window starting exactly at `last` goes too.
  IovaList kept;
  for (IovaWindow w : *list) {
    if (last > w.last) {
      kept.push_back(w);
    } else if (last > w.start) {
      w.last = last;
      kept.push_back(w);
    }
  }
  *list = std::move(kept);
}

int ResvExclude(IovaList* list, absl::Span<const ResvRegion> resv) {
  for (const ResvRegion& r : resv) {
    if (r.type == ResvType::kDirectRelaxable) continue;
    IovaList next;
    for (const IovaWindow& w : *list) {
      if (r.start > w.last || r.last < w.start) {
        next.push_back(w);
        continue;
      }
      if (r.start > w.start) next.push_back({w.start, r.start - 1});
      if (r.last < w.last) next.push_back({r.last + 1, w.last});
    }
    *list = std::move(next);
  }
  return list->empty() ? -EINVAL : 0;
}

bool DmaValid(const IovaList& list, uint64_t start, uint64_t last) {
  if (list.empty()) return true;
  for (const IovaWindow& w : list) {
    if (start >= w.start && last <= w.last) return true;
  }
  return false;
}

}  // namespace type1
}  // namespace viommu::vfio::model
