// viommu/hw/virtio/virtio_device.h — the interface a virtio device type
// implements (QEMU's VirtioDeviceClass): what it is (device id, features,
// queues, configuration space) and what it does when the driver kicks a
// queue, writes its configuration or resets it. A transport
// (VirtioPciFunction) owns the device and exposes it to the guest.
//
//   class EchoDevice final : public VirtioDevice {
//    public:
//     uint16_t device_id() const override { return 42; }
//     uint64_t device_features() const override { return 0; }
//     unsigned num_queues() const override { return 1; }
//     uint16_t queue_max_size(unsigned) const override { return 256; }
//     uint32_t config_size() const override { return 0; }
//     void QueueNotified(unsigned index) override;   // see virtio_transport.h
//   };
//   auto fn = VirtioPciFunction::Create(std::make_unique<EchoDevice>(), opts);
//
// Call order: Bind (by the transport, once, before anything else), Realize
// when the function is plugged, then any number of ReadConfig /
// WriteConfig / QueueNotified / StatusChanged / ValidateFeatures /
// QueueReset / Reset, then Unrealize when it is unplugged (a later plug
// realizes again). Every callback runs synchronously inside the guest's
// register access that caused it (the notify write returns after
// QueueNotified did); none may re-enter the transport's MMIO.
//
// Threading: control context only.
#ifndef VIOMMU_HW_VIRTIO_VIRTIO_DEVICE_H_
#define VIOMMU_HW_VIRTIO_VIRTIO_DEVICE_H_

#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "viommu/hw/virtio/virtio_transport.h"

namespace viommu::hw::virtio {

class VirtioDevice {
 public:
  VirtioDevice() = default;
  VirtioDevice(const VirtioDevice&) = delete;
  VirtioDevice& operator=(const VirtioDevice&) = delete;
  virtual ~VirtioDevice() = default;

  // --- identity (constant for the device's lifetime) ---
  // The virtio device id (§5: 23 for the IOMMU).
  virtual uint16_t device_id() const = 0;
  // Device-type feature bits. The transport adds its own (VERSION_1 and,
  // by option, INDIRECT_DESC, EVENT_IDX, RING_RESET) to what it offers.
  virtual uint64_t device_features() const = 0;
  // Queues, 1..kMaxQueues, each of 1..kMaxQueueSize entries at most (the
  // size after reset; QEMU lets the driver pick any 1..1024).
  virtual unsigned num_queues() const = 0;
  virtual uint16_t queue_max_size(unsigned index) const = 0;
  // Bytes of device configuration space, <= 4096.
  virtual uint32_t config_size() const = 0;

  // --- lifetime ---
  // Optional: the function was plugged (DMA and interrupts work from now).
  // An error fails the plug.
  [[nodiscard]] virtual absl::Status Realize() { return absl::OkStatus(); }
  // Optional: the function is leaving the bus.
  virtual void Unrealize() {}

  // --- configuration space (QEMU's get_config / set_config) ---
  // Optional. Before every driver read of the configuration space: bring
  // `config` (config_size() bytes, the transport's copy) up to date. The
  // default leaves it as it is.
  virtual void ReadConfig(std::span<uint8_t> /*config*/) {}
  // Optional. The driver stored `size` bytes at `offset` in `config` (the
  // transport's copy, which still holds what the last ReadConfig left in the
  // other bytes). The default ignores writes.
  virtual void WriteConfig(std::span<const uint8_t> /*config*/,
                           uint32_t /*offset*/, unsigned /*size*/) {}

  // --- the driver's actions ---
  // Required. The driver notified queue `index` (< num_queues(), enabled,
  // the device not broken). Process what is available now; the used ring
  // must be final when this returns.
  virtual void QueueNotified(unsigned index) = 0;
  // Optional. Whether the device accepts `features` (already checked: a
  // subset of the offered bits with VERSION_1). An error refuses
  // FEATURES_OK.
  [[nodiscard]] virtual absl::Status ValidateFeatures(uint64_t /*features*/) {
    return absl::OkStatus();
  }
  // Optional. The device status changed from `old_status` to `status` (not
  // called for the reset write of 0, see Reset).
  virtual void StatusChanged(uint8_t /*old_status*/, uint8_t /*status*/) {}
  // Optional. Device reset: the driver wrote 0 to the status, or the
  // function was reset or re-plugged. Called before the transport resets
  // its queues and state.
  virtual void Reset() {}
  // Optional. The driver reset queue `index` alone (VIRTIO_F_RING_RESET).
  virtual void QueueReset(unsigned /*index*/) {}

  // Set once by the transport that owns this device (not owned; outlives
  // the device's use of it).
  void Bind(VirtioTransport* transport) { transport_ = transport; }
  VirtioTransport* transport() const { return transport_; }

 private:
  VirtioTransport* transport_ = nullptr;
};

}  // namespace viommu::hw::virtio

#endif  // VIOMMU_HW_VIRTIO_VIRTIO_DEVICE_H_
