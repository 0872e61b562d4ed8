#include "hw/iommu/virtio/virtio_iommu_function.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "viommu/hw/virtio/virtio_pci_function.h"
#include "viommu/hw/virtio/virtio_regs.h"
#include "viommu/hw/virtio/virtio_transport.h"

namespace viommu::virtio_iommu {

using hw::virtio::SplitVirtqueue;

VirtioIommuBackend::~VirtioIommuBackend() {
  if (iommu_->fault_sink() == this) iommu_->SetFaultSink(nullptr);
}

absl::Status VirtioIommuBackend::Realize() {
  for (unsigned q = 0; q < num_queues(); ++q) {
    transport()->queue(q).SetDma(iommu_->host().system_as,
                                 memory::MemTxAttrs());
  }
  iommu_->SetFaultSink(this);
  return absl::OkStatus();
}

void VirtioIommuBackend::Unrealize() {
  if (iommu_->fault_sink() == this) iommu_->SetFaultSink(nullptr);
}

void VirtioIommuBackend::ReadConfig(std::span<uint8_t> config) {
  iommu_->ReadConfig(config);
}

void VirtioIommuBackend::WriteConfig(std::span<const uint8_t> config,
                                     uint32_t /*offset*/, unsigned /*size*/) {
  // QEMU 7.2 compares the bypass byte of the whole stored config, whatever
  // bytes the driver wrote.
  if (config.size() < kConfigSize) return;
  absl::Status s = iommu_->WriteBypass(
      config[static_cast<uint32_t>(ConfigOffset::kBypass)],
      transport()->HasFeature(kFeatureBypassConfig));
  if (!s.ok()) {
    transport()->DeviceError(
        std::string_view(s.message().data(), s.message().size()));
  }
}

void VirtioIommuBackend::QueueNotified(unsigned index) {
  if (index != kRequestQueue) return;
  SplitVirtqueue& vq = transport()->queue(index);
  while (vq.Pop(&elem_) == SplitVirtqueue::PopResult::kElement) {
    if (elem_.readable_bytes() < kHeadSize ||
        elem_.writable_bytes() < kTailSize) {
      // QEMU 7.2: virtio_error, the element is dropped without a used
      // entry, the device needs a reset.
      transport()->DeviceError("virtio-iommu request too short");
      vq.Discard(elem_);
      return;
    }
    const size_t n = vq.ReadFrom(elem_, 0, request_.data(), request_.size());
    const RequestResult r = iommu_->HandleRequest(
        std::span<const uint8_t>(request_.data(), n), elem_.writable_bytes(),
        reply_);
    const size_t written = vq.WriteTo(
        elem_, 0, reply_.data(),
        std::min<uint64_t>(r.write_len, elem_.writable_bytes()));
    (void)written;
    vq.Push(elem_, r.used_len);
    transport()->NotifyQueue(index);
  }
}

void VirtioIommuBackend::StatusChanged(uint8_t old_status, uint8_t status) {
  if (!(old_status & hw::virtio::kStatusFeaturesOk) &&
      (status & hw::virtio::kStatusFeaturesOk)) {
    iommu_->FreezeGeometry();
  }
}

void VirtioIommuBackend::Reset() { iommu_->DeviceReset(); }

bool VirtioIommuBackend::DeliverFault(
    std::span<const uint8_t, kFaultSize> record) {
  if (transport() == nullptr) return false;
  SplitVirtqueue& vq = transport()->queue(kEventQueue);
  if (vq.Pop(&event_elem_) != SplitVirtqueue::PopResult::kElement) {
    return false;
  }
  if (event_elem_.writable_bytes() < kFaultSize) {
    transport()->DeviceError("virtio-iommu event buffer of wrong size");
    vq.Discard(event_elem_);
    return false;
  }
  vq.WriteTo(event_elem_, 0, record.data(), record.size());
  vq.Push(event_elem_, kFaultSize);
  transport()->NotifyQueue(kEventQueue);
  return true;
}

absl::StatusOr<std::unique_ptr<hw::pci::PciDevice>>
VirtioIommu::CreateFunction() {
  hw::virtio::VirtioPciOptions opts{
      .type_name = std::string(kDriverName),
      .class_code = 0x00ff00,
      .msix_vectors = 0,  // QEMU 7.2's virtio-iommu-pci has no MSI-X
      .indirect_desc = props_.indirect_desc,
      .event_idx = props_.event_idx,
      .queue_reset = props_.queue_reset,
      .hotpluggable = false};
  auto fn = hw::virtio::VirtioPciFunction::Create(
      std::make_unique<VirtioIommuBackend>(this), std::move(opts));
  if (!fn.ok()) return fn.status();
  return std::unique_ptr<hw::pci::PciDevice>(*std::move(fn));
}

}  // namespace viommu::virtio_iommu
