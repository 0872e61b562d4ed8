// tests/fuzz/vtd_ir_oracle.h — the VT-d fuzzer's interrupt-remapping
// oracle (vtd_fuzzer.cc): a reference decode of interrupt requests written
// from the VT-d specification (§5.1 interrupt remapping, §9.10 the IRTE,
// §10.4 GCMD/IRTA, §6.5.2.7 IEC invalidation), deliberately not calling
// the model's vtd_irte.h, plus what the guest programmed (IRTA latched by
// SIRTP, IRE, CFI) and what the interrupt-entry cache may hold.
//
//   IrTracker ir;                         // per input (reset: OnReset)
//   ir.OnGcmd(gcmd, irta_register, aw);   // after every guest GCMD write
//   ir.OnIec(global, index, mask);        // an IEC descriptor that ran
//   IrPrediction p = ir.Predict(req, read_irte);   // one 4-byte request
//   for (const IrOutcome& o : *p) ApplyOutcome(state, o, req);
//
// Cache rule (what makes a prediction a set): an IRTE the model read while
// remapping may be kept and used instead of guest memory until an IEC
// invalidation covering it, SIRTP or reset. So each index keeps the IRTEs
// that were present and valid in memory when a request reached it since
// its last invalidation, and an outcome from memory or from any of them is
// accepted. Anything the tracker could not follow (an untracked register
// write, a request it could not predict, an IRTE outside RAM) makes the
// cache "unknown" until the next global invalidation, and predictions that
// depend on it are skipped, never guessed.
//
// Threading: single-threaded (the fuzz driver's thread).
#ifndef VIOMMU_TESTS_FUZZ_VTD_IR_ORACLE_H_
#define VIOMMU_TESTS_FUZZ_VTD_IR_ORACLE_H_

#include <algorithm>
#include <bit>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace viommu::vtd::fuzz {

// The interrupt address range (spec §3.14 / §5.1: 0xFEEx_xxxx).
inline constexpr uint64_t kIrWindowBase = 0xfee0'0000;
inline constexpr uint64_t kIrWindowSize = 0x10'0000;

// Fault reasons of interrupt remapping (spec Appendix A).
inline constexpr uint8_t kIrFaultRequestReserved = 0x20;
inline constexpr uint8_t kIrFaultIndexOver = 0x21;
inline constexpr uint8_t kIrFaultNotPresent = 0x22;
inline constexpr uint8_t kIrFaultUnreadable = 0x23;
inline constexpr uint8_t kIrFaultIrteReserved = 0x24;
inline constexpr uint8_t kIrFaultCompat = 0x25;
inline constexpr uint8_t kIrFaultSid = 0x26;

// One interrupt request: a 4-byte write into the window.
struct IrRequest {
  uint64_t address = 0;
  uint32_t data = 0;
  std::optional<uint16_t> sid;  // nullopt: the write had no requester id
};

// What the reference says a request becomes.
struct IrOutcome {
  bool delivered = false;
  uint64_t address = 0;  // delivered: the message
  uint32_t data = 0;
  uint8_t reason = 0;  // blocked: fault reason, interrupt index, and
  uint16_t index = 0;  // whether a fault record is attempted (FPD)
  bool recorded = false;
  friend bool operator==(const IrOutcome&, const IrOutcome&) = default;
};

// An IRTE as two quadwords (bits 63:0, 127:64).
struct RefIrte {
  uint64_t lo = 0;
  uint64_t hi = 0;
  friend bool operator==(const RefIrte&, const RefIrte&) = default;
};

