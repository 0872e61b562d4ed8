// viommu/devcore/edu_engine.h — the edu register file and DMA engine (QEMU's
// docs/specs/edu.rst), shared by the guest edu (hw/misc/edu.cc) and the
// simulated host devices (vfio/host/model/host_device.cc): one
// implementation below both layers. The owner supplies the transfers and the
// interrupt line through Bus and virtual time through DeviceTimers.
//
//   EduEngine engine(&bus, timers, /*dma_mask=*/(1ull << 28) - 1);
//   engine.Write(0x80, iova, 8);  engine.Write(0x88, 0x40000, 8);
//   engine.Write(0x90, 64, 8);    engine.Write(0x98, 0x1, 8);  // RAM -> dev
//   // 100 ms of virtual time later: bus.Dma(iova, buf, 64, /*to_ram=*/false)
//
// BAR0 (offsets within the 1 MiB BAR):
//   0x00 RO id 0x010000ed        0x04 RW liveness (reads ~value written)
//   0x08 RW factorial            0x20 RW status: bit 0 computing (RO),
//   0x24 RO irq status                   bit 7 raise IRQ 0x1 after a factorial
//   0x60 WO raise: irq |= v      0x64 WO ack: irq &= ~v
//   0x80/0x88/0x90 RW DMA source/destination/count
//   0x98 RW DMA command: bit 0 run, bit 1 direction (0 RAM->device, 1
//        device->RAM), bit 2 raise IRQ 0x100 when done
// Offsets below 0x80 take only 4-byte accesses, the rest 4 or 8; other
// accesses are ignored and read all-ones of their size. 4-byte writes to
// the 64-bit DMA registers store the value zero-extended; the DMA registers
// ignore writes while a DMA runs, and a command write without bit 0 is
// ignored. The 4 KiB buffer sits at kDmaStart on the device side; the
// RAM-side address is masked with dma_mask. A DMA runs at (now_ms + 100) ms
// of virtual time (QEMU's millisecond QEMU_CLOCK_VIRTUAL timer); without
// DeviceTimers (nullptr) it runs at the command write.
// Deliberate differences from QEMU 7.2 (both users share them): the
// factorial is computed at the write (status bit 0 is never seen set), and
// a DMA whose device-side range leaves [kDmaStart, kDmaStart + kDmaSize) is
// refused: nothing moves, the run bit clears, the done IRQ is still raised
// when asked, and refused_dma_count() counts it.
// Thread-safety: none; the owner's control context (timer callbacks
// included).
#ifndef VIOMMU_DEVCORE_EDU_ENGINE_H_
#define VIOMMU_DEVCORE_EDU_ENGINE_H_

#include <array>
#include <cstdint>
#include <memory>

#include "viommu/devcore/device_timers.h"

namespace viommu::devcore {

class EduEngine {
 public:
  static constexpr uint32_t kId = 0x010000ed;
  static constexpr uint64_t kBarSize = 1 << 20;
  static constexpr uint64_t kDmaStart = 0x40000;
  static constexpr uint64_t kDmaSize = 4096;
  static constexpr int64_t kDmaDelayMs = 100;
  static constexpr uint64_t kDefaultDmaMask = (uint64_t{1} << 28) - 1;

  // What the engine does to the outside world.
  class Bus {
   public:
    Bus() = default;
    Bus(const Bus&) = delete;
    Bus& operator=(const Bus&) = delete;
    virtual ~Bus() = default;
    // A device-to-RAM (`to_ram`) or RAM-to-device transfer of `len` bytes
    // (0..kDmaSize) at RAM-side address `addr` (already masked with
    // dma_mask) from or into `buf`. The bus decides whether it happens; its
    // outcome does not change the engine (faults show in the IOMMU).
    virtual void Dma(uint64_t addr, uint8_t* buf, uint64_t len,
                     bool to_ram) = 0;
    // irq_status() is non-zero after a raise (QEMU's edu_raise_irq): send
    // MSI or assert INTx.
    virtual void IrqRaised() = 0;
    // irq_status() reached zero after an ack: deassert INTx.
    virtual void IrqCleared() = 0;
  };

  // `bus` and `timers` are not owned and outlive this; `timers` may be
  // null (DMA at the command write).
  EduEngine(Bus* bus, DeviceTimers* timers, uint64_t dma_mask);
  EduEngine(const EduEngine&) = delete;
  EduEngine& operator=(const EduEngine&) = delete;
  ~EduEngine() = default;

  // BAR0 accesses (see above).
  uint64_t Read(uint64_t offset, unsigned size) const;
  void Write(uint64_t offset, uint64_t value, unsigned size);

  // Power-on registers and buffer (irq status 0, without IrqCleared), a
  // pending DMA cancelled; refused_dma_count() kept.
  void Reset();
  // Cancels a pending DMA and clears the run bit; registers kept (unplug).
  void StopDma();

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
  uint32_t liveness_ = 0;  // QEMU's addr4: ~value written
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

}  // namespace viommu::devcore

#endif  // VIOMMU_DEVCORE_EDU_ENGINE_H_
