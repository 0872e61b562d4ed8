// viommu/vfio/host/model/process_memory.h — what the model's "GUP" sees of
// this process: which virtual addresses are ordinary pinnable memory, which
// are device memory (VM_PFNMAP, e.g. an mmap'd BAR), which are unmapped;
// and the locked-memory counter that type1 and iommufd charge.
//
//   ProcessMemory mem;                       // limit: unlimited
//   mem.set_memlock_limit_pages(1024);       // RLIMIT_MEMLOCK >> 12
//   if (mem.Classify(vaddr, len) == VaddrKind::kUnmapped) return -EFAULT;
//   if (int rc = mem.Charge(pages); rc < 0) return rc;   // -ENOMEM
//
// Classification: ranges registered with AddDeviceMemory are kPfnMap; other
// addresses are probed with mincore(2), so anything this process really
// has mapped (heap, mmap'd guest RAM) is kAnonymous and anything else is
// kUnmapped. Pinnable adds GUP's permission check (a read-only mapping
// cannot be pinned for a device write). Thread-safety: control context
// only.
#ifndef VIOMMU_VFIO_HOST_MODEL_PROCESS_MEMORY_H_
#define VIOMMU_VFIO_HOST_MODEL_PROCESS_MEMORY_H_

#include <cstdint>

#include "absl/container/btree_map.h"

namespace viommu::vfio::model {

inline constexpr uint64_t kHostPageSize = 4096;

enum class VaddrKind {
  kUnmapped,   // some page of the range is not mapped: GUP fails (EFAULT)
  kAnonymous,  // ordinary process memory: pinnable, charged
  kPfnMap,     // device memory (VM_PFNMAP): type1 maps it uncharged, iommufd
               // refuses it (EFAULT)
  kMixed,      // both pinnable and device pages: GUP stops at the boundary
};

class ProcessMemory {
 public:
  ProcessMemory() = default;
  ~ProcessMemory();
  ProcessMemory(const ProcessMemory&) = delete;
  ProcessMemory& operator=(const ProcessMemory&) = delete;

  // REQUIRES: len >= 1 and vaddr + len - 1 does not wrap.
  VaddrKind Classify(uint64_t vaddr, uint64_t len) const;

  // Whether GUP could pin every page of [vaddr, vaddr + len) for reading,
  // or for writing when `write` (pin_user_pages with FOLL_WRITE): each page
  // lies in a readable, and then writable, mapping of this process. Asked
  // of the kernel with PROCMAP_QUERY (Linux >= 6.11), exact. On older
  // kernels /proc/self/maps is read and cached, and re-read whenever the
  // cache cannot answer yes: new mappings and upgrades are always seen, a
  // later downgrade of a range already answered yes may go unseen until a
  // query misses. True when neither source can be read.
  // REQUIRES: len >= 1 and vaddr + len - 1 does not wrap.
  bool Pinnable(uint64_t vaddr, uint64_t len, bool write) const;

  // Marks [vaddr, vaddr + len) as device memory (the model's BAR mmaps).
  // REQUIRES: page aligned, not overlapping an existing device range.
  void AddDeviceMemory(uint64_t vaddr, uint64_t len);
  void RemoveDeviceMemory(uint64_t vaddr);

  // mm->locked_vm, in pages. Charge returns 0 or -ENOMEM when
  // locked + pages would exceed the limit and the process lacks
  // CAP_IPC_LOCK; Uncharge never fails (REQUIRES: pages <= locked).
  [[nodiscard]] int Charge(uint64_t pages);
  void Uncharge(uint64_t pages);
  uint64_t locked_pages() const { return locked_pages_; }

  void set_memlock_limit_pages(uint64_t pages) { limit_pages_ = pages; }
  uint64_t memlock_limit_pages() const { return limit_pages_; }
  void set_cap_ipc_lock(bool on) { cap_ipc_lock_ = on; }
  bool cap_ipc_lock() const { return cap_ipc_lock_; }

 private:
  struct Vma {
    uint64_t end;  // exclusive
    bool read;
    bool write;
  };
  enum class Answer { kYes, kNo, kUnknown };
  Answer PinnableByQuery(uint64_t vaddr, uint64_t last, bool write) const;
  bool PinnableCached(uint64_t vaddr, uint64_t last, bool write) const;
  bool ReloadVmas() const;

  absl::btree_map<uint64_t, uint64_t> device_ranges_;  // start -> len
  mutable absl::btree_map<uint64_t, Vma> vmas_;        // start -> vma
  mutable int maps_fd_ = -1;  // /proc/self/maps for PROCMAP_QUERY, lazily
  mutable bool query_unsupported_ = false;
  uint64_t locked_pages_ = 0;
  uint64_t limit_pages_ = UINT64_MAX;
  bool cap_ipc_lock_ = false;
};

}  // namespace viommu::vfio::model

#endif  // VIOMMU_VFIO_HOST_MODEL_PROCESS_MEMORY_H_
