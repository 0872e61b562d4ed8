// The vtd fuzz target's guest: one input's actions on a q35 machine with
// intel-iommu, checked by the oracles as they run. Its members are defined
// in vtd_fuzzer.cc (the action dispatch), vtd_fuzz_actions.cc (tables,
// registers, queue, DMA, notifiers), vtd_fuzz_interrupts.cc (interrupt
// remapping and its checks) and vtd_fuzz_oracles.cc (the end-of-input
// shadow check and the replay trace).
#ifndef VIOMMU_TESTS_FUZZ_VTD_FUZZ_PROGRAM_H_
#define VIOMMU_TESTS_FUZZ_VTD_FUZZ_PROGRAM_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "tests/fuzz/vtd_dev_iotlb_oracle.h"
#include "tests/fuzz/vtd_fuzz_layout.h"
#include "tests/fuzz/vtd_ir_oracle.h"
#include "tests/fuzz/vtd_shadow_checker.h"
#include "tests/fuzz/vtd_sm_oracle.h"
#include "viommu/hw/i386/q35_machine.h"
#include "viommu/hw/iommu/vtd_context.h"
#include "viommu/hw/iommu/vtd_regs.h"

namespace viommu::vtd::fuzz {

class Program {
 public:
  Program(hw::Q35Machine* m, bool caching_mode)
      : m_(m),
        caching_mode_(caching_mode),
        mem_(&m_->system_as()),
        cfg_(TableConfig::FromProperties(m_->intel_iommu()->properties())),
        scalable_(m_->intel_iommu()->properties().scalable_mode) {
    RegisterDevIotlbNotifiers();
  }
  ~Program() {
    for (auto& h : handles_) h.Reset();  // before the machine goes
    for (auto& h : dev_handles_) h.Reset();
  }

  // False when the program must stop (work budget exceeded).
  bool Step(Input& in);
  int ir_checked() const { return ir_checked_; }
  void FinalCheck();
  // Adds the machine's observable end state to the trace (replay only).
  void TraceEndState();

 private:
  // --- guest memory and registers ---
  void Write64(uint64_t gpa, uint64_t v) {
    (void)m_->system_as().Write(gpa, &v, 8);
  }
  uint64_t ReadReg(uint16_t off, unsigned size) {
    uint64_t v = 0;
    (void)m_->system_as().Read(hw::kVtdRegBase + off, &v, size);
    return v;
  }
  // Every guest register write goes through here, so the IR tracker
  // sees each GCMD write (4 bytes, or the low half of 8 at GCMD).
  void WriteReg(uint16_t off, uint64_t v, unsigned size) {
    (void)m_->system_as().Write(hw::kVtdRegBase + off, &v, size);
    if (off == Offset(Reg32::kGcmd)) {
      ir_.OnGcmd(static_cast<uint32_t>(v), ReadReg(Offset(Reg64::kIrta), 8),
                 cfg_.aw_bits);
      CheckIrUnit(/*tracked=*/true);
    }
  }
  void Mmio(uint64_t addr, uint64_t v, unsigned size) {
    (void)m_->system_as().Write(addr, &v, size);
  }

  // An IOVA made of small indexes per level (where the tables are written)
  // plus a small page offset; sometimes arbitrary.
  static uint64_t PickIova(Input& in) {
    const uint8_t a = in.U8();
    const uint8_t b = in.U8();
    if (a == 0xff) return in.U64();
    return uint64_t{a & 7u} << 12 | uint64_t{(a >> 3) & 7u} << 21 |
           uint64_t{b & 3u} << 30 | uint64_t{(b >> 2) & 3u} << 39 |
           uint64_t{(b >> 4) & 7u} << 3 | (a >> 6 == 3 ? 0xff8 : 0);
  }
  // A value for a page-table entry: a table or data page of the region
  // (or any address), R/W, sometimes PS, TM/SNP or other reserved bits.
  static uint64_t PickEntry(Input& in) {
    const uint8_t k = in.U8();
    const uint8_t t = in.U8();
    uint64_t addr;
    switch (k & 3) {
      case 0:
      case 1:
        addr = kTables + (t % kNumTables) * kPage;
        break;
      case 2:
        addr = (t & 1) ? kData + (t >> 1 & 1) * kPage
                       : uint64_t{t} << 21;  // 2M / 1G aligned candidates
        break;
      default:
        return in.U64();
    }
    uint64_t v = addr | ((k >> 2) & 3);              // R, W
    if (k & 0x10) v |= 1u << 7;                      // PS
    if ((k & 0xe0) == 0x20) v |= 1u << 11;           // SNP (reserved)
    if ((k & 0xe0) == 0x40) v |= uint64_t{1} << 62;  // TM
    if ((k & 0xe0) == 0x60) v |= uint64_t{1} << (39 + (t & 15));  // > HAW
    return v;
  }

  // An interrupt-table index: mostly 0..15, sometimes 0..63 or any.
  static uint32_t PickIrIndex(Input& in) {
    const uint8_t a = in.U8();
    if (a < 0x80) return a & 15;
    if (a < 0xc0) return a & 0x3f;
    return in.U16();
  }
  static uint64_t PickMsi(Input& in, uint32_t* data);