// §9.10, remapped format without posted interrupts: P 0, FPD 1, DM 2,
// RH 3, TM 4, DLM 7:5, AVL 11:8, reserved 14:12, IM 15 (posted: not
// supported, so reserved), vector 23:16, reserved 31:24, destination
// 63:32 (xAPIC: only 47:40, 39:32 and 63:48 reserved); SID 79:64, SQ
// 81:80, SVT 83:82, reserved 127:84. Delivery modes 011b and 110b are
// reserved encodings.
inline bool RefIrteValid(const RefIrte& e, bool eime) {
  const unsigned dlm = (e.lo >> 5) & 7;
  if (dlm == 3 || dlm == 6) return false;
  if (((e.lo >> 12) & 0xf) != 0 || ((e.lo >> 24) & 0xff) != 0) return false;
  if ((e.hi >> 20) != 0) return false;
  if (!eime && (((e.lo >> 32) & 0xff) != 0 || (e.lo >> 48) != 0)) return false;
  return true;
}

// §9.10 SVT/SQ/SID: SVT 00 no check; 01 the requester id equals SID,
// ignoring bit 2 (SQ 01), bits 2:1 (SQ 10) or bits 2:0 (SQ 11); 10 the
// requester's bus lies in [SID 15:8, SID 7:0]; 11 reserved (fails).
inline bool RefSidOk(const RefIrte& e, uint16_t rid) {
  const uint16_t sid = static_cast<uint16_t>(e.hi);
  const unsigned sq = (e.hi >> 16) & 3;
  switch ((e.hi >> 18) & 3) {
    case 0:
      return true;
    case 1: {
      static constexpr uint16_t kIgnore[4] = {0, 0x4, 0x6, 0x7};
      return ((rid ^ sid) & ~kIgnore[sq] & 0xffff) == 0;
    }
    case 2: {
      const unsigned bus = rid >> 8;
      return bus >= (sid >> 8u) && bus <= (sid & 0xffu);
    }
    default:
      return false;
  }
}

// What a present or not present IRTE does to a remappable request that
// reached it. The delivered message is in compatibility format: 0xFEE,
// destination 7:0 at address 19:12 (destination 31:8, x2APIC only, in
// address 63:40 as the message leaves the remapper), RH at bit 3, DM at
// bit 2, the request's address bits 1:0; data: vector, delivery mode
// 10:8, level assert (bit 14, always set), trigger mode bit 15.
inline IrOutcome RefRemap(const RefIrte& e, bool eime, const IrRequest& r,
                          uint32_t index) {
  IrOutcome o;
  o.index = static_cast<uint16_t>(index);
  const bool fpd = (e.lo >> 1) & 1;
  auto block = [&](uint8_t reason) {
    o.reason = reason;
    o.recorded = !fpd;  // 0x22, 0x24 and 0x26 are qualified faults
    return o;
  };
  if (!(e.lo & 1)) return block(kIrFaultNotPresent);
  if (!RefIrteValid(e, eime)) return block(kIrFaultIrteReserved);
  if (r.sid.has_value() && !RefSidOk(e, *r.sid)) return block(kIrFaultSid);
  const uint32_t dest = eime ? static_cast<uint32_t>(e.lo >> 32)
                             : static_cast<uint32_t>(e.lo >> 40) & 0xff;
  o.delivered = true;
  o.address = kIrWindowBase | uint64_t{dest & 0xff} << 12 |
              ((e.lo >> 3) & 1) << 3 | ((e.lo >> 2) & 1) << 2 |
              (r.address & 3) | uint64_t{dest >> 8} << 40;
  o.data = static_cast<uint32_t>((e.lo >> 16) & 0xff) |
           static_cast<uint32_t>((e.lo >> 5) & 7) << 8 | 1u << 14 |
           static_cast<uint32_t>((e.lo >> 4) & 1) << 15;
  return o;
}

