#include "viommu/memory/table_iommu.h"

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/iommu_notifier_chains.h"

namespace viommu::memory {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint64_t k4K = 0x1000;
constexpr uint64_t k2M = 0x200000;
constexpr uint64_t k1G = 0x40000000;

class Recorder final : public IommuNotifier {
 public:
  void Notify(const IommuEvent& event) override { events.push_back(event); }
  std::vector<IommuEvent> events;
};

IommuEvent MapEvent(Iova iova, uint64_t mask, Hwaddr ta, IommuPerm perm,
                    AddressSpace* as = nullptr) {
  return {.type = IommuEventType::kMap,
          .entry = {.target_as = as,
                    .iova = iova,
                    .translated_addr = ta,
                    .addr_mask = mask,
                    .perm = perm}};
}
IommuEvent UnmapEvent(Iova iova, uint64_t mask, Hwaddr ta,
                      AddressSpace* as = nullptr) {
  return {.type = IommuEventType::kUnmap,
          .entry = {.target_as = as,
                    .iova = iova,
                    .translated_addr = ta,
                    .addr_mask = mask,
                    .perm = kIommuNone}};
}

class TableIommuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    table_.Attach(&chains_);
    auto h = chains_.Register(&recorder_, {.flags = kNotifyIotlbEvents});
    ASSERT_TRUE(h.ok()) << h.status();
    handle_ = std::move(*h);
  }

  TableIommu table_{nullptr};
  IommuNotifierChains chains_{&table_, "table"};
  Recorder recorder_;
  IommuNotifierHandle handle_;
};

// --- Map and Translate
// ---------------------------------------------------------

TEST_F(TableIommuTest, TranslateFindsContainingMappingWithItsPerm) {
  ASSERT_TRUE(table_.Map(0x10000, k4K, 0x80000, kIommuRead).ok());
  IommuTlbEntry e = table_.Translate(0x10abc, kIommuWrite, 0);
  EXPECT_EQ(e.iova, 0x10000u);
  EXPECT_EQ(e.translated_addr, 0x80000u);
  EXPECT_EQ(e.addr_mask, k4K - 1);
  EXPECT_EQ(e.perm, kIommuRead);  // the caller checks the access
}

TEST_F(TableIommuTest, TranslateWithoutMappingIsPermNoneAlignedToMinPage) {
  ASSERT_TRUE(table_.Map(0x10000, k4K, 0x80000, kIommuRead).ok());
  IommuTlbEntry e = table_.Translate(0x11234, kIommuRead, 0);
  EXPECT_EQ(e.perm, kIommuNone);
  EXPECT_EQ(e.iova, 0x11000u);
  EXPECT_EQ(e.addr_mask, k4K - 1);
}

TEST_F(TableIommuTest, TranslateCarriesTargetAddressSpace) {
  alignas(64) static char storage[64];
  // Opaque to the model: never dereferenced.
  auto* as = reinterpret_cast<AddressSpace*>(storage);
  TableIommu table(as);
  ASSERT_TRUE(table.Map(0, k4K, 0, kIommuReadWrite).ok());
  EXPECT_EQ(table.Translate(0x10, kIommuRead, 0).target_as, as);
  EXPECT_EQ(table.Translate(0x10000, kIommuRead, 0).target_as, as);
}

TEST_F(TableIommuTest, LargePagesTranslateAcrossTheirWholeSpan) {
  ASSERT_TRUE(table_.Map(k1G, k1G, 2 * k1G, kIommuReadWrite).ok());
  ASSERT_TRUE(table_.Map(0, k2M, 4 * k2M, kIommuWrite).ok());
  IommuTlbEntry g = table_.Translate(2 * k1G - 1, kIommuRead, 0);
  EXPECT_EQ(g.iova, k1G);
  EXPECT_EQ(g.addr_mask, k1G - 1);
  EXPECT_EQ(g.translated_addr, 2 * k1G);
  IommuTlbEntry m = table_.Translate(k2M - 1, kIommuRead, 0);
  EXPECT_EQ(m.translated_addr, 4 * k2M);
  EXPECT_EQ(m.perm, kIommuWrite);
  EXPECT_EQ(table_.size(), 2u);
}

TEST_F(TableIommuTest, MapEmitsMapEvent) {
  ASSERT_TRUE(table_.Map(0x10000, k4K, 0x80000, kIommuRead).ok());
  EXPECT_THAT(recorder_.events,
              ElementsAre(MapEvent(0x10000, k4K - 1, 0x80000, kIommuRead)));
}

TEST_F(TableIommuTest, RemapOfSameRangeIsUnmapThenMap) {
  ASSERT_TRUE(table_.Map(0x10000, k4K, 0x80000, kIommuRead).ok());
  recorder_.events.clear();
  ASSERT_TRUE(table_.Map(0x10000, k4K, 0x90000, kIommuReadWrite).ok());
  EXPECT_THAT(
      recorder_.events,
      ElementsAre(UnmapEvent(0x10000, k4K - 1, 0x80000),
                  MapEvent(0x10000, k4K - 1, 0x90000, kIommuReadWrite)));
  EXPECT_EQ(table_.Translate(0x10000, kIommuRead, 0).translated_addr, 0x90000u);
  EXPECT_EQ(table_.size(), 1u);
}

