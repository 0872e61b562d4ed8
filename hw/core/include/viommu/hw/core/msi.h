// viommu/hw/core/msi.h — the MSI window at 0xfee00000 (QEMU's "apic-msi"
// region as far as PCI devices see it): every 4-byte write there is an
// interrupt message, recorded per requester id.
//
//   MsiController msi;
//   root->AddSubregionOverlap(kMsiWindowBase, MemoryRegion::CreateMmio(
//       &sys, "msi", kMsiWindowSize, &msi), /*priority=*/-1);
//   ... a device's MsiNotify() ...
//   EXPECT_EQ(msi.Count(0x0020), 1u);
//   std::optional<MsiMessage> m = msi.Last(0x0020);   // address, data
//
// Semantics: a 4-byte write at offset `off` is the message {kMsiBase + off,
// value}; the source is the access's requester id, or "unspecified"
// (std::nullopt) when the access carries none (a CPU or qtest write).
// Writes of other sizes are ignored, as QEMU's apic_mem_write does. Reads
// return 0.
//
// Threading: control context only (devices send MSIs from there).
#ifndef VIOMMU_HW_CORE_MSI_H_
#define VIOMMU_HW_CORE_MSI_H_

#include <cstdint>
#include <functional>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "viommu/memory/mem_tx.h"
#include "viommu/memory/mmio_ops.h"

namespace viommu::hw {

inline constexpr uint64_t kMsiWindowBase = 0xfee0'0000;
inline constexpr uint64_t kMsiWindowSize = 0x10'0000;

struct MsiMessage {
  uint64_t address = 0;  // guest-physical, inside the MSI window
  uint32_t data = 0;
  // The requester id of the write; nullopt when it carried none.
  std::optional<uint16_t> requester_id;
  friend bool operator==(const MsiMessage&, const MsiMessage&) = default;
};

class MsiController final : public memory::MmioOps {
 public:
  MsiController() = default;

  // Messages received from `rid` (nullopt: from writes without a
  // requester id).
  uint64_t Count(std::optional<uint16_t> rid) const;
  // The last message from `rid`, or nullopt if none.
  std::optional<MsiMessage> Last(std::optional<uint16_t> rid) const;
  uint64_t TotalCount() const { return total_; }
  // Forgets every recorded message (counts back to 0).
  void Clear();

  // Records `msg` as a message received (counts, Last, the observer),
  // with its whole address: what an interrupt remapper hands on, whose
  // x2APIC destination bits 31:8 are address bits 63:40, beyond what a
  // write into the window can carry. Write() ends here too.
  void Deliver(const MsiMessage& msg);

  // Optional: called for every message after it is recorded. Replaces any
  // previous observer; an empty function removes it.
  void set_observer(std::function<void(const MsiMessage&)> observer) {
    observer_ = std::move(observer);
  }

  // MmioOps.
  memory::MemTxResult Read(uint64_t offset, uint64_t* value, unsigned size,
                           memory::MemTxAttrs attrs) override;
  memory::MemTxResult Write(uint64_t offset, uint64_t value, unsigned size,
                            memory::MemTxAttrs attrs) override;

 private:
  struct Source {
    uint64_t count = 0;
    MsiMessage last;
  };
  // Key: the requester id, or kUnspecified.
  static constexpr int32_t kUnspecified = -1;
  static int32_t KeyOf(std::optional<uint16_t> rid) {
    return rid.has_value() ? int32_t{*rid} : kUnspecified;
  }

  absl::flat_hash_map<int32_t, Source> sources_;
  uint64_t total_ = 0;
  std::function<void(const MsiMessage&)> observer_;
};

}  // namespace viommu::hw

#endif  // VIOMMU_HW_CORE_MSI_H_
