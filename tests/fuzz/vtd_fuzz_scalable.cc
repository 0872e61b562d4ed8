// vtd fuzz target: scalable mode (an x-scalable-mode=on machine only).
// Scalable-mode root entries (both halves), 256-bit context entries,
// PASID directory and PASID table entries, valid and hostile; 256-bit
// invalidation descriptors (context-cache, IOTLB, PASID-IOTLB,
// PASID-cache, wait, device-IOTLB, IEC); a driver's whole setup; and the
// oracle: translations and fault records, and the MAP/UNMAP shadow, equal
// what the reference decode of vtd_sm_oracle.h reads from the tables.
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tests/fuzz/fuzz_trace.h"
#include "tests/fuzz/vtd_fuzz_program.h"
#include "viommu/hw/iommu/vtd_address_space.h"
#include "viommu/memory/iommu.h"

namespace viommu::vtd::fuzz {
namespace {

constexpr uint64_t kTtmScalable = uint64_t{1} << 10;

bool Verbose() {
  static const bool verbose = std::getenv("VTD_FUZZER_VERBOSE") != nullptr;
  return verbose;
}

// IOVAs the structured tables reach: page-table indexes 0..7 at the two
// lowest levels, 0..3 at the third, 0..1 at the fourth.
std::vector<uint64_t> GridIovas() {
  std::vector<uint64_t> v;
  for (uint64_t a = 0; a < 8; ++a) {
    for (uint64_t b = 0; b < 8; b += (a == 0 ? 1 : 7)) {
      v.push_back(a << 12 | b << 21);
    }
  }
  for (uint64_t c = 1; c < 4; ++c) v.push_back(c << 30);
  v.push_back(uint64_t{1} << 39);
  return v;
}

}  // namespace

RefSmConfig Program::SmConfig() {
  // What the guest reads: CAP.SAGAW (12:8), ECAP.PT (6) and ECAP.DT (2).
  const uint64_t cap = ReadReg(Offset(Reg64::kCap), 8);
  const uint64_t ecap = ReadReg(Offset(Reg64::kEcap), 8);
  return {.aw_bits = cfg_.aw_bits,
          .sagaw = static_cast<uint8_t>((cap >> 8) & 0x1f),
          .pt = ((ecap >> 6) & 1) != 0,
          .dt = ((ecap >> 2) & 1) != 0};
}

RefRead Program::SmReader() {
  return [this](uint64_t gpa, void* buf, size_t len) {
    return mem_.Read(gpa, buf, len);
  };
}

bool Program::GlobalContextInvalidate() {
  if (m_->intel_iommu()->qi_enabled()) {
    return SubmitDescriptor(1 | 1u << 4, 0);  // global context cache
  }
  WriteReg(Offset(Reg64::kCcmd), kCcmdIcc | uint64_t{1} << kCcmdCirgShift, 8);
  const uint64_t r = ReadReg(Offset(Reg64::kCcmd), 8);
  return !(r & kCcmdIcc) && (r & kCcmdCaigMask) == uint64_t{1}
                                                       << kCcmdCaigShift;
}

bool Program::SmTableWrite(Input& in) {
  const uint8_t kind = in.U8();
  switch (kind & 7) {
    case 0: {  // root entry of bus 0 (mostly): both halves at kContext
      const uint8_t bus = (kind & 0x80) ? in.U8() : 0;
      const uint8_t f = in.U8();
      uint64_t half[2] = {kContext | 1, kContext | 1};
      if (f & 1) half[0] &= ~uint64_t{1};  // lower half not present
      if (f & 2) half[1] = 0;              // upper half absent
      if (f & 4) half[(f >> 3) & 1] |= uint64_t{1} << (1 + in.U8() % 11);
      if ((f & 0x30) == 0x30) {  // a bit at or above HAW
        half[(f >> 6) & 1] |= uint64_t{1} << (cfg_.aw_bits + (f >> 7));
      }
      if (kind & 0x40) half[0] = in.U64();
      if (kind & 0x20) half[1] = in.U64();
      Write64(kRoot + bus * 16, half[0]);
      Write64(kRoot + bus * 16 + 8, half[1]);
      return true;
    }
    case 1:
    case 2: {  // context entry (32 bytes) of one of our devices (mostly)
      const uint8_t sel = in.U8();
      const uint8_t devfn = (sel & 0x80) ? in.U8() : kDevfns[sel & 1];
      const uint8_t f = in.U8();
      uint64_t v[4] = {kSmPasidDir, 0, 0, 0};
      if (!(f & 0x10)) v[0] |= 1;              // P
      if (f & 0x08) v[0] |= 2;                 // FPD
      v[0] |= uint64_t{(sel >> 1) & 7u} << 2;  // DTE, PASIDE, PRE
      v[0] |= uint64_t{(f >> 5) & 7u} << 9;    // PDTS
      switch (f & 3) {                         // RID_PASID
        case 0:
          break;
        case 1:
          v[1] = in.U8() & 3;
          break;
        case 2:
          v[1] = in.U8();  // directory entries 0..3
          break;
        default:
          v[1] = in.U32() & 0xfffff;
          break;
      }
      if (f & 4) v[1] |= uint64_t{1} << 20;  // RID_PRIV
      if (sel & 0x10) {  // one bit anywhere (reserved or not)
        const uint8_t b = in.U8();
        v[b >> 6] ^= uint64_t{1} << (b & 63);
      }
      if (sel & 0x20) {  // the directory on another page of the region
        v[0] = (v[0] & 0xfff) | (kRegion + (in.U8() % 0x30) * kPage);
      }
      if (sel & 0x40) v[in.U8() & 3] = in.U64();
      const uint64_t at = kContext + uint64_t{devfn & 0x7fu} * 32;
      for (int w = 0; w < 4; ++w) Write64(at + 8 * w, v[w]);
      return true;
    }
    case 3: {  // PASID directory entry
      const uint8_t s = in.U8();
      const uint32_t idx = (s & 0x80) ? in.U16() & 0x3fff : s & 3;
      uint64_t v = kSmPasidTables + ((s >> 2) & 1) * kPage;
      if (!(s & 0x08)) v |= 1;
      if (s & 0x10) v |= 2;
      if (s & 0x20) v = (kTables + (s % kNumTables) * kPage) | 1;
      if (s & 0x40) v = in.U64();
      Write64(kSmPasidDir + uint64_t{idx} * 8, v);
      return true;
    }
    case 4:
    case 5: {  // PASID table entry (64 bytes)
      const uint8_t s = in.U8();
      const uint64_t table = kSmPasidTables + (s & 1) * kPage;
      const uint32_t idx = (s & 0x80) ? in.U8() & 63 : (s >> 1) & 3;
      const uint8_t f = in.U8();
      static constexpr uint8_t kPgtt[8] = {2, 2, 2, 4, 1, 3, 0, 5};
      const uint8_t pgtt = (f & 7) == 7 ? in.U8() & 7 : kPgtt[f & 7];
      uint64_t aw;
      switch ((f >> 3) & 3) {
        case 0:
          aw = 1;  // 3 levels, 39 bits
          break;
        case 1:
          aw = cfg_.aw_bits == 48 ? 2 : 1;
          break;
        case 2:
          aw = 2;  // 4 levels: beyond SAGAW with aw-bits=39
          break;
        default:
          aw = in.U8() & 7;
          break;
      }
      uint64_t v[8] = {};
      v[0] = (kTables + (in.U8() % kNumTables) * kPage) | aw << 2 |
             uint64_t{pgtt} << 6;
      if (!(f & 0x20)) v[0] |= 1;        // P
      if (f & 0x40) v[0] |= 2;           // FPD
      v[1] = (f & 0x80) ? in.U16() : 1;  // DID
      if (s & 0x40) {                    // one bit anywhere
        const uint8_t b = in.U8();
        v[b & 7] ^= uint64_t{1} << (in.U8() & 63);
      }
      if ((s & 0x60) == 0x60) v[0] = in.U64();
      const uint64_t at = table + uint64_t{idx} * 64;
      for (int w = 0; w < 8; ++w) Write64(at + 8 * w, v[w]);
      return true;
    }
    case 6:
      return SmTranslateCheck(in);
    default:
      if (!SyncBudgetOk()) return false;
      SmSetup(in);
      return true;
  }
}

void Program::SmSetup(Input& in) {
  // What a driver does: tables for both devices (RID_PASID 0, or 1 for
  // dma-testdev), SRTP with TTM = 01, QI (256-bit when asked), TE, and
  // global context-cache and IOTLB invalidations.
  const uint8_t k = in.U8();
  Write64(kRoot, kContext | 1);
  Write64(kRoot + 8, kContext | 1);
  Write64(kSmPasidDir, kSmPasidTables | 1);
  const uint64_t aw = (cfg_.aw_bits == 48 && (k & 0x80)) ? 2 : 1;
  for (int i = 0; i < 2; ++i) {
    const uint64_t pasid = (i == 1 && (k & 0x40)) ? 1 : 0;
    const uint64_t ce = kContext + uint64_t{kDevfns[i]} * 32;
    Write64(ce, kSmPasidDir | 1);
    Write64(ce + 8, pasid);
    Write64(ce + 16, 0);
    Write64(ce + 24, 0);
    const uint64_t pe = kSmPasidTables + pasid * 64;
    const uint64_t pgtt = (k & 0x10) && i == 0 ? 4 : 2;
    Write64(pe,
            (kTables + ((k + pasid) & 7) * kPage) | aw << 2 | pgtt << 6 | 1);
    Write64(pe + 8, 1 + pasid);  // DID
    for (int w = 2; w < 8; ++w) Write64(pe + 8 * w, 0);
  }
  auto gsts = [&] {
    return static_cast<uint32_t>(ReadReg(Offset(Reg32::kGsts), 4)) &
           (kGstsTes | kGstsQies | kGstsIres | kGstsCfis);
  };
  WriteReg(Offset(Reg64::kRtaddr), kRoot | kTtmScalable, 8);
  WriteReg(Offset(Reg32::kGcmd), gsts() | kGcmdSrtp, 4);
  if ((k & 0x20) && !m_->intel_iommu()->qi_enabled()) {
    WriteReg(Offset(Reg64::kIqa), kQueue | ((k & 8) ? 1u << 11 : 0), 8);
    WriteReg(Offset(Reg32::kGcmd), gsts() | kGcmdQie, 4);
  }
  WriteReg(Offset(Reg32::kGcmd), gsts() | kGcmdTe, 4);
  (void)GlobalContextInvalidate();
  (void)GlobalInvalidate();
}

void Program::SmQueueWrite(Input& in) {
  // A 256-bit descriptor at slot 0..7 of the queue page, or submitted
  // alone at the tail (bit 7) and checked: PASID-IOTLB and PASID-cache
  // descriptors run without IQE and notify nothing (QEMU 7.2 accepts and
  // ignores them).
  const uint8_t k = in.U8();
  const uint8_t g = in.U8();
  uint64_t d[4] = {0, 0, 0, 0};
  const uint64_t did = uint64_t{(g >> 2) & 3u} << 16;
  const auto pick_pasid = [&]() -> uint64_t {
    return (g & 0x80) ? in.U32() & 0xfffff : g >> 6 & 1;
  };
  const uint8_t type = (k >> 3) & 7;
  switch (type) {
    case 0:  // context cache: G 5:4, DID, SID 47:32, FM 49:48
      d[0] = 1 | uint64_t{g & 3u} << 4 | did |
             uint64_t{kDevfns[(g >> 4) & 1]} << 32;
      break;
    case 1:  // IOTLB: G, DID; ADDR, IH, AM
      d[0] = 2 | uint64_t{g & 3u} << 4 | did;
      d[1] = (PickIova(in) & ~uint64_t{0xfff}) | (g >> 4 & 3);
      break;
    case 2:  // PASID-IOTLB: G 5:4, DID, PASID 51:32; ADDR, IH, AM
      d[0] = 6 | uint64_t{g & 3u} << 4 | did | pick_pasid() << 32;
      d[1] = (PickIova(in) & ~uint64_t{0xfff}) | (g >> 4 & 3);
      break;
    case 3:  // PASID cache: G 5:4, DID, PASID 51:32
      d[0] = 7 | uint64_t{g & 3u} << 4 | did | pick_pasid() << 32;
      break;
    case 4:  // wait: IF, SW, FN, data; status address
      d[0] = 5 | uint64_t{g & 7u} << 4 | uint64_t{in.U8()} << 32;
      d[1] = kStatus + (g >> 3) * 8;
      break;
    case 5:  // device IOTLB
      d[0] = 3 | uint64_t{kDevfns[g & 1]} << 32;
      d[1] = PickIova(in) & ~uint64_t{0xfff};
      break;
    case 6:  // IEC, global
      d[0] = 4;
      break;
    default:
      d[0] = in.U64();
      d[1] = in.U64();
      break;
  }
  if (g & 0x20) {  // the upper half, which no 7.2 descriptor reads
    d[2] = in.U64();
    d[3] = in.U64();
  }
  if (!(k & 0x80)) {
    const uint64_t slot = kQueue + (k & 7) * 32;
    for (int w = 0; w < 4; ++w) Write64(slot + 8 * w, d[w]);
    return;
  }
  const bool pasid_desc = type == 2 || type == 3;
  const bool idle = QueueIdleInRam() && m_->intel_iommu()->queue_dw();
  const uint64_t events[2] = {recorders_[0].events(), recorders_[1].events()};
  const bool ran = SubmitDescriptor(d);
  if (type == 6 && ran) ir_.OnIec(true, 0, 0);
  if (!idle || !pasid_desc) return;
  if (!ran) Fail("PASID-based descriptor refused", d[0], d[1]);
  for (int i = 0; i < 2; ++i) {
    if (recorders_[i].events() != events[i]) {
      Fail("PASID-based descriptor notified", d[0], i);
    }
  }
}

bool Program::SmTranslateCheck(Input& in) {
  const uint8_t k = in.U8();
  const uint64_t iova = PickIova(in);
  if (!SyncBudgetOk()) return false;
  // The caches must not keep what the tables no longer say (QEMU 7.2
  // checks less of a cached context entry's PASID entry).
  if (!GlobalContextInvalidate() || !GlobalInvalidate()) return true;
  sm_iotlb_.clear();
  CheckSmTranslation(k & 1, iova, (k & 2) != 0);
  return true;
}

void Program::CheckSmTranslation(int i, uint64_t iova, bool write) {
  IntelIommu* u = m_->intel_iommu();
  if (!u->translation_enabled() || !u->root_scalable()) return;
  VtdAddressSpace* as = m_->vtd_engine()->FindAddressSpace(0, kDevfns[i]);
  if (as == nullptr) Fail("no VT-d address space", kDevfns[i], 0);
  const RefRead read = SmReader();
  const RefSmConfig c = SmConfig();
  const RefSm d = RefSmDecode(read, c, u->root_table(), 0, kDevfns[i]);
  bool pt = false;
  RefSl t;
  if (d.fault != 0) {
    t.fault = d.fault;
  } else if (d.pgtt == kRefPgttPt) {
    pt = true;
  } else {
    t = RefSlTranslate(read, c, d, iova, write);
  }
  // Clear the fault record and overflow so that a fault is recorded.
  WriteReg(Offset(Reg32::kFrcd0Dw3), 1u << 31, 4);
  WriteReg(Offset(Reg32::kFsts), kFstsPfo, 4);
  const memory::IommuPerm access =
      write ? memory::kIommuWrite : memory::kIommuRead;
  const memory::IommuTlbEntry e =
      as->iommu_region()->iommu_model()->Translate(iova, access, 0);
  const uint64_t fr_lo = ReadReg(Offset(Reg64::kFrcd0Lo), 8);
  const uint64_t fr_hi = ReadReg(Offset(Reg64::kFrcd0Hi), 8);
  const bool recorded = (fr_hi & kFrcdF) != 0;
  const auto reason = static_cast<uint8_t>(fr_hi >> kFrcdFrShift);
  ++sm_checked_;
  if (Verbose()) {
    std::fprintf(stderr,
                 "vtd_fuzzer: sm %02x.%x iova 0x%" PRIx64
                 " %s: ref fault 0x%x"
                 " gpa 0x%" PRIx64 " perm %u pt %d; model 0x%" PRIx64
                 " mask 0x%" PRIx64 " perm %d, frcd 0x%" PRIx64 "\n",
                 kDevfns[i] >> 3, kDevfns[i] & 7, iova, write ? "W" : "R",
                 t.fault, t.gpa, t.perm, pt, e.translated_addr, e.addr_mask,
                 static_cast<int>(e.perm), fr_hi);
  }
  if (t.fault == kRefFaultWrite || t.fault == kRefFaultRead) {
    // An IOTLB hit: the cached entry, short of the permission, no fault.
    for (const SmCached& hit : sm_iotlb_) {
      if (hit.dev == i && iova - hit.iova <= hit.mask && !recorded &&
          e.iova == hit.iova && e.addr_mask == hit.mask &&
          e.translated_addr == hit.gpa && !(e.perm & access)) {
        return;
      }
    }
  }
  if (t.fault != 0) {
    if (e.perm & access)
      Fail("SM: translated where the tables fault", iova, t.fault);
    if (!recorded) {
      if (!d.fpd) Fail("SM: fault not recorded", iova, t.fault);
      return;
    }
    if (reason != t.fault) Fail("SM: fault reason differs", reason, t.fault);
    if ((fr_hi & kFrcdSidMask) != kDevfns[i]) Fail("SM: fault SID", fr_hi, i);
    if ((fr_lo & ~uint64_t{0xfff}) != (iova & ~uint64_t{0xfff})) {
      Fail("SM: fault address", fr_lo, iova);
    }
    if (((fr_hi & kFrcdT) != 0) == write) Fail("SM: fault T bit", fr_hi, write);
    if (d.fault == 0) {  // a page-walk fault names RID_PASID
      if (!(fr_hi & kFrcdPp) ||
          ((fr_hi >> kFrcdPvShift) & 0xffff) != (d.rid_pasid & 0xffff)) {
        Fail("SM: walk fault without RID_PASID", fr_hi, d.rid_pasid);
      }
    }
    return;
  }
  if (recorded) Fail("SM: fault recorded for a translation", fr_hi, iova);
  if (pt) {
    if (e.translated_addr != (iova & ~uint64_t{0xfff}) ||
        (e.perm & access) == 0) {
      Fail("SM: pass-through is not identity", iova, e.translated_addr);
    }
    return;
  }
  if ((e.perm & access) == 0 || (e.perm & ~t.perm) != 0 || e.iova != t.iova ||
      e.addr_mask != t.size - 1 || e.translated_addr != t.gpa) {
    Fail("SM: translation differs from the tables", iova, e.translated_addr);
  }
  sm_iotlb_.push_back({i, e.iova, e.addr_mask, e.translated_addr});
}

void Program::SmFinalCheck() {
  IntelIommu* u = m_->intel_iommu();
  if (!SyncBudgetOk() || !GlobalInvalidate()) return;
  const bool scalable = u->translation_enabled() && u->root_scalable();
  const RefRead read = SmReader();
  const RefSmConfig c = SmConfig();
  const std::vector<uint64_t> grid = GridIovas();
  for (int i = 0; i < 2; ++i) {
    const auto& recorded = recorders_[i].mappings();
    if (handles_[i].registered() && !u->translation_enabled() &&
        !recorded.empty()) {
      Fail("mappings with translation off", i, 0);
    }
    if (!scalable) continue;  // legacy tables: FinalCheck's own business
    const RefSm d = RefSmDecode(read, c, u->root_table(), 0, kDevfns[i]);
    if (handles_[i].registered()) {
      if (d.fault != 0) {
        // Only a non-present context drops the mappings (QEMU 7.2).
        if (d.fault == kRefFaultContextEntryP && !recorded.empty()) {
          Fail("SM: mappings with a non-present context", i, recorded.size());
        }
      } else if (d.pgtt == kRefPgttPt) {
        if (!recorded.empty()) Fail("SM: mappings with pass-through", i, 0);
      } else {
        // Each recorded mapping is a leaf of the tables now, unless the
        // walk cannot see its slot (left alone by design).
        for (const auto& [iova, mp] : recorded) {
          const RefSl w = RefSlWalk(read, c, d, iova);
          if (w.skipped) continue;
          if (!w.mapped)
            Fail("SM: recorded mapping not in the tables", iova, i);
          if (w.iova != iova || w.iova + (w.size - 1) != mp.last ||
              w.gpa != mp.gpa || w.perm != mp.perm) {
            Fail("SM: recorded mapping differs from the tables", iova, w.gpa);
          }
        }
        // Every leaf the grid reaches was notified.
        for (uint64_t iova : grid) {
          const RefSl w = RefSlWalk(read, c, d, iova);
          if (!w.mapped) continue;
          auto it = recorded.find(w.iova);
          if (it == recorded.end() ||
              it->second.last != w.iova + (w.size - 1)) {
            Fail("SM: mapped leaf never notified", w.iova, w.gpa);
          }
        }
        if (Verbose()) {
          std::fprintf(stderr, "vtd_fuzzer: sm %02x.%x shadow, %zu mappings\n",
                       kDevfns[i] >> 3, kDevfns[i] & 7, recorded.size());
        }
      }
    }
    // The DMA checks below read the tables fresh (see SmTranslateCheck).
    if (!GlobalContextInvalidate()) return;
    if (i == 0) sm_iotlb_.clear();  // (the final IOTLB flush above)
    for (size_t n = 0; n < grid.size(); n += 3) {
      CheckSmTranslation(i, grid[n] | (n & 0xff8), (n & 4) != 0);
    }
    int budget = 16;
    for (const auto& [iova, mp] : recorded) {
      if (budget-- == 0) break;
      CheckSmTranslation(i, iova, (mp.perm & memory::kIommuWrite) != 0);
    }
  }
}

}  // namespace viommu::vtd::fuzz
