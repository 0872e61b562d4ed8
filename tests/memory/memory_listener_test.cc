// MemoryListener event order: replay on register, del-before-add, listener
// priorities, attribute changes as del+add, log hooks, unregistration.
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_mmio_device.h"
#include "tests/fakes/recording_listener.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::memory {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing::FakeMmioDevice;
using testing::RecordingListener;

class MemoryListenerTest : public ::testing::Test {
 protected:
  MemoryListenerTest()
      : root_(MemoryRegion::CreateContainer(&sys_, "root", kSize2To64)),
        ram_(*MemoryRegion::CreateRam(&sys_, "ram", 0x4000)),
        mmio_(MemoryRegion::CreateMmio(&sys_, "mmio", 0x1000, &dev_)) {
    root_->AddSubregion(0x0, ram_);
  }

  MemorySystem sys_;
  FakeMmioDevice dev_{0x1000};
  std::shared_ptr<MemoryRegion> root_;
  std::shared_ptr<MemoryRegion> ram_;
  std::shared_ptr<MemoryRegion> mmio_;
};

TEST_F(MemoryListenerTest, RegistrationReplaysCurrentViewInsideBeginCommit) {
  root_->AddSubregion(0x10000, mmio_);
  AddressSpace as(&sys_, root_, "as");
  RecordingListener l("L");
  ListenerHandle h = as.RegisterListener(&l);
  EXPECT_THAT(l.events(), ElementsAre("L begin", "L add ram@0x0+0x4000",
                                      "L add mmio@0x10000+0x1000",
                                      "L commit"));
}

TEST_F(MemoryListenerTest, UnregistrationDeletesTheView) {
  AddressSpace as(&sys_, root_, "as");
  RecordingListener l("L");
  ListenerHandle h = as.RegisterListener(&l);
  l.Clear();
  h.Reset();
  EXPECT_THAT(l.events(),
              ElementsAre("L begin", "L del ram@0x0+0x4000", "L commit"));
  EXPECT_FALSE(h.registered());
}

TEST_F(MemoryListenerTest, HandleIsMoveOnlyAndUnregistersOnce) {
  AddressSpace as(&sys_, root_, "as");
  RecordingListener l("L");
  ListenerHandle moved;
  {
    ListenerHandle h = as.RegisterListener(&l);
    moved = std::move(h);
    l.Clear();
  }  // h's destructor must not unregister: it was moved from
  EXPECT_THAT(l.events(), IsEmpty());
  moved.Reset();
  EXPECT_THAT(l.events(),
              ElementsAre("L begin", "L del ram@0x0+0x4000", "L commit"));
}

TEST_F(MemoryListenerTest, AddingARegionReportsOnlyTheChange) {
  AddressSpace as(&sys_, root_, "as");
  RecordingListener l("L");
  ListenerHandle h = as.RegisterListener(&l);
  l.Clear();
  root_->AddSubregion(0x10000, mmio_);
  EXPECT_THAT(l.events(), ElementsAre("L begin", "L add mmio@0x10000+0x1000",
                                      "L commit"));
}

TEST_F(MemoryListenerTest, AllDelsComeBeforeAllAdds) {
  AddressSpace as(&sys_, root_, "as");
  RecordingListener l("L");
  ListenerHandle h = as.RegisterListener(&l);
  l.Clear();
  // Hole punched in RAM: the old range goes, three new ones come.
  root_->AddSubregionOverlap(0x1000, mmio_, 1);
  EXPECT_THAT(l.events(),
              ElementsAre("L begin", "L del ram@0x0+0x4000",
                          "L add ram@0x0+0x1000", "L add mmio@0x1000+0x1000",
                          "L add ram@0x2000+0x2000 off=0x2000", "L commit"));
}

TEST_F(MemoryListenerTest, ReadonlyFlipArrivesAsDelThenAdd) {
  AddressSpace as(&sys_, root_, "as");
  RecordingListener l("L");
  ListenerHandle h = as.RegisterListener(&l);
  l.Clear();
  ram_->SetReadonly(true);
  EXPECT_THAT(l.events(),
              ElementsAre("L begin", "L del ram@0x0+0x4000",
                          "L add ram@0x0+0x4000 ro", "L commit"));
}

TEST_F(MemoryListenerTest, UnchangedRangeInAChangedWindowIsNop) {
  root_->AddSubregion(0x4000, mmio_);
  AddressSpace as(&sys_, root_, "as");
  RecordingListener l("L");
  ListenerHandle h = as.RegisterListener(&l);
  l.Clear();
  // Disabling then re-enabling inside one transaction changes nothing.
  {
    MemorySystem::Transaction txn(&sys_);
    mmio_->SetEnabled(false);
    mmio_->SetEnabled(true);
  }
  EXPECT_THAT(l.events(), ElementsAre("L begin", "L nop ram@0x0+0x4000",
                                      "L nop mmio@0x4000+0x1000",
                                      "L commit"));
}

