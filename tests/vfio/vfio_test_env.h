// tests/vfio/vfio_test_env.h — the guest memory fixture shared by the VFIO
// container-layer tests: a MemorySystem with a "system" root, its "memory"
// AddressSpace, a FakeHostBackend with three devices and a VfioManager.
#ifndef VIOMMU_TESTS_VFIO_VFIO_TEST_ENV_H_
#define VIOMMU_TESTS_VFIO_VFIO_TEST_ENV_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fakes/fake_host_backend.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/vfio/vfio_manager.h"

namespace viommu::vfio::testing {

inline HostPciAddress Bdf(const std::string& s) {
  return *HostPciAddress::Parse(s);
}

class VfioTestEnv : public ::testing::Test {
 protected:
  VfioTestEnv() {
    root_ = memory::MemoryRegion::CreateContainer(&sys_, "system", kSize2To64);
    memory_ = std::make_unique<memory::AddressSpace>(&sys_, root_, "memory");
    host_.AddDevice("0000:01:00.0", 1);
    host_.AddDevice("0000:01:00.1", 1);
    host_.AddDevice("0000:02:00.0", 2);
    host_.AddDevice("0000:03:00.0", 3);
  }
  ~VfioTestEnv() override {
    manager_.reset();  // detach before the address spaces go
    for (auto& mr : added_) root_->RemoveSubregion(mr.get());
    extra_as_.clear();
  }

  void MakeManager() {
    VfioManager::Options o;
    o.host_page_size = 4096;
    o.on_error = [this](uint32_t, const absl::Status& s) {
      errors_.push_back(s);
    };
    o.on_iova_ranges_changed = [this](uint32_t, const std::vector<Range>& r) {
      range_changes_.push_back(r);
    };
    manager_ = std::make_unique<VfioManager>(&host_, std::move(o));
  }

  std::shared_ptr<memory::MemoryRegion> AddRam(uint64_t gpa, uint64_t size,
                                               const std::string& name) {
    auto ram = *memory::MemoryRegion::CreateRam(&sys_, name, size);
    root_->AddSubregion(gpa, ram);
    added_.push_back(ram);
    return ram;
  }
  void Add(uint64_t gpa, std::shared_ptr<memory::MemoryRegion> mr) {
    root_->AddSubregion(gpa, mr);
    added_.push_back(mr);
  }
  void Remove(const std::shared_ptr<memory::MemoryRegion>& mr) {
    root_->RemoveSubregion(mr.get());
    std::erase(added_, mr);
  }

  // Attaches `bdf` (type1 unless iommufd is set) to `as` (default: memory).
  [[nodiscard]] absl::StatusOr<VfioContainer*> Attach(
      const std::string& bdf, memory::AddressSpace* as = nullptr,
      const std::string& iommufd = "") {
    if (!manager_) MakeManager();
    return manager_->AttachDevice(as ? as : memory_.get(),
                                  {.host = Bdf(bdf), .iommufd = iommufd});
  }

  memory::MemorySystem sys_;
  std::shared_ptr<memory::MemoryRegion> root_;
  std::unique_ptr<memory::AddressSpace> memory_;
  std::vector<std::unique_ptr<memory::AddressSpace>> extra_as_;
  std::vector<std::shared_ptr<memory::MemoryRegion>> added_;
  FakeHostBackend host_;
  std::unique_ptr<VfioManager> manager_;
  std::vector<absl::Status> errors_;
  std::vector<std::vector<Range>> range_changes_;
};

}  // namespace viommu::vfio::testing

#endif  // VIOMMU_TESTS_VFIO_VFIO_TEST_ENV_H_
