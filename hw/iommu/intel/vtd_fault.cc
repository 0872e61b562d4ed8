// Fault recording and interrupt events: QEMU 7.2's vtd_report_dmar_fault
// (and 8.2's vtd_report_ir_fault for interrupt-remapping faults),
// vtd_generate_fault_event, vtd_update_fsts_ppf and the FSTS / FECTL / ICS /
// IECTL write handlers.
#include "viommu/hw/iommu/intel_iommu.h"
#include "viommu/util/trace.h"

namespace viommu::vtd {
namespace {

constexpr uint16_t kFsts = Offset(Reg32::kFsts);
constexpr uint16_t kFectl = Offset(Reg32::kFectl);
constexpr uint16_t kIectl = Offset(Reg32::kIectl);
constexpr uint16_t kFrcdHi = Offset(Reg64::kFrcd0Hi);

}  // namespace

void IntelIommu::SendInterrupt(Reg32 addr_reg, Reg32 data_reg) {
  const uint64_t addr = regs_.Raw(addr_reg);
  const uint32_t data = regs_.Raw(data_reg);
  // QEMU hands the message to the APIC directly, which decodes only the
  // low 20 address bits: whatever FEADDR holds, no memory is written. Here
  // the message is a 4-byte write into the interrupt window at the same
  // offset, which reaches the MSI controller and nothing else.
  const uint64_t msi_addr =
      kInterruptWindowBase | (addr & kInterruptWindowOffsetMask);
  (void)system_as_->Write(msi_addr, &data, sizeof(data));
}

void IntelIommu::UpdatePpf() {
  bool pending = false;
  for (int i = 0; i < kNumFrcd; ++i) {
    pending |= (regs_.GetQuadRaw(kFrcdHi + 16 * i) & kFrcdF) != 0;
  }
  regs_.SetClearMaskLong(kFsts, kFstsPpf, pending ? kFstsPpf : 0);
}

void IntelIommu::GenerateFaultEvent(uint32_t pre_fsts) {
  if (pre_fsts & (kFstsPpf | kFstsPfo | kFstsIqe)) return;
  regs_.SetClearMaskLong(kFectl, 0, kFectlIp);
  if (regs_.Raw(Reg32::kFectl) & kFectlIm) return;  // stays pending
  SendInterrupt(Reg32::kFeaddr, Reg32::kFedata);
  regs_.SetClearMaskLong(kFectl, kFectlIp, 0);
}

void IntelIommu::RecordFault(uint16_t sid, FaultReason reason, uint64_t addr,
                             bool is_write, uint16_t pasid_value,
                             bool pasid_present) {
  StateLock lock(this);
  uint64_t hi = sid | uint64_t{static_cast<uint8_t>(reason)} << kFrcdFrShift |
                uint64_t{pasid_value} << kFrcdPvShift;
  if (!is_write) hi |= kFrcdT;
  if (pasid_present) hi |= kFrcdPp;
  RecordFaultRecord(sid, reason, addr & ~uint64_t{0xfff}, hi, addr, is_write);
}

void IntelIommu::RecordInterruptFault(uint16_t sid, FaultReason reason,
                                      uint16_t index) {
  StateLock lock(this);
  // QEMU 8.2's vtd_report_ir_fault and the spec: FI[63:48] = index, T = 0
  // (the request was a write), no PASID.
  const uint64_t hi =
      sid | uint64_t{static_cast<uint8_t>(reason)} << kFrcdFrShift;
  RecordFaultRecord(sid, reason, uint64_t{index} << kFrcdIrIndexShift, hi,
                    /*trace_addr=*/index, /*is_write=*/true);
}

void IntelIommu::RecordFaultRecord(uint16_t sid, FaultReason reason,
                                   uint64_t lo, uint64_t hi,
                                   uint64_t trace_addr, bool is_write) {
  const uint32_t fsts = regs_.Raw(Reg32::kFsts);
  const auto code = static_cast<unsigned>(reason);
  if (fsts & kFstsPfo) {  // overflowed: dropped
    VIOMMU_TRACE(vtd_fault_dropped, sid, code, trace_addr, "overflow");
    return;
  }
  for (int i = 0; i < kNumFrcd; ++i) {
    const uint64_t rec_hi = regs_.GetQuadRaw(kFrcdHi + 16 * i);
    if ((rec_hi & kFrcdF) && (rec_hi & kFrcdSidMask) == sid) {  // collapsed
      VIOMMU_TRACE(vtd_fault_dropped, sid, code, trace_addr, "pending for sid");
      return;
    }
  }
  const uint16_t rec = Offset(Reg64::kFrcd0Lo) + 16 * next_frcd_;
  if (regs_.GetQuadRaw(rec + 8) & kFrcdF) {
    VIOMMU_TRACE(vtd_fault_dropped, sid, code, trace_addr, "records full");
    regs_.SetClearMaskLong(kFsts, 0, kFstsPfo);
    return;
  }
  VIOMMU_TRACE(vtd_frr_new, next_frcd_, sid, code, trace_addr, is_write);
  regs_.SetQuadRaw(rec, lo);
  regs_.SetQuadRaw(rec + 8, hi);

  const bool was_pending = (fsts & kFstsPpf) != 0;
  if (!was_pending) {
    regs_.SetClearMaskLong(kFsts, kFstsFriMask,
                           uint32_t(next_frcd_) << kFstsFriShift);
  }
  regs_.SetClearMaskQuad(rec + 8, 0, kFrcdF);
  UpdatePpf();
  next_frcd_ = (next_frcd_ + 1) % kNumFrcd;
  if (!was_pending) GenerateFaultEvent(fsts);
}

void IntelIommu::ReportQueueError() {
  StateLock lock(this);
  const uint32_t fsts = regs_.Raw(Reg32::kFsts);
  regs_.SetClearMaskLong(kFsts, 0, kFstsIqe);
  GenerateFaultEvent(fsts);
}

void IntelIommu::SignalInvalidationWait() {
  StateLock lock(this);
  if (regs_.Raw(Reg32::kIcs) & kIcsIwc) return;
  regs_.SetClearMaskLong(Offset(Reg32::kIcs), 0, kIcsIwc);
  if (regs_.Raw(Reg32::kIectl) & kFectlIm) {
    regs_.SetClearMaskLong(kIectl, 0, kFectlIp);
  } else {
    SendInterrupt(Reg32::kIeaddr, Reg32::kIedata);
  }
}

void IntelIommu::HandleFsts() {
  const uint32_t fsts = regs_.Raw(Reg32::kFsts);
  const uint32_t fectl = regs_.Raw(Reg32::kFectl);
  if ((fectl & kFectlIp) && !(fsts & (kFstsPfo | kFstsPpf | kFstsIqe))) {
    regs_.SetClearMaskLong(kFectl, kFectlIp, 0);
  }
}

void IntelIommu::HandleFectl() {
  const uint32_t fectl = regs_.Raw(Reg32::kFectl);
  if ((fectl & kFectlIp) && !(fectl & kFectlIm)) {
    SendInterrupt(Reg32::kFeaddr, Reg32::kFedata);
    regs_.SetClearMaskLong(kFectl, kFectlIp, 0);
  }
}

void IntelIommu::HandleIcs() {
  const uint32_t ics = regs_.Raw(Reg32::kIcs);
  const uint32_t iectl = regs_.Raw(Reg32::kIectl);
  if ((iectl & kFectlIp) && !(ics & kIcsIwc)) {
    regs_.SetClearMaskLong(kIectl, kFectlIp, 0);
  }
}

void IntelIommu::HandleIectl() {
  const uint32_t iectl = regs_.Raw(Reg32::kIectl);
  if ((iectl & kFectlIp) && !(iectl & kFectlIm)) {
    SendInterrupt(Reg32::kIeaddr, Reg32::kIedata);
    regs_.SetClearMaskLong(kIectl, kFectlIp, 0);
  }
}

}  // namespace viommu::vtd
