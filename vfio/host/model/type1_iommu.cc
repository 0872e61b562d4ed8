// Type1Iommu: dma list, MAP/UNMAP, pinning, attach/detach. GET_INFO,
// DIRTY_PAGES and CHECK_EXTENSION are in type1_info.cc.
#include "viommu/vfio/host/model/type1_iommu.h"

#include <cerrno>
#include <cstring>
#include <utility>

#include "vfio/host/model/type1_iova_list.h"
#include "viommu/util/check.h"

namespace viommu::vfio::model {

namespace {

constexpr uint64_t kPageMask = ~(kHostPageSize - 1);

uint64_t PermOf(uint32_t map_flags) {
  uint32_t perm = 0;
  if (map_flags & uapi::kDmaMapFlagRead) perm |= kPermRead;
  if (map_flags & uapi::kDmaMapFlagWrite) perm |= kPermWrite;
  return perm;
}

}  // namespace

Type1Iommu::Type1Iommu(const Config& config, ProcessMemory* mem,
                       ModelFaults* faults)
    : config_(config),
      mem_(mem),
      faults_(faults),
      pgsize_bitmap_(kPageMask),
      dma_avail_(config.dma_entry_limit) {}

Type1Iommu::~Type1Iommu() { RemoveAllDmas(); }

uint64_t Type1Iommu::locked_pages() const {
  uint64_t pages = 0;
  for (const auto& [iova, dma] : dmas_) pages += dma.locked_pages;
  return pages;
}

uint64_t Type1Iommu::MinPageSize() const {
  // 1 << __ffs(pgsize_bitmap); never below PAGE_SIZE (UpdatePgsizeBitmap).
  return pgsize_bitmap_ == 0 ? kHostPageSize
                             : pgsize_bitmap_ & (~pgsize_bitmap_ + 1);
}

void Type1Iommu::UpdatePgsizeBitmap() {
  uint64_t bitmap = ~uint64_t{0};
  for (const Domain& d : domains_) bitmap &= d.domain->pgsize_bitmap();
  if (bitmap & ~kPageMask) bitmap = (bitmap & kPageMask) | kHostPageSize;
  pgsize_bitmap_ = bitmap;
}

Type1Iommu::DmaMap::iterator Type1Iommu::FindDma(uint64_t start,
                                                 uint64_t last) {
  auto it = dmas_.upper_bound(start);
  if (it != dmas_.begin() && std::prev(it)->second.last >= start) {
    return std::prev(it);
  }
  if (it != dmas_.end() && it->first <= last) return it;
  return dmas_.end();
}

Type1Iommu::DmaMap::const_iterator Type1Iommu::FindDma(uint64_t start,
                                                       uint64_t last) const {
  return const_cast<Type1Iommu*>(this)->FindDma(start, last);
}

int64_t Type1Iommu::Pin(uint64_t vaddr, uint64_t size, uint32_t perm) {
  // GUP pins RAM with FOLL_WRITE when the mapping is writable by the device
  // and fails (EFAULT) on a page the process may not access that way — a
  // read-only mapping for a READ|WRITE map (seen on Linux 6.1.192).
  const bool write = (perm & kPermWrite) != 0;
  uint64_t pages = 0;
  switch (mem_->Classify(vaddr, size)) {
    case VaddrKind::kUnmapped:
      return -EFAULT;
    case VaddrKind::kPfnMap:
      return 0;  // reserved/invalid pfns: mapped, never charged
    case VaddrKind::kAnonymous:
      if (!mem_->Pinnable(vaddr, size, write)) return -EFAULT;
      pages = size / kHostPageSize;
      break;
    case VaddrKind::kMixed:
      // GUP stops at each boundary and the PFNMAP runs are not charged.
      for (uint64_t off = 0; off < size; off += kHostPageSize) {
        if (mem_->Classify(vaddr + off, kHostPageSize) ==
            VaddrKind::kAnonymous) {
          if (!mem_->Pinnable(vaddr + off, kHostPageSize, write)) {
            return -EFAULT;
          }
          ++pages;
        }
      }
      break;
  }
  if (int rc = mem_->Charge(pages); rc < 0) return rc;
  return static_cast<int64_t>(pages);
}

void Type1Iommu::RemoveDma(DmaMap::iterator it) {
  const uint64_t size = it->second.last - it->first + 1;
  if (it->second.iommu_mapped) {
    for (Domain& d : domains_) d.domain->Unmap(it->first, size);
  }
  mem_->Uncharge(it->second.locked_pages);
  if (it->second.vaddr_invalid) --vaddr_invalid_count_;
  ++dma_avail_;
  dmas_.erase(it);
}

void Type1Iommu::RemoveAllDmas() {
  while (!dmas_.empty()) RemoveDma(dmas_.begin());
}

// ---- MAP_DMA ----------------------------------------------------------------

int Type1Iommu::MapDma(uintptr_t arg) {
  if (arg == 0) return -EFAULT;
  uapi::vfio_iommu_type1_dma_map m;
  std::memcpy(&m, reinterpret_cast<const void*>(arg), sizeof(m));
  constexpr uint32_t kMask =
      uapi::kDmaMapFlagRead | uapi::kDmaMapFlagWrite | uapi::kDmaMapFlagVaddr;
  if (m.argsz < sizeof(m) || (m.flags & ~kMask)) return -EINVAL;
  if (faults_ != nullptr && faults_->fail_map_countdown > 0 &&
      --faults_->fail_map_countdown == 0) {
    return -faults_->fail_map_errno;
  }
  const uint32_t perm = PermOf(m.flags);
  const bool set_vaddr = (m.flags & uapi::kDmaMapFlagVaddr) != 0;
  const bool latest = HasOverflowErrno(config_.kernel);
  const bool wraps = m.size != 0 && (m.iova + (m.size - 1) < m.iova ||
                                     m.vaddr + (m.size - 1) < m.vaddr);
  if (latest) {
    if (m.size == 0) return -EINVAL;
    if (wraps) return -EOVERFLOW;
  }
  if ((perm != 0 && set_vaddr) || (perm == 0 && !set_vaddr)) return -EINVAL;
  const uint64_t pgsize = MinPageSize();
  if (m.size == 0 || ((m.size | m.iova | m.vaddr) & (pgsize - 1)) != 0) {
    return -EINVAL;
  }
  if (wraps) return -EINVAL;  // 6.1, 6.12 (latest returned above)
  const uint64_t last = m.iova + (m.size - 1);
  auto found = FindDma(m.iova, last);
  if (set_vaddr) {
    if (found == dmas_.end()) return -ENOENT;
    Dma& dma = found->second;
    if (!dma.vaddr_invalid || found->first != m.iova || dma.last != last) {
      return -EINVAL;
    }
    dma.vaddr = m.vaddr;
    dma.vaddr_invalid = false;
    --vaddr_invalid_count_;
    return 0;
  }
  if (found != dmas_.end()) return -EEXIST;
  if (dma_avail_ == 0) return -ENOSPC;
  if (!type1::DmaValid(iova_list_, m.iova, last)) return -EINVAL;

  Dma dma{.last = last, .vaddr = m.vaddr, .perm = perm};
  if (!domains_.empty()) {
    const int64_t charged = Pin(m.vaddr, m.size, perm);
    if (charged < 0) return static_cast<int>(charged);
    for (size_t i = 0; i < domains_.size(); ++i) {
      if (int rc = domains_[i].domain->Map(m.iova, m.vaddr, m.size, perm);
          rc < 0) {
        for (size_t j = 0; j < i; ++j)
          domains_[j].domain->Unmap(m.iova, m.size);
        mem_->Uncharge(static_cast<uint64_t>(charged));
        return rc;
      }
    }
    dma.iommu_mapped = true;
    dma.locked_pages = static_cast<uint64_t>(charged);
  }
  if (dirty_tracking_) AllocDirtyBitmap(m.iova, dma);
  --dma_avail_;
  dmas_.emplace(m.iova, std::move(dma));
  return 0;
}

// ---- UNMAP_DMA --------------------------------------------------------------

int Type1Iommu::UnmapDma(uintptr_t arg) {
  if (arg == 0) return -EFAULT;
  auto* user = reinterpret_cast<uapi::vfio_iommu_type1_dma_unmap*>(arg);
  uapi::vfio_iommu_type1_dma_unmap u;
  std::memcpy(&u, user, sizeof(u));
  constexpr uint32_t kMask = uapi::kDmaUnmapFlagGetDirtyBitmap |
                             uapi::kDmaUnmapFlagAll | uapi::kDmaUnmapFlagVaddr;
  const bool want_bitmap = (u.flags & uapi::kDmaUnmapFlagGetDirtyBitmap) != 0;
  const bool all = (u.flags & uapi::kDmaUnmapFlagAll) != 0;
  const bool invalidate = (u.flags & uapi::kDmaUnmapFlagVaddr) != 0;
  if (u.argsz < sizeof(u) || (u.flags & ~kMask)) return -EINVAL;
  if (want_bitmap && (all || invalidate)) return -EINVAL;
  uapi::vfio_bitmap bitmap{};
  if (want_bitmap) {
    if (u.argsz < sizeof(u) + sizeof(bitmap)) return -EINVAL;
    std::memcpy(&bitmap, reinterpret_cast<const uint8_t*>(arg) + sizeof(u),
                sizeof(bitmap));
    if (bitmap.pgsize == 0) return -EINVAL;
    const uint64_t npages = u.size >> __builtin_ctzll(bitmap.pgsize);
    if (npages == 0 || bitmap.size == 0 || bitmap.size > (1ull << 28) ||
        bitmap.size < ((npages + 63) / 64) * 8) {
      return -EINVAL;
    }
  }
  const uint64_t pgsize = MinPageSize();
  if (u.iova & (pgsize - 1)) return -EINVAL;
  uint64_t last;
  if (all) {
    if (u.iova != 0 || u.size != 0) return -EINVAL;
    last = UINT64_MAX;
  } else {
    if (u.size == 0 || (u.size & (pgsize - 1))) return -EINVAL;
    if (u.iova + (u.size - 1) < u.iova) {
      return HasOverflowErrno(config_.kernel) ? -EOVERFLOW : -EINVAL;
    }
    last = u.iova + (u.size - 1);
  }
  if (want_bitmap && (!dirty_tracking_ || bitmap.pgsize != pgsize)) {
    return -EINVAL;
  }
  if (config_.v2 && !all) {
    auto head = FindDma(u.iova, u.iova);
    if (head != dmas_.end() && head->first != u.iova) return -EINVAL;
    auto tail = FindDma(last, last);
    if (tail != dmas_.end() && tail->second.last != last) return -EINVAL;
  }
  uint64_t unmapped = 0;
  auto it = FindDma(u.iova, last);
  if (invalidate) {
    std::vector<Dma*> marked;
    for (; it != dmas_.end() && it->first <= last; ++it) {
      if (!config_.v2 && u.iova > it->first) break;
      if (it->second.vaddr_invalid) {
        for (Dma* d : marked) d->vaddr_invalid = false;
        vaddr_invalid_count_ -= marked.size();
        return -EINVAL;
      }
      it->second.vaddr_invalid = true;
      ++vaddr_invalid_count_;
      marked.push_back(&it->second);
      unmapped += it->second.last - it->first + 1;
    }
  } else {
    if (want_bitmap) {
      CopyDirtyBits(u.iova, last, bitmap.data, /*clear_after=*/false);
    }
    while (it != dmas_.end() && it->first <= last) {
      if (!config_.v2 && u.iova > it->first) break;
      unmapped += it->second.last - it->first + 1;
      auto next = std::next(it);
      const uint64_t next_key = next == dmas_.end() ? 0 : next->first;
      const bool has_next = next != dmas_.end();
      RemoveDma(it);
      it = has_next ? dmas_.find(next_key) : dmas_.end();
    }
  }
  u.size = unmapped;
  std::memcpy(user, &u, sizeof(u));
  return 0;
}

// ---- attach / detach --------------------------------------------------------

bool Type1Iommu::HasGroup(uint32_t group_id) const {
  return groups_.contains(group_id);
}

HostIommuDomain* Type1Iommu::DomainOfGroup(uint32_t group_id) const {
  for (const Domain& d : domains_) {
    for (uint32_t g : d.groups) {
      if (g == group_id) return d.domain.get();
    }
  }
  return nullptr;
}

bool Type1Iommu::AperConflict(uint64_t start, uint64_t last) const {
  if (iova_list_.empty()) return false;
  const IovaWindow& first = iova_list_.front();
  const IovaWindow& back = iova_list_.back();
  if (start > back.last || last < first.start) return true;
  if (start > first.start && FindDma(first.start, start - 1) != dmas_.end()) {
    return true;
  }
  if (last < back.last && FindDma(last + 1, back.last) != dmas_.end()) {
    return true;
  }
  return false;
}

int Type1Iommu::Replay(HostIommuDomain* domain,
                       std::vector<uint64_t>* charged) {
  for (auto& [iova, dma] : dmas_) {
    const uint64_t size = dma.last - iova + 1;
    uint64_t hva = dma.vaddr;
    uint64_t pages = 0;
    if (dma.iommu_mapped) {
      // Already pinned for an existing domain: copy its translation.
      if (auto h = domains_.front().domain->IovaToHva(iova)) hva = *h;
    } else {
      const int64_t rc = Pin(dma.vaddr, size, dma.perm);
      if (rc < 0) return static_cast<int>(rc);
      pages = static_cast<uint64_t>(rc);
    }
    charged->push_back(pages);
    if (int rc = domain->Map(iova, hva, size, dma.perm); rc < 0) return rc;
  }
  return 0;
}

int Type1Iommu::AttachGroup(const Type1Group& group) {
  // 6.1 would wait for the vaddrs; the model answers as newer kernels.
  if (vaddr_invalid_count_ > 0) return -EBUSY;
  if (groups_.contains(group.id)) return -EINVAL;
  if (faults_ != nullptr && faults_->fail_attach_armed &&
      faults_->fail_attach_group == group.id) {
    faults_->fail_attach_armed = false;  // iommu_attach_group failed
    return -faults_->fail_attach_errno;
  }
  if (AperConflict(0, group.aperture_last)) return -EINVAL;
  for (const ResvRegion& r : group.resv) {
    if (r.type == ResvType::kDirectRelaxable) continue;
    if (FindDma(r.start, r.last) != dmas_.end()) return -EINVAL;
  }
  type1::IovaList copy = iova_list_;
  type1::AperResize(&copy, 0, group.aperture_last);
  if (type1::ResvExclude(&copy, group.resv) < 0) return -EINVAL;

  // Domain reuse: a domain of the same "hardware" (aperture and page sizes)
  // takes the group without replay.
  Domain* reuse = nullptr;
  for (Domain& d : domains_) {
    if (d.domain->aperture_last() == group.aperture_last &&
        d.domain->pgsize_bitmap() == group.pgsize_bitmap) {
      reuse = &d;
      break;
    }
  }
  if (reuse != nullptr) {
    reuse->groups.push_back(group.id);
  } else {
    auto domain = std::make_unique<HostIommuDomain>(group.aperture_last,
                                                    group.pgsize_bitmap);
    std::vector<uint64_t> charged;
    if (int rc = Replay(domain.get(), &charged); rc < 0) {
      for (uint64_t pages : charged) mem_->Uncharge(pages);
      return rc;
    }
    size_t i = 0;
    for (auto& [iova, dma] : dmas_) {
      dma.locked_pages += charged[i++];
      dma.iommu_mapped = true;
    }
    domains_.push_back({std::move(domain), {group.id}});
    UpdatePgsizeBitmap();
  }
  groups_.emplace(group.id, group);
  iova_list_ = std::move(copy);
  return 0;
}

void Type1Iommu::DetachGroup(uint32_t group_id) {
  if (!groups_.contains(group_id)) return;
  type1::IovaList copy = iova_list_;
  groups_.erase(group_id);
  for (auto d = domains_.begin(); d != domains_.end(); ++d) {
    auto g = std::find(d->groups.begin(), d->groups.end(), group_id);
    if (g == d->groups.end()) continue;
    d->groups.erase(g);
    if (d->groups.empty()) {
      if (domains_.size() == 1) RemoveAllDmas();
      domains_.erase(d);
      // vfio_iommu_aper_expand: the span becomes the remaining domains'
      // common aperture.
      if (!copy.empty()) {
        uint64_t start = 0, last = UINT64_MAX;
        for (const Domain& other : domains_) {
          start = std::max(start, other.domain->aperture_start());
          last = std::min(last, other.domain->aperture_last());
        }
        copy.front().start = start;
        copy.back().last = last;
      }
      UpdatePgsizeBitmap();
    }
    break;
  }
  // vfio_iommu_resv_refresh: rebuild [first.start, last.last] minus the
  // remaining groups' regions; keep the old list if that fails.
  if (copy.empty()) return;
  std::vector<ResvRegion> resv;
  for (const auto& [id, g] : groups_) {
    resv.insert(resv.end(), g.resv.begin(), g.resv.end());
  }
  type1::IovaList rebuilt;
  type1::AperResize(&rebuilt, copy.front().start, copy.back().last);
  if (type1::ResvExclude(&rebuilt, resv) == 0) iova_list_ = std::move(rebuilt);
}

}  // namespace viommu::vfio::model
