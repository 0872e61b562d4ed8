// viommu/hw/iommu/vtd_viommu.h — Intel VT-d ("intel-iommu") behind the
// vIOMMU seam (hw/core/viommu.h): the register block (IntelIommu) mapped
// at kRegBase of the system memory container, and the translation engine
// (VtdEngine) that gives every (bus, devfn) its "vtd-SS.F" address space.
//
//   VIOMMU_ASSIGN_OR_RETURN(std::unique_ptr<VtdViommu> vtd,
//       VtdViommu::Create({{"caching-mode", "on"}}, host));
//   pci_bus.SetIommu(vtd.get());
//   vtd->unit();    // registers, for tests and fuzzers
//   vtd->engine();  // per-device address spaces, caches, stats
//
// Properties and their errors are QEMU 7.2's (vtd_properties.h); `id` is
// not a property here (the machine keeps the qdev id).
// Lifetime: `host`'s objects outlive this; the destructor unmaps the
// register block. Threading: as VtdEngine.
#ifndef VIOMMU_HW_IOMMU_VTD_VIOMMU_H_
#define VIOMMU_HW_IOMMU_VTD_VIOMMU_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "viommu/hw/core/viommu.h"
#include "viommu/hw/iommu/intel_iommu.h"
#include "viommu/hw/iommu/vtd_engine.h"

namespace viommu::vtd {

// Where q35 (and QEMU's pc machines) map the register block.
inline constexpr uint64_t kRegBase = 0xfed9'0000;

class VtdViommu final : public hw::Viommu {
 public:
  static constexpr std::string_view kDriver = "intel-iommu";

  // Errors: ParseProperties' (kInvalidArgument naming the property).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<VtdViommu>> Create(
      const absl::btree_map<std::string, std::string>& props,
      const hw::ViommuHost& host);
  VtdViommu(const VtdViommu&) = delete;
  VtdViommu& operator=(const VtdViommu&) = delete;
  ~VtdViommu() override;

  std::string_view driver() const override { return kDriver; }
  std::shared_ptr<memory::MemoryRegion> DmaRoot(uint8_t bus,
                                                uint8_t devfn) override;
  std::string DmaSpaceName(uint8_t bus, uint8_t devfn) const override;
  [[nodiscard]] absl::Status SetHostIommuDevice(
      uint8_t bus, uint8_t devfn,
      const devcore::HostIommuDevice& hiod) override;
  void UnsetHostIommuDevice(uint8_t bus, uint8_t devfn) override;
  void Reset() override;

  IntelIommu& unit() { return *unit_; }
  VtdEngine& engine() { return *engine_; }

 private:
  VtdViommu() = default;

  std::shared_ptr<memory::MemoryRegion> system_root_;
  std::unique_ptr<IntelIommu> unit_;
  std::unique_ptr<VtdEngine> engine_;
  std::shared_ptr<memory::MemoryRegion> registers_;
};

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_VIOMMU_H_
