// Rendering rules: priorities, overlap, aliases, enable/disable, readonly.
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_mmio_device.h"
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

class FlatViewRenderTest : public ::testing::Test {
 protected:
  std::shared_ptr<MemoryRegion> Container(const char* name, Size128 size) {
    return MemoryRegion::CreateContainer(&sys_, name, size);
  }
  std::shared_ptr<MemoryRegion> Mmio(const char* name, Size128 size) {
    return MemoryRegion::CreateMmio(&sys_, name, size, &dev_);
  }
  std::shared_ptr<MemoryRegion> Ram(const char* name, uint64_t size) {
    return *MemoryRegion::CreateRam(&sys_, name, size);
  }

  MemorySystem sys_;
  FakeMmioDevice dev_{0x10000};
};

// docs/devel/memory.rst "Visibility": container A (0x8000) holds container
// B at 0x2000 (prio 2, size 0x4000, with D at 0x0 and E at 0x2000, each
// 0x1000) and MMIO C at 0x0 (prio 1, size 0x6000). C shows through B's
// holes; nothing is behind 0x6000.
TEST_F(FlatViewRenderTest, QemuDocumentationPriorityExample) {
  auto a = Container("A", 0x8000);
  auto b = Container("B", 0x4000);
  auto c = Mmio("C", 0x6000);
  auto d = Mmio("D", 0x1000);
  auto e = Mmio("E", 0x1000);
  b->AddSubregion(0x0, d);
  b->AddSubregion(0x2000, e);
  a->AddSubregionOverlap(0x2000, b, 2);
  a->AddSubregionOverlap(0x0, c, 1);
  AddressSpace as(&sys_, a, "as");
  EXPECT_THAT(DumpView(as), ElementsAre("0x0-0x1fff C+0x0",      //
                                        "0x2000-0x2fff D+0x0",   //
                                        "0x3000-0x3fff C+0x3000",
                                        "0x4000-0x4fff E+0x0",   //
                                        "0x5000-0x5fff C+0x5000"));
}

TEST_F(FlatViewRenderTest, HigherPriorityWinsRegardlessOfInsertionOrder) {
  auto root = Container("root", 0x10000);
  auto low = Mmio("low", 0x4000);
  auto high = Mmio("high", 0x1000);
  root->AddSubregionOverlap(0x1000, high, 5);
  root->AddSubregionOverlap(0x0, low, -3);
  AddressSpace as(&sys_, root, "as");
  EXPECT_THAT(DumpView(as), ElementsAre("0x0-0xfff low+0x0",
                                        "0x1000-0x1fff high+0x0",
                                        "0x2000-0x3fff low+0x2000"));
}

TEST_F(FlatViewRenderTest, MostRecentlyAddedWinsAmongEqualPriorities) {
  auto root = Container("root", 0x10000);
  auto first = Mmio("first", 0x2000);
  auto second = Mmio("second", 0x2000);
  root->AddSubregion(0x0, first);
  root->AddSubregion(0x1000, second);
  AddressSpace as(&sys_, root, "as");
  EXPECT_THAT(DumpView(as), ElementsAre("0x0-0xfff first+0x0",
                                        "0x1000-0x2fff second+0x0"));
}

TEST_F(FlatViewRenderTest, MovingARegionMakesItTheMostRecent) {
  auto root = Container("root", 0x10000);
  auto first = Mmio("first", 0x2000);
  auto second = Mmio("second", 0x2000);
  root->AddSubregion(0x0, first);
  root->AddSubregion(0x4000, second);
  AddressSpace as(&sys_, root, "as");
  first->SetAddress(0x3000);  // re-added: now wins over `second`
  EXPECT_THAT(DumpView(as), ElementsAre("0x3000-0x4fff first+0x0",
                                        "0x5000-0x5fff second+0x1000"));
}

TEST_F(FlatViewRenderTest, AliasShowsTargetFromItsOffset) {
  auto root = Container("root", 0x100000);
  auto ram = Ram("ram", 0x10000);
  auto alias = MemoryRegion::CreateAlias(&sys_, "hi", ram, 0x8000, 0x4000);
  root->AddSubregion(0x0, ram);
  root->AddSubregion(0x50000, alias);
  AddressSpace as(&sys_, root, "as");
  EXPECT_THAT(DumpView(as), ElementsAre("0x0-0xffff ram+0x0",
                                        "0x50000-0x53fff ram+0x8000"));
}

TEST_F(FlatViewRenderTest, AliasOfContainerShowsItsChildren) {
  auto root = Container("root", 0x100000);
  auto inner = Container("inner", 0x4000);
  auto d = Mmio("d", 0x1000);
  inner->AddSubregion(0x3000, d);
  auto alias = MemoryRegion::CreateAlias(&sys_, "win", inner, 0x2000, 0x2000);
  root->AddSubregion(0x10000, alias);
  AddressSpace as(&sys_, root, "as");
  EXPECT_THAT(DumpView(as), ElementsAre("0x11000-0x11fff d+0x0"));
}

TEST_F(FlatViewRenderTest, SetAliasOffsetMovesTheWindow) {
  auto root = Container("root", 0x100000);
  auto ram = Ram("ram", 0x10000);
  auto alias = MemoryRegion::CreateAlias(&sys_, "win", ram, 0x0, 0x1000);
  root->AddSubregion(0x20000, alias);
  AddressSpace as(&sys_, root, "as");
  alias->SetAliasOffset(0x3000);
  EXPECT_THAT(DumpView(as), ElementsAre("0x20000-0x20fff ram+0x3000"));
}