  bool StepAction(Input& in);
  void TableWrite(Input& in);
  void PageTableSlotWrite(Input& in);
  void RawWrite(Input& in);
  void QueueWrite(Input& in);
  void RegWrite(Input& in);
  void RegRead(Input& in);
  void TestdevDma(Input& in);
  void EduDma(Input& in);
  void RegisterNotifier(Input& in);
  // Device IOTLB: the DEVIOTLB_UNMAP notifiers (the engine vetoes them
  // without device-iotlb), and one descriptor submitted and checked.
  void RegisterDevIotlbNotifiers();
  void DevIotlbSubmit(uint64_t lo, uint64_t hi);
  void Reset();
  void SetupPci();
  // SetupPci, and again if the BARs or COMMAND changed since.
  void EnsurePci();
  // Interrupt remapping.
  void IrteWrite(Input& in);
  void IrtaWrite(Input& in);
  void IrGcmd(Input& in);
  void IecSubmit(Input& in);
  void IrSetup(Input& in);
  void TestdevIrq(Input& in);
  void EduMsi(Input& in);
  void RawWindowWrite(Input& in);
  void EnableQi();
  // Writes a descriptor at the queue tail and moves the tail past it, if
  // QI is on and the queue is idle; true when it verifiably ran.
  bool SubmitDescriptor(uint64_t lo, uint64_t hi);
  // The same with a 256-bit descriptor (IQA.DW; only d[0..1] without it).
  bool SubmitDescriptor(const uint64_t (&d)[4]);
  // Whether the next descriptor would go to RAM at an idle queue.
  bool QueueIdleInRam();
  // Scalable mode (vtd_fuzz_scalable.cc; only on an x-scalable-mode
  // machine): root, context, PASID directory and PASID table entries,
  // 256-bit descriptors, a driver's setup, and the DMA check.
  // False when over the work budget (the setup and check may sync).
  bool SmTableWrite(Input& in);
  void SmQueueWrite(Input& in);
  void SmSetup(Input& in);
  bool SmTranslateCheck(Input& in);
  // With translation on through scalable-mode tables, after a global
  // invalidation: one translation of `iova` for device `i` agrees with
  // the reference (vtd_sm_oracle.h), fault record included.
  void CheckSmTranslation(int i, uint64_t iova, bool write);
  // FinalCheck on a scalable-mode machine.
  void SmFinalCheck();
  RefSmConfig SmConfig();
  RefRead SmReader();
  // Runs `perform`, which makes exactly `reqs` (from `src`), and checks
  // the window's record and the fault registers against the reference.
  void CheckedInterrupts(const std::vector<IrRequest>& reqs,
                         std::optional<uint16_t> src,
                         const std::function<void()>& perform);
  IrObserved ObserveIr(std::optional<uint16_t> src);
  IrTracker::ReadResult ReadIrte(uint64_t gpa, RefIrte* out);
  uint64_t IrRequestCount() {
    return m_->vtd_engine()->interrupt_remapper().stats().requests;
  }
  // Compares the unit's latched IR state with the tracker's: a mismatch
  // fails after a guest GCMD write (`tracked`), and otherwise means an
  // untracked register write (device DMA into the register block).
  void CheckIrUnit(bool tracked);
  uint8_t EduMsiCap();
  // False when a sync now could walk more than the budget allows.
  bool SyncBudgetOk();
  // Issues a global IOTLB invalidation the way the guest can (register, or
  // the queue when QI is on); true when it verifiably ran.
  bool GlobalInvalidate();
  // The same for the context cache (which in scalable mode also holds
  // what a request checks of RID_PASID's PASID entry).
  bool GlobalContextInvalidate();

  hw::Q35Machine* m_;  // not owned, outlives this
  const bool caching_mode_;
  AddressSpaceGuestMemory mem_;
  const TableConfig cfg_;
  const bool scalable_;  // x-scalable-mode=on
  bool pci_ready_ = false;
  MappingRecorder recorders_[2];
  memory::IommuNotifierHandle handles_[2];
  DevIotlbRecorder dev_recorders_[2];
  memory::IommuNotifierHandle dev_handles_[2];
  IrTracker ir_;
  std::unique_ptr<memory::AddressSpace> dev_as_[2];  // RawWindowWrite's
  bool ir_accounted_ = false;  // this step's requests were all predicted
  int ir_checked_ = 0;         // actions whose outcome was checked
  int dev_iotlb_checked_ = 0;  // device-IOTLB submissions checked
  int sm_checked_ = 0;         // scalable-mode translations checked
  // What the IOTLB may hold since the checks' last invalidation: the
  // translations CheckSmTranslation saw succeed (device, entry). A hit
  // is served without a permission check or fault, as in QEMU 7.2.
  struct SmCached {
    int dev;
    uint64_t iova, mask, gpa;
  };
  std::vector<SmCached> sm_iotlb_;
};

}  // namespace viommu::vtd::fuzz

#endif  // VIOMMU_TESTS_FUZZ_VTD_FUZZ_PROGRAM_H_
