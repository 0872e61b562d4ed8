// hw/virtio/virtio_pci_msix.h (private) — an MSI-X capability with its
// table and PBA in one exclusive memory BAR, laid out as QEMU 7.2 lays out
// a virtio-pci function's (measured with virtio-rng-pci,vectors=3): a 4 KiB
// BAR (grown to a power of two when the vectors need more), the table at 0,
// the PBA at 2 KiB or right after a larger table; capability id 0x11, 12
// bytes, enable and function-mask bits writable. Vectors start masked.
// Entries are 4-byte accesses (8 split in two), as QEMU's.
//
//   VirtioPciMsix msix(3, [this](uint64_t a, uint32_t d) { SendMsi(a, d); });
//   RegisterBar(1, BarType::kMem32, false, msix.CreateBar(memory()));
//   msix.InitCapability(config(), wmask(), *AddCapability(0x11, 12), 1);
//   if (msix.enabled() && vector != kNoVector) msix.Notify(vector);
//
// PCI-generic, kept here until a second device needs MSI-X.
// Threading: control context only.
#ifndef VIOMMU_HW_VIRTIO_VIRTIO_PCI_MSIX_H_
#define VIOMMU_HW_VIRTIO_VIRTIO_PCI_MSIX_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/memory/mmio_ops.h"

namespace viommu::hw::virtio {

class VirtioPciMsix {
 public:
  static constexpr uint8_t kCapId = 0x11;
  static constexpr uint8_t kCapSize = 12;
  static constexpr uint32_t kEntrySize = 16;

  // `send` delivers one message (a 4-byte little-endian write of `data` to
  // `address` by the function). REQUIRES: 1 <= vectors <= 2048.
  using SendFn = absl::AnyInvocable<void(uint64_t address, uint32_t data)>;
  VirtioPciMsix(unsigned vectors, SendFn send);
  VirtioPciMsix(const VirtioPciMsix&) = delete;
  VirtioPciMsix& operator=(const VirtioPciMsix&) = delete;
  ~VirtioPciMsix();

  unsigned vectors() const { return vectors_; }
  uint64_t bar_size() const { return bar_size_; }
  uint32_t pba_offset() const { return pba_offset_; }

  // A fresh BAR container holding the table and the PBA (one per realize).
  std::shared_ptr<memory::MemoryRegion> CreateBar(memory::MemorySystem* sys);
  // Fills the capability at `cap` of `config` (kept: the function's config
  // bytes, valid while realized) for BAR `bar`, and its writable bits.
  void InitCapability(uint8_t* config, uint8_t* wmask, uint8_t cap,
                      uint8_t bar);
  uint8_t cap() const { return cap_; }

  // MSI-X enable bit set (false before InitCapability).
  bool enabled() const;
  // Sends `vector`, or marks it pending while it is masked. Ignored for
  // vectors past the table.
  void Notify(unsigned vector);
  // QEMU's msix_vector_use / unuse: false when `vector` is past the table;
  // the last unuse of a vector clears its pending bit.
  bool Use(unsigned vector);
  void Unuse(unsigned vector);
  void UnuseAll();
  // After a config write of [offset, offset + size): applies enable and
  // function-mask changes (pending vectors that became unmasked fire).
  // Returns true when MSI-X is enabled and the write touched its control
  // byte (the caller deasserts INTx).
  bool ConfigWritten(uint32_t offset, unsigned size);
  // PCI reset: enable and mask-all cleared, table zeroed and every vector
  // masked, nothing pending.
  void Reset();

  // Table and PBA bytes (tests).
  uint32_t TableLong(uint32_t offset) const;
  bool pending(unsigned vector) const;

 private:
  class TableOps;
  class PbaOps;
  bool FunctionMasked() const;
  bool VectorMasked(unsigned vector, bool function_masked) const;
  void TableWrite(uint32_t offset, uint32_t value);
  // Fires `vector` if it was masked, is unmasked now and is pending.
  void MaskUpdated(unsigned vector, bool was_masked);
  void SetPending(unsigned vector, bool pending);

  unsigned vectors_;
  SendFn send_;
  uint64_t bar_size_;
  uint32_t pba_offset_;
  std::vector<uint8_t> table_;
  std::vector<uint8_t> pba_;
  std::vector<unsigned> use_count_;
  bool function_masked_ = true;
  uint8_t* config_ = nullptr;  // the function's config bytes (not owned)
  uint8_t cap_ = 0;
  std::unique_ptr<TableOps> table_ops_;
  std::unique_ptr<PbaOps> pba_ops_;
};

}  // namespace viommu::hw::virtio

#endif  // VIOMMU_HW_VIRTIO_VIRTIO_PCI_MSIX_H_
