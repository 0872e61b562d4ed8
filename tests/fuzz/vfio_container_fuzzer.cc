// libFuzzer target: the VFIO container layer (VfioManager, the shared
// listener, Type1Container / IommufdContainer) against ModelHost, driven by
// a program of topology changes, guest-IOMMU table changes, device
// attach/detach and injected host failures.
//
// Setup per input (no machine): a guest memory tree `sys` (AddressSpace
// "memory") where regions are added, and a device tree `dev` (AddressSpace
// "dev", which the devices attach to) holding an alias of all of `sys` at
// priority 0 and, when present, an IOMMU region (a TableIommu translating
// into "memory") over dev [0xc0000000, 0x100000000) at priority 1.
//
// Byte 0: bit 0 = iommufd (else type1) for every attach, bit 1 = IOMMU
// region present from the start. Then opcodes with operands (missing bytes
// read as zero), at most kMaxSteps:
//   add region (RAM, read-only RAM, ram_device, MMIO, RAM alias at a
//   sub-page offset; in one of 8 windows that straddle the default host
//   platform's reserved regions, apertures and bit 63; 1..16 pages or
//   2 MiB), remove, toggle read-only, begin/commit transaction, table
//   MAP/UNMAP (4 KiB or 2 MiB), IOMMU region add/remove, attach/detach of
//   the three default host devices, FailNthMapDma, FailNextGroupAttach, a
//   memlock limit (ENOMEM: the injected failure iommufd also feels).
//
// Oracle after every step, per container (VfioContainer*), from an
// expected page set E computed here, not by the container code:
//   * RAM sections of the dev FlatView: host-page rounded, skipped for bit
//     63 and page-offset mismatch, MMIO never, ram_device on type1 mapped
//     (PFNMAP), on iommufd never (EFAULT, best effort), only pages inside
//     container->iova_ranges(), read-only per section;
//   * IOMMU entries: each table entry as translated in "memory" at the
//     moment the container heard of it (MAP event, replay at attach or at
//     IOMMU region add): mapped iff the whole target is RAM (ram_device
//     not on iommufd), pieces inside iova_ranges(), read-only when the
//     entry lacks write or the RAM is read-only. (Why snapshots: a RAM
//     removal under a live IOMMU entry does not unmap it, as in QEMU.)
//   * Error policy (docs/vfio-container.md): a step in which the container
//     counted an error, warning or failed map may leave expected pages
//     unmapped (they are excused while E keeps the same value there);
//     never an extra or a wrong page. So may a step in which the IOVA
//     ranges changed (docs/vfio-container.md, "Valid IOVA ranges").
// Page sets are kept as runs of pages (start, end, hva, read-only), merged
// where both continue, so comparing them is exact page by page but costs
// in runs. Checked against: container->mappings(); every attached device's
// host IOMMU domain (Translate of each run for read and, unless read-only,
// write; each page of a read-only run not writable; mapped_bytes total
// equals the table's); the host's own count (type1 vfio_dma / IOAS areas); no
// page inside a reserved region or outside the aperture of any attached
// device; locked_vm == the anonymous pages mapped; unattached devices have
// no domain. Teardown: no domain, no container fd, locked_vm 0.
// A failure prints both sets and traps.
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/numeric/int128.h"
#include "tests/fuzz/fuzz_input.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/flat_view.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/memory/mmio_ops.h"
#include "viommu/memory/table_iommu.h"
#include "viommu/vfio/host/model/model_host.h"
#include "viommu/vfio/iommufd_container.h"
#include "viommu/vfio/type1_container.h"
#include "viommu/vfio/vfio_manager.h"

