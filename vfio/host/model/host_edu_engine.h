// vfio/host/model/host_edu_engine.h (private) — the edu register file and
// DMA engine of a simulated host device: the same registers and semantics
// as viommu's guest edu (include/viommu/hw/misc/edu.h,
// docs/vfio-host-model.md), without any of hw/ (vfio/ must not depend on it).
//
//   HostEduEngine engine(&bus, timers, /*dma_mask=*/(1ull << 28) - 1);
//   engine.Write(0x80, iova, 8);  engine.Write(0x88, 0x40000, 8);
//   engine.Write(0x90, 64, 8);    engine.Write(0x98, 0x1, 8);  // RAM -> dev
//   // 100 ms of virtual time later: bus.DmaFromRam(iova, buf, 64).
//
// The owner (ModelHostDevice) supplies the DMA and interrupt side through
// Bus. Differences from QEMU 7.2 are the guest edu's: the factorial is
// computed at the write, and a DMA whose device-side range leaves the
// 4 KiB buffer is refused and counted. Without DeviceTimers (nullptr) a
// DMA runs at the command write instead of 100 ms later.
// Thread-safety: none; the owner's control context.
#ifndef VIOMMU_VFIO_HOST_MODEL_HOST_EDU_ENGINE_H_
#define VIOMMU_VFIO_HOST_MODEL_HOST_EDU_ENGINE_H_

#include <array>
#include <cstdint>
#include <memory>

#include "viommu/vfio/host/model/device_timers.h"

namespace viommu::vfio::model {

class HostEduEngine {
 public:
  static constexpr uint32_t kId = 0x010000ed;
  static constexpr uint64_t kDmaStart = 0x40000;
  static constexpr uint64_t kDmaSize = 4096;
  static constexpr int64_t kDmaDelayMs = 100;

  // What the engine does to the outside world.
  class Bus {
   public:
    Bus() = default;
    Bus(const Bus&) = delete;
    Bus& operator=(const Bus&) = delete;
    virtual ~Bus() = default;
    // A device-to-RAM (`to_ram`) or RAM-to-device transfer of `len` >= 0
    // bytes at RAM-side address `iova` (already masked with dma_mask) from
    // or into `buf`. The bus decides whether it happens.
    virtual void Dma(uint64_t iova, uint8_t* buf, uint64_t len,
                     bool to_ram) = 0;
    // irq_status is non-zero after a raise (edu_raise_irq): send MSI or
    // assert INTx.
    virtual void IrqRaised() = 0;
    // irq_status reached zero after an ack: deassert INTx.
    virtual void IrqCleared() = 0;
  };

  // `bus` and `timers` are not owned and outlive this; timers may be null.
  HostEduEngine(Bus* bus, DeviceTimers* timers, uint64_t dma_mask);

  // BAR0 accesses (offsets within the 1 MiB BAR). Offsets below 0x80 take
  // only 4-byte accesses, the rest 4 or 8; anything else is ignored and
  // reads all-ones of its size.
  uint64_t Read(uint64_t offset, unsigned size) const;
  void Write(uint64_t offset, uint64_t value, unsigned size);

  // Power-on state: registers and buffer zeroed, a pending DMA cancelled.
  void Reset();

  uint32_t irq_status() const { return irq_status_; }
  bool dma_pending() const { return (dma_cmd_ & 1) != 0; }
  uint64_t refused_dma_count() const { return refused_dma_count_; }
  uint64_t dma_mask() const { return dma_mask_; }

 private:
  void WriteDmaRegister(uint64_t* reg, uint64_t value, bool starts_dma);
  void RunDma();
  void RaiseIrq(uint32_t bits);
  void LowerIrq(uint32_t bits);

  Bus* bus_;              // not owned, outlives this
  DeviceTimers* timers_;  // not owned, outlives this; may be null
  std::unique_ptr<DeviceTimer> dma_timer_;
  uint64_t dma_mask_;
  uint32_t liveness_ = 0;  // ~value written
  uint32_t factorial_ = 0;
  uint32_t status_ = 0;
  uint32_t irq_status_ = 0;
  uint64_t dma_src_ = 0;
  uint64_t dma_dst_ = 0;
  uint64_t dma_count_ = 0;
  uint64_t dma_cmd_ = 0;
  std::array<uint8_t, kDmaSize> dma_buf_{};
  uint64_t refused_dma_count_ = 0;
};

}  // namespace viommu::vfio::model

#endif  // VIOMMU_VFIO_HOST_MODEL_HOST_EDU_ENGINE_H_
