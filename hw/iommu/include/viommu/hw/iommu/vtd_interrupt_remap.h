// viommu/hw/iommu/vtd_interrupt_remap.h — VT-d interrupt remapping: what
// an interrupt request (a device's 4-byte write into the interrupt window
// 0xfee00000-0xfeefffff) becomes under the unit's IRTA / GCMD.IRE /
// GCMD.CFI state, with the interrupt-entry cache, fault reporting, and the
// "vtd-ir" window every device view of the unit aliases.
//
//   InterruptRemapper ir(iommu, &guest_mem, [&](uint16_t sid, FaultReason r,
//                                               uint16_t index) {
//     iommu->RecordInterruptFault(sid, r, index);
//   });
//   std::optional<InterruptMessage> m = ir.Remap(0xfee00010, 0, 0x0020);
//   ir.InvalidateEntries(/*index=*/4, /*index_mask=*/0);   // IEC descriptor
//
//   auto window = std::make_shared<InterruptWindow>(msi_region);
//   window->set_remapper(&ir);        // VtdEngine does this
//
// Behaviour (VT-d spec ch. 5 and §9.10; QEMU 7.2's vtd_interrupt_remap_msi
// where the spec leaves room):
//  * IR disabled (GSTS.IRES clear): the request passes unchanged.
//  * Compatibility format (address bit 4 clear): passes unchanged when
//    GSTS.CFIS is set and IRTA.EIME is clear; otherwise blocked, fault
//    0x25 (QEMU 7.2 lets it pass and has no CFI).
//  * Remappable format: address bits 63:32 or a head other than 0xfee, or
//    data bits 31:16 with SHV: 0x20 (index 0). interrupt_index = handle
//    (+ subhandle with SHV); >= the table's 2^(S+1) entries: 0x21. An
//    unreadable IRTE: 0x23. Then, qualified by the IRTE's FPD (evaluated
//    whether or not P is set): not present 0x22, reserved bits 0x24,
//    requester-id verification 0x26 (skipped for a request without a
//    requester id). A blocked request is dropped.
//  * The result is the compatibility-format message of the IRTE
//    (vtd_irte.h ComposeMessage). For a request without SHV (the IOxAPIC
//    form) a vector or trigger mode that differs from the IRTE's only
//    traces (vtd_warn_ir_vector / _trigger), as QEMU.
//  * Faults go to the FaultSink with the sid (0xffff without a requester
//    id) and index; QEMU 7.2 records none, 8.2 and the spec do.
//  * The interrupt-entry cache holds IRTEs that were present and had no
//    reserved bits set (a direct-indexed array, so a hit costs about one
//    hash-map probe); others are read again on every request. It is
//    dropped by a global IEC invalidation, SIRTP and reset; an
//    index-selective one drops [index, index + 2^mask). QEMU 7.2 reads the
//    IRTE on every request, so it never serves a stale entry.
//
// Threading: Remap is for one thread at a time (the control context, or a
// benchmark); RemapShared, InvalidateAll, InvalidateEntries, stats and
// cached_entries may run on any thread at once: they serialise the cache
// under one lock, and RemapShared reports its fault after dropping it (the
// fault sink takes the unit's lock, which a register write holding it
// takes before invalidating: unit lock -> remapper lock, never the other
// way). The InterruptWindow, which DMA threads reach, uses RemapShared.
#ifndef VIOMMU_HW_IOMMU_VTD_INTERRUPT_REMAP_H_
#define VIOMMU_HW_IOMMU_VTD_INTERRUPT_REMAP_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "viommu/hw/iommu/intel_iommu.h"
#include "viommu/hw/iommu/vtd_fault_reason.h"
#include "viommu/hw/iommu/vtd_guest_memory.h"
#include "viommu/hw/iommu/vtd_irte.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/mmio_ops.h"
#include "viommu/util/mutex.h"
#include "viommu/util/trace.h"

