// Guest RAM reads for the translation path (see vtd_ram_window.h).
#include "viommu/hw/iommu/vtd_ram_window.h"

#include <algorithm>
#include <utility>

#include "viommu/memory/flat_view.h"

namespace viommu::vtd {

RamWindow::RamWindow(memory::AddressSpace* as)
    : as_(as), listener_(as->RegisterListener(this)) {}

RamWindow::~RamWindow() { listener_.Reset(); }

bool RamWindow::ReadOther(Hwaddr addr, void* buf, size_t len) {
  for (size_t i = 1; i < kSlots; ++i) {
    const Window* w = slots_[i].load(std::memory_order_acquire);
    if (w == nullptr) break;
    const uint64_t off = addr - w->first;
    if (off <= w->span && len - 1 <= w->span - off) {
      std::memcpy(buf, w->host + off, len);
      return true;
    }
  }
  return ReadSlow(addr, buf, len);
}

bool RamWindow::ReadSlow(Hwaddr addr, void* buf, size_t len) {
  if (len == 0) return true;
  // Before the map is read: a commit after this load (its view is
  // published before its Commit call) withdraws what is found below.
  const uint64_t generation = generation_.load(std::memory_order_acquire);
  const bool ok = as_->ReadRam(addr, buf, len).ok();
  const std::shared_ptr<const memory::FlatView> view = as_->CurrentView();
  const memory::FlatRange* fr = view->Lookup(addr);
  // The predicate of ReadRam's own fast path.
  if (fr == nullptr || !fr->mr->IsRam() || fr->mr->IsRamDevice()) return ok;
  const Hwaddr first = fr->range.first;
  const Hwaddr last = fr->range.last;
  uint8_t* const host = fr->mr->host() + fr->OffsetOf(first);

  MutexLock l(&mu_);
  if (generation_.load(std::memory_order_relaxed) != generation) return ok;
  size_t used = 0;
  for (; used < kSlots; ++used) {
    const Window* w = slots_[used].load(std::memory_order_relaxed);
    if (w == nullptr) break;
    if (w->first == first && w->span == last - first && w->host == host) {
      return ok;  // another reader published it meanwhile
    }
  }
  const Window* found = nullptr;
  for (const std::unique_ptr<Window>& w : pinned_) {
    if (w->region == fr->mr && w->first == first && w->span == last - first &&
        w->host == host) {
      found = w.get();
      break;
    }
  }
  if (found == nullptr) {
    pinned_.push_back(std::make_unique<Window>(Window{
        .first = first, .span = last - first, .host = host, .region = fr->mr}));
    found = pinned_.back().get();
  }
  // Newest first: shift the others down (the last one drops out). A
  // reader meanwhile may see one range twice, never a gap.
  for (size_t i = std::min(used, kSlots - 1); i > 0; --i) {
    slots_[i].store(slots_[i - 1].load(std::memory_order_relaxed),
                    std::memory_order_release);
  }
  slots_[0].store(found, std::memory_order_release);
  return ok;
}

void RamWindow::Commit() {
  MutexLock l(&mu_);
  generation_.fetch_add(1, std::memory_order_release);
  for (std::atomic<const Window*>& slot : slots_) {
    slot.store(nullptr, std::memory_order_release);
  }
}

size_t RamWindow::RememberedForTesting() const {
  size_t n = 0;
  for (const std::atomic<const Window*>& slot : slots_) {
    if (slot.load(std::memory_order_acquire) != nullptr) ++n;
  }
  return n;
}

size_t RamWindow::PinnedForTesting() const {
  MutexLock l(&mu_);
  return pinned_.size();
}

}  // namespace viommu::vtd
