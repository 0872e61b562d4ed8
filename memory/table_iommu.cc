#include "viommu/memory/table_iommu.h"

#include <bit>
#include <iterator>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "viommu/util/check.h"

namespace viommu::memory {

namespace {

bool ValidPerm(IommuPerm perm) {
  return perm == kIommuRead || perm == kIommuWrite || perm == kIommuReadWrite;
}

}  // namespace

TableIommu::TableIommu(AddressSpace* target_as, Options options)
    : target_as_(target_as),
      min_page_size_(options.min_page_size),
      veto_map_(options.veto_map) {
  VIOMMU_CHECK(std::has_single_bit(min_page_size_),
               "TableIommu min_page_size must be a power of two");
}

IommuMapping TableIommu::ToIommuMapping(const Mapping& m) const {
  return {.translated_addr = m.gpa, .perm = m.perm, .target_as = target_as_};
}

void TableIommu::Announce(Iova iova, uint64_t addr_mask,
                          const std::optional<IommuMapping>& before,
                          const std::optional<IommuMapping>& after) {
  if (chains_ == nullptr) return;
  chains_->NotifyMappingChange(/*iommu_idx=*/0, iova, addr_mask, before, after);
}

absl::Status TableIommu::Map(Iova iova, uint64_t size, Gpa gpa,
                             IommuPerm perm) {
  if (!std::has_single_bit(size) || size < min_page_size_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TableIommu::Map: size 0x", absl::Hex(size),
        " is not a power of two >= 0x", absl::Hex(min_page_size_)));
  }
  if ((iova & (size - 1)) != 0 || (gpa & (size - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TableIommu::Map: iova 0x", absl::Hex(iova), " or gpa 0x",
        absl::Hex(gpa), " not aligned to size 0x", absl::Hex(size)));
  }
  if (!ValidPerm(perm)) {
    return absl::InvalidArgumentError(
        absl::StrCat("TableIommu::Map: invalid perm ", static_cast<int>(perm)));
  }
  const Mapping after{.size = size, .gpa = gpa, .perm = perm};
  const uint64_t last = iova + (size - 1);  // aligned: cannot wrap
  std::optional<IommuMapping> before;
  {
    MutexLock lock(&mu_);
    // Mappings are disjoint, so only the last one starting at or before
    // `last` can overlap [iova, last].
    auto it = table_.upper_bound(last);
    if (it != table_.begin()) {
      auto prev = std::prev(it);
      const uint64_t prev_last = prev->first + (prev->second.size - 1);
      if (prev_last >= iova) {
        if (prev->first != iova || prev->second.size != size) {
          return absl::AlreadyExistsError(absl::StrCat(
              "TableIommu::Map: [0x", absl::Hex(iova), ", 0x", absl::Hex(last),
              "] overlaps the mapping [0x", absl::Hex(prev->first), ", 0x",
              absl::Hex(prev_last), "]"));
        }
        before = ToIommuMapping(prev->second);
        prev->second = after;
      }
    }
    if (!before.has_value()) table_.emplace(iova, after);
  }
  Announce(iova, size - 1, before, ToIommuMapping(after));
  return absl::OkStatus();
}

absl::Status TableIommu::Unmap(Iova iova, uint64_t size) {
  if (size == 0 || size - 1 > UINT64_MAX - iova) {
    return absl::InvalidArgumentError(
        absl::StrCat("TableIommu::Unmap: invalid range at 0x", absl::Hex(iova),
                     " of size 0x", absl::Hex(size)));
  }
  const uint64_t last = iova + (size - 1);
  struct Removed {
    Iova iova;
    Mapping mapping;
  };
  std::vector<Removed> removed;
  {
    MutexLock lock(&mu_);
    auto first = table_.lower_bound(iova);
    if (first != table_.begin()) {
      auto prev = std::prev(first);
      if (prev->first + (prev->second.size - 1) >= iova) {
        return absl::InvalidArgumentError(
            absl::StrCat("TableIommu::Unmap: mapping at 0x",
                         absl::Hex(prev->first), " is only partly inside [0x",
                         absl::Hex(iova), ", 0x", absl::Hex(last), "]"));
      }
    }
    auto end = first;
    for (; end != table_.end() && end->first <= last; ++end) {
      if (end->first + (end->second.size - 1) > last) {
        return absl::InvalidArgumentError(
            absl::StrCat("TableIommu::Unmap: mapping at 0x",
                         absl::Hex(end->first), " is only partly inside [0x",
                         absl::Hex(iova), ", 0x", absl::Hex(last), "]"));
      }
      removed.push_back({end->first, end->second});
    }
    table_.erase(first, end);
  }
  for (const Removed& r : removed) {
    Announce(r.iova, r.mapping.size - 1, ToIommuMapping(r.mapping),
             std::nullopt);
  }
  return absl::OkStatus();
}

IommuTlbEntry TableIommu::Translate(Iova iova, IommuPerm /*access*/,
                                    int /*iommu_idx*/) {
  ReaderMutexLock lock(&mu_);
  auto it = table_.upper_bound(iova);
  if (it != table_.begin()) {
    --it;
    if (iova - it->first < it->second.size) {
      return {.target_as = target_as_,
              .iova = it->first,
              .translated_addr = it->second.gpa,
              .addr_mask = it->second.size - 1,
              .perm = it->second.perm};
    }
  }
  return {.target_as = target_as_,
          .iova = iova & ~(min_page_size_ - 1),
          .translated_addr = 0,
          .addr_mask = min_page_size_ - 1,
          .perm = kIommuNone};
}

absl::Status TableIommu::Replay(int /*iommu_idx*/, ReplaySink emit) {
  // Copy first: emit() reaches notifiers, which may call Translate() (the
  // mutex is not reentrant) or change the table.
  std::vector<IommuTlbEntry> entries;
  {
    ReaderMutexLock lock(&mu_);
    entries.reserve(table_.size());
    for (const auto& [iova, m] : table_) {
      entries.push_back({.target_as = target_as_,
                         .iova = iova,
                         .translated_addr = m.gpa,
                         .addr_mask = m.size - 1,
                         .perm = m.perm});
    }
  }
  for (const IommuTlbEntry& e : entries) emit(e);
  return absl::OkStatus();
}

absl::Status TableIommu::NotifyFlagChanged(NotifierFlags old_flags,
                                           NotifierFlags new_flags) {
  last_flag_change_ = FlagChange{old_flags, new_flags};
  ++flag_change_calls_;
  if (veto_map_ && (new_flags & kNotifyMap) != 0) {
    return absl::FailedPreconditionError(
        "TableIommu: MAP notifiers refused (veto_map set, like VT-d without "
        "caching mode)");
  }
  return absl::OkStatus();
}

size_t TableIommu::size() const {
  ReaderMutexLock lock(&mu_);
  return table_.size();
}

}  // namespace viommu::memory
