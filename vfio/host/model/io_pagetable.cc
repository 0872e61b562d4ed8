#include "vfio/host/model/io_pagetable.h"

#include <algorithm>
#include <cerrno>

#include "viommu/util/check.h"

namespace viommu::vfio::model {

namespace {

uint64_t LowestBit(uint64_t v) { return v & (~v + 1); }

uint64_t RoundUpPow2(uint64_t v) {
  uint64_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

bool Intersects(uint64_t a_start, uint64_t a_last, uint64_t b_start,
                uint64_t b_last) {
  return a_start <= b_last && b_start <= a_last;
}

}  // namespace

IoPagetable::~IoPagetable() {
  // Areas with domains hold pins; the owner removes domains first, but be
  // safe for a destroyed IOAS whose hwpts are already gone.
  while (!areas_.empty()) RemoveArea(areas_.begin());
}

// ---- pinning ---------------------------------------------------------------

namespace {

using PinMap = absl::btree_map<uint64_t, IoptPages::PinSeg>;

// Makes a segment start at `idx` if a segment covers it.
void SplitAt(PinMap& m, uint64_t idx) {
  auto it = m.upper_bound(idx);
  if (it == m.begin()) return;
  --it;
  if (it->first < idx && it->second.last >= idx) {
    const IoptPages::PinSeg tail = it->second;
    it->second.last = idx - 1;
    m.emplace(idx, tail);
  }
}

// The unpinned page-index ranges inside [a, b].
std::vector<IovaSpan> Gaps(const PinMap& m, uint64_t a, uint64_t b) {
  std::vector<IovaSpan> gaps;
  auto it = m.upper_bound(a);
  if (it != m.begin() && std::prev(it)->second.last >= a) --it;
  uint64_t cur = a;
  for (; it != m.end() && it->first <= b; ++it) {
    if (it->first > cur) gaps.push_back({cur, it->first - 1});
    cur = std::max(cur, it->second.last + 1);
  }
  if (cur <= b) gaps.push_back({cur, b});
  return gaps;
}

}  // namespace

int IoPagetable::PinSpan(IoptPages* p, uint64_t offset, uint64_t len) {
  const uint64_t base = p->uva / kIoptPageSize;
  const uint64_t a = (p->uva + offset) / kIoptPageSize - base;
  const uint64_t b = (p->uva + offset + (len - 1)) / kIoptPageSize - base;
  // FOLL_LONGTERM GUP of the pages not pinned yet: only ordinary memory
  // pins; PFNMAP, holes and mixed ranges fail with EFAULT (§4.13).
  const std::vector<IovaSpan> gaps = Gaps(p->pins, a, b);
  uint64_t fresh = 0;
  for (const IovaSpan& g : gaps) {
    const uint64_t va = std::max(p->uva, (base + g.start) * kIoptPageSize);
    const uint64_t va_last =
        std::min(p->uva + (p->length - 1),
                 (base + g.last) * kIoptPageSize + kIoptPageSize - 1);
    if (memory_->Classify(va, va_last - va + 1) != VaddrKind::kAnonymous) {
      return -EFAULT;
    }
    // GUP with FOLL_WRITE for a writable mapping: read-only memory fails.
    if (!memory_->Pinnable(va, va_last - va + 1, p->writable)) return -EFAULT;
    fresh += g.last - g.start + 1;
  }
  if (fresh > 0) {
    if (int rc = memory_->Charge(fresh); rc < 0) return rc;
  }
  SplitAt(p->pins, a);
  SplitAt(p->pins, b + 1);
  for (auto it = p->pins.lower_bound(a); it != p->pins.end() && it->first <= b;
       ++it) {
    ++it->second.count;
  }
  for (const IovaSpan& g : gaps)
    p->pins.emplace(g.start, IoptPages::PinSeg{g.last, 1});
  return 0;
}

void IoPagetable::UnpinSpan(IoptPages* p, uint64_t offset, uint64_t len) {
  const uint64_t base = p->uva / kIoptPageSize;
  const uint64_t a = (p->uva + offset) / kIoptPageSize - base;
  const uint64_t b = (p->uva + offset + (len - 1)) / kIoptPageSize - base;
  SplitAt(p->pins, a);
  SplitAt(p->pins, b + 1);
  uint64_t released = 0, covered = 0;
  for (auto it = p->pins.lower_bound(a);
       it != p->pins.end() && it->first <= b;) {
    covered += it->second.last - it->first + 1;
    if (--it->second.count == 0) {
      released += it->second.last - it->first + 1;
      it = p->pins.erase(it);
    } else {
      ++it;
    }
  }
  VIOMMU_CHECK(covered == b - a + 1, "unpin of pages that are not pinned");
  if (released > 0) memory_->Uncharge(released);
}

int IoPagetable::MapAreaIntoDomains(uint64_t iova, const Area& a) {
  const uint64_t len = a.last - iova + 1;
  for (size_t i = 0; i < domains_.size(); ++i) {
    if (int rc = domains_[i].domain->Map(iova, a.uva(), len, a.perm); rc < 0) {
      for (size_t j = 0; j < i; ++j) domains_[j].domain->Unmap(iova, len);
      return rc;
    }
  }
  return 0;
}

void IoPagetable::RemoveArea(absl::btree_map<uint64_t, Area>::iterator it) {
  const uint64_t len = it->second.last - it->first + 1;
  for (const IoptDomain& d : domains_) d.domain->Unmap(it->first, len);
  if (!domains_.empty()) UnpinArea(it->first, it->second);
  areas_.erase(it);
}

// ---- queries ---------------------------------------------------------------

bool IoPagetable::AnyAreaIn(uint64_t start, uint64_t last) const {
  auto it = areas_.upper_bound(last);
  if (it == areas_.begin()) return false;
  --it;  // the last area starting at or before `last`
  return it->second.last >= start;
}

bool IoPagetable::ReservedIn(uint64_t start, uint64_t last) const {
  for (const Reserved& r : reserved_) {
    if (Intersects(r.start, r.last, start, last)) return true;
  }
  return false;
}

bool IoPagetable::AllowedIn(uint64_t start, uint64_t last) const {
  for (const IovaSpan& s : allowed_) {
    if (Intersects(s.start, s.last, start, last)) return true;
  }
  return false;
}

std::vector<IovaSpan> IoPagetable::UsableRanges() const {
  std::vector<Reserved> r = reserved_;
  std::sort(r.begin(), r.end(), [](const Reserved& a, const Reserved& b) {
    return a.start < b.start;
  });
  std::vector<IovaSpan> out;
  uint64_t cur = 0;
  bool done = false;
  for (const Reserved& x : r) {
    if (x.start > cur) out.push_back({cur, x.start - 1});
    if (x.last == UINT64_MAX) {
      done = true;
      break;
    }
    cur = std::max(cur, x.last + 1);
  }
  if (!done) out.push_back({cur, UINT64_MAX});
  return out;
}

// ---- IOVA allocation (§4.5 steps 8-9) ---------------------------------------

bool IoPagetable::FindHole(uint64_t lo, uint64_t hi, uint64_t length,
                           uint64_t align, uint64_t page_offset,
                           uint64_t* iova) const {
  // Reserved ranges (few) sorted up front; areas (possibly many) walked in
  // IOVA order and merged lazily, so a first fit near `lo` stops early.
  std::vector<IovaSpan> res;
  for (const Reserved& r : reserved_) {
    if (Intersects(r.start, r.last, lo, hi)) res.push_back({r.start, r.last});
  }
  std::sort(res.begin(), res.end(), [](const IovaSpan& a, const IovaSpan& b) {
    return a.start < b.start;
  });
  auto it = areas_.lower_bound(lo);
  if (it != areas_.begin() && std::prev(it)->second.last >= lo) --it;
  size_t ri = 0;
  // The kernel's candidate check for one hole [start, last].
  auto fits = [&](uint64_t start, uint64_t last) {
    uint64_t aligned;
    if (__builtin_add_overflow(start, align - 1, &aligned)) return false;
    aligned &= ~(align - 1);
    aligned |= page_offset;
    if (aligned >= last || last - aligned < length - 1) return false;
    *iova = aligned;
    return true;
  };
  uint64_t cur = lo;
  for (;;) {
    const bool have_area = it != areas_.end() && it->first <= hi;
    const bool have_res = ri < res.size();
    if (!have_area && !have_res) break;
    IovaSpan u;
    if (have_area && (!have_res || it->first < res[ri].start)) {
      u = {it->first, it->second.last};
      ++it;
    } else {
      u = res[ri++];
    }
    if (u.start > cur && fits(cur, std::min(u.start - 1, hi))) return true;
    if (u.last >= hi) return false;
    cur = std::max(cur, u.last + 1);
  }
  return fits(cur, hi);
}

int IoPagetable::AllocIova(uint64_t addr, uint64_t length,
                           uint64_t* iova) const {
  if (length == 0 || length >= UINT64_MAX / 2) return -EOVERFLOW;
  uint64_t align = RoundUpPow2(length);
  if (addr != 0) align = std::min(align, LowestBit(addr));
  if (align >= kIoptHugePageSize) align = kIoptHugePageSize;
  if (align < alignment_) return -EINVAL;
  const uint64_t page_offset = addr % kIoptPageSize;
  constexpr uint64_t kLo = kIoptPageSize;
  constexpr uint64_t kHi = UINT64_MAX - kIoptPageSize;
  if (allowed_.empty()) {
    return FindHole(kLo, kHi, length, align, page_offset, iova) ? 0 : -ENOSPC;
  }
  // Spans of the allowed set (adjacent ranges merged), clipped.
  std::vector<IovaSpan> spans;
  for (const IovaSpan& s : allowed_) {
    if (!spans.empty() && spans.back().last != UINT64_MAX &&
        spans.back().last + 1 == s.start) {
      spans.back().last = s.last;
    } else {
      spans.push_back(s);
    }
  }
  for (const IovaSpan& s : spans) {
    const uint64_t lo = std::max(s.start, kLo);
    const uint64_t hi = std::min(s.last, kHi);
    if (lo > hi) continue;
    if (FindHole(lo, hi, length, align, page_offset, iova)) return 0;
  }
  return -ENOSPC;
}

int IoPagetable::CheckFixedIova(uint64_t iova, uint64_t length) const {
  if (iova & (alignment_ - 1)) return -EINVAL;
  uint64_t last;
  if (__builtin_add_overflow(iova, length - 1, &last)) return -EOVERFLOW;
  if (ReservedIn(iova, last)) return -EINVAL;  // beats EEXIST
  if (AnyAreaIn(iova, last)) return -EEXIST;
  return 0;
}

// ---- map / unmap
// -------------------------------------------------------------

int IoPagetable::Map(const std::vector<IoptPagesSlice>& slices, uint32_t perm,
                     bool fixed, uint64_t* iova) {
  VIOMMU_CHECK(!slices.empty());
  uint64_t total = 0;
  for (const IoptPagesSlice& s : slices) {
    if (__builtin_add_overflow(total, s.length, &total)) return -EOVERFLOW;
  }
  if (total == 0 || (total & (alignment_ - 1)) != 0) return -EINVAL;
  const uint64_t first_va = slices[0].pages->uva + slices[0].offset;
  int rc =
      fixed ? CheckFixedIova(*iova, total) : AllocIova(first_va, total, iova);
  if (rc < 0) return rc;
  for (const IoptPagesSlice& s : slices) {
    if ((perm & kPermWrite) && !s.pages->writable) return -EPERM;
    const uint64_t page_offset = (s.pages->uva + s.offset) % kIoptPageSize;
    if (page_offset & (alignment_ - 1)) return -EINVAL;
  }
  // Insert, then pin and fill the domains; undo everything on failure.
  std::vector<uint64_t> inserted;
  uint64_t cur = *iova;
  for (const IoptPagesSlice& s : slices) {
    areas_.emplace(cur, Area{cur + (s.length - 1), s.pages, s.offset, perm});
    inserted.push_back(cur);
    cur += s.length;
  }
  if (domains_.empty()) return 0;
  for (size_t i = 0; i < inserted.size(); ++i) {
    Area& a = areas_.at(inserted[i]);
    rc = PinArea(inserted[i], a);
    if (rc == 0) {
      rc = MapAreaIntoDomains(inserted[i], a);
      if (rc < 0) UnpinArea(inserted[i], a);
    }
    if (rc < 0) {
      for (size_t j = 0; j < inserted.size(); ++j) {
        if (j < i) {
          RemoveArea(areas_.find(inserted[j]));
        } else {
          areas_.erase(inserted[j]);
        }
      }
      return rc;
    }
  }
  return 0;
}

int IoPagetable::GetPages(uint64_t iova, uint64_t length,
                          std::vector<IoptPagesSlice>* out) const {
  if (length == 0) return -EINVAL;
  uint64_t last;
  if (__builtin_add_overflow(iova, length - 1, &last)) return -EOVERFLOW;
  auto it = areas_.upper_bound(iova);
  if (it == areas_.begin()) return -ENOENT;
  --it;
  if (it->second.last < iova) return -ENOENT;
  uint64_t cur = iova;
  for (;;) {
    const Area& a = it->second;
    const uint64_t piece_last = std::min(a.last, last);
    out->push_back(
        {a.pages, a.offset + (cur - it->first), piece_last - cur + 1});
    if (piece_last == last) return 0;
    auto next = std::next(it);
    if (next == areas_.end() || next->first != a.last + 1) {
      out->clear();
      return -ENOENT;
    }
    it = next;
    cur = it->first;
  }
}

int IoPagetable::UnmapRange(uint64_t start, uint64_t last, uint64_t* unmapped) {
  uint64_t bytes = 0;
  int rc = -ENOENT;
  for (;;) {
    auto it = areas_.lower_bound(start);
    if (it != areas_.begin() && std::prev(it)->second.last >= start) --it;
    if (it == areas_.end() || it->first > last) break;
    if (it->first < start || it->second.last > last) {
      rc = -ENOENT;  // no split or truncate; earlier areas stay removed
      break;
    }
    bytes += it->second.last - it->first + 1;
    RemoveArea(it);
    rc = 0;
  }
  *unmapped = bytes;
  return rc;
}

int IoPagetable::CutAfter(uint64_t iova) {
  auto it = areas_.upper_bound(iova);
  if (it == areas_.begin()) return 0;
  --it;
  if (it->second.last <= iova) return 0;  // no area, or already cut here
  const uint64_t new_start = iova + 1;
  Area& a = it->second;
  const uint64_t new_offset = a.offset + (new_start - it->first);
  if ((new_start | (a.pages->uva + new_offset)) & (alignment_ - 1)) {
    return -EINVAL;
  }
  Area tail{a.last, a.pages, new_offset, a.perm};
  if (!domains_.empty()) {
    // Pin both halves before dropping the whole: every page is already
    // pinned, so this neither fails nor charges.
    Area head{iova, a.pages, a.offset, a.perm};
    const int head_rc = PinArea(it->first, head);
    const int tail_rc = PinArea(new_start, tail);
    VIOMMU_CHECK(head_rc == 0);
    VIOMMU_CHECK(tail_rc == 0);
    UnpinArea(it->first, a);
  }
  a.last = iova;
  areas_.emplace(new_start, std::move(tail));
  return 0;
}

// ---- reserved / allowed
// -------------------------------------------------------

int IoPagetable::Reserve(uint64_t start, uint64_t last, const void* owner) {
  if (AnyAreaIn(start, last) || AllowedIn(start, last)) return -EADDRINUSE;
  reserved_.push_back({start, last, owner});
  return 0;
}

void IoPagetable::RemoveReservations(const void* owner) {
  std::erase_if(reserved_,
                [owner](const Reserved& r) { return r.owner == owner; });
}

int IoPagetable::SetAllowed(std::vector<IovaSpan> allowed) {
  for (const IovaSpan& s : allowed) {
    if (ReservedIn(s.start, s.last)) return -EADDRINUSE;
  }
  std::sort(
      allowed.begin(), allowed.end(),
      [](const IovaSpan& a, const IovaSpan& b) { return a.start < b.start; });
  allowed_ = std::move(allowed);
  return 0;
}

// ---- alignment and domains
// ---------------------------------------------------------

uint64_t IoPagetable::ComputeAlignment(bool disable_large,
                                       uint64_t extra) const {
  uint64_t a = std::max<uint64_t>(1, extra);
  if (disable_large) a = std::max(a, kIoptPageSize);
  for (const IoptDomain& d : domains_) {
    a = std::max(a, LowestBit(d.domain->pgsize_bitmap()));
  }
  return a;
}

bool IoPagetable::AreasAligned(uint64_t align) const {
  const uint64_t mask = align - 1;
  for (const auto& [iova, a] : areas_) {
    if ((iova & mask) || ((a.last - iova + 1) & mask) ||
        ((a.uva() % kIoptPageSize) & mask)) {
      return false;
    }
  }
  return true;
}

int IoPagetable::AddDomain(const IoptDomain& d) {
  const uint64_t page = LowestBit(d.domain->pgsize_bitmap());
  const uint64_t new_align = std::max(alignment_, page);
  if (new_align > kIoptPageSize) return -EINVAL;
  if (new_align != alignment_ && !AreasAligned(new_align)) return -EADDRINUSE;
  if (d.aperture_start != 0) {
    if (int rc = Reserve(0, d.aperture_start - 1, d.domain); rc < 0) return rc;
  }
  if (d.aperture_last != UINT64_MAX) {
    if (int rc = Reserve(d.aperture_last + 1, UINT64_MAX, d.domain); rc < 0) {
      RemoveReservations(d.domain);
      return rc;
    }
  }
  const bool first = domains_.empty();
  std::vector<uint64_t> pinned;
  int rc = 0;
  for (const auto& [iova, a] : areas_) {
    if (first) {
      rc = PinArea(iova, a);
      if (rc < 0) break;
      pinned.push_back(iova);
    }
    rc = d.domain->Map(iova, a.uva(), a.last - iova + 1, a.perm);
    if (rc < 0) break;
  }
  if (rc < 0) {
    for (uint64_t iova : pinned) UnpinArea(iova, areas_.at(iova));
    d.domain->UnmapAll();
    RemoveReservations(d.domain);
    return rc;
  }
  domains_.push_back(d);
  alignment_ = new_align;
  return 0;
}

void IoPagetable::RemoveDomain(HostIommuDomain* domain) {
  auto it = std::find_if(
      domains_.begin(), domains_.end(),
      [domain](const IoptDomain& d) { return d.domain == domain; });
  if (it == domains_.end()) return;
  domain->UnmapAll();
  RemoveReservations(domain);
  domains_.erase(it);
  if (domains_.empty()) {
    for (auto& [iova, a] : areas_) UnpinArea(iova, a);
  }
  alignment_ = ComputeAlignment(disable_large_pages_, 0);
}

int IoPagetable::DisableLargePages() {
  if (disable_large_pages_) return 0;
  if (!domains_.empty() && !areas_.empty()) return -EINVAL;
  const uint64_t new_align = ComputeAlignment(true, 0);
  if (new_align != alignment_ && !AreasAligned(new_align)) return -EADDRINUSE;
  disable_large_pages_ = true;
  alignment_ = new_align;
  return 0;
}

void IoPagetable::EnableLargePages() {
  disable_large_pages_ = false;
  alignment_ = ComputeAlignment(false, 0);
}

}  // namespace viommu::vfio::model