namespace viommu::vfio::fuzz {
namespace {

constexpr uint64_t kPage = 4096;
constexpr int kMaxSteps = 64;
constexpr size_t kMaxRegions = 12;
constexpr uint64_t kIommuBase = 0xc0000000;  // dev AS offset of the region
constexpr uint64_t kIommuSize = 0x40000000;
constexpr uint64_t kWindows[8] = {
    0x0,                           // low RAM
    0x0effc000,                    // start of 02:00.0's direct region
    0x0f0fc000,                    // its end
    0xfedfc000,                    // MSI window start (under the IOMMU)
    0xfeefc000,                    // MSI window end
    (uint64_t{1} << 39) - 0x8000,  // 03:00.0's aperture end
    (uint64_t{1} << 48) - 0x8000,  // the 48-bit aperture end
    (uint64_t{1} << 63) - 0x8000,  // bit 63
};
constexpr uint64_t kBigRam = 0x200000;
constexpr uint64_t kPoolPages = 64;  // ram_device backing ("a BAR mmap")
const char* const kBdfs[3] = {"0000:01:00.0", "0000:02:00.0", "0000:03:00.0"};

// kBdfs parsed once (Parse per step and check was a visible cost).
const HostPciAddress& Bdf(size_t i) {
  static const HostPciAddress* const parsed = [] {
    static HostPciAddress a[3];
    for (size_t j = 0; j < 3; ++j) a[j] = *HostPciAddress::Parse(kBdfs[j]);
    return a;
  }();
  return parsed[i];
}

using Input = ::viommu::fuzz::FuzzInput;

class NullMmio final : public memory::MmioOps {
 public:
  memory::MemTxResult Read(uint64_t, uint64_t* v, unsigned,
                           memory::MemTxAttrs) override {
    *v = 0;
    return memory::MemTxResult::Ok();
  }
  memory::MemTxResult Write(uint64_t, uint64_t, unsigned,
                            memory::MemTxAttrs) override {
    return memory::MemTxResult::Ok();
  }
};

// The expected or actual host mapping as runs of pages: [start, end) maps
// page p to hva + (p - start), read-only or not. Runs are disjoint and
// merged where both IOVA and hva continue with the same flags, so two maps
// are equal iff they agree page by page, and every operation costs in runs,
// not pages (2 MiB is one run, not 512 map nodes).
struct Run {
  uint64_t end;  // exclusive, page aligned
  Hva hva;
  bool ro;
  bool device;  // ram_device / pool memory: not charged
};
using PageMap = std::map<uint64_t, Run>;  // start -> run

// Whether two runs give their common pages the same value.
bool SameValue(uint64_t as, const Run& a, uint64_t bs, const Run& b) {
  return a.hva - as == b.hva - bs && a.ro == b.ro;
}

// Removes [s, e) from m, splitting the runs that straddle its ends.
void Erase(PageMap& m, uint64_t s, uint64_t e) {
  auto it = m.lower_bound(s);
  if (it != m.begin()) {
    auto prev = std::prev(it);
    if (prev->second.end > s) {
      const Run whole = prev->second;
      prev->second.end = s;
      if (whole.end > e) {
        m.emplace(e, Run{whole.end, whole.hva + (e - prev->first), whole.ro,
                         whole.device});
        return;
      }
    }
  }
  while (it != m.end() && it->first < e) {
    if (it->second.end > e) {
      const Run r = it->second;
      const uint64_t start = it->first;
      m.erase(it);
      m.emplace(e, Run{r.end, r.hva + (e - start), r.ro, r.device});
      return;
    }
    it = m.erase(it);
  }
}

// m[s, e) = hva.. (overriding what was there), merged with its neighbours.
void Set(PageMap& m, uint64_t s, uint64_t e, Hva hva, bool ro, bool device) {
  if (s >= e) return;
  Erase(m, s, e);
  auto it = m.emplace(s, Run{e, hva, ro, device}).first;
  auto next = std::next(it);
  if (next != m.end() && next->first == e && next->second.ro == ro &&
      next->second.device == device && next->second.hva == hva + (e - s)) {
    it->second.end = next->second.end;
    m.erase(next);
  }
  if (it != m.begin()) {
    auto prev = std::prev(it);
    if (prev->second.end == s && prev->second.ro == ro &&
        prev->second.device == device &&
        prev->second.hva + (s - prev->first) == hva) {
      prev->second.end = it->second.end;
      m.erase(it);
    }
  }
}

// The pages of a that b does not hold with the same value.
PageMap Subtract(const PageMap& a, const PageMap& b) {
  PageMap out;
  for (const auto& [s, r] : a) {
    uint64_t pos = s;
    auto it = b.upper_bound(s);
    if (it != b.begin()) --it;
    for (; it != b.end() && it->first < r.end; ++it) {
      const uint64_t bs = std::max(it->first, s);
      const uint64_t be = std::min(it->second.end, r.end);
      if (be <= bs || !SameValue(s, r, it->first, it->second)) continue;
      Set(out, pos, bs, r.hva + (pos - s), r.ro, r.device);
      pos = be;
    }
    Set(out, pos, r.end, r.hva + (pos - s), r.ro, r.device);
  }
  return out;
}

// The pages a and b hold with the same value.
PageMap Intersect(const PageMap& a, const PageMap& b) {
  return Subtract(a, Subtract(a, b));
}

uint64_t Pages(const PageMap& m) {
  uint64_t n = 0;
  for (const auto& [s, r] : m) n += (r.end - s) / kPage;
  return n;
}

// Adds [s, e) -> hva.. to m, clipped to the pages that lie wholly inside
// one of the container's valid IOVA ranges (all of them when none).
void SetInRanges(PageMap& m, const std::vector<Range>& ranges, uint64_t s,
                 uint64_t e, Hva hva, bool ro, bool device) {
  if (ranges.empty()) {
    Set(m, s, e, hva, ro, device);
    return;
  }
  for (const Range& r : ranges) {
    const Size128 lo =
        std::max(Size128(s), (Size128(r.first) + (kPage - 1)) / kPage * kPage);
    const Size128 hi =
        std::min(Size128(e), (Size128(r.last) + 1) / kPage * kPage);
    if (lo >= hi) continue;
    const uint64_t l = absl::Uint128Low64(lo);
    Set(m, l, absl::Uint128Low64(hi), hva + (l - s), ro, device);
  }
}

uint8_t* Pool() {
  static uint8_t* pool = [] {
    void* p = mmap(nullptr, kPoolPages * kPage, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) __builtin_trap();
    return static_cast<uint8_t*>(p);
  }();
  return pool;
}

bool InPool(Hva hva) {
  const Hva p = reinterpret_cast<uintptr_t>(Pool());
  return hva >= p && hva < p + kPoolPages * kPage;
}

void PrintPages(const char* what, const PageMap& m) {
  std::fprintf(stderr, "%s (%lu pages):\n", what,
               static_cast<unsigned long>(Pages(m)));
  for (const auto& [start, r] : m) {
    std::fprintf(stderr, "  iova 0x%lx +%lu pages -> hva 0x%lx %s\n",
                 static_cast<unsigned long>(start),
                 static_cast<unsigned long>((r.end - start) / kPage),
                 static_cast<unsigned long>(r.hva), r.ro ? "ro" : "rw");
  }
}

[[noreturn]] void Fail(const char* why) {
  std::fprintf(stderr, "vfio_container_fuzzer: oracle failure: %s\n", why);
  __builtin_trap();
}

class Program {
 public:
  Program(bool iommufd, bool iommu_present)
      : iommufd_(iommufd),
        host_(DefaultHostPlatform()),
        sys_root_(
            memory::MemoryRegion::CreateContainer(&sys_, "system", kSize2To64)),
        dev_root_(memory::MemoryRegion::CreateContainer(&sys_, "dev-root",
                                                        kSize2To64)),
        memory_(&sys_, sys_root_, "memory"),
        dev_(&sys_, dev_root_, "dev"),
        table_(&memory_),
        iommu_mr_(memory::MemoryRegion::CreateIommu(&sys_, "dmar", kIommuSize,
                                                    &table_)) {
    table_.Attach(iommu_mr_->iommu());
    dev_root_->AddSubregion(
        0, memory::MemoryRegion::CreateAlias(&sys_, "sys-alias", sys_root_, 0,
                                             kSize2To64));
    host_.process_memory().AddDeviceMemory(reinterpret_cast<uintptr_t>(Pool()),
                                           kPoolPages * kPage);
    manager_ = std::make_unique<VfioManager>(&host_);
    if (iommu_present) ToggleIommu();
  }

