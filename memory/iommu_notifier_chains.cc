#include "viommu/memory/iommu_notifier_chains.h"

#include <algorithm>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "viommu/util/check.h"
#include "viommu/util/trace.h"

namespace viommu::memory {

// One registration. Owned by entries_ while live, by dead_ after an
// unregistration that happened during a dispatch, freed otherwise.
struct IommuNotifierChains::Entry {
  uint64_t id = 0;
  IommuNotifier* notifier = nullptr;  // not owned
  Registration reg;
  // Keys of the chains it is on, indexed by TypeSlot().
  std::optional<IntervalIndex<Entry*>::Key> keys[3];
  bool dead = false;
};

namespace {

constexpr IommuEventType kTypes[3] = {IommuEventType::kUnmap,
                                      IommuEventType::kMap,
                                      IommuEventType::kDevIotlbUnmap};

// Crops `in` to `range`; nullopt when they do not overlap.
std::optional<IommuTlbEntry> Crop(const IommuTlbEntry& in, const Range& range) {
  VIOMMU_CHECK(in.addr_mask <= UINT64_MAX - in.iova,
               "IOMMU entry range wraps past 2^64");
  Range r = in.IovaRange();
  if (!r.Overlaps(range)) return std::nullopt;
  Range c = r.Intersect(range);
  IommuTlbEntry out = in;
  out.iova = c.first;
  out.addr_mask = c.last - c.first;
  out.translated_addr = in.translated_addr + (c.first - in.iova);
  return out;
}

}  // namespace

// --- IommuNotifierHandle ---------------------------------------------------

IommuNotifierHandle::IommuNotifierHandle(IommuNotifierHandle&& o) noexcept
    : chains_(std::exchange(o.chains_, nullptr)),
      id_(std::exchange(o.id_, 0)) {}

IommuNotifierHandle& IommuNotifierHandle::operator=(
    IommuNotifierHandle&& o) noexcept {
  if (this != &o) {
    Reset();
    chains_ = std::exchange(o.chains_, nullptr);
    id_ = std::exchange(o.id_, 0);
  }
  return *this;
}

IommuNotifierHandle::~IommuNotifierHandle() { Reset(); }

void IommuNotifierHandle::Reset() {
  if (chains_ == nullptr) return;
  IommuNotifierChains* chains = std::exchange(chains_, nullptr);
  chains->Unregister(std::exchange(id_, 0));
}

// --- IommuNotifierChains ---------------------------------------------------

IommuNotifierChains::IommuNotifierChains(IommuModel* model, std::string name)
    : model_(model), name_(std::move(name)) {
  VIOMMU_CHECK(model_ != nullptr, "IOMMU notifier chains need a model");
  int n = model_->NumIndexes();
  VIOMMU_CHECK(n >= 1, "IOMMU model reports no translation index");
  for (auto& per_type : chains_) per_type.resize(n);
}

IommuNotifierChains::~IommuNotifierChains() {
  VIOMMU_CHECK(dispatch_depth_ == 0,
               "IOMMU notifier chains destroyed "
               "during a dispatch");
  VIOMMU_CHECK(entries_.empty(),
               "IOMMU notifier chains destroyed while "
               "notifier handles are still registered");
}

int IommuNotifierChains::TypeSlot(IommuEventType type) {
  // The types are the flag bits 1, 2 and 4: slots 0, 1 and 2.
  const unsigned bit = static_cast<unsigned>(type);
  VIOMMU_CHECK(bit == 1 || bit == 2 || bit == 4, "unknown IOMMU event type");
  return static_cast<int>(bit >> 1);
}

IommuNotifierChains::Chain& IommuNotifierChains::ChainFor(IommuEventType type,
                                                          int iommu_idx) {
  return chains_[TypeSlot(type)][iommu_idx];
}

NotifierFlags IommuNotifierChains::ComputeFlags() const {
  NotifierFlags flags = kNotifyNone;
  for (int slot = 0; slot < 3; ++slot) {
    for (const Chain& chain : chains_[slot]) {
      if (!chain.empty()) {
        flags |= static_cast<NotifierFlags>(kTypes[slot]);
        break;
      }
    }
  }
  return flags;
}

absl::StatusOr<IommuNotifierHandle> IommuNotifierChains::Register(
    IommuNotifier* notifier, const Registration& reg) {
  if (notifier == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("IOMMU region '", name_, "': null notifier"));
  }
  if (reg.flags == kNotifyNone || (reg.flags & ~kNotifyAll) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("IOMMU region '", name_, "': invalid notifier flags 0x",
                     absl::Hex(reg.flags)));
  }
  if (reg.iommu_idx < 0 || reg.iommu_idx >= model_->NumIndexes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("IOMMU region '", name_, "': iommu_idx ", reg.iommu_idx,
                     " outside [0, ", model_->NumIndexes(), ")"));
  }
  if (reg.range.first > reg.range.last) {
    return absl::InvalidArgumentError(
        absl::StrCat("IOMMU region '", name_, "': notifier range start 0x",
                     absl::Hex(reg.range.first), " after end 0x",
                     absl::Hex(reg.range.last)));
  }
  // Ask the model before touching any chain, so a veto leaves no trace.
  NotifierFlags old_flags = flags_;
  NotifierFlags new_flags = old_flags | reg.flags;
  if (new_flags != old_flags) {
    absl::Status s = model_->NotifyFlagChanged(old_flags, new_flags);
    if (!s.ok()) return s;
    flags_ = new_flags;
  }

  auto entry = std::make_unique<Entry>();
  entry->id = next_id_++;
  entry->notifier = notifier;
  entry->reg = reg;
  for (int slot = 0; slot < 3; ++slot) {
    if (reg.flags & static_cast<NotifierFlags>(kTypes[slot])) {
      Chain& chain = chains_[slot][reg.iommu_idx];
      entry->keys[slot] = chain.index.Insert(reg.range, entry.get());
      // Ids only grow, so appending keeps the list in registration order.
      if (chain.size() <= kSmallChain) {
        chain.small.push_back(entry.get());
      } else {
        chain.small.clear();
      }
    }
  }
  uint64_t id = entry->id;
  entries_.emplace(id, std::move(entry));
  return IommuNotifierHandle(this, id);
}

