#include "vfio/container_listener.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/util/trace.h"
#include "viommu/vfio/vfio_status.h"

namespace viommu::vfio {

using memory::IommuEvent;
using memory::IommuEventType;
using memory::MemoryRegionSection;

// One IOMMU section's notifier (on both the MAP and the UNMAP chain).
class ContainerListener::GuestIommu final : public memory::IommuNotifier {
 public:
  GuestIommu(VfioContainer* container, memory::MemoryRegion* mr,
             uint64_t section_start, uint64_t iommu_offset)
      : container_(container),
        mr_(mr),
        section_start_(section_start),
        iommu_offset_(iommu_offset) {}

  void Notify(const IommuEvent& event) override {
    const memory::IommuTlbEntry& e = event.entry;
    const Iova iova = e.iova + iommu_offset_;
    const Size128 size = Size128(e.addr_mask) + 1;
    VIOMMU_TRACE(vfio_iommu_map_notify, container_->id(), iova,
                 iova + e.addr_mask, event.type == IommuEventType::kMap);
    if (event.type == IommuEventType::kUnmap) {
      ++container_->stats_.giommu_unmap_events;
      std::optional<Range> r = Range::FromBaseSizeClipped(iova, size);
      if (r.has_value()) container_->ForgetSkipped(*r);
      absl::Status s = container_->DmaUnmap(iova, size);
      if (!s.ok()) container_->ReportGuestError(s);
      return;
    }
    if (event.type != IommuEventType::kMap) return;
    ++container_->stats_.giommu_map_events;
    if (e.addr_mask == UINT64_MAX) {
      container_->ReportGuestError(absl::InvalidArgumentError(
          "vfio: IOMMU MAP of the whole 64-bit space"));
      return;
    }
    const uint64_t len = e.addr_mask + 1;
    if (iova + (len - 1) < iova) {
      container_->ReportGuestError(absl::InvalidArgumentError(absl::StrFormat(
          "vfio: IOMMU MAP iova=0x%x size=0x%x wraps past 2^64", iova, len)));
      return;
    }
    if (e.target_as == nullptr) {
      container_->ReportGuestError(absl::InvalidArgumentError(absl::StrFormat(
          "vfio: IOMMU MAP iova=0x%x has no target address space", iova)));
      return;
    }
    // Resolve the translated GPA in the target address space to host RAM.
    memory::Translation t = e.target_as->Translate(e.translated_addr, len,
                                                   /*is_write=*/false);
    if (t.mr == nullptr || !t.mr->IsRam() || t.mr->host() == nullptr ||
        t.len < len) {
      container_->RecordSkipped(Range{iova, iova + (len - 1)},
                                SkipReason::kIommuTargetNotRam);
      container_->ReportGuestError(absl::InvalidArgumentError(absl::StrFormat(
          "vfio: IOMMU MAP iova=0x%x size=0x%x -> 0x%x in %s is not RAM", iova,
          len, e.translated_addr, e.target_as->name())));
      return;
    }
    const Hva hva =
        reinterpret_cast<uintptr_t>(t.mr->host()) + t.offset_in_region;
    const bool ro = (e.perm & memory::kIommuWrite) == 0 || t.readonly;
    absl::Status s = container_->DmaMap(iova, len, hva, ro);
    if (!s.ok()) {
      ++container_->stats_.giommu_map_errors;
      container_->ReportGuestError(s);
    }
  }

  memory::MemoryRegion* mr() const { return mr_; }
  uint64_t section_start() const { return section_start_; }
  memory::IommuNotifierHandle& handle() { return handle_; }