  ~Program() {
    while (txn_depth_ > 0) {
      sys_.CommitTransaction();
      --txn_depth_;
    }
    manager_.reset();
    // Teardown oracle: nothing mapped, nothing pinned, no host object.
    for (size_t i = 0; i < 3; ++i) {
      if (host_.DeviceDmaDomain(Bdf(i)) != nullptr) {
        Fail("a device keeps a DMA domain after teardown");
      }
    }
    if (!host_.ContainerFds().empty()) Fail("container fds after teardown");
    if (!host_.IommufdFds().empty()) Fail("/dev/iommu fds after teardown");
    if (host_.locked_pages() != 0) {
      std::fprintf(stderr, "locked_vm %lu\n",
                   static_cast<unsigned long>(host_.locked_pages()));
      Fail("pages still pinned after teardown");
    }
    if (iommu_in_) dev_root_->RemoveSubregion(iommu_mr_.get());
    for (auto& r : regions_) sys_root_->RemoveSubregion(r.mr.get());
  }

  void Step(Input& in);
  void Check();

 private:
  struct Region {
    std::shared_ptr<memory::MemoryRegion> mr;
    std::shared_ptr<memory::MemoryRegion> backing;  // alias target
  };
  // Per container: IOMMU entries as translated when it heard of them, and
  // pages excused by a counted error.
  struct ContainerState {
    std::map<uint64_t, PageMap> iommu;  // table iova -> expected pages
    PageMap excused;
    uint64_t error_marks = 0;  // errors + warnings + map_errors last seen
  };

