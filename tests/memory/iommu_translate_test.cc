// Translation through IOMMU regions, including two stacked IOMMUs.
#include <cstdint>
#include <cstring>
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::memory {
namespace {

// Maps every 4K page at iova to iova + delta in `target`, with `perm`.
class OffsetIommu final : public IommuModel {
 public:
  OffsetIommu(AddressSpace** target, uint64_t delta, IommuPerm perm)
      : target_(target), delta_(delta), perm_(perm) {}
  IommuTlbEntry Translate(Iova iova, IommuPerm, int) override {
    ++translations;
    return {.target_as = *target_,
            .iova = iova & ~0xfffull,
            .translated_addr = (iova & ~0xfffull) + delta_,
            .addr_mask = 0xfff,
            .perm = perm_};
  }
  int translations = 0;

 private:
  AddressSpace** target_;
  uint64_t delta_;
  IommuPerm perm_;
};

class IommuTranslateTest : public ::testing::Test {
 protected:
  IommuTranslateTest()
      : sys_root_(MemoryRegion::CreateContainer(&sys_, "system", kSize2To64)),
        ram_(*MemoryRegion::CreateRam(&sys_, "ram", 0x100000)) {
    sys_root_->AddSubregion(0, ram_);
    memory_ = std::make_unique<AddressSpace>(&sys_, sys_root_, "memory");
  }

  MemorySystem sys_;
  std::shared_ptr<MemoryRegion> sys_root_;
  std::shared_ptr<MemoryRegion> ram_;
  std::unique_ptr<AddressSpace> memory_;
};

TEST_F(IommuTranslateTest, DmaThroughIommuLandsAtTranslatedAddress) {
  AddressSpace* target = memory_.get();
  OffsetIommu iommu(&target, 0x40000, kIommuReadWrite);
  auto dmar = MemoryRegion::CreateIommu(&sys_, "dmar", kSize2To64, &iommu);
  AddressSpace dev_as(&sys_, dmar, "dev");
  uint32_t v = 0xcafef00d;
  ASSERT_TRUE(dev_as.Write(0x1234, &v, 4).ok());
  uint32_t back = 0;
  std::memcpy(&back, ram_->host() + 0x41234, 4);
  EXPECT_EQ(back, 0xcafef00d);
}

TEST_F(IommuTranslateTest, TwoStackedIommusComposeTheirTranslations) {
  AddressSpace* to_memory = memory_.get();
  OffsetIommu inner(&to_memory, 0x10000, kIommuReadWrite);
  auto inner_mr = MemoryRegion::CreateIommu(&sys_, "inner", kSize2To64, &inner);
  AddressSpace inner_as(&sys_, inner_mr, "inner");
  AddressSpace* to_inner = &inner_as;
  OffsetIommu outer(&to_inner, 0x2000, kIommuReadWrite);
  auto outer_mr = MemoryRegion::CreateIommu(&sys_, "outer", kSize2To64, &outer);
  AddressSpace dev_as(&sys_, outer_mr, "dev");

  Translation t = dev_as.Translate(0x123, 4, /*is_write=*/false);
  ASSERT_TRUE(t.result.ok());
  EXPECT_EQ(t.mr, ram_.get());
  EXPECT_EQ(t.offset_in_region, 0x123u + 0x2000 + 0x10000);
  EXPECT_EQ(t.target_as, memory_.get());
  EXPECT_EQ(inner.translations, 1);
  EXPECT_EQ(outer.translations, 1);
}

TEST_F(IommuTranslateTest, FirstFaultOfARefusedWriteIsTheIommusAtTheIova) {
  AddressSpace* target = memory_.get();
  OffsetIommu iommu(&target, 0, kIommuRead);
  auto dmar = MemoryRegion::CreateIommu(&sys_, "dmar", kSize2To64, &iommu);
  AddressSpace dev_as(&sys_, dmar, "dev");
  uint32_t v = 1;
  AccessFault f;
  EXPECT_TRUE(dev_as.Write(0x3008, &v, 4, MemTxAttrs::Requester(0x20), &f)
                  .decode_error());
  EXPECT_EQ(f.kind, AccessFault::Kind::kIommu);
  EXPECT_EQ(f.addr, 0x3008u);
}

TEST_F(IommuTranslateTest, PermissionDeniedIsADecodeErrorAndReadsZero) {
  AddressSpace* target = memory_.get();
  OffsetIommu iommu(&target, 0, kIommuRead);
  auto dmar = MemoryRegion::CreateIommu(&sys_, "dmar", kSize2To64, &iommu);
  AddressSpace dev_as(&sys_, dmar, "dev");
  uint32_t v = 1;
  MemTxResult w = dev_as.Write(0x100, &v, 4);
  EXPECT_TRUE(w.decode_error());
  EXPECT_EQ(ram_->host()[0x100], 0);
  Translation t = dev_as.Translate(0x100, 4, /*is_write=*/true);
  EXPECT_TRUE(t.iommu_fault);
  EXPECT_EQ(t.mr, nullptr);
}

TEST_F(IommuTranslateTest, LengthIsClampedToTheIommuPage) {
  AddressSpace* target = memory_.get();
  OffsetIommu iommu(&target, 0x40000, kIommuReadWrite);
  auto dmar = MemoryRegion::CreateIommu(&sys_, "dmar", kSize2To64, &iommu);
  AddressSpace dev_as(&sys_, dmar, "dev");
  Translation t = dev_as.Translate(0xff0, 0x100, /*is_write=*/false);
  ASSERT_TRUE(t.result.ok());
  EXPECT_EQ(t.len, 0x10u);
}

TEST_F(IommuTranslateTest, BufferAccessCrossingPagesTranslatesEachPage) {
  AddressSpace* target = memory_.get();
  OffsetIommu iommu(&target, 0x40000, kIommuReadWrite);
  auto dmar = MemoryRegion::CreateIommu(&sys_, "dmar", kSize2To64, &iommu);
  AddressSpace dev_as(&sys_, dmar, "dev");
  uint8_t buf[0x2000];
  std::memset(buf, 0x5a, sizeof(buf));
  ASSERT_TRUE(dev_as.Write(0x800, buf, sizeof(buf)).ok());
  EXPECT_EQ(iommu.translations, 3);
  EXPECT_EQ(ram_->host()[0x40800], 0x5a);
  EXPECT_EQ(ram_->host()[0x427ff], 0x5a);
  EXPECT_EQ(ram_->host()[0x42800], 0);
}

TEST_F(IommuTranslateTest, IommuMappingIntoItselfIsRefusedNotLooped) {
  auto dmar_root = MemoryRegion::CreateContainer(&sys_, "loop", kSize2To64);
  AddressSpace* self = nullptr;
  OffsetIommu iommu(&self, 0, kIommuReadWrite);
  dmar_root->AddSubregion(
      0, MemoryRegion::CreateIommu(&sys_, "dmar", kSize2To64, &iommu));
  AddressSpace dev_as(&sys_, dmar_root, "dev");
  self = &dev_as;
  uint32_t v = 0;
  EXPECT_TRUE(dev_as.Read(0x0, &v, 4).decode_error());
}

}  // namespace
}  // namespace viommu::memory
