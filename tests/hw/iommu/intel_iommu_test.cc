// intel-iommu inside a q35 machine: register side effects, observer hooks
// and fault recording (the parts conformance scenarios cannot reach).
#include "viommu/hw/iommu/intel_iommu.h"

#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/hw/i386/q35_machine.h"

namespace viommu::vtd {
namespace {

using hw::kVtdRegBase;
using hw::Q35Machine;

class RecordingObserver final : public Observer {
 public:
  void OnRootTableChanged(uint64_t root) override { roots.push_back(root); }
  void OnTranslationEnabled(bool en) override { te.push_back(en); }
  void OnContextInvalidate(ContextGranularity g, uint16_t did, uint16_t sid,
                           uint8_t fm) override {
    ctx.push_back({g, did, sid, fm});
  }
  void OnIotlbInvalidate(IotlbGranularity g, uint16_t did, uint64_t addr,
                         uint8_t am, bool ih) override {
    iotlb.push_back({g, did, addr, am, ih});
  }
  void OnQueueTailWritten(uint32_t tail) override { tails.push_back(tail); }
  void OnReset() override { ++resets; }

  struct Ctx {
    ContextGranularity g;
    uint16_t did, sid;
    uint8_t fm;
  };
  struct Tlb {
    IotlbGranularity g;
    uint16_t did;
    uint64_t addr;
    uint8_t am;
    bool ih;
  };
  std::vector<uint64_t> roots;
  std::vector<bool> te;
  std::vector<Ctx> ctx;
  std::vector<Tlb> iotlb;
  std::vector<uint32_t> tails;
  int resets = 0;
};

class IntelIommuTest : public ::testing::Test {
 protected:
  void Start(absl::btree_map<std::string, std::string> props = {}) {
    m_ = *Q35Machine::Create({.ram_size = 64 << 20});
    ASSERT_TRUE(m_->AddDevice({.driver = "intel-iommu", .props = props}).ok());
    iommu_ = m_->intel_iommu();
    ASSERT_NE(iommu_, nullptr);
    iommu_->set_observer(&obs_);
  }
  void SetUp() override { Start(); }
  void TearDown() override {
    if (iommu_ != nullptr) iommu_->set_observer(nullptr);
  }
  uint32_t R32(uint64_t off) {
    uint32_t v = 0;
    EXPECT_TRUE(m_->system_as().Read(kVtdRegBase + off, &v, 4).ok());
    return v;
  }
  uint64_t R64(uint64_t off) {
    uint64_t v = 0;
    EXPECT_TRUE(m_->system_as().Read(kVtdRegBase + off, &v, 8).ok());
    return v;
  }
  void W32(uint64_t off, uint32_t v) {
    EXPECT_TRUE(m_->system_as().Write(kVtdRegBase + off, &v, 4).ok());
  }
  void W64(uint64_t off, uint64_t v) {
    EXPECT_TRUE(m_->system_as().Write(kVtdRegBase + off, &v, 8).ok());
  }

