// FlatRangeTree: a persistent B+tree keyed by FlatRange::range.first.
//
// Shape. Leaves hold up to kLeafMax ranges; inner nodes up to kInnerMax
// children. Every node keeps its search keys in a contiguous array
// (leaves: `firsts`, inner nodes: the smallest key under each child) that
// Find() searches branch-free; no virtual calls, no allocation on lookup.
// All leaves are at height 0 and every root-to-leaf path has the same
// length.
//
// Balance. Every node except the root holds at least half its maximum
// (kLeafMin / kInnerMin), as in a textbook B-tree, so the height is at
// most 1 + log_{kInnerMin}(N / kLeafMin) whatever sequence of Splices
// produced the tree. An inner root has at least two children (a
// single-child root is collapsed); a leaf root holds at least one range.
//
// Splice is split + join: split the tree at the lowest and highest keys
// that change, build the new middle bottom-up, and join the three parts.
// Split and join copy only the nodes on O(1) root-to-leaf paths (each
// O(B)), everything else is shared with the old tree; the old middle is
// dropped as whole subtrees (inner nodes count their ranges). Cost:
// O(B log_B N + inserted) for the usual case where the replacement lies in
// the span; plus O(k) for the k surviving ranges between span and
// replacement otherwise. (Freeing the removed nodes, when no other tree
// holds them, happens in the shared_ptr destructors.)
//
// Define VIOMMU_FLAT_RANGE_TREE_CHECK_INVARIANTS to verify shape, fill,
// keys and counts after every Splice (O(N); for debugging only).
#include "viommu/memory/flat_range_tree.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <memory>
#include <utility>
#include <vector>

#include "viommu/util/check.h"

namespace viommu::memory {
namespace {

constexpr unsigned kLeafMax = 32;
constexpr unsigned kInnerMax = 32;
constexpr unsigned kLeafMin = kLeafMax / 2;
constexpr unsigned kInnerMin = kInnerMax / 2;

// Number of keys[0, n) that are <= x (an upper_bound index). The loop
// compiles to conditional moves: no unpredictable branches.
inline unsigned CountLessEqual(const uint64_t* keys, unsigned n, uint64_t x) {
  if (n == 0) return 0;
  const uint64_t* base = keys;
  while (n > 1) {
    unsigned half = n / 2;
    base = base[half] <= x ? base + half : base;
    n -= half;
  }
  return static_cast<unsigned>(base - keys) + (*base <= x ? 1 : 0);
}

// Number of keys[0, n) that are < x (a lower_bound index).
inline unsigned CountLess(const uint64_t* keys, unsigned n, uint64_t x) {
  if (x == 0) return 0;
  return CountLessEqual(keys, n, x - 1);
}

// Splits `total` items into the fewest pieces of at most `max`, as evenly
// as possible: piece p is [Begin(p), Begin(p + 1)).
struct EvenChunks {
  EvenChunks(size_t n, unsigned max) : total(n), pieces((n + max - 1) / max) {}
  size_t Begin(size_t p) const { return total * p / pieces; }
  size_t total;
  size_t pieces;
};

}  // namespace

struct FlatRangeTree::Node {
  using Ptr = std::shared_ptr<const Node>;
  struct Leaf;
  struct Inner;
  struct Ops;

  uint8_t height;  // 0 for leaves
  uint16_t n;      // ranges (leaf) or children (inner node)
};

struct FlatRangeTree::Node::Leaf final : FlatRangeTree::Node {
  Leaf() : Node{0, 0} {}
  uint64_t firsts[kLeafMax];  // entries[i].range.first, for the search
  FlatRange entries[kLeafMax];
};

struct FlatRangeTree::Node::Inner final : FlatRangeTree::Node {
  explicit Inner(uint8_t h) : Node{h, 0} {}
  uint64_t keys[kInnerMax];  // smallest range.first under kids[i]
  size_t count = 0;          // ranges in this subtree
  Ptr kids[kInnerMax];
};

// The algorithms, as static members so that they may name the node types.
struct FlatRangeTree::Node::Ops {
  static const Leaf& AsLeaf(const Node& n) {
    return static_cast<const Leaf&>(n);
  }
  static const Inner& AsInner(const Node& n) {
    return static_cast<const Inner&>(n);
  }
  static size_t Count(const Node* n) {
    if (n == nullptr) return 0;
    return n->height == 0 ? n->n : AsInner(*n).count;
  }
  static uint64_t MinKey(const Node& n) {
    return n.height == 0 ? AsLeaf(n).firsts[0] : AsInner(n).keys[0];
  }
  static unsigned MinFill(const Node& n) {
    return n.height == 0 ? kLeafMin : kInnerMin;
  }
  static unsigned MaxFill(const Node& n) {
    return n.height == 0 ? kLeafMax : kInnerMax;
  }

