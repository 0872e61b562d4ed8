// viommu/memory/mem_tx.h — transaction attributes and results of a memory
// access (QEMU's MemTxAttrs / MemTxResult).
//
//   MemTxResult r = as->Read(gpa, buf, len, MemTxAttrs::Requester(0x0020));
//   if (!r.ok()) ...   // r.decode_error(), r.access_error()
#ifndef VIOMMU_MEMORY_MEM_TX_H_
#define VIOMMU_MEMORY_MEM_TX_H_

#include <cstdint>

namespace viommu::memory {

// Who performs an access. `unspecified` is QEMU's MEMTXATTRS_UNSPECIFIED:
// no requester information at all (e.g. a qtest or CPU access).
struct MemTxAttrs {
  bool unspecified = true;
  bool has_requester_id = false;
  uint16_t requester_id = 0;  // PCI BDF: bus << 8 | dev << 3 | fn
  bool secure = false;

  static constexpr MemTxAttrs Unspecified() { return {}; }
  static constexpr MemTxAttrs Requester(uint16_t rid) {
    return {.unspecified = false, .has_requester_id = true,
            .requester_id = rid};
  }
  friend constexpr bool operator==(const MemTxAttrs&,
                                   const MemTxAttrs&) = default;
};

// A bit set, as QEMU's: results of sub-accesses are OR-ed together.
class MemTxResult {
 public:
  enum Bits : uint8_t {
    kOk = 0,
    kError = 1 << 0,        // device reported an error
    kDecodeError = 1 << 1,  // nothing there, or the access is not valid
    kAccessError = 1 << 2,  // e.g. IOMMU permission fault, re-entrancy
  };
  constexpr MemTxResult() = default;
  constexpr MemTxResult(Bits b) : bits_(b) {}  // NOLINT: implicit on purpose
  static constexpr MemTxResult Ok() { return {}; }
  static constexpr MemTxResult Error() { return kError; }
  static constexpr MemTxResult DecodeError() { return kDecodeError; }
  static constexpr MemTxResult AccessError() { return kAccessError; }

  constexpr bool ok() const { return bits_ == 0; }
  constexpr bool decode_error() const { return bits_ & kDecodeError; }
  constexpr bool access_error() const { return bits_ & kAccessError; }
  constexpr uint8_t bits() const { return bits_; }
  constexpr MemTxResult& operator|=(MemTxResult o) {
    bits_ |= o.bits_;
    return *this;
  }
  friend constexpr MemTxResult operator|(MemTxResult a, MemTxResult b) {
    return a |= b;
  }
  friend constexpr bool operator==(MemTxResult, MemTxResult) = default;

 private:
  uint8_t bits_ = 0;
};

}  // namespace viommu::memory

#endif  // VIOMMU_MEMORY_MEM_TX_H_
