// The C API's vIOMMU, PCI endpoints and DMA: identity and through VT-d
// (programmed through viommu_mmio_access, tables in the VMM's RAM), fault
// records, the fault-event MSI and the MSI window.
#include <cerrno>
#include <cstring>

#include "gtest/gtest.h"
#include "tests/capi/capi_fixture.h"
#include "viommu.h"

namespace viommu::capi::testing {
namespace {

class CapiDmaTest : public CapiTest {
 protected:
  viommu_iommu* NewVtd(const char* props) {
    viommu_iommu* iommu = nullptr;
    EXPECT_EQ(viommu_iommu_new(ctx_, "intel-iommu", props, &iommu), 0);
    return iommu;
  }
  viommu_dma_fault NewFault() {
    viommu_dma_fault f{};
    f.size = sizeof(f);
    return f;
  }
};

TEST_F(CapiDmaTest, IdentityEndpointDmaReachesGuestRam) {
  AddRam();
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, nullptr, &ep), 0);
  const char msg[] = "dma";
  ASSERT_EQ(viommu_dma_rw(ep, 0x3000, const_cast<char*>(msg), sizeof(msg),
                          VIOMMU_DMA_WRITE, nullptr),
            0);
  EXPECT_STREQ(reinterpret_cast<char*>(ram_ + 0x3000), "dma");
  char back[4] = {};
  ASSERT_EQ(viommu_dma_rw(ep, 0x3000, back, 4, VIOMMU_DMA_READ, nullptr), 0);
  EXPECT_STREQ(back, "dma");
}

TEST_F(CapiDmaTest, DmaToUnassignedMemoryIsEfaultWithAFaultRecord) {
  AddRam();
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 1, 0x08, nullptr, &ep), 0);
  uint8_t buf[16] = {};
  viommu_dma_fault f = NewFault();
  // Eight bytes of RAM, then nothing.
  EXPECT_EQ(
      viommu_dma_rw(ep, kRamSize - 8, buf, sizeof(buf), VIOMMU_DMA_WRITE, &f),
      -EFAULT);
  EXPECT_EQ(f.iova, kRamSize);
  EXPECT_EQ(f.sid, 0x0108u);
  EXPECT_EQ(f.reason, uint32_t{VIOMMU_FAULT_UNASSIGNED});
  EXPECT_EQ(f.flags, uint32_t{VIOMMU_FAULT_F_WRITE});
  EXPECT_EQ(f.size, sizeof(f));
}

TEST_F(CapiDmaTest, BadDmaArgumentsAreEinval) {
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, nullptr, &ep), 0);
  uint8_t b = 0;
  EXPECT_EQ(viommu_dma_rw(nullptr, 0, &b, 1, VIOMMU_DMA_READ, nullptr),
            -EINVAL);
  EXPECT_EQ(viommu_dma_rw(ep, 0, nullptr, 1, VIOMMU_DMA_READ, nullptr),
            -EINVAL);
  EXPECT_EQ(viommu_dma_rw(ep, 0, &b, 1, 2, nullptr), -EINVAL);
  viommu_dma_fault f{};
  f.size = 4;
  EXPECT_EQ(viommu_dma_rw(ep, 0, &b, 1, VIOMMU_DMA_READ, &f), -EINVAL);
  EXPECT_EQ(viommu_dma_rw(ep, 0, nullptr, 0, VIOMMU_DMA_READ, nullptr), 0);
}

TEST_F(CapiDmaTest, AFunctionIsAnEndpointOnce) {
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, nullptr, &ep), 0);
  viommu_ep* again = nullptr;
  EXPECT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, nullptr, &again), -EEXIST);
  EXPECT_EQ(viommu_ep_new(ctx_, 1, 0, 0x20, nullptr, &again), 0);
  viommu_ep_free(ep);
  EXPECT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, nullptr, &ep), 0);
}

