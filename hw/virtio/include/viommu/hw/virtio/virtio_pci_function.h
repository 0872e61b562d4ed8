// viommu/hw/virtio/virtio_pci_function.h — the virtio 1.x modern PCI
// transport (VIRTIO 1.2 §4.1): a PCI function that exposes a VirtioDevice
// backend to the guest byte for byte as QEMU 7.2's virtio-pci does for a
// modern-only device (virtio-iommu-pci: disable-legacy forced).
//
//   VirtioPciOptions opts{.type_name = "virtio-iommu-pci",
//                         .class_code = 0x00ff00, .msix_vectors = 0};
//   absl::StatusOr<std::unique_ptr<VirtioPciFunction>> fn =
//       VirtioPciFunction::Create(std::make_unique<MyDevice>(), opts);
//   bus.Plug(*std::move(fn), /*devfn=*/0x18);
//
// How a backend uses it: implement VirtioDevice (virtio_device.h). The
// function calls Bind() with itself as the VirtioTransport, asks the device
// for its id, features, queues and config size once, in Create. When the
// driver writes a queue's notify register, QueueNotified(index) runs inside
// that MMIO write; the device pops chains with transport()->queue(index)
// (SplitVirtqueue), copies request bytes out with ReadFrom, writes replies
// with WriteTo, returns each chain with Push, and calls NotifyQueue(index)
// after the batch (or after each element) to interrupt the driver. A
// malformed chain is rejected by Pop itself (NEEDS_RESET); a device that
// finds a request it cannot handle calls DeviceError.
//
// What the guest sees (measured on QEMU 7.2 over qtest):
//  * Vendor 1af4, device 0x1040 + device id, revision 1, class from the
//    options, subsystem 1af4:1100, INTA#, status CAP_LIST; 256-byte
//    conventional config space (root bus).
//  * BAR4: 16 KiB, 64-bit prefetchable memory: common config at +0x0,
//    ISR at +0x1000, device config at +0x2000, notify at +0x3000 (queue n
//    at +0x3000 + 4n), each 4 KiB; accesses of 1, 2 or 4 bytes (8 split in
//    two), naturally aligned.
//  * Capabilities from 0x40: common (0x40), ISR (0x50), device (0x60),
//    notify (0x70, multiplier 4), PCI configuration access (0x84; bar,
//    offset, length and data writable; the bar byte is not checked, as in
//    QEMU), then MSI-X (0x98) when there are vectors.
//  * MSI-X (msix_vectors, default queues + 1; 0 = none, which is what
//    QEMU 7.2's virtio-iommu-pci has): table and PBA in a 4 KiB BAR1.
//    Without MSI-X enabled, INTx follows ISR bit 0.
//
// Register semantics (QEMU 7.2's, except where marked "spec"):
//  * Each common-config field answers only at its own offset (other bytes
//    read 0); reads are the field's value cut to the access size.
//  * device_feature: windows 0 and 1 of the offered bits (device bits +
//    VERSION_1 + INDIRECT_DESC/EVENT_IDX/RING_RESET by option), others 0.
//    driver_feature: the written words read back as written; the
//    negotiated set is updated on each write until FEATURES_OK.
//  * device_status: the written byte is stored as is, except that setting
//    FEATURES_OK is refused (the whole write ignored) when the driver
//    accepted a bit that was not offered, lacks VERSION_1, or the device's
//    ValidateFeatures fails (spec; QEMU 7.2 accepts both). Writing 0
//    resets the device: backend Reset, every queue, status, features, ISR,
//    vectors, queue_select; not the feature select registers, the driver's
//    feature words or config_generation.
//  * queue_select below 1024 (up to 1023 even past num_queues); queue_size
//    1..1024 accepted (0 and larger values ignored); queue_enable 1 applies
//    the size and ring addresses (written before, read back from the
//    function's copy), any other value is a device error; queue_reset 1
//    resets one queue (reads 0).
//  * msix_config / queue_msix_vector: a vector past the table reads back
//    0xffff (NO_VECTOR).
//  * ISR: any read of the 4 KiB area returns the bits, clears them and
//    deasserts INTx. Device config: reads past config_size return all
//    ones, writes there are dropped; every read first calls ReadConfig.
//  * Notify: a write anywhere in queue n's 4 bytes (value ignored) runs
//    QueueNotified(n) when n < num_queues, the queue has a descriptor
//    address and the device is not broken; reads return 0. A notify that
//    arrives while one is being processed (DMA into the function's own
//    BAR) is refused and counted.
//  * Clearing COMMAND.MASTER (a write covering byte 0x04) clears DRIVER_OK
//    and stops the queues (Pop finds nothing) until it is set again.
//  * DeviceError (QEMU's virtio_error): NEEDS_RESET if VERSION_1 was
//    accepted, and with DRIVER_OK ISR |= 3, config_generation + 1 and the
//    configuration interrupt; then broken: no further interrupts.
//
// Threading: control context only (config and MMIO accesses, reset).
#ifndef VIOMMU_HW_VIRTIO_VIRTIO_PCI_FUNCTION_H_
#define VIOMMU_HW_VIRTIO_VIRTIO_PCI_FUNCTION_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "viommu/hw/pci/pci_device.h"
#include "viommu/hw/virtio/split_virtqueue.h"
#include "viommu/hw/virtio/virtio_device.h"
#include "viommu/hw/virtio/virtio_regs.h"
#include "viommu/hw/virtio/virtio_transport.h"

