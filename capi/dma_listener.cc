// viommu_dma_listener_add / _del and the listener behind them
// (capi/dma_listener.h).
#include "capi/dma_listener.h"

#include <algorithm>
#include <cerrno>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "capi/capi_internal.h"
#include "viommu.h"

namespace viommu::capi {
namespace {

uint32_t PermBits(memory::IommuPerm perm) {
  uint32_t out = 0;
  if ((perm & memory::kIommuRead) != 0) out |= VIOMMU_PERM_READ;
  if ((perm & memory::kIommuWrite) != 0) out |= VIOMMU_PERM_WRITE;
  return out;
}

// Every IOMMU region at or below `mr` (containers only: VT-d's IOMMU
// region is a child of the device's root container).
void CollectIommuRegions(memory::MemoryRegion* mr,
                         std::vector<memory::MemoryRegion*>* out) {
  if (mr->IsIommu()) {
    out->push_back(mr);
    return;
  }
  if (mr->kind() != memory::RegionKind::kContainer) return;
  mr->ForEachSubregion(
      [&](memory::MemoryRegion* child) { CollectIommuRegions(child, out); });
}

// Registers on MAP and UNMAP and drops it: the model's veto, if any, is
// what a later RegionAdd would meet.
class ProbeNotifier final : public memory::IommuNotifier {
 public:
  void Notify(const memory::IommuEvent&) override {}
};

}  // namespace

DmaListener::DmaListener(viommu_ep* ep, const viommu_dma_listener& callbacks)
    : ep_(ep), cb_(callbacks) {}

DmaListener::~DmaListener() { Stop(); }

absl::Status DmaListener::Start() {
  std::vector<memory::MemoryRegion*> iommus;
  CollectIommuRegions(ep_->as->root(), &iommus);
  for (memory::MemoryRegion* mr : iommus) {
    ProbeNotifier probe;
    absl::StatusOr<memory::IommuNotifierHandle> h =
        mr->iommu()->Register(&probe, {.flags = memory::kNotifyIotlbEvents});
    if (!h.ok()) return h.status();
  }
  handle_ = ep_->as->RegisterListener(this);
  return absl::OkStatus();
}

void DmaListener::Stop() {
  handle_.Reset();  // RegionDel for every section: unmaps
  sections_.clear();
  UnmapRange(Range::Full());
}

void DmaListener::RegionAdd(const memory::MemoryRegionSection& s) {
  const uint64_t iova = s.offset_within_address_space;
  if (s.mr->IsIommu()) {
    auto n = std::make_unique<SectionNotifier>(this, s);
    const Range r = Range::FromBaseSize(s.offset_within_region, s.size);
    absl::StatusOr<memory::IommuNotifierHandle> h = s.mr->iommu()->Register(
        n.get(), {.flags = memory::kNotifyIotlbEvents, .range = r});
    if (!h.ok()) {
      ep_->ctx->Logf(VIOMMU_LOG_ERR, "DMA listener of %s: %s",
                     EndpointName(ep_->segment, ep_->bus, ep_->devfn),
                     h.status().message());
      return;
    }
    n->handle = *std::move(h);
    SectionNotifier* raw = n.get();
    sections_.push_back(std::move(n));
    absl::Status st = s.mr->iommu()->Replay(raw->handle);
    if (!st.ok()) {
      ep_->ctx->Logf(VIOMMU_LOG_ERR, "DMA listener of %s: replay: %s",
                     EndpointName(ep_->segment, ep_->bus, ep_->devfn),
                     st.message());
    }
    return;
  }
  if (!s.mr->IsRam()) return;  // MMIO: not DMA-mappable
  const uint32_t perm =
      s.readonly ? VIOMMU_PERM_READ : VIOMMU_PERM_READ | VIOMMU_PERM_WRITE;
  auto it = ep_->ctx->region_by_mr.find(s.mr);
  if (it == ep_->ctx->region_by_mr.end()) return;  // not a region of ours
  MapPiece(iova, it->second->gpa + s.offset_within_region,
           static_cast<uint64_t>(s.size), perm, s.mr, s.offset_within_region);
}

void DmaListener::RegionDel(const memory::MemoryRegionSection& s) {
  if (s.mr->IsIommu()) {
    auto it = std::find_if(sections_.begin(), sections_.end(),
                           [&](const std::unique_ptr<SectionNotifier>& n) {
                             return n->region() == s.mr &&
                                    n->offset_in_space() ==
                                        s.offset_within_address_space;
                           });
    if (it != sections_.end()) sections_.erase(it);  // unregisters
  }
  if (s.size == 0) return;
  UnmapRange(s.AddressRange());
}

void DmaListener::SectionNotifier::Notify(const memory::IommuEvent& event) {
  const memory::IommuTlbEntry& e = event.entry;
  if (e.addr_mask == UINT64_MAX) return;  // no 2^64-byte mapping to report
  const uint64_t iova = offset_in_space_ + (e.iova - offset_in_region_);
  const uint64_t len = e.addr_mask + 1;
  if (event.type == memory::IommuEventType::kUnmap) {
    owner_->UnmapRange(Range::FromBaseSize(iova, len));
  } else if (event.type == memory::IommuEventType::kMap) {
    owner_->UnmapRange(Range::FromBaseSize(iova, len));  // never overlap
    owner_->MapGpa(iova, e.translated_addr, len, PermBits(e.perm), e.target_as);
  }
}

void DmaListener::MapGpa(uint64_t iova, uint64_t gpa, uint64_t len,
                         uint32_t perm, memory::AddressSpace* target) {
  if (target == nullptr || perm == 0) return;
  while (len > 0) {
    memory::Translation t = target->Translate(gpa, len, /*is_write=*/false);
    const uint64_t l = std::max<uint64_t>(t.len, 1);
    auto it = t.mr != nullptr ? ep_->ctx->region_by_mr.find(t.mr)
                              : ep_->ctx->region_by_mr.end();
    if (it != ep_->ctx->region_by_mr.end() && t.mr->IsRam()) {
      const uint32_t p = t.readonly ? perm & VIOMMU_PERM_READ : perm;
      if (p != 0) MapPiece(iova, gpa, l, p, t.mr, t.offset_in_region);
    } else {
      ep_->ctx->Logf(VIOMMU_LOG_DEBUG,
                     "DMA listener of %s: iova 0x%x -> gpa 0x%x (0x%x bytes) "
                     "is not RAM: not reported",
                     EndpointName(ep_->segment, ep_->bus, ep_->devfn), iova,
                     gpa, l);
    }
    if (l >= len) break;
    iova += l;
    gpa += l;
    len -= l;
  }
}

void DmaListener::MapPiece(uint64_t iova, uint64_t gpa, uint64_t len,
                           uint32_t perm, const memory::MemoryRegion* mr,
                           uint64_t offset_in_region) {
  const Region* rec = ep_->ctx->region_by_mr.at(mr);
  viommu_dma_map m{};
  m.size = sizeof(m);
  m.iova = iova;
  m.gpa = gpa;
  m.len = len;
  m.hva = mr->host() + offset_in_region;
  m.fd = rec->fd;
  m.fd_offset = rec->fd >= 0 ? rec->fd_offset + offset_in_region : 0;
  m.perm = perm;
  m.flags = mr->IsRamDevice() ? VIOMMU_MAP_F_RAM_DEVICE : 0;
  mapped_[iova] = iova + (len - 1);
  CallbackScope scope(ep_->ctx);
  cb_.map(cb_.opaque, &m);
}

void DmaListener::UnmapRange(const Range& range) {
  // Entries are disjoint and keyed by first iova: start at the last one
  // beginning at or before range.first.
  auto it = mapped_.upper_bound(range.first);
  if (it != mapped_.begin()) --it;
  while (it != mapped_.end() && it->first <= range.last) {
    const uint64_t first = it->first;
    const uint64_t last = it->second;
    if (last < range.first) {
      ++it;
      continue;
    }
    it = mapped_.erase(it);
    const uint64_t cut_first = std::max(first, range.first);
    const uint64_t cut_last = std::min(last, range.last);
    if (first < cut_first) mapped_[first] = cut_first - 1;
    if (cut_last < last) it = mapped_.emplace(cut_last + 1, last).first;
    {
      CallbackScope scope(ep_->ctx);
      cb_.unmap(cb_.opaque, cut_first, cut_last - cut_first + 1);
    }
  }
}

}  // namespace viommu::capi

