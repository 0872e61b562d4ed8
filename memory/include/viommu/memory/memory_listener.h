// viommu/memory/memory_listener.h — observe the rendered view of one
// AddressSpace (QEMU's MemoryListener).
//
//   class Printer final : public MemoryListener {
//     void RegionAdd(const MemoryRegionSection& s) override { ... }
//   };
//   Printer p;
//   ListenerHandle h = as.RegisterListener(&p, /*priority=*/0);
//   // p has already seen Begin, RegionAdd for every range, Commit.
//
// Event order (QEMU's; docs/architecture.md, How a commit works):
//  * A committed transaction calls Begin on every registered listener of the
//    MemorySystem (ascending priority), then for each changed address space
//    all RegionDel (descending priority) before any RegionAdd/RegionNop
//    (ascending), then Commit on every listener (ascending).
//  * A range whose place, region, offset or readonly flag changed arrives as
//    RegionDel of the old one and RegionAdd of the new one, never in place.
//  * RegionNop reports a range that was re-rendered and came out identical.
//    Unlike QEMU, ranges outside the part of the view that changed are not
//    re-reported each commit (viommu updates views incrementally); call
//    AddressSpace::CurrentView() in Commit() for the whole view.
//  * LogStart/LogStop follow RegionNop when a range's dirty-log mask gains
//    or loses clients (LogStop in descending priority).
//  * Registration replays the current view to the new listener only:
//    Begin, RegionAdd (+ LogStart for logged ranges) per range in address
//    order, Commit. Unregistration mirrors it with LogStop/RegionDel.
// Sections are valid only during the callback.
//
// Threading: callbacks run in the control context; they must not change
// the topology of the MemorySystem they observe.
#ifndef VIOMMU_MEMORY_MEMORY_LISTENER_H_
#define VIOMMU_MEMORY_MEMORY_LISTENER_H_

#include <cstdint>

#include "viommu/memory/flat_range.h"

namespace viommu::memory {

class AddressSpace;

class MemoryListener {
 public:
  MemoryListener() = default;
  MemoryListener(const MemoryListener&) = delete;
  MemoryListener& operator=(const MemoryListener&) = delete;
  virtual ~MemoryListener() = default;

  // All optional; the defaults do nothing.
  virtual void Begin() {}
  virtual void Commit() {}
  virtual void RegionAdd(const MemoryRegionSection& /*section*/) {}
  virtual void RegionDel(const MemoryRegionSection& /*section*/) {}
  virtual void RegionNop(const MemoryRegionSection& /*section*/) {}
  virtual void LogStart(const MemoryRegionSection& /*section*/,
                        uint8_t /*old_mask*/, uint8_t /*new_mask*/) {}
  virtual void LogStop(const MemoryRegionSection& /*section*/,
                       uint8_t /*old_mask*/, uint8_t /*new_mask*/) {}
  // Called by AddressSpace::SyncDirtyLog for each range with a log mask.
  virtual void LogSync(const MemoryRegionSection& /*section*/) {}
};

// Move-only; unregisters the listener (with RegionDel replay) on
// destruction or Reset(). Must not outlive the AddressSpace.
class ListenerHandle {
 public:
  ListenerHandle() = default;
  ListenerHandle(ListenerHandle&& o) noexcept;
  ListenerHandle& operator=(ListenerHandle&& o) noexcept;
  ~ListenerHandle();

  void Reset();
  bool registered() const { return as_ != nullptr; }

 private:
  friend class AddressSpace;
  ListenerHandle(AddressSpace* as, MemoryListener* listener)
      : as_(as), listener_(listener) {}
  AddressSpace* as_ = nullptr;           // not owned
  MemoryListener* listener_ = nullptr;   // not owned
};

}  // namespace viommu::memory

#endif  // VIOMMU_MEMORY_MEMORY_LISTENER_H_
