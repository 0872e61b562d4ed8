// VT-d interrupt remapping through build/viommu: where a device's MSI in
// remappable format lands (QMP x-query-msi, the MSI window's record per
// requester id), for edu and for a passthrough device's host interrupt,
// and how an IEC invalidation redirects the next one. QEMU 7.2 cannot show
// this over qtest (its APIC takes the message), so it is checked here
// against the VT-d spec's IRTE format rather than differentially.
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/qtest/qmp_client.h"
#include "tests/qtest/unix_socket.h"
#include "tests/qtest/viommu_fixture.h"

namespace viommu::qtest {
namespace {

constexpr uint64_t kVtd = 0xfed9'0000;
constexpr uint64_t kGcmd = 0x18, kGsts = 0x1c, kFsts = 0x34, kIqt = 0x88,
                   kIqa = 0x90, kIrta = 0xb8, kFrcdLo = 0x220,
                   kFrcdHi = 0x228;
constexpr uint64_t kIrt = 0x200'0000;    // 256 IRTEs
constexpr uint64_t kQueue = 0x300'0000;  // 256 descriptors
constexpr uint8_t kDevfn = 0x20;         // 04.0, requester id 32

// edu (BAR0) registers.
constexpr uint64_t kEduRaise = 0x60, kEduAck = 0x64;

// An IRTE's low quadword: present, fixed, edge, `vector`, xAPIC `dest`.
uint64_t IrteLo(uint8_t vector, uint8_t dest) {
  return 1 | uint64_t{vector} << 16 | uint64_t{dest} << 40;
}
// The remappable-format MSI address of `handle` (no SHV).
uint32_t Remappable(uint16_t handle) {
  return 0xfee0'0000 | uint32_t{handle} << 5 | 1 << 4;
}

class VtdIrTest : public ViommuTest {
 protected:
  void StartWithQmp(std::vector<std::string> args) {
    path_ = (std::filesystem::temp_directory_path() /
             absl::StrCat("viommu-ir-qmp-", getpid()))
                .string();
    args.push_back("-qmp");
    args.push_back("unix:" + path_ + ",server=on,wait=off");
    Start(args);
    if (HasFatalFailure()) return;
    ASSERT_EQ(qts().Readl(0), 0u);
    int fd = ConnectUnix(path_);
    ASSERT_GE(fd, 0);
    qmp_ = std::make_unique<QmpClient>(fd);
    qmp_->ReadLine();
    ASSERT_EQ(qmp_->Execute(R"({"execute": "qmp_capabilities"})"),
              R"({"return": {}})");
  }
  void TearDown() override {
    qmp_.reset();
    if (!path_.empty()) unlink(path_.c_str());
    ViommuTest::TearDown();
  }
  std::string Msi() {
    return qmp_->Execute(R"({"execute": "x-query-msi", "arguments": )"
                         R"({"requester-id": 32}})");
  }
  static std::string Expect(uint64_t total, uint64_t address, uint32_t data) {
    return absl::StrCat(R"({"return": {"total": )", total, R"(, "count": )",
                        total, R"(, "last": {"address": )", address,
                        R"(, "data": )", data, "}}}");
  }