  void AddRegion(Input& in);
  void ToggleIommu();
  void TableMap(Input& in);
  void TableUnmap(Input& in);
  PageMap TranslateEntry(VfioContainer* c, uint64_t iova, uint64_t size,
                         Gpa gpa, memory::IommuPerm perm);
  void SnapshotAll(VfioContainer* c, ContainerState& st);
  void Reconcile();
  PageMap Expected(VfioContainer* c, ContainerState& st);
  void CheckContainer(VfioContainer* c, ContainerState& st,
                      uint64_t* anon_pages);

  static uint64_t PickIova(Input& in, uint64_t* size) {
    const uint8_t a = in.U8();
    if (a & 0x80) {
      *size = kBigRam;
      // 2 MiB blocks: low, and the one holding the MSI window.
      return (a & 1) ? 0x3ee00000 : static_cast<uint64_t>(a & 0x7e) << 20;
    }
    *size = kPage;
    static constexpr uint64_t kBases[4] = {0x0, 0x3edfc000, 0x3eefc000,
                                           0x100000};
    return kBases[a & 3] + static_cast<uint64_t>((a >> 2) & 15) * kPage;
  }
  static Gpa PickGpa(Input& in, uint64_t size) {
    const uint8_t b = in.U8();
    if (size == kBigRam) return uint64_t{b & 3u} * kBigRam;  // 0..6 MiB
    return kWindows[b & 7] + static_cast<uint64_t>((b >> 3) & 31) * kPage;
  }

