#include "viommu/memory/memory_system.h"

#include <algorithm>
#include <utility>

#include "memory/render.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_listener.h"
#include "viommu/memory/memory_region.h"
#include "viommu/util/check.h"

namespace viommu::memory {
namespace {

constexpr int kMaxTopologyDepth = 64;

// `window` moved up by `delta`; nullopt if it moves past 2^64 entirely.
std::optional<Range> Shift(const Range& window, uint64_t delta) {
  if (window.first > UINT64_MAX - delta) return std::nullopt;
  uint64_t last =
      window.last > UINT64_MAX - delta ? UINT64_MAX : window.last + delta;
  return Range{window.first + delta, last};
}

// Sorts and merges ranges that overlap or touch.
std::vector<Range> Normalize(std::vector<Range> v, uint64_t slack) {
  std::sort(v.begin(), v.end(),
            [](const Range& a, const Range& b) { return a.first < b.first; });
  std::vector<Range> out;
  for (const Range& r : v) {
    if (!out.empty() && (out.back().last >= UINT64_MAX - slack ||
                         r.first <= out.back().last + slack)) {
      out.back().last = std::max(out.back().last, r.last);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

FlatRange Cut(const FlatRange& fr, uint64_t first, uint64_t last) {
  FlatRange c = fr;
  c.offset_in_region += first - fr.range.first;
  c.range = {first, last};
  return c;
}

}  // namespace

struct MemorySystem::RootState {
  std::shared_ptr<MemoryRegion> root;
  std::shared_ptr<const FlatView> view;
  int spaces = 0;              // address spaces showing this root
  std::vector<Range> windows;  // pending re-render, root coordinates
};

// What changed in one root's view, in QEMU's listener order.
struct MemorySystem::ViewDiff {
  struct AddPassItem {
    const FlatRange* old_fr;  // nullptr: a new range (RegionAdd)
    const FlatRange* new_fr;
  };
  std::shared_ptr<const FlatView> old_view;  // keeps old_fr alive
  std::vector<FlatRange> old_ranges;
  std::vector<FlatRange> new_ranges;
  std::vector<const FlatRange*> dels;  // address order
  std::vector<AddPassItem> add_pass;   // address order
};

MemorySystem::MemorySystem() = default;

MemorySystem::~MemorySystem() {
  VIOMMU_CHECK(address_spaces_.empty(),
               "MemorySystem destroyed before its address spaces");
}

void MemorySystem::BeginTransaction() {
  VIOMMU_CHECK(!notifying_, "topology changed from a listener callback");
  ++depth_;
}

void MemorySystem::RegionChanged(MemoryRegion* region) {
  VIOMMU_CHECK(!notifying_, "topology changed from a listener callback");
  pending_ = true;
  if (roots_.empty() || region->size() == 0) return;
  CollectWindows(region, region->Extent(), 0);
}

void MemorySystem::CollectWindows(MemoryRegion* region, const Range& window,
                                  int depth) {
  VIOMMU_CHECK(depth < kMaxTopologyDepth, "memory region cycle or too deep");
  if (auto it = roots_.find(region); it != roots_.end()) {
    if (auto w = Shift(window, region->addr())) {
      it->second->windows.push_back(*w);
    }
  }
  if (MemoryRegion* parent = region->parent()) {
    if (auto w = Shift(window, region->addr())) {
      Range extent = parent->Extent();
      if (parent->size() != 0 && w->Overlaps(extent)) {
        CollectWindows(parent, w->Intersect(extent), depth + 1);
      }
    }
  }
  for (MemoryRegion* alias : region->aliases_) {
    if (alias->size() == 0) continue;
    std::optional<Range> shown =
        Range::FromBaseSizeClipped(alias->alias_offset(), alias->size());
    if (!shown || !shown->Overlaps(window)) continue;
    Range visible = shown->Intersect(window);
    CollectWindows(alias,
                   {visible.first - alias->alias_offset(),
                    visible.last - alias->alias_offset()},
                   depth + 1);
  }
}

void MemorySystem::UpdateRoot(RootState& rs, ViewDiff* diff) {
  const FlatRangeTree& old_tree = rs.view->ranges();
  FlatRangeTree tree = old_tree;
  std::vector<Range> spans;
  std::vector<FlatRange> old_runs;
  // Windows that touch share neighbours: merge them first (slack 2).
  for (const Range& w : Normalize(std::move(rs.windows), 2)) {
    Range ext{w.first == 0 ? 0 : w.first - 1,
              w.last == UINT64_MAX ? UINT64_MAX : w.last + 1};
    old_runs.clear();
    tree.CollectOverlapping(ext, &old_runs);

    std::vector<FlatRange> combined;
    if (!old_runs.empty() && old_runs.front().range.first < w.first) {
      const FlatRange& o = old_runs.front();
      combined.push_back(
          Cut(o, o.range.first, std::min(o.range.last, w.first - 1)));
    }
    std::vector<FlatRange> rendered = RenderWindow(*rs.root, w);
    combined.insert(combined.end(), std::make_move_iterator(rendered.begin()),
                    std::make_move_iterator(rendered.end()));
    if (!old_runs.empty() && old_runs.back().range.last > w.last) {
      const FlatRange& o = old_runs.back();
      combined.push_back(
          Cut(o, std::max(o.range.first, w.last + 1), o.range.last));
    }
    SimplifyRanges(&combined);

    Range span = w;
    if (!old_runs.empty()) {
      span.first = std::min(span.first, old_runs.front().range.first);
      span.last = std::max(span.last, old_runs.back().range.last);
    }
    tree = tree.Splice(span, std::move(combined));
    spans.push_back(span);
    ++stats_.window_renders;
  }
  rs.windows.clear();

  diff->old_view = rs.view;
  rs.view = std::make_shared<const FlatView>(rs.root, std::move(tree));
  const FlatRangeTree& new_tree = rs.view->ranges();

  // Everything that changed lies inside the union of the spliced spans.
  for (const Range& span : Normalize(std::move(spans), 1)) {
    old_tree.CollectOverlapping(span, &diff->old_ranges);
    new_tree.CollectOverlapping(span, &diff->new_ranges);
  }
  const auto& olds = diff->old_ranges;
  const auto& news = diff->new_ranges;
  size_t i = 0, j = 0;
  while (i < olds.size() || j < news.size()) {
    if (j == news.size() ||
        (i < olds.size() && olds[i].range.first < news[j].range.first)) {
      diff->dels.push_back(&olds[i++]);
    } else if (i == olds.size() || news[j].range.first < olds[i].range.first) {
      diff->add_pass.push_back({nullptr, &news[j++]});
    } else if (olds[i].SameMapping(news[j])) {
      diff->add_pass.push_back({&olds[i++], &news[j++]});
    } else {
      diff->dels.push_back(&olds[i++]);
      diff->add_pass.push_back({nullptr, &news[j++]});
    }
  }
}

void MemorySystem::NotifyListeners(AddressSpace& as, const ViewDiff& diff) {
  const auto& ls = as.listeners_;
  for (const FlatRange* fr : diff.dels) {
    MemoryRegionSection s = fr->ToSection();
    for (auto it = ls.rbegin(); it != ls.rend(); ++it) {
      it->listener->RegionDel(s);
    }
  }
  for (const ViewDiff::AddPassItem& item : diff.add_pass) {
    MemoryRegionSection s = item.new_fr->ToSection();
    if (item.old_fr == nullptr) {
      for (const auto& l : ls) l.listener->RegionAdd(s);
      continue;
    }
    for (const auto& l : ls) l.listener->RegionNop(s);
    uint8_t old_mask = item.old_fr->log_mask;
    uint8_t new_mask = item.new_fr->log_mask;
    if (new_mask & ~old_mask) {
      for (const auto& l : ls) l.listener->LogStart(s, old_mask, new_mask);
    }
    if (old_mask & ~new_mask) {
      for (auto it = ls.rbegin(); it != ls.rend(); ++it) {
        it->listener->LogStop(s, old_mask, new_mask);
      }
    }
  }
}

void MemorySystem::CommitTransaction() {
  VIOMMU_CHECK(depth_ > 0, "commit without begin");
  if (--depth_ > 0 || !pending_) return;
  pending_ = false;

  absl::flat_hash_map<const MemoryRegion*, ViewDiff> diffs;
  for (auto& [root, rs] : roots_) {
    if (rs->windows.empty()) continue;
    UpdateRoot(*rs, &diffs[root]);
  }
  ++stats_.commits;

  notifying_ = true;
  for (const GlobalListener& l : listeners_) l.listener->Begin();
  for (AddressSpace* as : address_spaces_) {
    auto it = diffs.find(as->root());
    if (it == diffs.end()) continue;
    NotifyListeners(*as, it->second);
    as->Publish(roots_.at(as->root())->view);
  }
  for (const GlobalListener& l : listeners_) l.listener->Commit();
  notifying_ = false;
}

std::shared_ptr<const FlatView> MemorySystem::AttachAddressSpace(
    AddressSpace* as) {
  address_spaces_.push_back(as);
  std::unique_ptr<RootState>& rs = roots_[as->root()];
  if (rs == nullptr) {
    rs = std::make_unique<RootState>();
    rs->root = as->root()->shared_from_this();
    std::vector<FlatRange> ranges = RenderWindow(*rs->root, Range::Full());
    SimplifyRanges(&ranges);
    rs->view = std::make_shared<const FlatView>(
        rs->root, FlatRangeTree::FromSorted(std::move(ranges)));
    ++stats_.full_renders;
  }
  ++rs->spaces;
  return rs->view;
}

void MemorySystem::DetachAddressSpace(AddressSpace* as) {
  address_spaces_.erase(
      std::find(address_spaces_.begin(), address_spaces_.end(), as));
  auto it = roots_.find(as->root());
  VIOMMU_CHECK(it != roots_.end());
  if (--it->second->spaces == 0) roots_.erase(it);
}

uint64_t MemorySystem::AddGlobalListener(MemoryListener* listener,
                                         unsigned priority) {
  GlobalListener gl{listener, priority, ++listener_seq_};
  auto pos = std::upper_bound(
      listeners_.begin(), listeners_.end(), gl,
      [](const GlobalListener& a, const GlobalListener& b) {
        return a.priority < b.priority;
      });
  listeners_.insert(pos, gl);
  return gl.seq;
}

void MemorySystem::RemoveGlobalListener(MemoryListener* listener) {
  auto it = std::find_if(
      listeners_.begin(), listeners_.end(),
      [&](const GlobalListener& l) { return l.listener == listener; });
  VIOMMU_CHECK(it != listeners_.end());
  listeners_.erase(it);
}

}  // namespace viommu::memory