TEST_F(MemoryListenerTest, PrioritiesOrderAddsForwardAndDelsBackward) {
  AddressSpace as(&sys_, root_, "as");
  std::vector<std::string> log;
  RecordingListener hi("P10", &log), lo("P0", &log), mid("P5", &log);
  ListenerHandle h1 = as.RegisterListener(&hi, 10);
  ListenerHandle h2 = as.RegisterListener(&lo, 0);
  ListenerHandle h3 = as.RegisterListener(&mid, 5);
  log.clear();
  ram_->SetReadonly(true);
  EXPECT_THAT(log, ElementsAre("P0 begin", "P5 begin", "P10 begin",
                               "P10 del ram@0x0+0x4000",
                               "P5 del ram@0x0+0x4000",
                               "P0 del ram@0x0+0x4000",
                               "P0 add ram@0x0+0x4000 ro",
                               "P5 add ram@0x0+0x4000 ro",
                               "P10 add ram@0x0+0x4000 ro", "P0 commit",
                               "P5 commit", "P10 commit"));
}

TEST_F(MemoryListenerTest, EqualPrioritiesRunInRegistrationOrder) {
  AddressSpace as(&sys_, root_, "as");
  std::vector<std::string> log;
  RecordingListener a("A", &log), b("B", &log);
  ListenerHandle ha = as.RegisterListener(&a);
  ListenerHandle hb = as.RegisterListener(&b);
  log.clear();
  root_->AddSubregion(0x10000, mmio_);
  EXPECT_THAT(log, ElementsAre("A begin", "B begin",
                               "A add mmio@0x10000+0x1000",
                               "B add mmio@0x10000+0x1000", "A commit",
                               "B commit"));
}

TEST_F(MemoryListenerTest, BeginAndCommitReachListenersOfUnchangedSpaces) {
  auto other_root = MemoryRegion::CreateContainer(&sys_, "other", 0x10000);
  AddressSpace as(&sys_, root_, "as");
  AddressSpace other(&sys_, other_root, "other");
  RecordingListener l("L");
  ListenerHandle h = other.RegisterListener(&l);
  l.Clear();
  root_->AddSubregion(0x10000, mmio_);
  EXPECT_THAT(l.events(), ElementsAre("L begin", "L commit"));
}

TEST_F(MemoryListenerTest, LogMaskChangeIsLogStartAndLogStop) {
  AddressSpace as(&sys_, root_, "as");
  RecordingListener l("L");
  ListenerHandle h = as.RegisterListener(&l);
  l.Clear();
  ram_->SetLogMask(kDirtyLogMigration);
  ram_->SetLogMask(0);
  EXPECT_THAT(l.events(),
              ElementsAre("L begin", "L nop ram@0x0+0x4000",
                          "L log_start ram@0x0+0x4000 0->4", "L commit",
                          "L begin", "L nop ram@0x0+0x4000",
                          "L log_stop ram@0x0+0x4000 4->0", "L commit"));
}

TEST_F(MemoryListenerTest, RegistrationStartsLoggingForLoggedRanges) {
  ram_->SetLogMask(kDirtyLogMigration);
  AddressSpace as(&sys_, root_, "as");
  RecordingListener l("L");
  ListenerHandle h = as.RegisterListener(&l);
  EXPECT_THAT(l.events(), ElementsAre("L begin", "L add ram@0x0+0x4000",
                                      "L log_start ram@0x0+0x4000 0->4",
                                      "L commit"));
}

TEST_F(MemoryListenerTest, SyncDirtyLogVisitsOnlyLoggedRanges) {
  root_->AddSubregion(0x10000, mmio_);
  ram_->SetLogMask(kDirtyLogMigration);
  AddressSpace as(&sys_, root_, "as");
  RecordingListener l("L");
  ListenerHandle h = as.RegisterListener(&l);
  l.Clear();
  as.SyncDirtyLog();
  EXPECT_THAT(l.events(), ElementsAre("L log_sync ram@0x0+0x4000"));
}

TEST_F(MemoryListenerTest, SectionOfWholeSpaceHasSize2To64) {
  auto all = MemoryRegion::CreateMmio(&sys_, "all", kSize2To64, &dev_);
  auto root = MemoryRegion::CreateContainer(&sys_, "r", kSize2To64);
  root->AddSubregion(0, all);
  AddressSpace as(&sys_, root, "as");
  struct SizeListener final : MemoryListener {
    void RegionAdd(const MemoryRegionSection& s) override { size = s.size; }
    Size128 size = 0;
  } l;
  ListenerHandle h = as.RegisterListener(&l);
  EXPECT_EQ(l.size, kSize2To64);
}

}  // namespace
}  // namespace viommu::memory
