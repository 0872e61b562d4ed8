// tests/hw/iommu/vtd_machine_guest.h — a minimal VT-d "guest driver" for
// unit tests over a Q35Machine: builds root/context/second-level tables in
// guest RAM and drives the register block through the system address space.
//
//   VtdMachineGuest g(machine.get(), /*levels=*/3);
//   g.SetContext(0x20, /*did=*/1);
//   g.Map(0x1000, 0x40000, kPage4K, memory::kIommuReadWrite);
//   g.Enable();                         // SRTP then TE
//   g.InvalidatePage(1, 0x1000, 0);     // register-based PSI
#ifndef VIOMMU_TESTS_HW_IOMMU_VTD_MACHINE_GUEST_H_
#define VIOMMU_TESTS_HW_IOMMU_VTD_MACHINE_GUEST_H_

#include <cstdint>

#include "viommu/hw/i386/q35_machine.h"
#include "viommu/hw/iommu/vtd_regs.h"
#include "viommu/memory/iommu.h"

namespace viommu::vtd::testing {

inline constexpr uint64_t kPage4K = 0x1000;
inline constexpr uint64_t kPage2M = 0x20'0000;
inline constexpr uint64_t kPage1G = 0x4000'0000;

class VtdMachineGuest {
 public:
  static constexpr uint64_t kRoot = 0x10'0000;
  static constexpr uint64_t kContext = 0x10'1000;
  static constexpr uint64_t kTablesBase = 0x10'2000;

  VtdMachineGuest(hw::Q35Machine* m, int levels) : m_(m), levels_(levels) {
    top_ = NewTable();
    Write64(kRoot, kContext | 1);  // bus 0
  }

  // Context entry of `devfn`: multi-level (or pass-through), domain `did`.
  void SetContext(uint8_t devfn, uint16_t did, bool pass_through = false,
                  bool fpd = false) {
    uint64_t lo = top_ | (pass_through ? 2u << 2 : 0) | (fpd ? 2 : 0) | 1;
    uint64_t hi = static_cast<uint64_t>(levels_ - 2) | uint64_t{did} << 8;
    Write64(kContext + devfn * 16, lo);
    Write64(kContext + devfn * 16 + 8, hi);
  }
  void ClearContext(uint8_t devfn) {
    Write64(kContext + devfn * 16, 0);
    Write64(kContext + devfn * 16 + 8, 0);
  }

  // Maps [iova, iova + size) to gpa with `perm` (size 4K, 2M or 1G);
  // perm kIommuNone clears the leaf.
  void Map(uint64_t iova, uint64_t gpa, uint64_t size, memory::IommuPerm perm) {
    const int leaf = size == kPage1G ? 3 : size == kPage2M ? 2 : 1;
    uint64_t table = top_;
    for (int level = levels_; level > leaf; --level) {
      uint64_t slot = table + Index(iova, level) * 8;
      uint64_t e = Read64(slot);
      if (!(e & 3)) {
        e = NewTable() | 3;
        Write64(slot, e);
      }
      table = e & ~uint64_t{0xfff} & ((uint64_t{1} << 52) - 1);
    }
    uint64_t v = perm == memory::kIommuNone
                     ? 0
                     : (gpa | perm | (leaf > 1 ? 1u << 7 : 0));
    Write64(table + Index(iova, leaf) * 8, v);
  }
  // Clears the level-`level` entry covering iova (a whole PDE, ...).
  void ClearEntry(uint64_t iova, int level) {
    uint64_t table = top_;
    for (int l = levels_; l > level; --l) {
      table = Read64(table + Index(iova, l) * 8) & ~uint64_t{0xfff};
    }
    Write64(table + Index(iova, level) * 8, 0);
  }

  void SetRoot() {
    WriteReg64(Reg64::kRtaddr, kRoot);
    // Keep TE as it is (GCMD is written as GSTS | command).
    WriteReg32(Reg32::kGcmd, (ReadReg32(Reg32::kGsts) & kGstsTes) | kGcmdSrtp);
  }
  void Enable() {
    SetRoot();
    WriteReg32(Reg32::kGcmd, kGcmdTe);
  }
  void Disable() { WriteReg32(Reg32::kGcmd, 0); }

  void InvalidatePage(uint16_t did, uint64_t addr, uint8_t am) {
    WriteReg64(Reg64::kIva, addr | am);
    WriteReg64(Reg64::kIotlb, kIotlbIvt | 3ull << kIotlbIirgShift |
                                  uint64_t{did} << kIotlbDidShift);
  }
  void InvalidateDomain(uint16_t did) {
    WriteReg64(Reg64::kIotlb, kIotlbIvt | 2ull << kIotlbIirgShift |
                                  uint64_t{did} << kIotlbDidShift);
  }
  void InvalidateGlobal() {
    WriteReg64(Reg64::kIotlb, kIotlbIvt | 1ull << kIotlbIirgShift);
  }
  void InvalidateContextGlobal() {
    WriteReg64(Reg64::kCcmd, kCcmdIcc | 1ull << kCcmdCirgShift);
  }
  void InvalidateContextDevice(uint16_t sid) {
    WriteReg64(Reg64::kCcmd, kCcmdIcc | 3ull << kCcmdCirgShift |
                                 uint64_t{sid} << kCcmdSidShift);
  }

  uint32_t ReadReg32(Reg32 r) {
    uint32_t v = 0;
    (void)m_->system_as().Read(hw::kVtdRegBase + Offset(r), &v, 4);
    return v;
  }
  uint64_t ReadReg64(Reg64 r) {
    uint64_t v = 0;
    (void)m_->system_as().Read(hw::kVtdRegBase + Offset(r), &v, 8);
    return v;
  }
  void WriteReg32(Reg32 r, uint32_t v) {
    (void)m_->system_as().Write(hw::kVtdRegBase + Offset(r), &v, 4);
  }
  void WriteReg64(Reg64 r, uint64_t v) {
    (void)m_->system_as().Write(hw::kVtdRegBase + Offset(r), &v, 8);
  }
  uint64_t Read64(uint64_t gpa) {
    uint64_t v = 0;
    (void)m_->system_as().Read(gpa, &v, 8);
    return v;
  }
  void Write64(uint64_t gpa, uint64_t v) {
    (void)m_->system_as().Write(gpa, &v, 8);
  }

 private:
  static uint64_t Index(uint64_t iova, int level) {
    return (iova >> (12 + 9 * (level - 1))) & 511;
  }
  uint64_t NewTable() {
    uint64_t t = next_;
    next_ += 0x1000;
    for (int i = 0; i < 512; ++i) Write64(t + i * 8, 0);
    return t;
  }

  hw::Q35Machine* m_;
  int levels_;
  uint64_t next_ = kTablesBase;
  uint64_t top_ = 0;
};

}  // namespace viommu::vtd::testing

#endif  // VIOMMU_TESTS_HW_IOMMU_VTD_MACHINE_GUEST_H_
