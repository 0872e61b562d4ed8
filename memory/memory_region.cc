#include "viommu/memory/memory_region.h"

#include <sys/mman.h>

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "viommu/memory/memory_system.h"
#include "viommu/util/check.h"

namespace viommu::memory {

const char* RegionKindName(RegionKind kind) {
  switch (kind) {
    case RegionKind::kContainer:
      return "container";
    case RegionKind::kRam:
      return "ram";
    case RegionKind::kRamDevice:
      return "ram_device";
    case RegionKind::kMmio:
      return "mmio";
    case RegionKind::kAlias:
      return "alias";
    case RegionKind::kIommu:
      return "iommu";
  }
  return "?";
}

MemoryRegion::MemoryRegion(MemorySystem* system, std::string name,
                           RegionKind kind, Size128 size)
    : system_(system), name_(std::move(name)), kind_(kind), size_(size) {
  VIOMMU_CHECK(system_ != nullptr);
  VIOMMU_CHECK(size_ <= kSize2To64, "region larger than 2^64");
}

MemoryRegion::~MemoryRegion() {
  // Children and alias targets may outlive us (views or other owners keep
  // them): drop their links back to us.
  for (auto& [key, child] : children_) child->parent_ = nullptr;
  if (alias_target_) {
    auto& v = alias_target_->aliases_;
    v.erase(std::remove(v.begin(), v.end(), this), v.end());
  }
  for (MemoryRegion* alias : aliases_) alias->alias_target_ = nullptr;
  if (owns_host_ && host_ != nullptr) {
    munmap(host_, host_size_);
  }
}

std::shared_ptr<MemoryRegion> MemoryRegion::CreateContainer(
    MemorySystem* system, std::string name, Size128 size) {
  return std::shared_ptr<MemoryRegion>(
      new MemoryRegion(system, std::move(name), RegionKind::kContainer, size));
}

absl::StatusOr<std::shared_ptr<MemoryRegion>> MemoryRegion::CreateRam(
    MemorySystem* system, std::string name, uint64_t size) {
  if (size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("RAM region '", name, "' has size 0"));
  }
  void* host = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (host == MAP_FAILED) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot allocate ", size, " bytes for RAM region '", name, "'"));
  }
  std::shared_ptr<MemoryRegion> mr(
      new MemoryRegion(system, std::move(name), RegionKind::kRam, size));
  mr->host_ = static_cast<uint8_t*>(host);
  mr->host_size_ = size;
  mr->owns_host_ = true;
  return mr;
}

absl::StatusOr<std::shared_ptr<MemoryRegion>> MemoryRegion::CreateRamPtr(
    MemorySystem* system, std::string name, uint64_t size, void* host) {
  VIOMMU_CHECK(host != nullptr);
  if (size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("RAM region '", name, "' has size 0"));
  }
  std::shared_ptr<MemoryRegion> mr(
      new MemoryRegion(system, std::move(name), RegionKind::kRam, size));
  mr->host_ = static_cast<uint8_t*>(host);
  mr->host_size_ = size;
  return mr;
}

std::shared_ptr<MemoryRegion> MemoryRegion::CreateRamDevice(
    MemorySystem* system, std::string name, uint64_t size, void* host) {
  VIOMMU_CHECK(host != nullptr);
  std::shared_ptr<MemoryRegion> mr(
      new MemoryRegion(system, std::move(name), RegionKind::kRamDevice, size));
  mr->host_ = static_cast<uint8_t*>(host);
  mr->host_size_ = size;
  return mr;
}

std::shared_ptr<MemoryRegion> MemoryRegion::CreateMmio(MemorySystem* system,
                                                       std::string name,
                                                       Size128 size,
                                                       MmioOps* ops) {
  VIOMMU_CHECK(ops != nullptr);
  std::shared_ptr<MemoryRegion> mr(
      new MemoryRegion(system, std::move(name), RegionKind::kMmio, size));
  mr->ops_ = ops;
  return mr;
}

std::shared_ptr<MemoryRegion> MemoryRegion::CreateMmio(
    MemorySystem* system, std::string name, Size128 size,
    std::unique_ptr<MmioOps> ops) {
  std::shared_ptr<MemoryRegion> mr =
      CreateMmio(system, std::move(name), size, ops.get());
  mr->owned_ops_ = std::move(ops);
  return mr;
}

std::shared_ptr<MemoryRegion> MemoryRegion::CreateAlias(
    MemorySystem* system, std::string name,
    std::shared_ptr<MemoryRegion> target, uint64_t offset, Size128 size) {
  VIOMMU_CHECK(target != nullptr);
  std::shared_ptr<MemoryRegion> mr(
      new MemoryRegion(system, std::move(name), RegionKind::kAlias, size));
  target->aliases_.push_back(mr.get());
  mr->alias_target_ = std::move(target);
  mr->alias_offset_ = offset;
  return mr;
}

std::shared_ptr<MemoryRegion> MemoryRegion::CreateIommu(MemorySystem* system,
                                                        std::string name,
                                                        Size128 size,
                                                        IommuModel* model) {
  VIOMMU_CHECK(model != nullptr);
  std::shared_ptr<MemoryRegion> mr(
      new MemoryRegion(system, name, RegionKind::kIommu, size));
  mr->iommu_model_ = model;
  mr->iommu_ = std::make_unique<IommuNotifierChains>(model, std::move(name));
  return mr;
}

