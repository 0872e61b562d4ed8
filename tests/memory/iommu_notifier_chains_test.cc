#include "viommu/memory/iommu_notifier_chains.h"

#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/memory/iommu.h"

namespace viommu::memory {

void PrintTo(const IommuEvent& e, std::ostream* os) {
  *os << (e.type == IommuEventType::kMap     ? "MAP"
          : e.type == IommuEventType::kUnmap ? "UNMAP"
                                             : "DEVIOTLB_UNMAP")
      << "{iova=0x" << std::hex << e.entry.iova << " mask=0x"
      << e.entry.addr_mask << " ta=0x" << e.entry.translated_addr << std::dec
      << " perm=" << static_cast<int>(e.entry.perm) << "}";
}

namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// A model with a configurable number of indexes, an optional veto, a
// record of flag changes and a fixed list of mappings to replay.
class FakeModel final : public IommuModel {
 public:
  explicit FakeModel(int num_indexes = 1) : num_indexes_(num_indexes) {}

  IommuTlbEntry Translate(Iova iova, IommuPerm, int) override {
    return {.iova = iova & ~uint64_t{0xfff}, .addr_mask = 0xfff};
  }
  [[nodiscard]] absl::Status Replay(int iommu_idx, ReplaySink emit) override {
    replayed_indexes.push_back(iommu_idx);
    for (const IommuTlbEntry& e : mappings) emit(e);
    return absl::OkStatus();
  }
  int NumIndexes() const override { return num_indexes_; }
  [[nodiscard]] absl::Status NotifyFlagChanged(
      NotifierFlags old_flags, NotifierFlags new_flags) override {
    flag_changes.emplace_back(old_flags, new_flags);
    if (veto_map && (new_flags & kNotifyMap)) {
      return absl::FailedPreconditionError("no caching mode");
    }
    return absl::OkStatus();
  }

  bool veto_map = false;
  std::vector<std::pair<NotifierFlags, NotifierFlags>> flag_changes;
  std::vector<IommuTlbEntry> mappings;
  std::vector<int> replayed_indexes;

 private:
  int num_indexes_;
};

// Uses IommuModel's default Replay.
class NoReplayModel final : public IommuModel {
 public:
  IommuTlbEntry Translate(Iova iova, IommuPerm, int) override {
    return {.iova = iova, .perm = kIommuReadWrite};
  }
};

struct Logged {
  std::string who;
  IommuEvent event;
  friend bool operator==(const Logged&, const Logged&) = default;
};

void PrintTo(const Logged& l, std::ostream* os) {
  *os << l.who << ":";
  PrintTo(l.event, os);
}

class Recorder final : public IommuNotifier {
 public:
  Recorder(std::string name, std::vector<Logged>* log)
      : name_(std::move(name)), log_(log) {}
  void Notify(const IommuEvent& event) override {
    log_->push_back({name_, event});
    if (hook) hook(event);
  }
  std::function<void(const IommuEvent&)> hook;

 private:
  std::string name_;
  std::vector<Logged>* log_;
};

IommuEvent Map(Iova iova, uint64_t mask, Hwaddr ta,
               IommuPerm perm = kIommuReadWrite) {
  return {.type = IommuEventType::kMap,
          .entry = {.iova = iova,
                    .translated_addr = ta,
                    .addr_mask = mask,
                    .perm = perm}};
}
IommuEvent Unmap(Iova iova, uint64_t mask, Hwaddr ta = 0) {
  return {.type = IommuEventType::kUnmap,
          .entry = {.iova = iova, .translated_addr = ta, .addr_mask = mask}};
}
IommuEvent DevIotlbUnmap(Iova iova, uint64_t mask) {
  return {.type = IommuEventType::kDevIotlbUnmap,
          .entry = {.iova = iova, .addr_mask = mask}};
}

using Reg = IommuNotifierChains::Registration;

class IommuNotifierChainsTest : public ::testing::Test {
 protected:
  IommuNotifierHandle MustRegister(IommuNotifier* n, Reg reg) {
    absl::StatusOr<IommuNotifierHandle> h = chains_.Register(n, reg);
    EXPECT_TRUE(h.ok()) << h.status();
    return h.ok() ? std::move(*h) : IommuNotifierHandle();
  }

