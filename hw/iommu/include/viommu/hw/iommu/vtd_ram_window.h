// viommu/hw/iommu/vtd_ram_window.h — guest RAM reads for the translation
// path (DMA threads) with no lock, no reference count and no locked
// instruction: a GuestMemory whose Read is a bounds check against a few
// remembered RAM ranges and a copy from their host memory.
//
//   RamWindow ram(&system_as);            // registers a MemoryListener
//   uint64_t entry;
//   if (!ram.ReadInline(gpa, &entry, 8)) -> not RAM: the structure's fault
//
// Semantics are AddressSpace::ReadRam's (only RAM, not ram_device or MMIO;
// a piece that is not RAM fails and reads as zero): a read inside a
// remembered range copies from it, anything else is ReadRam, which then
// also remembers the RAM range that holds `addr`.
//
// Staleness. Every memory-map commit (the listener's Commit, after the new
// view is published) forgets every range, so reads after it see the new
// map. A read racing with the commit may still copy from the old range,
// as a QEMU reader inside its RCU section still reads the old map.
//
// Lifetime (why no reference count per read). Each remembered range pins
// its MemoryRegion (a shared_ptr) in a list that lives as long as this
// object, so a reader that loaded a range just before a commit forgot it
// still copies from live memory. The list keeps one entry per distinct
// (region, range, host address) ever remembered: bounded by the RAM
// pieces the machine has, not by guest activity; a RAM region removed
// from the map stays allocated until this object (the engine) dies.
//
// Threading: Read/ReadInline from any thread; Write through the address
// space (control context, as GuestMemory). Construct and destroy in the
// control context, outside memory-listener callbacks; `as` must outlive it.
#ifndef VIOMMU_HW_IOMMU_VTD_RAM_WINDOW_H_
#define VIOMMU_HW_IOMMU_VTD_RAM_WINDOW_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "viommu/hw/iommu/vtd_guest_memory.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_listener.h"
#include "viommu/memory/memory_region.h"
#include "viommu/util/mutex.h"
#include "viommu/util/types.h"

namespace viommu::vtd {

class RamWindow final : public GuestMemory, private memory::MemoryListener {
 public:
  // `as` is not owned and must outlive this.
  explicit RamWindow(memory::AddressSpace* as);
  ~RamWindow() override;

  // The inline path: the most recently remembered range holds
  // [addr, addr + len); anything else is ReadOther (the other ranges, then
  // ReadRam). REQUIRES: len >= 1.
  bool ReadInline(Hwaddr addr, void* buf, size_t len) {
    const Window* w = slots_[0].load(std::memory_order_acquire);
    if (w != nullptr) {
      const uint64_t off = addr - w->first;  // wraps below `first`
      if (off <= w->span && len - 1 <= w->span - off) {
        std::memcpy(buf, w->host + off, len);
        return true;
      }
    }
    return ReadOther(addr, buf, len);
  }

  // GuestMemory.
  bool Read(Hwaddr addr, void* buf, size_t len) override {
    // The structure sizes, each with an inlined copy of a constant size.
    switch (len) {
      case 0:
        return true;
      case 8:  // table and directory entries, PTEs
        return ReadInline(addr, buf, 8);
      case 16:  // root and legacy context entries
        return ReadInline(addr, buf, 16);
      case 32:  // scalable-mode context entries
        return ReadInline(addr, buf, 32);
      case 64:  // PASID entries
        return ReadInline(addr, buf, 64);
      default:
        return ReadInline(addr, buf, len);
    }
  }
  bool Write(Hwaddr addr, const void* buf, size_t len) override {
    return as_->Write(addr, buf, len).ok();
  }
  memory::AddressSpace* address_space() override { return as_; }

  // Ranges remembered now (at most kSlots); for tests.
  size_t RememberedForTesting() const;
  // Distinct ranges ever remembered (the pinned list); for tests.
  size_t PinnedForTesting() const ABSL_LOCKS_EXCLUDED(mu_);

  static constexpr size_t kSlots = 4;

 private:
  // One RAM range of the map: [first, last] at host. Immutable once
  // published; freed only with this object.
  struct Window {
    Hwaddr first = 0;
    uint64_t span = 0;                             // last - first
    uint8_t* host = nullptr;                       // host address of `first`
    std::shared_ptr<memory::MemoryRegion> region;  // keeps `host` valid
  };

  // The ranges after the first, then ReadSlow.
  bool ReadOther(Hwaddr addr, void* buf, size_t len);
  // ReadRam, then remember the RAM range of `addr` (first in the list).
  bool ReadSlow(Hwaddr addr, void* buf, size_t len);
  // MemoryListener: forget every range (the map changed).
  void Commit() override;

  memory::AddressSpace* const as_;  // not owned
  // Published ranges, filled from the front (the newest first); nullptr
  // ends the list.
  std::atomic<const Window*> slots_[kSlots] = {};
  // Advanced by every Commit; a ReadSlow that saw another value before
  // reading the map does not publish what it found there.
  std::atomic<uint64_t> generation_{0};
  mutable Mutex mu_;  // serialises publication (slow path, Commit)
  std::vector<std::unique_ptr<Window>> pinned_ ABSL_GUARDED_BY(mu_);
  // Last: unregistered first on destruction, while the rest still lives.
  memory::ListenerHandle listener_;
};

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_RAM_WINDOW_H_
