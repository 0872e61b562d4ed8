// viommu/hw/misc/dma_test_device.h — `-device dma-testdev`: a PCI function
// whose register write performs one synchronous DMA through its bus-master
// address space (so through the vIOMMU when there is one) and reports the
// MemTx result, for precise vIOMMU tests without timers.
//
//   writeq BAR0+0x08 <iova>;  writel BAR0+0x10 <len>;  writel BAR0+0x18 1
//   readl  BAR0+0x1c   -> 0 (ok), 2 (decode error: unmapped or refused), ...
//   read   BAR0+0x1000 <len>  -> the bytes read from <iova>
//
// Register layout (BAR0, 8 KiB, 32-bit memory; docs/dma-testdev.md):
//   0x00 ID       RO  0x7e570001
//   0x08 IOVA     RW  64-bit (4-byte halves at 0x08/0x0c, or one 8-byte)
//   0x10 LEN      RW  bytes to transfer (1..4096)
//   0x14 OFFSET   RW  offset in the buffer (LEN + OFFSET <= 4096)
//   0x18 CMD      WO  1: DMA read IOVA -> buffer; 2: DMA write buffer ->
//                     IOVA; reads 0
//   0x1c RESULT   RO  MemTxResult bits of the last command (0 ok, 1 error,
//                     2 decode error, 4 access error); 0x100 bad
//                     LEN/OFFSET; 0x200 unknown command; 0xffffffff before
//                     any command
//   0x20 COUNT    RO  commands executed
//   0x24 RID      RO  the requester id the DMA carries (bus << 8 | devfn)
//   0x1000-0x1fff BUFFER  RW  the 4 KiB data buffer, any access size
// IDs 1b36:10f0 (Red Hat's QEMU test vendor), class 0x00ff00, no IRQ.
// Register accesses other than 4 bytes (or 8 at 0x08) are ignored and read
// all-ones; the buffer is little-endian, aligned 1/2/4/8-byte accesses.
// Reset clears the registers and the buffer. Every guest value is safe:
// LEN/OFFSET are checked before any copy, and a BAR0 access made while the
// device handles one (a DMA aimed at its own BAR0) is refused with an
// access error (QEMU 8's re-entrancy guard) and counted.
//
// Threading: control context only.
#ifndef VIOMMU_HW_MISC_DMA_TEST_DEVICE_H_
#define VIOMMU_HW_MISC_DMA_TEST_DEVICE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/btree_map.h"
#include "absl/status/statusor.h"
#include "viommu/hw/core/guarded_mmio_ops.h"
#include "viommu/hw/pci/pci_device.h"

namespace viommu::hw::misc {

class DmaTestDevice final : public pci::PciDevice {
 public:
  static constexpr uint32_t kId = 0x7e570001;
  static constexpr uint64_t kBarSize = 0x2000;
  static constexpr uint32_t kBufferOffset = 0x1000;
  static constexpr uint32_t kBufferSize = 0x1000;
  static constexpr uint32_t kResultBadLength = 0x100;
  static constexpr uint32_t kResultBadCommand = 0x200;
  static constexpr uint32_t kResultIdle = 0xffffffff;

  DmaTestDevice();
  ~DmaTestDevice() override;
  // Errors: kInvalidArgument for any property (it takes none).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<DmaTestDevice>>
  CreateFromProperties(const absl::btree_map<std::string, std::string>& props);

  void Reset() override;

  // BAR0 accesses refused by the re-entrancy guard.
  uint64_t blocked_reentrant_count() const { return ops_->blocked_count(); }

 protected:
  [[nodiscard]] absl::Status Realize() override;

 private:
  uint64_t RegRead(uint64_t offset, unsigned size);
  void RegWrite(uint64_t offset, uint64_t value, unsigned size);
  void Execute(uint32_t cmd);

  std::unique_ptr<GuardedMmioOps> ops_;  // BAR0, behind the guard
  std::shared_ptr<memory::MemoryRegion> mmio_;
  uint64_t iova_ = 0;
  uint32_t len_ = 0;
  uint32_t offset_ = 0;
  uint32_t result_ = kResultIdle;
  uint32_t count_ = 0;
  std::array<uint8_t, kBufferSize> buffer_{};
};

}  // namespace viommu::hw::misc

#endif  // VIOMMU_HW_MISC_DMA_TEST_DEVICE_H_
