// The register block and its side effects: QEMU 7.2's vtd_init,
// vtd_mem_read/vtd_mem_write and the GCMD / CCMD / IOTLB / IQT handlers.
#include "viommu/hw/iommu/intel_iommu.h"

#include "absl/status/status.h"
#include "viommu/util/log.h"
#include "viommu/util/trace.h"

namespace viommu::vtd {
namespace {

constexpr uint16_t O(Reg32 r) { return Offset(r); }
constexpr uint16_t O(Reg64 r) { return Offset(r); }

}  // namespace

absl::StatusOr<std::unique_ptr<IntelIommu>> IntelIommu::Create(
    const Properties& props, memory::AddressSpace* system_as) {
  if (props.aw_bits != 39 && props.aw_bits != 48) {
    return absl::InvalidArgumentError(
        "Supported values for aw-bits are: 39, 48");
  }
  std::unique_ptr<IntelIommu> iommu(new IntelIommu(props, system_as));
  {
    StateLock lock(iommu.get());
    iommu->DefineRegisters();
  }
  return iommu;
}

IntelIommu::StateLock::StateLock(const IntelIommu* unit)
    ABSL_NO_THREAD_SAFETY_ANALYSIS : unit_(unit) {
  if (unit_->mu_owner_.load(std::memory_order_relaxed) ==
      std::this_thread::get_id()) {
    nested_ = true;  // this thread is inside a locked call already
    return;
  }
  unit_->mu_.Lock();
  unit_->mu_owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
}

IntelIommu::StateLock::~StateLock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (nested_) return;
  unit_->mu_owner_.store(std::thread::id(), std::memory_order_relaxed);
  unit_->mu_.Unlock();
}

bool IntelIommu::queue_error_pending() const {
  StateLock lock(this);
  return (regs_.Raw(Reg32::kFsts) & kFstsIqe) != 0;
}

IntelIommu::IntelIommu(const Properties& props, memory::AddressSpace* system_as)
    : props_(props),
      cap_(ComputeCap(props)),
      ecap_(ComputeEcap(props)),
      system_as_(system_as) {}

void IntelIommu::Reset() {
  StateLock lock(this);
  DefineRegisters();
  if (observer_ != nullptr) observer_->OnReset();
}

