#include "hw/iommu/virtio/virtio_iommu_endpoint.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "viommu/util/types.h"

namespace viommu::virtio_iommu {

using memory::MemoryRegion;

memory::IommuTlbEntry EndpointSpace::Model::Translate(
    Iova iova, memory::IommuPerm access, int /*iommu_idx*/) {
  return iommu_->Translate(sid_, iova, access);
}

absl::Status EndpointSpace::Model::Replay(int /*iommu_idx*/,
                                          memory::ReplaySink emit) {
  iommu_->Replay(sid_, emit);
  return absl::OkStatus();
}

absl::Status EndpointSpace::Model::NotifyFlagChanged(
    memory::NotifierFlags /*old_flags*/, memory::NotifierFlags new_flags) {
  if ((new_flags & memory::kNotifyDevIotlbUnmap) != 0) {
    return absl::FailedPreconditionError(
        "virtio-iommu-pci does not support dev-iotlb yet");
  }
  return absl::OkStatus();
}

std::string EndpointSpace::Name(uint8_t devfn) {
  return absl::StrFormat("virtio-iommu-%02x.%x", devfn >> 3, devfn & 7);
}

EndpointSpace::EndpointSpace(memory::MemorySystem* sys,
                             std::shared_ptr<MemoryRegion> system_root,
                             uint8_t bus, uint8_t devfn, VirtioIommu* iommu,
                             bool bypassed)
    : sys_(sys),
      model_(iommu, static_cast<uint16_t>(bus << 8 | devfn)),
      bypassed_(bypassed) {
  const std::string name = Name(devfn);
  memory::MemorySystem::Transaction txn(sys);
  root_ = MemoryRegion::CreateContainer(sys, name, kSize2To64);
  bypass_ = MemoryRegion::CreateAlias(sys, name + "-bypass",
                                      std::move(system_root), 0, kSize2To64);
  iommu_ = MemoryRegion::CreateIommu(sys, name + "-iommu", kSize2To64, &model_);
  bypass_->SetEnabled(bypassed);
  iommu_->SetEnabled(!bypassed);
  root_->AddSubregion(0, bypass_);
  root_->AddSubregion(0, iommu_);
}

EndpointSpace::~EndpointSpace() {
  memory::MemorySystem::Transaction txn(sys_);
  root_->RemoveSubregion(bypass_.get());
  root_->RemoveSubregion(iommu_.get());
}

void EndpointSpace::SetBypass(bool bypassed) {
  if (bypassed == bypassed_) return;
  bypassed_ = bypassed;
  memory::MemorySystem::Transaction txn(sys_);
  // Disable first so no view shows both.
  if (bypassed) {
    iommu_->SetEnabled(false);
    bypass_->SetEnabled(true);
  } else {
    bypass_->SetEnabled(false);
    iommu_->SetEnabled(true);
  }
}

}  // namespace viommu::virtio_iommu
