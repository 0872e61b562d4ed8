// hw/iommu/virtio/virtio_iommu_function.h — the virtio backend of
// virtio-iommu-pci (QEMU's VirtIOIOMMU as a VirtioDevice): identity,
// features, the two queues and the configuration space, forwarding
// requests and resets to the VirtioIommu it refers to and delivering its
// fault records on the event queue. Private to hw/iommu/virtio.
//
//   auto dev = std::make_unique<VirtioIommuBackend>(&viommu);
//   VirtioPciFunction::Create(std::move(dev), {.type_name = "virtio-iommu-pci", ...});
//
// Lifetime: `iommu` (not owned) outlives this; the backend is the
// VirtioIommu's fault sink while realized and never after its destruction.
// Threading: control context only.
#ifndef VIOMMU_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_FUNCTION_H_
#define VIOMMU_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_FUNCTION_H_

#include <array>
#include <cstdint>
#include <span>

#include "viommu/hw/iommu/virtio/virtio_iommu.h"
#include "viommu/hw/virtio/split_virtqueue.h"
#include "viommu/hw/virtio/virtio_device.h"

namespace viommu::virtio_iommu {

class VirtioIommuBackend final : public hw::virtio::VirtioDevice,
                                 public FaultSink {
 public:
  explicit VirtioIommuBackend(VirtioIommu* iommu) : iommu_(iommu) {}
  ~VirtioIommuBackend() override;

  uint16_t device_id() const override { return kDeviceId; }
  uint64_t device_features() const override { return kOfferedFeatures; }
  unsigned num_queues() const override { return 2; }
  uint16_t queue_max_size(unsigned) const override { return kQueueSize; }
  uint32_t config_size() const override { return kConfigSize; }

  // Queues read guest memory untranslated: virtio-iommu offers no
  // ACCESS_PLATFORM, so QEMU gives it address_space_memory.
  [[nodiscard]] absl::Status Realize() override;
  void Unrealize() override;
  void ReadConfig(std::span<uint8_t> config) override;
  void WriteConfig(std::span<const uint8_t> config, uint32_t offset,
                   unsigned size) override;
  // requestq: every available request, answered before this returns, one
  // interrupt per request (QEMU). eventq: nothing (buffers wait for
  // faults).
  void QueueNotified(unsigned index) override;
  // FEATURES_OK freezes the config's page_size_mask and input_range.
  void StatusChanged(uint8_t old_status, uint8_t status) override;
  void Reset() override;

  // FaultSink: takes the next event buffer; none: dropped; smaller than a
  // record: device error (QEMU 7.2's virtio_error), dropped.
  bool DeliverFault(std::span<const uint8_t, kFaultSize> record) override;

 private:
  VirtioIommu* iommu_;  // not owned
  hw::virtio::VirtqElement elem_;
  hw::virtio::VirtqElement event_elem_;
  std::array<uint8_t, kProbeReqSize> request_{};
  std::array<uint8_t, kProbeReplySize> reply_{};
};

}  // namespace viommu::virtio_iommu

#endif  // VIOMMU_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_FUNCTION_H_
