#include "viommu/hw/iommu/vtd_shadow_map.h"

#include <bit>
#include <iterator>

#include "viommu/util/check.h"

namespace viommu::vtd {

namespace {

// How far Sync walks the state iterator forward before it gives up and
// seeks instead (the stream jumped over unreadable slots).
constexpr int kLinearSteps = 8;

std::optional<memory::IommuMapping> ToMapping(
    const std::optional<ShadowTranslation>& t, memory::AddressSpace* as) {
  if (!t) return std::nullopt;
  return memory::IommuMapping{
      .translated_addr = t->gpa, .perm = t->perm, .target_as = as};
}

}  // namespace

void NotifierChainsEmitter::MappingChanged(
    Iova iova, uint64_t addr_mask,
    const std::optional<ShadowTranslation>& before,
    const std::optional<ShadowTranslation>& after) {
  chains_->NotifyMappingChange(iommu_idx_, iova, addr_mask,
                               ToMapping(before, target_as_),
                               ToMapping(after, target_as_));
}

ShadowMap::State::iterator ShadowMap::Seek(Iova iova) {
  auto it = state_.upper_bound(iova);
  if (it != state_.begin()) {
    auto prev = std::prev(it);
    if (LastOf(prev) >= iova) return prev;
  }
  return it;
}

ShadowMap::State::iterator ShadowMap::SeekNear(Iova iova) {
  if (finger_valid_) {
    // finger_ is the answer if every entry before it ends before iova and
    // it ends at or after iova; a few steps forward are still cheaper than
    // a seek (entries end in increasing order: they are sorted and never
    // overlap).
    State::iterator f = finger_;
    if (f == state_.begin() || LastOf(std::prev(f)) < iova) {
      for (int steps = 0; steps <= kLinearSteps; ++steps, ++f) {
        if (f == state_.end() || LastOf(f) >= iova) return f;
      }
    }
  }
  return Seek(iova);
}

ShadowMap::State::iterator ShadowMap::Unmap(State::iterator it,
                                            ShadowEmitter& out) {
  out.MappingChanged(it->first, Mask(it->second),
                     ShadowTranslation{it->second.gpa, it->second.perm},
                     std::nullopt);
  return state_.erase(it);
}

SyncStats ShadowMap::Sync(const Range& range, ShadowWalkFn walk,
                          ShadowEmitter& out) {
  SyncStats stats;
  State::iterator it;
  bool positioned = false;
  bool have_prev = false;
  uint64_t prev_last = 0;

  walk(range, [&](const WalkEntry& e) {
    ++stats.walked;
    VIOMMU_CHECK(e.addr_mask <= UINT64_MAX - e.iova, "walk slot wraps");
    const Iova first = e.iova;
    const uint64_t last = e.iova + e.addr_mask;
    VIOMMU_CHECK(!have_prev || first > prev_last,
                 "walk entries out of order or overlapping");
    have_prev = true;
    prev_last = last;

    // Bring `it` to the first state entry that ends at or after `first`.
    // Entries before it end before this slot, so they are never revisited.
    if (!positioned) {
      it = SeekNear(first);
      positioned = true;
    } else {
      int steps = 0;
      while (it != state_.end() && LastOf(it) < first) {
        if (++steps > kLinearSteps) {
          it = Seek(first);
          break;
        }
        ++it;
      }
    }

    if (e.perm == memory::kIommuNone) {
      while (it != state_.end() && it->first <= last) {
        it = Unmap(it, out);
        ++stats.unmapped;
      }
      return;
    }

    // (mask & (mask + 1)) == 0: mask + 1 is a power of two, without the
    // libgcc popcount call std::has_single_bit costs on baseline x86-64.
    VIOMMU_CHECK((e.addr_mask & (e.addr_mask + 1)) == 0 && e.addr_mask >= 0xfff,
                 "leaf size is not a power of two >= 4 KiB");
    VIOMMU_CHECK((e.iova & e.addr_mask) == 0 && (e.gpa & 0xfff) == 0,
                 "leaf iova or gpa misaligned");
    const Leaf leaf{.gpa = e.gpa,
                    .order = static_cast<uint8_t>(std::countr_one(e.addr_mask)),
                    .perm = e.perm};
    const ShadowTranslation now{e.gpa, e.perm};

    if (it != state_.end() && it->first == first &&
        it->second.order == leaf.order) {
      Leaf& old = it->second;
      if (old.gpa == leaf.gpa && old.perm == leaf.perm) {
        ++stats.unchanged;
      } else {
        const ShadowTranslation before{old.gpa, old.perm};
        old = leaf;
        out.MappingChanged(first, e.addr_mask, before, now);
        ++stats.changed;
      }
      ++it;
      return;
    }

    while (it != state_.end() && it->first <= last) {
      it = Unmap(it, out);
      ++stats.unmapped;
    }
    it = std::next(state_.insert(it, {first, leaf}));
    out.MappingChanged(first, e.addr_mask, std::nullopt, now);
    ++stats.mapped;
  });
  // `it` went through every change this sync made, so it is valid; with
  // no walk entry nothing changed and the old finger still is.
  if (positioned) {
    finger_ = it;
    finger_valid_ = true;
  }
  return stats;
}

size_t ShadowMap::UnmapAll(ShadowEmitter& out) {
  const size_t n = state_.size();
  for (const auto& [iova, leaf] : state_) {
    out.MappingChanged(iova, Mask(leaf), ShadowTranslation{leaf.gpa, leaf.perm},
                       std::nullopt);
  }
  state_.clear();
  finger_valid_ = false;
  return n;
}

void ShadowMap::ForEach(
    const Range& range,
    absl::FunctionRef<void(const memory::IommuTlbEntry&)> fn) const {
  auto it = state_.upper_bound(range.first);
  if (it != state_.begin() && LastOf(std::prev(it)) >= range.first) --it;
  for (; it != state_.end() && it->first <= range.last; ++it) {
    fn(memory::IommuTlbEntry{.target_as = nullptr,
                             .iova = it->first,
                             .translated_addr = it->second.gpa,
                             .addr_mask = Mask(it->second),
                             .perm = it->second.perm});
  }
}

}  // namespace viommu::vtd