  // A leaf of get(0) .. get(n - 1); get may return an lvalue (copied) or
  // an rvalue (moved).
  template <typename Get>
  static Ptr NewLeaf(size_t n, Get get) {
    auto leaf = std::make_shared<Leaf>();
    for (size_t i = 0; i < n; ++i) {
      leaf->entries[i] = get(i);
      leaf->firsts[i] = leaf->entries[i].range.first;
    }
    leaf->n = static_cast<uint16_t>(n);
    return leaf;
  }

  // An inner node at `height` over the children get(0) .. get(n - 1).
  template <typename Get>
  static Ptr NewInner(uint8_t height, size_t n, Get get) {
    auto inner = std::make_shared<Inner>(height);
    for (size_t i = 0; i < n; ++i) {
      inner->kids[i] = get(i);
      inner->keys[i] = MinKey(*inner->kids[i]);
      inner->count += Count(inner->kids[i].get());
    }
    inner->n = static_cast<uint16_t>(n);
    return inner;
  }

  // children[begin, end) of `in` as a tree: null, the single child, `in`
  // itself, or a new node.
  static Ptr SubTree(const Ptr& node, unsigned begin, unsigned end) {
    const Inner& in = AsInner(*node);
    if (begin == end) return nullptr;
    if (end - begin == 1) return in.kids[begin];
    if (begin == 0 && end == in.n) return node;
    return NewInner(in.height, end - begin,
                    [&](size_t i) -> const Ptr& { return in.kids[begin + i]; });
  }

  // Builds a tree bottom-up from sorted, disjoint ranges. O(N).
  static Ptr Build(std::vector<FlatRange>& ranges) {
    if (ranges.empty()) return nullptr;
    std::vector<Ptr> level;
    EvenChunks leaves(ranges.size(), kLeafMax);
    level.reserve(leaves.pieces);
    for (size_t p = 0; p < leaves.pieces; ++p) {
      size_t b = leaves.Begin(p);
      level.push_back(NewLeaf(
          leaves.Begin(p + 1) - b,
          [&](size_t i) -> FlatRange&& { return std::move(ranges[b + i]); }));
    }
    for (uint8_t h = 1; level.size() > 1; ++h) {
      std::vector<Ptr> up;
      EvenChunks chunks(level.size(), kInnerMax);
      up.reserve(chunks.pieces);
      for (size_t p = 0; p < chunks.pieces; ++p) {
        size_t b = chunks.Begin(p);
        up.push_back(NewInner(
            h, chunks.Begin(p + 1) - b,
            [&](size_t i) -> Ptr&& { return std::move(level[b + i]); }));
      }
      level = std::move(up);
    }
    return std::move(level.front());
  }

  // Two siblings of the same height as one or two nodes that are each at
  // least half full (or a single node holding everything when that is all
  // there is). Shares both when they already are. Returns the node count.
  static unsigned Fuse(const Ptr& a, const Ptr& b, Ptr out[2]) {
    unsigned min = MinFill(*a);
    if (a->n >= min && b->n >= min) {
      out[0] = a;
      out[1] = b;
      return 2;
    }
    EvenChunks chunks(a->n + b->n, MaxFill(*a));
    for (size_t p = 0; p < chunks.pieces; ++p) {
      size_t begin = chunks.Begin(p);
      size_t n = chunks.Begin(p + 1) - begin;
      if (a->height == 0) {
        const Leaf& x = AsLeaf(*a);
        const Leaf& y = AsLeaf(*b);
        out[p] = NewLeaf(n, [&](size_t i) -> const FlatRange& {
          size_t k = begin + i;
          return k < x.n ? x.entries[k] : y.entries[k - x.n];
        });
      } else {
        const Inner& x = AsInner(*a);
        const Inner& y = AsInner(*b);
        out[p] = NewInner(a->height, n, [&](size_t i) -> const Ptr& {
          size_t k = begin + i;
          return k < x.n ? x.kids[k] : y.kids[k - x.n];
        });
      }
    }
    return static_cast<unsigned>(chunks.pieces);
  }

