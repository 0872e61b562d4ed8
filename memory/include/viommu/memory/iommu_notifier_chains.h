// viommu/memory/iommu_notifier_chains.h — the notifiers of one IOMMU region,
// kept on separate chains per event type: MAP, UNMAP and DEVIOTLB_UNMAP.
//
// Consumers register on the chains they need. A shadowing consumer (VFIO)
// registers on MAP and UNMAP; a cache-only consumer on UNMAP only:
//
//   IommuNotifierChains* chains = iommu_mr->iommu();
//   absl::StatusOr<IommuNotifierHandle> h = chains->Register(
//       &my_notifier, {.flags = kNotifyIotlbEvents, .range = {0, 0xffff}});
//   if (h.ok()) VIOMMU_RETURN_IF_ERROR(chains->Replay(*h));   // MAPs only
//
// Producers (IOMMU models) announce changes with NotifyMappingChange(),
// which derives the events from the previous state the producer passes:
//   nothing → mapping        : MAP
//   mapping → nothing        : UNMAP
//   mapping → other mapping  : UNMAP (UNMAP chain), then MAP (MAP chain)
//   equal → equal            : nothing
// so a valid→valid change can never be emitted as a bare MAP.
//
// Dispatch: an event reaches only the chain of its type, only notifiers of
// its iommu index whose range overlaps it, cropped to that range; it costs
// O(log M + notifiers hit) for M notifiers on the chain (up to
// kSmallChain notifiers, a scan of them in registration order, which is
// cheaper than the index at that size: one per chain is the usual case).
//
// Threading: control context only (registration, dispatch, replay).
// Notifiers may unregister themselves, or others, from inside Notify();
// a notifier unregistered during a dispatch is not called afterwards.
#ifndef VIOMMU_MEMORY_IOMMU_NOTIFIER_CHAINS_H_
#define VIOMMU_MEMORY_IOMMU_NOTIFIER_CHAINS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "viommu/memory/iommu.h"
#include "viommu/util/interval_index.h"
#include "viommu/util/range.h"

namespace viommu::memory {

// Implemented by consumers of IOMMU events.
class IommuNotifier {
 public:
  IommuNotifier() = default;
  IommuNotifier(const IommuNotifier&) = delete;
  IommuNotifier& operator=(const IommuNotifier&) = delete;
  virtual ~IommuNotifier() = default;

  // Called for each event of a type the notifier registered for, cropped
  // to the registered range. `event.entry` is valid only during the call.
  virtual void Notify(const IommuEvent& event) = 0;
};

// What a mapping translates to; used with NotifyMappingChange().
struct IommuMapping {
  Hwaddr translated_addr = 0;
  IommuPerm perm = kIommuReadWrite;  // must not be kIommuNone
  AddressSpace* target_as = nullptr;
  friend bool operator==(const IommuMapping&, const IommuMapping&) = default;
};

class IommuNotifierChains;

// Move-only; unregisters its notifier on destruction or Reset().
class IommuNotifierHandle {
 public:
  IommuNotifierHandle() = default;
  IommuNotifierHandle(IommuNotifierHandle&& o) noexcept;
  IommuNotifierHandle& operator=(IommuNotifierHandle&& o) noexcept;
  ~IommuNotifierHandle();

  void Reset();
  bool registered() const { return chains_ != nullptr; }

 private:
  friend class IommuNotifierChains;
  IommuNotifierHandle(IommuNotifierChains* chains, uint64_t id)
      : chains_(chains), id_(id) {}
  IommuNotifierChains* chains_ = nullptr;  // not owned
  uint64_t id_ = 0;
};

class IommuNotifierChains {
 public:
  struct Registration {
    NotifierFlags flags = kNotifyIotlbEvents;
    Range range = Range::Full();  // inclusive, in IOVA space
    int iommu_idx = 0;
  };

  // `model` is not owned and must outlive this object.
  IommuNotifierChains(IommuModel* model, std::string name);
  IommuNotifierChains(const IommuNotifierChains&) = delete;
  IommuNotifierChains& operator=(const IommuNotifierChains&) = delete;
  // REQUIRES: every handle has been reset (or is destroyed first), and no
  // dispatch is running. A live handle here is a bug: VIOMMU_CHECK aborts
  // rather than leave the handle pointing at freed chains.
  ~IommuNotifierChains();

