// Host IOMMU devices behind VT-d through the q35 bus hook
// (PciBus::SetIommuDevice -> VtdEngine::SetHostIommuDevice): caching mode
// required, aw-bits no wider than the host, one per function.
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "viommu/devcore/host_iommu_device.h"
#include "viommu/hw/i386/q35_machine.h"

namespace viommu::hw {
namespace {

using DeviceProps = absl::btree_map<std::string, std::string>;

std::unique_ptr<Q35Machine> MachineWith(DeviceProps iommu_props) {
  auto m = Q35Machine::Create({.ram_size = 64 << 20});
  EXPECT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(
      (*m)->AddDevice({.driver = "intel-iommu", .props = iommu_props}).ok());
  return *std::move(m);
}

devcore::HostIommuDevice Hiod(uint8_t aw_bits) {
  return {.name = "vfio-pci 'v0' (host 0000:01:00.0)",
          .aw_bits = aw_bits,
          .page_size_mask = 0x40201000,
          .iova_ranges = {{0, (uint64_t{1} << aw_bits) - 1}}};
}

TEST(VtdHostIommuTest, NoIommuAcceptsEveryDevice) {
  auto m = Q35Machine::Create({.ram_size = 64 << 20});
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE((*m)->pci_bus().SetIommuDevice(0x20, Hiod(39)).ok());
}

TEST(VtdHostIommuTest, CachingModeOffIsRefusedNamingDeviceAndProperty) {
  auto m = MachineWith({});
  absl::Status s = m->pci_bus().SetIommuDevice(0x20, Hiod(48));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(s.message(), "vfio-pci 'v0'")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "caching-mode=on")) << s;
  EXPECT_EQ(m->vtd_engine()->HostIommuDeviceOf(0, 0x20), nullptr);
}

TEST(VtdHostIommuTest, GuestAddressWidthWiderThanHostIsRefused) {
  auto m = MachineWith({{"caching-mode", "on"}});
  auto m48 = MachineWith({{"caching-mode", "on"}, {"aw-bits", "48"}});
  absl::Status s = m48->pci_bus().SetIommuDevice(0x20, Hiod(39));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "aw-bits=48")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "(39 bits)")) << s;
  // aw-bits=39 under a 39-bit host is fine.
  EXPECT_TRUE(m->pci_bus().SetIommuDevice(0x20, Hiod(39)).ok());
}

TEST(VtdHostIommuTest, SetKeepsTheFactsUntilUnset) {
  auto m = MachineWith({{"caching-mode", "on"}});
  ASSERT_TRUE(m->pci_bus().SetIommuDevice(0x20, Hiod(48)).ok());
  const devcore::HostIommuDevice* h =
      m->vtd_engine()->HostIommuDeviceOf(0, 0x20);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->aw_bits, 48);
  EXPECT_EQ(h->page_size_mask, 0x40201000u);
  EXPECT_EQ(m->pci_bus().SetIommuDevice(0x20, Hiod(48)).code(),
            absl::StatusCode::kAlreadyExists);
  m->pci_bus().UnsetIommuDevice(0x20);
  EXPECT_EQ(m->vtd_engine()->HostIommuDeviceOf(0, 0x20), nullptr);
  EXPECT_TRUE(m->pci_bus().SetIommuDevice(0x20, Hiod(48)).ok());
}

}  // namespace
}  // namespace viommu::hw