Range MemoryRegion::Extent() const {
  return size_ == 0 ? Range{0, 0} : Range::FromBaseSizeClipped(0, size_).value();
}

std::optional<Range> MemoryRegion::ExtentInParent() const {
  return Range::FromBaseSizeClipped(addr_, size_);
}

// --- Topology -------------------------------------------------------------

void MemoryRegion::AddSubregion(uint64_t offset,
                                std::shared_ptr<MemoryRegion> child) {
  AddSubregionOverlap(offset, std::move(child), 0);
}

void MemoryRegion::AddSubregionOverlap(uint64_t offset,
                                       std::shared_ptr<MemoryRegion> child,
                                       int32_t priority) {
  VIOMMU_CHECK(child != nullptr);
  VIOMMU_CHECK(kind_ != RegionKind::kAlias,
               "subregions cannot be added to an alias");
  VIOMMU_CHECK(child->parent_ == nullptr, "region already has a parent");
  VIOMMU_CHECK(child.get() != this);
  VIOMMU_CHECK(child->system_ == system_, "regions of different systems");
  MemorySystem::Transaction txn(system_);
  child->addr_ = offset;
  child->priority_ = priority;
  MemoryRegion* raw = child.get();
  InsertChild(std::move(child));
  system_->RegionChanged(raw);
}

void MemoryRegion::RemoveSubregion(MemoryRegion* child) {
  VIOMMU_CHECK(child != nullptr && child->parent_ == this,
               "not a subregion of this region");
  MemorySystem::Transaction txn(system_);
  system_->RegionChanged(child);
  EraseChild(child);
}

void MemoryRegion::SetEnabled(bool enabled) {
  if (enabled == enabled_) return;
  MemorySystem::Transaction txn(system_);
  enabled_ = enabled;
  system_->RegionChanged(this);
}

void MemoryRegion::SetReadonly(bool readonly) {
  if (readonly == readonly_) return;
  MemorySystem::Transaction txn(system_);
  readonly_ = readonly;
  system_->RegionChanged(this);
}

void MemoryRegion::SetLogMask(uint8_t mask) {
  if (mask == log_mask_) return;
  MemorySystem::Transaction txn(system_);
  log_mask_ = mask;
  system_->RegionChanged(this);
}

void MemoryRegion::SetAddress(uint64_t offset) {
  if (offset == addr_) return;
  MemorySystem::Transaction txn(system_);
  if (parent_ == nullptr) {
    system_->RegionChanged(this);
    addr_ = offset;
    system_->RegionChanged(this);
    return;
  }
  // QEMU re-adds the region: it becomes the newest among equal priorities.
  MemoryRegion* parent = parent_;
  std::shared_ptr<MemoryRegion> self = shared_from_this();
  system_->RegionChanged(this);
  parent->EraseChild(this);
  addr_ = offset;
  parent->InsertChild(std::move(self));
  system_->RegionChanged(this);
}

void MemoryRegion::SetSize(Size128 size) {
  VIOMMU_CHECK(size <= kSize2To64, "region larger than 2^64");
  // RAM cannot grow past its host memory: the view would expose bytes the
  // region does not own.
  VIOMMU_CHECK(host_ == nullptr || size <= Size128{host_size_},
               "RAM region resized beyond its host memory");
  if (size == size_) return;
  MemorySystem::Transaction txn(system_);
  system_->RegionChanged(this);
  size_ = size;
  if (parent_ != nullptr) parent_->ReindexChild(this);
  system_->RegionChanged(this);
}

void MemoryRegion::SetAliasOffset(uint64_t offset) {
  VIOMMU_CHECK(kind_ == RegionKind::kAlias);
  if (offset == alias_offset_) return;
  MemorySystem::Transaction txn(system_);
  alias_offset_ = offset;
  system_->RegionChanged(this);
}

// --- Children -------------------------------------------------------------

void MemoryRegion::InsertChild(std::shared_ptr<MemoryRegion> child) {
  child->parent_ = this;
  child->sibling_seq_ = system_->NextSiblingSeq();
  MemoryRegion* raw = child.get();
  children_.emplace(raw->KeyInParent(), std::move(child));
  if (auto extent = raw->ExtentInParent()) {
    raw->index_key_ = child_index_.Insert(*extent, raw);
    raw->indexed_ = true;
  }
}

void MemoryRegion::EraseChild(MemoryRegion* child) {
  if (child->indexed_) {
    child_index_.Erase(child->index_key_);
    child->indexed_ = false;
  }
  child->parent_ = nullptr;
  auto it = children_.find(child->KeyInParent());
  VIOMMU_CHECK(it != children_.end() && it->second.get() == child);
  children_.erase(it);  // may destroy `child`
}

void MemoryRegion::ReindexChild(MemoryRegion* child) {
  if (child->indexed_) {
    child_index_.Erase(child->index_key_);
    child->indexed_ = false;
  }
  if (auto extent = child->ExtentInParent()) {
    child->index_key_ = child_index_.Insert(*extent, child);
    child->indexed_ = true;
  }
}

}  // namespace viommu::memory