TEST_F(CapiDmaTest, DmaWriteToTheMsiWindowIsAnMsiCallback) {
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x28, nullptr, &ep), 0);
  uint32_t data = 0x4041;
  ASSERT_EQ(viommu_dma_rw(ep, 0xfee0'1000, &data, 4, VIOMMU_DMA_WRITE, nullptr),
            0);
  ASSERT_EQ(rec_.msis.size(), 1u);
  EXPECT_EQ(rec_.msis[0].addr, 0xfee0'1000u);
  EXPECT_EQ(rec_.msis[0].data, 0x4041u);
  EXPECT_EQ(rec_.msis[0].sid, 0x28u);
}

TEST_F(CapiDmaTest, UnknownIommuDriverIsEopnotsupp) {
  viommu_iommu* iommu = nullptr;
  EXPECT_EQ(viommu_iommu_new(ctx_, "virtio-iommu", nullptr, &iommu),
            -EOPNOTSUPP);
  EXPECT_EQ(iommu, nullptr);
}

TEST_F(CapiDmaTest, BadIommuPropertyIsEinvalAndNamedInTheLog) {
  viommu_iommu* iommu = nullptr;
  EXPECT_EQ(viommu_iommu_new(ctx_, "intel-iommu", "aw-bits=40", &iommu),
            -EINVAL);
  EXPECT_TRUE(rec_.LogContains("aw-bits"));
  EXPECT_EQ(viommu_iommu_new(ctx_, "intel-iommu", "no-such-thing=on", &iommu),
            -EINVAL);
  EXPECT_TRUE(rec_.LogContains("no-such-thing"));
  EXPECT_EQ(viommu_iommu_new(ctx_, "intel-iommu", "=on", &iommu), -EINVAL);
}

TEST_F(CapiDmaTest, OneIommuPerContext) {
  NewVtd("caching-mode=on");
  viommu_iommu* second = nullptr;
  EXPECT_EQ(viommu_iommu_new(ctx_, "intel-iommu", nullptr, &second), -EEXIST);
}

TEST_F(CapiDmaTest, IommuRegistersAnswerThroughTheMmioEntryPoint) {
  NewVtd("caching-mode=on,aw-bits=48");
  uint64_t ver = 0;
  ASSERT_EQ(viommu_mmio_access(ctx_, kVtdBase, &ver, 4, 0), 0);
  EXPECT_EQ(ver, uint64_t{vtd::kVersion});
  uint64_t cap = 0;
  ASSERT_EQ(viommu_mmio_access(ctx_, kVtdBase + 8, &cap, 8, 0), 0);
  EXPECT_NE(cap & (1ull << 7), 0u);  // CAP.CM: caching-mode=on
}

TEST_F(CapiDmaTest, IommuInUseCannotBeFreed) {
  viommu_iommu* iommu = NewVtd(nullptr);
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, iommu, &ep), 0);
  EXPECT_EQ(viommu_iommu_free(iommu), -EBUSY);
  viommu_ep_free(ep);
  EXPECT_EQ(viommu_iommu_free(iommu), 0);
  uint64_t v = 0;
  EXPECT_EQ(viommu_mmio_access(ctx_, kVtdBase, &v, 4, 0), -ENOENT);
}

TEST_F(CapiDmaTest, EndpointBehindAnIommuIsOnSegmentZero) {
  viommu_iommu* iommu = NewVtd(nullptr);
  viommu_ep* ep = nullptr;
  EXPECT_EQ(viommu_ep_new(ctx_, 1, 0, 0x20, iommu, &ep), -EINVAL);
}

TEST_F(CapiDmaTest, VtdOffIsIdentity) {
  AddRam();
  viommu_iommu* iommu = NewVtd(nullptr);
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, iommu, &ep), 0);
  uint32_t v = 0xfeed;
  ASSERT_EQ(viommu_dma_rw(ep, 0x5000, &v, 4, VIOMMU_DMA_WRITE, nullptr), 0);
  EXPECT_EQ(Read64(0x5000) & 0xffffffff, 0xfeedu);
}

