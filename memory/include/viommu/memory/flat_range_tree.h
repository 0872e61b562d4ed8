// viommu/memory/flat_range_tree.h — a persistent (immutable, structurally
// shared) B+tree of disjoint FlatRanges ordered by address: the storage of
// a FlatView.
//
// Every "modification" returns a new tree that shares all untouched nodes
// with the old one, so a published view never changes under a reader and
// an update of k ranges in a tree of N costs O(k * B * log_B N).
//
//   FlatRangeTree t = FlatRangeTree::FromSorted(std::move(ranges));
//   const FlatRange* fr = t.Find(0x1234);
//   FlatRangeTree t2 = t.Splice({0x1000, 0x1fff}, {new_range});
//
// Threading: a tree value is immutable; copies (O(1)) may be read from any
// number of threads concurrently. Node lifetime is reference counted.
#ifndef VIOMMU_MEMORY_FLAT_RANGE_TREE_H_
#define VIOMMU_MEMORY_FLAT_RANGE_TREE_H_

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/functional/function_ref.h"
#include "viommu/memory/flat_range.h"
#include "viommu/util/range.h"

namespace viommu::memory {

class FlatRangeTree {
 public:
  FlatRangeTree() = default;  // empty

  // REQUIRES: `ranges` sorted by address and pairwise disjoint. O(N).
  static FlatRangeTree FromSorted(std::vector<FlatRange> ranges);

  // The range containing `addr`, or nullptr. O(log N). The pointer is
  // valid while this tree (or a copy sharing the node) is alive.
  const FlatRange* Find(uint64_t addr) const;

  // Appends, in address order, every range overlapping `window`.
  void CollectOverlapping(const Range& window,
                          std::vector<FlatRange>* out) const;

  // Calls fn for every range in address order.
  void ForEach(absl::FunctionRef<void(const FlatRange&)> fn) const;

  // A new tree: this tree without the ranges that START inside `span`, plus
  // `replacement`. REQUIRES: replacement is sorted and disjoint, and
  // disjoint from every range that remains.
  FlatRangeTree Splice(const Range& span,
                       std::vector<FlatRange> replacement) const;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  struct Node;
  std::shared_ptr<const Node> root_;
  size_t size_ = 0;
};

}  // namespace viommu::memory

#endif  // VIOMMU_MEMORY_FLAT_RANGE_TREE_H_