  std::unique_ptr<Q35Machine> m_;
  IntelIommu* iommu_ = nullptr;
  RecordingObserver obs_;
};

TEST_F(IntelIommuTest, ResetValues) {
  EXPECT_EQ(R32(0x00), 0x10u);
  EXPECT_EQ(R64(0x08), 0x00d2008c22260206u);
  EXPECT_EQ(R64(0x10), 0xf00f4au);
  EXPECT_EQ(R32(0x38), 0x8000'0000u);
  EXPECT_EQ(R32(0xa0), 0x8000'0000u);
  EXPECT_EQ(R32(0x1c), 0u);
}

TEST_F(IntelIommuTest, SubWordAccessIsRejected) {
  // The register block takes 4- and 8-byte accesses only: a 2- or 1-byte
  // read is a decode error that reads 0 (QEMU's invalid access), not VER.
  uint16_t v = 0xdead;
  EXPECT_EQ(m_->system_as().Read(kVtdRegBase, &v, 2),
            memory::MemTxResult::DecodeError());
  EXPECT_EQ(v, 0u);
  uint8_t b = 0xaa;
  EXPECT_EQ(m_->system_as().Read(kVtdRegBase, &b, 1),
            memory::MemTxResult::DecodeError());
  EXPECT_EQ(b, 0u);
  // A rejected 2-byte write changes nothing: VER still reads 0x10.
  uint16_t w = 0xffff;
  EXPECT_EQ(m_->system_as().Write(kVtdRegBase + 0x20, &w, 2),
            memory::MemTxResult::DecodeError());
  EXPECT_EQ(R64(0x20), 0u);
  EXPECT_EQ(R32(0x00), 0x10u);
}

TEST_F(IntelIommuTest, SrtpLatchesMaskedRootAndSetsRtps) {
  W64(0x20, 0xffff'ffff'ffff'f000);
  W32(0x18, kGcmdSrtp);
  EXPECT_EQ(R32(0x1c), kGstsRtps);
  EXPECT_EQ(iommu_->root_table(), 0x7f'ffff'f000u);  // aw-bits 39
  ASSERT_EQ(obs_.roots.size(), 1u);
  EXPECT_EQ(obs_.roots[0], 0x7f'ffff'f000u);
  EXPECT_EQ(R32(0x18), 0u);  // GCMD is write-only
}

TEST_F(IntelIommuTest, TranslationEnableAndDisable) {
  W32(0x18, kGcmdTe);
  EXPECT_EQ(R32(0x1c), kGstsTes);
  EXPECT_TRUE(iommu_->translation_enabled());
  W32(0x18, 0);
  EXPECT_EQ(R32(0x1c), 0u);
  EXPECT_THAT(obs_.te, ::testing::ElementsAre(true, false));
}

TEST_F(IntelIommuTest, DmaTranslationOffIgnoresTe) {
  Start({{"dma-translation", "off"}});
  W32(0x18, kGcmdTe);
  EXPECT_EQ(R32(0x1c), 0u);
  EXPECT_TRUE(obs_.te.empty());
}

TEST_F(IntelIommuTest, QieLatchesQueueAndIqaReadsLatchedBase) {
  W64(0x90, 0x12'3456'7000 | 0x802);
  EXPECT_EQ(R64(0x90), 0x2u);  // not latched yet
  W32(0x18, kGcmdQie);
  EXPECT_EQ(R32(0x1c), kGstsQies);
  EXPECT_EQ(R64(0x90), 0x12'3456'7002u);
  EXPECT_EQ(iommu_->queue_size(), 1024u);
  W64(0x88, 0x30);
  EXPECT_THAT(obs_.tails, ::testing::ElementsAre(3u));
}

TEST_F(IntelIommuTest, QieDisableNeedsDrainedQueueAfterWait) {
  W32(0x18, kGcmdQie);
  W32(0x18, 0);
  EXPECT_EQ(R32(0x1c), kGstsQies);  // no wait descriptor seen
  iommu_->SetQueueHead(0, /*last_was_wait=*/true);
  W32(0x18, 0);
  EXPECT_EQ(R32(0x1c), 0u);
  EXPECT_EQ(R64(0x80), 0u);
}

TEST_F(IntelIommuTest, RegisterContextInvalidationCompletes) {
  W64(0x28, kCcmdIcc | 3ull << kCcmdCirgShift | 2ull << 32 | 0x0010'0005);
  EXPECT_EQ(R64(0x28), 3ull << kCcmdCirgShift | 3ull << kCcmdCaigShift | 5);
  ASSERT_EQ(obs_.ctx.size(), 1u);
  EXPECT_EQ(obs_.ctx[0].g, ContextGranularity::kDevice);
  EXPECT_EQ(obs_.ctx[0].did, 5);
  EXPECT_EQ(obs_.ctx[0].sid, 0x10);
  EXPECT_EQ(obs_.ctx[0].fm, 2);
}

TEST_F(IntelIommuTest, DomainContextInvalidationAnswersGlobal) {
  W64(0x28, kCcmdIcc | 2ull << kCcmdCirgShift);
  EXPECT_EQ(R64(0x28), 2ull << kCcmdCirgShift | 1ull << kCcmdCaigShift);
}

TEST_F(IntelIommuTest, RegisterIotlbPageInvalidation) {
  W64(0xf0, 0x1234'5000 | kIvaIh | 2);
  W64(0xf8, kIotlbIvt | 3ull << kIotlbIirgShift | 7ull << 32);
  EXPECT_EQ(R64(0xf8),
            3ull << kIotlbIirgShift | 3ull << kIotlbIaigShift | 7ull << 32);
  ASSERT_EQ(obs_.iotlb.size(), 1u);
  EXPECT_EQ(obs_.iotlb[0].g, IotlbGranularity::kPage);
  EXPECT_EQ(obs_.iotlb[0].addr, 0x1234'5000u);
  EXPECT_EQ(obs_.iotlb[0].am, 2);
  EXPECT_TRUE(obs_.iotlb[0].ih);
  EXPECT_EQ(R64(0xf0), 0u);  // IVA is write-only
}

TEST_F(IntelIommuTest, IotlbPageInvalidationAboveMamvAnswersZero) {
  W64(0xf0, 19);
  W64(0xf8, kIotlbIvt | 3ull << kIotlbIirgShift);
  EXPECT_EQ(R64(0xf8), 3ull << kIotlbIirgShift);
  EXPECT_TRUE(obs_.iotlb.empty());
}

TEST_F(IntelIommuTest, RegisterInvalidationIgnoredWithQi) {
  W32(0x18, kGcmdQie);
  W64(0x28, kCcmdIcc | 1ull << kCcmdCirgShift);
  EXPECT_EQ(R64(0x28) & kCcmdIcc, kCcmdIcc);
  EXPECT_TRUE(obs_.ctx.empty());
}

TEST_F(IntelIommuTest, RecordFaultMaskedSetsIpThenUnmaskSends) {
  W32(0x3c, 0x4041);
  W32(0x40, 0xfee0'1000);
  iommu_->RecordFault(0x0020, FaultReason::kWrite, 0x1234'5678, true);
  EXPECT_EQ(R64(0x220), 0x1234'5000u);
  EXPECT_EQ(R64(0x228), kFrcdF | 5ull << 32 | 0x20);
  EXPECT_EQ(R32(0x34), kFstsPpf);
  EXPECT_EQ(R32(0x38), kFectlIm | kFectlIp);
  EXPECT_EQ(m_->msi().TotalCount(), 0u);
  W32(0x38, 0);
  EXPECT_EQ(R32(0x38), 0u);
  ASSERT_EQ(m_->msi().TotalCount(), 1u);
  auto msg = m_->msi().Last(std::nullopt);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->address, 0xfee0'1000u);
  EXPECT_EQ(msg->data, 0x4041u);
}

TEST_F(IntelIommuTest, RecordFaultUnmaskedSendsAtOnce) {
  W32(0x38, 0);
  W32(0x40, 0xfee0'0000);
  iommu_->RecordFault(0x0008, FaultReason::kRead, 0x1000, false);
  EXPECT_EQ(m_->msi().TotalCount(), 1u);
  EXPECT_EQ(R32(0x38), 0u);
  EXPECT_EQ(R64(0x228), kFrcdF | kFrcdT | 6ull << 32 | 0x8);
}

TEST_F(IntelIommuTest, SameSourceCollapsesOtherSourceOverflows) {
  iommu_->RecordFault(0x0020, FaultReason::kWrite, 0x1000, true);
  iommu_->RecordFault(0x0020, FaultReason::kRead, 0x2000, false);
  EXPECT_EQ(R32(0x34), kFstsPpf);
  iommu_->RecordFault(0x0028, FaultReason::kRead, 0x2000, false);
  EXPECT_EQ(R32(0x34), kFstsPpf | kFstsPfo);
  EXPECT_EQ(R64(0x220), 0x1000u);
  // PFO drops everything, even after F is cleared.
  W32(0x22c, 0x8000'0000);
  EXPECT_EQ(R32(0x34), kFstsPfo);
  iommu_->RecordFault(0x0030, FaultReason::kRead, 0x3000, false);
  EXPECT_EQ(R64(0x228), 5ull << 32 | 0x20);  // the old record, F clear
}

TEST_F(IntelIommuTest, ClearingFaultAndStatusClearsIp) {
  iommu_->RecordFault(0x0020, FaultReason::kWrite, 0x1000, true);
  W32(0x22c, 0x8000'0000);  // F is w1c; PPF follows
  EXPECT_EQ(R32(0x34), 0u);
  EXPECT_EQ(R32(0x38), kFectlIm | kFectlIp);
  W32(0x34, 0);  // an FSTS write with nothing pending clears IP
  EXPECT_EQ(R32(0x38), kFectlIm);
}

TEST_F(IntelIommuTest, QueueErrorRaisesFaultEvent) {
  iommu_->ReportQueueError();
  EXPECT_EQ(R32(0x34), kFstsIqe);
  EXPECT_EQ(R32(0x38), kFectlIm | kFectlIp);
  W32(0x34, kFstsIqe);
  EXPECT_EQ(R32(0x34), 0u);
  EXPECT_EQ(R32(0x38), kFectlIm);
}

TEST_F(IntelIommuTest, InvalidationWaitCompletionEvent) {
  W32(0xa4, 0x55);
  W32(0xa8, 0xfee0'2000);
  iommu_->SignalInvalidationWait();
  EXPECT_EQ(R32(0x9c), kIcsIwc);
  EXPECT_EQ(R32(0xa0), kFectlIm | kFectlIp);
  W32(0xa0, 0);
  EXPECT_EQ(m_->msi().TotalCount(), 1u);
  EXPECT_EQ(m_->msi().Last(std::nullopt)->data, 0x55u);
}

TEST_F(IntelIommuTest, MachineResetRestoresEveryRegister) {
  std::vector<uint32_t> before;
  for (uint64_t off = 0; off < kRegBlockSize; off += 4)
    before.push_back(R32(off));
  W64(0x20, 0x1000);
  W64(0x90, 0x2000);
  W32(0x18, kGcmdTe | kGcmdSrtp | kGcmdQie | kGcmdIre);
  W32(0x3c, 0x1234);
  iommu_->RecordFault(1, FaultReason::kRead, 0x1000, false);
  m_->Reset();
  EXPECT_EQ(obs_.resets, 1);
  EXPECT_FALSE(iommu_->translation_enabled());
  EXPECT_FALSE(iommu_->qi_enabled());
  for (uint64_t off = 0; off < kRegBlockSize; off += 4) {
    EXPECT_EQ(R32(off), before[off / 4]) << "offset 0x" << std::hex << off;
  }
}

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

TEST(IntelIommuMachineTest, OnePerMachineNotHotpluggable) {
  auto m = *Q35Machine::Create({});
  ASSERT_TRUE(m->AddDevice({.driver = "intel-iommu", .id = "v"}).ok());
  EXPECT_EQ(Msg(m->AddDevice({.driver = "intel-iommu"})),
            "QEMU does not support multiple vIOMMUs for x86 yet.");
  EXPECT_EQ(
      Msg(m->AddDevice({.driver = "intel-iommu", .props = {{"addr", "3"}}})),
      "Property 'intel-iommu.addr' not found");
  EXPECT_EQ(Msg(m->HotplugDevice({.driver = "intel-iommu"})),
            "Parameter 'driver' expects a pluggable device type");
  EXPECT_FALSE(m->DeleteDevice("v").ok());
  EXPECT_FALSE(m->AddDevice({.driver = "edu", .id = "v"}).ok());
}

}  // namespace
}  // namespace viommu::vtd