namespace viommu::vtd {

// The source id QEMU uses for a request without a requester id.
inline constexpr uint16_t kNoRequesterSid = 0xffff;

struct InterruptRemapStats {
  uint64_t requests = 0;   // Remap calls with IR enabled
  uint64_t remapped = 0;   // remappable requests delivered
  uint64_t passed = 0;     // compatibility format passed through
  uint64_t blocked = 0;    // dropped (faulted, recorded or not)
  uint64_t irte_reads = 0; // IRTEs read from guest memory
  uint64_t cache_hits = 0;
};

class InterruptRemapper {
 public:
  // Records a fault that FPD did not suppress.
  using FaultSink =
      std::function<void(uint16_t sid, FaultReason reason, uint16_t index)>;

  // `iommu` (the latched IRTA / IRE / CFI state) and `mem` (where the
  // table is read) are not owned and outlive this.
  InterruptRemapper(const IntelIommu* iommu, GuestMemory* mem, FaultSink sink);
  InterruptRemapper(const InterruptRemapper&) = delete;
  InterruptRemapper& operator=(const InterruptRemapper&) = delete;

  // The message to deliver for a request of `data` at `address` from
  // `sid` (nullopt: the write carried no requester id), or nullopt when
  // the request is blocked (see the top of the file).
  std::optional<InterruptMessage> Remap(uint64_t address, uint32_t data,
                                        std::optional<uint16_t> sid);
  // Remap serialised with the other callers of RemapShared and with the
  // cache invalidations, for any thread; the fault sink runs after the
  // lock is dropped.
  std::optional<InterruptMessage> RemapShared(uint64_t address, uint32_t data,
                                              std::optional<uint16_t> sid)
      ABSL_LOCKS_EXCLUDED(mu_);

  // GSTS.IRES: whether Remap changes anything.
  bool enabled() const;

  // Interrupt-entry cache invalidation (IEC descriptor): every entry, or
  // the 2^index_mask entries from `index` (index_mask <= 31; entries
  // beyond 2^16 do not exist).
  void InvalidateAll() ABSL_LOCKS_EXCLUDED(mu_);
  void InvalidateEntries(uint16_t index, uint8_t index_mask)
      ABSL_LOCKS_EXCLUDED(mu_);

  size_t cached_entries() const ABSL_LOCKS_EXCLUDED(mu_);
  InterruptRemapStats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // A fault RemapShared reports once it has dropped the lock.
  struct PendingFault {
    bool set = false;
    uint16_t sid = 0;
    FaultReason reason{};
    uint16_t index = 0;
  };
  std::optional<InterruptMessage> Block(uint16_t sid, FaultReason reason,
                                        uint32_t index, bool fpd);
  // The IRTE at `index` from the cache or guest memory; nullopt when it
  // cannot be read.
  std::optional<Irte> Fetch(uint32_t index, bool* cached);
  // The full path (decode, fetch, checks, faults, traces).
  std::optional<InterruptMessage> RemapSlow(uint64_t address, uint32_t data,
                                            std::optional<uint16_t> sid);
  void Cache(uint32_t index, const Irte& e, bool eime);
  void Uncache(uint32_t index);

