#include "viommu/vfio/host/model/process_memory.h"

#include <sys/mman.h>

#include <cerrno>
#include <vector>

#include "viommu/util/check.h"

namespace viommu::vfio::model {

namespace {

// Whether every page of [first_page, last_page] (page addresses) is mapped
// in this process: mincore(2) fails with ENOMEM on an unmapped page.
bool AllMapped(uint64_t first_page, uint64_t last_page) {
  // Probe in bounded chunks so that a huge range costs no huge vector.
  constexpr uint64_t kChunkPages = 4096;
  unsigned char vec[kChunkPages];
  for (uint64_t p = first_page;;) {
    const uint64_t pages =
        std::min<uint64_t>((last_page - p) / kHostPageSize + 1, kChunkPages);
    if (mincore(reinterpret_cast<void*>(p), pages * kHostPageSize, vec) != 0) {
      return false;
    }
    const uint64_t done = pages * kHostPageSize;
    if (last_page - p < done) return true;
    p += done;
  }
}

}  // namespace

VaddrKind ProcessMemory::Classify(uint64_t vaddr, uint64_t len) const {
  VIOMMU_CHECK(len >= 1);
  const uint64_t last = vaddr + (len - 1);
  VIOMMU_CHECK(last >= vaddr);
  // Device ranges overlapping [vaddr, last], and the bytes they cover.
  uint64_t device_bytes = 0;
  auto it = device_ranges_.upper_bound(vaddr);
  if (it != device_ranges_.begin()) --it;
  for (; it != device_ranges_.end() && it->first <= last; ++it) {
    const uint64_t d_first = it->first;
    const uint64_t d_last = it->first + (it->second - 1);
    if (d_last < vaddr) continue;
    device_bytes += std::min(d_last, last) - std::max(d_first, vaddr) + 1;
  }
  const uint64_t total = last - vaddr + 1;  // len, without overflow at 2^64
  if (device_bytes == total) return VaddrKind::kPfnMap;
  if (!AllMapped(vaddr & ~(kHostPageSize - 1), last & ~(kHostPageSize - 1))) {
    return VaddrKind::kUnmapped;
  }
  return device_bytes == 0 ? VaddrKind::kAnonymous : VaddrKind::kMixed;
}

void ProcessMemory::AddDeviceMemory(uint64_t vaddr, uint64_t len) {
  VIOMMU_CHECK(len > 0 && (vaddr | len) % kHostPageSize == 0);
  device_ranges_[vaddr] = len;
}

void ProcessMemory::RemoveDeviceMemory(uint64_t vaddr) {
  device_ranges_.erase(vaddr);
}

int ProcessMemory::Charge(uint64_t pages) {
  if (!cap_ipc_lock_ &&
      (pages > limit_pages_ || locked_pages_ > limit_pages_ - pages)) {
    return -ENOMEM;
  }
  locked_pages_ += pages;
  return 0;
}

void ProcessMemory::Uncharge(uint64_t pages) {
  VIOMMU_CHECK(pages <= locked_pages_);
  locked_pages_ -= pages;
}

}  // namespace viommu::vfio::model
