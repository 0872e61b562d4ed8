// libFuzzer target: the input is a program of guest actions against a
// q35 machine with intel-iommu, edu (04.0) and dma-testdev (05.0): table
// writes into a small guest region, VT-d register accesses, device DMA,
// clock steps, MAP/UNMAP notifiers, system reset, and interrupt
// remapping: IRTEs, IRTA, GCMD SIRTP/IRE/CFI, IEC invalidations, and
// interrupt requests from edu's MSI, dma-testdev's DMA and raw writes of
// either device into the interrupt window.
//
// One machine per intel-iommu configuration is kept for the process and
// fully reset between inputs (machine_reuse.h: system_reset, RAM, clock);
// the replay test proves an input's trace (register reads, notifier
// mappings, registers, config spaces and RAM at the end) is the same on a
// fresh machine and after every other corpus input (fuzz_trace.h).
//
// Byte 0 picks the intel-iommu properties (bit 0 caching-mode, bit 1
// aw-bits=48, bits 2+3 both set: dma-translation=off, bit 4 pt=off, bit 5
// device-iotlb). Then each action is an opcode byte and its operands;
// missing bytes read as zero, at most kMaxActions run.
//
// Guest RAM layout the structured actions aim at (kRegion, 16 pages):
//   page 0 root table, page 1 context table (bus 0), pages 2..11 page
//   tables, page 12 invalidation queue, page 13 wait status, 14..15 data;
//   then the interrupt-remapping table (kIrTable, IRTEs at index * 16).
// Table writes go to slots 0..7 of a page (IOVAs are built from indexes
// 0..7 per level, so walks and DMA meet the entries written), raw writes
// anywhere in the region. Entry values mostly point back into the region.
//
// Checked (abort(), so libFuzzer reports the input): no crash, no
// sanitizer report, bounded work; every notifier sees a consistent event
// stream (MAP on free bytes, UNMAP exactly as mapped); and with
// caching-mode, after a global IOTLB invalidation issued at the end, each
// recorder agrees with a fresh walk of its device's tables
// (vtd_shadow_checker.h for the exact rule and its edge cases). Every
// action that makes interrupt requests is predicted by a reference decode
// written from the VT-d spec (vtd_ir_oracle.h: delivered as which message,
// or blocked with which fault record, allowing for the interrupt-entry
// cache) and the MSI window's record, the fault registers and the
// remapper's request count must match; after every GCMD write the unit's
// latched IRTA / IRES / CFIS must be what the guest programmed. With
// device-iotlb, both devices carry a DEVIOTLB_UNMAP notifier (refused
// without it) whose events must be well-formed, and a device-IOTLB
// descriptor submitted alone (queue opcode, device-IOTLB kind, bit 7) must
// produce exactly the event vtd_dev_iotlb_oracle.h decodes, on the SID's
// device only, or fail with IQE when 7.2's reserved bits are set.
//
// Opcodes (op % 16): 0-2 table writes, 3 raw RAM write, 4 queue
// descriptor, 5-8 register write, 9 register read, 10-11 dma-testdev DMA,
// 12 edu DMA, 13 clock step, 14 notifier (un)registration, 15 by op >> 4:
// 0, 1, 13 IRTE write; 2 IRTA; 3 GCMD SIRTP/IRE/CFI/QIE; 4, 5 IEC
// descriptor; 6-8 dma-testdev interrupt DMA; 9, 10 edu MSI; 11, 14 raw
// device write into the window; 12 IR driver setup; 15 system reset.
// (Before interrupt remapping was fuzzed, 0x0f..0xef were no-ops.)
#include <algorithm>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/fuzz/fuzz_trace.h"
#include "tests/fuzz/machine_reuse.h"
#include "tests/fuzz/vtd_dev_iotlb_oracle.h"
#include "tests/fuzz/vtd_ir_oracle.h"
#include "tests/fuzz/vtd_shadow_checker.h"
#include "viommu/hw/i386/q35_machine.h"
#include "viommu/hw/iommu/vtd_context.h"
#include "viommu/hw/iommu/vtd_regs.h"
#include "viommu/hw/pci/pci_regs.h"