void IommuNotifierChains::Unregister(uint64_t id) {
  auto it = entries_.find(id);
  VIOMMU_CHECK(it != entries_.end(), "unregistering an unknown notifier");
  std::unique_ptr<Entry> entry = std::move(it->second);
  entries_.erase(it);
  for (int slot = 0; slot < 3; ++slot) {
    if (entry->keys[slot].has_value()) {
      Chain& chain = chains_[slot][entry->reg.iommu_idx];
      bool erased = chain.index.Erase(*entry->keys[slot]);
      VIOMMU_CHECK(erased, "notifier missing from its chain");
      if (chain.size() < kSmallChain) {
        // It was on the list.
        auto pos =
            std::find(chain.small.begin(), chain.small.end(), entry.get());
        VIOMMU_CHECK(pos != chain.small.end(), "notifier missing from list");
        chain.small.erase(pos);
      } else if (chain.size() == kSmallChain) {
        // Small again: list what is left, in registration order.
        chain.small.clear();
        chain.index.ForEach(
            [&](const Range&, Entry* e) { chain.small.push_back(e); });
        std::sort(chain.small.begin(), chain.small.end(),
                  [](const Entry* a, const Entry* b) { return a->id < b->id; });
      }
    }
  }
  entry->dead = true;
  // A running dispatch may still hold a pointer to it.
  if (dispatch_depth_ > 0) dead_.push_back(std::move(entry));

  NotifierFlags old_flags = flags_;
  NotifierFlags new_flags = ComputeFlags();
  if (new_flags != old_flags) {
    flags_ = new_flags;
    // Unregistration cannot be vetoed; the model only learns about it.
    model_->NotifyFlagChanged(old_flags, new_flags).IgnoreError();
  }
}

void IommuNotifierChains::PurgeDead() {
  if (!dead_.empty()) dead_.clear();
}

void IommuNotifierChains::Deliver(Entry& entry, const IommuEvent& event) {
  if (entry.dead) return;
  const Range& range = entry.reg.range;
  if (range.first <= event.entry.iova && event.entry.iova <= range.last &&
      event.entry.addr_mask <= range.last - event.entry.iova) {
    entry.notifier->Notify(event);  // inside the range: nothing to crop
    return;
  }
  std::optional<IommuTlbEntry> cropped = Crop(event.entry, entry.reg.range);
  if (!cropped.has_value()) return;
  entry.notifier->Notify(IommuEvent{.type = event.type, .entry = *cropped});
}

