// IommufdCtx: the VFIO container emulation (docs/vfio-iommufd-model.md)
// reached by VFIO ioctl numbers on /dev/iommu (or /dev/vfio/vfio served by
// iommufd). It works on the compat IOAS chosen by IOMMU_VFIO_IOAS or created
// by a legacy group's SET_CONTAINER.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vfio/host/model/iommufd_impl.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio::model {

namespace u = ::viommu::vfio::uapi;

int IommufdCtx::Impl::CompatIoctl(unsigned long request, uintptr_t arg) {
  switch (request) {
    case u::kVfioGetApiVersion:
      return u::kVfioApiVersion;
    case u::kVfioCheckExtension:
      return CompatCheckExtension(arg);
    case u::kVfioSetIommu:
      return CompatSetIommu(arg);
    case u::kVfioIommuGetInfo:
      return CompatGetInfo(arg);
    case u::kVfioIommuMapDma:
      return CompatMapDma(arg);
    case u::kVfioIommuUnmapDma:
      return CompatUnmapDma(arg);
    default:
      return -ENOTTY;  // DIRTY_PAGES, ENABLE/DISABLE and anything else
  }
}

int IommufdCtx::Impl::CompatCheckExtension(unsigned long type) {
  switch (type) {
    case u::kVfioType1Iommu:
    case u::kVfioType1v2Iommu:
    case u::kVfioUnmapAll:
      return 1;
    case u::kVfioNoIommu:
      return 0;  // CONFIG_VFIO_NOIOMMU off in the model
    case u::kVfioDmaCcIommu:
      // Every model domain enforces cache coherency.
      return compat_ioas_ == nullptr ? -ENODEV : 1;
    default:
      return 0;  // TYPE1_NESTING, UPDATE_VADDR, SPAPR, EEH, unknown
  }
}

int IommufdCtx::Impl::CompatSetIommu(unsigned long type) {
  if (type != u::kVfioType1Iommu && type != u::kVfioType1v2Iommu) {
    return -EINVAL;
  }
  if (compat_ioas_ == nullptr) return -ENODEV;
  // TYPE1 (v1) semantics split areas on unmap, which needs PAGE_SIZE
  // granular areas: huge pages are disabled. Repeatable.
  if (type == u::kVfioType1Iommu) return compat_ioas_->iopt.DisableLargePages();
  return 0;
}

int IommufdCtx::Impl::CompatMapDma(uintptr_t arg) {
  if (arg == 0) return -EFAULT;
  u::vfio_iommu_type1_dma_map map;
  std::memcpy(&map, reinterpret_cast<const void*>(arg), sizeof(map));
  if (map.argsz < sizeof(map) ||
      (map.flags & ~(u::kDmaMapFlagRead | u::kDmaMapFlagWrite))) {
    return -EINVAL;
  }
  if (compat_ioas_ == nullptr) return -ENODEV;
  // iopt_map_user_pages with a fixed IOVA; flags 0 is not rejected.
  if (map.size == 0) return -EINVAL;
  uint64_t end;
  if (__builtin_add_overflow(map.vaddr, map.size, &end)) return -EOVERFLOW;
  if (map.size > UINT64_MAX - kIoptPageSize) return -EINVAL;
  auto pages = std::make_shared<IoptPages>();
  pages->uva = map.vaddr;
  pages->length = map.size;
  pages->writable = (map.flags & u::kDmaMapFlagWrite) != 0;
  const uint32_t perm = ((map.flags & u::kDmaMapFlagRead) ? kPermRead : 0) |
                        ((map.flags & u::kDmaMapFlagWrite) ? kPermWrite : 0);
  uint64_t iova = map.iova;
  return compat_ioas_->iopt.Map({{pages, 0, map.size}}, perm, /*fixed=*/true,
                                &iova);
}

