#include "viommu/vfio/host/model/process_memory.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
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

// PROCMAP_QUERY (include/uapi/linux/fs.h since Linux 6.11; Debian 12's
// headers predate it): one VMA of a /proc/<pid>/maps fd by address.
struct ProcmapQuery {
  uint64_t size;  // sizeof(ProcmapQuery)
  uint64_t query_flags;
  uint64_t query_addr;
  uint64_t vma_start;  // out
  uint64_t vma_end;    // out, exclusive
  uint64_t vma_flags;  // out
  uint64_t vma_page_size;
  uint64_t vma_offset;
  uint64_t inode;
  uint32_t dev_major;
  uint32_t dev_minor;
  uint32_t vma_name_size;  // in/out; 0: no name
  uint32_t build_id_size;  // in/out; 0: no build id
  uint64_t vma_name_addr;
  uint64_t build_id_addr;
};
static_assert(sizeof(ProcmapQuery) == 104);
constexpr unsigned long kProcmapQuery = _IOWR('f', 17, ProcmapQuery);
constexpr uint64_t kVmaReadable = 1;
constexpr uint64_t kVmaWritable = 2;

}  // namespace

ProcessMemory::~ProcessMemory() {
  if (maps_fd_ >= 0) close(maps_fd_);
}

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

bool ProcessMemory::Pinnable(uint64_t vaddr, uint64_t len, bool write) const {
  VIOMMU_CHECK(len >= 1);
  const uint64_t last = vaddr + (len - 1);
  VIOMMU_CHECK(last >= vaddr);
  if (Answer a = PinnableByQuery(vaddr, last, write); a != Answer::kUnknown) {
    return a == Answer::kYes;
  }
  if (PinnableCached(vaddr, last, write)) return true;
  if (!ReloadVmas()) return true;
  return PinnableCached(vaddr, last, write);
}

ProcessMemory::Answer ProcessMemory::PinnableByQuery(uint64_t vaddr,
                                                     uint64_t last,
                                                     bool write) const {
  if (query_unsupported_) return Answer::kUnknown;
  if (maps_fd_ < 0) {
    maps_fd_ = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (maps_fd_ < 0) {
      query_unsupported_ = true;
      return Answer::kUnknown;
    }
  }
  // Walk the VMAs covering [vaddr, last]; a gap or a missing permission
  // is a no.
  for (uint64_t addr = vaddr;;) {
    ProcmapQuery q{};
    q.size = sizeof(q);
    q.query_addr = addr;  // query_flags 0: the VMA covering addr exactly
    if (ioctl(maps_fd_, kProcmapQuery, &q) != 0) {
      if (errno == ENOENT) return Answer::kNo;
      query_unsupported_ = true;  // ENOTTY before 6.11
      return Answer::kUnknown;
    }
    if (!(q.vma_flags & kVmaReadable) ||
        (write && !(q.vma_flags & kVmaWritable))) {
      return Answer::kNo;
    }
    if (q.vma_end == 0 || q.vma_end - 1 >= last) return Answer::kYes;
    addr = q.vma_end;
  }
}

bool ProcessMemory::PinnableCached(uint64_t vaddr, uint64_t last,
                                   bool write) const {
  // Walk the mappings from the one holding vaddr while they are contiguous
  // and allow the access.
  auto it = vmas_.upper_bound(vaddr);
  if (it == vmas_.begin()) return false;
  --it;
  uint64_t covered = vaddr;  // first byte not yet known to be allowed
  for (; it != vmas_.end() && it->first <= covered; ++it) {
    const Vma& v = it->second;
    if (v.end <= covered || !v.read || (write && !v.write)) return false;
    if (v.end - 1 >= last) return true;
    covered = v.end;
  }
  return false;
}

bool ProcessMemory::ReloadVmas() const {
  std::FILE* f = std::fopen("/proc/self/maps", "re");
  if (f == nullptr) return false;
  vmas_.clear();
  // "start-end perms offset dev inode path": only the first two fields.
  unsigned long long start, end;
  char perms[8];
  char line[512];
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::sscanf(line, "%llx-%llx %7s", &start, &end, perms) == 3 &&
        start < end) {
      vmas_[start] =
          Vma{.end = end, .read = perms[0] == 'r', .write = perms[1] == 'w'};
    }
    // A path longer than the buffer: skip the rest of the line.
    while (std::strchr(line, '\n') == nullptr &&
           std::fgets(line, sizeof(line), f) != nullptr) {
    }
  }
  std::fclose(f);
  return true;
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
