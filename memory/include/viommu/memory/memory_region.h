// viommu/memory/memory_region.h — a node of the guest memory topology
// (QEMU's MemoryRegion): a container, RAM, ram_device, MMIO, alias or IOMMU
// region, placed in a parent container at an offset with a priority.
//
//   MemorySystem sys;
//   auto root = MemoryRegion::CreateContainer(&sys, "system", kSize2To64);
//   auto ram = *MemoryRegion::CreateRam(&sys, "ram", 256 << 20);
//   auto mmio = MemoryRegion::CreateMmio(&sys, "regs", 0x1000, &regs_ops);
//   root->AddSubregion(0, ram);
//   root->AddSubregionOverlap(0x1000, mmio, /*priority=*/1);
//   AddressSpace as(&sys, root, "memory");   // renders the FlatView
//
// Semantics follow QEMU (docs/architecture.md, memory/): siblings sort by
// descending priority and, among equal priorities, the most recently added
// (or moved) first; the first region rendered at an address owns it;
// disabled regions are skipped; readonly is inherited downwards; an alias
// shows [alias_offset, alias_offset + size) of its target.
//
// Every mutator is a topology change: outside a transaction it commits at
// once, inside one (MemorySystem::Transaction) at the outermost commit.
//
// Ownership: regions are shared (std::shared_ptr). A container owns its
// subregions, an alias its target, and every published FlatView the
// regions it shows, so a region stays alive while a reader on another
// thread may still use an old view. Parent links are not owning.
//
// Threading: every mutator, and every accessor not marked otherwise, runs
// in the control context of the MemorySystem (QEMU's BQL role).
#ifndef VIOMMU_MEMORY_MEMORY_REGION_H_
#define VIOMMU_MEMORY_MEMORY_REGION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/status/statusor.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/iommu_notifier_chains.h"
#include "viommu/memory/mmio_ops.h"
#include "viommu/util/interval_index.h"
#include "viommu/util/range.h"
#include "viommu/util/types.h"

namespace viommu::memory {

class MemorySystem;

enum class RegionKind : uint8_t {
  kContainer,
  kRam,        // host memory the process owns: GUP-able
  kRamDevice,  // host memory that is device memory (mmap'd BAR): not GUP-able
  kMmio,
  kAlias,
  kIommu,
};

const char* RegionKindName(RegionKind kind);

// Dirty-log clients (QEMU's DIRTY_MEMORY_* bits).
inline constexpr uint8_t kDirtyLogVga = 1 << 0;
inline constexpr uint8_t kDirtyLogCode = 1 << 1;
inline constexpr uint8_t kDirtyLogMigration = 1 << 2;

class MemoryRegion : public std::enable_shared_from_this<MemoryRegion> {
 public:
  // All factories: `system` is not owned and must outlive the region; the
  // name is for diagnostics only.