  const IntelIommu* const iommu_;  // not owned
  GuestMemory* const mem_;         // not owned
  const FaultSink sink_;
  // Serialises RemapShared with the invalidations (see Threading). Not
  // annotated on the cache below: Remap, the single-threaded fast path,
  // reads it without the lock by contract.
  mutable Mutex mu_;
  // Set by RemapShared for the duration of its Remap: Block defers the
  // fault there instead of calling the sink under mu_.
  PendingFault* pending_ = nullptr;
  // The interrupt-entry cache, indexed by interrupt_index: slot i holds
  // IRTE i when bit i of valid_ is set. Grown to the table size on first
  // use (at most 2^16 entries). REQUIRES: InvalidateAll after IRTA is
  // latched again (SIRTP: the engine does it), as the cached messages
  // depend on EIME.
  struct Slot {
    Irte e;
    InterruptMessage msg;  // ComposeMessage(e, eime, 0)
  };
  std::vector<Slot> cache_;
  std::vector<uint64_t> valid_;
  size_t cached_ = 0;
  InterruptRemapStats stats_;  // the slow path's
  uint64_t fast_hits_ = 0;     // cache hits served by Remap's fast path
};

// Inline: the interrupt-entry-cache hit (a well-formed remappable request
// whose IRTE is cached, so present and valid, and passes verification)
// costs a few loads; everything else is RemapSlow. Like the IOTLB's 4 KiB
// hit, the hit traces only its result.
inline std::optional<InterruptMessage> InterruptRemapper::Remap(
    uint64_t address, uint32_t data, std::optional<uint16_t> requester) {
  if (!iommu_->ir_enabled()) {
    return InterruptMessage{.address = address, .data = data};
  }
  if ((address & ~uint64_t{0xf'ffef}) == (kMsiAddrHead | kMsiAddrIf)) {
    const bool shv = (address & kMsiAddrShv) != 0;
    const uint32_t handle =
        static_cast<uint32_t>((address >> kMsiAddrHandleShift) &
                              kMsiAddrHandleMask) |
        ((address & kMsiAddrHandle15) ? 1u << 15 : 0u);
    const uint32_t index =
        handle + (shv ? (data & kMsiDataSubhandleMask) : 0u);
    if ((!shv || (data & ~kMsiDataSubhandleMask) == 0) &&
        index < cache_.size() && (valid_[index / 64] >> (index % 64)) & 1 &&
        index < iommu_->ir_table_size()) {
      const Slot& slot = cache_[index];
      if (!requester.has_value() || VerifySourceId(slot.e, *requester)) {
        ++fast_hits_;  // counts as request, remapped and cache hit
        const InterruptMessage out{
            .address = slot.msg.address | (address & kMsiAddrDontCare),
            .data = slot.msg.data};
        VIOMMU_TRACE(vtd_ir_remap_msi, address, data, out.address, out.data);
        return out;
      }
    }
  }
  return RemapSlow(address, data, requester);
}

// The interrupt window as the unit's device views see it (QEMU's "vtd-ir"
// region): a 1 MiB MMIO front end of the machine's MSI window region.
// Without a remapper (or with IR disabled) every access is forwarded to
// the MSI window's ops unchanged — same offsets, sizes, attributes and
// access rules. With one, a 4-byte write is remapped: the resulting
// message goes to the message sink if one is set, else as a 4-byte write
// of the data at the message's window offset (address bits 19:0; bits
// 63:32, an x2APIC destination above 255, are then lost), carrying the
// original attributes; a blocked request is dropped with MemTxResult
// kError (QEMU's MEMTX_ERROR).
//
// Threading: set_remapper and set_message_sink while no access can reach
// the window (setup, teardown). Accesses may come from any thread (a DMA
// thread of an embedder): they remap with RemapShared, and the message
// sink runs on the writing thread, without the remapper's lock.
class InterruptWindow final : public memory::MmioOps {
 public:
  using MessageSink =
      std::function<void(const InterruptMessage&, memory::MemTxAttrs)>;

  // REQUIRES: msi_window is an MMIO region of at least 1 MiB.
  explicit InterruptWindow(std::shared_ptr<memory::MemoryRegion> msi_window);

  // Not owned; nullptr detaches. Must outlive its attachment.
  void set_remapper(InterruptRemapper* remapper) { remapper_ = remapper; }
  InterruptRemapper* remapper() const { return remapper_; }
  // Optional: where remapped messages go, with their full address.
  void set_message_sink(MessageSink sink) { sink_ = std::move(sink); }

  memory::MemTxResult Read(uint64_t offset, uint64_t* value, unsigned size,
                           memory::MemTxAttrs attrs) override;
  memory::MemTxResult Write(uint64_t offset, uint64_t value, unsigned size,
                            memory::MemTxAttrs attrs) override;
  memory::AccessRules valid() const override { return target_->valid(); }
  memory::AccessRules impl() const override { return target_->impl(); }
  bool Accepts(uint64_t offset, unsigned size, bool is_write,
               memory::MemTxAttrs attrs) override {
    return target_->Accepts(offset, size, is_write, attrs);
  }

 private:
  const std::shared_ptr<memory::MemoryRegion> msi_window_;  // keeps target_
  memory::MmioOps* const target_;
  InterruptRemapper* remapper_ = nullptr;  // not owned
  MessageSink sink_;
};

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_INTERRUPT_REMAP_H_
