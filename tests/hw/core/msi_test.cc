#include "viommu/hw/core/msi.h"

#include <cstdint>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::hw {
namespace {

using memory::AddressSpace;
using memory::MemoryRegion;
using memory::MemTxAttrs;

class MsiControllerTest : public ::testing::Test {
 protected:
  MsiControllerTest() {
    root_ = MemoryRegion::CreateContainer(&sys_, "system", kSize2To64);
    root_->AddSubregion(
        kMsiWindowBase,
        MemoryRegion::CreateMmio(&sys_, "msi", kMsiWindowSize, &msi_));
    as_ = std::make_unique<AddressSpace>(&sys_, root_, "memory");
  }

  memory::MemTxResult Write32(uint64_t addr, uint32_t v, MemTxAttrs attrs) {
    return as_->Write(addr, &v, 4, attrs);
  }

  memory::MemorySystem sys_;
  MsiController msi_;
  std::shared_ptr<MemoryRegion> root_;
  std::unique_ptr<AddressSpace> as_;
};

TEST_F(MsiControllerTest, RecordsCountAndLastMessagePerRequester) {
  ASSERT_TRUE(Write32(0xfee00000, 0x4041, MemTxAttrs::Requester(0x20)).ok());
  ASSERT_TRUE(Write32(0xfee01004, 0x4042, MemTxAttrs::Requester(0x20)).ok());
  ASSERT_TRUE(Write32(0xfee00000, 0x99, MemTxAttrs::Requester(0x28)).ok());
  EXPECT_EQ(msi_.Count(0x20), 2u);
  EXPECT_EQ(msi_.Count(0x28), 1u);
  EXPECT_EQ(msi_.Count(0x30), 0u);
  EXPECT_EQ(msi_.TotalCount(), 3u);
  std::optional<MsiMessage> last = msi_.Last(0x20);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->address, 0xfee01004u);
  EXPECT_EQ(last->data, 0x4042u);
  EXPECT_EQ(last->requester_id, 0x20);
  EXPECT_EQ(msi_.Last(0x30), std::nullopt);
}

TEST_F(MsiControllerTest, WritesWithoutRequesterAreUnspecified) {
  ASSERT_TRUE(Write32(0xfee00010, 7, MemTxAttrs::Unspecified()).ok());
  EXPECT_EQ(msi_.Count(std::nullopt), 1u);
  EXPECT_EQ(msi_.Count(0), 0u);
  ASSERT_TRUE(msi_.Last(std::nullopt).has_value());
  EXPECT_EQ(msi_.Last(std::nullopt)->requester_id, std::nullopt);
}

TEST_F(MsiControllerTest, NarrowWritesAreIgnored) {
  uint16_t v = 1;
  ASSERT_TRUE(as_->Write(0xfee00000, &v, 2, MemTxAttrs::Requester(1)).ok());
  EXPECT_EQ(msi_.TotalCount(), 0u);
}

TEST_F(MsiControllerTest, ReadsReturnZero) {
  ASSERT_TRUE(Write32(0xfee00000, 0xffffffff, MemTxAttrs::Requester(1)).ok());
  uint32_t v = 0xdead;
  ASSERT_TRUE(as_->Read(0xfee00000, &v, 4).ok());
  EXPECT_EQ(v, 0u);
}

TEST_F(MsiControllerTest, ObserverSeesEveryMessage) {
  std::vector<MsiMessage> seen;
  msi_.set_observer([&](const MsiMessage& m) { seen.push_back(m); });
  ASSERT_TRUE(Write32(0xfee00000, 5, MemTxAttrs::Requester(0x18)).ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], (MsiMessage{0xfee00000, 5, 0x18}));
}

TEST_F(MsiControllerTest, DeliverRecordsTheWholeAddress) {
  std::vector<MsiMessage> seen;
  msi_.set_observer([&](const MsiMessage& m) { seen.push_back(m); });
  const MsiMessage m{0x0001'0200'fee0'3000ull, 0x4033, 0x20};
  msi_.Deliver(m);
  EXPECT_EQ(msi_.Count(0x20), 1u);
  EXPECT_EQ(msi_.TotalCount(), 1u);
  EXPECT_EQ(msi_.Last(0x20), m);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], m);
}

TEST_F(MsiControllerTest, ClearForgetsMessages) {
  ASSERT_TRUE(Write32(0xfee00000, 5, MemTxAttrs::Requester(0x18)).ok());
  msi_.Clear();
  EXPECT_EQ(msi_.TotalCount(), 0u);
  EXPECT_EQ(msi_.Count(0x18), 0u);
  EXPECT_EQ(msi_.Last(0x18), std::nullopt);
}

}  // namespace
}  // namespace viommu::hw