  // Puts `notifier` on the chain of every event type in reg.flags. If that
  // changes the union of flags over all chains, the model's
  // NotifyFlagChanged() is asked first; its error is returned and nothing
  // is registered (no chain, flags() or later event shows a trace of it).
  // May be called from inside a Notify(); the new notifier does not see the
  // event being dispatched.
  // Errors: kInvalidArgument (null notifier, no flags or unknown flag bits,
  // iommu_idx outside [0, NumIndexes()), range.first > range.last), or the
  // model's veto (its status, unchanged).
  [[nodiscard]] absl::StatusOr<IommuNotifierHandle> Register(
      IommuNotifier* notifier, const Registration& reg);

  // Delivers `event` to the chain of event.type (see file comment), in
  // registration order: the notifiers whose range overlaps the event are
  // called oldest registration first (each Register() takes the next
  // number; re-registering goes to the end). QEMU calls its list LIFO.
  // Each delivered entry is cropped: iova and the last
  // byte are clamped to the notifier range, addr_mask = last - iova, and
  // translated_addr moves by the same amount as iova.
  // REQUIRES: 0 <= iommu_idx < NumIndexes(); iova + addr_mask does not wrap;
  // UNMAP events carry perm kIommuNone (VIOMMU_CHECK: producer bugs).
  void Notify(int iommu_idx, const IommuEvent& event);

  // The producer helper: [iova, iova + addr_mask] went from `before` to
  // `after` (nullopt: not mapped). Emits nothing, MAP, UNMAP or UNMAP-then-
  // MAP as in the file comment. The UNMAP carries `before`'s translation
  // with perm kIommuNone; the MAP carries `after`.
  // REQUIRES: before/after, when present, have perm != kIommuNone.
  void NotifyMappingChange(int iommu_idx, Iova iova, uint64_t addr_mask,
                           const std::optional<IommuMapping>& before,
                           const std::optional<IommuMapping>& after);

  // Sends one UNMAP covering the notifier's whole range to that notifier
  // only (QEMU's memory_region_unmap_iommu_notifier_range), if it is on the
  // UNMAP chain; otherwise nothing. An unregistered handle is a no-op.
  // REQUIRES: a registered handle comes from this object.
  void UnmapNotifierRange(const IommuNotifierHandle& handle);

  // Asks the model to replay its mappings of the handle's iommu index to
  // this one notifier, as MAP events cropped to its range. A notifier not
  // on the MAP chain receives nothing.
  // Errors: kInvalidArgument (handle not from this object), or the model's
  // error (kUnimplemented when the model has no Replay).
  [[nodiscard]] absl::Status Replay(const IommuNotifierHandle& handle);

  // Union of flags over all chains, as last accepted by the model.
  NotifierFlags flags() const { return flags_; }
  // Number of notifiers on the chain of `type`.
  size_t ChainSize(IommuEventType type) const;
  IommuModel* model() const { return model_; }
  const std::string& name() const { return name_; }

 private:
  struct Entry;
  // Chains of at most this many notifiers are also kept as a list in
  // registration order, which dispatch scans instead of the index.
  static constexpr size_t kSmallChain = 4;
  struct Chain {
    IntervalIndex<Entry*> index;
    // Every entry of `index` in registration (id) order while
    // index.size() <= kSmallChain; unused (empty) above.
    absl::InlinedVector<Entry*, kSmallChain> small;
    bool empty() const { return index.empty(); }
    size_t size() const { return index.size(); }
  };
  friend class IommuNotifierHandle;

  // Index into chains_ for an event type (UNMAP 0, MAP 1, DEVIOTLB 2).
  static int TypeSlot(IommuEventType type);
  void Unregister(uint64_t id);
  NotifierFlags ComputeFlags() const;
  Chain& ChainFor(IommuEventType type, int iommu_idx);
  // Crops `event` to the entry's range and calls it, unless it is dead.
  void Deliver(Entry& entry, const IommuEvent& event);
  // Frees the entries unregistered during a dispatch (depth back to 0).
  void PurgeDead();

  IommuModel* model_;  // not owned
  std::string name_;
  // chains_[TypeSlot(type)][iommu_idx]
  std::vector<Chain> chains_[3];
  absl::flat_hash_map<uint64_t, std::unique_ptr<Entry>> entries_;  // live
  // Unregistered while a dispatch was running: off every chain and marked
  // dead, but kept allocated until dispatch_depth_ returns to 0.
  std::vector<std::unique_ptr<Entry>> dead_;
  uint64_t next_id_ = 1;
  NotifierFlags flags_ = kNotifyNone;
  int dispatch_depth_ = 0;
};

}  // namespace viommu::memory

#endif  // VIOMMU_MEMORY_IOMMU_NOTIFIER_CHAINS_H_
