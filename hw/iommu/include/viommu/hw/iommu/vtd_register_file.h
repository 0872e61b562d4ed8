// viommu/hw/iommu/vtd_register_file.h — the VT-d register bytes with QEMU's
// per-byte masks: wmask (writable bits), w1cmask (write-1-to-clear bits) and
// womask (write-only bits, which read as 0).
//
//   RegisterFile regs;
//   regs.DefineLong(Offset(Reg32::kFectl), kFectlIm, kFectlIm, 0);
//   regs.SetLong(Offset(Reg32::kFectl), 0);         // guest write
//   regs.SetClearMaskLong(Offset(Reg32::kFectl), 0, kFectlIp);  // device
//
// Semantics (QEMU's vtd_set_long/quad): a guest write stores
// (old & ~wmask) | (val & wmask), then clears the w1cmask bits set in val.
// Get*() hides womask bits; the *Raw accessors see and store every bit.
// Offsets are byte offsets into the block; REQUIRES: offset + width <=
// kRegBlockSize (checked: a broken invariant, not a guest error).
//
// Threading: not thread-safe; the owning device serialises access.
#ifndef VIOMMU_HW_IOMMU_VTD_REGISTER_FILE_H_
#define VIOMMU_HW_IOMMU_VTD_REGISTER_FILE_H_

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "viommu/hw/iommu/vtd_regs.h"
#include "viommu/util/check.h"

namespace viommu::vtd {

class RegisterFile {
 public:
  RegisterFile() { Clear(); }

  // Every byte and mask back to 0.
  void Clear();

  // Reset value and masks of a register (vtd_define_long/quad).
  void DefineLong(uint16_t off, uint32_t val, uint32_t wmask, uint32_t w1cmask);
  void DefineQuad(uint16_t off, uint64_t val, uint64_t wmask, uint64_t w1cmask);
  // Marks bits write-only (vtd_define_long_wo / quad_wo).
  void DefineLongWo(uint16_t off, uint32_t womask);
  void DefineQuadWo(uint16_t off, uint64_t womask);

  // Guest writes, through wmask and w1cmask.
  void SetLong(uint16_t off, uint32_t val) {
    const uint32_t old = Load<uint32_t>(csr_, off);
    const uint32_t wmask = Load<uint32_t>(wmask_, off);
    const uint32_t w1c = Load<uint32_t>(w1cmask_, off);
    Store(csr_, off, ((old & ~wmask) | (val & wmask)) & ~(w1c & val));
  }
  void SetQuad(uint16_t off, uint64_t val) {
    const uint64_t old = Load<uint64_t>(csr_, off);
    const uint64_t wmask = Load<uint64_t>(wmask_, off);
    const uint64_t w1c = Load<uint64_t>(w1cmask_, off);
    Store(csr_, off, ((old & ~wmask) | (val & wmask)) & ~(w1c & val));
  }
  // Guest-visible reads: write-only bits read 0.
  uint32_t GetLong(uint16_t off) const {
    return Load<uint32_t>(csr_, off) & ~Load<uint32_t>(womask_, off);
  }
  uint64_t GetQuad(uint16_t off) const {
    return Load<uint64_t>(csr_, off) & ~Load<uint64_t>(womask_, off);
  }

  // Device-side access, no masks.
  uint32_t GetLongRaw(uint16_t off) const { return Load<uint32_t>(csr_, off); }
  uint64_t GetQuadRaw(uint16_t off) const { return Load<uint64_t>(csr_, off); }
  void SetLongRaw(uint16_t off, uint32_t val) { Store(csr_, off, val); }
  void SetQuadRaw(uint16_t off, uint64_t val) { Store(csr_, off, val); }
  // (raw & ~clear) | set; returns the new value.
  uint32_t SetClearMaskLong(uint16_t off, uint32_t clear, uint32_t set) {
    const uint32_t v = (GetLongRaw(off) & ~clear) | set;
    SetLongRaw(off, v);
    return v;
  }
  uint64_t SetClearMaskQuad(uint16_t off, uint64_t clear, uint64_t set) {
    const uint64_t v = (GetQuadRaw(off) & ~clear) | set;
    SetQuadRaw(off, v);
    return v;
  }

  // Typed conveniences.
  uint32_t Raw(Reg32 r) const { return GetLongRaw(Offset(r)); }
  uint64_t Raw(Reg64 r) const { return GetQuadRaw(Offset(r)); }

 private:
  using Bytes = std::array<uint8_t, kRegBlockSize>;
  // One load/store of a 4- or 8-byte host integer (the bytes are little-
  // endian, as the host: asserted below); every guest register access
  // runs these, inline.
  template <typename T>
  static T Load(const Bytes& b, uint16_t off) {
    VIOMMU_CHECK(size_t{off} + sizeof(T) <= b.size());
    T v;
    std::memcpy(&v, &b[off], sizeof v);
    return v;
  }
  template <typename T>
  static void Store(Bytes& b, uint16_t off, T val) {
    VIOMMU_CHECK(size_t{off} + sizeof(T) <= b.size());
    std::memcpy(&b[off], &val, sizeof val);
  }

  Bytes csr_;
  Bytes wmask_;
  Bytes w1cmask_;
  Bytes womask_;
};

static_assert(std::endian::native == std::endian::little,
              "RegisterFile keeps register bytes as host integers");

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_REGISTER_FILE_H_
