// Interrupt remapping through the C API: an endpoint's DMA write into the
// interrupt window of a VT-d with intremap=on goes through the guest's
// IRTEs, and the context's msi callback gets the remapped message with its
// whole address (an x2APIC destination above 255 in bits 63:40); blocked
// requests are recorded in VT-d's fault registers; compatibility format and
// IR off pass unchanged. The last test runs DMA threads against IRTE
// rewrites and faults (suite stress, under TSan in CI).
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/capi/capi_fixture.h"
#include "viommu.h"
#include "viommu/hw/iommu/vtd_regs.h"

namespace viommu::capi::testing {
namespace {

constexpr uint64_t kIrt = 0x20'0000;  // the guest's IRT (256 entries)
constexpr uint8_t kDevfn = 0x20;      // 00:04.0

// A remappable-format request for `handle` (SHV clear: the IOxAPIC form,
// data ignored but for the traces).
uint64_t Remappable(uint32_t handle) {
  return 0xfee0'0000 | uint64_t{handle & 0x7fff} << 5 | 1u << 4 |
         (handle & 0x8000 ? 1u << 2 : 0);
}

class CapiInterruptRemapTest : public CapiTest {
 protected:
  void SetUp() override { AddRam(); }

  // VT-d with `props`, endpoint 00:04.0 behind it (translation stays off:
  // DMA is untranslated, interrupts are remapped).
  void NewVtd(const char* props) {
    ASSERT_EQ(viommu_iommu_new(ctx_, "intel-iommu", props, &iommu_), 0);
    ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, kDevfn, iommu_, &ep_), 0);
  }
  // IRTE `index`: present, fixed delivery, edge, `vector` to `dest_id`
  // (xAPIC: the APIC id goes in bits 15:8 of dest_id), no source check.
  void SetIrte(uint32_t index, uint8_t vector, uint32_t dest_id,
               bool present = true) {
    const uint64_t lo =
        (present ? 1u : 0u) | uint64_t{vector} << 16 | uint64_t{dest_id} << 32;
    Write64(kIrt + index * 16u, lo);
    Write64(kIrt + index * 16u + 8, 0);
  }
  void Reg(uint64_t off, uint64_t v, uint32_t size) {
    ASSERT_EQ(viommu_mmio_access(ctx_, kVtdBase + off, &v, size, 1), 0);
  }
  uint64_t ReadReg(uint64_t off, uint32_t size) {
    uint64_t v = 0;
    EXPECT_EQ(viommu_mmio_access(ctx_, kVtdBase + off, &v, size, 0), 0);
    return v;
  }
  // IRTA (256 entries) latched, then IR enabled (and CFI if asked).
  void EnableIr(bool eime, bool cfi = false) {
    Reg(vtd::Offset(vtd::Reg64::kIrta), kIrt | (eime ? vtd::kIrtaEime : 0) | 7,
        8);
    Reg(vtd::Offset(vtd::Reg32::kGcmd), vtd::kGcmdSirtp, 4);
    Reg(vtd::Offset(vtd::Reg32::kGcmd),
        vtd::kGcmdIre | (cfi ? vtd::kGcmdCfi : 0), 4);
    ASSERT_NE(ReadReg(vtd::Offset(vtd::Reg32::kGsts), 4) & vtd::kGstsIres, 0u);
  }
  int DmaMsi(uint64_t addr, uint32_t data) {
    return viommu_dma_rw(ep_, addr, &data, 4, VIOMMU_DMA_WRITE, nullptr);
  }

  viommu_iommu* iommu_ = nullptr;
  viommu_ep* ep_ = nullptr;
};