namespace viommu::vtd::fuzz {
namespace {

constexpr uint64_t kRegion = 0x10'0000;
constexpr uint64_t kPage = 0x1000;
constexpr uint64_t kRoot = kRegion;
constexpr uint64_t kContext = kRegion + kPage;
constexpr uint64_t kTables = kRegion + 2 * kPage;
constexpr int kNumTables = 10;
constexpr uint64_t kQueue = kRegion + 12 * kPage;
constexpr uint64_t kStatus = kRegion + 13 * kPage;
constexpr uint64_t kData = kRegion + 14 * kPage;
constexpr int kRegionPages = 16;
constexpr uint64_t kIrTable = kRegion + kRegionPages * kPage;  // 1 MiB
constexpr int kMaxActions = 192;

constexpr uint8_t kEduDevfn = 0x20;
constexpr uint8_t kTestdevDevfn = 0x28;
constexpr uint64_t kEduBar = 0xfe00'0000;      // 1 MiB
constexpr uint64_t kTestdevBar = 0xfe10'0000;  // 8 KiB
constexpr uint8_t kDevfns[2] = {kEduDevfn, kTestdevDevfn};

using Input = ::viommu::fuzz::FuzzInput;

class Program {
 public:
  Program(hw::Q35Machine* m, bool caching_mode)
      : m_(m),
        caching_mode_(caching_mode),
        mem_(&m_->system_as()),
        cfg_(TableConfig::FromProperties(m_->intel_iommu()->properties())) {
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

  hw::Q35Machine* m_;  // not owned, outlives this
  const bool caching_mode_;
  AddressSpaceGuestMemory mem_;
  const TableConfig cfg_;
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
};

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
    default: {  // a page-table slot
      const uint8_t where = in.U8();
      const uint64_t table = kTables + (where % kNumTables) * kPage;
      Write64(table + ((where >> 4) & 7) * 8, PickEntry(in));
      return;
    }
  }
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
      if ((g & 0x30) == 0x30) {  // one bit, reserved or not; in the
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
    auto h = as->notifiers()->Register(
        &dev_recorders_[i], {.flags = memory::kNotifyDevIotlbUnmap});
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
  IntelIommu* iommu = m_->intel_iommu();
  // Checked only when the descriptor goes to RAM at an idle queue.
  const bool idle = iommu->qi_enabled() && iommu->queue_size() != 0 &&
                    iommu->queue_head() == iommu->queue_tail() &&
                    iommu->queue_base() + uint64_t{iommu->queue_tail() + 1} *
                            16 <= m_->ram_size();
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
    }
  }
  return true;
}

bool Program::Step(Input& in) {
  const uint64_t requests = IrRequestCount();
  ir_accounted_ = false;
  const bool go_on = StepAction(in);
  // Requests nobody predicted (a DMA that reached the window or a device
  // register) may have filled the interrupt-entry cache.
  if (!ir_accounted_ && IrRequestCount() != requests) ir_.ForgetCache();
  CheckIrUnit(/*tracked=*/false);
  return go_on;
}

bool Program::StepAction(Input& in) {
  const uint8_t op = in.U8();
  switch (op % 16) {
    case 0:
    case 1:
    case 2:
      TableWrite(in);
      return true;
    case 3:
      RawWrite(in);
      return true;
    case 4:
      QueueWrite(in);
      return true;
    case 5:
    case 6:
    case 7:
    case 8:
      // Any register write may sync every notified device.
      if (!SyncBudgetOk()) return false;
      RegWrite(in);
      return true;
    case 9:
      RegRead(in);
      return true;
    case 10:
    case 11:
      TestdevDma(in);
      return true;
    case 12:
      EduDma(in);
      return true;
    case 13:
      m_->clock().Step(int64_t{in.U8()} * 10'000'000);
      return true;
    case 14:
      if (!SyncBudgetOk()) return false;
      RegisterNotifier(in);
      return true;
    default:
      switch (op >> 4) {
        case 0:
        case 1:
        case 13:
          IrteWrite(in);
          return true;
        case 2:
          IrtaWrite(in);
          return true;
        case 3:
          if (!SyncBudgetOk()) return false;
          IrGcmd(in);
          return true;
        case 4:
        case 5:
          if (!SyncBudgetOk()) return false;
          IecSubmit(in);
          return true;
        case 6:
        case 7:
        case 8:
          TestdevIrq(in);
          return true;
        case 9:
        case 10:
          EduMsi(in);
          return true;
        case 11:
        case 14:
          RawWindowWrite(in);
          return true;
        case 12:
          if (!SyncBudgetOk()) return false;
          IrSetup(in);
          return true;
        default:
          Reset();  // rarer than the others
          return true;
      }
  }
}