namespace viommu::hw::virtio {

class VirtioPciMsix;

struct VirtioPciOptions {
  std::string type_name;           // the -device name, "virtio-iommu-pci"
  uint32_t class_code = 0x00ff00;  // 24 bits; QEMU's PCI_CLASS_OTHERS
  // MSI-X vectors in BAR1: nullopt = num_queues + 1, 0 = no MSI-X.
  std::optional<unsigned> msix_vectors;
  // Transport features offered besides VERSION_1 (QEMU 7.2 defaults).
  bool indirect_desc = true;
  bool event_idx = true;
  bool queue_reset = true;
  bool hotpluggable = true;
};

// BAR4 layout.
inline constexpr int kVirtioPciModernBar = 4;
inline constexpr int kVirtioPciMsixBar = 1;
inline constexpr uint64_t kVirtioPciAreaSize = 0x1000;
inline constexpr uint64_t kVirtioPciCommonOffset = 0x0000;
inline constexpr uint64_t kVirtioPciIsrOffset = 0x1000;
inline constexpr uint64_t kVirtioPciDeviceOffset = 0x2000;
inline constexpr uint64_t kVirtioPciNotifyOffset = 0x3000;
inline constexpr uint64_t kVirtioPciModernBarSize = 0x4000;
inline constexpr uint32_t kVirtioPciNotifyMultiplier = 4;

class VirtioPciFunction final : public pci::PciDevice, public VirtioTransport {
 public:
  // Errors: kInvalidArgument (no type name, 0 or more than kMaxQueues
  // queues, a queue size outside 1..kMaxQueueSize, config larger than
  // 4 KiB, more than 2048 MSI-X vectors).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<VirtioPciFunction>>
  Create(std::unique_ptr<VirtioDevice> device, VirtioPciOptions options);
  ~VirtioPciFunction() override;

  VirtioDevice* device() const { return device_.get(); }
  // Everything offered in device_feature.
  uint64_t offered_features() const { return offered_; }
  bool hotpluggable() const override { return options_.hotpluggable; }

  // Config access with the PCI configuration access capability and the
  // COMMAND.MASTER rule (see file comment).
  uint32_t ConfigRead(uint32_t offset, unsigned size) override;
  void ConfigWrite(uint32_t offset, uint32_t value, unsigned size) override;
  // PCI reset: device reset, then the PCI function's reset and MSI-X's.
  void Reset() override;

