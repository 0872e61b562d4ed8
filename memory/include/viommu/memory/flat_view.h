// viommu/memory/flat_view.h — the rendered, immutable view of a root
// region: sorted disjoint FlatRanges (QEMU's FlatView).
//
//   std::shared_ptr<const FlatView> v = as.CurrentView();
//   if (const FlatRange* fr = v->Lookup(gpa)) ...
//   v->ForEach([](const FlatRange& fr) { ... });
//
// Threading: immutable once published; safe to read from any thread.
#ifndef VIOMMU_MEMORY_FLAT_VIEW_H_
#define VIOMMU_MEMORY_FLAT_VIEW_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "viommu/memory/flat_range.h"
#include "viommu/memory/flat_range_tree.h"

namespace viommu::memory {

class FlatView {
 public:
  FlatView(std::shared_ptr<MemoryRegion> root, FlatRangeTree ranges)
      : root_(std::move(root)), ranges_(std::move(ranges)) {}

  // The range containing `addr`, or nullptr. O(log N).
  const FlatRange* Lookup(uint64_t addr) const { return ranges_.Find(addr); }
  void ForEach(absl::FunctionRef<void(const FlatRange&)> fn) const {
    ranges_.ForEach(fn);
  }
  size_t size() const { return ranges_.size(); }
  MemoryRegion* root() const { return root_.get(); }
  const FlatRangeTree& ranges() const { return ranges_; }

 private:
  std::shared_ptr<MemoryRegion> root_;
  FlatRangeTree ranges_;
};

}  // namespace viommu::memory

#endif  // VIOMMU_MEMORY_FLAT_VIEW_H_
