#include "viommu/vfio/container.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/numeric/bits.h"
#include "absl/strings/str_format.h"
#include "vfio/container_listener.h"
#include "viommu/util/log.h"
#include "viommu/util/status_macros.h"
#include "viommu/util/trace.h"
#include "viommu/vfio/vfio_status.h"

namespace viommu::vfio {

const char* ContainerBackendName(ContainerBackend backend) {
  return backend == ContainerBackend::kType1 ? "type1" : "iommufd";
}

VfioContainer::VfioContainer(ContainerBackend backend, HostBackend* host,
                             memory::AddressSpace* as, uint32_t id,
                             ContainerOptions options)
    : backend_(backend),
      host_(host),
      as_(as),
      id_(id),
      options_(std::move(options)) {
  host_page_ = options_.host_page_size;
  if (host_page_ == 0) {
    long p = sysconf(_SC_PAGESIZE);
    host_page_ = p > 0 ? static_cast<uint64_t>(p) : 4096;
  }
}

VfioContainer::~VfioContainer() {
  // Subclasses call Shutdown() in their destructors; this only drops the
  // listener if a subclass failed to (no host calls from here).
  listener_handle_.Reset();
}

uint64_t VfioContainer::MinIommuPage() const {
  if (pgsizes_ == 0) return 4096;
  return pgsizes_ & (~pgsizes_ + 1);
}

uint64_t VfioContainer::dma_avail() const {
  return mappings_.size() >= dma_limit_ ? 0 : dma_limit_ - mappings_.size();
}

std::vector<SkippedRange> VfioContainer::skipped() const {
  std::vector<SkippedRange> out;
  out.reserve(skipped_.size());
  for (const auto& [start, s] : skipped_) out.push_back(s);
  return out;
}

devcore::HostIommuDevice VfioContainer::HostIommuInfo() const {
  devcore::HostIommuDevice info;
  info.page_size_mask = pgsizes_;
  info.iova_ranges = iova_ranges_;
  uint64_t top = UINT64_MAX;
  if (!iova_ranges_.empty()) top = iova_ranges_.back().last;
  info.aw_bits =
      static_cast<uint8_t>(top == 0 ? 1 : 64 - absl::countl_zero(top));
  info.map_failures = [this] { return stats_.giommu_map_errors; };
  info.current_iova_ranges = [this]() -> const std::vector<Range>& {
    return iova_ranges_;
  };
  return info;
}

ContainerQuery VfioContainer::Query() const {
  ContainerQuery q;
  q.id = id_;
  q.backend = ContainerBackendName(backend_);
  q.address_space = as_->name();
  q.devices = devices_;
  q.iova_ranges = iova_ranges_;
  q.mappings = mappings_.size();
  q.dma_avail = dma_avail();
  q.skipped = skipped();
  return q;
}

void VfioContainer::set_iova_ranges(std::vector<Range> ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.first < b.first; });
  // Merge overlapping or adjacent ranges so that holes are real holes.
  std::vector<Range> merged;
  for (const Range& r : ranges) {
    if (!merged.empty() && (merged.back().last == UINT64_MAX ||
                            r.first <= merged.back().last + 1)) {
      merged.back().last = std::max(merged.back().last, r.last);
    } else {
      merged.push_back(r);
    }
  }
  iova_ranges_ = std::move(merged);
}

void VfioContainer::RemoveDeviceName(const std::string& name) {
  auto it = std::find(devices_.begin(), devices_.end(), name);
  if (it != devices_.end()) devices_.erase(it);
}

// ---- errors ----------------------------------------------------------------

void VfioContainer::ReportError(const absl::Status& status) {
  if (status.ok()) return;
  VIOMMU_TRACE(vfio_error, id_, "error", status.message());
  if (!initialized_) {
    if (first_error_.ok()) first_error_ = status;
    return;
  }
  ++stats_.errors;
  last_error_ = status;
  if (options_.on_error) options_.on_error(status);
}

void VfioContainer::ReportGuestError(const absl::Status& status) {
  if (status.ok()) return;
  VIOMMU_TRACE(vfio_error, id_, "guest error", status.message());
  VIOMMU_LOG_GUEST_ERROR("vfio: container %u: %s", id_, status.message());
  ++stats_.errors;
  last_error_ = status;
  if (options_.on_error) options_.on_error(status);
}

void VfioContainer::ReportWarning(const absl::Status& status) {
  if (status.ok()) return;
  VIOMMU_TRACE(vfio_error, id_, "warning", status.message());
  VIOMMU_LOG_GUEST_ERROR("vfio: container %u: %s", id_, status.message());
  ++stats_.warnings;
  last_error_ = status;
  if (options_.on_warning) options_.on_warning(status);
}

