// The vtd fuzz target's guest-RAM layout (the region its structured
// actions aim at, the interrupt-remapping table), its PCI functions and
// its input reader. vtd_fuzzer.cc says what the target does.
#ifndef VIOMMU_TESTS_FUZZ_VTD_FUZZ_LAYOUT_H_
#define VIOMMU_TESTS_FUZZ_VTD_FUZZ_LAYOUT_H_

#include <cstdint>

#include "tests/fuzz/fuzz_input.h"

namespace viommu::vtd::fuzz {

inline constexpr uint64_t kRegion = 0x10'0000;
inline constexpr uint64_t kPage = 0x1000;
inline constexpr uint64_t kRoot = kRegion;
inline constexpr uint64_t kContext = kRegion + kPage;
inline constexpr uint64_t kTables = kRegion + 2 * kPage;
inline constexpr int kNumTables = 10;
inline constexpr uint64_t kQueue = kRegion + 12 * kPage;
inline constexpr uint64_t kStatus = kRegion + 13 * kPage;
inline constexpr uint64_t kData = kRegion + 14 * kPage;
inline constexpr int kRegionPages = 16;
inline constexpr uint64_t kIrTable = kRegion + kRegionPages * kPage;  // 1 MiB
inline constexpr int kMaxActions = 192;
// Scalable mode: the PASID directory and two PASID tables, past the
// interrupt-remapping table's first 64 KiB (IRTEs 0..4095).
inline constexpr uint64_t kSmPasidDir = kRegion + 0x20 * kPage;
inline constexpr uint64_t kSmPasidTables = kRegion + 0x21 * kPage;

inline constexpr uint8_t kEduDevfn = 0x20;
inline constexpr uint8_t kTestdevDevfn = 0x28;
inline constexpr uint64_t kEduBar = 0xfe00'0000;      // 1 MiB
inline constexpr uint64_t kTestdevBar = 0xfe10'0000;  // 8 KiB
inline constexpr uint8_t kDevfns[2] = {kEduDevfn, kTestdevDevfn};

using Input = ::viommu::fuzz::FuzzInput;

}  // namespace viommu::vtd::fuzz

#endif  // VIOMMU_TESTS_FUZZ_VTD_FUZZ_LAYOUT_H_
