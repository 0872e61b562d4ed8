// viommu/hw/iommu/vtd_shadow_map.h — per device address space, the leaf
// mappings the MAP/UNMAP notifiers have been told about, and the sync that
// turns a second-level page-table walk into MAP/UNMAP notifications
// (QEMU's iova_tree + vtd_page_walk_one, made exact: see below).
//
//   ShadowMap shadow;
//   NotifierChainsEmitter out(iommu_mr->iommu(), &system_as);
//   // PSI of [addr, addr + size - 1], with caching mode and a MAP notifier:
//   shadow.Sync(Range::FromBaseSize(addr, size),
//               [&](const Range& r, WalkSink sink) {
//                 WalkSl(mem, ce, aw_bits, r.first, r.last, sink);
//               },
//               out);
//   // TE off, SRTP, context invalidation that drops the context, reset:
//   shadow.UnmapAll(out);
//
// Sync rules, per walk entry (the walk reports whole slots, which may
// extend beyond the synced range):
//   leaf equal to the state entry at the same IOVA and size : nothing
//   leaf, same IOVA and size, other gpa/perm : one change (UNMAP then MAP)
//   leaf, anything else : UNMAP every overlapping state entry exactly as it
//                         was mapped, then MAP the leaf
//   invalid slot (perm kIommuNone) : UNMAP exactly the overlapping state
//                         entries, each as it was mapped; nothing else
//   IOVA not covered by the stream (unreadable slots) : state untouched.
// So an unchanged mapping is never re-notified and no UNMAP is ever
// larger than what was mapped. Cost: O(entries walked + state entries
// touched), plus one O(log n) lookup at the start and wherever the stream
// jumps over many state entries; the lookup at the start is O(1) when the
// sync begins at or just after where the previous one ended (pages mapped
// in increasing IOVA order, one PSI each).
//
// Threading: none; the owner (the VT-d device, control context) serialises
// every call. The emitter must not call back into the same ShadowMap.
#ifndef VIOMMU_HW_IOMMU_VTD_SHADOW_MAP_H_
#define VIOMMU_HW_IOMMU_VTD_SHADOW_MAP_H_

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/container/btree_map.h"
#include "absl/functional/function_ref.h"
#include "viommu/hw/iommu/vtd_walk_entry.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/iommu_notifier_chains.h"
#include "viommu/util/range.h"
#include "viommu/util/types.h"

namespace viommu::vtd {

// What a shadowed leaf translates to.
struct ShadowTranslation {
  Hwaddr gpa = 0;
  memory::IommuPerm perm = memory::kIommuReadWrite;  // never kIommuNone
  friend bool operator==(const ShadowTranslation&,
                         const ShadowTranslation&) = default;
};

// Receives the changes a ShadowMap decides, in the order they must be
// notified. Semantics are those of IommuNotifierChains::NotifyMappingChange:
// [iova, iova + addr_mask] went from `before` to `after` (nullopt: not
// mapped); at least one is present, and when both are, they differ.
class ShadowEmitter {
 public:
  ShadowEmitter() = default;
  ShadowEmitter(const ShadowEmitter&) = delete;
  ShadowEmitter& operator=(const ShadowEmitter&) = delete;
  virtual ~ShadowEmitter() = default;

  virtual void MappingChanged(
      Iova iova, uint64_t addr_mask,
      const std::optional<ShadowTranslation>& before,
      const std::optional<ShadowTranslation>& after) = 0;
};

// The production emitter: forwards to NotifyMappingChange on one iommu
// index (UNMAP chain before MAP chain for a change in place).
class NotifierChainsEmitter final : public ShadowEmitter {
 public:
  // `chains` and `target_as` (the guest-physical space the leaves point
  // into) are not owned and must outlive this.
  NotifierChainsEmitter(memory::IommuNotifierChains* chains,
                        memory::AddressSpace* target_as, int iommu_idx = 0)
      : chains_(chains), target_as_(target_as), iommu_idx_(iommu_idx) {}

  void MappingChanged(Iova iova, uint64_t addr_mask,
                      const std::optional<ShadowTranslation>& before,
                      const std::optional<ShadowTranslation>& after) override;

 private:
  memory::IommuNotifierChains* chains_;  // not owned
  memory::AddressSpace* target_as_;      // not owned
  int iommu_idx_;
};

// What one Sync did (for tracing and tests).
struct SyncStats {
  uint64_t walked = 0;     // walk entries received
  uint64_t unchanged = 0;  // leaves already notified as they are
  uint64_t mapped = 0;     // MAPs of a new range
  uint64_t changed = 0;    // in-place changes (UNMAP + MAP of one range)
  uint64_t unmapped = 0;   // state entries removed (one UNMAP each)
  friend bool operator==(const SyncStats&, const SyncStats&) = default;
};

// Produces the guest's current walk entries for `range`, in increasing
// IOVA order, into the sink (see vtd_walk_entry.h).
using ShadowWalkFn = absl::FunctionRef<void(const Range& range, WalkSink)>;

class ShadowMap {
 public:
  ShadowMap() = default;
  ShadowMap(const ShadowMap&) = delete;
  ShadowMap& operator=(const ShadowMap&) = delete;

  // Brings the state for `range` in line with walk(range, sink) and emits
  // the differences to `out`, in stream order (file comment for the rules).
  // REQUIRES (VIOMMU_CHECK, walk bugs): walk entries come in increasing,
  // non-overlapping order; a leaf's addr_mask is 2^k - 1 with k >= 12, its
  // iova aligned to it, its gpa 4 KiB aligned.
  SyncStats Sync(const Range& range, ShadowWalkFn walk, ShadowEmitter& out);

  // Unmaps every entry, each exactly as it was mapped, in IOVA order, and
  // leaves the map empty. Returns the number of UNMAPs.
  size_t UnmapAll(ShadowEmitter& out);

  // Calls fn for each entry overlapping `range`, in IOVA order, as a
  // translation with target_as null (the caller fills it in for replay).
  void ForEach(const Range& range,
               absl::FunctionRef<void(const memory::IommuTlbEntry&)> fn) const;

  size_t size() const { return state_.size(); }
  bool empty() const { return state_.empty(); }

 private:
  // 16 bytes: the B-tree slot is 24 with the key.
  struct Leaf {
    Hwaddr gpa = 0;
    uint8_t order = 12;  // log2 of the leaf size
    memory::IommuPerm perm = memory::kIommuNone;
  };
  static_assert(sizeof(Leaf) == 16);
  using State = absl::btree_map<Iova, Leaf>;

  static uint64_t Mask(const Leaf& l) {
    return (uint64_t{2} << (l.order - 1)) - 1;
  }
  static uint64_t LastOf(State::const_iterator it) {
    return it->first + Mask(it->second);
  }
  // First entry whose last byte is >= iova.
  State::iterator Seek(Iova iova);
  // The same, starting from finger_ when it is at or just before the
  // answer (a guest mapping pages in increasing order: O(1)), else Seek.
  State::iterator SeekNear(Iova iova);
  // UNMAPs and erases *it; returns the next entry.
  State::iterator Unmap(State::iterator it, ShadowEmitter& out);

  State state_;  // key: leaf IOVA; entries never overlap
  // Where the last Sync that saw a walk entry stopped (the state entry
  // after the last slot it handled), while finger_valid_. Every change to
  // state_ happens in Sync, which leaves finger_ on its own iterator, or
  // UnmapAll, which drops it; so it is never a stale iterator.
  State::iterator finger_;
  bool finger_valid_ = false;
};

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_SHADOW_MAP_H_
