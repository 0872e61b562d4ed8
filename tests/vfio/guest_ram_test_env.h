// tests/vfio/guest_ram_test_env.h — what the container-layer integration
// tests over a host backend share: a guest "system" memory tree with an
// AddressSpace "memory" over it, RAM added to it, and the edu engine of a
// simulated host device (vfio/host/model/host_device.h) driven through its
// device fd.
//
//   class MyTest : public GuestRamTestEnv {
//     ~MyTest() override { manager_.reset(); }   // containers first
//     model::ModelHost host_{DefaultHostPlatform()};
//     std::unique_ptr<VfioManager> manager_ = ...(&host_);
//   };
//   auto ram = AddRam(0, 0x400000);
//   EduCopy(host_, *manager_->DeviceFd(bdf), 0x1000, 0x3000, 22);
//
// The RAM added here is removed when the fixture goes, after the derived
// fixture (and so its containers) is gone.
#ifndef VIOMMU_TESTS_VFIO_GUEST_RAM_TEST_ENV_H_
#define VIOMMU_TESTS_VFIO_GUEST_RAM_TEST_ENV_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/vfio/host/host_backend.h"

namespace viommu::vfio {

inline HostPciAddress Bdf(const char* s) { return *HostPciAddress::Parse(s); }

class GuestRamTestEnv : public ::testing::Test {
 protected:
  // The model device's config space region (region 7) at its fd offset.
  static constexpr uint64_t kConfigOffset = uint64_t{7} << 40;

  GuestRamTestEnv()
      : root_(
            memory::MemoryRegion::CreateContainer(&sys_, "system", kSize2To64)),
        memory_(
            std::make_unique<memory::AddressSpace>(&sys_, root_, "memory")) {}
  ~GuestRamTestEnv() override {
    for (auto& mr : added_) root_->RemoveSubregion(mr.get());
  }

  std::shared_ptr<memory::MemoryRegion> AddRam(uint64_t gpa, uint64_t size) {
    auto ram = *memory::MemoryRegion::CreateRam(&sys_, "ram", size);
    root_->AddSubregion(gpa, ram);
    added_.push_back(ram);
    return ram;
  }

  // The edu of the simulated device behind `device_fd` copies `n` bytes
  // from IOVA `src` to IOVA `dst` through its buffer (bus master first).
  static void EduCopy(HostBackend& host, int device_fd, uint64_t src,
                      uint64_t dst, uint64_t n) {
    const uint16_t cmd = 0x6;  // MEMORY | MASTER
    ASSERT_EQ(host.Pwrite(device_fd, &cmd, 2, kConfigOffset + 4), 2);
    const uint64_t regs[][2] = {{0x80, src}, {0x88, 0x40000}, {0x90, n},
                                {0x98, 0x1}, {0x80, 0x40000}, {0x88, dst},
                                {0x90, n},   {0x98, 0x3}};
    for (const auto& r : regs) {
      ASSERT_EQ(host.Pwrite(device_fd, &r[1], 8, r[0]), 8);
    }
  }

  memory::MemorySystem sys_;
  std::shared_ptr<memory::MemoryRegion> root_;
  std::unique_ptr<memory::AddressSpace> memory_;
  std::vector<std::shared_ptr<memory::MemoryRegion>> added_;
};

}  // namespace viommu::vfio

#endif  // VIOMMU_TESTS_VFIO_GUEST_RAM_TEST_ENV_H_