  // kids (n of them, at most kInnerMax + 1) as one node, or two halves when
  // they overflow. Returns the node count.
  static unsigned Pack(uint8_t height, const Ptr* kids, unsigned n,
                       Ptr out[2]) {
    auto get = [&](unsigned offset) {
      return
          [kids, offset](size_t i) -> const Ptr& { return kids[offset + i]; };
    };
    if (n <= kInnerMax) {
      out[0] = NewInner(height, n, get(0));
      return 1;
    }
    out[0] = NewInner(height, n / 2, get(0));
    out[1] = NewInner(height, n - n / 2, get(n / 2));
    return 2;
  }

  // Appends tree `b` (lower) after the inner node `a` (higher), along a's
  // right spine. Returns 1 or 2 nodes at a's height.
  static unsigned JoinRight(const Inner& a, const Ptr& b, Ptr out[2]) {
    Ptr kids[kInnerMax + 1];
    std::copy(a.kids, a.kids + a.n - 1, kids);
    Ptr tail[2];
    const Ptr& last = a.kids[a.n - 1];
    unsigned k = last->height == b->height ? Fuse(last, b, tail)
                                           : JoinRight(AsInner(*last), b, tail);
    unsigned n = a.n - 1;
    for (unsigned i = 0; i < k; ++i) kids[n++] = std::move(tail[i]);
    return Pack(a.height, kids, n, out);
  }

  // Prepends tree `a` (lower) before the inner node `b` (higher), along b's
  // left spine. Returns 1 or 2 nodes at b's height.
  static unsigned JoinLeft(const Ptr& a, const Inner& b, Ptr out[2]) {
    Ptr kids[kInnerMax + 1];
    Ptr head[2];
    const Ptr& first = b.kids[0];
    unsigned k = first->height == a->height
                     ? Fuse(a, first, head)
                     : JoinLeft(a, AsInner(*first), head);
    unsigned n = 0;
    for (unsigned i = 0; i < k; ++i) kids[n++] = std::move(head[i]);
    std::copy(b.kids + 1, b.kids + b.n, kids + n);
    n += b.n - 1;
    return Pack(b.height, kids, n, out);
  }

  // The tree of a's ranges followed by b's. REQUIRES: every key of `a` is
  // below every key of `b`; both are valid trees (null for empty).
  static Ptr Join(const Ptr& a, const Ptr& b) {
    if (a == nullptr) return b;
    if (b == nullptr) return a;
    Ptr out[2];
    unsigned k;
    uint8_t h;
    if (a->height == b->height) {
      k = Fuse(a, b, out);
      h = a->height;
    } else if (a->height > b->height) {
      k = JoinRight(AsInner(*a), b, out);
      h = a->height;
    } else {
      k = JoinLeft(a, AsInner(*b), out);
      h = b->height;
    }
    if (k == 1) return CollapseRoot(std::move(out[0]));
    return NewInner(static_cast<uint8_t>(h + 1), 2,
                    [&](size_t i) -> const Ptr& { return out[i]; });
  }

  static Ptr CollapseRoot(Ptr root) {
    while (root != nullptr && root->height != 0 && root->n == 1) {
      root = AsInner(*root).kids[0];
    }
    return root;
  }

