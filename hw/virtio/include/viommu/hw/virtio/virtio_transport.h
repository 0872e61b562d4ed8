// viommu/hw/virtio/virtio_transport.h — what a virtio device backend may ask
// of the transport that exposes it to the guest (VirtioPciFunction today):
// its queues, the negotiated features, the device error state, and guest
// notifications (interrupts).
//
//   void MyDevice::QueueNotified(unsigned index) {
//     SplitVirtqueue& vq = transport()->queue(index);
//     while (vq.Pop(&elem_) == SplitVirtqueue::PopResult::kElement) {
//       ...
//       vq.Push(elem_, written);
//     }
//     transport()->NotifyQueue(index);   // one interrupt for the batch
//   }
//
// Threading: control context only, as the transport's PCI function.
#ifndef VIOMMU_HW_VIRTIO_VIRTIO_TRANSPORT_H_
#define VIOMMU_HW_VIRTIO_VIRTIO_TRANSPORT_H_

#include <cstdint>
#include <string_view>

#include "viommu/hw/virtio/virtio_regs.h"

namespace viommu::hw::virtio {

class SplitVirtqueue;

class VirtioTransport {
 public:
  VirtioTransport() = default;
  VirtioTransport(const VirtioTransport&) = delete;
  VirtioTransport& operator=(const VirtioTransport&) = delete;
  virtual ~VirtioTransport() = default;

  // Queue `index`. REQUIRES: index < the device's num_queues(). The
  // reference stays valid as long as the transport.
  virtual SplitVirtqueue& queue(unsigned index) = 0;

  // The features the driver accepted, limited to those offered (QEMU's
  // guest_features): updated at every driver_feature write until
  // FEATURES_OK is set, 0 after a reset.
  virtual uint64_t driver_features() const = 0;
  bool HasFeature(unsigned bit) const {
    return (driver_features() & FeatureBit(bit)) != 0;
  }
  virtual uint8_t device_status() const = 0;

  // True after DeviceError until the next device reset. While broken, Pop
  // finds nothing, Push writes nothing, notifications from the driver are
  // ignored and no interrupt is sent.
  virtual bool broken() const = 0;
  // True while the device may not run its queues (bus mastering off: QEMU's
  // "disabled" device); Pop finds nothing.
  virtual bool disabled() const = 0;

  // The device has seen something it cannot continue from (QEMU's
  // virtio_error): sets NEEDS_RESET when VERSION_1 was accepted and (with
  // DRIVER_OK) notifies a configuration change, then marks the device
  // broken. Counted and logged as a guest error.
  virtual void DeviceError(std::string_view what) = 0;

  // After used-ring updates of queue `index`: interrupts the driver unless
  // it suppressed the interrupt (avail flags NO_INTERRUPT, or EVENT_IDX
  // used_event): sets ISR bit 0 and sends the queue's MSI-X vector, or
  // drives INTx from the ISR. Call once per batch, or once per element to
  // reproduce a device that notifies per request (QEMU's virtio-iommu).
  virtual void NotifyQueue(unsigned index) = 0;

  // The device configuration changed (QEMU's virtio_notify_config): with
  // DRIVER_OK, sets ISR bit 1, increments config_generation and sends the
  // configuration vector (or INTx); before DRIVER_OK, nothing.
  virtual void NotifyConfigChanged() = 0;
};

}  // namespace viommu::hw::virtio

#endif  // VIOMMU_HW_VIRTIO_VIRTIO_TRANSPORT_H_
