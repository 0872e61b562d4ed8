// VT-d interrupt remapping: request decoding and IRTE checks (vtd_irte.h),
// and the remapper inside a VtdEngine: IRTA / SIRTP / IRE / CFI, device
// MSI writes through the "vtd-ir" window, each fault reason with its fault
// record, FPD, and the interrupt-entry cache with IEC descriptors. These
// are the parts QEMU 7.2 cannot show over qtest (it records no IR faults
// and the remapped message reaches its APIC, not memory).
#include "viommu/hw/iommu/vtd_interrupt_remap.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "gtest/gtest.h"
#include "viommu/hw/iommu/intel_iommu.h"
#include "viommu/hw/iommu/vtd_engine.h"
#include "viommu/hw/iommu/vtd_irte.h"
#include "viommu/hw/iommu/vtd_properties.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/util/types.h"

namespace viommu::vtd {
namespace {

// --- vtd_irte.h ---

Irte MakeIrte(uint8_t vector, uint32_t dest_id, uint8_t dlm = 0) {
  return Irte{.lo = 1 | uint64_t{dlm} << 5 | uint64_t{vector} << 16 |
                    uint64_t{dest_id} << 32,
              .hi = 0};
}

TEST(IrteTest, DecodesHandleWithBit15InAddressBit2) {
  // handle[14:0] in address 19:5, handle[15] in bit 2, IF bit 4.
  MsiRequestDecode d = DecodeMsiRequest(0xfee0'0000 | 0x1234 << 5 | 1 << 4 |
                                            1 << 2,
                                        0);
  EXPECT_TRUE(d.remappable);
  EXPECT_FALSE(d.shv);
  EXPECT_EQ(d.handle, 0x9234u);
  EXPECT_EQ(d.index, 0x9234u);
  EXPECT_FALSE(d.bad_head);
  EXPECT_FALSE(d.high_address);
}

TEST(IrteTest, SubhandleIsAddedOnlyWithShv) {
  const uint64_t base = 0xfee0'0000 | 5 << 5 | 1 << 4;
  EXPECT_EQ(DecodeMsiRequest(base, 3).index, 5u);
  MsiRequestDecode d = DecodeMsiRequest(base | 1 << 3, 3);
  EXPECT_TRUE(d.shv);
  EXPECT_EQ(d.index, 8u);
  EXPECT_FALSE(d.data_reserved);
  EXPECT_TRUE(DecodeMsiRequest(base | 1 << 3, 0x1'0003).data_reserved);
  // Without SHV the data's upper bits are the IOxAPIC form's, not reserved.
  EXPECT_FALSE(DecodeMsiRequest(base, 0x1'0003).data_reserved);
}

TEST(IrteTest, CompatibilityFormatAndBadAddressesAreFlagged) {
  EXPECT_FALSE(DecodeMsiRequest(0xfee0'1000, 0x41).remappable);
  EXPECT_TRUE(DecodeMsiRequest(0xfef0'0010, 0).bad_head);
  EXPECT_TRUE(DecodeMsiRequest(0x1'fee0'0010, 0).high_address);
}

TEST(IrteTest, FieldsDecode) {
  Irte e{.lo = 0x0000'1200'0041'00ffull, .hi = 0x000d'0020};
  EXPECT_TRUE(e.present());
  EXPECT_TRUE(e.fpd());
  EXPECT_TRUE(e.dest_mode_logical());
  EXPECT_TRUE(e.redirection_hint());
  EXPECT_TRUE(e.trigger_level());
  EXPECT_EQ(e.delivery_mode(), 7);
  EXPECT_EQ(e.vector(), 0x41);
  EXPECT_EQ(e.dest_id(), 0x1200u);
  EXPECT_EQ(e.sid(), 0x0020);
  EXPECT_EQ(e.sq(), 1);
  EXPECT_EQ(e.svt(), 3);
}

TEST(IrteTest, ReservedBitsOfAPresentEntry) {
  const Irte ok = MakeIrte(0x30, 0x0100);  // xAPIC destination 1
  EXPECT_FALSE(IrteReservedBitsSet(ok, false));
  for (int bit : {12, 13, 14, 15, 24, 31}) {
    Irte e = ok;
    e.lo |= uint64_t{1} << bit;
    EXPECT_TRUE(IrteReservedBitsSet(e, false)) << "lo bit " << bit;
    EXPECT_TRUE(IrteReservedBitsSet(e, true)) << "lo bit " << bit;
  }
  for (int bit : {20, 40, 63}) {
    Irte e = ok;
    e.hi |= uint64_t{1} << bit;
    EXPECT_TRUE(IrteReservedBitsSet(e, false)) << "hi bit " << bit;
  }
  // Available bits 11:8 and the SID fields are not reserved.
  Irte avl = ok;
  avl.lo |= 0xf00;
  avl.hi |= 0xf'ffff;
  EXPECT_FALSE(IrteReservedBitsSet(avl, false));
}

TEST(IrteTest, XapicDestinationBitsOutsideFifteenToEightAreReserved) {
  for (uint32_t dest : {0x1u, 0x80u, 0x1'0000u, 0x8000'0000u}) {
    Irte e = MakeIrte(0x30, dest);
    EXPECT_TRUE(IrteReservedBitsSet(e, /*eime=*/false)) << dest;
    EXPECT_FALSE(IrteReservedBitsSet(e, /*eime=*/true)) << dest;
  }
  EXPECT_FALSE(IrteReservedBitsSet(MakeIrte(0x30, 0xff00), false));
}

TEST(IrteTest, ReservedDeliveryModesAreReserved) {
  for (uint8_t dlm = 0; dlm < 8; ++dlm) {
    EXPECT_EQ(IrteReservedBitsSet(MakeIrte(0x30, 0, dlm), true),
              dlm == 3 || dlm == 6)
        << int{dlm};
  }
}

TEST(IrteTest, SourceIdVerification) {
  Irte e = MakeIrte(0x30, 0);
  e.hi = 0x0123;  // SVT 0: anything passes
  EXPECT_TRUE(VerifySourceId(e, 0xbeef));
  e.hi = 1 << 18 | 0x0123;  // SVT 1, SQ 0: all 16 bits
  EXPECT_TRUE(VerifySourceId(e, 0x0123));
  EXPECT_FALSE(VerifySourceId(e, 0x0127));
  e.hi = 1 << 18 | 1 << 16 | 0x0123;  // SQ 1: ignore bit 2
  EXPECT_TRUE(VerifySourceId(e, 0x0127));
  EXPECT_FALSE(VerifySourceId(e, 0x0121));
  e.hi = 1 << 18 | 2 << 16 | 0x0123;  // SQ 2: ignore bits 2:1
  EXPECT_TRUE(VerifySourceId(e, 0x0125));
  EXPECT_FALSE(VerifySourceId(e, 0x0122));
  e.hi = 1 << 18 | 3 << 16 | 0x0120;  // SQ 3: ignore bits 2:0
  EXPECT_TRUE(VerifySourceId(e, 0x0127));
  EXPECT_FALSE(VerifySourceId(e, 0x0128));
  e.hi = 2 << 18 | 0x0204;  // SVT 2: bus 2..4 (start in 15:8)
  EXPECT_TRUE(VerifySourceId(e, 0x0200));
  EXPECT_TRUE(VerifySourceId(e, 0x03ff));
  EXPECT_TRUE(VerifySourceId(e, 0x0400));
  EXPECT_FALSE(VerifySourceId(e, 0x0100));
  EXPECT_FALSE(VerifySourceId(e, 0x0500));
  e.hi = 3 << 18 | 0x0123;  // SVT 3 is reserved: verification fails
  EXPECT_FALSE(VerifySourceId(e, 0x0123));
}

TEST(IrteTest, ComposesCompatibilityFormatMessage) {
  Irte e = MakeIrte(0x41, 0x0300, Irte::kDlmLowestPriority);
  e.lo |= 1 << 2 | 1 << 3 | 1 << 4;  // logical, RH, level
  InterruptMessage m = ComposeMessage(e, /*eime=*/false, 0xfee0'0013);
  EXPECT_EQ(m.address, 0xfee0'300fu);  // dest 3, RH, DM, bits 1:0 kept
  EXPECT_EQ(m.data, 0x41u | 1 << 8 | 1 << 14 | 1 << 15);
}

TEST(IrteTest, X2apicDestinationUsesAllThirtyTwoBits) {
  const Irte e = MakeIrte(0x22, 0x0012'3456);
  EXPECT_EQ(IrteDestination(e, true), 0x0012'3456u);
  EXPECT_EQ(IrteDestination(e, false), 0x34u);
  InterruptMessage m = ComposeMessage(e, /*eime=*/true, 0xfee0'0010);
  EXPECT_EQ(m.address, 0x0012'3400'fee5'6000ull);
  EXPECT_EQ(m.data, 0x22u | 1 << 14);
}

// --- The remapper in a VtdEngine ---

// The machine's MSI window stand-in: records 4-byte writes.
class RecordingWindow final : public memory::MmioOps {
 public:
  struct Msg {
    uint64_t offset;
    uint32_t data;
    memory::MemTxAttrs attrs;
  };
  memory::MemTxResult Read(uint64_t, uint64_t* v, unsigned,
                           memory::MemTxAttrs) override {
    *v = 0;
    return memory::MemTxResult::Ok();
  }
  memory::MemTxResult Write(uint64_t off, uint64_t v, unsigned size,
                            memory::MemTxAttrs attrs) override {
    if (size == 4) msgs.push_back({off, static_cast<uint32_t>(v), attrs});
    return memory::MemTxResult::Ok();
  }
  std::vector<Msg> msgs;
};

constexpr uint16_t kSid = 0x0020;      // 00:04.0
constexpr uint64_t kIrt = 0x10'0000;   // interrupt-remapping table
constexpr uint64_t kQueue = 0x8'0000;  // invalidation queue

class InterruptRemapEngineTest : public ::testing::Test {
 protected:
  void Start(Properties props = {}) {
    root_ = memory::MemoryRegion::CreateContainer(&sys_, "root", kSize2To64);
    root_->AddSubregion(
        0, *memory::MemoryRegion::CreateRam(&sys_, "ram", 4 << 20));
    msi_ = memory::MemoryRegion::CreateMmio(&sys_, "msi", kInterruptWindowSize,
                                            &window_);
    root_->AddSubregionOverlap(kInterruptWindowBase, msi_, -1);
    as_ = std::make_unique<memory::AddressSpace>(&sys_, root_, "memory");
    iommu_ = *IntelIommu::Create(props, as_.get());
    engine_ = std::make_unique<VtdEngine>(
        iommu_.get(), &sys_, as_.get(),
        VtdSharedRegions::Create(&sys_, root_, msi_));
    iommu_->set_observer(engine_.get());
    dev_ = std::make_unique<memory::AddressSpace>(
        &sys_, engine_->DeviceRoot(0, kSid & 0xff), "edu-dma");
  }
  void TearDown() override {
    if (iommu_ != nullptr) iommu_->set_observer(nullptr);
    dev_.reset();
    engine_.reset();
  }

  void W(uint16_t off, uint64_t v, unsigned size = 8) {
    ASSERT_TRUE(iommu_->Write(off, v, size, {}).ok());
  }
  uint64_t R(uint16_t off, unsigned size = 8) {
    uint64_t v = 0;
    EXPECT_TRUE(iommu_->Read(off, &v, size, {}).ok());
    return v;
  }
  uint32_t Gsts() { return static_cast<uint32_t>(R(Offset(Reg32::kGsts), 4)); }
  uint32_t Fsts() { return static_cast<uint32_t>(R(Offset(Reg32::kFsts), 4)); }
  uint64_t FrcdLo() { return R(Offset(Reg64::kFrcd0Lo)); }
  uint64_t FrcdHi() { return R(Offset(Reg64::kFrcd0Hi)); }
  void ClearFault() {
    W(Offset(Reg32::kFrcd0Dw3), kFrcdF >> 32, 4);
    W(Offset(Reg32::kFsts), kFstsPfo | kFstsIqe, 4);
  }
  // The record an IR fault leaves: F, FR, SID; T = 0; FI[63:48] = index.
  static uint64_t IrRecordHi(FaultReason r, uint16_t sid = kSid) {
    return kFrcdF | uint64_t{static_cast<uint8_t>(r)} << kFrcdFrShift | sid;
  }

  void PutIrte(uint32_t index, const Irte& e) {
    uint64_t raw[2] = {e.lo, e.hi};
    ASSERT_TRUE(as_->Write(kIrt + index * 16, raw, sizeof(raw)).ok());
  }
  // IRTA = kIrt with size field `s` (2^(s+1) entries), SIRTP, IRE; keeps
  // the other GCMD bits as GSTS shows them.
  void EnableIr(uint8_t s = 7, bool eime = false, uint64_t table = kIrt) {
    W(Offset(Reg64::kIrta), table | (eime ? kIrtaEime : 0) | s);
    W(Offset(Reg32::kGcmd), Gsts() | kGcmdSirtp, 4);
    W(Offset(Reg32::kGcmd), (Gsts() & ~kGstsIrtps) | kGcmdIre, 4);
  }
  void SetCfi(bool on) {
    const uint32_t g = Gsts() & ~kGstsIrtps;
    W(Offset(Reg32::kGcmd), on ? (g | kGcmdCfi) : (g & ~kGcmdCfi), 4);
  }
  // A device write of `data` at `addr` in its interrupt window.
  bool DeviceWrite(uint64_t addr, uint32_t data,
                   memory::MemTxAttrs attrs =
                       memory::MemTxAttrs::Requester(kSid)) {
    return dev_->Write(addr, &data, 4, attrs).ok();
  }
  static uint64_t Remappable(uint32_t handle, bool shv = false) {
    return 0xfee0'0000 | uint64_t{handle & 0x7fff} << 5 | 1 << 4 |
           (shv ? 1 << 3 : 0) | ((handle >> 15) & 1) << 2;
  }
  // Invalidation queue: QIE on, then descriptors run at once.
  void EnableQi() {
    W(Offset(Reg64::kIqa), kQueue);
    W(Offset(Reg32::kGcmd), (Gsts() & ~kGstsIrtps) | kGcmdQie, 4);
    ASSERT_TRUE(iommu_->qi_enabled());
  }
  void Submit(uint64_t lo, uint64_t hi = 0) {
    uint64_t d[2] = {lo, hi};
    ASSERT_TRUE(as_->Write(kQueue + tail_ * 16, d, sizeof(d)).ok());
    tail_ = (tail_ + 1) % 256;
    W(Offset(Reg64::kIqt), uint64_t{tail_} << 4);
  }
  static uint64_t IecGlobal() { return 4; }
  static uint64_t IecIndex(uint16_t index, uint8_t im) {
    return 4 | 1 << 4 | uint64_t{im} << 27 | uint64_t{index} << 32;
  }

  memory::MemorySystem sys_;
  std::shared_ptr<memory::MemoryRegion> root_;
  RecordingWindow window_;
  std::shared_ptr<memory::MemoryRegion> msi_;
  std::unique_ptr<memory::AddressSpace> as_;
  std::unique_ptr<IntelIommu> iommu_;
  std::unique_ptr<VtdEngine> engine_;
  std::unique_ptr<memory::AddressSpace> dev_;
  uint32_t tail_ = 0;
};

TEST_F(InterruptRemapEngineTest, SirtpLatchesIrtaAndSetsIrtps) {
  Start();
  W(Offset(Reg64::kIrta), 0x1234'5000 | kIrtaEime | 0x3 | 0x7f0);
  EXPECT_EQ(R(Offset(Reg64::kIrta)), 0x1234'5000u | kIrtaEime | 0x3)
      << "bits 10:4 are read-only";
  EXPECT_EQ(Gsts() & kGstsIrtps, 0u);
  EXPECT_EQ(iommu_->ir_table_size(), 0u) << "not latched before SIRTP";
  W(Offset(Reg32::kGcmd), kGcmdSirtp, 4);
  EXPECT_EQ(Gsts(), kGstsIrtps);
  EXPECT_EQ(iommu_->ir_table(), 0x1234'5000u);
  EXPECT_EQ(iommu_->ir_table_size(), 16u);  // 2^(S+1)
  EXPECT_TRUE(iommu_->ir_eime());
  EXPECT_EQ(R(Offset(Reg32::kGcmd), 4), 0u) << "GCMD reads 0";
}

TEST_F(InterruptRemapEngineTest, IreSetsIresAndClearingItClearsIt) {
  Start();
  W(Offset(Reg32::kGcmd), kGcmdIre, 4);
  EXPECT_EQ(Gsts(), kGstsIres);
  EXPECT_TRUE(iommu_->ir_enabled());
  W(Offset(Reg32::kGcmd), 0, 4);
  EXPECT_EQ(Gsts(), 0u);
  EXPECT_FALSE(iommu_->ir_enabled());
}

TEST_F(InterruptRemapEngineTest, CfiSetsCfis) {
  Start();
  W(Offset(Reg32::kGcmd), kGcmdCfi, 4);
  EXPECT_EQ(Gsts(), kGstsCfis);
  EXPECT_TRUE(iommu_->cfi_enabled());
  W(Offset(Reg32::kGcmd), kGcmdIre | kGcmdCfi, 4);
  EXPECT_EQ(Gsts(), kGstsIres | kGstsCfis);
  W(Offset(Reg32::kGcmd), kGcmdIre, 4);
  EXPECT_EQ(Gsts(), kGstsIres);
  EXPECT_FALSE(iommu_->cfi_enabled());
}

TEST_F(InterruptRemapEngineTest, IntremapOffIgnoresIreAndCfi) {
  Properties p;
  p.intremap = OnOffAuto::kOff;
  Start(p);
  W(Offset(Reg32::kGcmd), kGcmdIre | kGcmdCfi, 4);
  EXPECT_EQ(Gsts(), 0u);
  // A remappable-format write still reaches the MSI window unchanged.
  ASSERT_TRUE(DeviceWrite(Remappable(3), 0));
  ASSERT_EQ(window_.msgs.size(), 1u);
  EXPECT_EQ(window_.msgs[0].offset, Remappable(3) & 0xfffff);
  EXPECT_EQ(window_.msgs[0].data, 0u);
  EXPECT_EQ(Fsts(), 0u);
}

TEST_F(InterruptRemapEngineTest, DisabledIrPassesEveryWriteUnchanged) {
  Start();
  W(Offset(Reg64::kIrta), kIrt | 7);
  W(Offset(Reg32::kGcmd), kGcmdSirtp, 4);  // table set, IRE off
  ASSERT_TRUE(DeviceWrite(Remappable(1), 0x55));
  ASSERT_TRUE(DeviceWrite(0xfee0'1000, 0x4041));
  ASSERT_EQ(window_.msgs.size(), 2u);
  EXPECT_EQ(window_.msgs[0].offset, Remappable(1) & 0xfffff);
  EXPECT_EQ(window_.msgs[1].offset, 0x1000u);
  EXPECT_EQ(window_.msgs[1].data, 0x4041u);
  EXPECT_EQ(window_.msgs[1].attrs, memory::MemTxAttrs::Requester(kSid));
}

TEST_F(InterruptRemapEngineTest, RemapsARemappableMsiThroughItsIrte) {
  Start();
  PutIrte(5, MakeIrte(0x41, 0x0200));  // vector 0x41, APIC 2, fixed, edge
  EnableIr();
  ASSERT_TRUE(DeviceWrite(Remappable(5), 0));
  ASSERT_EQ(window_.msgs.size(), 1u);
  EXPECT_EQ(window_.msgs[0].offset, 0x2000u);  // 0xfee02000
  EXPECT_EQ(window_.msgs[0].data, 0x41u | kMsiDataLevelAssert);
  EXPECT_EQ(window_.msgs[0].attrs.requester_id, kSid);
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(engine_->interrupt_remapper().stats().remapped, 1u);
}

TEST_F(InterruptRemapEngineTest, HandleBit15SelectsTheUpperHalfOfTheTable) {
  Start();
  PutIrte(0x8001, MakeIrte(0x51, 0x0100));
  PutIrte(0x0001, MakeIrte(0x52, 0x0100));
  EnableIr(/*s=*/15);  // 65536 entries
  ASSERT_TRUE(DeviceWrite(Remappable(0x8001), 0));
  ASSERT_EQ(window_.msgs.size(), 1u);
  EXPECT_EQ(window_.msgs[0].data & 0xff, 0x51u);
}

TEST_F(InterruptRemapEngineTest, SubhandleSelectsHandlePlusSubhandle) {
  Start();
  PutIrte(12, MakeIrte(0x60, 0x0100));
  PutIrte(13, MakeIrte(0x61, 0x0100));
  EnableIr();
  ASSERT_TRUE(DeviceWrite(Remappable(12, /*shv=*/true), 1));
  ASSERT_TRUE(DeviceWrite(Remappable(12, /*shv=*/false), 1));
  ASSERT_EQ(window_.msgs.size(), 2u);
  EXPECT_EQ(window_.msgs[0].data & 0xff, 0x61u);
  EXPECT_EQ(window_.msgs[1].data & 0xff, 0x60u) << "no SHV: handle only";
}

TEST_F(InterruptRemapEngineTest, ShvWithDataBitsAboveFifteenFaults0x20) {
  Start();
  PutIrte(12, MakeIrte(0x60, 0x0100));
  EnableIr();
  EXPECT_FALSE(DeviceWrite(Remappable(12, true), 0x1'0000));
  EXPECT_TRUE(window_.msgs.empty());
  EXPECT_EQ(Fsts(), kFstsPpf);
  EXPECT_EQ(FrcdHi(), IrRecordHi(FaultReason::kIrReqRsvd));
  EXPECT_EQ(FrcdLo(), 0u);
}

TEST_F(InterruptRemapEngineTest, AddressAboveFourGigabytesFaults0x20) {
  Start();
  EnableIr();
  InterruptRemapper ir(iommu_.get(), nullptr,
                       [&](uint16_t sid, FaultReason r, uint16_t index) {
                         iommu_->RecordInterruptFault(sid, r, index);
                       });
  EXPECT_FALSE(ir.Remap(0x1'fee0'0010, 0, kSid).has_value());
  EXPECT_EQ(FrcdHi(), IrRecordHi(FaultReason::kIrReqRsvd));
  ClearFault();
  EXPECT_FALSE(ir.Remap(0xfef0'0010, 0, kSid).has_value());
  EXPECT_EQ(FrcdHi(), IrRecordHi(FaultReason::kIrReqRsvd));
}

TEST_F(InterruptRemapEngineTest, IndexBeyondTheTableFaults0x21) {
  Start();
  EnableIr(/*s=*/3);  // 16 entries
  EXPECT_FALSE(DeviceWrite(Remappable(16), 0));
  EXPECT_TRUE(window_.msgs.empty());
  EXPECT_EQ(FrcdHi(), IrRecordHi(FaultReason::kIrIndexOver));
  EXPECT_EQ(FrcdLo(), uint64_t{16} << 48);
  EXPECT_EQ(Fsts(), kFstsPpf);
}

TEST_F(InterruptRemapEngineTest, NotPresentIrteFaults0x22WithTheIndex) {
  Start();
  EnableIr();
  EXPECT_FALSE(DeviceWrite(Remappable(7), 0));
  EXPECT_TRUE(window_.msgs.empty());
  EXPECT_EQ(FrcdHi(), IrRecordHi(FaultReason::kIrEntryP));
  EXPECT_EQ(FrcdLo(), uint64_t{7} << 48);
  EXPECT_EQ(R(Offset(Reg32::kFectl), 4), kFectlIm | kFectlIp);
}

TEST_F(InterruptRemapEngineTest, UnreadableTableFaults0x23) {
  Start();
  EnableIr(/*s=*/7, false, /*table=*/0x4000'0000);  // nothing there
  EXPECT_FALSE(DeviceWrite(Remappable(2), 0));
  EXPECT_EQ(FrcdHi(), IrRecordHi(FaultReason::kIrRootInval));
  EXPECT_EQ(FrcdLo(), uint64_t{2} << 48);
}

TEST_F(InterruptRemapEngineTest, ReservedIrteBitsFault0x24) {
  Start();
  Irte e = MakeIrte(0x41, 0x0200);
  e.hi |= uint64_t{1} << 40;
  PutIrte(4, e);
  EnableIr();
  EXPECT_FALSE(DeviceWrite(Remappable(4), 0));
  EXPECT_TRUE(window_.msgs.empty());
  EXPECT_EQ(FrcdHi(), IrRecordHi(FaultReason::kIrIrteRsvd));
  EXPECT_EQ(FrcdLo(), uint64_t{4} << 48);
}

TEST_F(InterruptRemapEngineTest, XapicDestinationAboveBit47Faults0x24) {
  Start();
  PutIrte(4, MakeIrte(0x41, 0x0001'0200));
  EnableIr();
  EXPECT_FALSE(DeviceWrite(Remappable(4), 0));
  EXPECT_EQ(FrcdHi(), IrRecordHi(FaultReason::kIrIrteRsvd));
}

TEST_F(InterruptRemapEngineTest, CompatibilityFormatIsBlockedWithoutCfis) {
  Start();
  EnableIr();
  EXPECT_FALSE(DeviceWrite(0xfee0'1000, 0x41));
  EXPECT_TRUE(window_.msgs.empty());
  EXPECT_EQ(FrcdHi(), IrRecordHi(FaultReason::kIrReqCompat));
  EXPECT_EQ(FrcdLo(), 0u);
}

TEST_F(InterruptRemapEngineTest, CompatibilityFormatPassesWithCfis) {
  Start();
  EnableIr();
  SetCfi(true);
  ASSERT_TRUE(DeviceWrite(0xfee0'1000, 0x41));
  ASSERT_EQ(window_.msgs.size(), 1u);
  EXPECT_EQ(window_.msgs[0].offset, 0x1000u);
  EXPECT_EQ(window_.msgs[0].data, 0x41u);
  EXPECT_EQ(Fsts(), 0u);
}

TEST_F(InterruptRemapEngineTest, CompatibilityFormatIsBlockedInX2apicMode) {
  Start();
  EnableIr(/*s=*/7, /*eime=*/true);
  SetCfi(true);
  EXPECT_FALSE(DeviceWrite(0xfee0'1000, 0x41));
  EXPECT_EQ(FrcdHi(), IrRecordHi(FaultReason::kIrReqCompat));
}

TEST_F(InterruptRemapEngineTest, SourceIdMismatchFaults0x26) {
  Start();
  Irte e = MakeIrte(0x41, 0x0200);
  e.hi = 1 << 18 | 0x0028;  // only 00:05.0 may use it
  PutIrte(9, e);
  EnableIr();
  EXPECT_FALSE(DeviceWrite(Remappable(9), 0));
  EXPECT_TRUE(window_.msgs.empty());
  EXPECT_EQ(FrcdHi(), IrRecordHi(FaultReason::kIrSidErr));
  EXPECT_EQ(FrcdLo(), uint64_t{9} << 48);
  ClearFault();
  // The verified requester gets through.
  ASSERT_TRUE(DeviceWrite(Remappable(9), 0,
                          memory::MemTxAttrs::Requester(0x0028)));
  EXPECT_EQ(window_.msgs.size(), 1u);
}

TEST_F(InterruptRemapEngineTest, WriteWithoutRequesterIdSkipsVerification) {
  Start();
  Irte e = MakeIrte(0x41, 0x0200);
  e.hi = 1 << 18 | 0x0028;
  PutIrte(9, e);
  EnableIr();
  ASSERT_TRUE(DeviceWrite(Remappable(9), 0, memory::MemTxAttrs::Unspecified()));
  EXPECT_EQ(window_.msgs.size(), 1u);
  // Its faults carry sid 0xffff.
  EXPECT_FALSE(
      DeviceWrite(Remappable(10), 0, memory::MemTxAttrs::Unspecified()));
  EXPECT_EQ(FrcdHi(), IrRecordHi(FaultReason::kIrEntryP, kNoRequesterSid));
}

TEST_F(InterruptRemapEngineTest, FpdSuppressesOnlyQualifiedFaults) {
  Start();
  Irte absent;
  absent.lo = 1 << 1;  // FPD, not present
  PutIrte(1, absent);
  Irte rsvd = MakeIrte(0x41, 0x0200);
  rsvd.lo |= 1 << 1 | 1 << 13;
  PutIrte(2, rsvd);
  Irte wrong_sid = MakeIrte(0x41, 0x0200);
  wrong_sid.lo |= 1 << 1;
  wrong_sid.hi = 1 << 18 | 0x0028;
  PutIrte(3, wrong_sid);
  EnableIr(/*s=*/3);
  for (uint32_t index : {1u, 2u, 3u}) {
    EXPECT_FALSE(DeviceWrite(Remappable(index), 0)) << index;
    EXPECT_EQ(Fsts(), 0u) << "suppressed, index " << index;
  }
  EXPECT_EQ(engine_->stats().faults, 0u);
  EXPECT_EQ(engine_->interrupt_remapper().stats().blocked, 3u);
  // Unqualified: the index check does not look at any IRTE.
  EXPECT_FALSE(DeviceWrite(Remappable(16), 0));
  EXPECT_EQ(FrcdHi(), IrRecordHi(FaultReason::kIrIndexOver));
}

TEST_F(InterruptRemapEngineTest, IrFaultsCollapseAndOverflowLikeDmaFaults) {
  Start();
  EnableIr();
  EXPECT_FALSE(DeviceWrite(Remappable(1), 0));
  EXPECT_FALSE(DeviceWrite(Remappable(2), 0));  // same sid: collapsed
  EXPECT_EQ(Fsts(), kFstsPpf);
  EXPECT_EQ(FrcdLo(), uint64_t{1} << 48);
  EXPECT_FALSE(
      DeviceWrite(Remappable(3), 0, memory::MemTxAttrs::Requester(0x28)));
  EXPECT_EQ(Fsts(), kFstsPpf | kFstsPfo) << "another sid: overflow";
  EXPECT_EQ(FrcdLo(), uint64_t{1} << 48);
}

TEST_F(InterruptRemapEngineTest, CachedIrteIsUsedUntilTheIecIsInvalidated) {
  Start();
  PutIrte(5, MakeIrte(0x41, 0x0200));
  EnableIr();
  EnableQi();
  ASSERT_TRUE(DeviceWrite(Remappable(5), 0));
  PutIrte(5, MakeIrte(0x42, 0x0300));
  ASSERT_TRUE(DeviceWrite(Remappable(5), 0));
  EXPECT_EQ(window_.msgs.back().data & 0xff, 0x41u) << "stale: cached";
  Submit(IecGlobal());
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(R(Offset(Reg64::kIqh)), uint64_t{tail_} << 4);
  ASSERT_TRUE(DeviceWrite(Remappable(5), 0));
  EXPECT_EQ(window_.msgs.back().data & 0xff, 0x42u);
  EXPECT_EQ(window_.msgs.back().offset, 0x3000u);
}

TEST_F(InterruptRemapEngineTest, IndexSelectiveIecDropsOnlyItsRange) {
  Start();
  for (uint32_t i = 0; i < 8; ++i) PutIrte(i, MakeIrte(0x40 + i, 0x0100));
  EnableIr();
  EnableQi();
  for (uint32_t i = 0; i < 8; ++i) ASSERT_TRUE(DeviceWrite(Remappable(i), 0));
  EXPECT_EQ(engine_->interrupt_remapper().cached_entries(), 8u);
  for (uint32_t i = 0; i < 8; ++i) PutIrte(i, MakeIrte(0x80 + i, 0x0100));
  Submit(IecIndex(4, 1));  // entries 4 and 5
  EXPECT_EQ(engine_->interrupt_remapper().cached_entries(), 6u);
  for (uint32_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(DeviceWrite(Remappable(i), 0));
    const uint32_t want = (i == 4 || i == 5) ? 0x80 + i : 0x40 + i;
    EXPECT_EQ(window_.msgs.back().data & 0xff, want) << "index " << i;
  }
}

TEST_F(InterruptRemapEngineTest, NotPresentEntriesAreNotCached) {
  Start();
  EnableIr();
  EXPECT_FALSE(DeviceWrite(Remappable(5), 0));
  ClearFault();
  PutIrte(5, MakeIrte(0x41, 0x0200));
  ASSERT_TRUE(DeviceWrite(Remappable(5), 0)) << "no invalidation needed";
  EXPECT_EQ(window_.msgs.size(), 1u);
}

TEST_F(InterruptRemapEngineTest, SirtpAndResetDropTheCache) {
  Start();
  PutIrte(5, MakeIrte(0x41, 0x0200));
  EnableIr();
  ASSERT_TRUE(DeviceWrite(Remappable(5), 0));
  EXPECT_EQ(engine_->interrupt_remapper().cached_entries(), 1u);
  W(Offset(Reg32::kGcmd), Gsts() | kGcmdSirtp, 4);
  EXPECT_EQ(engine_->interrupt_remapper().cached_entries(), 0u);
  ASSERT_TRUE(DeviceWrite(Remappable(5), 0));
  EXPECT_EQ(engine_->interrupt_remapper().cached_entries(), 1u);
  iommu_->Reset();
  EXPECT_EQ(engine_->interrupt_remapper().cached_entries(), 0u);
  EXPECT_FALSE(iommu_->ir_enabled());
  EXPECT_FALSE(iommu_->cfi_enabled());
  ASSERT_TRUE(DeviceWrite(Remappable(5), 0x7));
  EXPECT_EQ(window_.msgs.back().offset, Remappable(5) & 0xfffff)
      << "after reset IR is off";
}

TEST_F(InterruptRemapEngineTest, X2apicDestinationReachesTheMessageSink) {
  Start();
  PutIrte(6, MakeIrte(0x33, 0x0001'0203));
  EnableIr(/*s=*/7, /*eime=*/true);
  ASSERT_TRUE(DeviceWrite(Remappable(6), 0));
  ASSERT_EQ(window_.msgs.size(), 1u);
  EXPECT_EQ(window_.msgs[0].offset, 0x03000u) << "no sink: dest 7:0 only";
  std::vector<InterruptMessage> got;
  engine_->interrupt_window().set_message_sink(
      [&](const InterruptMessage& m, memory::MemTxAttrs) { got.push_back(m); });
  ASSERT_TRUE(DeviceWrite(Remappable(6), 0));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].address, 0x0001'0200'fee0'3000ull);
  EXPECT_EQ(got[0].data, 0x33u | kMsiDataLevelAssert);
  EXPECT_EQ(window_.msgs.size(), 1u);
}

// With DMA translation on, a write whose IOVA translates into the
// interrupt window is still the DMA fault 0xe and never an interrupt
// request; an IOVA inside the window is one (it is never translated).
TEST_F(InterruptRemapEngineTest, TranslatedWriteIntoTheWindowStaysADmaFault) {
  Start();
  // Root 0x200000 -> context table 0x201000; devfn 0x20: 3 levels, DID 1;
  // IOVA 0x400000 -> GPA 0xfee00000.
  auto put = [&](uint64_t gpa, uint64_t v) {
    ASSERT_TRUE(as_->Write(gpa, &v, 8).ok());
  };
  put(0x20'0000, 0x20'1001);
  put(0x20'1000 + 0x20 * 16, 0x20'2001);
  put(0x20'1000 + 0x20 * 16 + 8, 0x101);
  put(0x20'2000, 0x20'3003);
  put(0x20'3000 + 2 * 8, 0x20'4003);
  put(0x20'4000, 0xfee0'0003);
  PutIrte(5, MakeIrte(0x41, 0x0200));
  EnableIr();
  W(Offset(Reg64::kRtaddr), 0x20'0000);
  W(Offset(Reg32::kGcmd), Gsts() | kGcmdSrtp, 4);
  W(Offset(Reg32::kGcmd), (Gsts() & ~(kGstsRtps | kGstsIrtps)) | kGcmdTe, 4);
  ASSERT_TRUE(iommu_->translation_enabled());
  ASSERT_TRUE(iommu_->ir_enabled());

  EXPECT_FALSE(DeviceWrite(0x40'0000, 0x41));
  EXPECT_TRUE(window_.msgs.empty());
  EXPECT_EQ(FrcdHi() & ~(uint64_t{0xffff} << kFrcdPvShift),
            kFrcdF | uint64_t{0xe} << kFrcdFrShift | kSid);
  EXPECT_EQ(engine_->interrupt_remapper().stats().requests, 0u);
  ClearFault();
  // The window itself is carved out of the IOMMU region: remapped.
  ASSERT_TRUE(DeviceWrite(Remappable(5), 0));
  ASSERT_EQ(window_.msgs.size(), 1u);
  EXPECT_EQ(window_.msgs[0].offset, 0x2000u);
  EXPECT_EQ(Fsts(), 0u);
}

TEST_F(InterruptRemapEngineTest, FaultEventFollowsFectlAsForDmaFaults) {
  Start();
  W(Offset(Reg32::kFedata), 0x4444, 4);
  W(Offset(Reg32::kFeaddr), 0xfee0'f000, 4);
  W(Offset(Reg32::kFectl), 0, 4);  // unmasked
  EnableIr();
  EXPECT_FALSE(DeviceWrite(Remappable(1), 0));
  // The fault event goes to the MSI window directly (system memory), not
  // through the remapper: it is not an interrupt request.
  ASSERT_EQ(window_.msgs.size(), 1u);
  EXPECT_EQ(window_.msgs[0].offset, 0xf000u);
  EXPECT_EQ(window_.msgs[0].data, 0x4444u);
  EXPECT_EQ(R(Offset(Reg32::kFectl), 4), 0u);
}

}  // namespace
}  // namespace viommu::vtd