  // IRTA = kIrt (S = 7), SIRTP, IRE.
  void EnableIr() {
    qts().Writeq(kVtd + kIrta, kIrt | 7);
    qts().Writel(kVtd + kGcmd, 0x0100'0000);
    qts().Writel(kVtd + kGcmd, 0x0300'0000);
    ASSERT_EQ(qts().Readl(kVtd + kGsts), 0x0300'0000u);
  }
  void PutIrte(uint16_t index, uint64_t lo, uint64_t hi = 0) {
    qts().Writeq(kIrt + index * 16, lo);
    qts().Writeq(kIrt + index * 16 + 8, hi);
  }
  // Queued invalidation on (IRES kept), then descriptors one at a time.
  void EnableQi() {
    qts().Writeq(kVtd + kIqa, kQueue);
    qts().Writel(kVtd + kGcmd, qts().Readl(kVtd + kGsts) | 0x0400'0000);
  }
  void SubmitIecGlobal() {
    qts().Writeq(kQueue + tail_ * 16, 4);
    qts().Writeq(kQueue + tail_ * 16 + 8, 0);
    ++tail_;
    qts().Writeq(kVtd + kIqt, uint64_t{tail_} << 4);
  }
  // edu at 04.0: BAR0 at 0xfe000000, memory + bus master, MSI (cap 0x40)
  // enabled with `address` and data 0.
  void EduMsi(uint32_t address) {
    qts().Outl(0xcf8, 0x8000'2010);
    qts().Outl(0xcfc, 0xfe00'0000);
    qts().Outl(0xcf8, 0x8000'2004);
    qts().Outw(0xcfc, 0x0006);
    qts().Outl(0xcf8, 0x8000'2044);
    qts().Outl(0xcfc, address);
    qts().Outl(0xcf8, 0x8000'2048);
    qts().Outl(0xcfc, 0);
    qts().Outl(0xcf8, 0x8000'204c);
    qts().Outw(0xcfc, 0);
    qts().Outl(0xcf8, 0x8000'2040);
    qts().Outw(0xcfe, 1);
  }
  void EduRaise() {
    qts().Writel(0xfe00'0000 + kEduRaise, 1);
    qts().Writel(0xfe00'0000 + kEduAck, 1);
  }

  std::string path_;
  std::unique_ptr<QmpClient> qmp_;
  uint32_t tail_ = 0;
};

TEST_F(VtdIrTest, EduMsiArrivesAsItsIrtesMessage) {
  StartWithQmp({"-m", "256M", "-device", "intel-iommu,intremap=on",
                "-device", "edu,addr=04.0"});
  PutIrte(5, IrteLo(0x41, 2));
  EnableIr();
  EduMsi(Remappable(5));
  EduRaise();
  // 0xfee02000 (APIC 2), data 0x4041 (vector 0x41, fixed, assert, edge).
  EXPECT_EQ(Msi(), Expect(1, 0xfee0'2000, 0x4041));
  EXPECT_EQ(qts().Readl(kVtd + kFsts), 0u);
}

TEST_F(VtdIrTest, IecInvalidationRedirectsTheNextInterrupt) {
  StartWithQmp({"-m", "256M", "-device", "intel-iommu,intremap=on",
                "-device", "edu,addr=04.0"});
  PutIrte(5, IrteLo(0x41, 2));
  EnableIr();
  EnableQi();
  EduMsi(Remappable(5));
  EduRaise();
  EXPECT_EQ(Msi(), Expect(1, 0xfee0'2000, 0x4041));
  PutIrte(5, IrteLo(0x52, 3));
  EduRaise();
  EXPECT_EQ(Msi(), Expect(2, 0xfee0'2000, 0x4041))
      << "the cached IRTE until the IEC is invalidated";
  SubmitIecGlobal();
  EXPECT_EQ(qts().Readl(kVtd + kFsts), 0u);
  EduRaise();
  EXPECT_EQ(Msi(), Expect(3, 0xfee0'3000, 0x4052));
}

TEST_F(VtdIrTest, BlockedMsiRecordsAFaultAndReachesNothing) {
  StartWithQmp({"-m", "256M", "-device", "intel-iommu,intremap=on",
                "-device", "edu,addr=04.0"});
  EnableIr();
  EduMsi(Remappable(6));  // IRTE 6 not present
  EduRaise();
  EXPECT_EQ(qmp_->Execute(R"({"execute": "x-query-msi"})"),
            R"({"return": {"total": 0}})");
  EXPECT_EQ(qts().Readl(kVtd + kFsts), 2u);  // PPF
  EXPECT_EQ(qts().Readq(kVtd + kFrcdLo), uint64_t{6} << 48);
  EXPECT_EQ(qts().Readq(kVtd + kFrcdHi), 0x8000'0022'0000'0020u);
}

TEST_F(VtdIrTest, IntremapOffLeavesTheMessageAsProgrammed) {
  StartWithQmp({"-m", "256M", "-device", "intel-iommu,intremap=off",
                "-device", "edu,addr=04.0"});
  PutIrte(5, IrteLo(0x41, 2));
  qts().Writeq(kVtd + kIrta, kIrt | 7);
  qts().Writel(kVtd + kGcmd, 0x0300'0000);  // IRE ignored
  EduMsi(Remappable(5));
  EduRaise();
  EXPECT_EQ(Msi(), Expect(1, Remappable(5), 0));
  EXPECT_EQ(qts().Readl(kVtd + kFsts), 0u);
}

// A passthrough device's host MSI (from its eventfd) is sent through the
// device's DMA space like edu's, so it is remapped too.
TEST_F(VtdIrTest, PassthroughHostMsiIsRemapped) {
  StartWithQmp({"-m", "256M", "-device",
                "intel-iommu,caching-mode=on,intremap=on", "-device",
                "vfio-pci,host=0000:01:00.0,addr=04.0,id=v0"});
  PutIrte(7, IrteLo(0x61, 1));
  EnableIr();
  QPciDevice dev(&bus(), kDevfn);
  const uint64_t bar0 = dev.MapBar(0);
  dev.Enable();
  const uint8_t cap = dev.FindCapability(0x05);
  ASSERT_NE(cap, 0);
  dev.ConfigWritel(cap + 4, Remappable(7));
  dev.ConfigWritel(cap + 8, 0);
  dev.ConfigWritew(cap + 12, 0);
  dev.ConfigWritew(cap + 2, 1);
  // Host edu DMA of 8 bytes from RAM (untranslated: TE is off) with its
  // completion interrupt.
  qts().Writeq(bar0 + 0x80, 0x10'0000);
  qts().Writeq(bar0 + 0x88, 0x4'0000);
  qts().Writeq(bar0 + 0x90, 8);
  qts().Writeq(bar0 + 0x98, 1 | 4);
  qts().ClockStep(100'000'000);
  EXPECT_EQ(Msi(), Expect(1, 0xfee0'1000, 0x4061));
  EXPECT_EQ(qts().Readl(kVtd + kFsts), 0u);
}

}  // namespace
}  // namespace viommu::qtest
