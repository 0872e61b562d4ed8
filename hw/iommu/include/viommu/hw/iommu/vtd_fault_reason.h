// viommu/hw/iommu/vtd_fault_reason.h — VT-d fault reason codes (the FR
// field of a fault record), QEMU 7.2's VTDFaultReason for legacy mode,
// and the interrupt-remapping reasons of the VT-d spec (§7.1.3), which
// QEMU 7.2 defines but never records (QEMU 8.2 does).
//
//   iommu->RecordFault(sid, FaultReason::kWrite, iova, /*is_write=*/true);
#ifndef VIOMMU_HW_IOMMU_VTD_FAULT_REASON_H_
#define VIOMMU_HW_IOMMU_VTD_FAULT_REASON_H_

#include <cstdint>

namespace viommu::vtd {

enum class FaultReason : uint8_t {
  kRootEntryP = 0x1,        // root entry not present
  kContextEntryP = 0x2,     // context entry not present
  kContextEntryInv = 0x3,   // invalid context entry
  kAddrBeyondMgaw = 0x4,    // input address above the guest address width
  kWrite = 0x5,             // no write permission
  kRead = 0x6,              // no read permission
  kPagingEntryInv = 0x7,    // paging entry could not be read
  kRootTableInv = 0x8,      // root table could not be read
  kContextTableInv = 0x9,   // context table could not be read
  kRootEntryRsvd = 0xa,     // reserved bits set in a root entry
  kContextEntryRsvd = 0xb,  // reserved bits set in a context entry
  kPagingEntryRsvd = 0xc,   // reserved bits set in a paging entry
  kContextEntryTt = 0xd,    // unsupported translation type
  kInterruptAddr = 0xe,     // DMA to the interrupt address range

  // Interrupt remapping (vtd_interrupt_remap.h). The fault record carries
  // the interrupt_index in FI bits 63:48 (0 where there is none) and T = 0.
  kIrReqRsvd = 0x20,    // reserved bits set in a remappable request
  kIrIndexOver = 0x21,  // interrupt_index beyond the table (IRTA.S)
  kIrEntryP = 0x22,     // IRTE not present
  kIrRootInval = 0x23,  // IRTE could not be read
  kIrIrteRsvd = 0x24,   // reserved bits set in a present IRTE
  kIrReqCompat = 0x25,  // compatibility-format request blocked
  kIrSidErr = 0x26,     // requester-id verification failed
  kIrPidInval = 0x27,   // posted-interrupt descriptor unreadable: never
                        // raised (no posted interrupts, ECAP.PI = 0)

  // Scalable mode (vtd_scalable.h): of the spec's scalable-mode reasons
  // QEMU 7.2 reports only these: every PASID directory and PASID table
  // problem is kPasidTableInv, and the interrupt range is 0x87.
  kRtaddrInvTtm = 0x31,     // RTADDR.TTM reserved value: never raised
  kPasidTableInv = 0x58,    // PASID directory / table entry invalid
  kSmInterruptAddr = 0x87,  // kInterruptAddr through scalable-mode tables
};

// Whether `reason` is one of the interrupt-remapping reasons (0x20-0x27).
inline constexpr bool IsInterruptRemapFault(FaultReason reason) {
  return static_cast<uint8_t>(reason) >= 0x20 &&
         static_cast<uint8_t>(reason) <= 0x27;
}

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_FAULT_REASON_H_
