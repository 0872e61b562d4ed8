// vtd fuzz target: the guest's table, RAM, queue and register writes,
// register reads, device DMA, MAP/UNMAP and DEVIOTLB_UNMAP notifiers,
// system reset, and the invalidations the oracles issue.
#include <cstdint>
#include <optional>

#include "tests/fuzz/fuzz_trace.h"
#include "tests/fuzz/vtd_fuzz_program.h"
#include "viommu/hw/pci/pci_regs.h"

namespace viommu::vtd::fuzz {

void Program::TableWrite(Input& in) {
  const uint8_t kind = in.U8();
  switch (kind & 3) {
    case 0: {  // root entry of bus 0 (mostly)
      const uint8_t bus = (kind & 0x80) ? in.U8() : 0;
      uint64_t lo = kContext | 1;
      if (kind & 0x40) lo = in.U64();
      Write64(kRoot + bus * 16, lo);
      if (kind & 0x20) Write64(kRoot + bus * 16 + 8, in.U64());
      return;
    }
    case 1: {  // context entry of one of our devices (mostly)
      const uint8_t sel = in.U8();
      const uint8_t devfn = (sel & 0x80) ? in.U8() : kDevfns[sel & 1];
      const uint8_t f = in.U8();
      uint64_t lo = (kTables + ((sel >> 1) % kNumTables) * kPage) |
                    uint64_t{(f >> 1) & 3u} << 2 |  // TT
                    (f & 0x8 ? 2 : 0) |             // FPD
                    (f & 0x10 ? 0 : 1);             // P
      uint64_t hi = (f & 0x20 ? 2 : 1) | uint64_t{(f >> 6) & 3u} << 8;
      if (sel & 0x40) lo ^= in.U64();
      if (f & 1) hi ^= in.U64() & 0xffff'ff87;
      Write64(kContext + devfn * 16, lo);
      Write64(kContext + devfn * 16 + 8, hi);
      return;
    }
    default:
      PageTableSlotWrite(in);
      return;
  }
}

void Program::PageTableSlotWrite(Input& in) {
  const uint8_t where = in.U8();
  const uint64_t table = kTables + (where % kNumTables) * kPage;
  Write64(table + ((where >> 4) & 7) * 8, PickEntry(in));
}

void Program::RawWrite(Input& in) {
  const uint16_t off = in.U16() % (kRegionPages * kPage);
  Write64(kRegion + (off & ~7u), in.U64());
}

void Program::QueueWrite(Input& in) {
  // A descriptor at index 0..7 of the queue page: IOTLB, context or
  // device-IOTLB invalidation, or a wait (status to page 13), or raw.
  const uint8_t k = in.U8();
  const uint64_t slot = kQueue + (k & 7) * 16;
  uint64_t lo, hi = 0;
  const uint8_t g = in.U8();
  switch ((k >> 3) & 7) {
    case 0:  // context cache: G 5:4, DID 31:16, SID 47:32, FM 49:48
      lo = 1 | uint64_t{g & 3u} << 4 | uint64_t{(g >> 2) & 3u} << 16 |
           uint64_t{kDevfns[(g >> 4) & 1]} << 32 |
           static_cast<uint64_t>(g >> 6) << 48;
      break;
    case 1:
    case 2:  // IOTLB: G 5:4, DID 31:16; ADDR hi 63:12, IH 6, AM 5:0
      lo = 2 | uint64_t{g & 3u} << 4 | uint64_t{(g >> 2) & 3u} << 16;
      hi = (PickIova(in) & ~uint64_t{0xfff}) | (g >> 4 & 3);
      break;
    case 3: {  // device IOTLB: SID lo 47:32; ADDR hi 63:12, S hi bit 0
      const uint16_t sid = (g & 2) ? in.U16() : kDevfns[g & 1];
      lo = 3 | uint64_t{sid} << 32;
      hi = PickIova(in) & ~uint64_t{0xfff};
      if (g & 4) hi |= 1;  // S: the size is the run of ones from bit 12
      if (g & 8) hi |= ((uint64_t{1} << (in.U8() & 63)) - 1) << 12;
      if ((g & 0x30) == 0x30) {       // one bit, reserved or not; in the
        const uint8_t bit = in.U8();  // type field only bit 3 (type 0xb)
        const bool in_lo = !(bit & 0x40);
        const int b = in_lo && (bit & 63) < 4 ? 3 : bit & 63;
        (in_lo ? lo : hi) ^= uint64_t{1} << b;
      }
      if (k & 0x80) {
        DevIotlbSubmit(lo, hi);
        return;
      }
      break;
    }
    case 4:  // wait: IF 4, SW 5, FN 6, data 63:32; address hi
      lo = 5 | uint64_t{g & 7u} << 4 | uint64_t{in.U8()} << 32;
      hi = kStatus + (g >> 3) * 8;
      break;
    default:
      lo = in.U64();
      hi = in.U64();
      break;
  }
  Write64(slot, lo);
  Write64(slot + 8, hi);
}

void Program::RegWrite(Input& in) {
  const uint8_t k = in.U8();
  bool raw = (k & 0xe0) == 0xe0;
  uint16_t off;
  unsigned size = 8;
  uint64_t v = 0;
  switch (k & 15) {
    case 0:
    case 1: {  // GCMD as a driver writes it: GSTS plus a command
      off = Offset(Reg32::kGcmd);
      size = 4;
      const uint8_t c = in.U8();
      static constexpr uint32_t kBits[8] = {kGcmdTe,  kGcmdSrtp,  kGcmdQie,
                                            kGcmdIre, kGcmdSirtp, kGcmdWbf,
                                            kGcmdSfl, kGcmdCfi};
      v = ReadReg(Offset(Reg32::kGsts), 4) & (kGstsTes | kGstsQies | kGstsIres);
      for (int i = 0; i < 8; ++i) {
        if (c & (1u << i)) v ^= kBits[i];
      }
      break;
    }
    case 2:
      off = Offset(Reg64::kRtaddr);
      v = (k & 0x10) ? kRegion + (in.U8() % kRegionPages) * kPage : kRoot;
      // Scalable mode: mostly TTM = 01 (a scalable-mode root table).
      if (scalable_ && (k & 0x60) != 0x40) v |= uint64_t{1} << 10;
      break;
    case 3: {
      off = Offset(Reg64::kCcmd);
      const uint8_t g = in.U8();
      v = kCcmdIcc | uint64_t{g & 3u} << kCcmdCirgShift | ((g >> 2) & 3u) |
          uint64_t{kDevfns[(g >> 4) & 1]} << kCcmdSidShift |
          static_cast<uint64_t>(g >> 6) << kCcmdFmShift;
      break;
    }
    case 4:
    case 5: {
      off = Offset(Reg64::kIotlb);
      const uint8_t g = in.U8();
      v = kIotlbIvt | uint64_t{g & 3u} << kIotlbIirgShift |
          uint64_t{(g >> 2) & 3u} << kIotlbDidShift;
      break;
    }
    case 6: {
      off = Offset(Reg64::kIva);
      const uint8_t am = in.U8();
      v = (PickIova(in) & kIvaAddrMask) | (am & 0x80 ? am & 0x7f : am & 3);
      break;
    }
    case 7:
      off = Offset(Reg64::kIqt);
      v = uint64_t{in.U8() & 15u} << kIqtQtShift;
      break;
    case 8:
      off = Offset(Reg64::kIqa);
      v = kQueue | (in.U8() & 0x801u);  // QS 0/1, DW
      break;
    case 9:
      off = Offset(Reg32::kFsts);
      size = 4;
      v = in.U8();
      break;
    case 10:
      off = Offset(Reg32::kFectl);
      size = 4;
      v = in.U8() & 1 ? kFectlIm : 0;
      break;
    case 11:
      off = Offset(Reg32::kFrcd0Dw3);
      size = 4;
      v = in.U32();
      break;
    case 12:
      off = Offset(Reg32::kIcs);
      size = 4;
      v = in.U8();
      break;
    case 13:
      off = Offset(Reg32::kIectl);
      size = 4;
      v = in.U32();
      break;
    default:
      off = static_cast<uint16_t>(in.U16() % kRegBlockSize);
      size = (k & 0x10) ? 8 : 4;
      off &= static_cast<uint16_t>(~(size - 1));
      raw = true;
      break;
  }
  if (raw) v = in.U64();
  WriteReg(off, v, size);
}

void Program::RegRead(Input& in) {
  const uint8_t k = in.U8();
  const unsigned size = (k & 1) ? 8 : 4;
  const uint16_t off =
      static_cast<uint16_t>((in.U16() % kRegBlockSize) & ~(size - 1));
  const uint64_t v = ReadReg(off, size);
  if (viommu::fuzz::Mode().tracing) {
    viommu::fuzz::Trace().Add64(off);
    viommu::fuzz::Trace().Add64(v);
  }
}

void Program::EnsurePci() {
  // A device DMA through ECAM may have changed BARs or COMMAND since
  // SetupPci; the interrupt actions need them as SetupPci left them.
  hw::pci::PciBus& bus = m_->pci_bus();
  constexpr uint32_t kCmd = hw::pci::kCommandMemory | hw::pci::kCommandMaster;
  if (pci_ready_ &&
      bus.ConfigRead(kEduDevfn, hw::pci::kCfgBar0, 4) == kEduBar &&
      bus.ConfigRead(kTestdevDevfn, hw::pci::kCfgBar0, 4) == kTestdevBar &&
      (bus.ConfigRead(kEduDevfn, hw::pci::kCfgCommand, 2) & kCmd) == kCmd &&
      (bus.ConfigRead(kTestdevDevfn, hw::pci::kCfgCommand, 2) & kCmd) == kCmd) {
    return;
  }
  pci_ready_ = false;
  SetupPci();
}

void Program::SetupPci() {
  if (pci_ready_) return;
  hw::pci::PciBus& bus = m_->pci_bus();
  bus.ConfigWrite(kEduDevfn, hw::pci::kCfgBar0, kEduBar, 4);
  bus.ConfigWrite(kTestdevDevfn, hw::pci::kCfgBar0, kTestdevBar, 4);
  for (uint8_t devfn : kDevfns) {
    bus.ConfigWrite(devfn, hw::pci::kCfgCommand,
                    hw::pci::kCommandMemory | hw::pci::kCommandMaster, 2);
  }
  pci_ready_ = true;
}

void Program::TestdevDma(Input& in) {
  SetupPci();
  const uint8_t k = in.U8();
  static constexpr uint32_t kLens[8] = {1, 4, 8, 8, 64, 0x1000, 0x800, 0};
  uint32_t len = kLens[k & 7];
  if (len == 0) len = in.U16();
  if (k & 0x08) Mmio(kTestdevBar + 0x1000, in.U64(), 8);  // buffer data
  Mmio(kTestdevBar + 0x08, PickIova(in), 8);
  Mmio(kTestdevBar + 0x10, len, 4);
  Mmio(kTestdevBar + 0x14, 0, 4);
  Mmio(kTestdevBar + 0x18, (k & 0x10) ? 2 : 1, 4);  // write / read
}

void Program::EduDma(Input& in) {
  SetupPci();
  const uint8_t k = in.U8();
  const uint64_t iova = PickIova(in);
  const uint64_t count = (k & 1) ? 8 : (k & 2) ? 0x1000 : in.U8();
  const bool to_ram = k & 4;
  Mmio(kEduBar + 0x80, to_ram ? 0x40000 : iova, 8);
  Mmio(kEduBar + 0x88, to_ram ? iova : 0x40000, 8);
  Mmio(kEduBar + 0x90, count, 8);
  Mmio(kEduBar + 0x98, to_ram ? 3 : 1, 8);
  if (k & 8) m_->clock().Step(100'000'000);  // the DMA runs now
}

void Program::RegisterNotifier(Input& in) {
  const int i = in.U8() & 1;
  if (handles_[i].registered()) {
    // Unregister: MAPs are forgotten without events (vtd_engine.cc).
    handles_[i].Reset();
    recorders_[i].Clear();
    return;
  }
  if (!caching_mode_) return;  // the engine vetoes MAP notifiers
  VtdAddressSpace* as = m_->vtd_engine()->FindAddressSpace(0, kDevfns[i]);
  if (as == nullptr) return;
  auto h = as->notifiers()->Register(&recorders_[i],
                                     {.flags = memory::kNotifyIotlbEvents});
  if (!h.ok()) Fail("MAP+UNMAP registration refused with caching-mode", i, 0);
  handles_[i] = std::move(*h);
  if (!as->notifiers()->Replay(handles_[i]).ok()) Fail("replay failed", i, 0);
}

void Program::RegisterDevIotlbNotifiers() {
  const bool on = m_->intel_iommu()->properties().device_iotlb;
  for (int i = 0; i < 2; ++i) {
    VtdAddressSpace* as = m_->vtd_engine()->FindAddressSpace(0, kDevfns[i]);
    if (as == nullptr) Fail("no VT-d address space", kDevfns[i], 0);
    auto h = as->notifiers()->Register(&dev_recorders_[i],
                                       {.flags = memory::kNotifyDevIotlbUnmap});
    if (h.ok() != on) {
      Fail(on ? "DEVIOTLB_UNMAP registration refused with device-iotlb"
              : "DEVIOTLB_UNMAP registration accepted without device-iotlb",
           kDevfns[i], 0);
    }
    if (h.ok()) dev_handles_[i] = std::move(*h);
  }
}

void Program::DevIotlbSubmit(uint64_t lo, uint64_t hi) {
  const std::optional<RefDevIotlb> want = DecodeDevIotlb(lo, hi);
  for (DevIotlbRecorder& r : dev_recorders_) r.Arm();
  // Checked only when the descriptor goes to RAM at an idle queue.
  const bool idle = QueueIdleInRam();
  const bool ran = SubmitDescriptor(lo, hi);
  if (!idle) return;  // not submitted
  if (!want.has_value()) {
    if (ran) Fail("device-IOTLB descriptor with reserved bits ran", lo, hi);
  } else if (!ran && !(ReadReg(Offset(Reg32::kFsts), 4) & kFstsIqe)) {
    return;  // not run, not failed: the slot is not RAM (legacy holes)
  } else if (!ran) {
    Fail("valid device-IOTLB descriptor set IQE", lo, hi);
  }
  ++dev_iotlb_checked_;
  for (int i = 0; i < 2; ++i) {
    if (!dev_handles_[i].registered()) continue;
    if (ran && want->sid == kDevfns[i]) {
      dev_recorders_[i].Expect({{want->iova, want->last}});
    } else {
      dev_recorders_[i].Expect({});
    }
  }
}

void Program::Reset() {
  m_->Reset();
  pci_ready_ = false;
  ir_.OnReset();
}

bool Program::SyncBudgetOk() {
  if (!handles_[0].registered() && !handles_[1].registered()) return true;
  IntelIommu* iommu = m_->intel_iommu();
  const uint64_t roots[2] = {
      iommu->root_table(),
      ReadReg(Offset(Reg64::kRtaddr), 8) & (HawMask(cfg_.aw_bits) ^ 0xfff)};
  WalkCostBound bound(&mem_);
  for (int i = 0; i < 2; ++i) {
    if (!handles_[i].registered()) continue;
    for (uint64_t root : roots) {
      ContextLookup ctx = LookupContext(mem_, cfg_, root, 0, kDevfns[i]);
      if (ctx.ok() && !bound.Within(ctx.entry)) return false;
      if (!scalable_) continue;
      // The same root as a scalable-mode table (TTM is latched at SRTP).
      const RefSm d = RefSmDecode(SmReader(), SmConfig(), root, 0, kDevfns[i]);
      if (d.fault == 0 && d.pgtt != kRefPgttPt &&
          !bound.Within(d.slptptr, 2 + d.aw)) {
        return false;
      }
    }
  }
  return true;
}

bool Program::GlobalInvalidate() {
  IntelIommu* iommu = m_->intel_iommu();
  if (!iommu->qi_enabled()) {
    WriteReg(Offset(Reg64::kIotlb), kIotlbIvt | 1ull << kIotlbIirgShift, 8);
    const uint64_t r = ReadReg(Offset(Reg64::kIotlb), 8);
    return !(r & kIotlbIvt) && (r & kIotlbIaigMask) == 1ull << kIotlbIaigShift;
  }
  return SubmitDescriptor(2 | 1u << 4, 0);  // global IOTLB
}

bool Program::QueueIdleInRam() {
  IntelIommu* iommu = m_->intel_iommu();
  const uint64_t desc_size = iommu->queue_dw() ? 32 : 16;
  return iommu->qi_enabled() && iommu->queue_size() != 0 &&
         iommu->queue_head() == iommu->queue_tail() &&
         iommu->queue_base() + uint64_t{iommu->queue_tail() + 1} * desc_size <=
             m_->ram_size();
}

bool Program::SubmitDescriptor(uint64_t lo, uint64_t hi) {
  const uint64_t d[4] = {lo, hi, 0, 0};
  return SubmitDescriptor(d);
}

bool Program::SubmitDescriptor(const uint64_t (&d)[4]) {
  // Clear a queue error, then one descriptor at the tail, if the queue
  // has nothing else pending.
  IntelIommu* iommu = m_->intel_iommu();
  if (!iommu->qi_enabled()) return false;
  WriteReg(Offset(Reg32::kFsts), kFstsIqe, 4);
  const uint32_t head = iommu->queue_head();
  const uint32_t tail = iommu->queue_tail();
  if (head != tail || iommu->queue_size() == 0) return false;
  // IQA.DW: 32-byte descriptors, IQT counts them from bit 5.
  const bool dw = iommu->queue_dw();
  const int words = dw ? 4 : 2;
  const uint64_t desc = iommu->queue_base() + uint64_t{tail} * 8 * words;
  for (int w = 0; w < words; ++w) {
    if (!m_->system_as().Write(desc + 8 * w, &d[w], 8).ok()) return false;
  }
  const uint32_t next = (tail + 1) % iommu->queue_size();
  WriteReg(Offset(Reg64::kIqt), uint64_t{next} << (kIqtQtShift + (dw ? 1 : 0)),
           8);
  return iommu->queue_head() == next &&
         !(ReadReg(Offset(Reg32::kFsts), 4) & kFstsIqe);
}

}  // namespace viommu::vtd::fuzz