void IntelIommu::DefineRegisters() {
  dmar_enabled_ = false;
  root_ = 0;
  root_scalable_ = false;
  qi_enabled_ = false;
  iq_ = 0;
  iq_size_ = 0;
  iq_dw_ = false;
  iq_head_ = 0;
  iq_tail_ = 0;
  iq_last_was_wait_ = false;
  intr_enabled_ = false;
  intr_root_ = 0;
  intr_size_ = 0;
  intr_eime_ = false;
  cfi_enabled_ = false;
  next_frcd_ = 0;

  RegisterFile& r = regs_;
  r.Clear();
  r.DefineLong(O(Reg32::kVer), kVersion, 0, 0);
  r.DefineQuad(O(Reg64::kCap), cap_, 0, 0);
  r.DefineQuad(O(Reg64::kEcap), ecap_, 0, 0);
  r.DefineLong(O(Reg32::kGcmd), 0, 0xff80'0000, 0);
  r.DefineLongWo(O(Reg32::kGcmd), 0xff80'0000);
  r.DefineLong(O(Reg32::kGsts), 0, 0, 0);
  r.DefineQuad(O(Reg64::kRtaddr), 0, 0xffff'ffff'ffff'fc00, 0);
  r.DefineQuad(O(Reg64::kCcmd), 0, 0xe000'0003'ffff'ffff, 0);
  r.DefineQuadWo(O(Reg64::kCcmd), 0x3'ffff'0000);
  r.DefineLong(O(Reg32::kFsts), 0, 0, kFstsPfo | kFstsIqe);
  r.DefineLong(O(Reg32::kFectl), kFectlIm, kFectlIm, 0);
  r.DefineLong(O(Reg32::kFedata), 0, 0xffff, 0);
  r.DefineLong(O(Reg32::kFeaddr), 0, 0xffff'fffc, 0);
  r.DefineLong(O(Reg32::kFeuaddr), 0, 0, 0);  // RsvdZ without EIM
  r.DefineLong(O(Reg32::kPmen), 0, 0, 0);     // no PLMR/PHMR
  r.DefineQuad(O(Reg64::kIqh), 0, 0, 0);
  r.DefineQuad(O(Reg64::kIqt), 0, kIqtQtMask, 0);
  r.DefineQuad(O(Reg64::kIqa), 0, 0xffff'ffff'ffff'f807, 0);
  r.DefineLong(O(Reg32::kIcs), 0, 0, kIcsIwc);
  r.DefineLong(O(Reg32::kIectl), kFectlIm, kFectlIm, 0);
  r.DefineLong(O(Reg32::kIedata), 0, 0xffff'ffff, 0);
  r.DefineLong(O(Reg32::kIeaddr), 0, 0xffff'fffc, 0);
  r.DefineLong(O(Reg32::kIeuaddr), 0, 0, 0);
  r.DefineQuad(O(Reg64::kIotlb), 0, 0xb003'ffff'0000'0000, 0);
  r.DefineQuad(O(Reg64::kIva), 0, 0xffff'ffff'ffff'f07f, 0);
  r.DefineQuadWo(O(Reg64::kIva), 0xffff'ffff'ffff'f07f);
  r.DefineQuad(O(Reg64::kFrcd0Lo), 0, 0, 0);
  r.DefineQuad(O(Reg64::kFrcd0Hi), 0, 0, kFrcdF);
  r.DefineQuad(O(Reg64::kIrta), 0, 0xffff'ffff'ffff'f80f, 0);
}

memory::MemTxResult IntelIommu::Read(uint64_t offset, uint64_t* value,
                                     unsigned size, memory::MemTxAttrs) {
  StateLock lock(this);
  const uint16_t off = static_cast<uint16_t>(offset);
  uint64_t v;
  if (off == O(Reg64::kIqa)) {
    // The latched queue base, not the register (vtd_mem_read).
    v = iq_ | (regs_.GetQuad(off) & kIqaQsMask);
  } else if (off == O(Reg32::kIqaHi)) {
    v = iq_ >> 32;
  } else if (size == 8 && uint64_t{off} + 8 <= kRegBlockSize) {
    v = regs_.GetQuad(off);
  } else {
    v = regs_.GetLong(off);
  }
  *value = size == 4 ? (v & 0xffff'ffff) : v;
  VIOMMU_TRACE(vtd_reg_read, offset, size, *value);
  return memory::MemTxResult::Ok();
}

memory::MemTxResult IntelIommu::Write(uint64_t offset, uint64_t value,
                                      unsigned size, memory::MemTxAttrs) {
  StateLock lock(this);
  const uint16_t off = static_cast<uint16_t>(offset);
  VIOMMU_TRACE(vtd_reg_write, offset, size, value);
  if (size == 8 && (off == O(Reg32::kFectl) || off == O(Reg32::kIectl))) {
    // QEMU 7.2 asserts on these; viommu treats them as two 4-byte writes.
    WriteRegister(off, value & 0xffff'ffff, 4);
    WriteRegister(off + 4, value >> 32, 4);
  } else {
    WriteRegister(off, value, size);
  }
  return memory::MemTxResult::Ok();
}

void IntelIommu::WriteRegister(uint16_t off, uint64_t value, unsigned size) {
  const uint32_t lo = static_cast<uint32_t>(value);
  auto set = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (size == 4) {
      regs_.SetLong(off, lo);
    } else {
      regs_.SetQuad(off, value);
    }
  };
  switch (off) {
    case O(Reg32::kGcmd):
      regs_.SetLong(off, lo);  // an 8-byte write leaves GSTS alone
      HandleGcmd();
      return;
    case O(Reg64::kCcmd):
      set();
      if (size == 8) HandleCcmd();
      return;
    case O(Reg32::kCcmdHi):
      regs_.SetLong(off, lo);
      HandleCcmd();
      return;
    case O(Reg32::kFsts):
      regs_.SetLong(off, lo);
      HandleFsts();
      return;
    case O(Reg32::kFectl):
      regs_.SetLong(off, lo);
      HandleFectl();
      return;
    case O(Reg64::kIqt):
      set();
      HandleIqt();
      return;
    case O(Reg64::kIqa):
      set();
      iq_dw_ = (ecap_ & kEcapSmts) != 0 && (lo & kIqaDw) != 0;
      return;
    case O(Reg32::kIcs):
      regs_.SetLong(off, lo);
      HandleIcs();
      return;
    case O(Reg32::kIectl):
      regs_.SetLong(off, lo);
      HandleIectl();
      return;
    case O(Reg64::kIotlb):
      set();
      if (size == 8) HandleIotlb();
      return;
    case O(Reg32::kIotlbHi):
      regs_.SetLong(off, lo);
      HandleIotlb();
      return;
    case O(Reg64::kFrcd0Hi):
      set();
      if (size == 8) UpdatePpf();
      return;
    case O(Reg32::kFrcd0Dw3):
      regs_.SetLong(off, lo);
      UpdatePpf();  // may have cleared F
      return;
    default:
      if (size == 8 && uint64_t{off} + 8 > kRegBlockSize) return;
      set();
      return;
  }
}

void IntelIommu::HandleGcmd() {
  const uint32_t status = regs_.Raw(Reg32::kGsts);
  const uint32_t val = regs_.Raw(Reg32::kGcmd);
  const uint32_t changed = status ^ val;
  const uint16_t gsts = O(Reg32::kGsts);

  if ((changed & kGcmdTe) && props_.dma_translation) {
    dmar_enabled_ = (val & kGcmdTe) != 0;
    if (dmar_enabled_) {
      regs_.SetClearMaskLong(gsts, 0, kGstsTes);
    } else {
      next_frcd_ = 0;
      regs_.SetClearMaskLong(gsts, kGstsTes, 0);
    }
    VIOMMU_TRACE(vtd_dmar_enable, dmar_enabled_);
    if (observer_ != nullptr) observer_->OnTranslationEnabled(dmar_enabled_);
  }
  if (val & kGcmdSrtp) {
    root_ = regs_.Raw(Reg64::kRtaddr) & (HawMask(props_.aw_bits) ^ 0xfff);
    if (props_.scalable_mode) {
      root_scalable_ = (regs_.Raw(Reg64::kRtaddr) & kRtaddrSmt) != 0;
    }
    regs_.SetClearMaskLong(gsts, 0, kGstsRtps);
    VIOMMU_TRACE(vtd_reg_dmar_root, root_);
    if (observer_ != nullptr) observer_->OnRootTableChanged(root_);
  }
  if (changed & kGcmdQie) HandleQie((val & kGcmdQie) != 0);
  if (val & kGcmdSirtp) {
    // EIME is latched as written, as QEMU 7.2 does, even without ECAP.EIM
    // (where the spec makes it RsvdZ).
    const uint64_t irta = regs_.Raw(Reg64::kIrta);
    intr_size_ = 1u << ((irta & kIrtaSizeMask) + 1);
    intr_root_ = irta & (HawMask(props_.aw_bits) ^ 0xfff);
    intr_eime_ = (irta & kIrtaEime) != 0;
    regs_.SetClearMaskLong(gsts, 0, kGstsIrtps);
    VIOMMU_TRACE(vtd_reg_ir_root, intr_root_.load(), intr_size_.load(),
                 intr_eime_.load());
    if (observer_ != nullptr) observer_->OnInterruptRemapTableChanged(irta);
  }
  if ((changed & kGcmdIre) && props_.ir_supported()) {
    const bool ire = (val & kGcmdIre) != 0;
    intr_enabled_.store(ire, std::memory_order_release);
    regs_.SetClearMaskLong(gsts, ire ? 0 : kGstsIres, ire ? kGstsIres : 0);
    VIOMMU_TRACE(vtd_ir_enable, ire);
  }
  // CFI (the spec; QEMU 7.2 ignores it and never sets GSTS.CFIS).
  if ((changed & kGcmdCfi) && props_.ir_supported()) {
    const bool cfi = (val & kGcmdCfi) != 0;
    cfi_enabled_.store(cfi, std::memory_order_release);
    regs_.SetClearMaskLong(gsts, cfi ? 0 : kGstsCfis, cfi ? kGstsCfis : 0);
    VIOMMU_TRACE(vtd_ir_cfi, cfi);
  }
}

void IntelIommu::HandleQie(bool enable) {
  const uint16_t gsts = O(Reg32::kGsts);
  if (enable) {
    const uint64_t iqa = regs_.Raw(Reg64::kIqa);
    iq_ = iqa & (HawMask(props_.aw_bits) ^ 0xfff);
    iq_size_ = 1u << ((iqa & kIqaQsMask) + 8 - (iq_dw_ ? 1 : 0));
    qi_enabled_ = true;
    regs_.SetClearMaskLong(gsts, 0, kGstsQies);
    // A spec violation Windows commits: process a tail set before enabling.
    if (iq_tail_ != 0 && !(regs_.Raw(Reg32::kFsts) & kFstsIqe) &&
        observer_ != nullptr) {
      observer_->OnQueueTailWritten(iq_tail_);
    }
    return;
  }
  // vtd_queued_inv_disable_check: only after a wait descriptor drained
  // the queue; otherwise QEMU reports an error and QI stays enabled.
  if (qi_enabled_ && iq_tail_ == iq_head_ && iq_last_was_wait_) {
    regs_.SetQuadRaw(O(Reg64::kIqh), 0);
    iq_head_ = 0;
    qi_enabled_ = false;
    regs_.SetClearMaskLong(gsts, kGstsQies, 0);
  }
}

void IntelIommu::HandleCcmd() {
  const uint64_t val = regs_.Raw(Reg64::kCcmd);
  if (!(val & kCcmdIcc)) return;
  if (qi_enabled_) return;  // QEMU: error, the request stays pending
  const auto g =
      static_cast<ContextGranularity>((val & kCcmdCirgMask) >> kCcmdCirgShift);
  uint64_t caig = 0;
  switch (g) {
    case ContextGranularity::kDomain:  // QEMU 7.2 flushes globally
    case ContextGranularity::kGlobal:
      caig = uint64_t{1} << kCcmdCaigShift;
      break;
    case ContextGranularity::kDevice:
      caig = uint64_t{3} << kCcmdCaigShift;
      break;
    case ContextGranularity::kInvalid:
      break;
  }
  if (observer_ != nullptr) {
    observer_->OnContextInvalidate(
        g, static_cast<uint16_t>(val & kCcmdDidMask),
        static_cast<uint16_t>(val >> kCcmdSidShift),
        static_cast<uint8_t>((val >> kCcmdFmShift) & 3));
  }
  const uint16_t ccmd = O(Reg64::kCcmd);
  regs_.SetClearMaskQuad(ccmd, kCcmdIcc, 0);
  regs_.SetClearMaskQuad(ccmd, kCcmdCaigMask, caig);
}

void IntelIommu::HandleIotlb() {
  const uint64_t val = regs_.Raw(Reg64::kIotlb);
  if (!(val & kIotlbIvt)) return;
  if (qi_enabled_) return;  // QEMU: error, the request stays pending
  const auto g =
      static_cast<IotlbGranularity>((val & kIotlbIirgMask) >> kIotlbIirgShift);
  const auto did = static_cast<uint16_t>(val >> kIotlbDidShift);
  const uint64_t iva = regs_.Raw(Reg64::kIva);
  const auto am = static_cast<uint8_t>(iva & kIvaAmMask);
  uint64_t iaig = 0;
  bool act = true;
  if (g == IotlbGranularity::kInvalid ||
      (g == IotlbGranularity::kPage && am > kMamv)) {
    act = false;
  } else {
    iaig = uint64_t{static_cast<uint8_t>(g)} << kIotlbIaigShift;
  }
  if (act && observer_ != nullptr) {
    observer_->OnIotlbInvalidate(g, did, iva & kIvaAddrMask, am,
                                 (iva & kIvaIh) != 0);
  }
  const uint16_t iotlb = O(Reg64::kIotlb);
  regs_.SetClearMaskQuad(iotlb, kIotlbIvt, 0);
  regs_.SetClearMaskQuad(iotlb, kIotlbIaigMask, iaig);
}

void IntelIommu::HandleIqt() {
  const uint64_t val = regs_.Raw(Reg64::kIqt);
  if (iq_dw_) {
    // QEMU 7.2: bit 4 set with 256-bit descriptors is only logged; the
    // register keeps the value, the tail does not move, no IQE.
    if (val & (1u << kIqtQtShift)) {
      VIOMMU_LOG_GUEST_ERROR("vtd: IQT 0x%x has bit 4 set in 256-bit mode",
                             val);
      return;
    }
    iq_tail_ = static_cast<uint32_t>((val & kIqtQtMask) >> (kIqtQtShift + 1));
  } else {
    iq_tail_ = static_cast<uint32_t>((val & kIqtQtMask) >> kIqtQtShift);
  }
  if (qi_enabled_ && !(regs_.Raw(Reg32::kFsts) & kFstsIqe) &&
      observer_ != nullptr) {
    observer_->OnQueueTailWritten(iq_tail_);
  }
}

void IntelIommu::SetQueueHead(uint32_t head, bool last_was_wait) {
  StateLock lock(this);
  iq_head_ = head;
  iq_last_was_wait_ = last_was_wait;
  regs_.SetQuadRaw(O(Reg64::kIqh),
                   uint64_t{head} << (kIqtQtShift + (iq_dw_ ? 1 : 0)));
}

}  // namespace viommu::vtd