// Splits a device write of `len` bytes at `address` inside the window into
// the accesses the window sees (the memory core's rule, QEMU's
// memory_access_size: at most 4 bytes, naturally aligned, largest power of
// two first) and returns the 4-byte ones: the interrupt requests. Smaller
// accesses are not interrupt requests (the MSI window ignores them).
inline std::vector<IrRequest> SplitWindowWrite(uint64_t address,
                                               const uint8_t* bytes,
                                               uint32_t len,
                                               std::optional<uint16_t> sid) {
  std::vector<IrRequest> out;
  uint64_t off = address - kIrWindowBase;
  uint32_t done = 0;
  while (done < len) {
    uint64_t max = 4;
    if (off != 0) max = std::min<uint64_t>(max, off & (~off + 1));
    const uint32_t n = static_cast<uint32_t>(
        std::bit_floor(std::min<uint64_t>(len - done, max)));
    if (n == 4) {
      const uint32_t data = bytes[done] | bytes[done + 1] << 8 |
                            bytes[done + 2] << 16 |
                            static_cast<uint32_t>(bytes[done + 3]) << 24;
      out.push_back({.address = kIrWindowBase + off, .data = data, .sid = sid});
    }
    off += n;
    done += n;
  }
  return out;
}

// The guest-programmed remapping state and the cache possibilities.
class IrTracker {
 public:
  // Reads the IRTE at a guest-physical address: the 16 bytes, or
  // kUnreadable (nothing there: fault 0x23) / kUnknown (not plain RAM).
  enum class ReadResult { kOk, kUnreadable, kUnknown };
  using IrteReader = std::function<ReadResult(uint64_t gpa, RefIrte* out)>;

  void OnReset() { *this = IrTracker(); }

  // After a GCMD write of `gcmd` (§10.4.4): SIRTP latches IRTA (`irta`,
  // the register as the guest reads it) and drops every cached IRTE; IRE
  // and CFI set IRES and CFIS. `aw_bits`: the host address width.
  void OnGcmd(uint32_t gcmd, uint64_t irta, int aw_bits) {
    if (gcmd & (1u << 24)) {  // SIRTP
      latched_ = true;
      latched_known_ = true;
      table_ = irta & ((uint64_t{1} << aw_bits) - 1) & ~uint64_t{0xfff};
      entries_ = 2u << (irta & 0xf);
      eime_ = (irta >> 11) & 1;
      InvalidateAll();
    }
    ires_ = (gcmd >> 25) & 1;
    cfis_ = (gcmd >> 23) & 1;
    enable_known_ = true;
  }

  // An IEC invalidation descriptor the unit processed (§6.5.2.7): global,
  // or the 2^mask entries from `index`. Where the spec and
  // implementations differ on whether the low `mask` bits of the index are
  // ignored, only the entries both readings cover count as invalidated.
  void OnIec(bool global, uint16_t index, uint8_t mask) {
    if (global) {
      InvalidateAll();
      return;
    }
    const uint64_t n = uint64_t{1} << (mask & 31);
    const uint64_t a0 = index, a1 = a0 + n;
    const uint64_t b0 = index & ~(n - 1), b1 = b0 + n;
    const uint64_t lo = std::max(a0, b0), hi = std::min(a1, b1);
    for (auto it = cache_.begin(); it != cache_.end();) {
      if (it->first >= lo && it->first < hi) {
        cache_.erase(it++);
      } else {
        ++it;
      }
    }
  }

  // Something the tracker cannot follow happened.
  void ForgetLatched() { enable_known_ = latched_known_ = false; }
  void ForgetCache() { cache_known_ = false; }

  // Whether the unit's latched state (as `getters` report it) is what the
  // guest programmed. Only meaningful where known.
  struct UnitView {
    bool ires, cfis;
    uint64_t table;
    uint32_t entries;
    bool eime;
  };
  // Empty when consistent, else what differs.
  const char* Mismatch(const UnitView& u) const {
    if (enable_known_ && u.ires != ires_) return "GSTS.IRES";
    if (enable_known_ && u.cfis != cfis_) return "GSTS.CFIS";
    if (latched_known_ && latched_) {
      if (u.table != table_) return "latched IRTA address";
      if (u.entries != entries_) return "latched IRTA size";
      if (u.eime != eime_) return "latched IRTA.EIME";
    }
    return nullptr;
  }

  bool enabled() const { return enable_known_ && ires_; }

