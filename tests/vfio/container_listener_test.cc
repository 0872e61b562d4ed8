// The VFIO listener's section rules (QEMU's vfio_listener_region_add/del)
// against FakeHostBackend: RAM, rounding, readonly, ram_device, skips,
// holes in the IOVA ranges.
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_mmio_device.h"
#include "tests/vfio/vfio_test_env.h"
#include "viommu/vfio/vfio_status.h"

namespace viommu::vfio::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

uintptr_t HostOf(const std::shared_ptr<memory::MemoryRegion>& mr) {
  return reinterpret_cast<uintptr_t>(mr->host());
}

class ContainerListenerTest : public VfioTestEnv {};

TEST_F(ContainerListenerTest, RamSectionIsMappedAndUnmappedOnRegionDel) {
  auto ram = AddRam(0, 0x100000, "ram");
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  auto m = host_.AllMappings();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].size, 0x100000u);
  EXPECT_EQ(m[0].vaddr, HostOf(ram));
  EXPECT_FALSE(m[0].readonly);
  EXPECT_EQ((*c)->mappings().size(), 1u);

  Remove(ram);
  EXPECT_EQ(host_.HostMappingCount(), 0u);
  EXPECT_TRUE((*c)->mappings().empty());
}

TEST_F(ContainerListenerTest, SectionIsRoundedToHostPages) {
  auto ram = *memory::MemoryRegion::CreateRam(&sys_, "ram", 0x10000);
  // Shows ram[0x800, 0x3800) at GPA 0x10800: same page offset, partial
  // pages at both ends.
  Add(0x10800,
      memory::MemoryRegion::CreateAlias(&sys_, "part", ram, 0x800, 0x3000));
  ASSERT_TRUE(Attach("0000:01:00.0").ok());
  auto m = host_.AllMappings();
  ASSERT_EQ(m.size(), 1u);
  ASSERT_TRUE(m.count(0x11000));
  EXPECT_EQ(m[0x11000].size, 0x2000u);
  EXPECT_EQ(m[0x11000].vaddr, HostOf(ram) + 0x1000);
}

TEST_F(ContainerListenerTest, SectionSmallerThanAPageMapsNothing) {
  auto ram = *memory::MemoryRegion::CreateRam(&sys_, "ram", 0x10000);
  Add(0x20800,
      memory::MemoryRegion::CreateAlias(&sys_, "tiny", ram, 0x800, 0x400));
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(host_.CallCount(uapi::kVfioIommuMapDma), 0);
  EXPECT_THAT((*c)->skipped(), IsEmpty());
}

TEST_F(ContainerListenerTest, ReadonlySectionGetsReadOnlyMapping) {
  auto rom = *memory::MemoryRegion::CreateRam(&sys_, "rom", 0x2000);
  rom->SetReadonly(true);
  Add(0x40000, rom);
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  auto m = host_.AllMappings();
  ASSERT_TRUE(m.count(0x40000));
  EXPECT_TRUE(m[0x40000].readonly);
  EXPECT_TRUE((*c)->mappings().at(0x40000).readonly);
}

class RamDeviceTest : public ContainerListenerTest {
 protected:
  RamDeviceTest()
      : bar_(static_cast<uint8_t*>(std::aligned_alloc(0x10000, 0x10000))) {}
  ~RamDeviceTest() override {
    manager_.reset();
    for (auto& mr : added_) root_->RemoveSubregion(mr.get());
    added_.clear();
    std::free(bar_);
  }
  std::shared_ptr<memory::MemoryRegion> Bar(uint64_t size) {
    return memory::MemoryRegion::CreateRamDevice(&sys_, "bar2", size, bar_);
  }
  uint8_t* bar_;
};

TEST_F(RamDeviceTest, AlignedRamDeviceIsMapped) {
  Add(0x800000000, Bar(0x10000));
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  auto m = host_.AllMappings();
  ASSERT_TRUE(m.count(0x800000000));
  EXPECT_EQ(m[0x800000000].vaddr, reinterpret_cast<uintptr_t>(bar_));
}

TEST_F(RamDeviceTest, RamDeviceNotAlignedToTheIommuPageIsSkipped) {
  host_.pgsizes = 0x10000;  // 64 KiB host IOMMU pages
  Add(0x800000000, Bar(0x1000));
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(host_.HostMappingCount(), 0u);
  EXPECT_THAT((*c)->skipped(),
              ElementsAre(SkippedRange{0x800000000, 0x800000fff,
                                       "ram-device-misaligned"}));
}

