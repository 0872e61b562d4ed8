// capi/viommu_function.h — a vIOMMU that is also a PCI function
// (virtio-iommu-pci) inside a context: the function on a PCI bus of its
// own, at the devfn the VMM chose (the VMM owns enumeration and forwards
// the guest's configuration accesses of that devfn here), whose BARs map
// into the context's memory and I/O spaces as the guest programs them (so
// viommu_mmio_access reaches them) and whose interrupt (INTx: QEMU 7.2's
// virtio-iommu-pci has no MSI-X) reaches the context's `intx` callback.
// docs/embedding.md, "virtio-iommu".
//
// Threading: the function is control-context code (virtio queues, config,
// BARs), but the vIOMMU reports translation faults from DMA threads onto
// its event queue. One lock, re-entrant for the thread that holds it,
// serialises the two: control calls that may reach the function hold it
// (Hold), and the fault sink it installs takes it on the DMA thread. It is
// re-entrant because a VMM's MMIO callback may do DMA that faults on the
// control thread inside viommu_mmio_access.
//
// Private to capi/.
#ifndef VIOMMU_CAPI_VIOMMU_FUNCTION_H_
#define VIOMMU_CAPI_VIOMMU_FUNCTION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>

#include "absl/status/statusor.h"
#include "viommu/hw/core/irq.h"
#include "viommu/hw/core/virtual_clock.h"
#include "viommu/hw/iommu/virtio/virtio_iommu.h"
#include "viommu/hw/pci/pci_bus.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::capi {

// A mutex the holding thread may take again (depth counted).
class ReentrantLock {
 public:
  void Lock();
  void Unlock();

 private:
  std::mutex mu_;
  std::atomic<std::thread::id> owner_{};
  int depth_ = 0;  // touched by the owner only
};

class ViommuFunction {
 public:
  // Holds the function's lock for its scope (nullptr: a no-op).
  class Hold {
   public:
    explicit Hold(ViommuFunction* fn) : fn_(fn) {
      if (fn_ != nullptr) fn_->lock_.Lock();
    }
    ~Hold() {
      if (fn_ != nullptr) fn_->lock_.Unlock();
    }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;

   private:
    ViommuFunction* fn_;
  };

  // INTx pin `pin` (1 = INTA#) of the function is now at `level`.
  using IntxFn = std::function<void(int pin, bool level)>;

  // Plugs `model`'s PCI function at `devfn` of a bus whose memory and I/O
  // BARs go into `memory_root` and `io_root` and whose DMA reaches
  // `memory_root` untranslated (the function's own DMA, as in QEMU); its
  // INTx goes to `intx`. Errors: the function's creation or realize
  // errors.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ViommuFunction>> Create(
      memory::MemorySystem* sys, virtio_iommu::VirtioIommu* model,
      uint8_t devfn, std::shared_ptr<memory::MemoryRegion> memory_root,
      std::shared_ptr<memory::MemoryRegion> io_root, IntxFn intx_fn);
  // Unplugs the function (BARs unmapped). The model outlives this.
  ~ViommuFunction();
  ViommuFunction(const ViommuFunction&) = delete;
  ViommuFunction& operator=(const ViommuFunction&) = delete;

  uint8_t devfn() const { return devfn_; }
  uint32_t config_size() const;
  // Configuration access (1, 2, 4 bytes inside config_size()). The caller
  // holds the lock (Hold).
  uint32_t ConfigRead(uint32_t offset, unsigned size);
  void ConfigWrite(uint32_t offset, uint32_t value, unsigned size);
  // Device reset of the function (and so of the virtio-iommu's domains),
  // under the lock.
  void Reset();

 private:
  // The model's fault sink while the function is plugged: the function's
  // own sink (its event queue), under the lock.
  class LockedFaultSink final : public virtio_iommu::FaultSink {
   public:
    explicit LockedFaultSink(ViommuFunction* fn) : fn_(fn) {}
    bool DeliverFault(
        std::span<const uint8_t, virtio_iommu::kFaultSize> record) override;

   private:
    ViommuFunction* fn_;
  };

  // The bus's INTx sink: line = pin.
  class IntxSink final : public hw::IrqSink {
   public:
    explicit IntxSink(IntxFn fn) : fn_(std::move(fn)) {}
    void SetIrq(int line, bool level) override {
      if (fn_) fn_(line, level);
    }

   private:
    IntxFn fn_;
  };

  ViommuFunction(virtio_iommu::VirtioIommu* model, uint8_t devfn,
                 IntxFn intx_fn)
      : model_(model), devfn_(devfn), intx_(std::move(intx_fn)), sink_(this) {}

  virtio_iommu::VirtioIommu* const model_;  // not owned
  const uint8_t devfn_;
  ReentrantLock lock_;
  IntxSink intx_;
  hw::VirtualClock clock_;
  std::unique_ptr<hw::pci::PciBus> bus_;
  virtio_iommu::FaultSink* inner_ = nullptr;  // the function's sink
  LockedFaultSink sink_;
};

}  // namespace viommu::capi

#endif  // VIOMMU_CAPI_VIOMMU_FUNCTION_H_
