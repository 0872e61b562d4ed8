// libFuzzer target: the input is a program of guest actions against a
// q35 machine with intel-iommu, edu (04.0) and dma-testdev (05.0): table
// writes into a small guest region, VT-d register accesses, device DMA,
// clock steps, MAP/UNMAP notifiers and system reset.
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
//   tables, page 12 invalidation queue, page 13 wait status, 14..15 data.
// Table writes go to slots 0..7 of a page (IOVAs are built from indexes
// 0..7 per level, so walks and DMA meet the entries written), raw writes
// anywhere in the region. Entry values mostly point back into the region.
//
// Checked (abort(), so libFuzzer reports the input): no crash, no
// sanitizer report, bounded work; every notifier sees a consistent event
// stream (MAP on free bytes, UNMAP exactly as mapped); and with
// caching-mode, after a global IOTLB invalidation issued at the end, each
// recorder agrees with a fresh walk of its device's tables
// (vtd_shadow_checker.h for the exact rule and its edge cases).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "tests/fuzz/fuzz_trace.h"
#include "tests/fuzz/machine_reuse.h"
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
constexpr int kMaxActions = 192;

constexpr uint8_t kEduDevfn = 0x20;
constexpr uint8_t kTestdevDevfn = 0x28;
constexpr uint64_t kEduBar = 0xfe00'0000;      // 1 MiB
constexpr uint64_t kTestdevBar = 0xfe10'0000;  // 8 KiB
constexpr uint8_t kDevfns[2] = {kEduDevfn, kTestdevDevfn};

class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  bool empty() const { return n_ == 0; }
  uint8_t U8() {
    if (n_ == 0) return 0;
    --n_;
    return *p_++;
  }
  uint16_t U16() { return static_cast<uint16_t>(U8() | U8() << 8); }
  uint32_t U32() { return U16() | uint32_t{U16()} << 16; }
  uint64_t U64() { return U32() | uint64_t{U32()} << 32; }

 private:
  const uint8_t* p_;
  size_t n_;
};

class Program {
 public:
  Program(hw::Q35Machine* m, bool caching_mode)
      : m_(m),
        caching_mode_(caching_mode),
        mem_(&m_->system_as()),
        cfg_(TableConfig::FromProperties(m_->intel_iommu()->properties())) {}
  ~Program() {
    for (auto& h : handles_) h.Reset();  // before the machine goes
  }

  // False when the program must stop (work budget exceeded).
  bool Step(Input& in);
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
  void WriteReg(uint16_t off, uint64_t v, unsigned size) {
    (void)m_->system_as().Write(hw::kVtdRegBase + off, &v, size);
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

  void TableWrite(Input& in);
  void RawWrite(Input& in);
  void QueueWrite(Input& in);
  void RegWrite(Input& in);
  void RegRead(Input& in);
  void TestdevDma(Input& in);
  void EduDma(Input& in);
  void RegisterNotifier(Input& in);
  void Reset();
  void SetupPci();
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
    case 3:  // device IOTLB
      lo = 3 | uint64_t{kDevfns[g & 1]} << 32;
      hi = PickIova(in) & ~uint64_t{0xfff};
      break;
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

void Program::Reset() {
  m_->Reset();
  pci_ready_ = false;
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
      if ((op & 0xf0) == 0xf0) Reset();  // rarer than the others
      return true;
  }
}

bool Program::GlobalInvalidate() {
  IntelIommu* iommu = m_->intel_iommu();
  if (!iommu->qi_enabled()) {
    WriteReg(Offset(Reg64::kIotlb), kIotlbIvt | 1ull << kIotlbIirgShift, 8);
    const uint64_t r = ReadReg(Offset(Reg64::kIotlb), 8);
    return !(r & kIotlbIvt) && (r & kIotlbIaigMask) == 1ull << kIotlbIaigShift;
  }
  // Queued: clear a queue error, then one global IOTLB descriptor at the
  // tail, if the queue has nothing else pending.
  WriteReg(Offset(Reg32::kFsts), kFstsIqe, 4);
  const uint32_t head = iommu->queue_head();
  const uint32_t tail = iommu->queue_tail();
  if (head != tail || iommu->queue_size() == 0) return false;
  const uint64_t desc = iommu->queue_base() + uint64_t{tail} * 16;
  const uint64_t lo = 2 | 1u << 4, hi = 0;
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
  static uint8_t page[kPage];
  for (uint64_t gpa = 0; gpa < m_->ram_size(); gpa += kPage) {
    (void)m_->system_as().Read(gpa, page, kPage);
    t.Add(page, kPage);
  }
}

void Program::FinalCheck() {
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