TEST_F(CapiInterruptRemapTest, RemappedMsiReachesTheCallbackAsTheIrteSays) {
  NewVtd("intremap=on");
  SetIrte(5, 0x41, 3u << 8);  // vector 0x41 to APIC 3
  EnableIr(/*eime=*/false);
  ASSERT_EQ(DmaMsi(Remappable(5), 0), 0);
  ASSERT_EQ(rec_.msis.size(), 1u);
  EXPECT_EQ(rec_.msis[0].addr, 0xfee0'3000u);  // dest 3, physical
  EXPECT_EQ(rec_.msis[0].data, 0x4041u);       // assert, fixed, 0x41
  EXPECT_EQ(rec_.msis[0].sid, uint32_t{kDevfn});
}

TEST_F(CapiInterruptRemapTest, X2apicDestinationAbove255KeepsTheWholeAddress) {
  NewVtd("intremap=on,x-buggy-eim=on");
  SetIrte(9, 0x52, 0x12345);  // x2APIC id 0x12345
  EnableIr(/*eime=*/true);
  ASSERT_EQ(DmaMsi(Remappable(9), 0), 0);
  ASSERT_EQ(rec_.msis.size(), 1u);
  // Destination 7:0 in bits 19:12, 31:8 in bits 63:40.
  EXPECT_EQ(rec_.msis[0].addr,
            0xfee0'0000u | uint64_t{0x45} << 12 | uint64_t{0x123} << 40);
  EXPECT_EQ(rec_.msis[0].data, 0x4052u);
}

TEST_F(CapiInterruptRemapTest, NotPresentIrteIsBlockedAndRecordedAsAFault) {
  NewVtd("intremap=on");
  SetIrte(6, 0x30, 1u << 8, /*present=*/false);
  EnableIr(false);
  EXPECT_NE(DmaMsi(Remappable(6), 0), 0);  // the window refused the write
  EXPECT_TRUE(rec_.msis.empty());
  EXPECT_NE(ReadReg(vtd::Offset(vtd::Reg32::kFsts), 4) & vtd::kFstsPpf, 0u);
  const uint64_t hi = ReadReg(vtd::Offset(vtd::Reg64::kFrcd0Hi), 8);
  EXPECT_NE(hi & vtd::kFrcdF, 0u);
  EXPECT_EQ(hi & vtd::kFrcdSidMask, uint64_t{kDevfn});
  EXPECT_EQ((hi >> vtd::kFrcdFrShift) & 0xff, 0x22u);  // IRTE not present
  const uint64_t lo = ReadReg(vtd::Offset(vtd::Reg64::kFrcd0Lo), 8);
  EXPECT_EQ(lo >> vtd::kFrcdIrIndexShift, 6u);  // the interrupt index
}

TEST_F(CapiInterruptRemapTest, IndexBeyondTheTableIsAFaultToo) {
  NewVtd("intremap=on");
  EnableIr(false);
  EXPECT_NE(DmaMsi(Remappable(300), 0), 0);  // 256 entries
  EXPECT_TRUE(rec_.msis.empty());
  const uint64_t hi = ReadReg(vtd::Offset(vtd::Reg64::kFrcd0Hi), 8);
  EXPECT_EQ((hi >> vtd::kFrcdFrShift) & 0xff, 0x21u);
}

TEST_F(CapiInterruptRemapTest, CompatibilityFormatAndIrOffAreUnchanged) {
  NewVtd("intremap=on");
  // IR not enabled yet: a compatibility-format message passes as written.
  ASSERT_EQ(DmaMsi(0xfee0'1000, 0x30), 0);
  ASSERT_EQ(rec_.msis.size(), 1u);
  EXPECT_EQ(rec_.msis[0].addr, 0xfee0'1000u);
  EXPECT_EQ(rec_.msis[0].data, 0x30u);
  // IR on with CFI: compatibility format still passes unchanged.
  EnableIr(false, /*cfi=*/true);
  ASSERT_EQ(DmaMsi(0xfee0'2000, 0x31), 0);
  ASSERT_EQ(rec_.msis.size(), 2u);
  EXPECT_EQ(rec_.msis[1].addr, 0xfee0'2000u);
  EXPECT_EQ(rec_.msis[1].data, 0x31u);
  // Without CFI it is blocked (fault 0x25).
  Reg(vtd::Offset(vtd::Reg32::kGcmd), vtd::kGcmdIre, 4);
  EXPECT_NE(DmaMsi(0xfee0'2000, 0x32), 0);
  EXPECT_EQ(rec_.msis.size(), 2u);
  const uint64_t hi = ReadReg(vtd::Offset(vtd::Reg64::kFrcd0Hi), 8);
  EXPECT_EQ((hi >> vtd::kFrcdFrShift) & 0xff, 0x25u);
}

TEST_F(CapiInterruptRemapTest, WithoutIntremapTheWindowIsPlainMsi) {
  NewVtd(nullptr);
  ASSERT_EQ(DmaMsi(Remappable(5), 0x77), 0);  // no remapping hardware
  ASSERT_EQ(rec_.msis.size(), 1u);
  EXPECT_EQ(rec_.msis[0].addr, Remappable(5));
  EXPECT_EQ(rec_.msis[0].data, 0x77u);
}

// Counts messages from any thread (the fixture's recorder is for one).
struct AtomicMsis {
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> bad{0};
  static void OnMsi(void* opaque, uint64_t addr, uint32_t data, uint32_t) {
    auto* self = static_cast<AtomicMsis*>(opaque);
    // Every IRTE the test writes names APIC 1 or 2 with vector 0x40-0x47.
    const uint64_t dest = (addr >> 12) & 0xff;
    if ((addr & 0xfff0'0000) != 0xfee0'0000 || (dest != 1 && dest != 2) ||
        (data & 0xff) < 0x40 || (data & 0xff) > 0x47) {
      self->bad.fetch_add(1, std::memory_order_relaxed);
    }
    self->count.fetch_add(1, std::memory_order_relaxed);
  }
};

// DMA threads send remappable MSIs (one entry in 8 is not present, so
// they fault) while the control thread latches the table again (SIRTP: a
// global interrupt-entry-cache invalidation) and reads and clears the
// fault registers. TSan checks the remapper's cache and the
// fault path; the test checks that every delivered message was one of the
// IRTEs' and that both threads made progress.
TEST(CapiInterruptRemapStressTest, DmaMsisAgainstInvalidationsAndFaultRecords) {
  AtomicMsis msis;
  viommu_config cfg{};
  cfg.size = sizeof(cfg);
  viommu_callbacks cb{};
  cb.size = sizeof(cb);
  cb.msi = &AtomicMsis::OnMsi;
  viommu_ctx* ctx = nullptr;
  ASSERT_EQ(viommu_ctx_new(&cfg, &cb, &msis, &ctx), 0);
  std::vector<uint8_t> ram(4 << 20);
  viommu_region r{};
  r.size = sizeof(r);
  r.kind = VIOMMU_REGION_RAM;
  r.len = ram.size();
  r.hva = ram.data();
  r.fd = -1;
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx, &r, &id), 0);
  viommu_iommu* iommu = nullptr;
  ASSERT_EQ(viommu_iommu_new(ctx, "intel-iommu", "intremap=on", &iommu), 0);
  std::vector<viommu_ep*> eps(3);
  for (size_t i = 0; i < eps.size(); ++i) {
    ASSERT_EQ(viommu_ep_new(ctx, 0, 0, static_cast<uint8_t>(0x20 + 8 * i),
                            iommu, &eps[i]),
              0);
  }
  auto reg = [&](uint64_t off, uint64_t v, uint32_t size, int write) {
    EXPECT_EQ(viommu_mmio_access(ctx, kVtdBase + off, &v, size, write), 0);
    return v;
  };
  auto irte = [&](uint32_t index, uint8_t vector, uint8_t apic, bool p) {
    const uint64_t lo =
        (p ? 1u : 0u) | uint64_t{vector} << 16 | uint64_t{apic} << 40;
    const uint64_t hi = 0;
    std::memcpy(&ram[kIrt + index * 16], &lo, 8);
    std::memcpy(&ram[kIrt + index * 16 + 8], &hi, 8);
  };
  for (uint32_t i = 0; i < 8; ++i) irte(i, 0x40 + i, 1, i != 7);
  reg(vtd::Offset(vtd::Reg64::kIrta), kIrt | 7, 8, 1);
  reg(vtd::Offset(vtd::Reg32::kGcmd), vtd::kGcmdSirtp, 4, 1);
  reg(vtd::Offset(vtd::Reg32::kGcmd), vtd::kGcmdIre, 4, 1);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> sent{0};
  std::vector<std::thread> dma;
  for (viommu_ep* ep : eps) {
    dma.emplace_back([&, ep] {
      uint32_t h = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        uint32_t data = 0;
        (void)viommu_dma_rw(ep, Remappable(h++ % 8), &data, 4, VIOMMU_DMA_WRITE,
                            nullptr);
        sent.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  // The IRTEs stay as written (a guest rewriting one under a live device
  // races it in guest RAM, which TSan rightly reports); what changes under
  // the DMA threads is VT-d's state: cache flushes and fault records.
  int rounds = 0;
  while (sent.load(std::memory_order_relaxed) < 20000 && rounds < 200000) {
    ++rounds;
    (void)reg(vtd::Offset(vtd::Reg32::kFsts), 0, 4, 0);
    reg(vtd::Offset(vtd::Reg32::kFsts), vtd::kFstsPpf | vtd::kFstsPfo, 4, 1);
    reg(vtd::Offset(vtd::Reg64::kFrcd0Hi), vtd::kFrcdF, 8, 1);
    reg(vtd::Offset(vtd::Reg32::kGcmd), vtd::kGcmdSirtp | vtd::kGcmdIre, 4, 1);
    std::this_thread::yield();
  }
  stop.store(true);
  for (std::thread& t : dma) t.join();
  EXPECT_GE(sent.load(), 20000u);
  EXPECT_GT(msis.count.load(), 0u);
  EXPECT_EQ(msis.bad.load(), 0u);
  for (viommu_ep* ep : eps) viommu_ep_free(ep);
  EXPECT_EQ(viommu_iommu_free(iommu), 0);
  viommu_ctx_free(ctx);
}

}  // namespace
}  // namespace viommu::capi::testing