// --- interrupt remapping ---

uint64_t Program::PickMsi(Input& in, uint32_t* data) {
  const uint8_t f = in.U8();
  if ((f & 0xc0) == 0xc0) {  // compatibility format: address bit 4 clear
    *data = (f & 0x20) ? in.U32() : (in.U8() | 0x4000u);
    return kIrWindowBase | ((uint64_t{in.U16()} << 4) & 0xf'ffe0) | (f & 0xc);
  }
  // Remappable: the index as handle, or split into handle + subhandle.
  const uint32_t index = PickIrIndex(in);
  uint32_t handle = index;
  const bool shv = f & 1;
  if (shv) {
    uint32_t sub = 0;
    switch ((f >> 1) & 3) {
      case 0:
        break;
      case 1:
        sub = index;
        handle = 0;
        break;
      case 2:
        sub = index / 2;
        handle = index - sub;
        break;
      default:  // a sum past 16 bits
        handle = 0xff00u | in.U8();
        sub = in.U16();
        break;
    }
    *data = sub | ((f & 0x08) ? uint32_t{in.U8()} << 16 : 0);  // reserved
  } else {
    *data = in.U8() | ((f & 0x10) ? 0x8000u : 0);  // IOxAPIC form
  }
  return kIrWindowBase | uint64_t{handle & 0x7fff} << 5 | 0x10 |
         (shv ? 0x8 : 0) | uint64_t{(handle >> 15) & 1} << 2;
}

void Program::IrteWrite(Input& in) {
  const uint32_t index = PickIrIndex(in);
  const uint8_t f = in.U8();
  RefIrte e;
  if (f == 0xff) {
    e.lo = in.U64();
    e.hi = in.U64();
  } else {
    static constexpr uint8_t kDlm[8] = {0, 0, 1, 2, 4, 5, 7, 3};
    const uint8_t g = in.U8();
    e.lo = (f & 0x80 ? 0 : 1) | uint64_t{f & 0xfu} << 1 |  // P FPD DM RH TM
           uint64_t{kDlm[(f >> 4) & 7]} << 5 | uint64_t{in.U8()} << 16;
    switch (g & 3) {
      case 0:  // xAPIC destination, bits 47:40
        e.lo |= uint64_t{in.U8()} << 40;
        break;
      case 1:  // a small x2APIC one (reserved bits 39:32 in xAPIC mode)
        e.lo |= uint64_t{in.U8()} << 32;
        break;
      default:
        e.lo |= uint64_t{in.U32()} << 32;
        break;
    }
    const uint8_t s = in.U8();
    uint16_t sid;
    switch (s & 3) {
      case 0:
      case 1:  // one of our devices, maybe off in bits 2:1 (SQ)
        sid = static_cast<uint16_t>(kDevfns[s & 1] ^ ((s >> 6) & 3) << 1);
        break;
      case 2:  // a bus range: start 15:8, end 7:0
        sid = static_cast<uint16_t>(((s >> 2) & 3) << 8 | ((s >> 4) & 3));
        break;
      default:
        sid = in.U16();
        break;
    }
    e.hi = sid | uint64_t{(g >> 2) & 3u} << 16 | uint64_t{(g >> 4) & 3u} << 18;
    if (g & 0x40) {  // one reserved bit
      static constexpr uint8_t kRsvdLo[10] = {12, 13, 14, 15, 24,
                                              31, 32, 39, 48, 63};
      const uint8_t r = in.U8();
      if (r & 0x80) {
        e.hi |= uint64_t{1} << (20 + (r & 0x7f) % 44);
      } else {
        e.lo |= uint64_t{1} << kRsvdLo[r % 10];
      }
    }
    if (g & 0x80) e.lo = (e.lo & ~uint64_t{0xe0}) | 6u << 5;  // DLM 110b
  }
  Write64(kIrTable + uint64_t{index} * 16, e.lo);
  Write64(kIrTable + uint64_t{index} * 16 + 8, e.hi);
}

void Program::IrtaWrite(Input& in) {
  const uint8_t k = in.U8();
  uint64_t v;
  switch (k & 3) {
    case 0:
    case 1:
      v = kIrTable;
      break;
    case 2:  // a page of the region (over the other tables) or the next
      v = kRegion + (in.U8() % (kRegionPages + 2)) * kPage;
      break;
    default:
      v = in.U64() & ~uint64_t{0xfff};
      break;
  }
  v |= (k >> 2) & 15;             // S: 2^(S+1) entries
  if (k & 0x40) v |= 1ull << 11;  // EIME
  if (k & 0x80) {
    WriteReg(Offset(Reg64::kIrta), v & 0xffff'ffff, 4);
    WriteReg(Offset(Reg32::kIrtaHi), v >> 32, 4);
  } else {
    WriteReg(Offset(Reg64::kIrta), v, 8);
  }
}

void Program::IrGcmd(Input& in) {
  const uint8_t c = in.U8();
  uint32_t v = static_cast<uint32_t>(ReadReg(Offset(Reg32::kGsts), 4)) &
               (kGstsTes | kGstsQies | kGstsIres | kGstsCfis);
  if (c & 1) v |= kGcmdSirtp;
  if (c & 2) v ^= kGcmdIre;
  if (c & 4) v ^= kGcmdCfi;
  if (c & 8) v ^= kGcmdQie;
  WriteReg(Offset(Reg32::kGcmd), v, 4);
}

void Program::EnableQi() {
  if (m_->intel_iommu()->qi_enabled()) return;
  WriteReg(Offset(Reg64::kIqa), kQueue, 8);
  const uint32_t keep =
      static_cast<uint32_t>(ReadReg(Offset(Reg32::kGsts), 4)) &
      (kGstsTes | kGstsQies | kGstsIres | kGstsCfis);
  WriteReg(Offset(Reg32::kGcmd), keep | kGcmdQie, 4);
}

void Program::IecSubmit(Input& in) {
  const uint8_t k = in.U8();
  if (k & 0x80) EnableQi();
  const bool global = !(k & 1);
  const uint16_t index = static_cast<uint16_t>(PickIrIndex(in));
  const uint8_t mask = (k & 0x40) ? (k >> 1) & 31 : (k >> 1) & 3;
  // IEC: type 4, G bit 4 (1: index-selective), IM 31:27, IIDX 47:32.
  uint64_t lo =
      4 | (global ? 0 : 1u << 4) | uint64_t{mask} << 27 | uint64_t{index} << 32;
  if ((k & 0xc0) == 0xc0) lo |= uint64_t{in.U8()} << 48;  // bits 63:48
  if (SubmitDescriptor(lo, 0)) ir_.OnIec(global, index, mask);
}

void Program::IrSetup(Input& in) {
  // What a driver does: table, SIRTP, QI, global IEC, IRE (and CFI).
  const uint8_t k = in.U8();
  WriteReg(Offset(Reg64::kIrta),
           kIrTable | (k & 7) | ((k & 8) ? 1ull << 11 : 0), 8);
  auto gsts = [&] {
    return static_cast<uint32_t>(ReadReg(Offset(Reg32::kGsts), 4)) &
           (kGstsTes | kGstsQies | kGstsIres | kGstsCfis);
  };
  WriteReg(Offset(Reg32::kGcmd), gsts() | kGcmdSirtp, 4);
  EnableQi();
  if (SubmitDescriptor(4, 0)) ir_.OnIec(true, 0, 0);
  uint32_t v = gsts() | kGcmdIre;
  v = (k & 0x10) ? v | kGcmdCfi : v & ~kGcmdCfi;
  WriteReg(Offset(Reg32::kGcmd), v, 4);
}

void Program::TestdevIrq(Input& in) {
  EnsurePci();
  const uint8_t k = in.U8();
  uint32_t word[4];
  uint64_t addr = PickMsi(in, &word[0]);
  uint32_t len = 4 * (1 + (k & 3));
  if (k & 4) {  // odd alignment and length
    addr += in.U8() & 3;
    len = 1 + ((k >> 3) & 15);
  }
  if (addr - kIrWindowBase > kIrWindowSize - len) {
    addr = kIrWindowBase + kIrWindowSize - len;
  }
  for (int i = 1; i < 4; ++i) word[i] = (k & 0x80) ? in.U32() : word[0];
  uint8_t bytes[16];
  std::memcpy(bytes, word, sizeof bytes);
  for (int i = 0; i < 4; ++i) Mmio(kTestdevBar + 0x1000 + 4 * i, word[i], 4);
  CheckedInterrupts(SplitWindowWrite(addr, bytes, len, kTestdevDevfn),
                    kTestdevDevfn, [&] {
                      Mmio(kTestdevBar + 0x08, addr, 8);
                      Mmio(kTestdevBar + 0x10, len, 4);
                      Mmio(kTestdevBar + 0x14, 0, 4);
                      Mmio(kTestdevBar + 0x18, 2, 4);  // write
                    });
}

uint8_t Program::EduMsiCap() {
  hw::pci::PciBus& bus = m_->pci_bus();
  uint32_t cap = bus.ConfigRead(kEduDevfn, 0x34, 1);
  for (int n = 0; n < 48 && cap >= 0x40; ++n) {
    if (bus.ConfigRead(kEduDevfn, cap, 1) == 0x05) {
      return static_cast<uint8_t>(cap);
    }
    cap = bus.ConfigRead(kEduDevfn, cap + 1, 1);
  }
  return 0;
}

void Program::EduMsi(Input& in) {
  EnsurePci();
  const uint8_t k = in.U8();
  const uint8_t cap = EduMsiCap();
  if (cap == 0) Fail("edu has no MSI capability", 0, 0);
  hw::pci::PciBus& bus = m_->pci_bus();
  if (!(k & 1)) {  // program address (in the window) and data
    uint32_t data;
    const uint64_t addr = PickMsi(in, &data);
    bus.ConfigWrite(kEduDevfn, cap + 4, static_cast<uint32_t>(addr), 4);
    bus.ConfigWrite(kEduDevfn, cap + 8, 0, 4);
    bus.ConfigWrite(kEduDevfn, cap + 12, data & 0xffff, 2);
  }
  bus.ConfigWrite(kEduDevfn, cap + 2, (k & 2) ? 0 : 1, 2);  // enable
  // What the device will send, as the guest reads it back.
  const bool enabled = bus.ConfigRead(kEduDevfn, cap + 2, 2) & 1;
  const uint64_t addr = bus.ConfigRead(kEduDevfn, cap + 4, 4) |
                        uint64_t{bus.ConfigRead(kEduDevfn, cap + 8, 4)} << 32;
  const uint32_t data = bus.ConfigRead(kEduDevfn, cap + 12, 2);
  auto raise = [&] { Mmio(kEduBar + 0x60, (k >> 2) | 1, 4); };
  if (enabled &&
      (addr < kIrWindowBase || addr - kIrWindowBase > kIrWindowSize - 4)) {
    raise();  // a DMA write elsewhere (after a reset: address 0)
    return;
  }
  std::vector<IrRequest> reqs;
  if (enabled) {
    reqs.push_back({.address = addr, .data = data, .sid = kEduDevfn});
  }
  CheckedInterrupts(reqs, kEduDevfn, raise);
}

void Program::RawWindowWrite(Input& in) {
  EnsurePci();
  const uint8_t k = in.U8();
  const uint8_t devfn = kDevfns[k & 1];
  const bool no_rid = k & 2;
  static constexpr unsigned kSizes[4] = {4, 8, 1, 2};
  const unsigned size = kSizes[(k >> 2) & 3];
  uint32_t data;
  uint64_t addr = PickMsi(in, &data);
  if (k & 0x10) addr += in.U8() & 7;
  if (addr - kIrWindowBase > kIrWindowSize - size) {
    addr = kIrWindowBase + kIrWindowSize - size;
  }
  const uint64_t value = data | (size == 8 ? uint64_t{in.U32()} << 32 : 0);
  uint8_t bytes[8];
  std::memcpy(bytes, &value, sizeof bytes);
  std::optional<uint16_t> sid;
  if (!no_rid) sid = devfn;
  // The device's DMA view (its vIOMMU root), built on first use.
  std::unique_ptr<memory::AddressSpace>& as = dev_as_[k & 1];
  if (as == nullptr) {
    as = std::make_unique<memory::AddressSpace>(
        &m_->memory(), m_->viommu()->DmaRoot(0, devfn),
        m_->viommu()->DmaSpaceName(0, devfn));
  }
  CheckedInterrupts(SplitWindowWrite(addr, bytes, size, sid), sid, [&] {
    (void)as->Write(addr, &value, size,
                    no_rid ? memory::MemTxAttrs::Unspecified()
                           : memory::MemTxAttrs::Requester(devfn));
  });
}

IrTracker::ReadResult Program::ReadIrte(uint64_t gpa, RefIrte* out) {
  memory::Translation t = m_->system_as().Translate(gpa, 16, false);
  if (t.mr == nullptr) return IrTracker::ReadResult::kUnreadable;
  if (t.mr->host() == nullptr || t.len < 16) {
    return IrTracker::ReadResult::kUnknown;  // MMIO, or across regions
  }
  uint64_t raw[2];
  if (!m_->system_as().Read(gpa, raw, sizeof raw).ok()) {
    return IrTracker::ReadResult::kUnknown;
  }
  out->lo = raw[0];
  out->hi = raw[1];
  return IrTracker::ReadResult::kOk;
}

IrObserved Program::ObserveIr(std::optional<uint16_t> src) {
  IrObserved s;
  s.fsts = static_cast<uint32_t>(ReadReg(Offset(Reg32::kFsts), 4));
  s.fectl = static_cast<uint32_t>(ReadReg(Offset(Reg32::kFectl), 4));
  s.frcd_lo = ReadReg(Offset(Reg64::kFrcd0Lo), 8);
  s.frcd_hi = ReadReg(Offset(Reg64::kFrcd0Hi), 8);
  const std::optional<uint16_t> keys[2] = {src, std::nullopt};
  for (int i = 0; i < (src.has_value() ? 2 : 1); ++i) {
    IrObserved::Source& o = s.Of(keys[i]);
    o.count = m_->msi().Count(keys[i]);
    if (std::optional<hw::MsiMessage> last = m_->msi().Last(keys[i])) {
      o.has_last = true;
      o.last_address = last->address;
      o.last_data = last->data;
    }
  }
  return s;
}

void Program::CheckedInterrupts(const std::vector<IrRequest>& reqs,
                                std::optional<uint16_t> src,
                                const std::function<void()>& perform) {
  const IrObserved pre = ObserveIr(src);
  const uint64_t feaddr = ReadReg(Offset(Reg32::kFeaddr), 4);
  const uint32_t fedata =
      static_cast<uint32_t>(ReadReg(Offset(Reg32::kFedata), 4));
  const bool remapping = ir_.enabled();
  std::vector<IrObserved> expect{pre};
  bool known = true;
  for (const IrRequest& r : reqs) {
    std::optional<std::vector<IrOutcome>> outcomes = ir_.Predict(
        r, [this](uint64_t gpa, RefIrte* e) { return ReadIrte(gpa, e); });
    if (!outcomes.has_value()) known = false;
    if (!known) continue;  // still predicted: the cache possibilities
    std::vector<IrObserved> next;
    for (const IrObserved& s : expect) {
      for (const IrOutcome& o : *outcomes) {
        IrObserved t = s;
        ApplyIrOutcome(t, o, r, feaddr, fedata);
        if (std::find(next.begin(), next.end(), t) == next.end()) {
          next.push_back(std::move(t));
        }
      }
    }
    expect = std::move(next);
    if (expect.size() > 16) known = false;
  }
  const uint64_t requests = IrRequestCount();
  perform();
  ir_accounted_ = true;
  const IrObserved post = ObserveIr(src);
  if (viommu::fuzz::Mode().tracing) {
    viommu::fuzz::TraceHash& t = viommu::fuzz::Trace();
    t.Add64(post.fsts);
    t.Add64(post.frcd_lo);
    t.Add64(post.frcd_hi);
    for (const IrObserved::Source& s : post.sources) {
      t.Add64(s.count);
      t.Add64(s.last_address);
      t.Add64(s.last_data);
    }
  }
  // Every 4-byte piece is one request to the remapper while IR is on.
  const uint64_t seen = IrRequestCount() - requests;
  if (remapping && seen != reqs.size()) {
    Fail("interrupt requests seen by the remapper", seen, reqs.size());
  }
  if (!known) return;
  ++ir_checked_;
  const bool match =
      std::find(expect.begin(), expect.end(), post) != expect.end();
  if (match && std::getenv("VTD_FUZZER_VERBOSE") == nullptr) return;
  std::fprintf(stderr, "vtd_fuzzer: %zu request(s):", reqs.size());
  for (const IrRequest& r : reqs) {
    std::fprintf(stderr, " [0x%" PRIx64 " data 0x%x sid %d]", r.address, r.data,
                 r.sid.has_value() ? int{*r.sid} : -1);
  }
  auto print = [](const char* what, const IrObserved& s) {
    std::fprintf(stderr,
                 "\n  %s: fsts 0x%x fectl 0x%x frcd 0x%" PRIx64 " 0x%" PRIx64,
                 what, s.fsts, s.fectl, s.frcd_hi, s.frcd_lo);
    for (const IrObserved::Source& o : s.sources) {
      std::fprintf(stderr,
                   "; rid %d: %" PRIu64 " msgs, last 0x%" PRIx64 " data 0x%x",
                   o.rid.has_value() ? int{*o.rid} : -1, o.count,
                   o.last_address, o.last_data);
    }
  };
  print("before", pre);
  for (const IrObserved& e : expect) print("expected", e);
  print("machine", post);
  std::fprintf(stderr, "\n");
  if (match) return;
  Fail("interrupt outcome differs from the reference", reqs.size(),
       expect.size());
}

void Program::CheckIrUnit(bool tracked) {
  const IntelIommu* u = m_->intel_iommu();
  const char* what = ir_.Mismatch({.ires = u->ir_enabled(),
                                   .cfis = u->cfi_enabled(),
                                   .table = u->ir_table(),
                                   .entries = u->ir_table_size(),
                                   .eime = u->ir_eime()});
  if (what == nullptr) return;
  if (tracked) Fail(what, u->ir_table(), u->ir_table_size());
  ir_.ForgetLatched();
  ir_.ForgetCache();
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

bool Program::SubmitDescriptor(uint64_t lo, uint64_t hi) {
  // Clear a queue error, then one descriptor at the tail, if the queue
  // has nothing else pending.
  IntelIommu* iommu = m_->intel_iommu();
  if (!iommu->qi_enabled()) return false;
  WriteReg(Offset(Reg32::kFsts), kFstsIqe, 4);
  const uint32_t head = iommu->queue_head();
  const uint32_t tail = iommu->queue_tail();
  if (head != tail || iommu->queue_size() == 0) return false;
  const uint64_t desc = iommu->queue_base() + uint64_t{tail} * 16;
  if (!m_->system_as().Write(desc, &lo, 8).ok() ||
      !m_->system_as().Write(desc + 8, &hi, 8).ok()) {
    return false;
  }
  const uint32_t next = (tail + 1) % iommu->queue_size();
  WriteReg(Offset(Reg64::kIqt), uint64_t{next} << kIqtQtShift, 8);
  return iommu->queue_head() == next &&
         !(ReadReg(Offset(Reg32::kFsts), 4) & kFstsIqe);
}

void Program::TraceEndState() {
  viommu::fuzz::TraceHash& t = viommu::fuzz::Trace();
  for (const MappingRecorder& r : recorders_) {
    t.Add64(r.mappings().size());
    for (const auto& [iova, mapping] : r.mappings()) {
      t.Add64(iova);
      t.Add64(mapping.last);
      t.Add64(mapping.gpa);
      t.Add64(mapping.perm);
    }
  }
  for (uint16_t off = 0; off < kRegBlockSize; off += 8)
    t.Add64(ReadReg(off, 8));
  for (uint8_t devfn : kDevfns) {
    for (uint16_t off = 0; off < 256; off += 4) {
      t.Add64(m_->pci_bus().ConfigRead(devfn, off, 4));
    }
  }
  t.Add64(m_->clock().now_ns());
  for (const DevIotlbRecorder& r : dev_recorders_) t.Add64(r.total());
  const std::optional<uint16_t> sources[3] = {kEduDevfn, kTestdevDevfn,
                                              std::nullopt};
  for (const std::optional<uint16_t>& rid : sources) {
    t.Add64(m_->msi().Count(rid));
    if (std::optional<hw::MsiMessage> last = m_->msi().Last(rid)) {
      t.Add64(last->address);
      t.Add64(last->data);
    }
  }
  static uint8_t page[kPage];
  for (uint64_t gpa = 0; gpa < m_->ram_size(); gpa += kPage) {
    (void)m_->system_as().Read(gpa, page, kPage);
    t.Add(page, kPage);
  }
}

void Program::FinalCheck() {
  if (ir_checked_ > 0 && std::getenv("VTD_FUZZER_VERBOSE") != nullptr) {
    std::fprintf(stderr, "vtd_fuzzer: %d interrupt actions checked\n",
                 ir_checked_);
  }
  if (dev_iotlb_checked_ > 0 && std::getenv("VTD_FUZZER_VERBOSE") != nullptr) {
    std::fprintf(stderr, "vtd_fuzzer: %d device-IOTLB submissions checked\n",
                 dev_iotlb_checked_);
  }
  if (!handles_[0].registered() && !handles_[1].registered()) return;
  if (!SyncBudgetOk() || !GlobalInvalidate()) return;
  IntelIommu* iommu = m_->intel_iommu();
  for (int i = 0; i < 2; ++i) {
    if (!handles_[i].registered()) continue;
    const auto& recorded = recorders_[i].mappings();
    if (!iommu->translation_enabled()) {
      if (!recorded.empty()) Fail("mappings with translation off", i, 0);
      continue;
    }
    ContextLookup ctx =
        LookupContext(mem_, cfg_, iommu->root_table(), 0, kDevfns[i]);
    if (!ctx.ok()) {
      // Only a non-present context drops the mappings (QEMU 7.2).
      if (*ctx.fault == FaultReason::kContextEntryP && !recorded.empty()) {
        Fail("mappings with a non-present context", i, recorded.size());
      }
      continue;
    }
    if (ctx.entry.translation_type() == ContextEntry::kTtPassThrough) {
      if (!recorded.empty()) Fail("mappings with pass-through", i, 0);
      continue;
    }
    CheckRecorderMatchesWalk(recorders_[i], mem_, cfg_, ctx.entry);
    if (std::getenv("VTD_FUZZER_VERBOSE") != nullptr) {
      std::fprintf(stderr, "vtd_fuzzer: %02x.%x checked, %zu mappings\n",
                   kDevfns[i] >> 3, kDevfns[i] & 7, recorded.size());
    }
  }
}

}  // namespace
}  // namespace viommu::vtd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using viommu::vtd::fuzz::Input;
  using viommu::vtd::fuzz::kMaxActions;
  using viommu::vtd::fuzz::Program;
  Input in(data, size);
  const uint8_t cfg = in.U8();
  absl::btree_map<std::string, std::string> props;
  props["caching-mode"] = (cfg & 1) ? "on" : "off";
  props["aw-bits"] = (cfg & 2) ? "48" : "39";
  if ((cfg & 0xc) == 0xc) props["dma-translation"] = "off";
  if (cfg & 0x10) props["pt"] = "off";
  if (cfg & 0x20) props["device-iotlb"] = "on";

  // One machine per distinct property set, reset between inputs.
  static absl::flat_hash_map<std::string,
                             std::unique_ptr<viommu::hw::Q35Machine>>
      machines;
  std::string key;
  for (const auto& [k, v] : props) key += k + "=" + v + ",";
  std::unique_ptr<viommu::hw::Q35Machine>& m = machines[key];
  if (m != nullptr && viommu::fuzz::Mode().fresh) m.reset();
  if (m == nullptr) {
    auto created = viommu::hw::Q35Machine::Create({.ram_size = 16 << 20});
    if (!created.ok()) __builtin_trap();
    m = *std::move(created);
    if (!m->AddDevice({.driver = "intel-iommu", .props = props}).ok() ||
        !m->AddDevice({.driver = "edu", .props = {{"addr", "04.0"}}}).ok() ||
        !m->AddDevice({.driver = "dma-testdev", .props = {{"addr", "05.0"}}})
             .ok()) {
      __builtin_trap();
    }
  } else {
    viommu::fuzz::ResetForReuse(*m);
  }
  viommu::fuzz::Trace().Clear();
  Program program(m.get(), (cfg & 1) != 0);
  bool checked = true;
  for (int i = 0; i < kMaxActions && !in.empty(); ++i) {
    if (!program.Step(in)) {  // over the work budget: not checked
      checked = false;
      break;
    }
  }
  if (checked) program.FinalCheck();
  if (viommu::fuzz::Mode().tracing) {
    viommu::fuzz::Trace().Add64(checked);
    program.TraceEndState();
  }
  return 0;
}

VIOMMU_FUZZ_TRACE_HOOKS()
