// HostIommuDomain: the modelled host IOMMU page table (IOVA -> process VA).
#include "viommu/vfio/host/model/host_iommu_domain.h"

#include <cerrno>

#include "gtest/gtest.h"

namespace viommu::vfio::model {
namespace {

constexpr uint64_t k4K = 0x1000;
constexpr uint64_t kPgsizes = (1ull << 12) | (1ull << 21) | (1ull << 30);
constexpr uint64_t kRw = kPermRead | kPermWrite;

class HostIommuDomainTest : public ::testing::Test {
 protected:
  HostIommuDomain d_{(1ull << 39) - 1, kPgsizes};
};

TEST_F(HostIommuDomainTest, MapRejectsMisalignedEmptyAndOutsideAperture) {
  EXPECT_EQ(d_.Map(0x1800, 0x10000, k4K, kRw), -EINVAL);
  EXPECT_EQ(d_.Map(0x1000, 0x10800, k4K, kRw), -EINVAL);
  EXPECT_EQ(d_.Map(0x1000, 0x10000, 0x800, kRw), -EINVAL);
  EXPECT_EQ(d_.Map(0x1000, 0x10000, 0, kRw), -EINVAL);
  EXPECT_EQ(d_.Map((1ull << 39) - k4K, 0x10000, 2 * k4K, kRw), -EINVAL);
  EXPECT_EQ(d_.Map(~0ull - k4K + 1, 0x10000, 2 * k4K, kRw), -EINVAL);  // wraps
  EXPECT_EQ(d_.Map((1ull << 39) - k4K, 0x10000, k4K, kRw), 0);
  EXPECT_EQ(d_.mapping_count(), 1u);
}

TEST_F(HostIommuDomainTest, MapRejectsAnyOverlap) {
  ASSERT_EQ(d_.Map(0x10000, 0x100000, 0x4000, kRw), 0);
  EXPECT_EQ(d_.Map(0x13000, 0x200000, 0x2000, kRw), -EEXIST);  // tail
  EXPECT_EQ(d_.Map(0xf000, 0x200000, 0x2000, kRw), -EEXIST);   // head
  EXPECT_EQ(d_.Map(0x11000, 0x200000, 0x1000, kRw), -EEXIST);  // inside
  EXPECT_EQ(d_.Map(0x8000, 0x200000, 0x10000, kRw), -EEXIST);  // covers
  EXPECT_EQ(d_.Map(0xf000, 0x200000, 0x1000, kRw), 0);         // adjacent
  EXPECT_EQ(d_.Map(0x14000, 0x200000, 0x1000, kRw), 0);        // adjacent
  EXPECT_EQ(d_.mapped_bytes(), 0x6000u);
}

TEST_F(HostIommuDomainTest, TranslateChecksPermissionAndCoverage) {
  ASSERT_EQ(d_.Map(0x10000, 0x700000, 0x2000, kPermRead), 0);
  EXPECT_EQ(d_.Translate(0x10010, 16, /*write=*/false), 0x700010u);
  EXPECT_EQ(d_.Translate(0x10010, 16, /*write=*/true), std::nullopt);
  EXPECT_EQ(d_.Translate(0x11ff0, 0x20, false), std::nullopt);  // runs off
  EXPECT_EQ(d_.Translate(0xfff0, 0x20, false), std::nullopt);   // starts before
  EXPECT_EQ(d_.Translate(0x10000, 0, false), std::nullopt);
  EXPECT_EQ(d_.IovaToHva(0x11fff), 0x701fffu);
  EXPECT_EQ(d_.IovaToHva(0x12000), std::nullopt);
}

TEST_F(HostIommuDomainTest,
       TranslateSpansAdjacentMappingsOnlyIfHostContiguous) {
  ASSERT_EQ(d_.Map(0x10000, 0x700000, 0x1000, kRw), 0);
  ASSERT_EQ(d_.Map(0x11000, 0x701000, 0x1000, kRw), 0);  // contiguous
  ASSERT_EQ(d_.Map(0x12000, 0x900000, 0x1000, kRw), 0);  // not
  EXPECT_EQ(d_.Translate(0x10800, 0x1000, true), 0x700800u);
  EXPECT_EQ(d_.Translate(0x11800, 0x1000, true), std::nullopt);
}

TEST_F(HostIommuDomainTest, UnmapSplitsStraddlingMappings) {
  ASSERT_EQ(d_.Map(0x10000, 0x700000, 0x10000, kRw), 0);
  EXPECT_EQ(d_.Unmap(0x14000, 0x2000), 0x2000u);  // hole in the middle
  EXPECT_EQ(d_.mapping_count(), 2u);
  EXPECT_EQ(d_.IovaToHva(0x13fff), 0x703fffu);
  EXPECT_EQ(d_.IovaToHva(0x14000), std::nullopt);
  EXPECT_EQ(d_.IovaToHva(0x16000), 0x706000u);
  EXPECT_EQ(d_.Unmap(0x12000, 0x6000), 0x4000u);  // both ends straddled
  EXPECT_EQ(d_.IovaToHva(0x11fff), 0x701fffu);
  EXPECT_EQ(d_.IovaToHva(0x18000), 0x708000u);
  EXPECT_EQ(d_.mapped_bytes(), 0xa000u);
  EXPECT_EQ(d_.Unmap(0, ~0ull), 0xa000u);
  EXPECT_EQ(d_.mapping_count(), 0u);
  EXPECT_EQ(d_.mapped_bytes(), 0u);
}

TEST_F(HostIommuDomainTest, UnmapAllEmpties) {
  ASSERT_EQ(d_.Map(0x10000, 0x700000, 0x1000, kRw), 0);
  ASSERT_EQ(d_.Map(0x30000, 0x700000, 0x1000, kRw), 0);
  d_.UnmapAll();
  EXPECT_EQ(d_.mapping_count(), 0u);
  EXPECT_EQ(d_.Translate(0x10000, 1, false), std::nullopt);
}

}  // namespace
}  // namespace viommu::vfio::model