TEST_F(TableIommuTest, RemapWithIdenticalMappingEmitsNothing) {
  ASSERT_TRUE(table_.Map(0x10000, k4K, 0x80000, kIommuRead).ok());
  recorder_.events.clear();
  ASSERT_TRUE(table_.Map(0x10000, k4K, 0x80000, kIommuRead).ok());
  EXPECT_THAT(recorder_.events, IsEmpty());
}

TEST_F(TableIommuTest,
       MapOverlappingOtherSizeIsAlreadyExistsAndChangesNothing) {
  ASSERT_TRUE(table_.Map(k2M, k2M, 0, kIommuRead).ok());
  ASSERT_TRUE(table_.Map(0x5000, k4K, 0, kIommuRead).ok());
  recorder_.events.clear();
  // Smaller inside a larger one, and larger over a smaller one.
  EXPECT_EQ(table_.Map(k2M + k4K, k4K, 0, kIommuRead).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(table_.Map(0, k2M, 0, kIommuRead).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(recorder_.events, IsEmpty());
  EXPECT_EQ(table_.size(), 2u);
  EXPECT_EQ(table_.Translate(0, kIommuRead, 0).perm, kIommuNone);
}

TEST_F(TableIommuTest, MapRejectsMisalignedAddresses) {
  EXPECT_EQ(table_.Map(0x800, k4K, 0, kIommuRead).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table_.Map(k2M, k2M, k4K, kIommuRead).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table_.size(), 0u);
}

TEST_F(TableIommuTest, MapRejectsBadSizes) {
  EXPECT_EQ(table_.Map(0, 0x3000, 0, kIommuRead).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table_.Map(0, 0x800, 0, kIommuRead).code(),
            absl::StatusCode::kInvalidArgument);  // below MinPageSize
  EXPECT_EQ(table_.Map(0, 0, 0, kIommuRead).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table_.size(), 0u);
}

TEST_F(TableIommuTest, MapRejectsPermNone) {
  EXPECT_EQ(table_.Map(0, k4K, 0, kIommuNone).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(recorder_.events, IsEmpty());
}

TEST_F(TableIommuTest, MinPageSizeOptionIsHonoured) {
  TableIommu table(nullptr, {.min_page_size = 0x10000});
  EXPECT_EQ(table.MinPageSize(), 0x10000u);
  EXPECT_EQ(table.Map(0, k4K, 0, kIommuRead).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(table.Map(0, 0x10000, 0, kIommuRead).ok());
  EXPECT_EQ(table.Translate(0x23456, kIommuRead, 0).iova, 0x20000u);
}

TEST_F(TableIommuTest, MappingAtTopOfAddressSpaceWorks) {
  const Iova top = UINT64_MAX - k4K + 1;
  ASSERT_TRUE(table_.Map(top, k4K, 0x7000, kIommuRead).ok());
  EXPECT_EQ(table_.Translate(UINT64_MAX, kIommuRead, 0).translated_addr,
            0x7000u);
  EXPECT_TRUE(table_.Unmap(top, k4K).ok());
  EXPECT_EQ(table_.size(), 0u);
}

// --- Unmap
// ------------------------------------------------------------------------

TEST_F(TableIommuTest, UnmapRemovesEveryMappingInsideRangeOneUnmapEach) {
  ASSERT_TRUE(table_.Map(0x1000, k4K, 0xa000, kIommuRead).ok());
  ASSERT_TRUE(table_.Map(0x3000, k4K, 0xb000, kIommuRead).ok());
  ASSERT_TRUE(table_.Map(0x9000, k4K, 0xc000, kIommuRead).ok());
  recorder_.events.clear();
  ASSERT_TRUE(table_.Unmap(0x0, 0x8000).ok());
  EXPECT_THAT(recorder_.events,
              ElementsAre(UnmapEvent(0x1000, k4K - 1, 0xa000),
                          UnmapEvent(0x3000, k4K - 1, 0xb000)));
  EXPECT_EQ(table_.size(), 1u);
  EXPECT_EQ(table_.Translate(0x1000, kIommuRead, 0).perm, kIommuNone);
  EXPECT_EQ(table_.Translate(0x9000, kIommuRead, 0).perm, kIommuRead);
}

TEST_F(TableIommuTest, UnmapOfPartlyCoveredMappingFailsAndChangesNothing) {
  ASSERT_TRUE(table_.Map(0x1000, k4K, 0xa000, kIommuRead).ok());
  ASSERT_TRUE(table_.Map(k2M, k2M, 0, kIommuRead).ok());
  recorder_.events.clear();
  // Ends inside the 2M page; starts inside the first 4K page.
  EXPECT_EQ(table_.Unmap(0, k2M + k4K).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table_.Unmap(0x1800, 0x1000).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(recorder_.events, IsEmpty());
  EXPECT_EQ(table_.size(), 2u);
}

TEST_F(TableIommuTest, UnmapOfEmptyRangeIsOk) {
  EXPECT_TRUE(table_.Unmap(0x100000, 0x100000).ok());
  EXPECT_THAT(recorder_.events, IsEmpty());
}

TEST_F(TableIommuTest, UnmapRejectsEmptyOrWrappingRange) {
  EXPECT_EQ(table_.Unmap(0x1000, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table_.Unmap(UINT64_MAX, 2).code(),
            absl::StatusCode::kInvalidArgument);
}

// --- Replay
// --------------------------------------------------------------------------

TEST_F(TableIommuTest, ReplayOfFullSpaceEmitsExactlyTheExistingMappings) {
  ASSERT_TRUE(table_.Map(0, k4K, 0x1000, kIommuRead).ok());
  ASSERT_TRUE(table_.Map(k1G, k1G, k1G, kIommuReadWrite).ok());
  ASSERT_TRUE(table_.Map(UINT64_MAX - k2M + 1, k2M, k2M, kIommuWrite).ok());
  int emitted = 0;
  ASSERT_TRUE(table_.Replay(0, [&](const IommuTlbEntry&) { ++emitted; }).ok());
  EXPECT_EQ(emitted, 3);
}

TEST_F(TableIommuTest, ReplayThroughChainsDeliversMapsInIovaOrder) {
  ASSERT_TRUE(table_.Map(k1G, k1G, k1G, kIommuReadWrite).ok());
  ASSERT_TRUE(table_.Map(0, k4K, 0x1000, kIommuRead).ok());
  ASSERT_TRUE(table_.Map(UINT64_MAX - k2M + 1, k2M, k2M, kIommuWrite).ok());
  recorder_.events.clear();
  ASSERT_TRUE(chains_.Replay(handle_).ok());
  EXPECT_THAT(
      recorder_.events,
      ElementsAre(MapEvent(0, k4K - 1, 0x1000, kIommuRead),
                  MapEvent(k1G, k1G - 1, k1G, kIommuReadWrite),
                  MapEvent(UINT64_MAX - k2M + 1, k2M - 1, k2M, kIommuWrite)));
}

// --- Flag changes and veto
// ----------------------------------------------------------

TEST_F(TableIommuTest, RecordsLastFlagChange) {
  EXPECT_EQ(table_.last_flag_change(),
            (TableIommu::FlagChange{kNotifyNone, kNotifyIotlbEvents}));
  handle_.Reset();
  EXPECT_EQ(table_.last_flag_change(),
            (TableIommu::FlagChange{kNotifyIotlbEvents, kNotifyNone}));
  EXPECT_EQ(table_.flag_change_calls(), 2);
}

TEST_F(TableIommuTest, VetoMapRefusesMapButAcceptsUnmapOnly) {
  TableIommu table(nullptr, {.veto_map = true});
  IommuNotifierChains chains(&table, "veto");
  Recorder r;
  auto map = chains.Register(&r, {.flags = kNotifyIotlbEvents});
  EXPECT_EQ(map.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(table.last_flag_change(),
            (TableIommu::FlagChange{kNotifyNone, kNotifyIotlbEvents}));
  auto unmap = chains.Register(&r, {.flags = kNotifyUnmap});
  EXPECT_TRUE(unmap.ok());
  EXPECT_EQ(chains.flags(), kNotifyUnmap);
}

TEST_F(TableIommuTest, SetVetoMapTakesEffectOnNextRegistration) {
  TableIommu table(nullptr);
  IommuNotifierChains chains(&table, "veto-later");
  Recorder r;
  table.set_veto_map(true);
  EXPECT_FALSE(chains.Register(&r, {.flags = kNotifyMap}).ok());
  table.set_veto_map(false);
  EXPECT_TRUE(chains.Register(&r, {.flags = kNotifyMap}).ok());
}

// --- Threads
// ---------------------------------------------------------------------------

TEST_F(TableIommuTest, TranslateIsConsistentWhileMappingsChange) {
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::thread reader([&] {
    while (!stop.load()) {
      IommuTlbEntry e = table_.Translate(0x5000, kIommuRead, 0);
      bool unmapped = e.perm == kIommuNone && e.iova == 0x5000;
      bool mapped = e.perm == kIommuRead && e.translated_addr == 0x9000 &&
                    e.addr_mask == k4K - 1;
      if (!unmapped && !mapped) bad.fetch_add(1);
    }
  });
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(table_.Map(0x5000, k4K, 0x9000, kIommuRead).ok());
    ASSERT_TRUE(table_.Unmap(0x5000, k4K).ok());
  }
  stop.store(true);
  reader.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace viommu::memory
