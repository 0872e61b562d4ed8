// tests/qtest/vtd_guest.h — a minimal guest VT-d driver for qtest-style
// tests: it builds legacy root/context tables and second-level page tables
// in guest RAM with qtest writes, and drives the intel-iommu register block
// at 0xfed90000 (enable, register-based and queued invalidation, fault
// records).
//
//   VtdGuest vtd(&qts, /*levels=*/3);        // aw-bits=39: 3-level tables
//   vtd.SetContext(0x28, /*did=*/1);          // 00:05.0 in domain 1
//   vtd.Map(0x28, 0x1000'0000, 0x30'0000, VtdGuest::k4K, kRw);
//   vtd.Enable();                             // RTADDR, SRTP, TE
//   ... DMA at IOVA 0x1000'0000 lands at GPA 0x30'0000 ...
//   VtdGuest::Fault f = vtd.ReadFault();     // FRCD[0]
//
// Layout (guest-physical, in RAM below 256 MiB): root table at kRootTable,
// bus 0's context table right after it, then a bump allocator of zeroed
// 4 KiB table pages. One context table (bus 0) is enough for q35 tests.
#ifndef VIOMMU_TESTS_QTEST_VTD_GUEST_H_
#define VIOMMU_TESTS_QTEST_VTD_GUEST_H_

#include <cstdint>
#include <vector>

#include "tests/qtest/qtest_client.h"

namespace viommu::qtest {

class VtdGuest {
 public:
  static constexpr uint64_t kRegBase = 0xfed9'0000;
  static constexpr uint64_t kRootTable = 0x0100'0000;
  static constexpr uint64_t kContextTable = kRootTable + 0x1000;
  static constexpr uint64_t kTablePool = 0x0110'0000;

  // Register offsets.
  static constexpr uint64_t kGcmd = 0x18, kGsts = 0x1c, kRtaddr = 0x20,
                            kCcmd = 0x28, kFsts = 0x34, kFectl = 0x38,
                            kIqh = 0x80, kIqt = 0x88, kIqa = 0x90, kIcs = 0x9c,
                            kIotlb = 0xf8, kIva = 0xf0, kFrcdLo = 0x220,
                            kFrcdHi = 0x228;

  // Page sizes a leaf can have.
  static constexpr uint64_t k4K = 1ull << 12, k2M = 1ull << 21,
                            k1G = 1ull << 30;
  // PTE permission bits.
  static constexpr uint64_t kRead = 1, kWrite = 2, kRw = 3;

  // `levels`: 3 (aw-bits=39) or 4 (aw-bits=48).
  VtdGuest(QtestClient* qts, int levels);

  // Context entry of bus 0 `devfn`: present, translation type `tt`
  // (0 multi-level, 2 pass-through), domain `did`, this guest's level
  // count, fault processing disabled when `fpd`. Allocates the device's
  // top-level table on first use.
  void SetContext(uint8_t devfn, uint16_t did, uint8_t tt = 0,
                  bool fpd = false);
  // Writes raw context-entry quadwords (for reserved-bit tests).
  void SetRawContext(uint8_t devfn, uint64_t lo, uint64_t hi);
  void ClearContext(uint8_t devfn);

  // Maps [iova, iova + size) to gpa with one leaf of `size` (4K/2M/1G),
  // creating intermediate tables (R+W) as needed.
  void Map(uint8_t devfn, uint64_t iova, uint64_t gpa, uint64_t size,
           uint64_t perm);
  // Clears the leaf for `iova` at `size` (the entry becomes 0).
  void Unmap(uint8_t devfn, uint64_t iova, uint64_t size);
  // Guest-physical address of the PTE for `iova` at the level of `size`
  // (creating tables on the way), for tests that write raw entries.
  uint64_t PteAddress(uint8_t devfn, uint64_t iova, uint64_t size);

  // RTADDR + GCMD.SRTP, then GCMD.TE.
  void Enable();
  void Disable();  // GCMD.TE off
  uint32_t Gsts();

  // Register-based invalidations (QI off).
  void InvalidateContextGlobal();
  void InvalidateIotlbGlobal();
  void InvalidateIotlbDomain(uint16_t did);
  void InvalidateIotlbPage(uint16_t did, uint64_t addr, uint8_t am);

  // Queued invalidation: a 4 KiB queue (256 descriptors) at `base`.
  void EnableQueue(uint64_t base);
  // Appends a descriptor and moves IQT past it.
  void Submit(uint64_t lo, uint64_t hi);
  // Wait descriptor writing `data` to `status_addr` (SW), optional IF.
  void SubmitWait(uint64_t status_addr, uint32_t data, bool interrupt);

  struct Fault {
    uint64_t lo = 0;  // FI: the faulting page address
    uint64_t hi = 0;  // F, T, FR, SID
    bool pending() const { return hi >> 63; }
    bool is_read() const { return (hi >> 62) & 1; }
    uint8_t reason() const { return (hi >> 32) & 0xff; }
    uint16_t sid() const { return hi & 0xffff; }
  };
  Fault ReadFault();
  // Clears FRCD[0].F and FSTS (write-1-clear).
  void ClearFaults();

  QtestClient& qts() { return *qts_; }

 private:
  uint64_t AllocTable();
  uint64_t TopTable(uint8_t devfn);
  void Gcmd(uint32_t bit, bool on);

  QtestClient* qts_;
  int levels_;
  uint64_t next_table_ = kTablePool;
  uint64_t top_[256] = {};
  uint32_t gcmd_ = 0;  // the GSTS bits this driver keeps on
  uint64_t queue_ = 0;
  uint32_t tail_ = 0;
};

}  // namespace viommu::qtest

#endif  // VIOMMU_TESTS_QTEST_VTD_GUEST_H_