  const bool iommufd_;
  model::ModelHost host_;
  memory::MemorySystem sys_;
  std::shared_ptr<memory::MemoryRegion> sys_root_;
  std::shared_ptr<memory::MemoryRegion> dev_root_;
  memory::AddressSpace memory_;
  memory::AddressSpace dev_;
  memory::TableIommu table_;
  std::shared_ptr<memory::MemoryRegion> iommu_mr_;
  NullMmio mmio_ops_;
  bool iommu_in_ = false;
  int txn_depth_ = 0;
  // Table entries (what TableIommu holds): iova -> {size, gpa, perm}.
  struct Entry {
    uint64_t size;
    Gpa gpa;
    memory::IommuPerm perm;
  };
  std::map<uint64_t, Entry> entries_;
  std::vector<Region> regions_;
  // Removed regions stay allocated until the end: a live IOMMU entry may
  // still point the host at them (see file comment).
  std::vector<Region> graveyard_;
  std::map<VfioContainer*, ContainerState> containers_;
  std::unique_ptr<VfioManager> manager_;
};

void Program::AddRegion(Input& in) {
  const uint8_t kind = in.U8();
  const uint8_t where = in.U8();
  const uint8_t len = in.U8();
  if (regions_.size() >= kMaxRegions) return;
  const uint64_t base =
      kWindows[where & 7] + uint64_t{(where >> 3) & 15u} * kPage;
  uint64_t size = static_cast<uint64_t>((len & 15) + 1) * kPage;
  if ((len & 0x30) == 0x30 && (where & 7) == 0) size = kBigRam;
  Region r;
  switch (kind % 6) {
    case 0:
    case 1: {  // RAM, read-only RAM
      auto ram = memory::MemoryRegion::CreateRam(&sys_, "ram", size);
      if (!ram.ok()) return;
      r.mr = *ram;
      if (kind % 6 == 1) r.mr->SetReadonly(true);
      break;
    }
    case 2: {  // ram_device over the pool (device memory for the host)
      const uint64_t pages = std::min<uint64_t>(size / kPage, kPoolPages / 2);
      const uint64_t off = (len >> 6) * 8 * kPage;  // 0, 8, 16, 24 pages
      r.mr = memory::MemoryRegion::CreateRamDevice(&sys_, "bar", pages * kPage,
                                                   Pool() + off);
      break;
    }
    case 3:
      r.mr = memory::MemoryRegion::CreateMmio(&sys_, "mmio", size, &mmio_ops_);
      break;
    default: {  // an alias of RAM at a sub-page offset (rounding, mismatch)
      auto ram = memory::MemoryRegion::CreateRam(&sys_, "ram", size + kPage);
      if (!ram.ok()) return;
      r.backing = *ram;
      const uint64_t off = (kind & 0x40) ? 0x800 : 0x0;
      const uint64_t alen = size - ((kind & 0x80) ? 0x400 : 0);
      r.mr = memory::MemoryRegion::CreateAlias(&sys_, "alias", r.backing, off,
                                               alen);
      const uint64_t shift = (kind & 0x20) ? 0x800 : 0;
      sys_root_->AddSubregionOverlap(base + shift, r.mr, (kind >> 3) & 1);
      regions_.push_back(std::move(r));
      return;
    }
  }
  sys_root_->AddSubregionOverlap(base, r.mr, (kind >> 3) & 1);
  regions_.push_back(std::move(r));
}

void Program::ToggleIommu() {
  if (iommu_in_) {
    dev_root_->RemoveSubregion(iommu_mr_.get());
    iommu_in_ = false;
    for (auto& [c, st] : containers_) st.iommu.clear();
    return;
  }
  dev_root_->AddSubregionOverlap(kIommuBase, iommu_mr_, 1);
  iommu_in_ = true;
  // Every listening container replays the table now.
  for (auto& [c, st] : containers_) SnapshotAll(c, st);
}

PageMap Program::TranslateEntry(VfioContainer* c, uint64_t iova, uint64_t size,
                                Gpa gpa, memory::IommuPerm perm) {
  PageMap out;
  memory::Translation t = memory_.Translate(gpa, size, /*is_write=*/false);
  if (t.mr == nullptr || !t.mr->IsRam() || t.mr->host() == nullptr ||
      t.len < size) {
    return out;  // iommu-target-not-ram
  }
  if (iommufd_ && t.mr->IsRamDevice()) return out;  // EFAULT (not GUP)
  const Hva hva =
      reinterpret_cast<uintptr_t>(t.mr->host()) + t.offset_in_region;
  const bool ro = (perm & memory::kIommuWrite) == 0 || t.readonly;
  const uint64_t host_iova = kIommuBase + iova;
  SetInRanges(out, c->iova_ranges(), host_iova, host_iova + size, hva, ro,
              t.mr->IsRamDevice());
  return out;
}

void Program::SnapshotAll(VfioContainer* c, ContainerState& st) {
  st.iommu.clear();
  if (!iommu_in_) return;
  for (const auto& [iova, e] : entries_) {
    st.iommu[iova] = TranslateEntry(c, iova, e.size, e.gpa, e.perm);
  }
}

void Program::TableMap(Input& in) {
  uint64_t size = 0;
  const uint64_t iova = PickIova(in, &size);
  const Gpa gpa = PickGpa(in, size);
  const uint8_t p = in.U8() % 3 + 1;
  const auto perm = static_cast<memory::IommuPerm>(p);
  if (!table_.Map(iova, size, gpa, perm).ok()) return;
  auto old = entries_.find(iova);
  const bool same = old != entries_.end() && old->second.gpa == gpa &&
                    old->second.perm == perm;
  entries_[iova] = {size, gpa, perm};
  if (same || !iommu_in_) return;  // identical: no event
  for (auto& [c, st] : containers_) {
    st.iommu[iova] = TranslateEntry(c, iova, size, gpa, perm);
  }
}

void Program::TableUnmap(Input& in) {
  uint64_t size = 0;
  const uint64_t iova = PickIova(in, &size);
  if (in.U8() & 1) size = kBigRam;  // may cover several 4K entries
  const uint64_t start = iova & ~(size - 1);
  if (!table_.Unmap(start, size).ok()) return;
  for (auto it = entries_.lower_bound(start);
       it != entries_.end() && it->first < start + size;) {
    for (auto& [c, st] : containers_) st.iommu.erase(it->first);
    it = entries_.erase(it);
  }
}

// VFIO_FUZZ_VERBOSE=1 prints each step (triage).
bool Verbose() {
  static const bool v = std::getenv("VFIO_FUZZ_VERBOSE") != nullptr;
  return v;
}

void Program::Step(Input& in) {
  const uint8_t op = in.U8();
  if (Verbose()) std::fprintf(stderr, "step op %u\n", op % 14);
  switch (op % 14) {
    case 0:
    case 1:
      AddRegion(in);
      break;
    case 2: {
      const uint8_t i = in.U8();
      if (regions_.empty()) break;
      Region r = std::move(regions_[i % regions_.size()]);
      regions_.erase(regions_.begin() + i % regions_.size());
      sys_root_->RemoveSubregion(r.mr.get());
      graveyard_.push_back(std::move(r));
      break;
    }
    case 3: {
      const uint8_t i = in.U8();
      if (regions_.empty()) break;
      memory::MemoryRegion* mr = regions_[i % regions_.size()].mr.get();
      mr->SetReadonly(!mr->readonly());
      break;
    }
    case 4:
      if (txn_depth_ < 3) {
        sys_.BeginTransaction();
        ++txn_depth_;
      }
      break;
    case 5:
      if (txn_depth_ > 0) {
        sys_.CommitTransaction();
        --txn_depth_;
      }
      break;
    case 6:
    case 7:
      TableMap(in);
      break;
    case 8:
      TableUnmap(in);
      break;
    case 9:
      // Not inside a transaction: the IOMMU section (and the replay) would
      // arrive at the commit, while table events arrive at once; keeping
      // the region fixed during transactions keeps E exact.
      if (txn_depth_ == 0) ToggleIommu();
      break;
    case 10: {
      const uint8_t d = in.U8();
      VfioDeviceSpec spec{.host = Bdf(d % 3)};
      if (iommufd_) spec.iommufd = (d & 0x10) ? "iommufd1" : "iommufd0";
      absl::StatusOr<VfioContainer*> c = manager_->AttachDevice(&dev_, spec);
      if (Verbose()) {
        std::fprintf(stderr, "attach %s: %s\n", kBdfs[d % 3],
                     c.ok() ? "ok" : c.status().ToString().c_str());
      }
      break;
    }
    case 11: {
      const uint8_t d = in.U8();
      absl::Status s = manager_->DetachDevice(Bdf(d % 3));
      if (Verbose()) {
        std::fprintf(stderr, "detach %s: %s\n", kBdfs[d % 3],
                     s.ToString().c_str());
      }
      break;
    }
    case 12: {
      const uint8_t a = in.U8();
      static constexpr int kErrnos[4] = {ENOMEM, EFAULT, EINVAL, ENOSPC};
      if (a & 0x80) {
        host_.FailNextGroupAttach(1 + a % 3, kErrnos[(a >> 2) & 3]);
      } else {
        host_.FailNthMapDma(1 + (a & 3), kErrnos[(a >> 2) & 3]);
      }
      break;
    }
    default: {  // memlock limit: pages above what is locked now, or off
      const uint8_t a = in.U8();
      host_.process_memory().set_memlock_limit_pages(
          a == 0 ? UINT64_MAX : host_.locked_pages() + (a & 63));
      break;
    }
  }
}

// Makes containers_ match the manager's containers: a new one has heard
// the whole table (its replay ran at attach, in this step).
void Program::Reconcile() {
  std::set<VfioContainer*> live;
  for (size_t i = 0; i < 3; ++i) {
    if (VfioContainer* c = manager_->ContainerOf(Bdf(i))) {
      live.insert(c);
    }
  }
  for (auto it = containers_.begin(); it != containers_.end();) {
    it = live.count(it->first) ? std::next(it) : containers_.erase(it);
  }
  for (VfioContainer* c : live) {
    if (containers_.count(c)) continue;
    SnapshotAll(c, containers_[c]);
  }
}

PageMap Program::Expected(VfioContainer* c, ContainerState& st) {
  PageMap e;
  const uint64_t hp = c->host_page_size();
  if (hp != kPage) Fail("host page size is not 4 KiB");
  std::shared_ptr<const memory::FlatView> view = dev_.CurrentView();
  view->ForEach([&](const memory::FlatRange& fr) {
    memory::MemoryRegion* mr = fr.mr.get();
    if (mr->IsIommu() || !mr->IsRam()) return;  // IOMMU below; MMIO never
    const uint64_t start = fr.range.first;
    if (start >> 63) return;  // bit63
    if ((start & (hp - 1)) != (fr.offset_in_region & (hp - 1))) return;
    const Size128 end_excl = Size128(fr.range.last) + 1;
    const Size128 first = (Size128(start) + (hp - 1)) / hp * hp;
    const Size128 last_excl = end_excl / hp * hp;
    if (first >= last_excl || first >= kSize2To64) return;
    if (mr->IsRamDevice() && iommufd_) return;  // best effort: EFAULT
    // No region reaches the last page of the space (kWindows), so the
    // exclusive end fits in 64 bits.
    if (last_excl > kSize2To64 - hp) Fail("a RAM section at the top page");
    const Hva base =
        reinterpret_cast<uintptr_t>(mr->host()) + fr.offset_in_region - start;
    const uint64_t f = absl::Uint128Low64(first);
    SetInRanges(e, c->iova_ranges(), f, absl::Uint128Low64(last_excl), base + f,
                fr.readonly, mr->IsRamDevice());
  });
  for (const auto& [iova, pages] : st.iommu) {
    for (const auto& [p, r] : pages) Set(e, p, r.end, r.hva, r.ro, r.device);
  }
  return e;
}

void Program::CheckContainer(VfioContainer* c, ContainerState& st,
                             uint64_t* anon_pages) {
  PageMap actual;
  uint64_t table_bytes = 0;
  for (const auto& [iova, m] : c->mappings()) {
    if (m.size == 0 || iova % kPage || m.size % kPage || iova + m.size < iova) {
      Fail("a container mapping is not page granular");
    }
    table_bytes += m.size;
    Set(actual, iova, iova + m.size, m.hva, m.readonly, InPool(m.hva));
  }
  PageMap expected = Expected(c, st);
  const ContainerStats& s = c->stats();
  // iova_range_changes: a type1 container re-reads its ranges when a group
  // joins, and they may have widened (a group with reserved regions left
  // since). Sections skipped as outside-iova-ranges stay unmapped then:
  // docs/vfio-container.md ("Valid IOVA ranges") says so, as in QEMU. So
  // those pages are excused like an error's.
  const uint64_t marks =
      s.errors + s.warnings + s.map_errors + s.iova_range_changes;
  const bool erred = marks != st.error_marks;
  st.error_marks = marks;
  // Excusals: kept only while E still wants the same page there.
  st.excused = Intersect(st.excused, expected);
  const PageMap extra = Subtract(actual, expected);
  const PageMap missing = Subtract(expected, actual);
  bool bad = false;
  if (!extra.empty()) {
    std::fprintf(stderr, "unexpected page 0x%lx\n",
                 static_cast<unsigned long>(extra.begin()->first));
    bad = true;
  } else if (erred) {
    for (const auto& [p, r] : missing) {
      Set(st.excused, p, r.end, r.hva, r.ro, r.device);
    }
  } else if (PageMap unexcused = Subtract(missing, st.excused);
             !unexcused.empty()) {
    std::fprintf(stderr, "missing page 0x%lx\n",
                 static_cast<unsigned long>(unexcused.begin()->first));
    bad = true;
  }
  if (bad) {
    for (const Range& r : c->iova_ranges()) {
      std::fprintf(stderr, "iova range [0x%lx, 0x%lx]\n",
                   static_cast<unsigned long>(r.first),
                   static_cast<unsigned long>(r.last));
    }
    for (const std::string& d : c->devices()) {
      std::fprintf(stderr, "device %s\n", d.c_str());
    }
    std::fprintf(stderr, "container %u (%s), errors %lu, last: %s\n", c->id(),
                 ContainerBackendName(c->backend()),
                 static_cast<unsigned long>(s.errors),
                 c->last_error().ToString().c_str());
    PrintPages("expected", expected);
    PrintPages("actual (container table)", actual);
    Fail("container mappings differ from the listener rules");
  }
  // The host's own view.
  uint64_t host_count = 0;
  if (c->backend() == ContainerBackend::kType1) {
    host_count =
        host_.ContainerMappingCount(static_cast<Type1Container*>(c)->fd())
            .value_or(~uint64_t{0});
  } else {
    auto* ic = static_cast<IommufdContainer*>(c);
    host_count = host_.IoasMappingCount(ic->iommufd(), ic->ioas_id())
                     .value_or(~uint64_t{0});
  }
  if (host_count != c->mappings().size()) {
    std::fprintf(stderr, "host holds %lu mappings, container %zu\n",
                 static_cast<unsigned long>(host_count), c->mappings().size());
    Fail("host mapping count differs from the container's table");
  }
  for (const auto& [iova, r] : actual) {
    if (!r.device) *anon_pages += (r.end - iova) / kPage;
  }
  // Each attached device: its domain holds exactly the table, and no page
  // lies outside its aperture or inside its reserved regions.
  for (const std::string& name : c->devices()) {
    size_t idx = 0;
    while (idx < 3 && name != kBdfs[idx]) ++idx;
    if (idx == 3) Fail("unknown device in a container");
    const HostPciAddress& bdf = Bdf(idx);
    const HostDeviceDesc* desc = nullptr;
    for (const HostDeviceDesc& d : host_.platform().devices) {
      if (d.address == bdf) desc = &d;
    }
    if (desc == nullptr) Fail("unknown device in a container");
    const model::HostIommuDomain* dom = host_.DeviceDmaDomain(bdf);
    if (dom == nullptr) Fail("an attached device has no DMA domain");
    if (dom->mapped_bytes() != table_bytes) {
      std::fprintf(stderr, "%s: domain has 0x%lx bytes, table 0x%lx\n",
                   name.c_str(),
                   static_cast<unsigned long>(dom->mapped_bytes()),
                   static_cast<unsigned long>(table_bytes));
      PrintPages("table", actual);
      Fail("domain and container table differ in size");
    }
    const uint64_t aperture_last =
        desc->aperture_bits >= 64 ? UINT64_MAX
                                  : (uint64_t{1} << desc->aperture_bits) - 1;
    for (const auto& [iova, r] : actual) {
      const uint64_t last = r.end - 1;
      if (last > aperture_last) Fail("a page is mapped outside the aperture");
      for (const ResvRegion& rr : desc->reserved) {
        if (iova <= rr.last && last >= rr.start) {
          std::fprintf(stderr, "%s: run 0x%lx in reserved [0x%lx, 0x%lx]\n",
                       name.c_str(), static_cast<unsigned long>(iova),
                       static_cast<unsigned long>(rr.start),
                       static_cast<unsigned long>(rr.last));
          Fail("a page is mapped in a reserved region");
        }
      }
      // The whole run readable at its hva; writable iff not read-only (a
      // read-only run: no page of it writable).
      const uint64_t len = r.end - iova;
      std::optional<uint64_t> h = dom->Translate(iova, len, false);
      bool write_ok = true;
      if (!r.ro) {
        write_ok = dom->Translate(iova, len, true) == r.hva;
      } else {
        for (uint64_t p = iova; p < r.end && write_ok; p += kPage) {
          write_ok = !dom->Translate(p, kPage, true).has_value();
        }
      }
      if (h != r.hva || !write_ok) {
        std::fprintf(stderr, "%s: domain run 0x%lx +0x%lx: hva %s0x%lx %s\n",
                     name.c_str(), static_cast<unsigned long>(iova),
                     static_cast<unsigned long>(len),
                     h.has_value() ? "" : "none ",
                     static_cast<unsigned long>(h.value_or(0)),
                     write_ok ? "" : "write permission differs");
        PrintPages("table", actual);
        Fail("the device's domain differs from the container table");
      }
    }
  }
}

void Program::Check() {
  Reconcile();
  uint64_t anon_pages = 0;
  for (auto& [c, st] : containers_) CheckContainer(c, st, &anon_pages);
  for (size_t i = 0; i < 3; ++i) {
    const HostPciAddress& bdf = Bdf(i);
    const char* b = kBdfs[i];
    if (manager_->ContainerOf(bdf) == nullptr &&
        host_.DeviceDmaDomain(bdf) != nullptr) {
      std::fprintf(stderr, "%s\n", b);
      Fail("a detached device still has a DMA domain");
    }
  }
  // locked_vm: every anonymous page of every mapping is charged once per
  // mapping (type1 vfio_dma; iommufd IoptPages per IOAS_MAP).
  if (host_.locked_pages() != anon_pages) {
    std::fprintf(stderr, "locked_vm %lu, anonymous mapped pages %lu\n",
                 static_cast<unsigned long>(host_.locked_pages()),
                 static_cast<unsigned long>(anon_pages));
    Fail("locked_vm differs from the pages mapped");
  }
}

}  // namespace
}  // namespace viommu::vfio::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using viommu::vfio::fuzz::Input;
  using viommu::vfio::fuzz::Program;
  Input in(data, size);
  const uint8_t mode = in.U8();
  Program p(mode & 1, mode & 2);
  p.Check();
  for (int i = 0; i < viommu::vfio::fuzz::kMaxSteps && !in.empty(); ++i) {
    p.Step(in);
    p.Check();
  }
  return 0;
}
