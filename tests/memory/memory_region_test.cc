// MemoryRegion on its own: kinds, factories, accessors, the child order and
// the lifetime links (parents, alias targets) that views rely on.
#include "viommu/memory/memory_region.h"

#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_mmio_device.h"
#include "viommu/memory/memory_system.h"
#include "viommu/memory/table_iommu.h"

namespace viommu::memory {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> ChildNames(const MemoryRegion& mr) {
  std::vector<std::string> out;
  mr.ForEachSubregion([&](MemoryRegion* c) { out.push_back(c->name()); });
  return out;
}

class MemoryRegionTest : public ::testing::Test {
 protected:
  MemorySystem sys_;
  testing::FakeMmioDevice dev_{0x100};
};

TEST_F(MemoryRegionTest, KindsReportRamAndTermination) {
  uint8_t bar[64] = {};
  TableIommu table(nullptr);
  auto c = MemoryRegion::CreateContainer(&sys_, "c", 0x1000);
  auto ram = *MemoryRegion::CreateRam(&sys_, "ram", 0x1000);
  auto dev = MemoryRegion::CreateRamDevice(&sys_, "bar", sizeof(bar), bar);
  auto mmio = MemoryRegion::CreateMmio(&sys_, "mmio", 0x100, &dev_);
  auto alias = MemoryRegion::CreateAlias(&sys_, "a", ram, 0, 0x1000);
  auto iommu = MemoryRegion::CreateIommu(&sys_, "dmar", kSize2To64, &table);

  EXPECT_FALSE(c->IsRam());
  EXPECT_FALSE(c->Terminates());
  EXPECT_TRUE(ram->IsRam());
  EXPECT_FALSE(ram->IsRamDevice());
  EXPECT_TRUE(dev->IsRam());
  EXPECT_TRUE(dev->IsRamDevice());
  EXPECT_EQ(dev->host(), bar);
  EXPECT_FALSE(mmio->IsRam());
  EXPECT_TRUE(mmio->Terminates());
  EXPECT_FALSE(alias->Terminates());
  EXPECT_EQ(alias->alias_target(), ram.get());
  EXPECT_TRUE(iommu->IsIommu());
  EXPECT_NE(iommu->iommu(), nullptr);
  EXPECT_EQ(ram->iommu(), nullptr);
}

TEST_F(MemoryRegionTest, RamIsZeroFilledHostMemory) {
  auto ram = *MemoryRegion::CreateRam(&sys_, "ram", 0x2000);
  ASSERT_NE(ram->host(), nullptr);
  std::vector<uint8_t> zeros(0x2000, 0);
  EXPECT_EQ(std::memcmp(ram->host(), zeros.data(), zeros.size()), 0);
}

TEST_F(MemoryRegionTest, RamPtrUsesTheCallersMemoryWithoutOwningIt) {
  alignas(8) uint8_t guest[0x2000] = {};
  guest[0x10] = 0x5a;
  {
    auto ram = *MemoryRegion::CreateRamPtr(&sys_, "ram", sizeof(guest), guest);
    EXPECT_EQ(ram->kind(), RegionKind::kRam);
    EXPECT_FALSE(ram->IsRamDevice());
    EXPECT_EQ(ram->host(), guest);
    EXPECT_EQ(ram->host()[0x10], 0x5a);
  }
  // Destroying the region left the memory alone (it is still writable).
  guest[0x10] = 0xa5;
  EXPECT_EQ(guest[0x10], 0xa5);
}

TEST_F(MemoryRegionTest, RamPtrOfSizeZeroIsRefused) {
  uint8_t guest[8] = {};
  auto ram = MemoryRegion::CreateRamPtr(&sys_, "ram", 0, guest);
  EXPECT_EQ(ram.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(MemoryRegionTest, RamOfSizeZeroIsRefused) {
  auto ram = MemoryRegion::CreateRam(&sys_, "ram", 0);
  EXPECT_EQ(ram.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(MemoryRegionTest, RamShrinksAndGrowsBackWithinItsHostMemory) {
  auto ram = *MemoryRegion::CreateRam(&sys_, "ram", 0x4000);
  ram->SetSize(0x1000);
  EXPECT_EQ(ram->size(), 0x1000);
  ram->SetSize(0x4000);
  EXPECT_EQ(ram->size(), 0x4000);
}

TEST_F(MemoryRegionTest, RamCannotGrowPastItsHostMemory) {
  auto ram = *MemoryRegion::CreateRam(&sys_, "ram", 0x1000);
  EXPECT_DEATH(ram->SetSize(0x2000), "beyond its host memory");
}

TEST_F(MemoryRegionTest, ChildrenIterateByPriorityThenMostRecent) {
  auto root = MemoryRegion::CreateContainer(&sys_, "root", 0x10000);
  root->AddSubregionOverlap(0, MemoryRegion::CreateContainer(&sys_, "lo", 1),
                            -1);
  root->AddSubregionOverlap(0, MemoryRegion::CreateContainer(&sys_, "a", 1), 0);
  root->AddSubregionOverlap(0, MemoryRegion::CreateContainer(&sys_, "hi", 1),
                            5);
  root->AddSubregionOverlap(0, MemoryRegion::CreateContainer(&sys_, "b", 1), 0);
  EXPECT_THAT(ChildNames(*root), ElementsAre("hi", "b", "a", "lo"));
}

TEST_F(MemoryRegionTest, SetAddressMakesARegionTheMostRecent) {
  auto root = MemoryRegion::CreateContainer(&sys_, "root", 0x10000);
  auto a = MemoryRegion::CreateContainer(&sys_, "a", 1);
  auto b = MemoryRegion::CreateContainer(&sys_, "b", 1);
  root->AddSubregion(0, a);
  root->AddSubregion(0, b);
  a->SetAddress(0x100);
  EXPECT_THAT(ChildNames(*root), ElementsAre("a", "b"));
  EXPECT_EQ(a->addr(), 0x100u);
}

TEST_F(MemoryRegionTest, RemoveSubregionClearsTheParent) {
  auto root = MemoryRegion::CreateContainer(&sys_, "root", 0x10000);
  auto child = MemoryRegion::CreateContainer(&sys_, "child", 0x10);
  root->AddSubregion(0x20, child);
  EXPECT_EQ(child->parent(), root.get());
  EXPECT_EQ(root->subregion_count(), 1u);
  root->RemoveSubregion(child.get());
  EXPECT_EQ(child->parent(), nullptr);
  EXPECT_EQ(root->subregion_count(), 0u);
}

TEST_F(MemoryRegionTest, ExtentInParentFollowsAddressAndSize) {
  auto root = MemoryRegion::CreateContainer(&sys_, "root", kSize2To64);
  auto child = MemoryRegion::CreateContainer(&sys_, "child", 0x10);
  root->AddSubregion(0x1000, child);
  EXPECT_EQ(*child->ExtentInParent(), (Range{0x1000, 0x100f}));
  child->SetSize(0x20);
  EXPECT_EQ(*child->ExtentInParent(), (Range{0x1000, 0x101f}));
  child->SetSize(0);
  EXPECT_FALSE(child->ExtentInParent().has_value());
  EXPECT_EQ(root->Extent(), Range::Full());
}

TEST_F(MemoryRegionTest, OverlappingChildrenAreFoundByWindow) {
  auto root = MemoryRegion::CreateContainer(&sys_, "root", 0x10000);
  root->AddSubregion(0x0000, MemoryRegion::CreateContainer(&sys_, "a", 0x1000));
  root->AddSubregion(0x4000, MemoryRegion::CreateContainer(&sys_, "b", 0x1000));
  std::vector<std::string> hit;
  root->ForEachSubregionOverlapping(
      {0x0800, 0x4000}, [&](MemoryRegion* c) { hit.push_back(c->name()); });
  std::sort(hit.begin(), hit.end());
  EXPECT_THAT(hit, ElementsAre("a", "b"));
}

TEST_F(MemoryRegionTest, AliasOutlivingItsTargetOwnerKeepsTheTarget) {
  std::shared_ptr<MemoryRegion> alias;
  {
    auto ram = *MemoryRegion::CreateRam(&sys_, "ram", 0x1000);
    ram->host()[0] = 0x5a;
    alias = MemoryRegion::CreateAlias(&sys_, "a", ram, 0, 0x1000);
  }
  ASSERT_NE(alias->alias_target(), nullptr);
  EXPECT_EQ(alias->alias_target()->host()[0], 0x5a);
}

TEST_F(MemoryRegionTest, StateSettersAreVisibleThroughAccessors) {
  auto r = MemoryRegion::CreateMmio(&sys_, "m", 0x100, &dev_);
  r->SetEnabled(false);
  r->SetReadonly(true);
  r->SetLogMask(kDirtyLogMigration);
  EXPECT_FALSE(r->enabled());
  EXPECT_TRUE(r->readonly());
  EXPECT_EQ(r->log_mask(), kDirtyLogMigration);
  EXPECT_STREQ(RegionKindName(r->kind()), "mmio");
}

}  // namespace
}  // namespace viommu::memory
