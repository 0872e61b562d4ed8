#include "viommu/vfio/host/model/host_iommu_domain.h"

#include <cerrno>

namespace viommu::vfio::model {

namespace {

uint64_t MinPage(uint64_t pgsize_bitmap) {
  return pgsize_bitmap == 0 ? 1 : pgsize_bitmap & (~pgsize_bitmap + 1);
}

}  // namespace

int HostIommuDomain::Map(uint64_t iova, uint64_t hva, uint64_t len,
                         uint32_t perm) {
  const uint64_t page = MinPage(pgsize_bitmap_);
  if (len == 0 || ((iova | hva | len) & (page - 1)) != 0) return -EINVAL;
  const uint64_t last = iova + (len - 1);
  if (last < iova || last > aperture_last_) return -EINVAL;
  // The first mapping at or after iova, and the one before it.
  auto next = map_.lower_bound(iova);
  if (next != map_.end() && next->first <= last) return -EEXIST;
  if (next != map_.begin() && std::prev(next)->second.last >= iova) {
    return -EEXIST;
  }
  map_.emplace_hint(next, iova, Mapping{last, hva, perm});
  mapped_bytes_ += len;
  return 0;
}

uint64_t HostIommuDomain::Unmap(uint64_t iova, uint64_t len) {
  if (len == 0) return 0;
  const uint64_t last = iova + (len - 1) < iova ? UINT64_MAX : iova + (len - 1);
  uint64_t removed = 0;
  auto it = map_.lower_bound(iova);
  if (it != map_.begin() && std::prev(it)->second.last >= iova) {
    // A mapping straddling the start: keep its head.
    auto prev = std::prev(it);
    Mapping tail = prev->second;
    const uint64_t head_last = iova - 1;
    prev->second.last = head_last;
    if (tail.last > last) {  // and its tail beyond the range
      const uint64_t tail_start = last + 1;
      map_.emplace(
          tail_start,
          Mapping{tail.last, tail.hva + (tail_start - prev->first), tail.perm});
      removed += len;
      mapped_bytes_ -= removed;
      return removed;
    }
    removed += tail.last - iova + 1;
  }
  while (it != map_.end() && it->first <= last) {
    if (it->second.last > last) {  // straddles the end: keep its tail
      Mapping m = it->second;
      const uint64_t start = it->first;
      removed += last - start + 1;
      it = map_.erase(it);
      map_.emplace_hint(it, last + 1,
                        Mapping{m.last, m.hva + (last + 1 - start), m.perm});
      break;
    }
    removed += it->second.last - it->first + 1;
    it = map_.erase(it);
  }
  mapped_bytes_ -= removed;
  return removed;
}

void HostIommuDomain::UnmapAll() {
  map_.clear();
  mapped_bytes_ = 0;
}

std::optional<uint64_t> HostIommuDomain::Translate(uint64_t iova, uint64_t len,
                                                   bool write) const {
  if (len == 0) return std::nullopt;
  const uint64_t last = iova + (len - 1);
  if (last < iova) return std::nullopt;
  auto it = map_.upper_bound(iova);
  if (it == map_.begin()) return std::nullopt;
  --it;
  const uint64_t start = it->first;
  const uint64_t hva = it->second.hva + (iova - start);
  const uint32_t need = write ? kPermWrite : kPermRead;
  // Walk adjacent mappings while they continue the same host range.
  uint64_t expect_hva = hva;
  uint64_t pos = iova;
  while (true) {
    const Mapping& m = it->second;
    if (m.last < pos || (m.perm & need) == 0) return std::nullopt;
    if (m.hva + (pos - it->first) != expect_hva) return std::nullopt;
    if (m.last >= last) return hva;
    expect_hva += m.last - pos + 1;
    pos = m.last + 1;
    ++it;
    if (it == map_.end() || it->first != pos) return std::nullopt;
  }
}

std::optional<uint64_t> HostIommuDomain::IovaToHva(uint64_t iova) const {
  auto it = map_.upper_bound(iova);
  if (it == map_.begin()) return std::nullopt;
  --it;
  if (it->second.last < iova) return std::nullopt;
  return it->second.hva + (iova - it->first);
}

}  // namespace viommu::vfio::model
