#include "memory/render.h"

#include <algorithm>

#include "absl/container/btree_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/numeric/int128.h"
#include "viommu/util/check.h"

namespace viommu::memory {
namespace {

// Alias chains and nesting deeper than this are a topology bug (a cycle).
constexpr int kMaxRenderDepth = 64;

class WindowRenderer {
 public:
  // Renders `mr` placed so that its offset 0 is at `base` (in root
  // coordinates; may be negative through aliases), clipped to `clip`.
  void Render(MemoryRegion& mr, absl::int128 base, Range clip, bool readonly,
              int depth) {
    VIOMMU_CHECK(depth < kMaxRenderDepth, "memory region cycle or too deep");
    if (!mr.enabled() || mr.size() == 0) return;
    // Intersect the region's extent with the clip.
    absl::int128 first = std::max<absl::int128>(base, clip.first);
    absl::int128 last = std::min<absl::int128>(
        base + absl::int128(mr.size()) - 1, absl::int128(clip.last));
    if (first > last) return;
    clip = {static_cast<uint64_t>(first), static_cast<uint64_t>(last)};
    readonly = readonly || mr.readonly();

    if (mr.kind() == RegionKind::kAlias) {
      MemoryRegion* target = mr.alias_target();
      if (target == nullptr) return;
      // The target's own placement (addr) does not matter through an alias.
      Render(*target, base - absl::int128(mr.alias_offset()), clip, readonly,
             depth + 1);
      return;
    }

    if (mr.subregion_count() != 0) {
      const Range local{static_cast<uint64_t>(absl::int128(clip.first) - base),
                        static_cast<uint64_t>(absl::int128(clip.last) - base)};
      absl::InlinedVector<MemoryRegion*, 8> hits;
      mr.ForEachSubregionOverlapping(local,
                                     [&](MemoryRegion* c) { hits.push_back(c); });
      std::sort(hits.begin(), hits.end(), MemoryRegion::RendersBefore);
      for (MemoryRegion* child : hits) {
        Render(*child, base + absl::int128(child->addr()), clip, readonly,
               depth + 1);
      }
    }

    if (mr.Terminates()) FillGaps(mr, base, clip, readonly);
  }

  std::vector<FlatRange> Take() {
    std::vector<FlatRange> out;
    out.reserve(ranges_.size());
    for (auto& [first, fr] : ranges_) out.push_back(std::move(fr));
    return out;
  }

 private:
  // Inserts ranges of `mr` into every part of `clip` nothing owns yet:
  // what was rendered first wins.
  void FillGaps(MemoryRegion& mr, absl::int128 base, const Range& clip,
                bool readonly) {
    std::shared_ptr<MemoryRegion> owner = mr.shared_from_this();
    auto add = [&](uint64_t first, uint64_t last, auto hint) {
      FlatRange fr;
      fr.range = {first, last};
      fr.mr = owner;
      fr.offset_in_region = static_cast<uint64_t>(absl::int128(first) - base);
      fr.readonly = readonly;
      fr.log_mask = mr.log_mask();
      return ranges_.emplace_hint(hint, first, std::move(fr));
    };

    uint64_t cur = clip.first;
    auto it = ranges_.upper_bound(clip.first);
    if (it != ranges_.begin()) {
      auto prev = std::prev(it);
      if (prev->second.range.last >= cur) {
        if (prev->second.range.last >= clip.last) return;
        cur = prev->second.range.last + 1;
      }
    }
    while (true) {
      if (it == ranges_.end() || it->first > clip.last) {
        add(cur, clip.last, it);
        return;
      }
      if (it->first > cur) {
        it = std::next(add(cur, it->first - 1, it));
      }
      if (it->second.range.last >= clip.last) return;
      cur = it->second.range.last + 1;
      ++it;
    }
  }

  absl::btree_map<uint64_t, FlatRange> ranges_;
};

}  // namespace

std::vector<FlatRange> RenderWindow(MemoryRegion& root, const Range& window) {
  WindowRenderer renderer;
  renderer.Render(root, absl::int128(root.addr()), window, false, 0);
  return renderer.Take();
}

void SimplifyRanges(std::vector<FlatRange>* ranges) {
  if (ranges->empty()) return;
  size_t out = 0;
  for (size_t i = 1; i < ranges->size(); ++i) {
    FlatRange& cur = (*ranges)[out];
    FlatRange& next = (*ranges)[i];
    if (cur.CanMerge(next)) {
      cur.range.last = next.range.last;
    } else {
      ++out;
      if (out != i) (*ranges)[out] = std::move(next);
    }
  }
  ranges->resize(out + 1);
}

}  // namespace viommu::memory