TEST_F(RamDeviceTest, RamDeviceMapFailureIsAWarningNotAnAttachFailure) {
  AddRam(0, 0x100000, "ram");
  Add(0x800000000, Bar(0x10000));
  const uintptr_t bar = reinterpret_cast<uintptr_t>(bar_);
  host_.map_hook = [bar](uint64_t, uint64_t, uint64_t vaddr) {
    return vaddr == bar ? -EFAULT : 0;
  };
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(host_.HostMappingCount(), 1u);  // the RAM only
  EXPECT_EQ((*c)->stats().warnings, 1u);
  EXPECT_EQ((*c)->stats().errors, 0u);
  EXPECT_EQ(StatusErrno((*c)->last_error()), EFAULT);
  EXPECT_THAT((*c)->skipped(),
              ElementsAre(SkippedRange{0x800000000, 0x80000ffff,
                                       "ram-device-map-failed"}));
}

TEST_F(ContainerListenerTest, MmioAndBit63SectionsAreSkippedAndReported) {
  memory::testing::FakeMmioDevice regs(0x1000);
  Add(0xfed00000,
      memory::MemoryRegion::CreateMmio(&sys_, "regs", 0x1000, &regs));
  AddRam(0x8000000000000000ull, 0x1000, "high");
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(host_.CallCount(uapi::kVfioIommuMapDma), 0);
  EXPECT_THAT((*c)->skipped(),
              ElementsAre(SkippedRange{0xfed00000, 0xfed00fff, "mmio"},
                          SkippedRange{0x8000000000000000ull,
                                       0x8000000000000fffull, "bit63"}));
  manager_.reset();  // before regs goes
}

TEST_F(ContainerListenerTest, PageOffsetMismatchIsSkippedAndReported) {
  auto ram = *memory::MemoryRegion::CreateRam(&sys_, "ram", 0x10000);
  Add(0x20000,
      memory::MemoryRegion::CreateAlias(&sys_, "shifted", ram, 0x800, 0x2000));
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(host_.HostMappingCount(), 0u);
  EXPECT_THAT((*c)->skipped(), ElementsAre(SkippedRange{
                                   0x20000, 0x21fff, "page-offset-mismatch"}));
  EXPECT_EQ((*c)->stats().warnings, 1u);
}

TEST_F(ContainerListenerTest, RamCrossingAHoleIsSplitAndTheHoleReported) {
  host_.iova_ranges = {{0, 0xfedfffff}, {0xfef00000, (1ull << 48) - 1}};
  auto ram = AddRam(0xfe000000, 0x2000000, "ram");
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  auto m = host_.AllMappings();
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0xfe000000].size, 0xe00000u);
  EXPECT_EQ(m[0xfef00000].size, 0x1100000u);
  EXPECT_EQ(m[0xfef00000].vaddr, HostOf(ram) + 0xf00000);
  EXPECT_THAT(
      (*c)->skipped(),
      ElementsAre(SkippedRange{0xfee00000, 0xfeefffff, "outside-iova-ranges"}));
  Remove(ram);
  EXPECT_EQ(host_.HostMappingCount(), 0u);
  EXPECT_THAT((*c)->skipped(), IsEmpty());
}

TEST_F(ContainerListenerTest, RamBeyondTheApertureIsSkipped) {
  host_.iova_ranges = {{0, (1ull << 39) - 1}};
  AddRam(1ull << 40, 0x1000, "far");
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(host_.HostMappingCount(), 0u);
  EXPECT_THAT((*c)->skipped(),
              ElementsAre(SkippedRange{1ull << 40, (1ull << 40) + 0xfff,
                                       "outside-iova-ranges"}));
}

TEST_F(ContainerListenerTest, RegionAddedAfterAttachIsMapped) {
  auto c = Attach("0000:01:00.0");
  ASSERT_TRUE(c.ok()) << c.status();
  auto ram = AddRam(0x100000, 0x4000, "late");
  auto m = host_.AllMappings();
  ASSERT_TRUE(m.count(0x100000));
  EXPECT_EQ(m[0x100000].size, 0x4000u);
  EXPECT_EQ(m[0x100000].vaddr, HostOf(ram));
}

}  // namespace
}  // namespace viommu::vfio::testing