  // VirtioTransport.
  SplitVirtqueue& queue(unsigned index) override;
  uint64_t driver_features() const override { return features_; }
  uint8_t device_status() const override { return status_; }
  bool broken() const override { return broken_; }
  bool disabled() const override { return disabled_; }
  void DeviceError(std::string_view what) override;
  void NotifyQueue(unsigned index) override;
  void NotifyConfigChanged() override;

  // Observability (tests, x-query commands).
  uint8_t isr() const { return isr_; }
  uint8_t config_generation() const { return generation_; }
  uint64_t device_error_count() const { return device_errors_; }
  const std::string& last_device_error() const { return last_error_; }
  uint64_t refused_reentrant_count() const { return refused_reentrant_; }
  bool msix_present() const { return msix_ != nullptr; }
  bool msix_enabled() const;
  uint8_t msix_cap() const;

 protected:
  [[nodiscard]] absl::Status Realize() override;
  void Unrealize() override;

 private:
  class AreaOps;
  enum class Area : uint8_t { kCommon, kIsr, kDevice, kNotify };
  // The function's copy of what the driver programmed per queue_select
  // value (QEMU's VirtIOPCIQueue plus the vector).
  struct QueueRegs {
    uint16_t num = 0;  // last queue_size written (applied again on enable)
    bool enabled = false;
    uint16_t vector = kNoVector;
    uint32_t desc[2] = {0, 0};
    uint32_t avail[2] = {0, 0};
    uint32_t used[2] = {0, 0};
  };

  VirtioPciFunction(std::unique_ptr<VirtioDevice> device,
                    VirtioPciOptions options, uint64_t offered);

  // The four BAR4 areas.
  uint64_t AreaRead(Area area, uint64_t offset, unsigned size);
  void AreaWrite(Area area, uint64_t offset, uint64_t value, unsigned size);
  uint64_t CommonRead(uint64_t offset);
  void CommonWrite(uint64_t offset, uint64_t value);
  uint64_t DeviceConfigRead(uint64_t offset, unsigned size);
  void DeviceConfigWrite(uint64_t offset, uint64_t value, unsigned size);
  void QueueNotify(unsigned index);
  // The PCI configuration access capability's window into BAR4.
  void CfgWindowAccess(bool is_write);

  void SetStatus(uint8_t value);
  bool FeaturesAcceptable();
  void ResetDevice();
  void ResetQueue(unsigned index);
  void SetQueueVector(uint16_t* slot, uint64_t value);
  // QEMU's virtio_notify_vector: MSI-X message or INTx from ISR bit 0.
  void RaiseVector(uint16_t vector);
  void LowerIntx();

  VirtioPciOptions options_;
  std::unique_ptr<VirtioDevice> device_;
  uint64_t offered_;
  uint32_t config_size_;
  std::vector<std::unique_ptr<SplitVirtqueue>> queues_;
  std::vector<QueueRegs> regs_;  // kMaxQueues entries
  std::vector<uint8_t> config_copy_;
  std::unique_ptr<VirtioPciMsix> msix_;
  std::array<std::unique_ptr<AreaOps>, 4> area_ops_;
  std::shared_ptr<memory::MemoryRegion> bar4_;
  std::shared_ptr<memory::MemoryRegion> msix_bar_;
  uint8_t cfg_cap_ = 0;

  // Device state (QEMU's VirtIODevice and VirtIOPCIProxy).
  uint8_t status_ = 0;
  uint8_t isr_ = 0;
  uint8_t generation_ = 0;
  bool broken_ = false;
  bool disabled_ = false;
  uint64_t features_ = 0;  // negotiated: driver words & offered
  uint32_t device_feature_select_ = 0;
  uint32_t driver_feature_select_ = 0;
  std::array<uint32_t, 2> driver_words_{};
  uint16_t queue_select_ = 0;
  uint16_t config_vector_ = kNoVector;
  bool in_mmio_ = false;
  uint64_t device_errors_ = 0;
  uint64_t refused_reentrant_ = 0;
  std::string last_error_;
};

}  // namespace viommu::hw::virtio

#endif  // VIOMMU_HW_VIRTIO_VIRTIO_PCI_FUNCTION_H_