  // The outcomes one request may have, or nullopt when the tracker cannot
  // tell (nothing is then assumed about the cache either). Updates the
  // cache possibilities as the request may have filled the cache.
  std::optional<std::vector<IrOutcome>> Predict(const IrRequest& r,
                                                const IrteReader& read) {
    if (!enable_known_) return Unknown();
    if (!ires_) {  // not remapped: the request as it is
      return std::vector<IrOutcome>{
          {.delivered = true, .address = r.address, .data = r.data}};
    }
    auto block = [](uint8_t reason, uint32_t index) {
      return std::vector<IrOutcome>{{.reason = reason,
                                     .index = static_cast<uint16_t>(index),
                                     .recorded = true}};
    };
    // §5.1.2: address 63:32 reserved and 31:20 = 0xFEE (always, here).
    if ((r.address >> 32) != 0 || (r.address & 0xfff0'0000) != kIrWindowBase) {
      return block(kIrFaultRequestReserved, 0);
    }
    if (!(r.address & 0x10)) {  // compatibility format (§5.1.2.1)
      if (!cfis_) return block(kIrFaultCompat, 0);
      if (!latched_known_ || !latched_) return Unknown();  // EIME
      if (eime_) return block(kIrFaultCompat, 0);
      return std::vector<IrOutcome>{
          {.delivered = true, .address = r.address, .data = r.data}};
    }
    // Remappable format (§5.1.2.2): handle 14:0 at address 19:5, handle
    // 15 at bit 2, SHV bit 3; with SHV, data 15:0 is the subhandle added
    // to the handle and data 31:16 is reserved.
    if (!latched_known_ || !latched_) return Unknown();
    uint32_t index = static_cast<uint32_t>((r.address >> 5) & 0x7fff) |
                     static_cast<uint32_t>((r.address >> 2) & 1) << 15;
    if (r.address & 0x8) {
      if ((r.data >> 16) != 0) return block(kIrFaultRequestReserved, 0);
      index += r.data & 0xffff;
    }
    if (index >= entries_) return block(kIrFaultIndexOver, index);
    if (!cache_known_) return Unknown();
    RefIrte mem;
    switch (read(table_ + uint64_t{index} * 16, &mem)) {
      case ReadResult::kUnreadable:
        // Not read, so nothing to cache; a cached entry may still serve.
        return WithCached(index, r, block(kIrFaultUnreadable, index));
      case ReadResult::kUnknown:
        return Unknown();
      case ReadResult::kOk:
        break;
    }
    std::vector<IrOutcome> out =
        WithCached(index, r, {RefRemap(mem, eime_, r, index)});
    if (mem.lo & 1 && RefIrteValid(mem, eime_)) {
      Slot& s = cache_[index];
      if (std::find(s.entries.begin(), s.entries.end(), mem) ==
          s.entries.end()) {
        if (s.entries.size() >= kMaxPerIndex) {
          s.overflow = true;
        } else {
          s.entries.push_back(mem);
        }
      }
    }
    if (out.empty()) return Unknown();  // overflowed slot
    return out;
  }

 private:
  static constexpr size_t kMaxPerIndex = 8;
  struct Slot {
    std::vector<RefIrte> entries;
    bool overflow = false;
  };

  std::optional<std::vector<IrOutcome>> Unknown() {
    ForgetCache();
    return std::nullopt;
  }
  void InvalidateAll() {
    cache_.clear();
    cache_known_ = true;
  }
  // `from_memory` plus the outcome of every IRTE the cache may hold for
  // `index` (empty when the slot overflowed).
  std::vector<IrOutcome> WithCached(uint32_t index, const IrRequest& r,
                                    std::vector<IrOutcome> from_memory) {
    auto it = cache_.find(index);
    if (it == cache_.end()) return from_memory;
    if (it->second.overflow) return {};
    for (const RefIrte& e : it->second.entries) {
      IrOutcome o = RefRemap(e, eime_, r, index);
      if (std::find(from_memory.begin(), from_memory.end(), o) ==
          from_memory.end()) {
        from_memory.push_back(o);
      }
    }
    return from_memory;
  }

  // After reset: IR and CFI off, no table latched (§10.4.4: until SIRTP
  // the table is undefined; nothing remappable is predicted then).
  bool enable_known_ = true;
  bool ires_ = false;
  bool cfis_ = false;
  bool latched_known_ = true;
  bool latched_ = false;
  uint64_t table_ = 0;
  uint32_t entries_ = 0;
  bool eime_ = false;
  bool cache_known_ = true;
  absl::flat_hash_map<uint32_t, Slot> cache_;
};

// What the guest can observe of an action's interrupts: the fault
// registers and, per source, the messages the MSI window received.
struct IrObserved {
  uint32_t fsts = 0;
  uint32_t fectl = 0;
  uint64_t frcd_lo = 0;
  uint64_t frcd_hi = 0;
  struct Source {
    std::optional<uint16_t> rid;
    uint64_t count = 0;
    bool has_last = false;
    uint64_t last_address = 0;
    uint32_t last_data = 0;
    friend bool operator==(const Source&, const Source&) = default;
  };
  std::vector<Source> sources;  // the requester and "no requester id"
  friend bool operator==(const IrObserved&, const IrObserved&) = default;