TEST_F(CapiDmaTest, DmaThroughVtdLandsAtTheTranslatedAddress) {
  AddRam();
  viommu_iommu* iommu = NewVtd(nullptr);
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, iommu, &ep), 0);
  VtdGuest g(ram_, ctx_);
  g.SetContext(0x20, /*did=*/1);
  g.Map(0x1000, 0x40000, /*perm=*/3);
  g.Enable();
  uint64_t v = 0x0123456789abcdef;
  ASSERT_EQ(viommu_dma_rw(ep, 0x1010, &v, 8, VIOMMU_DMA_WRITE, nullptr), 0);
  EXPECT_EQ(Read64(0x40010), v);
  EXPECT_EQ(Read64(0x1010), 0u);  // not identity any more
  uint64_t back = 0;
  ASSERT_EQ(viommu_dma_rw(ep, 0x1010, &back, 8, VIOMMU_DMA_READ, nullptr), 0);
  EXPECT_EQ(back, v);
}

TEST_F(CapiDmaTest, UnmappedIovaIsEfaultWithRecordFaultRegistersAndEventMsi) {
  AddRam();
  viommu_iommu* iommu = NewVtd(nullptr);
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, iommu, &ep), 0);
  VtdGuest g(ram_, ctx_);
  g.SetContext(0x20, 1);
  g.Map(0x1000, 0x40000, 3);
  g.SetFaultEvent(0xfee0'0000, 0x31);
  g.Enable();
  uint32_t v = 0;
  viommu_dma_fault f = NewFault();
  EXPECT_EQ(viommu_dma_rw(ep, 0x9004, &v, 4, VIOMMU_DMA_READ, &f), -EFAULT);
  EXPECT_EQ(f.iova, 0x9004u);
  EXPECT_EQ(f.sid, 0x20u);
  EXPECT_EQ(f.reason, uint32_t{VIOMMU_FAULT_TRANSLATION});
  EXPECT_EQ(f.flags, 0u);
  EXPECT_NE(g.ReadReg32(vtd::Reg32::kFsts) & vtd::kFstsPpf, 0u);
  ASSERT_EQ(rec_.msis.size(), 1u);
  EXPECT_EQ(rec_.msis[0].addr, 0xfee0'0000u);
  EXPECT_EQ(rec_.msis[0].data, 0x31u);
}

TEST_F(CapiDmaTest, WriteToAReadOnlyIovaIsATranslationFault) {
  AddRam();
  viommu_iommu* iommu = NewVtd(nullptr);
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, iommu, &ep), 0);
  VtdGuest g(ram_, ctx_);
  g.SetContext(0x20, 1);
  g.Map(0x1000, 0x40000, /*perm=*/1);  // read only
  g.Enable();
  uint32_t v = 1;
  viommu_dma_fault f = NewFault();
  EXPECT_EQ(viommu_dma_rw(ep, 0x1000, &v, 4, VIOMMU_DMA_WRITE, &f), -EFAULT);
  EXPECT_EQ(f.reason, uint32_t{VIOMMU_FAULT_TRANSLATION});
  EXPECT_EQ(f.flags, uint32_t{VIOMMU_FAULT_F_WRITE});
  EXPECT_EQ(Read64(0x40000), 0u);
}

TEST_F(CapiDmaTest, IommuResetTurnsTranslationOff) {
  AddRam();
  viommu_iommu* iommu = NewVtd(nullptr);
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, iommu, &ep), 0);
  VtdGuest g(ram_, ctx_);
  g.SetContext(0x20, 1);
  g.Enable();
  uint32_t v = 0;
  EXPECT_EQ(viommu_dma_rw(ep, 0x7000, &v, 4, VIOMMU_DMA_READ, nullptr),
            -EFAULT);
  ASSERT_EQ(viommu_iommu_reset(iommu), 0);
  EXPECT_EQ(viommu_dma_rw(ep, 0x7000, &v, 4, VIOMMU_DMA_READ, nullptr), 0);
}

}  // namespace
}  // namespace viommu::capi::testing