  FakeModel model_;
  IommuNotifierChains chains_{&model_, "test-iommu"};
  std::vector<Logged> log_;
  Recorder map_only_{"map", &log_};
  Recorder unmap_only_{"unmap", &log_};
  Recorder both_{"both", &log_};
  Recorder deviotlb_{"deviotlb", &log_};
};

// --- Chains by event type ---------------------------------------------------

TEST_F(IommuNotifierChainsTest, MapEventReachesOnlyMapChain) {
  auto h1 = MustRegister(&map_only_, {.flags = kNotifyMap});
  auto h2 = MustRegister(&unmap_only_, {.flags = kNotifyUnmap});
  auto h3 = MustRegister(&deviotlb_, {.flags = kNotifyDevIotlbUnmap});
  chains_.Notify(0, Map(0x1000, 0xfff, 0x5000));
  EXPECT_THAT(log_, ElementsAre(Logged{"map", Map(0x1000, 0xfff, 0x5000)}));
}

TEST_F(IommuNotifierChainsTest, UnmapEventReachesOnlyUnmapChain) {
  auto h1 = MustRegister(&map_only_, {.flags = kNotifyMap});
  auto h2 = MustRegister(&unmap_only_, {.flags = kNotifyUnmap});
  auto h3 = MustRegister(&deviotlb_, {.flags = kNotifyDevIotlbUnmap});
  chains_.Notify(0, Unmap(0x1000, 0xfff));
  EXPECT_THAT(log_, ElementsAre(Logged{"unmap", Unmap(0x1000, 0xfff)}));
}

TEST_F(IommuNotifierChainsTest, DevIotlbUnmapReachesOnlyDevIotlbChain) {
  auto h1 = MustRegister(&map_only_, {.flags = kNotifyMap});
  auto h2 = MustRegister(&unmap_only_, {.flags = kNotifyUnmap});
  auto h3 = MustRegister(&deviotlb_, {.flags = kNotifyDevIotlbUnmap});
  chains_.Notify(0, DevIotlbUnmap(0x1000, 0xfff));
  EXPECT_THAT(log_,
              ElementsAre(Logged{"deviotlb", DevIotlbUnmap(0x1000, 0xfff)}));
}

TEST_F(IommuNotifierChainsTest, NotifierOnBothChainsGetsBothKinds) {
  auto h = MustRegister(&both_, {.flags = kNotifyIotlbEvents});
  EXPECT_EQ(chains_.ChainSize(IommuEventType::kMap), 1u);
  EXPECT_EQ(chains_.ChainSize(IommuEventType::kUnmap), 1u);
  EXPECT_EQ(chains_.ChainSize(IommuEventType::kDevIotlbUnmap), 0u);
  chains_.Notify(0, Map(0x1000, 0xfff, 0x5000));
  chains_.Notify(0, Unmap(0x1000, 0xfff));
  chains_.Notify(0, DevIotlbUnmap(0x1000, 0xfff));
  EXPECT_THAT(log_, ElementsAre(Logged{"both", Map(0x1000, 0xfff, 0x5000)},
                                Logged{"both", Unmap(0x1000, 0xfff)}));
}

TEST_F(IommuNotifierChainsTest,
       NotifiersOfOneChainAreCalledInRegistrationOrder) {
  Recorder a("a", &log_), b("b", &log_), c("c", &log_);
  // Different sizes land in different buckets of the interval index.
  auto hb = MustRegister(&b, {.flags = kNotifyMap, .range = {0, 0xffff}});
  auto ha = MustRegister(&a, {.flags = kNotifyMap, .range = {0x1000, 0x1fff}});
  auto hc = MustRegister(&c, {.flags = kNotifyMap});
  chains_.Notify(0, Map(0x1000, 0xfff, 0));
  ASSERT_EQ(log_.size(), 3u);
  EXPECT_EQ(log_[0].who, "b");
  EXPECT_EQ(log_[1].who, "a");
  EXPECT_EQ(log_[2].who, "c");
}

TEST_F(IommuNotifierChainsTest,
       RegistrationOrderHoldsAsTheChainGrowsPastAFewAndShrinksBack) {
  // Six notifiers, two of which miss the event; then the chain shrinks
  // back to a few and grows again.
  std::vector<std::unique_ptr<Recorder>> r;
  std::vector<IommuNotifierHandle> h;
  const Range ranges[6] = {{0, 0xffff},   {0x1000, 0x1fff}, {0x8000, 0x8fff},
                           Range::Full(), {0x1800, 0x1800}, {0x2000, 0x2fff}};
  for (int i = 0; i < 6; ++i) {
    r.push_back(
        std::make_unique<Recorder>(std::string(1, char('a' + i)), &log_));
    h.push_back(MustRegister(r.back().get(),
                             {.flags = kNotifyMap, .range = ranges[i]}));
  }
  auto order = [&] {
    log_.clear();
    chains_.Notify(0, Map(0x1000, 0xfff, 0));
    std::string who;
    for (const Logged& l : log_) who += l.who;
    return who;
  };
  EXPECT_EQ(order(), "abde");
  h[0].Reset();
  h[3].Reset();  // four left
  EXPECT_EQ(order(), "be");
  Recorder g("g", &log_);
  auto hg = MustRegister(&g, {.flags = kNotifyMap});
  EXPECT_EQ(order(), "beg");
  h[1].Reset();
  h[4].Reset();
  EXPECT_EQ(order(), "g");
  EXPECT_EQ(chains_.ChainSize(IommuEventType::kMap), 3u);
}

// --- Ranges and indexes
// -------------------------------------------------------

TEST_F(IommuNotifierChainsTest, EventOutsideNotifierRangeIsNotDelivered) {
  auto h = MustRegister(
      &both_, {.flags = kNotifyIotlbEvents, .range = {0x10000, 0x1ffff}});
  chains_.Notify(0, Map(0x0, 0xffff, 0x5000));
  chains_.Notify(0, Unmap(0x20000, 0xfff));
  EXPECT_THAT(log_, IsEmpty());
}

TEST_F(IommuNotifierChainsTest, MapIsCroppedAndTranslatedAddressShifted) {
  auto h = MustRegister(&map_only_,
                        {.flags = kNotifyMap, .range = {0x1800, 0x27ff}});
  chains_.Notify(0, Map(0x0, 0xffff, 0x100000, kIommuRead));
  EXPECT_THAT(log_, ElementsAre(Logged{
                        "map", Map(0x1800, 0xfff, 0x101800, kIommuRead)}));
}

TEST_F(IommuNotifierChainsTest, UnmapIsCroppedToNotifierRange) {
  auto h = MustRegister(&unmap_only_,
                        {.flags = kNotifyUnmap, .range = {0x3000, 0x3fff}});
  chains_.Notify(0, Unmap(0x2000, 0x1fff));
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_EQ(log_[0].event.entry.iova, 0x3000u);
  EXPECT_EQ(log_[0].event.entry.addr_mask, 0xfffu);
  EXPECT_EQ(log_[0].event.entry.perm, kIommuNone);
}

TEST_F(IommuNotifierChainsTest, EventInsideNotifierRangeIsNotChanged) {
  auto h =
      MustRegister(&map_only_, {.flags = kNotifyMap, .range = {0x0, 0xffff}});
  chains_.Notify(0, Map(0x2000, 0xfff, 0x7000));
  EXPECT_THAT(log_, ElementsAre(Logged{"map", Map(0x2000, 0xfff, 0x7000)}));
}

TEST_F(IommuNotifierChainsTest, EventReachesOnlyNotifiersOfItsIommuIndex) {
  FakeModel model(/*num_indexes=*/3);
  IommuNotifierChains chains(&model, "three-indexes");
  Recorder idx0("idx0", &log_), idx2("idx2", &log_);
  auto h0 = chains.Register(&idx0, {.flags = kNotifyMap, .iommu_idx = 0});
  auto h2 = chains.Register(&idx2, {.flags = kNotifyMap, .iommu_idx = 2});
  ASSERT_TRUE(h0.ok());
  ASSERT_TRUE(h2.ok());
  chains.Notify(2, Map(0x1000, 0xfff, 0x9000));
  chains.Notify(1, Map(0x1000, 0xfff, 0x9000));
  EXPECT_THAT(log_, ElementsAre(Logged{"idx2", Map(0x1000, 0xfff, 0x9000)}));
}

// --- Registration errors
// ------------------------------------------------------

TEST_F(IommuNotifierChainsTest, RegisterRejectsEmptyOrUnknownFlags) {
  EXPECT_EQ(chains_.Register(&both_, {.flags = kNotifyNone}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(chains_.Register(&both_, {.flags = 0x8}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(chains_.ChainSize(IommuEventType::kMap), 0u);
  EXPECT_THAT(model_.flag_changes, IsEmpty());
}

TEST_F(IommuNotifierChainsTest, RegisterRejectsIommuIndexOutOfRange) {
  EXPECT_EQ(chains_.Register(&both_, {.iommu_idx = 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(chains_.Register(&both_, {.iommu_idx = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(chains_.flags(), kNotifyNone);
}

TEST_F(IommuNotifierChainsTest, RegisterRejectsReversedRange) {
  EXPECT_EQ(
      chains_.Register(&both_, {.range = {0x2000, 0x1000}}).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(chains_.ChainSize(IommuEventType::kUnmap), 0u);
}

TEST_F(IommuNotifierChainsTest, RegisterRejectsNullNotifier) {
  EXPECT_EQ(chains_.Register(nullptr, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- Flag union and veto
// ------------------------------------------------------

TEST_F(IommuNotifierChainsTest, ModelSeesUnionOfFlagsAcrossChains) {
  using Change = std::pair<NotifierFlags, NotifierFlags>;
  auto hu = MustRegister(&unmap_only_, {.flags = kNotifyUnmap});
  auto hm = MustRegister(&map_only_, {.flags = kNotifyMap});
  auto hb = MustRegister(&both_, {.flags = kNotifyIotlbEvents});  // no change
  EXPECT_EQ(chains_.flags(), kNotifyIotlbEvents);
  hm.Reset();  // `both` still holds MAP: no change
  hb.Reset();  // MAP gone
  EXPECT_EQ(chains_.flags(), kNotifyUnmap);
  hu.Reset();
  EXPECT_EQ(chains_.flags(), kNotifyNone);
  EXPECT_THAT(model_.flag_changes,
              ElementsAre(Change{kNotifyNone, kNotifyUnmap},
                          Change{kNotifyUnmap, kNotifyIotlbEvents},
                          Change{kNotifyIotlbEvents, kNotifyUnmap},
                          Change{kNotifyUnmap, kNotifyNone}));
}

TEST_F(IommuNotifierChainsTest, VetoLeavesNoTraceOnEitherChain) {
  auto hu = MustRegister(&unmap_only_, {.flags = kNotifyUnmap});
  model_.veto_map = true;
  absl::StatusOr<IommuNotifierHandle> vetoed =
      chains_.Register(&both_, {.flags = kNotifyIotlbEvents});
  ASSERT_FALSE(vetoed.ok());
  EXPECT_EQ(chains_.ChainSize(IommuEventType::kMap), 0u);
  EXPECT_EQ(chains_.ChainSize(IommuEventType::kUnmap), 1u);
  EXPECT_EQ(chains_.flags(), kNotifyUnmap);
  chains_.Notify(0, Map(0x1000, 0xfff, 0x5000));
  chains_.Notify(0, Unmap(0x1000, 0xfff));
  EXPECT_THAT(log_, ElementsAre(Logged{"unmap", Unmap(0x1000, 0xfff)}));
}

TEST_F(IommuNotifierChainsTest, VetoStatusIsReturnedUnchanged) {
  model_.veto_map = true;
  absl::StatusOr<IommuNotifierHandle> h =
      chains_.Register(&map_only_, {.flags = kNotifyMap});
  EXPECT_EQ(h.status(), absl::FailedPreconditionError("no caching mode"));
}

TEST_F(IommuNotifierChainsTest, UnregisterIgnoresModelError) {
  auto hm = MustRegister(&map_only_, {.flags = kNotifyMap});
  model_.veto_map = true;  // would refuse anything containing MAP
  hm.Reset();
  EXPECT_EQ(chains_.flags(), kNotifyNone);
  EXPECT_EQ(chains_.ChainSize(IommuEventType::kMap), 0u);
}

// --- Handles
// --------------------------------------------------------------------

TEST_F(IommuNotifierChainsTest, DestroyingHandleUnregisters) {
  {
    auto h = MustRegister(&both_, {.flags = kNotifyIotlbEvents});
    EXPECT_TRUE(h.registered());
  }
  EXPECT_EQ(chains_.ChainSize(IommuEventType::kMap), 0u);
  EXPECT_EQ(chains_.ChainSize(IommuEventType::kUnmap), 0u);
  chains_.Notify(0, Map(0x1000, 0xfff, 0x5000));
  EXPECT_THAT(log_, IsEmpty());
}

TEST_F(IommuNotifierChainsTest, MovedHandleKeepsRegistrationUntilDestroyed) {
  std::optional<IommuNotifierHandle> moved;
  {
    auto h = MustRegister(&map_only_, {.flags = kNotifyMap});
    moved.emplace(std::move(h));
    EXPECT_FALSE(h.registered());  // NOLINT(bugprone-use-after-move)
  }
  EXPECT_TRUE(moved->registered());
  chains_.Notify(0, Map(0x1000, 0xfff, 0x5000));
  EXPECT_EQ(log_.size(), 1u);
  moved.reset();
  EXPECT_EQ(chains_.ChainSize(IommuEventType::kMap), 0u);
}

TEST_F(IommuNotifierChainsTest, MoveAssignmentUnregistersOverwrittenNotifier) {
  auto h = MustRegister(&map_only_, {.flags = kNotifyMap});
  h = MustRegister(&unmap_only_, {.flags = kNotifyUnmap});
  EXPECT_EQ(chains_.ChainSize(IommuEventType::kMap), 0u);
  EXPECT_EQ(chains_.ChainSize(IommuEventType::kUnmap), 1u);
  EXPECT_EQ(chains_.flags(), kNotifyUnmap);
}

TEST_F(IommuNotifierChainsTest, DestroyingChainsWithLiveHandleIsFatal) {
  EXPECT_DEATH(
      {
        FakeModel model;
        auto chains = std::make_unique<IommuNotifierChains>(&model, "x");
        Recorder r("r", &log_);
        auto h = chains->Register(&r, {});
        chains.reset();
      },
      "still registered");
}

// --- Re-entrancy
// ------------------------------------------------------------------

TEST_F(IommuNotifierChainsTest, NotifierCanUnregisterItselfDuringDispatch) {
  auto h = MustRegister(&map_only_, {.flags = kNotifyMap});
  map_only_.hook = [&](const IommuEvent&) { h.Reset(); };
  chains_.Notify(0, Map(0x1000, 0xfff, 0x5000));
  chains_.Notify(0, Map(0x1000, 0xfff, 0x5000));
  EXPECT_EQ(log_.size(), 1u);
  EXPECT_EQ(chains_.ChainSize(IommuEventType::kMap), 0u);
}

TEST_F(IommuNotifierChainsTest, NotifierUnregisteredDuringDispatchIsNotCalled) {
  Recorder first("first", &log_), second("second", &log_);
  auto h1 = MustRegister(&first, {.flags = kNotifyMap});
  auto h2 = MustRegister(&second, {.flags = kNotifyMap});
  first.hook = [&](const IommuEvent&) { h2.Reset(); };
  chains_.Notify(0, Map(0x1000, 0xfff, 0x5000));
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_EQ(log_[0].who, "first");
}

TEST_F(IommuNotifierChainsTest,
       NotifierRegisteredDuringDispatchMissesThatEvent) {
  Recorder late("late", &log_);
  IommuNotifierHandle hl;
  auto h = MustRegister(&map_only_, {.flags = kNotifyMap});
  map_only_.hook = [&](const IommuEvent&) {
    if (!hl.registered()) hl = MustRegister(&late, {.flags = kNotifyMap});
  };
  chains_.Notify(0, Map(0x1000, 0xfff, 0x5000));
  EXPECT_EQ(log_.size(), 1u);
  chains_.Notify(0, Map(0x2000, 0xfff, 0x6000));
  EXPECT_EQ(log_.size(), 3u);
}

// --- The producer helper
// ----------------------------------------------------------

const IommuMapping kOld{.translated_addr = 0xa000, .perm = kIommuRead};
const IommuMapping kNew{.translated_addr = 0xb000, .perm = kIommuReadWrite};

TEST_F(IommuNotifierChainsTest, ChangedMappingIsUnmapThenMapOnOneNotifier) {
  auto h = MustRegister(&both_, {.flags = kNotifyIotlbEvents});
  chains_.NotifyMappingChange(0, 0x1000, 0xfff, kOld, kNew);
  EXPECT_THAT(log_, ElementsAre(Logged{"both", Unmap(0x1000, 0xfff, 0xa000)},
                                Logged{"both", Map(0x1000, 0xfff, 0xb000)}));
}

TEST_F(IommuNotifierChainsTest, ChangedMappingIsUnmapThenMapAcrossNotifiers) {
  // The MAP-only notifier registers first, so no per-chain order could put
  // the UNMAP first by accident.
  auto hm = MustRegister(&map_only_, {.flags = kNotifyMap});
  auto hu = MustRegister(&unmap_only_, {.flags = kNotifyUnmap});
  chains_.NotifyMappingChange(0, 0x1000, 0xfff, kOld, kNew);
  EXPECT_THAT(log_, ElementsAre(Logged{"unmap", Unmap(0x1000, 0xfff, 0xa000)},
                                Logged{"map", Map(0x1000, 0xfff, 0xb000)}));
}

TEST_F(IommuNotifierChainsTest, UnchangedMappingEmitsNothing) {
  auto h = MustRegister(&both_, {.flags = kNotifyIotlbEvents});
  chains_.NotifyMappingChange(0, 0x1000, 0xfff, kOld, kOld);
  chains_.NotifyMappingChange(0, 0x1000, 0xfff, std::nullopt, std::nullopt);
  EXPECT_THAT(log_, IsEmpty());
}

TEST_F(IommuNotifierChainsTest, NewMappingEmitsOnlyMap) {
  auto h = MustRegister(&both_, {.flags = kNotifyIotlbEvents});
  chains_.NotifyMappingChange(0, 0x1000, 0xfff, std::nullopt, kNew);
  EXPECT_THAT(log_, ElementsAre(Logged{"both", Map(0x1000, 0xfff, 0xb000)}));
}

TEST_F(IommuNotifierChainsTest, RemovedMappingEmitsUnmapWithoutPermission) {
  auto h = MustRegister(&both_, {.flags = kNotifyIotlbEvents});
  chains_.NotifyMappingChange(0, 0x1000, 0xfff, kOld, std::nullopt);
  EXPECT_THAT(log_, ElementsAre(Logged{"both", Unmap(0x1000, 0xfff, 0xa000)}));
}

TEST_F(IommuNotifierChainsTest, UnmapEventWithPermissionIsFatal) {
  IommuEvent bad = Unmap(0x1000, 0xfff);
  bad.entry.perm = kIommuRead;
  EXPECT_DEATH(chains_.Notify(0, bad), "UNMAP event with a permission");
}

// --- Replay
// -------------------------------------------------------------------------

TEST_F(IommuNotifierChainsTest, ReplayReachesOnlyTheReplayedNotifier) {
  model_.mappings = {Map(0x1000, 0xfff, 0x5000).entry,
                     Map(0x8000, 0xfff, 0x9000).entry};
  Recorder other("other", &log_);
  auto ho = MustRegister(&other, {.flags = kNotifyIotlbEvents});
  auto h = MustRegister(&both_, {.flags = kNotifyIotlbEvents});
  ASSERT_TRUE(chains_.Replay(h).ok());
  EXPECT_THAT(log_, ElementsAre(Logged{"both", Map(0x1000, 0xfff, 0x5000)},
                                Logged{"both", Map(0x8000, 0xfff, 0x9000)}));
}

TEST_F(IommuNotifierChainsTest, ReplayOfNotifierNotOnMapChainDeliversNothing) {
  model_.mappings = {Map(0x1000, 0xfff, 0x5000).entry};
  auto h = MustRegister(&unmap_only_, {.flags = kNotifyUnmap});
  EXPECT_TRUE(chains_.Replay(h).ok());
  EXPECT_THAT(log_, IsEmpty());
  EXPECT_THAT(model_.replayed_indexes, IsEmpty());
}

TEST_F(IommuNotifierChainsTest, ReplayCropsToNotifierRange) {
  model_.mappings = {Map(0x0, 0xffff, 0x100000).entry,
                     Map(0x40000, 0xfff, 0x200000).entry};
  auto h = MustRegister(&map_only_,
                        {.flags = kNotifyMap, .range = {0x1000, 0x1fff}});
  ASSERT_TRUE(chains_.Replay(h).ok());
  EXPECT_THAT(log_, ElementsAre(Logged{"map", Map(0x1000, 0xfff, 0x101000)}));
}

TEST_F(IommuNotifierChainsTest, ReplayUsesTheNotifierIommuIndex) {
  FakeModel model(/*num_indexes=*/2);
  IommuNotifierChains chains(&model, "two-indexes");
  auto h = chains.Register(&map_only_, {.flags = kNotifyMap, .iommu_idx = 1});
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(chains.Replay(*h).ok());
  EXPECT_THAT(model.replayed_indexes, ElementsAre(1));
}

TEST_F(IommuNotifierChainsTest, ReplayWithoutModelReplayIsUnimplemented) {
  NoReplayModel model;
  IommuNotifierChains chains(&model, "no-replay");
  auto h = chains.Register(&map_only_, {.flags = kNotifyMap});
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(chains.Replay(*h).code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(log_, IsEmpty());
}

TEST_F(IommuNotifierChainsTest, ReplayWithForeignHandleIsInvalidArgument) {
  FakeModel model;
  IommuNotifierChains other(&model, "other");
  auto h = other.Register(&map_only_, {.flags = kNotifyMap});
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(chains_.Replay(*h).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(chains_.Replay(IommuNotifierHandle()).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(IommuNotifierChainsTest, NotifierCanUnregisterItselfDuringReplay) {
  model_.mappings = {Map(0x1000, 0xfff, 0x5000).entry,
                     Map(0x2000, 0xfff, 0x6000).entry};
  auto h = MustRegister(&map_only_, {.flags = kNotifyMap});
  map_only_.hook = [&](const IommuEvent&) { h.Reset(); };
  EXPECT_TRUE(chains_.Replay(h).ok());
  EXPECT_EQ(log_.size(), 1u);  // the second mapping is not delivered
  EXPECT_EQ(chains_.ChainSize(IommuEventType::kMap), 0u);
}

// --- UnmapNotifierRange
// -------------------------------------------------------------

TEST_F(IommuNotifierChainsTest, UnmapNotifierRangeReachesOnlyThatNotifier) {
  Recorder other("other", &log_);
  auto ho = MustRegister(&other, {.flags = kNotifyUnmap});
  auto h = MustRegister(&unmap_only_,
                        {.flags = kNotifyUnmap, .range = {0x4000, 0x7fff}});
  chains_.UnmapNotifierRange(h);
  EXPECT_THAT(log_, ElementsAre(Logged{"unmap", Unmap(0x4000, 0x3fff)}));
}

TEST_F(IommuNotifierChainsTest, UnmapNotifierRangeSkipsMapOnlyNotifier) {
  auto h = MustRegister(&map_only_, {.flags = kNotifyMap});
  chains_.UnmapNotifierRange(h);
  EXPECT_THAT(log_, IsEmpty());
}

}  // namespace
}  // namespace viommu::memory