void VfioContainer::RecordSkipped(const Range& range, SkipReason reason) {
  VIOMMU_TRACE(vfio_listener_region_add_skip, id_, range.first, range.last,
               SkipReasonName(reason));
  skipped_[range.first] = {range.first, range.last, SkipReasonName(reason)};
}

void VfioContainer::ForgetSkipped(const Range& range) {
  auto it = skipped_.lower_bound(range.first);
  while (it != skipped_.end() && it->second.start <= range.last) {
    if (it->second.end <= range.last) {
      it = skipped_.erase(it);
    } else {
      ++it;
    }
  }
}

// ---- DMA ------------------------------------------------------------------

absl::Status VfioContainer::MapOne(Iova iova, uint64_t size, Hva hva,
                                   bool readonly) {
  absl::Status s = HostMap(iova, size, hva, readonly);
  if (!s.ok()) {
    ++stats_.map_errors;
    return s;
  }
  ++stats_.maps;
  // The host accepted the range, so any table entry overlapping it is stale
  // (e.g. removed by type1's EBUSY unmap-and-retry): drop it.
  const uint64_t last = iova + (size - 1);
  // One search: `it` is the first entry starting at or after iova; only
  // the entry before it can reach into the new range from below.
  auto it = mappings_.lower_bound(iova);
  if (it != mappings_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + (prev->second.size - 1) >= iova) mappings_.erase(prev);
  }
  while (it != mappings_.end() && it->first <= last) it = mappings_.erase(it);
  // `it` is now the first entry past `last`: the new one goes right before.
  mappings_.emplace_hint(it, iova, DmaMapping{size, hva, readonly});
  return absl::OkStatus();
}

absl::Status VfioContainer::MapPieces(Iova iova, uint64_t last, Hva hva,
                                      bool readonly, bool record_holes,
                                      bool* einval) {
  *einval = false;
  // The common case: the whole range inside one valid IOVA range.
  for (const Range& r : iova_ranges_) {
    if (r.first > iova) break;
    if (r.last >= last) {
      absl::Status s = MapOne(iova, last - iova + 1, hva, readonly);
      if (!s.ok() && StatusErrno(s) == EINVAL) *einval = true;
      return s;
    }
  }
  // Inline storage: a guest-IOMMU MAP (one per PSI) allocates nothing here.
  absl::InlinedVector<Range, 2> pieces;
  absl::InlinedVector<Range, 2> holes;
  if (iova_ranges_.empty()) {
    pieces.push_back({iova, last});
  } else {
    uint64_t cursor = iova;
    bool reached_end = false;
    for (const Range& r : iova_ranges_) {
      if (r.last < cursor) continue;
      if (r.first > last) break;
      if (r.first > cursor) holes.push_back({cursor, r.first - 1});
      Range piece{std::max(cursor, r.first), std::min(last, r.last)};
      pieces.push_back(piece);
      if (piece.last == last) {
        reached_end = true;
        break;
      }
      cursor = piece.last + 1;
    }
    if (!reached_end) holes.push_back({cursor, last});
  }
  if (record_holes) {
    for (const Range& h : holes)
      RecordSkipped(h, SkipReason::kOutsideIovaRanges);
  }
  absl::Status first;
  for (const Range& p : pieces) {
    absl::Status s =
        MapOne(p.first, p.last - p.first + 1, hva + (p.first - iova), readonly);
    if (!s.ok()) {
      if (StatusErrno(s) == EINVAL) *einval = true;
      if (first.ok()) first = s;
    }
  }
  return first;
}

