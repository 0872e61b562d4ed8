// viommu/vfio/host/model/host_device.h — one simulated host PCI device bound
// to vfio-pci, as its VFIO device fd shows it (ARCHITECTURE.md §4): an
// edu DMA engine (devcore::EduEngine, the guest edu's own) whose DMA goes through the host IOMMU domain it
// is attached to into this process's memory, plus BAR2 device memory.
//
//   ProcessMemory mem;
//   ManualTimers timers;                      // or system/'s virtual clock
//   auto dev = *ModelHostDevice::Create(desc, &mem, {.timers = &timers});
//   dev->AttachDomain(&domain);               // ModelHost does this
//   dev->RegionWrite(PciIndexToOffset(7) + 4, &cmd, 2);  // MEMORY | MASTER
//   dev->RegionWrite(PciIndexToOffset(0) + 0x80, &iova, 8);  // edu DMA ...
//
// Regions (VFIO_DEVICE_GET_REGION_INFO; region N at file offset N << 40):
//   0  BAR0  1 MiB, read/write (edu registers, emulated; not mmap-able)
//   2  BAR2  desc.bar2_size bytes of device memory, read/write/mmap
//   7  config 256 bytes, read/write: type-0 header (vendor/device from the
//      desc, revision 0x10, class 0x00ff00, INTA#), COMMAND, STATUS (W1C),
//      BAR0 32-bit memory / BAR2+3 64-bit prefetchable with sizing, and a
//      64-bit one-vector MSI capability at 0x40 (as edu)
//   1, 3, 4, 5, 6 size 0; 8 (VGA) -EINVAL.
// BAR accesses: -EIO while COMMAND.MEMORY is clear (vfio-pci since 5.8);
// memory decode is on after open. A pread/pwrite is split into naturally
// aligned 8/4/2/1-byte register accesses (8-byte whole, as kernels with
// iowrite64 support); edu ignores all but 4/8-byte ones.
// IRQs: INTx count 1 (eventfd, maskable, automasked), MSI count 1 (eventfd,
// noresize), MSI-X/ERR/REQ count 0. SET_IRQS installs eventfd numbers that
// are handed to the HostIrqSink. MSI and INTx exclude each other as in
// vfio-pci (-EINVAL). edu raises MSI when MSI is enabled through SET_IRQS,
// INTx otherwise (not with COMMAND.INTX_DISABLE).
// DMA: the edu engine's RAM-side address (masked with dma_mask, 28 bits by
// default as edu) is an IOVA of the attached HostIommuDomain. It is done
// only when COMMAND.MASTER is set (else counted in
// dma_without_master_count()); with no domain, or when any page of the
// transfer is unmapped or lacks the permission, nothing is copied and a
// host IOMMU fault is counted with its first faulting IOVA. Transfers may
// cross mapping boundaries. The DMA starts 100 ms of virtual time after the
// command write (DeviceTimers); with no timers it runs at the write.
// Reset (VFIO_DEVICE_RESET, an FLR with vfio-pci's config save/restore):
// edu registers and buffer zeroed, a pending DMA cancelled, INTx lowered;
// config space, BAR2 contents, IRQ setup and fault counters kept.
// BAR2 is a memfd mapped once for the device (registered as device memory
// in ProcessMemory, when given one, for its whole life) and once per Mmap
// (registered until Munmap, idempotently with ModelHost's own
// registration); after Munmap the address is really unmapped.
// Thread-safety: not thread-safe; everything, including timer callbacks,
// runs on the model host's control context.
#ifndef VIOMMU_VFIO_HOST_MODEL_HOST_DEVICE_H_
#define VIOMMU_VFIO_HOST_MODEL_HOST_DEVICE_H_

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "viommu/devcore/edu_engine.h"
#include "viommu/vfio/host/host_platform.h"
#include "viommu/vfio/host/model/device_timers.h"
#include "viommu/vfio/host/model/host_iommu_domain.h"
#include "viommu/vfio/host/model/host_irq_sink.h"
#include "viommu/vfio/host/model/model_device_ops.h"
#include "viommu/vfio/host/model/process_memory.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio::model {

class HostPciConfig;

class ModelHostDevice final : public ModelDeviceOps {
 public:
  static constexpr uint64_t kBar0Size = devcore::EduEngine::kBarSize;
  static constexpr uint64_t kConfigSize = 256;
  static constexpr uint64_t kDmaStart = devcore::EduEngine::kDmaStart;
  static constexpr uint64_t kDmaSize = devcore::EduEngine::kDmaSize;
  static constexpr uint64_t kDefaultDmaMask =
      devcore::EduEngine::kDefaultDmaMask;

  struct Options {
    DeviceTimers* timers = nullptr;       // not owned; null: DMA at the write
    HostIrqSink* irq_sink = nullptr;      // not owned; null: interrupts dropped
    uint64_t dma_mask = kDefaultDmaMask;  // edu's dma_mask
  };