  // *left receives the ranges of `node` whose first is < key, *right the
  // others; either may be null.
  static void Split(const Ptr& node, uint64_t key, Ptr* left, Ptr* right) {
    if (node == nullptr) {
      *left = *right = nullptr;
      return;
    }
    if (node->height == 0) {
      const Leaf& leaf = AsLeaf(*node);
      unsigned i = CountLess(leaf.firsts, leaf.n, key);
      if (i == 0 || i == leaf.n) {
        *left = i == 0 ? nullptr : node;
        *right = i == 0 ? node : nullptr;
        return;
      }
      auto from = [&](unsigned offset) {
        return [&leaf, offset](size_t k) -> const FlatRange& {
          return leaf.entries[offset + k];
        };
      };
      *left = NewLeaf(i, from(0));
      *right = NewLeaf(leaf.n - i, from(i));
      return;
    }
    const Inner& in = AsInner(*node);
    unsigned i = CountLess(in.keys, in.n, key);  // children with keys < key
    if (i == 0) {
      *left = nullptr;
      *right = node;
      return;
    }
    unsigned j = i - 1;  // the child that may straddle `key`
    Ptr lj, rj;
    Split(in.kids[j], key, &lj, &rj);
    if (rj == nullptr) {
      *left = SubTree(node, 0, j + 1);
      *right = SubTree(node, j + 1, in.n);
      return;
    }
    *left = Join(SubTree(node, 0, j), lj);
    *right = Join(rj, SubTree(node, j + 1, in.n));
  }

  static const FlatRange* First(const Node* n) {
    while (n->height != 0) n = AsInner(*n).kids[0].get();
    return &AsLeaf(*n).entries[0];
  }
  static const FlatRange* Last(const Node* n) {
    while (n->height != 0) n = AsInner(*n).kids[n->n - 1].get();
    return &AsLeaf(*n).entries[n->n - 1];
  }

  static void ForEach(const Node& n,
                      absl::FunctionRef<void(const FlatRange&)> fn) {
    if (n.height == 0) {
      const Leaf& leaf = AsLeaf(n);
      for (unsigned i = 0; i < leaf.n; ++i) fn(leaf.entries[i]);
      return;
    }
    const Inner& in = AsInner(n);
    for (unsigned i = 0; i < in.n; ++i) ForEach(*in.kids[i], fn);
  }