 private:
  VfioContainer* const container_;  // not owned
  memory::MemoryRegion* const mr_;  // not owned; alive while registered
  const uint64_t section_start_;    // offset_within_region of the section
  const uint64_t iommu_offset_;     // address space offset - region offset
  memory::IommuNotifierHandle handle_;
};

ContainerListener::ContainerListener(VfioContainer* container)
    : container_(container) {}
ContainerListener::~ContainerListener() = default;

std::optional<SkipReason> ContainerListener::SkipFor(
    const MemoryRegionSection& section) const {
  if (!section.mr->IsRam() && !section.mr->IsIommu()) return SkipReason::kMmio;
  if (section.offset_within_address_space & (uint64_t{1} << 63)) {
    return SkipReason::kBit63;
  }
  const uint64_t low = container_->host_page_size() - 1;
  if ((section.offset_within_address_space & low) !=
      (section.offset_within_region & low)) {
    return SkipReason::kPageOffsetMismatch;
  }
  return std::nullopt;
}

void ContainerListener::RegionAdd(const MemoryRegionSection& section) {
  std::optional<Range> r = Range::FromBaseSizeClipped(
      section.offset_within_address_space, section.size);
  if (!r.has_value()) return;
  if (std::optional<SkipReason> reason = SkipFor(section)) {
    container_->RecordSkipped(*r, *reason);
    if (*reason == SkipReason::kPageOffsetMismatch) {
      container_->ReportWarning(absl::InvalidArgumentError(absl::StrFormat(
          "vfio: %s at 0x%x: page offset differs from the region's (0x%x)",
          section.mr->name(), r->first, section.offset_within_region)));
    }
    return;
  }
  if (section.mr->IsIommu()) {
    AddIommuSection(section);
  } else {
    AddRamSection(section);
  }
}

void ContainerListener::AddIommuSection(const MemoryRegionSection& section) {
  memory::MemoryRegion* mr = section.mr;
  std::optional<Range> in_region =
      Range::FromBaseSizeClipped(section.offset_within_region, section.size);
  if (!in_region.has_value()) return;
  auto giommu = std::make_unique<GuestIommu>(
      container_, mr, section.offset_within_region,
      section.offset_within_address_space - section.offset_within_region);
  memory::IommuNotifierChains* chains = mr->iommu();
  const int idx =
      mr->iommu_model()->AttrsToIndex(memory::MemTxAttrs::Unspecified());
  absl::StatusOr<memory::IommuNotifierHandle> h =
      chains->Register(giommu.get(), {.flags = memory::kNotifyIotlbEvents,
                                      .range = *in_region,
                                      .iommu_idx = idx});
  if (!h.ok()) {
    container_->ReportError(
        Annotate(h.status(),
                 absl::StrFormat("vfio: registering the IOMMU notifier on %s",
                                 mr->name())));
    return;
  }
  giommu->handle() = std::move(*h);
  GuestIommu* g = giommu.get();
  giommus_.push_back(std::move(giommu));
  VIOMMU_TRACE(vfio_listener_region_add_iommu, container_->id(),
               section.offset_within_address_space,
               section.offset_within_address_space + (in_region->last -
                                                      in_region->first));
  VIOMMU_TRACE(vfio_replay, container_->id(), mr->name());
  absl::Status s = chains->Replay(g->handle());
  if (!s.ok()) {
    container_->ReportError(
        Annotate(s, absl::StrFormat("vfio: replaying IOMMU %s", mr->name())));
  }
}

void ContainerListener::AddRamSection(const MemoryRegionSection& section) {
  const uint64_t page = container_->host_page_size();
  const uint64_t start = section.offset_within_address_space;
  // Host-page rounding: start up, end down (exclusive end in 128 bits).
  const Size128 end_excl = Size128(start) + section.size;
  const Size128 first = (Size128(start) + (page - 1)) / page * page;
  const Size128 last_excl = end_excl / page * page;
  if (first >= last_excl || first >= kSize2To64) return;  // nothing whole
  Size128 len128 = last_excl - first;
  if (len128 >= kSize2To64) len128 = kSize2To64 - page;  // not expressible
  const Iova iova = static_cast<uint64_t>(first);
  const uint64_t len = static_cast<uint64_t>(len128);
  const Hva hva = reinterpret_cast<uintptr_t>(section.mr->host()) +
                  section.offset_within_region + (iova - start);
  const Range range{iova, iova + (len - 1)};

  if (section.mr->IsRamDevice()) {
    const uint64_t align = container_->MinIommuPage() - 1;
    if ((iova & align) != 0 || (len & align) != 0) {
      container_->RecordSkipped(range, SkipReason::kRamDeviceMisaligned);
      return;
    }
    absl::Status s = container_->DmaMap(iova, len, hva, section.readonly);
    if (!s.ok()) {
      container_->RecordSkipped(range, SkipReason::kRamDeviceMapFailed);
      container_->ReportWarning(Annotate(
          s, absl::StrFormat("vfio: %s: PCI peer-to-peer transactions on BARs "
                             "are not supported",
                             section.mr->name())));
    }
    return;
  }
  absl::Status s = container_->DmaMap(iova, len, hva, section.readonly);
  if (!s.ok()) {
    container_->ReportError(Annotate(
        s, absl::StrFormat("vfio: DMA mapping %s", section.mr->name())));
  }
}

void ContainerListener::RegionDel(const MemoryRegionSection& section) {
  std::optional<Range> r = Range::FromBaseSizeClipped(
      section.offset_within_address_space, section.size);
  if (!r.has_value()) return;
  if (section.mr->IsIommu()) {
    auto it =
        std::find_if(giommus_.begin(), giommus_.end(), [&](const auto& g) {
          return g->mr() == section.mr &&
                 g->section_start() == section.offset_within_region;
        });
    VIOMMU_TRACE(vfio_listener_region_del_iommu, container_->id(), r->first,
                 r->last);
    if (it != giommus_.end()) giommus_.erase(it);  // unregisters
  }
  container_->ForgetSkipped(*r);
  absl::Status s = container_->DmaUnmap(r->first, r->Size());
  if (!s.ok()) container_->ReportError(s);
}

}  // namespace viommu::vfio
