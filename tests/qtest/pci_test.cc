// PCI configuration semantics of build/viommu's q35, through CF8/CFC and
// ECAM, as a guest sees them.
#include "gtest/gtest.h"
#include "tests/qtest/viommu_fixture.h"

namespace viommu::qtest {
namespace {

class PciTest : public ViommuTest {};

TEST_F(PciTest, HostBridgeAndIch9FunctionsArePresent) {
  Start({"-m", "256M"});
  EXPECT_EQ(QPciDevice(&bus(), 0x00).ConfigReadl(0), 0x29c08086u);
  EXPECT_EQ(QPciDevice(&bus(), 0xf8).ConfigReadl(0), 0x29188086u);
  EXPECT_EQ(QPciDevice(&bus(), 0xfa).ConfigReadl(0), 0x29228086u);
  EXPECT_EQ(QPciDevice(&bus(), 0xfb).ConfigReadl(0), 0x29308086u);
  EXPECT_EQ(QPciDevice(&bus(), 0x08).ConfigReadl(0), 0xffffffffu);
}

TEST_F(PciTest, DeviceWithoutAddrTakesLowestFreeSlotFromOne) {
  Start({"-device", "edu", "-device", "edu"});
  EXPECT_EQ(QPciDevice(&bus(), 0x08).ConfigReadl(0), 0x11e81234u);
  EXPECT_EQ(QPciDevice(&bus(), 0x10).ConfigReadl(0), 0x11e81234u);
}

TEST_F(PciTest, DisabledConfigCycleReadsAllOnesAndLatchReadsBack) {
  Start({"-device", "edu,addr=04.0"});
  qts().Outl(0xcf8, 0x00002000);
  EXPECT_EQ(qts().Inl(0xcfc), 0xffffffffu);
  EXPECT_EQ(qts().Inl(0xcf8), 0x2000u);
}

TEST_F(PciTest, SubDwordConfigAccessesSelectBytes) {
  Start({"-device", "edu,addr=04.0"});
  QPciDevice edu(&bus(), 0x20);
  EXPECT_EQ(edu.ConfigReadw(0x00), 0x1234u);
  EXPECT_EQ(edu.ConfigReadw(0x02), 0x11e8u);
  EXPECT_EQ(edu.ConfigReadb(0x3d), 1u);  // INTA#
}

TEST_F(PciTest, Bar0SizesAsOneMebibyteOfMemory) {
  Start({"-device", "edu,addr=04.0"});
  QPciDevice edu(&bus(), 0x20);
  edu.ConfigWritel(0x10, 0xffffffff);
  EXPECT_EQ(edu.ConfigReadl(0x10), 0xfff00000u);
  edu.ConfigWritel(0x14, 0xffffffff);
  EXPECT_EQ(edu.ConfigReadl(0x14), 0u);
}

TEST_F(PciTest, BarIsMappedOnlyWhileMemoryDecodeIsOn) {
  Start({"-device", "edu,addr=04.0"});
  QPciDevice edu(&bus(), 0x20);
  edu.ConfigWritel(0x10, 0xfe000000);
  EXPECT_EQ(qts().Readl(0xfe000000), 0u);  // not decoded yet
  edu.ConfigWritew(0x04, 0x2);
  EXPECT_EQ(qts().Readl(0xfe000000), 0x010000edu);
  edu.ConfigWritel(0x10, 0xfd000000);  // moved
  EXPECT_EQ(qts().Readl(0xfe000000), 0u);
  EXPECT_EQ(qts().Readl(0xfd000000), 0x010000edu);
  edu.ConfigWritew(0x04, 0x0);
  EXPECT_EQ(qts().Readl(0xfd000000), 0u);
}

TEST_F(PciTest, ReadOnlyIdentificationIgnoresWrites) {
  Start({"-device", "edu,addr=04.0"});
  QPciDevice edu(&bus(), 0x20);
  edu.ConfigWritel(0x00, 0x12345678);
  EXPECT_EQ(edu.ConfigReadl(0x00), 0x11e81234u);
}

TEST_F(PciTest, MsiCapabilityIsListed) {
  Start({"-device", "edu,addr=04.0"});
  QPciDevice edu(&bus(), 0x20);
  EXPECT_EQ(edu.FindCapability(0x05), 0x40u);
}

TEST_F(PciTest, EcamAppearsWhenPciexbarIsEnabled) {
  Start({"-device", "edu,addr=04.0"});
  EXPECT_EQ(qts().Readl(0xb0020000), 0u);
  QPciDevice host(&bus(), 0);
  host.ConfigWritel(0x60, 0xb0000001);
  EXPECT_EQ(qts().Readl(0xb0020000), 0x11e81234u);
  EXPECT_EQ(qts().Readl(0xb0100000), 0xffffffffu);
}

}  // namespace
}  // namespace viommu::qtest
