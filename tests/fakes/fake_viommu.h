// tests/fakes/fake_viommu.h — a hw::Viommu for tests of what sits above
// the vIOMMU seam (PCI bus, machine wiring): every device gets `root` as
// its DMA root, and the calls are recorded.
//
//   FakeViommu iommu(root);
//   bus.SetIommu(&iommu);
//   ... plug ...; EXPECT_THAT(iommu.roots_asked(), ElementsAre(0x28));
#ifndef VIOMMU_TESTS_FAKES_FAKE_VIOMMU_H_
#define VIOMMU_TESTS_FAKES_FAKE_VIOMMU_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "viommu/hw/core/viommu.h"

namespace viommu::hw::testing {

class FakeViommu final : public Viommu {
 public:
  explicit FakeViommu(std::shared_ptr<memory::MemoryRegion> root)
      : root_(std::move(root)) {}

  std::string_view driver() const override { return "fake-iommu"; }
  std::shared_ptr<memory::MemoryRegion> DmaRoot(uint8_t /*bus*/,
                                                uint8_t devfn) override {
    roots_asked_.push_back(devfn);
    return root_;
  }
  std::string DmaSpaceName(uint8_t bus, uint8_t devfn) const override {
    return absl::StrFormat("fake-%02x:%02x.%x", bus, devfn >> 3, devfn & 7);
  }
  [[nodiscard]] absl::Status SetHostIommuDevice(
      uint8_t /*bus*/, uint8_t devfn,
      const devcore::HostIommuDevice& hiod) override {
    if (!refuse_.ok()) return refuse_;
    host_devices_.push_back({devfn, hiod.name});
    return absl::OkStatus();
  }
  void UnsetHostIommuDevice(uint8_t /*bus*/, uint8_t devfn) override {
    unset_.push_back(devfn);
  }
  void Reset() override { ++resets_; }

  // SetHostIommuDevice answers `s` from now on (OK: accepts).
  void set_refusal(absl::Status s) { refuse_ = std::move(s); }
  const std::vector<uint8_t>& roots_asked() const { return roots_asked_; }
  const std::vector<std::pair<uint8_t, std::string>>& host_devices() const {
    return host_devices_;
  }
  const std::vector<uint8_t>& unset() const { return unset_; }
  int resets() const { return resets_; }

 private:
  std::shared_ptr<memory::MemoryRegion> root_;
  absl::Status refuse_;
  std::vector<uint8_t> roots_asked_;
  std::vector<std::pair<uint8_t, std::string>> host_devices_;
  std::vector<uint8_t> unset_;
  int resets_ = 0;
};

}  // namespace viommu::hw::testing

#endif  // VIOMMU_TESTS_FAKES_FAKE_VIOMMU_H_