int IommufdCtx::Impl::CompatUnmapDma(uintptr_t arg) {
  if (arg == 0) return -EFAULT;
  u::vfio_iommu_type1_dma_unmap unmap;
  std::memcpy(&unmap, reinterpret_cast<const void*>(arg), sizeof(unmap));
  if (unmap.argsz < sizeof(unmap) || (unmap.flags & ~u::kDmaUnmapFlagAll)) {
    return -EINVAL;
  }
  if (compat_ioas_ == nullptr) return -ENODEV;
  IoPagetable& iopt = compat_ioas_->iopt;
  uint64_t unmapped = 0;
  int rc;
  if (unmap.flags & u::kDmaUnmapFlagAll) {
    if (unmap.iova != 0 || unmap.size != 0) return -EINVAL;
    rc = iopt.UnmapRange(0, UINT64_MAX, &unmapped);
    if (rc == -ENOENT) rc = 0;
  } else if (unmap.size == 0) {
    rc = -EINVAL;
  } else {
    uint64_t last;
    if (__builtin_add_overflow(unmap.iova, unmap.size - 1, &last)) {
      rc = -EOVERFLOW;
    } else {
      rc = 0;
      // v1 (huge pages disabled by SET_IOMMU(TYPE1)): cut the areas at
      // both ends so that partial unmaps succeed.
      if (iopt.large_pages_disabled()) {
        rc = iopt.CutAfter(last);
        if (rc == 0 && unmap.iova != 0) rc = iopt.CutAfter(unmap.iova - 1);
      }
      if (rc == 0) {
        if (!iopt.AnyAreaIn(unmap.iova, last)) {
          rc = 0;  // an empty range succeeds with size 0 here
        } else {
          rc = iopt.UnmapRange(unmap.iova, last, &unmapped);
        }
      }
    }
  }
  // size is copied back even on error.
  unmap.size = unmapped;
  std::memcpy(reinterpret_cast<uint8_t*>(arg) +
                  offsetof(u::vfio_iommu_type1_dma_unmap, size),
              &unmap.size, sizeof(unmap.size));
  return rc;
}

int IommufdCtx::Impl::CompatGetInfo(uintptr_t arg) {
  if (arg == 0) return -EFAULT;
  u::vfio_iommu_type1_info info{};
  std::memcpy(&info, reinterpret_cast<const void*>(arg),
              u::kIommuType1InfoMinsz);
  if (info.argsz < u::kIommuType1InfoMinsz) return -EINVAL;
  if (compat_ioas_ == nullptr) return -ENODEV;
  const IoPagetable& iopt = compat_ioas_->iopt;
  const uint32_t argsz = info.argsz;
  auto* base = reinterpret_cast<uint8_t*>(arg);

  // Page sizes: AND of the domains, sub-page sizes hidden, at least the
  // IOVA alignment.
  uint64_t pgsizes = UINT64_MAX;
  for (const IoptDomain& d : iopt.domains())
    pgsizes &= d.domain->pgsize_bitmap();
  pgsizes &= ~(kIoptPageSize - 1);
  info.flags = u::kIommuInfoPgsizes;
  info.iova_pgsizes = std::max<uint64_t>(pgsizes, iopt.alignment());
  info.cap_offset = 0;

  // Writes `len` bytes at `off` only if they fit inside argsz.
  auto put = [&](uint32_t off, const void* src, size_t len) {
    if (uint64_t{off} + len <= argsz) std::memcpy(base + off, src, len);
  };
  uint32_t total = sizeof(info);
  // DMA_AVAIL (U32_MAX: iommufd has no mapping limit).
  const uint32_t dma_off = total;
  u::vfio_iommu_type1_info_dma_avail dma{};
  dma.header = {u::kIommuTypeCapDmaAvail, 1, 0};
  dma.avail = UINT32_MAX;
  put(dma_off, &dma, sizeof(dma));
  total += (sizeof(dma) + 7) & ~size_t{7};
  // Link DMA_AVAIL -> IOVA_RANGE when the buffer holds up to here.
  if (argsz >= total) {
    put(dma_off + offsetof(u::vfio_info_cap_header, next), &total, 4);
  }
  // IOVA_RANGE: the usable ranges; each written if it fits.
  const uint32_t iova_off = total;
  const std::vector<IovaSpan> ranges = iopt.UsableRanges();
  for (size_t i = 0; i < ranges.size(); ++i) {
    const u::vfio_iova_range r{ranges[i].start, ranges[i].last};
    put(iova_off + 16 + i * sizeof(r), &r, sizeof(r));
  }
  u::vfio_iommu_type1_info_cap_iova_range cap{};
  cap.header = {u::kIommuTypeCapIovaRange, 1, 0};
  cap.nr_iovas = ranges.size();
  const uint32_t iova_size = 16 + ranges.size() * sizeof(u::vfio_iova_range);
  if (uint64_t{iova_off} + iova_size <= argsz) put(iova_off, &cap, sizeof(cap));
  total += iova_size;

  if (argsz >= total) info.cap_offset = sizeof(info);
  info.argsz = total;  // always the size for everything
  info.flags |= u::kIommuInfoCaps;
  std::memcpy(base, &info, std::min<size_t>(argsz, sizeof(info)));
  return 0;
}

}  // namespace viommu::vfio::model
