// Zero-copy mappings and their revocation (capi/zero_copy.h).
#include "capi/zero_copy.h"

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

#include "capi/capi_internal.h"

namespace viommu::capi {

int HostMappings::Insert(viommu_ep* ep, uint64_t gen, uint64_t iova,
                         uint64_t len, uint8_t* host,
                         const memory::MemoryRegion* mr, void* cookie) {
  MutexLock l(&mu_);
  if (ep->revoke->generation.load(std::memory_order_relaxed) != gen) {
    return -EAGAIN;
  }
  if (retiring_.contains(mr)) return -EFAULT;
  live_.emplace(next_id_++,
                Mapping{.ep = ep, .cookie = cookie, .iova = iova, .len = len,
                        .host = host, .mr = mr});
  return 0;
}

int HostMappings::Remove(viommu_ep* ep, void* host, uint64_t len) {
  for (;;) {
    {
      MutexLock l(&mu_);
      auto found = live_.end();
      for (auto it = live_.begin(); it != live_.end(); ++it) {
        const Mapping& m = it->second;
        if (m.ep != ep || m.host != host || m.len != len) continue;
        found = it;
        // Prefer one no other thread is revoking.
        if (!m.revoking || m.revoker == std::this_thread::get_id()) break;
      }
      if (found == live_.end()) return -ENOENT;
      const Mapping& m = found->second;
      if (!m.revoking || m.revoker == std::this_thread::get_id()) {
        live_.erase(found);
        return 0;
      }
    }
    // Its dma_revoked callback runs on another thread: once unmap
    // returns, no callback for it may still be running.
    std::this_thread::yield();
  }
}

template <typename Pred>
std::vector<HostMappings::Pending> HostMappings::Collect(Pred pred) {
  std::vector<Pending> todo;
  for (auto& [id, m] : live_) {
    if (m.revoked || m.revoking || !pred(m)) continue;
    m.revoking = true;
    m.revoker = std::this_thread::get_id();
    todo.push_back({id, m.ep, m.cookie});
  }
  return todo;
}

void HostMappings::Deliver(const std::vector<Pending>& todo) {
  for (const Pending& p : todo) {
    if (ctx_->cb.dma_revoked != nullptr) {
      CallbackScope scope(ctx_);
      ctx_->cb.dma_revoked(ctx_->opaque, p.ep, p.cookie);
    }
    MutexLock l(&mu_);
    auto it = live_.find(p.id);
    if (it != live_.end()) {  // else unmapped from the callback
      it->second.revoking = false;
      it->second.revoked = true;
    }
  }
}

void HostMappings::RevokeIova(viommu_ep* ep, const Range& range) {
  std::vector<Pending> todo;
  {
    MutexLock l(&mu_);
    ep->revoke->generation.fetch_add(1, std::memory_order_relaxed);
    todo = Collect([&](const Mapping& m) {
      return m.ep == ep && range.Overlaps(Range::FromBaseSize(m.iova, m.len));
    });
  }
  Deliver(todo);
}

void HostMappings::DropEndpoint(viommu_ep* ep) {
  std::vector<Pending> todo;
  {
    MutexLock l(&mu_);
    if (ep != nullptr) {
      ep->revoke->generation.fetch_add(1, std::memory_order_relaxed);
    }
    todo = Collect(
        [&](const Mapping& m) { return ep == nullptr || m.ep == ep; });
  }
  Deliver(todo);
  MutexLock l(&mu_);
  absl::erase_if(live_, [&](const auto& kv) {
    return ep == nullptr || kv.second.ep == ep;
  });
}

int HostMappings::Retire(const memory::MemoryRegion* mr) {
  std::vector<Pending> todo;
  {
    MutexLock l(&mu_);
    todo = Collect([&](const Mapping& m) { return m.mr == mr; });
  }
  Deliver(todo);
  MutexLock l(&mu_);
  int left = 0;
  for (const auto& [id, m] : live_) left += m.mr == mr ? 1 : 0;
  if (left == 0) retiring_.insert(mr);
  return left;
}

void HostMappings::Forget(const memory::MemoryRegion* mr) {
  MutexLock l(&mu_);
  retiring_.erase(mr);
}

// --- RevokeWatcher ---

RevokeWatcher::~RevokeWatcher() { Stop(); }

void RevokeWatcher::Start() { handle_ = ep_->as->RegisterListener(this); }

void RevokeWatcher::Stop() {
  stopped_ = true;  // what unregistering reports is not a guest change
  handle_.Reset();
  sections_.clear();
  pending_.clear();
}

void RevokeWatcher::RegionAdd(const memory::MemoryRegionSection& s) {
  if (!s.mr->IsIommu()) return;
  auto n = std::make_unique<SectionNotifier>(this, s);
  absl::StatusOr<memory::IommuNotifierHandle> h = s.mr->iommu()->Register(
      n.get(),
      {.flags = memory::kNotifyUnmap,
       .range = Range::FromBaseSize(s.offset_within_region, s.size)});
  if (!h.ok()) {
    // No revocation through this section: no zero-copy mapping either.
    revocable.store(false, std::memory_order_relaxed);
    ep_->ctx->Logf(VIOMMU_LOG_DEBUG,
                   "%s: zero-copy DMA off (invalidations not notified): %s",
                   EndpointName(ep_->segment, ep_->bus, ep_->devfn),
                   h.status().message());
    return;
  }
  n->handle = *std::move(h);
  sections_.push_back(std::move(n));
}

void RevokeWatcher::RegionDel(const memory::MemoryRegionSection& s) {
  if (s.mr->IsIommu()) {
    auto it = std::find_if(sections_.begin(), sections_.end(),
                           [&](const std::unique_ptr<SectionNotifier>& n) {
                             return n->region() == s.mr &&
                                    n->offset_in_space() ==
                                        s.offset_within_address_space;
                           });
    if (it != sections_.end()) sections_.erase(it);  // unregisters
  }
  if (s.size == 0 || stopped_) return;
  pending_.push_back(s.AddressRange());
}

void RevokeWatcher::Commit() {
  if (stopped_) return;
  // The new view is published: a map that sees the bumped generation
  // translates on it.
  std::vector<Range> ranges = std::move(pending_);
  pending_.clear();
  for (const Range& r : ranges) ep_->ctx->host_maps->RevokeIova(ep_, r);
}

void RevokeWatcher::SectionNotifier::Notify(const memory::IommuEvent& event) {
  if (event.type != memory::IommuEventType::kUnmap) return;
  const memory::IommuTlbEntry& e = event.entry;
  const uint64_t first = offset_in_space_ + (e.iova - offset_in_region_);
  const uint64_t last =
      e.addr_mask > UINT64_MAX - first ? UINT64_MAX : first + e.addr_mask;
  owner_->ep_->ctx->host_maps->RevokeIova(owner_->ep_, Range{first, last});
}

}  // namespace viommu::capi