absl::Status VfioContainer::DmaMap(Iova iova, uint64_t size, Hva hva,
                                   bool readonly) {
  VIOMMU_TRACE(vfio_dma_map, id_, iova, size, hva, readonly);
  const uint64_t last = iova + (size - 1);
  bool einval = false;
  absl::Status s = MapPieces(iova, last, hva, readonly, true, &einval);
  if (s.ok() || !einval) return s;
  // EINVAL may mean our IOVA ranges are stale (reserved regions changed):
  // re-read them exactly once.
  bool changed = false;
  absl::Status r = RefreshIovaRanges(&changed);
  if (!r.ok()) {
    return Annotate(
        s, absl::StrCat("re-reading IOVA ranges failed (", r.message(), ")"));
  }
  if (!changed) return s;
  // Retry, under the new ranges, only what is not mapped yet.
  ForgetSkipped({iova, last});
  std::vector<Range> todo;
  uint64_t cursor = iova;
  bool covered_to_end = false;
  for (auto it = mappings_.lower_bound(iova);
       it != mappings_.end() && it->first <= last; ++it) {
    if (it->first > cursor) todo.push_back({cursor, it->first - 1});
    const uint64_t end = it->first + (it->second.size - 1);
    if (end >= last) {
      covered_to_end = true;
      break;
    }
    cursor = end + 1;
  }
  if (!covered_to_end) todo.push_back({cursor, last});
  absl::Status first;
  for (const Range& t : todo) {
    s = MapPieces(t.first, t.last, hva + (t.first - iova), readonly, true,
                  &einval);
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

absl::Status VfioContainer::RefreshIovaRanges(bool* changed) {
  *changed = false;
  ++stats_.iova_range_rereads;
  std::vector<Range> before = iova_ranges_;
  VIOMMU_RETURN_IF_ERROR(ReadIovaInfo());
  if (iova_ranges_ == before) return absl::OkStatus();
  *changed = true;
  ++stats_.iova_range_changes;
  last_error_ = absl::FailedPreconditionError(
      absl::StrFormat("vfio: iova ranges changed (container %u, %d ranges now)",
                      id_, static_cast<int>(iova_ranges_.size())));
  if (options_.on_iova_ranges_changed) {
    options_.on_iova_ranges_changed(iova_ranges_);
  }
  return absl::OkStatus();
}

absl::Status VfioContainer::DmaUnmap(Iova iova, Size128 size) {
  if (size == 0) return absl::OkStatus();
  std::optional<Range> req = Range::FromBaseSizeClipped(iova, size);
  if (!req.has_value()) return absl::OkStatus();
  VIOMMU_TRACE(vfio_dma_unmap, id_, req->first, req->last);
  // The common case (a guest UNMAP or a section going away): exactly one
  // table mapping, unmapped whole. Mappings never overlap, so a mapping
  // starting at the request with the request's size is the only hit.
  if (auto exact = mappings_.find(req->first);
      exact != mappings_.end() &&
      exact->first + (exact->second.size - 1) == req->last) {
    absl::Status s = HostUnmap(exact->first, exact->second.size);
    if (!s.ok()) {
      ++stats_.unmap_errors;
      return s;
    }
    ++stats_.unmaps;
    mappings_.erase(exact);
    return s;
  }
  // Collect first: host calls mutate mappings_. Inline storage: a guest
  // IOMMU UNMAP (one per invalidation, usually one mapping) allocates
  // nothing here.
  absl::InlinedVector<std::pair<Iova, DmaMapping>, 2> hit;
  auto it = mappings_.upper_bound(req->first);
  if (it != mappings_.begin()) --it;
  for (; it != mappings_.end() && it->first <= req->last; ++it) {
    Range m{it->first, it->first + (it->second.size - 1)};
    if (m.Overlaps(*req)) hit.emplace_back(it->first, it->second);
  }
  // The request covers the whole table (an IOMMU region going away, a
  // teardown): one unmap-all call instead of one per mapping, when the
  // host has it. If it fails, the per-mapping path below still runs.
  if (hit.size() > 1 && hit.size() == mappings_.size() && HasUnmapAll() &&
      req->first <= hit.front().first &&
      req->last >= hit.back().first + (hit.back().second.size - 1)) {
    absl::Status s = HostUnmapAll();
    if (s.ok()) {
      ++stats_.unmaps;
      mappings_.clear();
      return s;
    }
    ++stats_.unmap_errors;
  }
  absl::Status first;
  for (const auto& [start, m] : hit) {
    Range mr{start, start + (m.size - 1)};
    Range cut = mr.Intersect(*req);
    absl::Status s = HostUnmap(cut.first, cut.last - cut.first + 1);
    if (!s.ok()) {
      ++stats_.unmap_errors;
      if (first.ok()) first = s;
      continue;
    }
    ++stats_.unmaps;
    mappings_.erase(start);
    if (cut.first > mr.first) {
      mappings_[mr.first] = {cut.first - mr.first, m.hva, m.readonly};
    }
    if (cut.last < mr.last) {
      mappings_[cut.last + 1] = {mr.last - cut.last,
                                 m.hva + (cut.last + 1 - mr.first), m.readonly};
    }
  }
  return first;
}

absl::Status VfioContainer::UnmapAll() { return DmaUnmap(0, kSize2To64); }

// ---- lifecycle
// ---------------------------------------------------------------

absl::Status VfioContainer::StartListening() {
  listener_ = std::make_unique<ContainerListener>(this);
  listener_handle_ = as_->RegisterListener(listener_.get());
  if (!first_error_.ok()) {
    absl::Status err = first_error_;
    listener_handle_.Reset();
    // The attach fails with `err` either way, and the caller's Shutdown()
    // unmaps what is left and releases the host objects (which drops any
    // host mapping an unmap failed to remove): nothing to add here.
    UnmapAll().IgnoreError();
    return err;
  }
  initialized_ = true;
  return absl::OkStatus();
}

void VfioContainer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  listener_handle_.Reset();  // RegionDel for every section: unmaps
  absl::Status s = UnmapAll();
  if (!s.ok()) ReportError(s);
  ReleaseHost();
}

}  // namespace viommu::vfio
