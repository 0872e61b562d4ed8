// The virtio_iommu fuzz target's machine layout (PCI functions, BARs,
// guest-RAM areas of the queues and buffers), its input reader and its
// failure report. virtio_iommu_fuzzer.cc says what the target does.
#ifndef VIOMMU_TESTS_FUZZ_VIRTIO_IOMMU_FUZZ_LAYOUT_H_
#define VIOMMU_TESTS_FUZZ_VIRTIO_IOMMU_FUZZ_LAYOUT_H_

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/fuzz/fuzz_input.h"
#include "viommu/hw/iommu/virtio/virtio_iommu.h"
#include "viommu/hw/iommu/virtio/virtio_iommu_regs.h"
#include "viommu/hw/virtio/virtio_pci_function.h"
#include "viommu/hw/virtio/virtio_regs.h"
#include "viommu/util/range.h"

namespace viommu::fuzz::virtio_iommu_target {

namespace vi = ::viommu::virtio_iommu;
namespace vio = ::viommu::hw::virtio;

constexpr int kMaxActions = 160;
constexpr size_t kMaxBatch = 8;

// PCI layout.
constexpr uint8_t kIommuDevfn = 0x18;         // 03.0
constexpr uint8_t kEduDevfn = 0x20;           // 04.0
constexpr uint8_t kTestDevfn = 0x28;          // 05.0
constexpr uint8_t kVfioDevfn = 0x30;          // 06.0, vfio-pci of 0000:01:00.0
constexpr uint64_t kVirtioBar = 0xfe00'0000;  // BAR4, 16 KiB
constexpr uint64_t kEduBar = 0xfe10'0000;     // 1 MiB
constexpr uint64_t kTestBar = 0xfe20'0000;    // 8 KiB
constexpr uint64_t kCommon = kVirtioBar + vio::kVirtioPciCommonOffset;
constexpr uint64_t kDevCfg = kVirtioBar + vio::kVirtioPciDeviceOffset;
constexpr uint64_t kNotify = kVirtioBar + vio::kVirtioPciNotifyOffset;

// Endpoints with a notifier, and the ones the DMA actions use.
constexpr std::array<uint16_t, 4> kWatched = {0x00, kEduDevfn, kTestDevfn,
                                              kVfioDevfn};

// Guest memory (16 MiB).
constexpr uint64_t kRamSize = 16 << 20;
constexpr uint64_t kReqDesc = 0x10000, kReqAvail = 0x11000, kReqUsed = 0x12000;
constexpr uint64_t kEvtDesc = 0x14000, kEvtAvail = 0x15000, kEvtUsed = 0x16000,
                   kEvtBufs = 0x18000;
constexpr uint16_t kEvtQueueSize = 16;
constexpr uint64_t kIndirect = 0x20000;     // + slot * 0x400
constexpr uint64_t kOutBufs = 0x30000;      // + slot * 0x400
constexpr uint64_t kInBufs = 0x40000;       // + slot * 0x800
constexpr uint64_t kDataFirst = 0x10'0000;  // DMA writes land only here
constexpr uint64_t kMsiFirst = vi::kMsiWindowFirst;
constexpr uint64_t kMsiLast = vi::kMsiWindowLast;

// dma-testdev and edu registers (edu's buffer is at 0x40000 of its DMA
// space only: not in its BAR).
constexpr uint64_t kTdIova = 0x08, kTdLen = 0x10, kTdOffset = 0x14,
                   kTdCmd = 0x18, kTdResult = 0x1c, kTdBuffer = 0x1000;
constexpr uint64_t kEduDmaSrc = 0x80, kEduDmaDst = 0x88, kEduDmaCnt = 0x90,
                   kEduDmaCmd = 0x98, kEduBuffer = 0x40000;

// VIRTIO_IOMMU_FUZZER_VERBOSE=1: print every request's answer (triage).
bool Verbose();

// Reports a broken invariant and aborts, so libFuzzer keeps the input.
[[noreturn]] void Fail(const char* what, uint64_t a, uint64_t b);

using Input = ::viommu::fuzz::FuzzInput;

}  // namespace viommu::fuzz::virtio_iommu_target

#endif  // VIOMMU_TESTS_FUZZ_VIRTIO_IOMMU_FUZZ_LAYOUT_H_