  Source& Of(std::optional<uint16_t> rid) {
    for (Source& s : sources) {
      if (s.rid == rid) return s;
    }
    sources.push_back({.rid = rid});
    return sources.back();
  }
};

// Applies one outcome to `s`. A delivered message counts for its source.
// A recorded fault follows the unit's single fault record (CAP.NFR = 0,
// as documented in intel_iommu.h): dropped while FSTS.PFO; collapsed into
// a pending record of the same source id; PFO when the record is pending
// for another; else FRCD = {FI 63:48 = index, SID, FR, T = 0, F}, PPF,
// FRI = 0, and, when no fault was pending, the fault event: FECTL.IP, or
// with IM clear the message FEDATA at FEADDR (no requester id).
inline void ApplyIrOutcome(IrObserved& s, const IrOutcome& o,
                           const IrRequest& r, uint64_t feaddr,
                           uint32_t fedata) {
  constexpr uint32_t kPfo = 1u << 0, kPpf = 1u << 1, kIqe = 1u << 4;
  constexpr uint32_t kFriMask = 0xffu << 8;
  constexpr uint32_t kIm = 1u << 31, kIp = 1u << 30;
  constexpr uint64_t kF = uint64_t{1} << 63;
  if (o.delivered) {
    IrObserved::Source& src = s.Of(r.sid);
    ++src.count;
    src.has_last = true;
    src.last_address = o.address;
    src.last_data = o.data;
    return;
  }
  if (!o.recorded) return;
  const uint16_t sid = r.sid.value_or(0xffff);
  if (s.fsts & kPfo) return;
  if (s.frcd_hi & kF) {
    if ((s.frcd_hi & 0xffff) != sid) s.fsts |= kPfo;
    return;
  }
  const uint32_t pre = s.fsts;
  s.frcd_lo = uint64_t{o.index} << 48;
  s.frcd_hi = kF | uint64_t{o.reason} << 32 | sid;
  if (pre & kPpf) return;  // cannot be: the only record was free
  s.fsts = (s.fsts & ~kFriMask) | kPpf;
  if (pre & (kPpf | kPfo | kIqe)) return;
  s.fectl |= kIp;
  if (s.fectl & kIm) return;
  s.fectl &= ~kIp;
  IrObserved::Source& ev = s.Of(std::nullopt);
  ++ev.count;
  ev.has_last = true;
  ev.last_address = kIrWindowBase | (feaddr & 0xf'ffff);
  ev.last_data = fedata;
}

}  // namespace viommu::vtd::fuzz

#endif  // VIOMMU_TESTS_FUZZ_VTD_IR_ORACLE_H_
