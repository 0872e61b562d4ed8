#include "viommu/memory/address_space.h"

#include <algorithm>
#include <utility>

#include "viommu/memory/memory_system.h"
#include "viommu/util/check.h"

namespace viommu::memory {

AddressSpace::AddressSpace(MemorySystem* system,
                           std::shared_ptr<MemoryRegion> root,
                           std::string name)
    : system_(system), root_(std::move(root)), name_(std::move(name)) {
  VIOMMU_CHECK(system_ != nullptr && root_ != nullptr);
  VIOMMU_CHECK(root_->system() == system_, "root of another MemorySystem");
  view_.Exchange(system_->AttachAddressSpace(this));
}

AddressSpace::~AddressSpace() {
  VIOMMU_CHECK(listeners_.empty(),
               "AddressSpace destroyed with registered listeners");
  system_->DetachAddressSpace(this);
}

std::shared_ptr<const FlatView> AddressSpace::CurrentView() const {
  return view_.Load();
}

std::shared_ptr<const FlatView> AddressSpace::Publish(
    std::shared_ptr<const FlatView> view) {
  return view_.Exchange(std::move(view));
}

ListenerHandle AddressSpace::RegisterListener(MemoryListener* listener,
                                              unsigned priority) {
  VIOMMU_CHECK(listener != nullptr);
  VIOMMU_CHECK(!system_->notifying_, "listener registered from a callback");
  for (const ListenerEntry& e : listeners_) {
    VIOMMU_CHECK(e.listener != listener, "listener registered twice");
  }
  uint64_t seq = system_->AddGlobalListener(listener, priority);
  ListenerEntry entry{listener, priority, seq};
  auto pos = std::upper_bound(listeners_.begin(), listeners_.end(), entry,
                              [](const ListenerEntry& a, const ListenerEntry& b) {
                                return a.priority < b.priority;
                              });
  listeners_.insert(pos, entry);

  // Replay the current view to this listener only.
  std::shared_ptr<const FlatView> view = CurrentView();
  listener->Begin();
  view->ForEach([&](const FlatRange& fr) {
    MemoryRegionSection s = fr.ToSection();
    listener->RegionAdd(s);
    if (fr.log_mask != 0) listener->LogStart(s, 0, fr.log_mask);
  });
  listener->Commit();
  return ListenerHandle(this, listener);
}

void AddressSpace::Unregister(MemoryListener* listener) {
  VIOMMU_CHECK(!system_->notifying_, "listener removed from a callback");
  auto it = std::find_if(
      listeners_.begin(), listeners_.end(),
      [&](const ListenerEntry& e) { return e.listener == listener; });
  VIOMMU_CHECK(it != listeners_.end());
  std::shared_ptr<const FlatView> view = CurrentView();
  listener->Begin();
  view->ForEach([&](const FlatRange& fr) {
    MemoryRegionSection s = fr.ToSection();
    if (fr.log_mask != 0) listener->LogStop(s, fr.log_mask, 0);
    listener->RegionDel(s);
  });
  listener->Commit();
  listeners_.erase(it);
  system_->RemoveGlobalListener(listener);
}

void AddressSpace::SyncDirtyLog(const MemoryRegion* mr) {
  std::shared_ptr<const FlatView> view = CurrentView();
  view->ForEach([&](const FlatRange& fr) {
    if (fr.log_mask == 0 || (mr != nullptr && fr.mr.get() != mr)) return;
    MemoryRegionSection s = fr.ToSection();
    for (const ListenerEntry& e : listeners_) e.listener->LogSync(s);
  });
}

// --- ListenerHandle --------------------------------------------------------

ListenerHandle::ListenerHandle(ListenerHandle&& o) noexcept
    : as_(std::exchange(o.as_, nullptr)),
      listener_(std::exchange(o.listener_, nullptr)) {}

ListenerHandle& ListenerHandle::operator=(ListenerHandle&& o) noexcept {
  if (this != &o) {
    Reset();
    as_ = std::exchange(o.as_, nullptr);
    listener_ = std::exchange(o.listener_, nullptr);
  }
  return *this;
}

ListenerHandle::~ListenerHandle() { Reset(); }

void ListenerHandle::Reset() {
  if (as_ != nullptr) {
    std::exchange(as_, nullptr)->Unregister(listener_);
    listener_ = nullptr;
  }
}

}  // namespace viommu::memory
