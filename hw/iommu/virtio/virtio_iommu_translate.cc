// VirtioIommu: translation for the per-endpoint IOMMU regions, fault
// records, MAP/UNMAP events and replay.
#include <bit>
#include <utility>

#include "hw/iommu/virtio/virtio_iommu_endpoint.h"
#include "viommu/hw/iommu/virtio/virtio_iommu.h"
#include "viommu/memory/iommu_notifier_chains.h"
#include "viommu/util/trace.h"

namespace viommu::virtio_iommu {
namespace {

using memory::IommuPerm;
using memory::IommuTlbEntry;

IommuPerm PermOf(uint32_t flags) {
  return static_cast<IommuPerm>(((flags & kMapFlagRead) ? memory::kIommuRead
                                                        : 0) |
                                ((flags & kMapFlagWrite) ? memory::kIommuWrite
                                                         : 0));
}

// Calls fn(iova, mask, phys) for the power-of-two blocks, aligned in IOVA
// space (QEMU's dma_aligned_pow2_mask), that cover [first, last] -> phys:
// at most 2 * 64 of them whatever the mapping. `phys` is the block's first
// translated byte (a notifier entry maps [iova, iova + mask] linearly to
// [phys, phys + mask]); it need not share the IOVA's alignment. Aligning
// in both spaces would make a mapping whose IOVA and physical offsets
// differ in low bits (e.g. [0, 2^64-1] -> 0x1000) billions of events.
template <typename Fn>
void ForEachBlock(uint64_t first, uint64_t last, uint64_t phys, Fn&& fn) {
  uint64_t iova = first;
  for (;;) {
    const uint64_t align_mask = iova == 0 ? ~uint64_t{0} : (iova & -iova) - 1;
    const uint64_t left = last - iova;  // bytes after iova
    const uint64_t span_mask =
        left == ~uint64_t{0} ? ~uint64_t{0} : std::bit_floor(left + 1) - 1;
    const uint64_t mask = std::min(align_mask, span_mask);
    fn(iova, mask, phys);
    if (iova + mask == last) return;
    iova += mask + 1;
    phys += mask + 1;
  }
}

}  // namespace

IommuTlbEntry VirtioIommu::Translate(uint16_t sid, Iova iova,
                                     IommuPerm access) {
  const bool query = access == memory::kIommuNone;
  IommuTlbEntry e;
  e.target_as = host_.system_as;
  uint8_t reason = 0;
  uint32_t fault_flags = kFaultFlagAddress;
  bool fault = false;
  auto identity = [&](uint64_t mask) {
    e.iova = iova & ~mask;
    e.translated_addr = e.iova;
    e.addr_mask = mask;
    e.perm = memory::kIommuReadWrite;
  };
  {
    ReaderMutexLock l(&mu_);
    auto ep = endpoints_.find(sid);
    auto d = ep == endpoints_.end() || !ep->second.has_value()
                 ? domains_.end()
                 : domains_.find(*ep->second);
    if (ep == endpoints_.end()) {
      // Unknown (never attached, detached, reset) endpoint.
      if (bypass_) {
        identity(kGranule - 1);
      } else {
        fault = true;
        reason = kFaultReasonUnknown;
      }
    } else if (iova >= kMsiWindowFirst && iova <= kMsiWindowLast) {
      // The MSI reserved region is identity-mapped before any domain
      // lookup, and shadows mappings (QEMU 7.2).
      identity(kGranule - 1);
    } else if (d == domains_.end()) {
      // Known but in no domain (an ATTACH that failed its bypass check).
      if (bypass_) {
        identity(kGranule - 1);
      } else {
        fault = true;
        reason = kFaultReasonDomain;
      }
    } else if (d->second.bypass) {
      identity(kGranule - 1);
    } else {
      const auto& maps = d->second.mappings;
      auto it = maps.upper_bound(iova);
      if (it == maps.begin() || std::prev(it)->second.last < iova) {
        fault = true;
        reason = kFaultReasonMapping;
      } else {
        --it;
        const uint64_t first = it->first;
        const Mapping& m = it->second;
        const IommuPerm perm = PermOf(m.flags);
        uint32_t denied = 0;
        if ((access & memory::kIommuRead) && !(perm & memory::kIommuRead)) {
          denied |= kFaultFlagRead;
        }
        if ((access & memory::kIommuWrite) && !(perm & memory::kIommuWrite)) {
          denied |= kFaultFlagWrite;
        }
        if (denied != 0) {
          fault = true;
          reason = kFaultReasonMapping;
          fault_flags |= denied;
        } else {
          // Exact: the largest aligned block around iova that lies inside
          // the mapping and has the same offset in IOVA and physical space.
          const uint64_t phys = m.phys + (iova - first);
          uint64_t mask = 0;
          while (mask != ~uint64_t{0}) {
            const uint64_t next = mask << 1 | 1;
            if ((iova & ~next) < first || (iova | next) > m.last ||
                ((iova ^ phys) & next) != 0) {
              break;
            }
            mask = next;
          }
          e.iova = iova & ~mask;
          e.translated_addr = phys & ~mask;
          e.addr_mask = mask;
          e.perm = perm;
        }
      }
    }
  }
  if (fault) {
    // One record per 4-byte chunk, as QEMU's unassigned-memory path.
    e.iova = iova & ~uint64_t{3};
    e.translated_addr = 0;
    e.addr_mask = 3;
    e.perm = memory::kIommuNone;
    if (!query) ReportFault(reason, fault_flags, sid, iova);
    return e;
  }
  VIOMMU_TRACE(virtio_iommu_translate, sid, iova, e.translated_addr,
               e.addr_mask, static_cast<unsigned>(e.perm));
  return e;
}

void VirtioIommu::Replay(uint16_t sid, memory::ReplaySink emit) {
  std::vector<MappingInfo> maps;
  {
    ReaderMutexLock l(&mu_);
    auto ep = endpoints_.find(sid);
    if (ep == endpoints_.end() || !ep->second.has_value()) return;
    auto d = domains_.find(*ep->second);
    if (d == domains_.end() || d->second.bypass) return;
    maps.reserve(d->second.mappings.size());
    for (const auto& [first, m] : d->second.mappings) {
      maps.push_back({first, m.last, m.phys, m.flags});
    }
  }
  for (const MappingInfo& m : maps) {
    const IommuPerm perm = PermOf(m.flags);
    if (perm == memory::kIommuNone) continue;
    ForEachBlock(m.first, m.last, m.phys,
                 [&](uint64_t iova, uint64_t mask, uint64_t phys) {
                   emit(IommuTlbEntry{.target_as = host_.system_as,
                                      .iova = iova,
                                      .translated_addr = phys,
                                      .addr_mask = mask,
                                      .perm = perm});
                 });
  }
}

void VirtioIommu::Flush() {
  std::vector<PendingEvent> events;
  std::vector<std::pair<EndpointSpace*, bool>> views;
  {
    MutexLock l(&mu_);
    events.swap(pending_);
    if (views_dirty_) {
      views_dirty_ = false;
      views.reserve(spaces_.size());
      for (const auto& [sid, space] : spaces_) {
        views.emplace_back(space.get(), BypassedLocked(sid));
      }
    }
  }
  for (const PendingEvent& ev : events) {
    auto it = spaces_.find(ev.sid);
    const IommuPerm perm = PermOf(ev.flags);
    // A mapping without R or W gives no access: nothing to shadow.
    if (it == spaces_.end() || perm == memory::kIommuNone) continue;
    memory::IommuNotifierChains* chains = it->second->notifiers();
    ForEachBlock(ev.first, ev.last, ev.phys,
                 [&](uint64_t iova, uint64_t mask, uint64_t phys) {
                   memory::IommuEvent e;
                   e.type = ev.map ? memory::IommuEventType::kMap
                                   : memory::IommuEventType::kUnmap;
                   e.entry = {.target_as = host_.system_as,
                              .iova = iova,
                              .translated_addr = phys,
                              .addr_mask = mask,
                              .perm = ev.map ? perm : memory::kIommuNone};
                   chains->Notify(0, e);
                 });
  }
  if (!views.empty()) {
    memory::MemorySystem::Transaction txn(host_.memory);
    for (const auto& [space, bypassed] : views) {
      if (space->bypassed() != bypassed) {
        VIOMMU_TRACE(virtio_iommu_switch, space->sid(), bypassed ? 1 : 0);
        space->SetBypass(bypassed);
      }
    }
  }
}

}  // namespace viommu::virtio_iommu