  // Ranges of `n` overlapping `w`, in order. Only the range containing
  // w.first can start before it (ranges are disjoint), and it lies in the
  // last child whose key is <= w.first.
  static void Collect(const Node& n, const Range& w,
                      std::vector<FlatRange>* out) {
    if (n.height == 0) {
      const Leaf& leaf = AsLeaf(n);
      unsigned i = CountLessEqual(leaf.firsts, leaf.n, w.first);
      if (i > 0) --i;
      for (; i < leaf.n && leaf.firsts[i] <= w.last; ++i) {
        if (leaf.entries[i].range.last >= w.first) {
          out->push_back(leaf.entries[i]);
        }
      }
      return;
    }
    const Inner& in = AsInner(n);
    unsigned i = CountLessEqual(in.keys, in.n, w.first);
    if (i > 0) --i;
    for (; i < in.n && in.keys[i] <= w.last; ++i) Collect(*in.kids[i], w, out);
  }

#ifdef VIOMMU_FLAT_RANGE_TREE_CHECK_INVARIANTS
  // Debug aid (off by default, O(N)): shape, fill, keys and counts.
  static size_t Check(const Node& n, bool is_root) {
    VIOMMU_CHECK(n.n >= 1 && n.n <= MaxFill(n));
    if (!is_root) VIOMMU_CHECK(n.n >= MinFill(n), "underfull node");
    if (n.height == 0) {
      const Leaf& leaf = AsLeaf(n);
      for (unsigned i = 0; i < leaf.n; ++i) {
        VIOMMU_CHECK(leaf.firsts[i] == leaf.entries[i].range.first);
      }
      return leaf.n;
    }
    const Inner& in = AsInner(n);
    if (is_root) VIOMMU_CHECK(in.n >= 2, "single-child root");
    size_t count = 0;
    for (unsigned i = 0; i < in.n; ++i) {
      VIOMMU_CHECK(in.kids[i]->height + 1 == in.height, "uneven height");
      VIOMMU_CHECK(in.keys[i] == MinKey(*in.kids[i]));
      count += Check(*in.kids[i], false);
    }
    VIOMMU_CHECK(count == in.count);
    return count;
  }
#endif
};

namespace {

// REQUIRES of FromSorted and Splice: sorted, each range well formed, and
// pairwise disjoint. A violation is a caller bug (an internal invariant).
void CheckSortedDisjoint(const std::vector<FlatRange>& ranges) {
  for (size_t i = 0; i < ranges.size(); ++i) {
    VIOMMU_CHECK(ranges[i].range.first <= ranges[i].range.last);
    if (i > 0) {
      VIOMMU_CHECK(ranges[i - 1].range.last < ranges[i].range.first,
                   "ranges not sorted and disjoint");
    }
  }
}

}  // namespace

FlatRangeTree FlatRangeTree::FromSorted(std::vector<FlatRange> ranges) {
  CheckSortedDisjoint(ranges);
  FlatRangeTree t;
  t.size_ = ranges.size();
  t.root_ = Node::Ops::Build(ranges);
  return t;
}

const FlatRange* FlatRangeTree::Find(uint64_t addr) const {
  const Node* node = root_.get();
  if (node == nullptr) return nullptr;
  while (node->height != 0) {
    const Node::Inner& in = Node::Ops::AsInner(*node);
    unsigned i = CountLessEqual(in.keys, in.n, addr);
    if (i == 0) return nullptr;
    node = in.kids[i - 1].get();
  }
  const Node::Leaf& leaf = Node::Ops::AsLeaf(*node);
  unsigned i = CountLessEqual(leaf.firsts, leaf.n, addr);
  if (i == 0) return nullptr;
  const FlatRange& fr = leaf.entries[i - 1];
  return addr <= fr.range.last ? &fr : nullptr;
}

void FlatRangeTree::CollectOverlapping(const Range& window,
                                       std::vector<FlatRange>* out) const {
  if (root_ != nullptr) Node::Ops::Collect(*root_, window, out);
}

void FlatRangeTree::ForEach(
    absl::FunctionRef<void(const FlatRange&)> fn) const {
  if (root_ != nullptr) Node::Ops::ForEach(*root_, fn);
}

FlatRangeTree FlatRangeTree::Splice(const Range& span,
                                    std::vector<FlatRange> replacement) const {
  using Ops = Node::Ops;
  CheckSortedDisjoint(replacement);
  // Keys in [lo, hi] may change; the rest of the tree is shared.
  uint64_t lo = span.first;
  uint64_t hi = span.last;
  if (!replacement.empty()) {
    lo = std::min(lo, replacement.front().range.first);
    hi = std::max(hi, replacement.back().range.first);
  }
  std::shared_ptr<const Node> left, rest, mid, right;
  Ops::Split(root_, lo, &left, &rest);
  if (hi == UINT64_MAX) {
    mid = std::move(rest);
  } else {
    Ops::Split(rest, hi + 1, &mid, &right);
  }
  size_t old_mid = Ops::Count(mid.get());
  if (old_mid == 0 && replacement.empty()) return *this;

  std::vector<FlatRange> middle;
  size_t kept = 0;
  if (lo == span.first && hi == span.last) {
    middle = std::move(replacement);  // everything in [lo, hi] goes
  } else {
    // Ranges between span and replacement survive: merge them in.
    std::vector<FlatRange> survivors;
    if (mid != nullptr) {
      Ops::ForEach(*mid, [&](const FlatRange& fr) {
        if (!span.Contains(fr.range.first)) survivors.push_back(fr);
      });
    }
    kept = survivors.size();
    middle.reserve(kept + replacement.size());
    std::merge(std::make_move_iterator(survivors.begin()),
               std::make_move_iterator(survivors.end()),
               std::make_move_iterator(replacement.begin()),
               std::make_move_iterator(replacement.end()),
               std::back_inserter(middle),
               [](const FlatRange& a, const FlatRange& b) {
                 return a.range.first < b.range.first;
               });
    CheckSortedDisjoint(middle);
  }
  size_t inserted = middle.size() - kept;
  if (!middle.empty()) {
    VIOMMU_CHECK(left == nullptr || Ops::Last(left.get())->range.last <
                                        middle.front().range.first,
                 "replacement overlaps a remaining range");
    VIOMMU_CHECK(right == nullptr || middle.back().range.last <
                                         Ops::First(right.get())->range.first,
                 "replacement overlaps a remaining range");
  }

  FlatRangeTree t;
  t.root_ = Ops::Join(Ops::Join(left, Ops::Build(middle)), right);
  t.size_ = size_ - (old_mid - kept) + inserted;
#ifdef VIOMMU_FLAT_RANGE_TREE_CHECK_INVARIANTS
  VIOMMU_CHECK((t.root_ ? Ops::Check(*t.root_, true) : 0) == t.size_);
#endif
  return t;
}

}  // namespace viommu::memory