  // A pure container: owns nothing itself, shows its subregions.
  static std::shared_ptr<MemoryRegion> CreateContainer(MemorySystem* system,
                                                       std::string name,
                                                       Size128 size);
  // Zero-filled anonymous host memory of `size` bytes.
  // Errors: kInvalidArgument (size 0), kResourceExhausted (mmap failed).
  [[nodiscard]] static absl::StatusOr<std::shared_ptr<MemoryRegion>> CreateRam(
      MemorySystem* system, std::string name, uint64_t size);
  // RAM the caller already mapped at `host` (QEMU's
  // memory_region_init_ram_ptr): not owned, never unmapped here; `host`
  // must stay mapped for the region's lifetime. Otherwise as CreateRam
  // (kRam: GUP-able, copied by buffer accesses). REQUIRES: host != nullptr.
  // Errors: kInvalidArgument (size 0).
  [[nodiscard]] static absl::StatusOr<std::shared_ptr<MemoryRegion>>
  CreateRamPtr(MemorySystem* system, std::string name, uint64_t size,
               void* host);
  // Device memory at `host` (not owned; must stay mapped for the region's
  // lifetime). Dispatched like MMIO: 1..8-byte host-endian accesses,
  // unaligned allowed. IsRam() is true, IsRamDevice() is true.
  static std::shared_ptr<MemoryRegion> CreateRamDevice(MemorySystem* system,
                                                       std::string name,
                                                       uint64_t size,
                                                       void* host);
  // MMIO backed by `ops` (not owned; must outlive the region).
  static std::shared_ptr<MemoryRegion> CreateMmio(MemorySystem* system,
                                                  std::string name,
                                                  Size128 size, MmioOps* ops);
  // MMIO backed by `ops`, which the region owns: they are destroyed with
  // it, once the last memory map showing it is released. For ops whose
  // owner goes away while DMA threads may still hold an older map.
  static std::shared_ptr<MemoryRegion> CreateMmio(
      MemorySystem* system, std::string name, Size128 size,
      std::unique_ptr<MmioOps> ops);
  // [offset, offset + size) of `target`. Subregions cannot be added to an
  // alias.
  static std::shared_ptr<MemoryRegion> CreateAlias(
      MemorySystem* system, std::string name,
      std::shared_ptr<MemoryRegion> target, uint64_t offset, Size128 size);
  // An IOMMU region translated by `model` (not owned; must outlive it).
  static std::shared_ptr<MemoryRegion> CreateIommu(MemorySystem* system,
                                                   std::string name,
                                                   Size128 size,
                                                   IommuModel* model);

  MemoryRegion(const MemoryRegion&) = delete;
  MemoryRegion& operator=(const MemoryRegion&) = delete;
  ~MemoryRegion();

  // --- Topology (control context) ---------------------------------------
  // Adds `child` at `offset` with priority 0 / `priority`.
  // REQUIRES: this is not an alias; child has no parent; child != this.
  void AddSubregion(uint64_t offset, std::shared_ptr<MemoryRegion> child);
  void AddSubregionOverlap(uint64_t offset, std::shared_ptr<MemoryRegion> child,
                           int32_t priority);
  // REQUIRES: child->parent() == this.
  void RemoveSubregion(MemoryRegion* child);

  void SetEnabled(bool enabled);
  void SetReadonly(bool readonly);
  // Moves the region within its parent; it becomes the most recently added
  // among its equal-priority siblings, as in QEMU.
  void SetAddress(uint64_t offset);
  // REQUIRES: for RAM and ram_device, size <= the host memory given at
  // creation (a RAM region can shrink and grow back, never past it).
  void SetSize(Size128 size);
  // REQUIRES: kind() == kAlias.
  void SetAliasOffset(uint64_t offset);
  // Dirty-log clients for this region (RAM); changes arrive at listeners
  // as LogStart/LogStop.
  void SetLogMask(uint8_t mask);

  // --- Accessors ----------------------------------------------------------
  RegionKind kind() const { return kind_; }
  const std::string& name() const { return name_; }
  Size128 size() const { return size_; }
  uint64_t addr() const { return addr_; }  // offset in the parent
  int32_t priority() const { return priority_; }
  bool enabled() const { return enabled_; }
  bool readonly() const { return readonly_; }
  uint8_t log_mask() const { return log_mask_; }
  MemoryRegion* parent() const { return parent_; }
  MemorySystem* system() const { return system_; }

  // QEMU's memory_region_is_ram(): true for RAM and ram_device.
  bool IsRam() const {
    return kind_ == RegionKind::kRam || kind_ == RegionKind::kRamDevice;
  }
  bool IsRamDevice() const { return kind_ == RegionKind::kRamDevice; }
  bool IsIommu() const { return kind_ == RegionKind::kIommu; }
  // True when the region fills its own holes (RAM, ram_device, MMIO, IOMMU).
  bool Terminates() const {
    return kind_ != RegionKind::kContainer && kind_ != RegionKind::kAlias;
  }

