// VirtioIommu: the request queue's requests (VIRTIO 1.2 §5.13.6) with QEMU
// 7.2's statuses, except where docs/virtio-iommu.md says otherwise.
#include <algorithm>
#include <cstring>
#include <functional>

#include "absl/container/inlined_vector.h"
#include "hw/iommu/virtio/virtio_iommu_endpoint.h"
#include "viommu/hw/iommu/virtio/virtio_iommu.h"
#include "viommu/util/le_bytes.h"
#include "viommu/util/trace.h"

namespace viommu::virtio_iommu {
namespace {

uint32_t Le32(std::span<const uint8_t> req, size_t at) {
  return static_cast<uint32_t>(LoadLe(req.data() + at, 4));
}
uint64_t Le64(std::span<const uint8_t> req, size_t at) {
  return LoadLe(req.data() + at, 8);
}

}  // namespace

RequestResult VirtioIommu::HandleRequest(
    std::span<const uint8_t> out, uint64_t in_size,
    std::span<uint8_t, kProbeReplySize> reply) {
  std::fill(reply.begin(), reply.end(), 0);
  const uint8_t type = out[0];
  RequestResult r{kTailSize, kTailSize};
  uint8_t status;
  switch (type) {
    case kReqAttach:
      status = Attach(out);
      break;
    case kReqDetach:
      status = Detach(out);
      break;
    case kReqMap:
      status = Map(out);
      break;
    case kReqUnmap:
      status = Unmap(out);
      break;
    case kReqProbe:
      status = Probe(out, reply.first<kProbeSize>());
      if (in_size >= kProbeReplySize) {
        // Properties, then the tail at probe_size (QEMU copies exactly
        // probe_size + 4 bytes, whatever the buffer's size).
        reply[kProbeSize] = status;
        r = {kProbeReplySize, kProbeReplySize};
      } else {
        // QEMU 7.2 aborts here; 9.1 answers DEVERR with used length 4.
        std::fill(reply.begin(), reply.end(), 0);
        status = kStatusDeverr;
        reply[0] = status;
      }
      VIOMMU_TRACE(virtio_iommu_request, type, status, r.used_len);
      return r;
    default:
      status = kStatusUnsupp;  // QEMU 7.2 writes UNSUPP
      break;
  }
  reply[0] = status;
  VIOMMU_TRACE(virtio_iommu_request, type, status, r.used_len);
  return r;
}

uint8_t VirtioIommu::Attach(std::span<const uint8_t> req) {
  if (req.size() < kAttachReqSize) return kStatusInval;
  const uint32_t domain = Le32(req, 4);
  const uint32_t endpoint = Le32(req, 8);
  const uint32_t flags = Le32(req, 12);
  VIOMMU_TRACE(virtio_iommu_attach, domain, endpoint, flags);
  if ((flags & ~kAttachFlagBypass) != 0) return kStatusInval;
  if (endpoint > 0xffff || !spaces_.contains(static_cast<uint16_t>(endpoint))) {
    return kStatusNoent;
  }
  const uint16_t sid = static_cast<uint16_t>(endpoint);
  const bool bypass = (flags & kAttachFlagBypass) != 0;
  uint8_t status = kStatusOk;
  {
    MutexLock l(&mu_);
    // QEMU 7.2: leave the current domain first, even when it is the same
    // one (its last endpoint leaving destroys it, mappings and all), and
    // only then check the bypass flag against an existing domain.
    DetachLocked(sid);
    endpoints_.try_emplace(sid);
    auto it = domains_.find(domain);
    if (it != domains_.end() && it->second.bypass != bypass) {
      status = kStatusInval;
    } else {
      if (it == domains_.end()) {
        it = domains_.emplace(domain, Domain{}).first;
        it->second.bypass = bypass;
      }
      it->second.endpoints.push_back(sid);
      endpoints_[sid] = domain;
      views_dirty_ = true;
      // The domain's mappings reach the new endpoint's notifiers.
      QueueDomainEvents(sid, it->second, /*map=*/true);
    }
  }
  Flush();
  return status;
}

uint8_t VirtioIommu::Detach(std::span<const uint8_t> req) {
  if (req.size() < kDetachReqSize) return kStatusInval;
  const uint32_t domain = Le32(req, 4);
  const uint32_t endpoint = Le32(req, 8);
  VIOMMU_TRACE(virtio_iommu_detach, domain, endpoint);
  if (endpoint > 0xffff) return kStatusNoent;
  const uint16_t sid = static_cast<uint16_t>(endpoint);
  {
    MutexLock l(&mu_);
    // QEMU 9.1: a detached endpoint is forgotten, so a second DETACH is
    // NOENT (7.2 keeps it: INVAL).
    auto it = endpoints_.find(sid);
    if (it == endpoints_.end()) return kStatusNoent;
    if (it->second != domain) return kStatusInval;
    DetachLocked(sid);
    endpoints_.erase(sid);
  }
  Flush();
  return kStatusOk;
}

uint8_t VirtioIommu::Map(std::span<const uint8_t> req) {
  if (req.size() < kMapReqSize) return kStatusInval;
  const uint32_t domain = Le32(req, 4);
  const uint64_t first = Le64(req, 8);
  const uint64_t last = Le64(req, 16);
  const uint64_t phys = Le64(req, 24);
  const uint32_t flags = Le32(req, 32);
  VIOMMU_TRACE(virtio_iommu_map, domain, first, last, phys, flags);
  if ((flags & ~kMapFlagsKnown) != 0) return kStatusInval;
  // The host failure counters of the domain's passthrough endpoints.
  absl::InlinedVector<std::function<uint64_t()>, 2> host_failures;
  {
    MutexLock l(&mu_);
    auto it = domains_.find(domain);
    if (it == domains_.end()) return kStatusNoent;
    Domain& d = it->second;
    if (d.bypass) return kStatusInval;
    // QEMU 7.2 checks neither alignment nor order; an inverted range holds
    // no address, so it is accepted and changes nothing.
    if (last < first) return kStatusOk;
    // Overlap: the mapping starting at or before `last` with the highest
    // start is the only candidate (mappings never overlap).
    auto next = d.mappings.upper_bound(last);
    if (next != d.mappings.begin() && std::prev(next)->second.last >= first) {
      return kStatusInval;
    }
    // Beyond QEMU: every host IOMMU behind the domain must be able to map
    // the range (inside its valid IOVA ranges, aligned to its smallest
    // page), or the request fails before the domain or a host changes.
    for (uint16_t sid : d.endpoints) {
      auto h = host_devices_.find(sid);
      if (h == host_devices_.end()) continue;
      if (!HostCanMap(h->second, first, last, phys)) {
        VIOMMU_TRACE(virtio_iommu_map_host_range, sid, first, last);
        return kStatusRange;
      }
      if (h->second.map_failures) host_failures.push_back(h->second.map_failures);
    }
    d.mappings.emplace(first, Mapping{last, phys, flags});
    for (uint16_t sid : d.endpoints) {
      pending_.push_back({sid, true, first, last, phys, flags});
    }
  }
  uint64_t failures_before = 0;
  for (const auto& f : host_failures) failures_before += f();
  Flush();
  uint64_t failures_after = 0;
  for (const auto& f : host_failures) failures_after += f();
  if (failures_after == failures_before) return kStatusOk;
  // A host refused the MAP (QEMU only logs it): the request fails and the
  // domain is left as before it; the UNMAP events take back whatever the
  // notifiers (and hosts) did map.
  VIOMMU_TRACE(virtio_iommu_map_host_failed, domain, first, last);
  {
    MutexLock l(&mu_);
    auto it = domains_.find(domain);
    if (it != domains_.end()) {
      auto m = it->second.mappings.find(first);
      if (m != it->second.mappings.end() && m->second.last == last) {
        for (uint16_t sid : it->second.endpoints) {
          pending_.push_back({sid, false, first, last, phys, flags});
        }
        it->second.mappings.erase(m);
      }
    }
  }
  Flush();
  return kStatusDeverr;
}

bool VirtioIommu::HostCanMap(const devcore::HostIommuDevice& hiod,
                             uint64_t first, uint64_t last, uint64_t phys) {
  if (hiod.page_size_mask != 0) {
    const uint64_t page_mask = (hiod.page_size_mask & -hiod.page_size_mask) - 1;
    // last + 1 wraps to 0 (aligned) for a range ending at 2^64 - 1.
    if (((first | phys | (last + 1)) & page_mask) != 0) return false;
  }
  const std::vector<Range>& ranges = HostRanges(hiod);
  if (ranges.empty()) return true;  // unknown: all valid
  return std::any_of(
      ranges.begin(), ranges.end(),
      [&](const Range& r) { return r.first <= first && last <= r.last; });
}

uint8_t VirtioIommu::Unmap(std::span<const uint8_t> req) {
  if (req.size() < kUnmapReqSize) return kStatusInval;
  const uint32_t domain = Le32(req, 4);
  const uint64_t first = Le64(req, 8);
  const uint64_t last = Le64(req, 16);
  VIOMMU_TRACE(virtio_iommu_unmap, domain, first, last);
  {
    MutexLock l(&mu_);
    auto it = domains_.find(domain);
    if (it == domains_.end()) return kStatusNoent;
    Domain& d = it->second;
    if (d.bypass) return kStatusInval;
    if (last < first) return kStatusOk;
    // Every mapping overlapping [first, last]: from the one holding
    // `first` (if any) to the last one starting at or before `last`.
    auto begin = d.mappings.upper_bound(first);
    if (begin != d.mappings.begin() &&
        std::prev(begin)->second.last >= first) {
      --begin;
    }
    auto end = d.mappings.upper_bound(last);
    // Atomic (spec; QEMU 7.2 removes what it met before the split): a
    // mapping only partly inside fails the request and nothing changes.
    for (auto m = begin; m != end; ++m) {
      if (m->first < first || m->second.last > last) return kStatusRange;
    }
    for (auto m = begin; m != end; ++m) {
      for (uint16_t sid : d.endpoints) {
        pending_.push_back(
            {sid, false, m->first, m->second.last, m->second.phys,
             m->second.flags});
      }
    }
    d.mappings.erase(begin, end);
  }
  Flush();
  return kStatusOk;
}

uint8_t VirtioIommu::Probe(std::span<const uint8_t> req,
                           std::span<uint8_t, kProbeSize> props) {
  if (req.size() < kProbeReqSize) return kStatusInval;
  const uint32_t endpoint = Le32(req, 4);
  VIOMMU_TRACE(virtio_iommu_probe, endpoint);
  if (endpoint > 0xffff || !spaces_.contains(static_cast<uint16_t>(endpoint))) {
    return kStatusNoent;
  }
  // First the x86 MSI window, subtype MSI (the one reserved region q35
  // gives every endpoint, as QEMU 7.2); then, for an endpoint with a host
  // IOMMU device, what its host cannot map, as RESERVED.
  size_t at = 0;
  auto put = [&](uint8_t subtype, const Range& r) {
    StoreLe(&props[at], kProbeTypeResvMem, 2);
    StoreLe(&props[at + 2], kResvMemLength, 2);
    props[at + 4] = subtype;
    StoreLe(&props[at + 8], r.first, 8);
    StoreLe(&props[at + 16], r.last, 8);
    at += kPropertyHeaderSize + kResvMemLength;
  };
  put(kResvMemMsi, {kMsiWindowFirst, kMsiWindowLast});
  auto host = host_devices_.find(static_cast<uint16_t>(endpoint));
  if (host != host_devices_.end()) {
    for (const Range& r : HostReservedRegions(host->second)) {
      put(kResvMemReserved, r);
    }
  }
  return kStatusOk;
}

std::vector<Range> VirtioIommu::HostReservedRegions(
    const devcore::HostIommuDevice& hiod) {
  // The complement of the valid IOVA ranges: the host's reserved regions
  // and everything above its aperture.
  std::vector<Range> raw;
  const std::vector<Range>& ranges = HostRanges(hiod);
  if (ranges.empty()) return raw;  // unknown: all valid
  uint64_t next = 0;  // first IOVA not yet covered
  bool done = false;
  for (const Range& r : ranges) {
    if (r.first > next) raw.push_back({next, r.first - 1});
    if (r.last == ~uint64_t{0}) {
      done = true;
      break;
    }
    next = std::max(next, r.last + 1);
  }
  if (!done) raw.push_back({next, ~uint64_t{0}});
  // Minus the MSI window, reported as MSI (regions must not overlap,
  // §5.13.6.5): a hole around it becomes two.
  auto without_msi = [](const std::vector<Range>& in) {
    std::vector<Range> out;
    for (const Range& r : in) {
      if (r.last < kMsiWindowFirst || r.first > kMsiWindowLast) {
        out.push_back(r);
        continue;
      }
      if (r.first < kMsiWindowFirst) out.push_back({r.first, kMsiWindowFirst - 1});
      if (r.last > kMsiWindowLast) out.push_back({kMsiWindowLast + 1, r.last});
    }
    return out;
  };
  std::vector<Range> holes = without_msi(raw);
  if (holes.size() <= kMaxHostRegions) return holes;
  // probe_size holds kMaxHostRegions after the MSI property: the last
  // hole that fits stretches over the rest (more reserved, never less),
  // leaving one slot for the split around the MSI window.
  raw[kMaxHostRegions - 2].last = raw.back().last;
  raw.resize(kMaxHostRegions - 1);
  return without_msi(raw);
}

void VirtioIommu::DetachLocked(uint16_t sid) {
  auto ep = endpoints_.find(sid);
  if (ep == endpoints_.end() || !ep->second.has_value()) return;
  auto it = domains_.find(*ep->second);
  if (it != domains_.end()) {
    Domain& d = it->second;
    QueueDomainEvents(sid, d, /*map=*/false);
    d.endpoints.erase(std::remove(d.endpoints.begin(), d.endpoints.end(), sid),
                      d.endpoints.end());
    if (d.endpoints.empty()) domains_.erase(it);
  }
  ep->second.reset();
  views_dirty_ = true;
}

void VirtioIommu::QueueDomainEvents(uint16_t sid, const Domain& d, bool map) {
  for (const auto& [first, m] : d.mappings) {
    pending_.push_back({sid, map, first, m.last, m.phys, m.flags});
  }
}

}  // namespace viommu::virtio_iommu
