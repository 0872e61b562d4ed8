// viommu/hw/iommu/intel_iommu.h — the Intel VT-d remapping unit
// ("intel-iommu"): its register block, guest-visible as QEMU 7.2's, without
// DMA translation (a translation engine attaches as an Observer).
//
//   VIOMMU_ASSIGN_OR_RETURN(auto p, vtd::ParseProperties(props));
//   VIOMMU_ASSIGN_OR_RETURN(auto iommu, vtd::IntelIommu::Create(p, &sys_as));
//   root->AddSubregion(kVtdRegBase, MemoryRegion::CreateMmio(
//       &sys, "intel_iommu", vtd::kRegBlockSize, iommu.get()));
//   iommu->set_observer(&engine);
//   iommu->RecordFault(0x0020, vtd::FaultReason::kWrite, iova, true);
//
// MMIO: 4- and 8-byte aligned accesses only (QEMU's vtd_mem_ops); others
// are rejected by the memory core. Register semantics: vtd_regs.h and
// vtd_register_file.h. Interrupts (fault and invalidation-completion
// events) are 4-byte writes of FEDATA/IEDATA to FEADDR/IEADDR through the
// system address space, like a device's MSI.
//
// Threading: every public method may be called from any thread. One lock
// (StateLock) serialises the register file: guest register accesses
// (control context), Reset, and the fault recording DMA threads reach
// through the engine (a translation or interrupt-remapping fault), so a
// fault record can never tear a guest's FSTS/FRCD access. The lock is
// re-entrant for the thread holding it: a register write whose side
// effects run device code synchronously (an invalidation-wait status
// write or a fault event landing on a device BAR that starts a DMA, which
// faults) records that fault without deadlocking. The latched state the
// interrupt remapper reads on DMA threads is published atomically.
#ifndef VIOMMU_HW_IOMMU_INTEL_IOMMU_H_
#define VIOMMU_HW_IOMMU_INTEL_IOMMU_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "viommu/hw/iommu/vtd_fault_reason.h"
#include "viommu/hw/iommu/vtd_observer.h"
#include "viommu/hw/iommu/vtd_properties.h"
#include "viommu/hw/iommu/vtd_register_file.h"
#include "viommu/hw/iommu/vtd_state_mutex.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/mmio_ops.h"

namespace viommu::vtd {

class IntelIommu final : public memory::MmioOps {
 public:
  // `system_as`: where interrupt messages are written (not owned, outlives
  // this). Errors: kInvalidArgument (aw_bits not 39 or 48).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<IntelIommu>> Create(
      const Properties& props, memory::AddressSpace* system_as);

  // Every register back to its default and all latched state dropped
  // (QEMU's vtd_reset_exit); then Observer::OnReset.
  void Reset();

  // Optional; not owned, must outlive this or be replaced by nullptr.
  void set_observer(Observer* observer) { observer_ = observer; }

  // --- Engine side (QEMU's vtd_report_dmar_fault and friends) ---

  // Records a DMA-remapping fault in FRCD[0] as QEMU 7.2 does: dropped if
  // FSTS.PFO; collapsed if a pending record has the same `sid`; PFO set if
  // the record is still pending; otherwise FI = addr & ~0xfff, SID, FR,
  // T = !is_write, PV = `pasid_value` (bits 55:40), F set, and — when no
  // fault was pending — FSTS.FRI and a fault event (FECTL.IP, plus the
  // interrupt unless FECTL.IM). QEMU 7.2 reports page-walk faults with its
  // "no PASID" value, whose low 16 bits (kNoPasidValue) land in PV, and
  // root/context faults with 0. `pasid_present` sets PP (bit 31 of the
  // high half): 7.2 sets it, with PV = the context entry's RID_PASID, for
  // page-walk faults through scalable-mode tables.
  static constexpr uint16_t kNoPasidValue = 0xffff;
  void RecordFault(uint16_t sid, FaultReason reason, uint64_t addr,
                   bool is_write, uint16_t pasid_value = 0,
                   bool pasid_present = false);
  // Records an interrupt-remapping fault (reasons 0x20-0x27) the same way:
  // FI bits 63:48 = `index` (the interrupt_index, 0 where the request had
  // none), SID, FR, T = 0, no PASID (the VT-d spec; QEMU 8.2's
  // vtd_report_ir_fault; QEMU 7.2 records none). FPD is the caller's.
  void RecordInterruptFault(uint16_t sid, FaultReason reason, uint16_t index);
  // Invalidation-queue error: FSTS.IQE and a fault event.
  void ReportQueueError();
  // An invalidation-wait descriptor with IF: ICS.IWC, then the completion
  // event (IECTL.IP if masked, else the interrupt). No-op if IWC is set.
  void SignalInvalidationWait();
  // The engine consumed descriptors up to index `head`; `last_was_wait`
  // says whether the last one was a wait descriptor (QI may only be
  // disabled when head == tail after a wait descriptor). Updates IQH.
  void SetQueueHead(uint32_t head, bool last_was_wait);

