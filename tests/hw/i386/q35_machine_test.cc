#include "viommu/hw/i386/q35_machine.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace viommu::hw {
namespace {

using ::testing::HasSubstr;

TEST(Q35MachineTest, SmallRamSitsBelow4GiB) {
  auto m = *Q35Machine::Create({.ram_size = 256 << 20});
  EXPECT_EQ(m->ram_below_4g(), 256u << 20);
  uint32_t v = 0xabcd;
  ASSERT_TRUE(m->system_as().Write((256 << 20) - 4, &v, 4).ok());
  EXPECT_FALSE(m->system_as().Write(256 << 20, &v, 4).ok());
}

TEST(Q35MachineTest, LargeRamIsSplitAt2GiBAndContinuesAt4GiB) {
  auto m = *Q35Machine::Create({.ram_size = 3ull << 30});
  EXPECT_EQ(m->ram_below_4g(), 2ull << 30);
  uint32_t v = 0x1234, out = 0;
  ASSERT_TRUE(m->system_as().Write(kFourGiB, &v, 4).ok());
  ASSERT_TRUE(m->system_as().Read(kFourGiB, &out, 4).ok());
  EXPECT_EQ(out, 0x1234u);
  EXPECT_FALSE(m->system_as().Read(kFourGiB + (1ull << 30), &out, 4).ok());
}

TEST(Q35MachineTest, BadRamSizesAreRefused) {
  EXPECT_FALSE(Q35Machine::Create({.ram_size = 0}).ok());
  EXPECT_FALSE(Q35Machine::Create({.ram_size = 4097}).ok());
}

TEST(Q35MachineTest, UnassignedPortsReadAllOnes) {
  auto m = *Q35Machine::Create({});
  uint32_t v = 0;
  (void)m->io_as().Read(0x80, &v, 1);
  EXPECT_EQ(v, 0xffu);
}

TEST(Q35MachineTest, DeviceErrorsAreClear) {
  auto m = *Q35Machine::Create({});
  ASSERT_TRUE(
      m->AddDevice({.driver = "edu", .id = "a", .props = {{"addr", "4"}}})
          .ok());
  EXPECT_THAT(
      m->AddDevice({.driver = "edu", .props = {{"addr", "04.0"}}}).message(),
      HasSubstr("slot 4 function 0 not available"));
  EXPECT_THAT(m->AddDevice({.driver = "edu", .id = "a"}).message(),
              HasSubstr("Duplicate device ID 'a'"));
  EXPECT_THAT(
      m->AddDevice({.driver = "edu", .props = {{"addr", "20.0"}}}).message(),
      HasSubstr("doesn't take value '20.0'"));
  EXPECT_THAT(m->AddDevice({.driver = "gpu"}).message(),
              HasSubstr("'gpu' is not a valid device model name"));
  EXPECT_THAT(m->DeleteDevice("zzz").message(), HasSubstr("'zzz' not found"));
}

TEST(Q35MachineTest, DeleteRemovesTheFunction) {
  auto m = *Q35Machine::Create({});
  ASSERT_TRUE(m->AddDevice({.driver = "dma-testdev", .id = "d"}).ok());
  EXPECT_NE(m->pci_bus().FindById("d"), nullptr);
  ASSERT_TRUE(m->DeleteDevice("d").ok());
  EXPECT_EQ(m->pci_bus().FindById("d"), nullptr);
}

TEST(Q35MachineTest, EcamFollowsPciexbar) {
  auto m = *Q35Machine::Create({});
  uint32_t id = 0;
  (void)m->system_as().Read(kEcamBase, &id, 4);
  EXPECT_EQ(id, 0u);
  m->pci_bus().ConfigWrite(0, 0x60, 0xb000'0001, 4);
  (void)m->system_as().Read(kEcamBase, &id, 4);
  EXPECT_EQ(id, 0x29c08086u);
  m->Reset();
  (void)m->system_as().Read(kEcamBase, &id, 4);
  EXPECT_EQ(id, 0u);
}

}  // namespace
}  // namespace viommu::hw