TEST_F(FlatViewRenderTest, DisabledRegionIsSkippedAndLowerPriorityShows) {
  auto root = Container("root", 0x10000);
  auto low = Mmio("low", 0x4000);
  auto high = Mmio("high", 0x1000);
  root->AddSubregion(0x0, low);
  root->AddSubregionOverlap(0x1000, high, 1);
  AddressSpace as(&sys_, root, "as");
  high->SetEnabled(false);
  EXPECT_THAT(DumpView(as), ElementsAre("0x0-0x3fff low+0x0"));
  high->SetEnabled(true);
  EXPECT_THAT(DumpView(as), ElementsAre("0x0-0xfff low+0x0",
                                        "0x1000-0x1fff high+0x0",
                                        "0x2000-0x3fff low+0x2000"));
}

TEST_F(FlatViewRenderTest, DisabledContainerHidesItsChildren) {
  auto root = Container("root", 0x10000);
  auto box = Container("box", 0x2000);
  box->AddSubregion(0x0, Mmio("m", 0x1000));
  root->AddSubregion(0x4000, box);
  AddressSpace as(&sys_, root, "as");
  box->SetEnabled(false);
  EXPECT_THAT(DumpView(as), IsEmpty());
}

TEST_F(FlatViewRenderTest, ReadonlyIsInheritedFromContainers) {
  auto root = Container("root", 0x10000);
  auto rom = Container("rom", 0x2000);
  rom->AddSubregion(0x0, Ram("flash", 0x2000));
  root->AddSubregion(0x0, rom);
  rom->SetReadonly(true);
  AddressSpace as(&sys_, root, "as");
  EXPECT_THAT(DumpView(as), ElementsAre("0x0-0x1fff flash+0x0 ro"));
}

TEST_F(FlatViewRenderTest, NonPureContainerFillsItsOwnHoles) {
  auto root = Container("root", 0x10000);
  auto bar = Mmio("bar", 0x4000);  // MMIO with a child: serves the rest
  bar->AddSubregion(0x1000, Ram("window", 0x1000));
  root->AddSubregion(0x8000, bar);
  AddressSpace as(&sys_, root, "as");
  EXPECT_THAT(DumpView(as), ElementsAre("0x8000-0x8fff bar+0x0",
                                        "0x9000-0x9fff window+0x0",
                                        "0xa000-0xbfff bar+0x2000"));
}

TEST_F(FlatViewRenderTest, ChildIsClippedToItsContainer) {
  auto root = Container("root", 0x10000);
  auto box = Container("box", 0x1000);
  box->AddSubregion(0x800, Mmio("wide", 0x4000));
  root->AddSubregion(0x2000, box);
  AddressSpace as(&sys_, root, "as");
  EXPECT_THAT(DumpView(as), ElementsAre("0x2800-0x2fff wide+0x0"));
}

TEST_F(FlatViewRenderTest, AdjacentPiecesOfOneRegionAreMerged) {
  auto root = Container("root", 0x10000);
  auto ram = Ram("ram", 0x4000);
  auto hole = Mmio("hole", 0x1000);
  root->AddSubregion(0x0, ram);
  root->AddSubregionOverlap(0x1000, hole, 1);
  AddressSpace as(&sys_, root, "as");
  root->RemoveSubregion(hole.get());
  EXPECT_THAT(DumpView(as), ElementsAre("0x0-0x3fff ram+0x0"));
}

TEST_F(FlatViewRenderTest, RegionCoveringAllOf64BitSpace) {
  auto root = Container("root", kSize2To64);
  auto all = Mmio("all", kSize2To64);
  root->AddSubregion(0, all);
  root->AddSubregionOverlap(0xfee00000, Mmio("msi", 0x100000), 1);
  AddressSpace as(&sys_, root, "as");
  EXPECT_THAT(DumpView(as),
              ElementsAre("0x0-0xfedfffff all+0x0",
                          "0xfee00000-0xfeefffff msi+0x0",
                          "0xfef00000-0xffffffffffffffff all+0xfef00000"));
}

TEST_F(FlatViewRenderTest, RegionEndingPast64BitsIsClipped) {
  auto root = Container("root", kSize2To64);
  root->AddSubregion(UINT64_MAX - 0xfff, Mmio("top", 0x2000));
  AddressSpace as(&sys_, root, "as");
  EXPECT_THAT(DumpView(as),
              ElementsAre("0xfffffffffffff000-0xffffffffffffffff top+0x0"));
}

TEST_F(FlatViewRenderTest, AddressSpacesWithOneRootShareTheView) {
  auto root = Container("root", 0x10000);
  root->AddSubregion(0, Ram("ram", 0x1000));
  AddressSpace as1(&sys_, root, "as1");
  AddressSpace as2(&sys_, root, "as2");
  EXPECT_EQ(as1.CurrentView(), as2.CurrentView());
  root->AddSubregion(0x2000, Mmio("m", 0x1000));
  EXPECT_EQ(as1.CurrentView(), as2.CurrentView());
  EXPECT_EQ(as2.CurrentView()->size(), 2u);
}

}  // namespace
}  // namespace viommu::memory
