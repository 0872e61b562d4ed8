// Intel VT-d behind the vIOMMU seam: owns the register block and the
// engine, maps the registers, and answers the seam with the engine.
#include "viommu/hw/iommu/vtd_viommu.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "viommu/hw/iommu/vtd_properties.h"
#include "viommu/util/status_macros.h"

namespace viommu::vtd {

absl::StatusOr<std::unique_ptr<VtdViommu>> VtdViommu::Create(
    const absl::btree_map<std::string, std::string>& props,
    const hw::ViommuHost& host) {
  VIOMMU_ASSIGN_OR_RETURN(Properties p, ParseProperties(props));
  std::unique_ptr<VtdViommu> v(new VtdViommu());
  VIOMMU_ASSIGN_OR_RETURN(v->unit_, IntelIommu::Create(p, host.system_as));
  v->system_root_ = host.system_root;
  v->registers_ = memory::MemoryRegion::CreateMmio(
      host.memory, "intel_iommu", kRegBlockSize, v->unit_.get());
  v->system_root_->AddSubregion(kRegBase, v->registers_);
  // Every function's DMA space aliases system memory with the MSI window
  // as its interrupt window (QEMU's vtd_find_add_as).
  v->engine_ = std::make_unique<VtdEngine>(
      v->unit_.get(), host.memory, host.system_as,
      VtdSharedRegions::Create(host.memory, host.system_root,
                               host.msi_region));
  v->unit_->set_observer(v->engine_.get());
  hw::ViommuHost::MsiSink sink = host.msi_sink;
  if (!sink && host.msi != nullptr) {
    hw::MsiController* msi = host.msi;
    sink = [msi](const hw::MsiMessage& msg) { msi->Deliver(msg); };
  }
  if (sink) {
    // Remapped messages reach the sink with their whole address.
    v->engine_->interrupt_window().set_message_sink(
        [sink = std::move(sink)](const InterruptMessage& m,
                                 memory::MemTxAttrs attrs) {
          hw::MsiMessage msg{.address = m.address, .data = m.data};
          if (!attrs.unspecified && attrs.has_requester_id) {
            msg.requester_id = attrs.requester_id;
          }
          sink(msg);
        });
  }
  return v;
}

VtdViommu::~VtdViommu() {
  if (unit_ != nullptr) unit_->set_observer(nullptr);
  engine_.reset();
  if (registers_ != nullptr) system_root_->RemoveSubregion(registers_.get());
  registers_.reset();
  unit_.reset();
}

std::shared_ptr<memory::MemoryRegion> VtdViommu::DmaRoot(uint8_t bus,
                                                         uint8_t devfn) {
  return engine_->DeviceRoot(bus, devfn);
}

std::string VtdViommu::DmaSpaceName(uint8_t /*bus*/, uint8_t devfn) const {
  // QEMU 7.2 names it by slot and function only.
  return absl::StrFormat("vtd-%02x.%x", devfn >> 3, devfn & 7);
}

absl::Status VtdViommu::SetHostIommuDevice(
    uint8_t bus, uint8_t devfn, const devcore::HostIommuDevice& hiod) {
  return engine_->SetHostIommuDevice(bus, devfn, hiod);
}

void VtdViommu::UnsetHostIommuDevice(uint8_t bus, uint8_t devfn) {
  engine_->UnsetHostIommuDevice(bus, devfn);
}

void VtdViommu::Reset() { unit_->Reset(); }

}  // namespace viommu::vtd
