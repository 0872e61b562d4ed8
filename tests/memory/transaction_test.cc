// Transactions: nesting, one publication per outermost commit, and only
// the views whose root changed are touched.
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_mmio_device.h"
#include "tests/fakes/recording_listener.h"
#include "tests/fakes/view_dump.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::memory {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing::DumpView;
using testing::FakeMmioDevice;
using testing::RecordingListener;

class TransactionTest : public ::testing::Test {
 protected:
  std::shared_ptr<MemoryRegion> Mmio(const char* name, uint64_t size) {
    return MemoryRegion::CreateMmio(&sys_, name, size, &dev_);
  }
  MemorySystem sys_;
  FakeMmioDevice dev_{0x1000};
};

TEST_F(TransactionTest, NestedTransactionsCommitOnceAtTheOutermost) {
  auto root = MemoryRegion::CreateContainer(&sys_, "root", 0x100000);
  AddressSpace as(&sys_, root, "as");
  RecordingListener l("L");
  ListenerHandle h = as.RegisterListener(&l);
  l.Clear();
  auto view_before = as.CurrentView();
  {
    MemorySystem::Transaction outer(&sys_);
    root->AddSubregion(0x0, Mmio("a", 0x1000));
    {
      MemorySystem::Transaction inner(&sys_);
      root->AddSubregion(0x1000, Mmio("b", 0x1000));
      EXPECT_EQ(sys_.transaction_depth(), 2);
    }
    // The inner commit published nothing and notified nobody.
    EXPECT_THAT(l.events(), IsEmpty());
    EXPECT_EQ(as.CurrentView(), view_before);
  }
  EXPECT_EQ(sys_.transaction_depth(), 0);
  EXPECT_THAT(l.events(), ElementsAre("L begin", "L add a@0x0+0x1000",
                                      "L add b@0x1000+0x1000", "L commit"));
}

TEST_F(TransactionTest, CommitWithoutChangesNotifiesNobody) {
  auto root = MemoryRegion::CreateContainer(&sys_, "root", 0x100000);
  AddressSpace as(&sys_, root, "as");
  RecordingListener l("L");
  ListenerHandle h = as.RegisterListener(&l);
  l.Clear();
  uint64_t commits = sys_.stats().commits;
  { MemorySystem::Transaction txn(&sys_); }
  EXPECT_THAT(l.events(), IsEmpty());
  EXPECT_EQ(sys_.stats().commits, commits);
}

TEST_F(TransactionTest, OnlyTheViewWhoseRootChangedIsReplaced) {
  auto root1 = MemoryRegion::CreateContainer(&sys_, "r1", 0x100000);
  auto root2 = MemoryRegion::CreateContainer(&sys_, "r2", 0x100000);
  AddressSpace as1(&sys_, root1, "as1");
  AddressSpace as2(&sys_, root2, "as2");
  auto v2 = as2.CurrentView();
  root1->AddSubregion(0, Mmio("a", 0x1000));
  EXPECT_EQ(as2.CurrentView(), v2);
  EXPECT_THAT(DumpView(as1), ElementsAre("0x0-0xfff a+0x0"));
}

TEST_F(TransactionTest, ChangeUnderASharedSubtreeUpdatesEveryRootShowingIt) {
  auto shared = MemoryRegion::CreateContainer(&sys_, "shared", 0x10000);
  auto root1 = MemoryRegion::CreateContainer(&sys_, "r1", 0x100000);
  auto root2 = MemoryRegion::CreateContainer(&sys_, "r2", 0x100000);
  root1->AddSubregion(0x0, shared);
  root2->AddSubregion(0x0,
                      MemoryRegion::CreateAlias(&sys_, "al", shared, 0, 0x10000));
  AddressSpace as1(&sys_, root1, "as1");
  AddressSpace as2(&sys_, root2, "as2");
  shared->AddSubregion(0x2000, Mmio("dev", 0x1000));
  EXPECT_THAT(DumpView(as1), ElementsAre("0x2000-0x2fff dev+0x0"));
  EXPECT_THAT(DumpView(as2), ElementsAre("0x2000-0x2fff dev+0x0"));
}

TEST_F(TransactionTest, AddingOneRegionRendersOnlyItsWindow) {
  auto root = MemoryRegion::CreateContainer(&sys_, "root", kSize2To64);
  AddressSpace as(&sys_, root, "as");
  uint64_t full = sys_.stats().full_renders;
  uint64_t windows = sys_.stats().window_renders;
  root->AddSubregion(0x5000, Mmio("a", 0x1000));
  EXPECT_EQ(sys_.stats().full_renders, full);
  EXPECT_EQ(sys_.stats().window_renders, windows + 1);
}

TEST_F(TransactionTest, RegionsDetachedFromAnyRootCostNothing) {
  auto root = MemoryRegion::CreateContainer(&sys_, "root", kSize2To64);
  AddressSpace as(&sys_, root, "as");
  auto orphan = MemoryRegion::CreateContainer(&sys_, "orphan", 0x10000);
  uint64_t windows = sys_.stats().window_renders;
  orphan->AddSubregion(0, Mmio("a", 0x1000));
  EXPECT_EQ(sys_.stats().window_renders, windows);
}

TEST_F(TransactionTest, OldViewStaysValidAfterRemoval) {
  auto root = MemoryRegion::CreateContainer(&sys_, "root", 0x100000);
  auto ram = *MemoryRegion::CreateRam(&sys_, "ram", 0x1000);
  root->AddSubregion(0, ram);
  AddressSpace as(&sys_, root, "as");
  auto old_view = as.CurrentView();
  MemoryRegion* raw = ram.get();
  root->RemoveSubregion(raw);
  ram.reset();  // the old view still owns it
  const FlatRange* fr = old_view->Lookup(0x10);
  ASSERT_NE(fr, nullptr);
  EXPECT_EQ(fr->mr.get(), raw);
  EXPECT_EQ(fr->mr->name(), "ram");
  EXPECT_EQ(as.CurrentView()->Lookup(0x10), nullptr);
}

}  // namespace
}  // namespace viommu::memory
