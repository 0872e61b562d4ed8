// viommu/memory/address_space.h — a view of a root region that devices and
// CPUs access (QEMU's AddressSpace): read/write/translate with attributes,
// and the listeners that observe its rendered view.
//
//   AddressSpace as(&sys, root, "memory");
//   uint32_t v = 0;
//   MemTxResult r = as.Read(0x1000, &v, 4, MemTxAttrs::Requester(0x20));
//   Translation t = as.Translate(iova, 8, /*is_write=*/true, attrs);
//   ListenerHandle h = as.RegisterListener(&listener);
//
// Address spaces with the same root share one FlatView.
//
// Threading: construction, destruction, RegisterListener and SyncDirtyLog
// run in the control context. Read, Write, Translate and CurrentView are
// safe from any thread, concurrently with topology changes: each works on
// the immutable view current when it started (and the regions it shows
// stay alive until it returns). MMIO callbacks and IommuModel::Translate
// run on the calling thread.
#ifndef VIOMMU_MEMORY_ADDRESS_SPACE_H_
#define VIOMMU_MEMORY_ADDRESS_SPACE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "viommu/memory/flat_view.h"
#include "viommu/memory/mem_tx.h"
#include "viommu/memory/memory_listener.h"
#include "viommu/memory/memory_region.h"
#include "viommu/util/published_ptr.h"
#include "viommu/util/types.h"

namespace viommu::memory {

class MemorySystem;

// Where an access lands after following IOMMU regions.
struct Translation {
  // The terminal region, or nullptr when the address is unassigned or an
  // IOMMU refused the access (see `result`).
  MemoryRegion* mr = nullptr;
  uint64_t offset_in_region = 0;  // QEMU's xlat
  // Bytes from the address that stay in this region and IOMMU page
  // (at most the requested length, at least 1 when mr != nullptr).
  uint64_t len = 0;
  bool readonly = false;
  // The address space the final address is in (differs from the one asked
  // when IOMMUs were crossed).
  AddressSpace* target_as = nullptr;
  // kDecodeError when unassigned or refused by an IOMMU (QEMU routes an
  // IOMMU refusal to unassigned memory); `iommu_fault` tells which.
  MemTxResult result;
  bool iommu_fault = false;
  // Keeps `mr` alive while the caller uses it.
  std::shared_ptr<const FlatView> view;
};

// The first piece of a buffer access that did not complete, for callers
// that must say where and why DMA failed (the C API's fault record).
struct AccessFault {
  enum class Kind : uint8_t {
    kNone,        // every piece completed
    kUnassigned,  // nothing rendered at the (translated) address
    kIommu,       // an IOMMU refused the translation or the permission
    kReadonly,    // a write to readonly RAM, dropped
    kDevice,      // MMIO / ram_device refused or failed the piece
  };
  Kind kind = Kind::kNone;
  Hwaddr addr = 0;  // in the accessed address space (the IOVA for DMA)
};

class AddressSpace {
 public:
  // Renders (or shares) the view of `root`. REQUIRES: root != nullptr;
  // `system` outlives this.
  AddressSpace(MemorySystem* system, std::shared_ptr<MemoryRegion> root,
               std::string name);
  AddressSpace(const AddressSpace&) = delete;
  AddressSpace& operator=(const AddressSpace&) = delete;
  // REQUIRES: no listener is registered.
  ~AddressSpace();

  const std::string& name() const { return name_; }
  MemoryRegion* root() const { return root_.get(); }
  MemorySystem* system() const { return system_; }

  // The current view. Thread-safe.
  std::shared_ptr<const FlatView> CurrentView() const;
  // The current view without taking a reference: valid while `*pin`
  // protects it (until the pin is reset or destroyed; pins are scoped,
  // see util/published_ptr.h). The data path's way to read the view: it
  // writes nothing other threads share. Thread-safe.
  using ViewPin = PublishedPtr<const FlatView>::Pin;
  const FlatView* PinView(ViewPin* pin) const {
    pin->Reset(view_);
    return pin->get();
  }

  // Buffer accesses, as QEMU's address_space_read/write: RAM is copied,
  // MMIO and ram_device are dispatched in chunks (mmio_ops.h), IOMMU
  // regions are translated. Unassigned bytes, and bytes an IOMMU refuses,
  // read as 0 with kDecodeError; writes to them are dropped. A write to a
  // readonly RAM range is dropped with kDecodeError (QEMU's ROM). Results
  // of the pieces are OR-ed.
  // Thread-safe.
  MemTxResult Read(Hwaddr addr, void* buf, size_t len,
                   MemTxAttrs attrs = MemTxAttrs::Unspecified());
  MemTxResult Write(Hwaddr addr, const void* buf, size_t len,
                    MemTxAttrs attrs = MemTxAttrs::Unspecified());
  // The same, and `*first_fault` (REQUIRES: not null) says where the first
  // piece that did not complete starts and why (kind kNone when the result
  // is ok). The access still goes on past it, as above.
  MemTxResult Read(Hwaddr addr, void* buf, size_t len, MemTxAttrs attrs,
                   AccessFault* first_fault);
  MemTxResult Write(Hwaddr addr, const void* buf, size_t len, MemTxAttrs attrs,
                    AccessFault* first_fault);
  // A read of RAM only, for a device model's own structures (an IOMMU's
  // tables, walked on DMA threads): a piece that is not RAM — MMIO,
  // ram_device, unassigned, refused by an IOMMU — reads as 0 with
  // kDecodeError, and no device callback runs. Thread-safe.
  MemTxResult ReadRam(Hwaddr addr, void* buf, size_t len,
                      MemTxAttrs attrs = MemTxAttrs::Unspecified());

  // Translates `addr` for an access of up to `len` bytes, looping while the
  // target is again an IOMMU region (stacked IOMMUs). Thread-safe.
  Translation Translate(Hwaddr addr, uint64_t len, bool is_write,
                        MemTxAttrs attrs = MemTxAttrs::Unspecified());

  // Registers `listener` (not owned; must outlive the handle) and replays
  // the current view to it. Lower priorities get add callbacks earlier and
  // del callbacks later; equal priorities run in registration order.
  [[nodiscard]] ListenerHandle RegisterListener(MemoryListener* listener,
                                                unsigned priority = 0);

  // Calls LogSync on every listener for every range with a dirty-log mask
  // (optionally only ranges of `mr`).
  void SyncDirtyLog(const MemoryRegion* mr = nullptr);

 private:
  friend class MemorySystem;
  friend class ListenerHandle;
  struct ListenerEntry {
    MemoryListener* listener;
    unsigned priority;
    uint64_t seq;
  };

  void Unregister(MemoryListener* listener);
  // Publishes `view` (control context) and returns the previous one.
  std::shared_ptr<const FlatView> Publish(std::shared_ptr<const FlatView> view);
  // Buffer access core shared by Read, Write and ReadRam (`ram_only`:
  // pieces that are not RAM are not dispatched).
  MemTxResult Access(Hwaddr addr, uint8_t* buf, size_t len, bool is_write,
                     MemTxAttrs attrs, AccessFault* first_fault,
                     bool ram_only = false);

  MemorySystem* system_;  // not owned
  std::shared_ptr<MemoryRegion> root_;
  std::string name_;
  PublishedPtr<const FlatView> view_;
  std::vector<ListenerEntry> listeners_;  // ascending (priority, seq)
  uint64_t next_listener_seq_ = 0;
};

}  // namespace viommu::memory

#endif  // VIOMMU_MEMORY_ADDRESS_SPACE_H_