  // `memory` (may be null: nothing registered) is not owned and outlives
  // the device; so do the Options' pointers. Errors: kInvalidArgument for
  // a bar2_size that is not a power of two >= 4 KiB; kResourceExhausted
  // (with errno) when the BAR2 memory cannot be created.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ModelHostDevice>> Create(
      const HostDeviceDesc& desc, ProcessMemory* memory,
      const Options& options);
  // A ModelHostOptions::device_factory making ModelHostDevices with
  // `options` and no ProcessMemory of their own (ModelHost registers the
  // BAR2 mmaps in its own). A device that cannot be created returns
  // Create's error, which ModelHost::Create returns.
  static ModelDeviceFactory Factory(const Options& options);
  ~ModelHostDevice() override;

  // ---- ModelDeviceOps (the VFIO device fd) ----
  // 0, or -EINVAL for an index >= kPciNumRegions or VGA.
  int GetRegionInfo(uint32_t index, uapi::vfio_region_info* out) override;
  // Bytes transferred, or -EINVAL (no such region, past its end, size-0
  // region), -EIO (BAR with memory decode off).
  int64_t RegionRead(uint64_t offset, void* buf, uint64_t len) override;
  int64_t RegionWrite(uint64_t offset, const void* buf, uint64_t len) override;
  // BAR2 only: `offset` page aligned inside region 2, 0 < len and
  // offset + len within it (len rounded up to pages). kInvalidArgument
  // ("EINVAL") otherwise; kResourceExhausted if mmap(2) fails.
  [[nodiscard]] absl::StatusOr<void*> Mmap(uint64_t offset,
                                           uint64_t len) override;
  void Munmap(void* addr, uint64_t len) override;
  int Reset() override;  // always 0
  // 0, or -EINVAL for an index >= kPciNumIrqs.
  int GetIrqInfo(uint32_t index, uapi::vfio_irq_info* out) override;
  // 0, or -EINVAL (bad flags, index, start/count, short payload, INTx/MSI
  // conflict), -ENOTTY (mask/unmask of MSI). `data` holds
  // set.argsz - sizeof(set) bytes.
  int SetIrqs(const uapi::vfio_irq_set& set, const uint8_t* data) override;
  void AttachDomain(HostIommuDomain* domain) override;

  // ---- model-side state ----
  const HostDeviceDesc& desc() const { return desc_; }
  HostIommuDomain* domain() const { return domain_; }
  void set_irq_sink(HostIrqSink* sink) { irq_sink_ = sink; }
  // The device's own view of BAR2 (device memory in ProcessMemory).
  uint8_t* bar2() const { return bar2_; }
  uint64_t bar2_size() const { return desc_.bar2_size; }
  uint16_t command() const;
  uint32_t irq_status() const;
  bool intx_asserted() const { return intx_level_; }
  bool msi_enabled() const { return msi_enabled_; }
  bool dma_pending() const;

  uint64_t completed_dma_count() const { return completed_dma_count_; }
  // DMAs refused for leaving the edu buffer (as the guest edu).
  uint64_t refused_dma_count() const;
  uint64_t dma_without_master_count() const { return no_master_count_; }
  uint64_t iommu_fault_count() const { return fault_count_; }
  std::optional<uint64_t> last_fault_iova() const { return last_fault_iova_; }

 private:
  class Bus;
  ModelHostDevice(const HostDeviceDesc& desc, ProcessMemory* memory,
                  const Options& options);

  int64_t Bar0Access(uint64_t offset, uint8_t* buf, uint64_t len, bool write);
  int64_t ConfigAccess(uint64_t offset, uint8_t* buf, uint64_t len, bool write);
  void Dma(uint64_t iova, uint8_t* buf, uint64_t len, bool to_ram);
  void IrqRaised();
  void IrqCleared();
  void UpdateIntx(bool level);
  void SignalIntx();
  void Signal(uint32_t index, int32_t fd);
  int SetIntxIrqs(const uapi::vfio_irq_set& set, const uint8_t* data);
  int SetMsiIrqs(const uapi::vfio_irq_set& set, const uint8_t* data);

  HostDeviceDesc desc_;
  ProcessMemory* memory_;  // not owned, outlives this; may be null
  HostIrqSink* irq_sink_;  // not owned, may be null
  std::unique_ptr<Bus> bus_;
  std::unique_ptr<HostPciConfig> config_;
  std::unique_ptr<devcore::EduEngine> engine_;
  HostIommuDomain* domain_ = nullptr;  // not owned; see AttachDomain
  int bar2_fd_ = -1;                   // the memfd behind BAR2
  uint8_t* bar2_ = nullptr;            // the device's own mapping

  // IRQ state (SET_IRQS).
  bool intx_enabled_ = false;
  int32_t intx_fd_ = -1;
  bool intx_masked_ = false;  // automasked or masked by the user
  bool intx_level_ = false;   // the device asserts INTx (edu irq_status)
  bool intx_line_ = false;    // ... and COMMAND.INTX_DISABLE is clear
  bool msi_enabled_ = false;
  int32_t msi_fd_ = -1;

  uint64_t completed_dma_count_ = 0;
  uint64_t no_master_count_ = 0;
  uint64_t fault_count_ = 0;
  std::optional<uint64_t> last_fault_iova_;
};

}  // namespace viommu::vfio::model

#endif  // VIOMMU_VFIO_HOST_MODEL_HOST_DEVICE_H_