void IommuNotifierChains::Notify(int iommu_idx, const IommuEvent& event) {
  VIOMMU_CHECK(
      iommu_idx >= 0 && iommu_idx < static_cast<int>(chains_[0].size()),
      "IOMMU event for an iommu_idx the model does not have");
  VIOMMU_CHECK(event.entry.addr_mask <= UINT64_MAX - event.entry.iova,
               "IOMMU event range wraps past 2^64");
  VIOMMU_CHECK(
      event.type != IommuEventType::kUnmap || event.entry.perm == kIommuNone,
      "UNMAP event with a permission");
  Chain& chain = ChainFor(event.type, iommu_idx);
  if (chain.empty()) return;

  // Collect first: notifiers may register or unregister while they are
  // called, which changes the chain.
  absl::InlinedVector<Entry*, kSmallChain> hits;
  const Range range = event.entry.IovaRange();
  if (chain.size() <= kSmallChain) {
    for (Entry* e : chain.small) {  // already in registration order
      if (e->reg.range.Overlaps(range)) hits.push_back(e);
    }
  } else {
    chain.index.ForEachOverlap(
        range, [&](const Range&, Entry* e) { hits.push_back(e); });
    if (hits.size() > 1) {
      std::sort(hits.begin(), hits.end(),
                [](const Entry* a, const Entry* b) { return a->id < b->id; });
    }
  }
  const IommuTlbEntry& te = event.entry;
  if (event.type == IommuEventType::kMap) {
    VIOMMU_TRACE(iommu_notify_map, iommu_idx, te.iova, te.addr_mask,
                 te.translated_addr, static_cast<unsigned>(te.perm),
                 hits.size());
  } else {
    VIOMMU_TRACE(iommu_notify_unmap, iommu_idx, te.iova, te.addr_mask,
                 event.type == IommuEventType::kDevIotlbUnmap, hits.size());
  }
  ++dispatch_depth_;
  for (Entry* e : hits) Deliver(*e, event);
  if (--dispatch_depth_ == 0) PurgeDead();
}

void IommuNotifierChains::NotifyMappingChange(
    int iommu_idx, Iova iova, uint64_t addr_mask,
    const std::optional<IommuMapping>& before,
    const std::optional<IommuMapping>& after) {
  VIOMMU_CHECK(!before.has_value() || before->perm != kIommuNone,
               "'before' mapping without permission");
  VIOMMU_CHECK(!after.has_value() || after->perm != kIommuNone,
               "'after' mapping without permission");
  if (before == after) return;  // none -> none, or unchanged
  if (before.has_value()) {
    Notify(iommu_idx,
           IommuEvent{.type = IommuEventType::kUnmap,
                      .entry = {.target_as = before->target_as,
                                .iova = iova,
                                .translated_addr = before->translated_addr,
                                .addr_mask = addr_mask,
                                .perm = kIommuNone}});
  }
  if (after.has_value()) {
    Notify(iommu_idx,
           IommuEvent{.type = IommuEventType::kMap,
                      .entry = {.target_as = after->target_as,
                                .iova = iova,
                                .translated_addr = after->translated_addr,
                                .addr_mask = addr_mask,
                                .perm = after->perm}});
  }
}

void IommuNotifierChains::UnmapNotifierRange(
    const IommuNotifierHandle& handle) {
  if (!handle.registered()) return;
  VIOMMU_CHECK(handle.chains_ == this, "handle from other IOMMU chains");
  auto it = entries_.find(handle.id_);
  VIOMMU_CHECK(it != entries_.end(), "registered handle without entry");
  Entry* entry = it->second.get();
  if ((entry->reg.flags & kNotifyUnmap) == 0) return;
  const Range& r = entry->reg.range;
  ++dispatch_depth_;
  Deliver(*entry, IommuEvent{.type = IommuEventType::kUnmap,
                             .entry = {.iova = r.first,
                                       .addr_mask = r.last - r.first,
                                       .perm = kIommuNone}});
  if (--dispatch_depth_ == 0) PurgeDead();
}

absl::Status IommuNotifierChains::Replay(const IommuNotifierHandle& handle) {
  if (handle.chains_ != this) {
    return absl::InvalidArgumentError(
        absl::StrCat("IOMMU region '", name_,
                     "': replay with a handle not registered on this region"));
  }
  auto it = entries_.find(handle.id_);
  VIOMMU_CHECK(it != entries_.end(), "registered handle without entry");
  Entry* entry = it->second.get();
  if ((entry->reg.flags & kNotifyMap) == 0) return absl::OkStatus();

  // The entry stays allocated for the whole replay even if the notifier
  // unregisters itself from inside a callback (it is then skipped).
  ++dispatch_depth_;
  absl::Status status =
      model_->Replay(entry->reg.iommu_idx, [&](const IommuTlbEntry& mapping) {
        if (mapping.perm == kIommuNone) return;  // not a mapping
        Deliver(*entry,
                IommuEvent{.type = IommuEventType::kMap, .entry = mapping});
      });
  if (--dispatch_depth_ == 0) PurgeDead();
  return status;
}

size_t IommuNotifierChains::ChainSize(IommuEventType type) const {
  size_t n = 0;
  for (const Chain& chain : chains_[TypeSlot(type)]) n += chain.size();
  return n;
}

}  // namespace viommu::memory
