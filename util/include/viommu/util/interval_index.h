// viommu/util/interval_index.h — find the stored ranges that overlap a query
// range in O(log n + hits) for the shapes viommu sees.
//
// Ranges are bucketed by size class (bit width of last - first) and each
// bucket is a B-tree ordered by start. A range of class k is shorter than
// 2^k, so one that overlaps [a, b] starts in [a - 2^k + 1, b]: each
// non-empty bucket costs one B-tree seek plus the entries in that window.
// With non-overlapping ranges of a class, at most one entry per class is
// visited that does not overlap, so a query costs
// O(classes-in-use * log n + hits).
//
//   IntervalIndex<Notifier*> index;
//   auto key = index.Insert({0x1000, 0x1fff}, n);
//   index.ForEachOverlap({0x1800, 0x2800}, [](Range r, Notifier* n) { ... });
//   index.Erase(key);
//
// Thread safety: none; callers synchronise.
#ifndef VIOMMU_UTIL_INTERVAL_INDEX_H_
#define VIOMMU_UTIL_INTERVAL_INDEX_H_

#include <array>
#include <bit>
#include <cstdint>
#include <utility>

#include "absl/container/btree_map.h"
#include "viommu/util/range.h"

namespace viommu {

template <typename V>
class IntervalIndex {
 public:
  struct Key {
    Range range;
    uint64_t seq = 0;  // disambiguates equal starts; increases per insert
  };

  // Inserts a copy of `value` covering `range`. Returns the key that erases it.
  Key Insert(const Range& range, V value) {
    Key key{range, next_seq_++};
    int k = SizeClass(range);
    buckets_[k].emplace(std::make_pair(range.first, key.seq),
                        Entry{range, std::move(value)});
    used_[k / 64] |= uint64_t{1} << (k % 64);
    ++size_;
    return key;
  }

  // Removes the entry; returns false if `key` is not present.
  bool Erase(const Key& key) {
    int k = SizeClass(key.range);
    auto& bucket = buckets_[k];
    if (bucket.erase(std::make_pair(key.range.first, key.seq)) == 0) {
      return false;
    }
    if (bucket.empty()) used_[k / 64] &= ~(uint64_t{1} << (k % 64));
    --size_;
    return true;
  }

  // Calls fn(const Range&, const V&) for every entry overlapping `query`.
  // REQUIRES: fn does not insert into or erase from this index.
  template <typename Fn>
  void ForEachOverlap(const Range& query, Fn&& fn) const {
    for (int word = 0; word < 2; ++word) {
      uint64_t bits = used_[word];
      while (bits != 0) {
        int k = word * 64 + std::countr_zero(bits);
        bits &= bits - 1;
        // Entries of class k are shorter than 2^k (k == 64: any length).
        uint64_t reach = k >= 64 ? UINT64_MAX : (uint64_t{1} << k) - 1;
        uint64_t lo = query.first >= reach ? query.first - reach : 0;
        const auto& bucket = buckets_[k];
        for (auto it = bucket.lower_bound(std::make_pair(lo, uint64_t{0}));
             it != bucket.end() && it->first.first <= query.last; ++it) {
          if (it->second.range.last >= query.first) {
            fn(it->second.range, it->second.value);
          }
        }
      }
    }
  }

  template <typename Fn>
  void ForEach(Fn&& fn) const {
    ForEachOverlap(Range::Full(), std::forward<Fn>(fn));
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  struct Entry {
    Range range;
    V value;
  };
  static int SizeClass(const Range& r) {
    uint64_t span = r.last - r.first;
    return span == 0 ? 0 : 64 - std::countl_zero(span);
  }

  std::array<absl::btree_map<std::pair<uint64_t, uint64_t>, Entry>, 65>
      buckets_;
  uint64_t used_[2] = {0, 0};
  uint64_t next_seq_ = 0;
  size_t size_ = 0;
};

}  // namespace viommu

#endif  // VIOMMU_UTIL_INTERVAL_INDEX_H_