  // --- Latched state ---
  const Properties& properties() const { return props_; }
  uint64_t cap() const { return cap_; }
  uint64_t ecap() const { return ecap_; }
  bool translation_enabled() const { return dmar_enabled_; }
  uint64_t root_table() const { return root_; }  // valid once GSTS.RTPS
  // RTADDR.TTM = x1 latched at SRTP with x-scalable-mode=on (QEMU 7.2's
  // vtd_update_scalable_state): root_table() is a scalable-mode table.
  bool root_scalable() const { return root_scalable_; }
  bool qi_enabled() const { return qi_enabled_; }
  uint64_t queue_base() const { return iq_; }
  uint32_t queue_size() const { return iq_size_; }  // descriptors
  // 256-bit descriptors: IQA.DW as last written, with ECAP.SMTS only
  // (QEMU 7.2 latches it on the IQA write; IQH/IQT then count 32 bytes).
  bool queue_dw() const { return iq_dw_; }
  uint32_t queue_head() const { return iq_head_; }
  uint32_t queue_tail() const { return iq_tail_; }
  // Read on DMA threads by the interrupt remapper: each one atomic.
  bool ir_enabled() const {
    return intr_enabled_.load(std::memory_order_acquire);
  }
  uint64_t ir_table() const {
    return intr_root_.load(std::memory_order_acquire);
  }
  uint32_t ir_table_size() const {  // entries
    return intr_size_.load(std::memory_order_acquire);
  }
  bool ir_eime() const {  // as latched (see .cc)
    return intr_eime_.load(std::memory_order_acquire);
  }
  // GSTS.CFIS: compatibility-format interrupts pass through (GCMD.CFI).
  bool cfi_enabled() const {
    return cfi_enabled_.load(std::memory_order_acquire);
  }
  // FSTS.IQE: the queue stopped at a bad descriptor.
  bool queue_error_pending() const;

  // MmioOps.
  memory::MemTxResult Read(uint64_t offset, uint64_t* value, unsigned size,
                           memory::MemTxAttrs attrs) override;
  memory::MemTxResult Write(uint64_t offset, uint64_t value, unsigned size,
                            memory::MemTxAttrs attrs) override;
  memory::AccessRules valid() const override { return {4, 8, false}; }
  memory::AccessRules impl() const override { return {4, 8, false}; }

 private:
  IntelIommu(const Properties& props, memory::AddressSpace* system_as);
  // Holds mu_ for its scope unless this thread holds it already (then it
  // does nothing): see "Threading" above.
  class ABSL_SCOPED_LOCKABLE StateLock {
   public:
    explicit StateLock(const IntelIommu* unit)
        ABSL_EXCLUSIVE_LOCK_FUNCTION(unit->mu_);
    ~StateLock() ABSL_UNLOCK_FUNCTION();
    StateLock(const StateLock&) = delete;
    StateLock& operator=(const StateLock&) = delete;

   private:
    const IntelIommu* const unit_;
    bool nested_ = false;
  };

  void DefineRegisters() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteRegister(uint16_t off, uint64_t value, unsigned size)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void HandleGcmd() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleQie(bool enable) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleCcmd() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleIotlb() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleIqt() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleFsts() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleFectl() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleIcs() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleIectl() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // vtd_fault.cc.
  // Writes FRCD (lo, hi) as RecordFault describes; `trace_addr` is what
  // the trace events show (the DMA address, or the interrupt index).
  void RecordFaultRecord(uint16_t sid, FaultReason reason, uint64_t lo,
                         uint64_t hi, uint64_t trace_addr, bool is_write)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdatePpf() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void GenerateFaultEvent(uint32_t pre_fsts) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SendInterrupt(Reg32 addr_reg, Reg32 data_reg)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Properties props_;
  const uint64_t cap_;
  const uint64_t ecap_;
  memory::AddressSpace* const system_as_;  // not owned
  Observer* observer_ = nullptr;           // not owned
  // The register file and the fault-record cursor; see StateLock.
  mutable StateMutex mu_;
  // The thread holding mu_ (default-constructed id: none).
  mutable std::atomic<std::thread::id> mu_owner_{};
  RegisterFile regs_ ABSL_GUARDED_BY(mu_);

  bool dmar_enabled_ = false;
  uint64_t root_ = 0;
  bool root_scalable_ = false;
  bool qi_enabled_ = false;
  uint64_t iq_ = 0;
  uint32_t iq_size_ = 0;
  bool iq_dw_ = false;
  uint32_t iq_head_ = 0;
  uint32_t iq_tail_ = 0;
  bool iq_last_was_wait_ = false;
  std::atomic<bool> intr_enabled_{false};
  std::atomic<uint64_t> intr_root_{0};
  std::atomic<uint32_t> intr_size_{0};
  std::atomic<bool> intr_eime_{false};
  std::atomic<bool> cfi_enabled_{false};
  int next_frcd_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_INTEL_IOMMU_H_
