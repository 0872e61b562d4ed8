// tests/fuzz/vtd_dev_iotlb_oracle.h — the VT-d fuzzer's (vtd_fuzzer.cc)
// reference for device-IOTLB invalidation descriptors (type 3), written
// from the VT-d and ATS specifications with QEMU 7.2's reserved masks, and
// a DEVIOTLB_UNMAP notifier that checks every event it gets.
//
//   std::optional<RefDevIotlb> want = DecodeDevIotlb(lo, hi);
//   DevIotlbRecorder rec;   // registered with kNotifyDevIotlbUnmap
//   ... submit the descriptor ...
//   if (want && want->sid == device_sid) {
//     rec.Expect({want->iova, want->last});   // aborts on a mismatch
//   }
//
// Failures print what went wrong and abort() (vtd_shadow_checker.h Fail).
//
// Threading: control context only.
#ifndef VIOMMU_TESTS_FUZZ_VTD_DEV_IOTLB_ORACLE_H_
#define VIOMMU_TESTS_FUZZ_VTD_DEV_IOTLB_ORACLE_H_

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "tests/fuzz/vtd_shadow_checker.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/iommu_notifier_chains.h"

namespace viommu::vtd::fuzz {

// A valid type-3 descriptor: the device (SID) and the inclusive IOVA
// range its ATS translations must be dropped for.
struct RefDevIotlb {
  uint16_t sid = 0;
  uint64_t iova = 0;
  uint64_t last = 0;
};

// nullopt for a descriptor QEMU 7.2 rejects (reserved bits: lo 15:3,
// 31:21, 63:48; hi 11:1). The range: without S, the 4K page of ADDR; with
// S, the lowest clear address bit at or above 12, say bit b, makes it the
// 2^(b+1)-byte block containing ADDR (ATS: bits 12..b-1 set means
// 2^(b+1) bytes); no clear bit at all is the whole 64-bit space.
inline std::optional<RefDevIotlb> DecodeDevIotlb(uint64_t lo, uint64_t hi) {
  constexpr uint64_t kLoReserved = 0xffff'0000'ffe0'fff8;
  constexpr uint64_t kHiReserved = 0xffe;
  if ((lo & 0xf) != 3) return std::nullopt;
  if ((lo & kLoReserved) != 0 || (hi & kHiReserved) != 0) return std::nullopt;
  RefDevIotlb r;
  r.sid = static_cast<uint16_t>(lo >> 32);
  const uint64_t addr = hi & ~uint64_t{0xfff};
  if (!(hi & 1)) {
    r.iova = addr;
    r.last = addr + 0xfff;
    return r;
  }
  int b = 12;
  while (b < 64 && ((addr >> b) & 1)) ++b;
  if (b >= 63) {  // a block of 2^64 bytes
    r.iova = 0;
    r.last = ~uint64_t{0};
    return r;
  }
  const uint64_t block = uint64_t{1} << (b + 1);
  r.iova = addr & ~(block - 1);
  r.last = r.iova + (block - 1);
  return r;
}

// A DEVIOTLB_UNMAP-only notifier over the whole IOVA space: each event
// must be a DEVIOTLB_UNMAP with no permission and an aligned power-of-two
// range (or the whole space), as the descriptor decode can produce.
class DevIotlbRecorder final : public memory::IommuNotifier {
 public:
  void Notify(const memory::IommuEvent& event) override {
    const memory::IommuTlbEntry& e = event.entry;
    if (event.type != memory::IommuEventType::kDevIotlbUnmap) {
      Fail("IOTLB event on a DEVIOTLB_UNMAP notifier", e.iova, e.addr_mask);
    }
    if (e.perm != memory::kIommuNone) {
      Fail("DEVIOTLB_UNMAP with a permission", e.iova, e.perm);
    }
    const uint64_t size = e.addr_mask + 1;  // 0: the whole space
    if ((size & (size - 1)) != 0 || (e.iova & e.addr_mask) != 0 ||
        e.addr_mask < 0xfff) {
      Fail("DEVIOTLB_UNMAP range is not an aligned block", e.iova,
           e.addr_mask);
    }
    got_.push_back({e.iova, e.iova + e.addr_mask});
    ++total_;
  }

  // Forgets what arrived so far (before an action whose events are
  // predicted).
  void Arm() { got_.clear(); }
  // Exactly `want` (in order) arrived since Arm().
  void Expect(const std::vector<std::pair<uint64_t, uint64_t>>& want) const {
    if (got_ != want) {
      Fail("device-IOTLB invalidation events differ from the reference",
           got_.size(), want.size());
    }
  }
  uint64_t total() const { return total_; }

 private:
  std::vector<std::pair<uint64_t, uint64_t>> got_;
  uint64_t total_ = 0;
};

}  // namespace viommu::vtd::fuzz

#endif  // VIOMMU_TESTS_FUZZ_VTD_DEV_IOTLB_ORACLE_H_
