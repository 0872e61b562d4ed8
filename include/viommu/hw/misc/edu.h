// viommu/hw/misc/edu.h — QEMU's educational PCI device "edu" (1234:11e8),
// register for register (reference/qemu.md §7, QEMU's docs/specs/edu.rst).
//
//   auto edu = Edu::CreateFromProperties({{"dma_mask", "0xffffffff"}});
//   bus.Plug(*std::move(edu), /*devfn=*/0x20);
//
// BAR0 (1 MiB, 32-bit memory): 0x00 id 0x010000ed; 0x04 liveness (reads
// ~value); 0x08 factorial; 0x20 status (bit 0 computing, bit 7 raise IRQ
// 0x1 when a factorial completes); 0x24 irq status; 0x60 raise; 0x64 ack;
// 0x80/0x88/0x90 DMA source/destination/count; 0x98 DMA command (bit 0 run,
// bit 1 direction: 0 RAM->device, 1 device->RAM; bit 2 raise IRQ 0x100
// when done). Offsets below 0x80 take only 4-byte accesses, the rest 4 or
// 8; other accesses are ignored and read all-ones. 4-byte writes to the
// 64-bit DMA registers store the value zero-extended; writes to them are
// ignored while a DMA runs. The device-side DMA buffer (4 KiB) sits at
// 0x40000 in the device's DMA window; the RAM side is masked with
// `dma_mask` (default 2^28 - 1). A DMA completes 100 ms of virtual time
// after it is started (QEMU's millisecond timer). Interrupts: MSI when
// enabled (one vector), INTx otherwise.
//
// Deliberate differences from QEMU 7.2:
//  * The factorial is computed at the write, not by a worker thread, so
//    status bit 0 is never seen set; the result and IRQ are the same.
//  * A DMA whose device-side range leaves [0x40000, 0x41000) is refused
//    (QEMU logs and overruns its buffer): nothing is copied, the run bit
//    clears, the done IRQ is still raised when asked, and
//    refused_dma_count() counts it.
//  * As in QEMU, system reset does not clear the registers (edu has no
//    reset handler); only its PCI configuration is reset.
//
// Threading: control context only.
#ifndef VIOMMU_HW_MISC_EDU_H_
#define VIOMMU_HW_MISC_EDU_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/btree_map.h"
#include "absl/status/statusor.h"
#include "viommu/hw/pci/pci_device.h"

namespace viommu::hw::misc {

class Edu final : public pci::PciDevice {
 public:
  struct Properties {
    uint64_t dma_mask = (uint64_t{1} << 28) - 1;
  };
  static constexpr uint64_t kDmaStart = 0x40000;
  static constexpr uint64_t kDmaSize = 4096;

  static std::unique_ptr<Edu> Create(const Properties& props);
  // From -device/device_add text properties. Errors: kInvalidArgument for
  // an unknown property or a bad value, naming it.
  static absl::StatusOr<std::unique_ptr<Edu>> CreateFromProperties(
      const absl::btree_map<std::string, std::string>& props);
  ~Edu() override;

  uint64_t refused_dma_count() const { return refused_dma_count_; }

 protected:
  absl::Status Realize() override;

 private:
  class Registers;
  explicit Edu(const Properties& props);

  uint64_t MmioRead(uint64_t offset, unsigned size);
  void MmioWrite(uint64_t offset, uint64_t value, unsigned size);
  void WriteDmaRegister(uint64_t* reg, uint64_t value, bool starts_timer);
  void DmaTimerFired();
  void RaiseIrq(uint32_t bits);
  void LowerIrq(uint32_t bits);

  Properties props_;
  std::unique_ptr<Registers> ops_;
  std::shared_ptr<memory::MemoryRegion> mmio_;
  std::unique_ptr<Timer> dma_timer_;
  uint32_t liveness_ = 0;
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

}  // namespace viommu::hw::misc

#endif  // VIOMMU_HW_MISC_EDU_H_
