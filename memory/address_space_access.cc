// AddressSpace::Read/Write/Translate: the DMA hot path. Runs on any thread,
// on the immutable view current at the start of the call.
#include <algorithm>
#include <cstring>

#include "memory/mmio_access.h"
#include "viommu/memory/address_space.h"

namespace viommu::memory {
namespace {

// Stacked IOMMUs deeper than this are refused (a mapping loop).
constexpr int kMaxIommuHops = 16;

// Bytes from `addr` to the end of `mask`'s page, capped at `len`.
uint64_t ClampToPage(uint64_t addr, uint64_t mask, uint64_t len) {
  uint64_t to_end = (addr | mask) - addr;  // bytes after addr in the page
  return to_end >= len - 1 ? len : to_end + 1;
}

// Bytes from `addr` up to the next rendered range (or `len`).
uint64_t UnassignedLength(const FlatView& view, uint64_t addr, uint64_t len) {
  std::vector<FlatRange> next;
  uint64_t last = len - 1 > UINT64_MAX - addr ? UINT64_MAX : addr + len - 1;
  view.ranges().CollectOverlapping({addr, last}, &next);
  if (next.empty()) return len;
  return next.front().range.first - addr;
}

// The hop loop of Translate and Access. `hold(as)` returns `as`'s current
// view and keeps it alive until the next call or the end of the caller's
// use of `*t` (an owning copy in t->view for Translate's callers, a Pin
// for the buffer accesses).
template <typename HoldView>
void TranslateWith(AddressSpace* as, Hwaddr addr, uint64_t len, bool is_write,
                   MemTxAttrs attrs, HoldView hold, Translation* out) {
  Translation& t = *out;
  t.target_as = as;
  const FlatView* view = hold(as);
  if (len == 0) len = 1;
  for (int hop = 0;; ++hop) {
    const FlatRange* fr = view->Lookup(addr);
    if (fr == nullptr) {
      t.mr = nullptr;
      t.len = UnassignedLength(*view, addr, len);
      t.result = MemTxResult::DecodeError();
      return;
    }
    uint64_t xlat = fr->OffsetOf(addr);
    uint64_t plen = std::min<uint64_t>(len, fr->range.last - addr + 1);
    if (fr->range.last - addr + 1 == 0) plen = len;  // range to 2^64
    MemoryRegion* mr = fr->mr.get();
    if (!mr->IsIommu()) {
      t.mr = mr;
      t.offset_in_region = xlat;
      t.len = plen;
      t.readonly = fr->readonly;
      t.result = MemTxResult::Ok();
      return;
    }
    // QEMU's address_space_translate_iommu step.
    IommuModel* model = mr->iommu_model();
    int idx = model->AttrsToIndex(attrs);
    IommuTlbEntry e =
        model->Translate(xlat, is_write ? kIommuWrite : kIommuRead, idx);
    IommuPerm need = is_write ? kIommuWrite : kIommuRead;
    if ((e.perm & need) == 0 || e.target_as == nullptr ||
        hop >= kMaxIommuHops) {
      // QEMU routes a refused access to unassigned memory: decode error.
      t.mr = nullptr;
      t.len = ClampToPage(xlat, e.addr_mask, plen);
      t.result = MemTxResult::DecodeError();
      t.iommu_fault = true;
      return;
    }
    addr = (e.translated_addr & ~e.addr_mask) | (xlat & e.addr_mask);
    len = ClampToPage(addr, e.addr_mask, plen);
    t.target_as = e.target_as;
    view = hold(e.target_as);  // the IOMMU region's view is done with
  }
}

}  // namespace

Translation AddressSpace::Translate(Hwaddr addr, uint64_t len, bool is_write,
                                    MemTxAttrs attrs) {
  Translation t;
  TranslateWith(
      this, addr, len, is_write, attrs,
      [&t](AddressSpace* as) {
        t.view = as->CurrentView();
        return t.view.get();
      },
      &t);
  return t;
}

MemTxResult AddressSpace::Access(Hwaddr addr, uint8_t* buf, size_t len,
                                 bool is_write, MemTxAttrs attrs,
                                 AccessFault* first_fault, bool ram_only) {
  MemTxResult result;
  // Records the first piece that did not complete (callers that asked).
  auto note = [&](AccessFault::Kind kind) {
    if (first_fault != nullptr &&
        first_fault->kind == AccessFault::Kind::kNone) {
      *first_fault = {kind, addr};
    }
  };
  // One pin for every piece and hop: each re-reads the current view, and
  // the piece's region stays alive until the next one starts.
  ViewPin pin;
  auto hold = [&pin](AddressSpace* as) { return as->PinView(&pin); };
  while (len > 0) {
    Translation t;
    TranslateWith(this, addr, len, is_write, attrs, hold, &t);
    uint64_t l = t.len;
    if (t.mr == nullptr) {
      if (!is_write) std::memset(buf, 0, l);
      result |= t.result;
      note(t.iommu_fault ? AccessFault::Kind::kIommu
                         : AccessFault::Kind::kUnassigned);
    } else if (t.mr->IsRam() && !t.mr->IsRamDevice()) {
      uint8_t* host = t.mr->host() + t.offset_in_region;
      if (!is_write) {
        std::memcpy(buf, host, l);
      } else if (t.readonly) {
        result |= MemTxResult::DecodeError();  // discarded, as ROM
        note(AccessFault::Kind::kReadonly);
      } else {
        std::memcpy(host, buf, l);
      }
    } else if (ram_only) {
      std::memset(buf, 0, l);  // ReadRam: never dispatched
      result |= MemTxResult::DecodeError();
      note(AccessFault::Kind::kDevice);
    } else {
      // MMIO or ram_device: one naturally sized piece at a time.
      l = MmioChunkSize(*t.mr, t.offset_in_region, l);
      uint64_t value = 0;
      MemTxResult r;
      if (is_write) {
        std::memcpy(&value, buf, l);  // little-endian host
        r = MmioDispatchWrite(*t.mr, t.offset_in_region, value,
                              static_cast<unsigned>(l), attrs);
      } else {
        r = MmioDispatchRead(*t.mr, t.offset_in_region, &value,
                             static_cast<unsigned>(l), attrs);
        std::memcpy(buf, &value, l);
      }
      if (!r.ok()) note(AccessFault::Kind::kDevice);
      result |= r;
    }
    addr += l;
    buf += l;
    len -= l;
  }
  return result;
}

MemTxResult AddressSpace::Read(Hwaddr addr, void* buf, size_t len,
                               MemTxAttrs attrs) {
  return Access(addr, static_cast<uint8_t*>(buf), len, false, attrs, nullptr);
}

MemTxResult AddressSpace::ReadRam(Hwaddr addr, void* buf, size_t len,
                                  MemTxAttrs attrs) {
  // Fast path (VT-d reads every table entry this way): the bytes lie in
  // one RAM range of the current view.
  if (len > 0) {
    ViewPin pin;
    const FlatRange* fr = PinView(&pin)->Lookup(addr);
    if (fr != nullptr && len - 1 <= fr->range.last - addr) {
      const MemoryRegion* mr = fr->mr.get();
      if (mr->IsRam() && !mr->IsRamDevice()) {
        std::memcpy(buf, mr->host() + fr->OffsetOf(addr), len);
        return MemTxResult::Ok();
      }
    }
  }
  return Access(addr, static_cast<uint8_t*>(buf), len, false, attrs, nullptr,
                /*ram_only=*/true);
}

MemTxResult AddressSpace::Write(Hwaddr addr, const void* buf, size_t len,
                                MemTxAttrs attrs) {
  // Access() does not write through `buf` for writes.
  return Access(addr, static_cast<uint8_t*>(const_cast<void*>(buf)), len, true,
                attrs, nullptr);
}

MemTxResult AddressSpace::Read(Hwaddr addr, void* buf, size_t len,
                               MemTxAttrs attrs, AccessFault* first_fault) {
  *first_fault = {};
  return Access(addr, static_cast<uint8_t*>(buf), len, false, attrs,
                first_fault);
}

MemTxResult AddressSpace::Write(Hwaddr addr, const void* buf, size_t len,
                                MemTxAttrs attrs, AccessFault* first_fault) {
  *first_fault = {};
  return Access(addr, static_cast<uint8_t*>(const_cast<void*>(buf)), len, true,
                attrs, first_fault);
}

}  // namespace viommu::memory