  // Host memory of a RAM or ram_device region; nullptr otherwise.
  // Thread-safe (never changes).
  uint8_t* host() const { return host_; }
  MmioOps* mmio_ops() const { return ops_; }
  // The alias target and offset; nullptr / 0 for other kinds.
  MemoryRegion* alias_target() const { return alias_target_.get(); }
  uint64_t alias_offset() const { return alias_offset_; }
  // The IOMMU notifier chains; nullptr unless kind() == kIommu.
  IommuNotifierChains* iommu() const { return iommu_.get(); }
  IommuModel* iommu_model() const { return iommu_model_; }

  // Calls fn(MemoryRegion*) for every subregion in rendering order:
  // highest priority first, most recently added first among equals.
  template <typename Fn>
  void ForEachSubregion(Fn&& fn) const {
    for (const auto& [key, child] : children_) fn(child.get());
  }
  size_t subregion_count() const { return children_.size(); }
  // Calls fn(MemoryRegion*) for every enabled-or-not subregion whose extent
  // overlaps `window` (in this region's coordinates), in no special order.
  template <typename Fn>
  void ForEachSubregionOverlapping(const Range& window, Fn&& fn) const {
    child_index_.ForEachOverlap(window,
                                [&](const Range&, MemoryRegion* c) { fn(c); });
  }
  // Orders siblings as rendering does: true if `a` is rendered before `b`.
  static bool RendersBefore(const MemoryRegion* a, const MemoryRegion* b) {
    if (a->priority_ != b->priority_) return a->priority_ > b->priority_;
    return a->sibling_seq_ > b->sibling_seq_;
  }

  // [0, size - 1] clipped to 64 bits: the region in its own coordinates.
  Range Extent() const;
  // The region's extent in its parent, clipped to 64 bits; nullopt if the
  // region is empty.
  std::optional<Range> ExtentInParent() const;

 private:
  friend class MemorySystem;
  MemoryRegion(MemorySystem* system, std::string name, RegionKind kind,
               Size128 size);

  void InsertChild(std::shared_ptr<MemoryRegion> child);
  void EraseChild(MemoryRegion* child);
  void ReindexChild(MemoryRegion* child);  // after addr/size change

  MemorySystem* system_;  // not owned
  std::string name_;
  RegionKind kind_;
  Size128 size_;
  uint64_t addr_ = 0;
  int32_t priority_ = 0;
  uint64_t sibling_seq_ = 0;  // order among equal priorities
  bool enabled_ = true;
  bool readonly_ = false;
  uint8_t log_mask_ = 0;

  MemoryRegion* parent_ = nullptr;  // not owned
  // Rendering order: key is (-priority, -sibling_seq), ascending.
  using ChildKey = std::pair<int64_t, int64_t>;
  ChildKey KeyInParent() const {
    return {-int64_t{priority_}, -static_cast<int64_t>(sibling_seq_)};
  }
  absl::btree_map<ChildKey, std::shared_ptr<MemoryRegion>> children_;
  IntervalIndex<MemoryRegion*> child_index_;
  IntervalIndex<MemoryRegion*>::Key index_key_;  // our key in the parent
  bool indexed_ = false;  // false for empty regions (size 0)

  std::shared_ptr<MemoryRegion> alias_target_;
  uint64_t alias_offset_ = 0;
  std::vector<MemoryRegion*> aliases_;  // aliases targeting us (not owned)

  uint8_t* host_ = nullptr;
  size_t host_size_ = 0;  // bytes at host_ (the size at creation)
  bool owns_host_ = false;
  MmioOps* ops_ = nullptr;  // owned_ops_ or not owned
  std::unique_ptr<MmioOps> owned_ops_;
  IommuModel* iommu_model_ = nullptr;  // not owned
  std::unique_ptr<IommuNotifierChains> iommu_;
};

}  // namespace viommu::memory

#endif  // VIOMMU_MEMORY_MEMORY_REGION_H_
