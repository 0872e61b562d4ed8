// vtd fuzz target: interrupt remapping. IRTE, IRTA, GCMD and IEC
// programming, and the interrupt requests (dma-testdev DMA into the
// window, edu's MSI, raw device writes), each checked against the
// reference decode of vtd_ir_oracle.h.
#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "tests/fuzz/fuzz_trace.h"
#include "tests/fuzz/vtd_fuzz_program.h"

namespace viommu::vtd::fuzz {

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

}  // namespace viommu::vtd::fuzz
