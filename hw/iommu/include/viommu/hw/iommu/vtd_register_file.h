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
#include <cstdint>

#include "viommu/hw/iommu/vtd_regs.h"

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
  void SetLong(uint16_t off, uint32_t val);
  void SetQuad(uint16_t off, uint64_t val);
  // Guest-visible reads: write-only bits read 0.
  uint32_t GetLong(uint16_t off) const;
  uint64_t GetQuad(uint16_t off) const;

  // Device-side access, no masks.
  uint32_t GetLongRaw(uint16_t off) const;
  uint64_t GetQuadRaw(uint16_t off) const;
  void SetLongRaw(uint16_t off, uint32_t val);
  void SetQuadRaw(uint16_t off, uint64_t val);
  // (raw & ~clear) | set; returns the new value.
  uint32_t SetClearMaskLong(uint16_t off, uint32_t clear, uint32_t set);
  uint64_t SetClearMaskQuad(uint16_t off, uint64_t clear, uint64_t set);

  // Typed conveniences.
  uint32_t Raw(Reg32 r) const { return GetLongRaw(Offset(r)); }
  uint64_t Raw(Reg64 r) const { return GetQuadRaw(Offset(r)); }

 private:
  using Bytes = std::array<uint8_t, kRegBlockSize>;
  static uint64_t Load(const Bytes& b, uint16_t off, unsigned size);
  static void Store(Bytes& b, uint16_t off, unsigned size, uint64_t val);

  Bytes csr_;
  Bytes wmask_;
  Bytes w1cmask_;
  Bytes womask_;
};

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_REGISTER_FILE_H_
