// viommu/hw/misc/edu.h — QEMU's educational PCI device "edu" (1234:11e8),
// register for register (QEMU's docs/specs/edu.rst; docs/architecture.md).
// The registers and the DMA engine are devcore::EduEngine
// (devcore/include/viommu/devcore/edu_engine.h, shared with the simulated host
// devices); Edu is the PCI function around it.
//
//   VIOMMU_ASSIGN_OR_RETURN(std::unique_ptr<Edu> edu,
//                           Edu::CreateFromProperties({{"dma_mask", "0xffff"}}));
//   VIOMMU_ASSIGN_OR_RETURN(PciDevice* dev, bus.Plug(std::move(edu), 0x20));
//   // BAR0 + config 0x04 = MEMORY | MASTER, then drive BAR0 as below.
//
// IDs 1234:11e8 rev 0x10, class 0x00ff00, INTA#, MSI (1 vector, 64-bit).
// BAR0 (1 MiB, 32-bit memory, "edu-mmio", valid/impl 4..8 bytes):
//   0x00 RO id 0x010000ed        0x04 RW liveness (reads ~value written)
//   0x08 RW factorial            0x20 RW status: bit 0 computing (RO),
//   0x24 RO irq status                   bit 7 raise IRQ 0x1 after a factorial
//   0x60 WO raise: irq |= v      0x64 WO ack: irq &= ~v
//   0x80/0x88/0x90 RW DMA source/destination/count
//   0x98 RW DMA command: bit 0 run, bit 1 direction (0 RAM->device, 1
//        device->RAM), bit 2 raise IRQ 0x100 when done
// Offsets below 0x80 take only 4-byte accesses, the rest 4 or 8; other
// accesses are ignored and read all-ones (of the access size). 4-byte
// writes to the 64-bit DMA registers store the value zero-extended; the
// DMA registers ignore writes while a DMA runs, and a command write
// without bit 0 is ignored. The device-side 4 KiB DMA buffer sits at
// kDmaStart (0x40000) in the device's DMA address space and is not visible
// through BAR0; the RAM-side address is masked with `dma_mask` (default
// 2^28 - 1). A DMA completes at (now_ms + 100) ms of virtual time (QEMU's
// millisecond QEMU_CLOCK_VIRTUAL timer) through the bus-master address
// space with the device's requester id, so through the vIOMMU and not at
// all without COMMAND.MASTER. Interrupts: MSI vector 0 when MSI is
// enabled, INTx otherwise (lowered when the irq status reaches 0).
//
// Deliberate differences from QEMU 7.2:
//  * The factorial is computed at the write, not by a worker thread, so
//    status bit 0 is never seen set; the result (mod 2^32) and the IRQ are
//    the same.
//  * A DMA whose device-side range leaves [0x40000, 0x41000), or whose
//    count overflows it, is refused (QEMU logs and overruns its buffer):
//    nothing is copied, the run bit clears, the done IRQ is still raised
//    when asked, and refused_dma_count() counts it.
//  * Re-entrancy guard as QEMU 8's mem_reentrancy_guard: a BAR0 access
//    made while edu is handling a BAR0 access (its MSI aimed at its own
//    BAR) is refused with an access error and counted in
//    blocked_reentrant_count(); QEMU 7.2 recursed without bound.
// As in QEMU (edu has no reset handler), system reset leaves the edu
// registers, the buffer and a pending DMA alone; only the PCI config is
// reset, so a pending DMA then runs without bus mastering and reaches
// nothing. Unplugging cancels a pending DMA and clears the run bit.
//
// Threading: control context only.
#ifndef VIOMMU_HW_MISC_EDU_H_
#define VIOMMU_HW_MISC_EDU_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "viommu/devcore/edu_engine.h"
#include "viommu/hw/core/guarded_mmio_ops.h"
#include "viommu/hw/core/virtual_clock.h"
#include "viommu/hw/pci/pci_device.h"
#include "viommu/memory/memory_region.h"

namespace viommu::hw::misc {

class Edu final : public pci::PciDevice {
 public:
  // -device edu properties.
  struct Properties {
    uint64_t dma_mask = (uint64_t{1} << 28) - 1;  // "dma_mask"
  };
  static constexpr uint64_t kDmaStart = devcore::EduEngine::kDmaStart;
  static constexpr uint64_t kDmaSize = devcore::EduEngine::kDmaSize;
  static constexpr uint64_t kBarSize = devcore::EduEngine::kBarSize;

  // Never fails today; StatusOr so that property checks can be added.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Edu>> Create(
      const Properties& props);
  // Parses -device/device_add text properties (the driver's own only, not
  // "addr"/"id"): dma_mask as QEMU's uint64 (decimal, 0x hex, 0 octal).
  // Errors: kInvalidArgument for an unknown property or a bad value,
  // naming it ("edu.dma_mask").
  [[nodiscard]] static absl::StatusOr<Properties> ParseProperties(
      const absl::btree_map<std::string, std::string>& props);
  // ParseProperties, then Create.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Edu>>
  CreateFromProperties(const absl::btree_map<std::string, std::string>& props);
  ~Edu() override;

  const Properties& properties() const { return props_; }
  // Back to the registers, buffer and (no) DMA of a new edu, which system
  // reset keeps (see above). Not a guest operation: for fuzzers that reuse
  // one machine per process (tests/fuzz/machine_reuse.h). Call after the
  // machine's reset (config space already reset).
  void PowerOnReset();
  // DMAs refused for leaving the device buffer (see above).
  uint64_t refused_dma_count() const;
  // BAR0 accesses refused by the re-entrancy guard.
  uint64_t blocked_reentrant_count() const { return ops_->blocked_count(); }

 protected:
  [[nodiscard]] absl::Status Realize() override;
  void Unrealize() override;

 private:
  class EngineBus;
  explicit Edu(const Properties& props);

  Properties props_;
  std::unique_ptr<EngineBus> bus_;
  std::unique_ptr<GuardedMmioOps> ops_;  // BAR0, behind the guard
  std::shared_ptr<memory::MemoryRegion> mmio_;
  // From Realize (it needs the machine clock); Unrealize stops its DMA.
  std::unique_ptr<devcore::EduEngine> engine_;
};

}  // namespace viommu::hw::misc

#endif  // VIOMMU_HW_MISC_EDU_H_
