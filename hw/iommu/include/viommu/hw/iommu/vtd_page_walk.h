// viommu/hw/iommu/vtd_page_walk.h — the legacy second-level page tables:
// one IOVA's translation (QEMU 7.2's vtd_iova_to_slpte, the IOTLB-miss
// path) and a walk over an IOVA range (vtd_page_walk / vtd_page_walk_level,
// the shadow-sync and replay producer).
//
//   SlTranslation t = TranslateSl(mem, cfg, ce, iova, /*is_write=*/false);
//   if (t.fault) record(*t.fault);  // unless ce.fpd() && IsQualifiedFault
//   else use(t.page_base | (iova & t.addr_mask), t.perm);
//
//   WalkSl(mem, cfg, ce, 0, ~uint64_t{0}, [&](const WalkEntry& e) { ... });
//
// Page-table entry layout: R bit 0, W bit 1, PS bit 7 (leaf at levels 2
// and 3), SNP bit 11 (reserved unless cfg.sc_supported, and then only in
// table pointers, not in 4K/2M/1G leaves), address bits HAW-1:12, TM bit 62
// (reserved unless cfg.dt_supported, at leaf-capable levels), bits 63 and
// 61:52 ignored. Reserved masks per level as QEMU 7.2's vtd_init.
//
// Both functions take an entry value of all ones as a failed read, as QEMU
// (which cannot tell them apart).
//
// REQUIRES: `ce` passed LookupContext (levels 3 or 4; 2 also works).
// Threading: pure functions over GuestMemory (whose Read is thread-safe).
#ifndef VIOMMU_HW_IOMMU_VTD_PAGE_WALK_H_
#define VIOMMU_HW_IOMMU_VTD_PAGE_WALK_H_

#include <cstdint>
#include <optional>

#include "viommu/hw/iommu/vtd_context.h"
#include "viommu/hw/iommu/vtd_fault_reason.h"
#include "viommu/hw/iommu/vtd_guest_memory.h"
#include "viommu/hw/iommu/vtd_walk_entry.h"
#include "viommu/memory/iommu.h"
#include "viommu/util/types.h"

namespace viommu::vtd {

struct SlTranslation {
  // Empty on success.
  std::optional<FaultReason> fault;
  // Success: the output page, aligned to addr_mask + 1.
  Hwaddr page_base = 0;
  // Success: leaf size - 1 (4K, 2M or 1G). Fault: size - 1 of a slot at the
  // level where the walk stopped (the top level for kAddrBeyondMgaw).
  // QEMU 7.2 itself reports addr_mask 0 with every failed translation.
  uint64_t addr_mask = 0;
  // Success: R and W of every level of the walk, ANDed.
  memory::IommuPerm perm = memory::kIommuNone;
  // Leaf level (1 = 4K, 2 = 2M, 3 = 1G), or where the walk stopped.
  int level = 0;
};

// Translates `iova` through the second-level tables of `ce`, reading one
// 8-byte entry per level. Faults, as QEMU 7.2:
//   kAddrBeyondMgaw   iova >= 2^min(ce.agaw(), cfg.aw_bits)
//   kContextEntryInv  top-level entry unreadable (also: ce.levels() > 4)
//   kPagingEntryInv   lower-level entry unreadable
//   kRead / kWrite    entry lacks R (read access) / W (write access);
//                     checked before the reserved bits
//   kPagingEntryRsvd  reserved bits set in an entry
//   kInterruptAddr    the leaf's output page overlaps 0xfee00000-0xfeefffff
SlTranslation TranslateSl(GuestMemory& mem, const TableConfig& cfg,
                          const ContextEntry& ce, Iova iova, bool is_write);

// Visits every slot overlapping [first, last] (last clamped to
// 2^min(ce.agaw(), cfg.aw_bits) - 1; nothing when first is beyond it), in
// increasing IOVA order, and calls `sink` once per:
//   - leaf (level 1, or PS at 2/3) with R or W after stacking: a mapping;
//   - entry without R and W after stacking, at any level: the whole slot,
//     perm kIommuNone, gpa 0 (e.g. an invalid level-4 entry = one 512G slot).
// Entries with R or W that are not leaves are descended. Unreadable entries
// and entries with reserved bits are skipped silently (no call).
// Slots are reported whole even where they extend beyond [first, last].
// Reads each visited table with one GuestMemory::Read of the entries in
// range (the whole 4K table for a full walk), falling back to 8-byte reads
// of that table only when the bulk read fails.
void WalkSl(GuestMemory& mem, const TableConfig& cfg, const ContextEntry& ce,
            Iova first, Iova last, WalkSink sink);

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_PAGE_WALK_H_
