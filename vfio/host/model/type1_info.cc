// Type1Iommu: the ioctl dispatch, GET_INFO and its capability chain,
// DIRTY_PAGES, CHECK_EXTENSION.
#include <cerrno>
#include <cstring>

#include "viommu/vfio/host/model/type1_iommu.h"

namespace viommu::vfio::model {

namespace {

constexpr uint64_t kDirtyBitmapSizeMax = 1ull << 28;  // 256 MiB

void PutCap(std::vector<uint8_t>* buf, const void* cap, size_t len,
            size_t padded_len) {
  const size_t at = buf->size();
  buf->resize(at + padded_len, 0);
  std::memcpy(buf->data() + at, cap, len);
}

}  // namespace

int Type1Iommu::CheckExtension(KernelVersion kernel, const Type1Iommu* iommu,
                               unsigned long extension) {
  switch (extension) {
    case uapi::kVfioType1Iommu:
    case uapi::kVfioType1v2Iommu:
    case uapi::kVfioUnmapAll:
      return 1;
    case uapi::kVfioType1NestingIommu:
      return HasType1Nesting(kernel) ? 1 : 0;
    case uapi::kVfioUpdateVaddr:
      // Measured on 6.1.192 as on latest: 0 before SET_IOMMU; the model
      // has no emulated groups.
      return iommu != nullptr ? 1 : 0;
    case uapi::kVfioDmaCcIommu:
      // Model domains never enforce coherency: 1 only with no domain.
      return iommu != nullptr && iommu->domains_.empty() ? 1 : 0;
    default:
      return 0;
  }
}

int Type1Iommu::Ioctl(unsigned long request, uintptr_t arg) {
  switch (request) {
    case uapi::kVfioCheckExtension:
      return CheckExtension(config_.kernel, this, arg);
    case uapi::kVfioIommuGetInfo:
      return GetInfo(arg);
    case uapi::kVfioIommuMapDma:
      return MapDma(arg);
    case uapi::kVfioIommuUnmapDma:
      return UnmapDma(arg);
    case uapi::kVfioIommuDirtyPages:
      return DirtyPages(arg);
    default:
      return -ENOTTY;
  }
}

std::vector<uint8_t> Type1Iommu::BuildCaps() const {
  const bool padded = HasPaddedInfoCaps(config_.kernel);
  constexpr size_t kInfo = sizeof(uapi::vfio_iommu_type1_info);
  std::vector<uint8_t> buf;
  std::vector<size_t> starts;

  uapi::vfio_iommu_type1_info_cap_migration mig{};
  mig.header = {uapi::kIommuTypeCapMigration, 1, 0};
  mig.pgsize_bitmap = MinPageSize();
  mig.max_dirty_bitmap_size = kDirtyBitmapSizeMax;
  starts.push_back(buf.size());
  PutCap(&buf, &mig, sizeof(mig), sizeof(mig));

  uapi::vfio_iommu_type1_info_dma_avail avail{};
  avail.header = {uapi::kIommuTypeCapDmaAvail, 1, 0};
  avail.avail = dma_avail_;
  starts.push_back(buf.size());
  // 6.1 appends caps unpadded; newer kernels round each to 8 bytes.
  PutCap(&buf, &avail, sizeof(avail), padded ? 16 : sizeof(avail));

  if (!iova_list_.empty()) {
    uapi::vfio_iommu_type1_info_cap_iova_range hdr{};
    hdr.header = {uapi::kIommuTypeCapIovaRange, 1, 0};
    hdr.nr_iovas = static_cast<uint32_t>(iova_list_.size());
    starts.push_back(buf.size());
    PutCap(&buf, &hdr, sizeof(hdr), sizeof(hdr));
    for (const IovaWindow& w : iova_list_) {
      const uapi::vfio_iova_range r{w.start, w.last};
      PutCap(&buf, &r, sizeof(r), sizeof(r));
    }
  }
  // Chain: each header's next is the following cap's offset from the start
  // of the info buffer (caps go at offset 24); the last is 0.
  for (size_t i = 0; i + 1 < starts.size(); ++i) {
    const uint32_t next = static_cast<uint32_t>(kInfo + starts[i + 1]);
    std::memcpy(
        buf.data() + starts[i] + offsetof(uapi::vfio_info_cap_header, next),
        &next, sizeof(next));
  }
  return buf;
}

int Type1Iommu::GetInfo(uintptr_t arg) {
  if (arg == 0) return -EFAULT;
  auto* user = reinterpret_cast<uint8_t*>(arg);
  uapi::vfio_iommu_type1_info info{};
  std::memcpy(&info, user, uapi::kIommuType1InfoMinsz);
  if (info.argsz < uapi::kIommuType1InfoMinsz) return -EINVAL;
  size_t copy_back;
  if (HasPaddedInfoCaps(config_.kernel)) {
    copy_back = std::min<size_t>(info.argsz, sizeof(info));
  } else {
    // 6.1 copies back through iova_pgsizes, or through cap_offset once
    // argsz reaches it.
    copy_back = info.argsz >= offsetof(uapi::vfio_iommu_type1_info, pad)
                    ? offsetof(uapi::vfio_iommu_type1_info, pad)
                    : uapi::kIommuType1InfoMinsz;
  }
  info.flags = uapi::kIommuInfoPgsizes;
  info.iova_pgsizes = pgsize_bitmap_;
  info.cap_offset = 0;
  const std::vector<uint8_t> caps = BuildCaps();
  info.flags |= uapi::kIommuInfoCaps;
  const uint64_t need = sizeof(info) + caps.size();
  if (info.argsz < need) {
    info.argsz = static_cast<uint32_t>(need);
  } else {
    std::memcpy(user + sizeof(info), caps.data(), caps.size());
    info.cap_offset = sizeof(info);
  }
  std::memcpy(user, &info, copy_back);
  return 0;
}

void Type1Iommu::AllocDirtyBitmap(uint64_t iova, Dma& dma) const {
  const uint64_t pages = (dma.last - iova + 1) / MinPageSize();
  dma.dirty_bitmap.assign((pages + 63) / 64 + 1, 0);
}

void Type1Iommu::CopyDirtyBits(uint64_t iova, uint64_t last, uint64_t data,
                               bool clear_after) {
  const unsigned pg_shift = __builtin_ctzll(MinPageSize());
  auto* user_words = reinterpret_cast<uint64_t*>(data);
  for (auto it = FindDma(iova, last); it != dmas_.end() && it->first <= last;
       ++it) {
    Dma& dma = it->second;
    std::vector<uint64_t>& bm = dma.dirty_bitmap;
    const uint64_t nbits = (dma.last - it->first + 1) >> pg_shift;
    const uint64_t bit_offset = (it->first - iova) >> pg_shift;
    const uint64_t shift = bit_offset % 64;
    uint64_t* user = user_words + bit_offset / 64;
    // Every group is non-pinned scope (no mdev in the model): a dma mapped
    // in a domain is all dirty.
    if (dma.iommu_mapped) {
      for (uint64_t b = 0; b < nbits; ++b)
        bm[b / 64] |= uint64_t{1} << (b % 64);
    }
    const uint64_t words = (nbits + shift + 63) / 64;
    if (shift != 0) {
      // Shift left in place over `words` words (bits shifted past the last
      // one are lost, higher bits of it kept), then OR the user's word in.
      for (uint64_t k = words; k-- > 0;) {
        bm[k] = (bm[k] << shift) | (k > 0 ? bm[k - 1] >> (64 - shift) : 0);
      }
      uint64_t leftover;
      std::memcpy(&leftover, user, sizeof(leftover));
      bm[0] |= leftover;
    }
    std::memcpy(user, bm.data(), words * sizeof(uint64_t));
    if (clear_after) {
      for (uint64_t b = 0; b < nbits; ++b) {
        bm[b / 64] &= ~(uint64_t{1} << (b % 64));
      }
    }
  }
}

int Type1Iommu::DirtyPages(uintptr_t arg) {
  if (!config_.v2) return -EACCES;
  if (arg == 0) return -EFAULT;
  struct Header {
    uint32_t argsz;
    uint32_t flags;
  } dirty;
  std::memcpy(&dirty, reinterpret_cast<const void*>(arg), sizeof(dirty));
  constexpr uint32_t kStart = 1, kStop = 2, kGetBitmap = 4;
  if (dirty.argsz < sizeof(dirty) ||
      (dirty.flags & ~(kStart | kStop | kGetBitmap))) {
    return -EINVAL;
  }
  if (dirty.flags == kStart) {
    if (!dirty_tracking_) {
      for (auto& [iova, dma] : dmas_) AllocDirtyBitmap(iova, dma);
    }
    dirty_tracking_ = true;
    return 0;
  }
  if (dirty.flags == kStop) {
    for (auto& [iova, dma] : dmas_) dma.dirty_bitmap.clear();
    dirty_tracking_ = false;
    return 0;
  }
  if (dirty.flags != kGetBitmap) return -EINVAL;  // none, or more than one
  struct Range {
    uint64_t iova;
    uint64_t size;
    uapi::vfio_bitmap bitmap;
  } range;
  static_assert(sizeof(Range) == 40);
  if (dirty.argsz - sizeof(dirty) < sizeof(range)) return -EINVAL;
  std::memcpy(&range, reinterpret_cast<const uint8_t*>(arg) + sizeof(dirty),
              sizeof(range));
  if (range.size != 0 && range.iova + (range.size - 1) < range.iova) {
    return HasOverflowErrno(config_.kernel) ? -EOVERFLOW : -EINVAL;
  }
  if (range.bitmap.pgsize == 0) return -EINVAL;
  const uint64_t npages = range.size >> __builtin_ctzll(range.bitmap.pgsize);
  if (npages == 0 || range.bitmap.size == 0 ||
      range.bitmap.size > kDirtyBitmapSizeMax ||
      range.bitmap.size < ((npages + 63) / 64) * 8) {
    return -EINVAL;
  }
  const uint64_t pgsize = MinPageSize();
  if (range.bitmap.pgsize != pgsize || (range.iova & (pgsize - 1)) ||
      range.size == 0 || (range.size & (pgsize - 1)) || !dirty_tracking_) {
    return -EINVAL;
  }
  const uint64_t last = range.iova + (range.size - 1);
  auto head = FindDma(range.iova, range.iova);
  if (head != dmas_.end() && head->first != range.iova) return -EINVAL;
  auto tail = FindDma(last, last);
  if (tail != dmas_.end() && tail->second.last != last) return -EINVAL;
  CopyDirtyBits(range.iova, last, range.bitmap.data, /*clear_after=*/true);
  return 0;
}

}  // namespace viommu::vfio::model
