// viommu/hw/iommu/vtd_fault_reason.h — VT-d fault reason codes (the FR
// field of a fault record), QEMU 7.2's VTDFaultReason for legacy mode.
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
};

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_FAULT_REASON_H_