using viommu::capi::ControlGuard;
using viommu::capi::FailErrno;

int viommu_dma_listener_add(viommu_ep* ep, const struct viommu_dma_listener* l,
                            uint32_t* id) {
  if (ep == nullptr) return -EINVAL;
  viommu_ctx* ctx = ep->ctx;
  ControlGuard guard(ctx, __func__);
  if (guard.status() != 0) return guard.status();
  viommu_dma_listener cb;
  if (int e = viommu::capi::CopyIn(l, &cb); e < 0) {
    return FailErrno(ctx, __func__, -e,
                     "bad struct viommu_dma_listener or size");
  }
  if (id == nullptr || cb.map == nullptr || cb.unmap == nullptr) {
    return FailErrno(ctx, __func__, EINVAL,
                     "id, map and unmap must not be NULL");
  }
  auto listener = std::make_unique<viommu::capi::DmaListener>(ep, cb);
  if (absl::Status s = listener->Start(); !s.ok()) {
    return viommu::capi::Fail(ctx, __func__, s);
  }
  *id = ep->next_listener_id++;
  if (ep->next_listener_id == 0) ep->next_listener_id = 1;
  ep->listeners[*id] = std::move(listener);
  return 0;
}

int viommu_dma_listener_del(viommu_ep* ep, uint32_t id) {
  if (ep == nullptr) return -EINVAL;
  ControlGuard guard(ep->ctx, __func__);
  if (guard.status() != 0) return guard.status();
  auto it = ep->listeners.find(id);
  if (it == ep->listeners.end()) {
    return FailErrno(ep->ctx, __func__, ENOENT,
                     absl::StrFormat("no DMA listener %u", id));
  }
  std::unique_ptr<viommu::capi::DmaListener> listener = std::move(it->second);
  ep->listeners.erase(it);
  listener->Stop();
  return 0;
}
