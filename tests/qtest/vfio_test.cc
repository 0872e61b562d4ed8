// vfio-pci through build/viommu: passthrough of the model host's
// edu-compatible devices (ARCHITECTURE.md §4 default platform) driven over
// qtest, observed through QMP x-query-vfio (and x-debug-vfio-host for the
// model host's own state).
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/qtest/qmp_client.h"
#include "tests/qtest/unix_socket.h"
#include "tests/qtest/viommu_fixture.h"
#include "tests/qtest/vtd_guest.h"

namespace viommu::qtest {
namespace {

constexpr int64_t kDmaDelayNs = 100'000'000;
// edu registers (BAR0).
constexpr uint64_t kDmaSrc = 0x80, kDmaDst = 0x88, kDmaCnt = 0x90,
                   kDmaCmd = 0x98, kIrqStatus = 0x24;
constexpr uint64_t kEduBuffer = 0x40000;
constexpr uint64_t kCmdStart = 1, kCmdToRam = 2, kCmdIrq = 4;

std::string TempPath(const char* tag) {
  return (std::filesystem::temp_directory_path() /
          absl::StrCat("viommu-vfio-", tag, "-", getpid()))
      .string();
}

// The number after `"key": ` at or after `from` in `json`.
std::optional<uint64_t> Num(const std::string& json, const std::string& key,
                            size_t from = 0) {
  const std::string needle = absl::StrCat("\"", key, "\": ");
  size_t at = json.find(needle, from);
  if (at == std::string::npos) return std::nullopt;
  at += needle.size();
  size_t end = json.find_first_not_of("0123456789-", at);
  uint64_t v = 0;
  if (!absl::SimpleAtoi(json.substr(at, end - at), &v)) return std::nullopt;
  return v;
}

// Each container's record in an x-query-vfio answer.
std::vector<std::string> Containers(const std::string& json) {
  std::vector<std::string> out;
  size_t at = json.find("{\"id\": ");
  while (at != std::string::npos) {
    size_t next = json.find("{\"id\": ", at + 1);
    out.push_back(
        json.substr(at, next == std::string::npos ? next : next - at));
    at = next;
  }
  return out;
}

class VfioTest : public ViommuTest {
 protected:
  void StartWithQmp(std::vector<std::string> args) {
    path_ = TempPath("qmp");
    args.push_back("-qmp");
    args.push_back("unix:" + path_ + ",server=on,wait=off");
    Start(args);
    if (HasFatalFailure()) return;
    ASSERT_EQ(qts().Readl(0), 0u);  // up, socket listening
    int fd = ConnectUnix(path_);
    ASSERT_GE(fd, 0);
    qmp_ = std::make_unique<QmpClient>(fd);
    qmp_->ReadLine();  // greeting
    ASSERT_EQ(qmp_->Execute(R"({"execute": "qmp_capabilities"})"),
              R"({"return": {}})");
  }
  void TearDown() override {
    qmp_.reset();
    if (!path_.empty()) unlink(path_.c_str());
    ViommuTest::TearDown();
  }
  std::string Query() {
    return qmp_->Execute(R"({"execute": "x-query-vfio"})");
  }
  std::string HostState() {
    return qmp_->Execute(R"({"execute": "x-debug-vfio-host"})");
  }
  // The passthrough function at `devfn` with BAR0 (and BAR2) placed and
  // memory decoding and bus mastering on.
  QPciDevice PlugBars(uint8_t devfn, uint64_t* bar0, uint64_t* bar2 = nullptr) {
    QPciDevice d(&bus(), devfn);
    *bar0 = d.MapBar(0);
    if (bar2 != nullptr) *bar2 = d.MapBar(2);
    d.Enable();
    return d;
  }
  // edu DMA of `len` bytes; `to_ram`: device buffer -> `addr`.
  void Dma(uint64_t bar0, uint64_t addr, uint64_t len, bool to_ram,
           bool irq = false) {
    qts().Writeq(bar0 + kDmaSrc, to_ram ? kEduBuffer : addr);
    qts().Writeq(bar0 + kDmaDst, to_ram ? addr : kEduBuffer);
    qts().Writeq(bar0 + kDmaCnt, len);
    qts().Writeq(bar0 + kDmaCmd,
                 kCmdStart | (to_ram ? kCmdToRam : 0) | (irq ? kCmdIrq : 0));
    qts().ClockStep(kDmaDelayNs);
  }

  std::string path_;
  std::unique_ptr<QmpClient> qmp_;
};

// Runs build/viommu with `args` and returns (exit status, output).
std::pair<int, std::string> RunToExit(const std::string& args) {
  const char* bin = std::getenv("VIOMMU_BINARY");
  FILE* p =
      popen((std::string(bin) + " " + args + " </dev/null 2>&1").c_str(), "r");
  std::string out;
  char buf[512];
  while (p != nullptr && std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  const int rc = p != nullptr ? WEXITSTATUS(pclose(p)) : -1;
  return {rc, out};
}

TEST_F(VfioTest, Type1WithoutIommuMapsGuestRamAndSkipsTheMsiWindow) {
  StartWithQmp(
      {"-m", "256M", "-device", "vfio-pci,host=0000:01:00.0,addr=04.0,id=v0"});
  const std::string q = Query();
  std::vector<std::string> c = Containers(q);
  ASSERT_EQ(c.size(), 1u) << q;
  EXPECT_TRUE(absl::StrContains(
      c[0], R"("backend": "type1", "address-space": "memory", )"
            R"("devices": ["0000:01:00.0"])"))
      << q;
  EXPECT_TRUE(absl::StrContains(
      c[0], R"("iova-ranges": [{"start": 0, "end": 4276092927}, )"
            R"({"start": 4277141504, "end": 281474976710655}])"))
      << q;
  // All 256 MiB of RAM in one mapping; the MSI window is MMIO, skipped.
  EXPECT_EQ(Num(c[0], "mappings"), 1u) << q;
  EXPECT_EQ(Num(c[0], "dma-avail"), 65534u) << q;
  EXPECT_TRUE(absl::StrContains(
      c[0], R"({"start": 4276092928, "end": 4277141503, "reason": "mmio"})"))
      << q;
}

TEST_F(VfioTest, HostEduDmaLandsInGuestRamOnClockStep) {
  StartWithQmp(
      {"-m", "256M", "-device", "vfio-pci,host=0000:01:00.0,addr=04.0,id=v0"});
  QPciDevice dev(&bus(), 0x20);
  EXPECT_EQ(dev.ConfigReadl(0), 0x11e81234u);
  uint64_t bar0 = 0;
  PlugBars(0x20, &bar0);
  EXPECT_EQ(qts().Readl(bar0), 0x010000edu);  // the host edu's id register
  qts().Memwrite(0x100000, {1, 2, 3, 4, 5, 6, 7, 8});
  Dma(bar0, 0x100000, 8, /*to_ram=*/false);
  qts().Memset(0x200000, 8, 0);
  ASSERT_EQ(*qts().Command("irq_intercept_in ioapic"), "OK");
  qts().Writeq(bar0 + kDmaSrc, kEduBuffer);
  qts().Writeq(bar0 + kDmaDst, 0x200000);
  qts().Writeq(bar0 + kDmaCnt, 8);
  qts().Writeq(bar0 + kDmaCmd, kCmdStart | kCmdToRam | kCmdIrq);
  qts().ClockStep(kDmaDelayNs - 1);
  EXPECT_EQ(qts().Memread(0x200000, 8), std::vector<uint8_t>(8, 0));
  EXPECT_TRUE(qts().irq_events().empty());
  qts().ClockStep(1);
  // The completion's INTx arrives in the clock_step's own turn.
  ASSERT_FALSE(qts().irq_events().empty());
  EXPECT_EQ(qts().irq_events().front().rfind("IRQ raise ", 0), 0u);
  EXPECT_EQ(qts().Memread(0x200000, 8),
            (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(qts().Readl(bar0 + kIrqStatus), 0x100u);
  EXPECT_EQ(Num(HostState(), "iommu-faults"), 0u);
}

TEST_F(VfioTest, ReservedDirectRangeFallsBackToASecondContainer) {
  StartWithQmp({"-m", "512M", "-device", "vfio-pci,host=0000:01:00.0",
                "-device", "vfio-pci,host=0000:02:00.0"});
  const std::string q = Query();
  std::vector<std::string> c = Containers(q);
  ASSERT_EQ(c.size(), 2u) << q;
  EXPECT_TRUE(absl::StrContains(c[0], R"("devices": ["0000:01:00.0"])")) << q;
  EXPECT_TRUE(absl::StrContains(c[1], R"("devices": ["0000:02:00.0"])")) << q;
  EXPECT_TRUE(absl::StrContains(c[1],
                                R"({"start": 251658240, "end": 252706815, )"
                                R"("reason": "outside-iova-ranges"})"))
      << q;
  EXPECT_FALSE(absl::StrContains(c[0], "outside-iova-ranges")) << q;
  EXPECT_EQ(Num(c[1], "mappings"), 2u) << q;  // RAM around the hole
}

TEST_F(VfioTest, HotplugAndUnplugLeaveNoHostMapping) {
  StartWithQmp({"-m", "256M"});
  EXPECT_EQ(Query(), R"({"return": {"containers": []}})");
  EXPECT_EQ(
      qmp_->Execute(R"({"execute": "device_add", "arguments": {"driver": )"
                    R"("vfio-pci", "host": "0000:01:00.0", "id": "hp", )"
                    R"("addr": "06.0"}})"),
      R"({"return": {}})");
  EXPECT_EQ(QPciDevice(&bus(), 0x30).ConfigReadl(0), 0x11e81234u);
  EXPECT_EQ(Containers(Query()).size(), 1u);
  std::string host = HostState();
  EXPECT_EQ(Num(host, "host-mappings"), 1u) << host;
  EXPECT_GT(*Num(host, "locked-pages"), 0u) << host;
  // A second add of the same host device fails cleanly.
  EXPECT_TRUE(absl::StrContains(
      qmp_->Execute(R"({"execute": "device_add", "arguments": {"driver": )"
                    R"("vfio-pci", "host": "0000:01:00.0"}})"),
      "already attached"));
  EXPECT_EQ(
      qmp_->Execute(R"({"execute": "device_del", "arguments": {"id": "hp"}})"),
      R"({"return": {}})");
  ASSERT_FALSE(qmp_->events().empty());
  EXPECT_TRUE(absl::StrContains(qmp_->events().back(), "DEVICE_DELETED"));
  EXPECT_TRUE(absl::StrContains(qmp_->events().back(), R"("device":"hp")"));
  EXPECT_EQ(QPciDevice(&bus(), 0x30).ConfigReadl(0), 0xffffffffu);
  EXPECT_EQ(Query(), R"({"return": {"containers": []}})");
  host = HostState();
  EXPECT_EQ(Num(host, "host-mappings"), 0u) << host;
  EXPECT_EQ(Num(host, "locked-pages"), 0u) << host;
}

TEST_F(VfioTest, Type1MapsAPassthroughBarForPeerToPeer) {
  StartWithQmp({"-m", "256M", "-device", "vfio-pci,host=0000:01:00.0,addr=04.0",
                "-device",
                "vfio-pci,host=0000:03:00.0,addr=05.0"});  // compatible
  const uint64_t before = *Num(Containers(Query())[0], "mappings");
  uint64_t bar0 = 0, bar2 = 0;
  PlugBars(0x20, &bar0, &bar2);
  const std::string q = Query();
  std::vector<std::string> c = Containers(q);
  ASSERT_EQ(c.size(), 1u) << q;  // both groups share the container
  EXPECT_EQ(*Num(c[0], "mappings"), before + 1) << q;
  EXPECT_FALSE(absl::StrContains(q, "ram-device")) << q;
  // (A peer's edu DMA cannot reach it: edu masks addresses to 28 bits and
  // BARs sit at 0xe0000000; the model host tests cover P2P DMA.)
}

TEST_F(VfioTest, IommufdBackendMapsRamAndSkipsAPassthroughBar) {
  StartWithQmp({"-m", "256M", "-object", "iommufd,id=fd0", "-device",
                "vfio-pci,host=0000:01:00.0,addr=04.0,iommufd=fd0"});
  std::string q = Query();
  std::vector<std::string> c = Containers(q);
  ASSERT_EQ(c.size(), 1u) << q;
  EXPECT_TRUE(absl::StrContains(c[0], R"("backend": "iommufd")")) << q;
  EXPECT_GE(*Num(c[0], "mappings"), 1u) << q;
  uint64_t bar0 = 0, bar2 = 0;
  PlugBars(0x20, &bar0, &bar2);
  q = Query();
  EXPECT_TRUE(absl::StrContains(
      q, absl::StrCat(R"({"start": )", bar2, R"(, "end": )",
                      bar2 + (1 << 20) - 1, R"(, "reason": "ram-device)")))
      << q;
  qts().Memwrite(0x100000, {1, 2, 3, 4});
  Dma(bar0, 0x100000, 4, /*to_ram=*/false);
  Dma(bar0, 0x300000, 4, /*to_ram=*/true);
  EXPECT_EQ(qts().Readl(0x300000), 0x04030201u);
}

TEST_F(VfioTest, AJoiningGroupThatShrinksTheRangesEmitsTheEvent) {
  StartWithQmp(
      {"-m", "256M", "-device", "vfio-pci,host=0000:01:00.0,addr=04.0"});
  EXPECT_TRUE(absl::StrContains(Query(), R"("end": 281474976710655}])"));
  // 0000:03:00.0 (39-bit aperture) joins the same container.
  EXPECT_EQ(
      qmp_->Execute(R"({"execute": "device_add", "arguments": {"driver": )"
                    R"("vfio-pci", "host": "0000:03:00.0", "id": "narrow"}})"),
      R"({"return": {}})");
  ASSERT_EQ(qmp_->events().size(), 1u);
  const std::string& e = qmp_->events()[0];
  EXPECT_TRUE(absl::StrContains(e, R"("event": "VFIO_IOVA_RANGES_CHANGED")"))
      << e;
  EXPECT_TRUE(absl::StrContains(
      e, R"("data": {"container": 1, "iova-ranges": [{"start": 0, )"
         R"("end": 4276092927}, {"start": 4277141504, )"
         R"("end": 549755813887}]})"))
      << e;
  const std::string q = Query();
  EXPECT_EQ(Containers(q).size(), 1u) << q;
  EXPECT_TRUE(absl::StrContains(q, R"("end": 549755813887}])")) << q;
}

// x-query-msi sees the guest-programmed message a passthrough device's
// host MSI turns into (on the machine's MSI window, requester id = devfn),
// x-query-vfio-devices the device's interrupt mode and counters; MSI off
// is INTx again. system_reset clears the emulated config (command, BARs,
// MSI) and the BAR's P2P mapping goes until the guest places it again.
TEST_F(VfioTest, HostMsiReachesTheMsiWindowAndResetClearsTheConfig) {
  StartWithQmp(
      {"-m", "256M", "-device", "vfio-pci,host=0000:01:00.0,addr=04.0,id=v0"});
  std::string d = qmp_->Execute(R"({"execute": "x-query-vfio-devices"})");
  EXPECT_TRUE(absl::StrContains(
      d, R"({"return": {"devices": [{"id": "v0", "host": "0000:01:00.0", )"
         R"("devfn": 32, "device-reset": true, "irq-mode": "intx", )"
         R"("msi-delivered": 0, "intx-asserted": 0, "intx-unmasked": 0, )"
         R"("host-errors": 0, "last-host-error": ""}]}})"))
      << d;
  EXPECT_EQ(qmp_->Execute(R"({"execute": "x-query-msi"})"),
            R"({"return": {"total": 0}})");
  uint64_t bar0 = 0, bar2 = 0;
  QPciDevice dev = PlugBars(0x20, &bar0, &bar2);
  const uint8_t cap = dev.FindCapability(0x05);
  ASSERT_NE(cap, 0);
  dev.ConfigWritel(cap + 4, 0xfee0'3000);
  dev.ConfigWritel(cap + 8, 0);  // upper address (64-bit capability)
  dev.ConfigWritew(cap + 12, 0x4077);
  dev.ConfigWritew(cap + 2, 1);  // enable, one vector
  d = qmp_->Execute(R"({"execute": "x-query-vfio-devices"})");
  EXPECT_TRUE(absl::StrContains(d, R"("irq-mode": "msi")")) << d;
  Dma(bar0, 0x100000, 8, /*to_ram=*/false, /*irq=*/true);
  EXPECT_EQ(qmp_->Execute(
                R"({"execute": "x-query-msi", "arguments": {"requester-id": )"
                R"(32}})"),
            R"({"return": {"total": 1, "count": 1, "last": {"address": )"
            R"(4276105216, "data": 16503}}})");
  d = qmp_->Execute(R"({"execute": "x-query-vfio-devices"})");
  EXPECT_TRUE(absl::StrContains(d, R"("msi-delivered": 1, )")) << d;
  EXPECT_TRUE(absl::StrContains(
      qmp_->Execute(R"({"execute": "x-query-msi", "arguments": )"
                    R"({"requester-id": "x"}})"),
      "must be an integer"));

  dev.ConfigWritew(cap + 2, 0);  // MSI off: INTx again
  d = qmp_->Execute(R"({"execute": "x-query-vfio-devices"})");
  EXPECT_TRUE(absl::StrContains(d, R"("irq-mode": "intx")")) << d;

  const uint64_t before = *Num(Query(), "mappings");
  dev.ConfigWritew(cap + 2, 1);
  EXPECT_EQ(qmp_->Execute(R"({"execute": "system_reset"})"),
            R"({"return": {}})");
  EXPECT_EQ(dev.ConfigReadw(0x04), 0u);
  EXPECT_EQ(dev.ConfigReadl(0x10), 0u);
  EXPECT_EQ(dev.ConfigReadw(cap + 2) & 1, 0u);
  d = qmp_->Execute(R"({"execute": "x-query-vfio-devices"})");
  EXPECT_TRUE(absl::StrContains(d, R"("irq-mode": "intx")")) << d;
  EXPECT_TRUE(absl::StrContains(d, R"("host-errors": 0, )")) << d;
  EXPECT_EQ(*Num(Query(), "mappings"), before - 1) << "BAR2's P2P mapping";
}

class VfioVtdTest : public VfioTest {
 protected:
  static constexpr uint8_t kDevfn = 0x20;  // 04.0
  static constexpr uint16_t kDid = 1;
  uint64_t MappingsOf(const std::string& q) {
    std::vector<std::string> c = Containers(q);
    return c.size() == 1 ? Num(c[0], "mappings").value_or(~0ull) : ~0ull;
  }
};

TEST_F(VfioVtdTest, ContainerFollowsTheGuestPageTables) {
  StartWithQmp({"-m", "256M", "-device", "intel-iommu,caching-mode=on",
                "-device", "vfio-pci,host=0000:01:00.0,addr=04.0,id=v0"});
  std::string q = Query();
  EXPECT_TRUE(absl::StrContains(q, R"("address-space": "vtd-04.0")")) << q;
  EXPECT_EQ(MappingsOf(q), 1u) << q;  // DMAR off: all of RAM
  VtdGuest vtd(&qts(), 3);
  vtd.SetContext(kDevfn, kDid);
  vtd.Map(kDevfn, 0x0800'0000, 0x30'0000, VtdGuest::k4K, VtdGuest::kRw);
  vtd.Enable();
  q = Query();
  EXPECT_EQ(MappingsOf(q), 1u) << q;
  // Caching mode: each new mapping is followed by a page invalidation.
  vtd.Map(kDevfn, 0x0800'1000, 0x31'0000, VtdGuest::k4K, VtdGuest::kRw);
  vtd.InvalidateIotlbPage(kDid, 0x0800'1000, 0);
  EXPECT_EQ(MappingsOf(Query()), 2u);
  vtd.Map(kDevfn, 0x0820'0000, 0x40'0000, VtdGuest::k2M, VtdGuest::kRw);
  vtd.InvalidateIotlbPage(kDid, 0x0820'0000, 9);
  EXPECT_EQ(MappingsOf(Query()), 3u);
  vtd.Unmap(kDevfn, 0x0800'1000, VtdGuest::k4K);
  vtd.InvalidateIotlbPage(kDid, 0x0800'1000, 0);
  EXPECT_EQ(MappingsOf(Query()), 2u);

  // Host DMA to IOVA 0x08000000 lands at the translated GPA.
  uint64_t bar0 = 0;
  PlugBars(kDevfn, &bar0);
  qts().Memset(0x30'0000, 4, 0);
  // The device reads through IOVA 0x08200010 (GPA 0x400010) ...
  qts().Memwrite(0x40'0010, {0xde, 0xad, 0xbe, 0xef});
  Dma(bar0, 0x0820'0010, 4, /*to_ram=*/false);
  // ... and writes to IOVA 0x08000000 (GPA 0x300000).
  Dma(bar0, 0x0800'0000, 4, /*to_ram=*/true);
  EXPECT_EQ(qts().Memread(0x30'0000, 4),
            (std::vector<uint8_t>{0xde, 0xad, 0xbe, 0xef}));
  std::string host = HostState();
  EXPECT_EQ(Num(host, "iommu-faults"), 0u) << host;
  // Unmapped IOVA: a host IOMMU fault, nothing written.
  Dma(bar0, 0x0800'1000, 4, /*to_ram=*/true);
  host = HostState();
  EXPECT_EQ(Num(host, "iommu-faults"), 1u) << host;
  EXPECT_EQ(Num(host, "last-fault-iova"), 0x0800'1000u) << host;
  EXPECT_EQ(qts().Readl(0x31'0000), 0u);
}

TEST_F(VfioVtdTest, DevicesBeforeIntelIommuMoveIntoTheirVtdSpaces) {
  StartWithQmp({"-m", "256M", "-device", "vfio-pci,host=0000:01:00.0",
                "-device", "edu", "-device", "vfio-pci,host=0000:02:00.0",
                "-device", "intel-iommu,caching-mode=on"});
  const std::string q = Query();
  std::vector<std::string> c = Containers(q);
  ASSERT_EQ(c.size(), 2u) << q;
  // Slots as given by command-line order: 01.0, edu 02.0, 03.0.
  EXPECT_TRUE(absl::StrContains(c[0], R"("address-space": "vtd-01.0")")) << q;
  EXPECT_TRUE(absl::StrContains(c[1], R"("address-space": "vtd-03.0")")) << q;
  EXPECT_EQ(QPciDevice(&bus(), 0x08).ConfigReadl(0), 0x11e81234u);
  EXPECT_EQ(QPciDevice(&bus(), 0x10).ConfigReadl(0), 0x11e81234u);
  EXPECT_EQ(QPciDevice(&bus(), 0x18).ConfigReadl(0), 0x11e81234u);
  EXPECT_EQ(Num(HostState(), "host-mappings"), 3u);  // RAM; 2 around the hole
}

TEST_F(VfioVtdTest, IommufdContainerFollowsTheGuestPageTables) {
  StartWithQmp({"-m", "256M", "-device", "intel-iommu,caching-mode=on",
                "-object", "iommufd,id=fd0", "-device",
                "vfio-pci,host=0000:01:00.0,addr=04.0,iommufd=fd0"});
  std::string q = Query();
  EXPECT_TRUE(absl::StrContains(q, R"("backend": "iommufd")")) << q;
  VtdGuest vtd(&qts(), 3);
  vtd.SetContext(kDevfn, kDid);
  vtd.Map(kDevfn, 0x0800'0000, 0x30'0000, VtdGuest::k4K, VtdGuest::kRw);
  vtd.Enable();
  EXPECT_EQ(MappingsOf(Query()), 1u);
  vtd.Map(kDevfn, 0x0800'1000, 0x31'0000, VtdGuest::k4K, VtdGuest::kRw);
  vtd.InvalidateIotlbPage(kDid, 0x0800'1000, 0);
  EXPECT_EQ(MappingsOf(Query()), 2u);
  uint64_t bar0 = 0;
  PlugBars(kDevfn, &bar0);
  qts().Memwrite(0x31'0000, {5, 6, 7, 8});
  Dma(bar0, 0x0800'1000, 4, /*to_ram=*/false);
  Dma(bar0, 0x0800'0000, 4, /*to_ram=*/true);
  EXPECT_EQ(qts().Readl(0x30'0000), 0x08070605u);
}

TEST_F(VfioVtdTest, AMapErrorAfterInitIsCountedAndTheVmKeepsRunning) {
  StartWithQmp({"-m", "256M", "-device", "intel-iommu,caching-mode=on",
                "-device", "vfio-pci,host=0000:01:00.0,addr=04.0,id=v0"});
  VtdGuest vtd(&qts(), 3);
  vtd.SetContext(kDevfn, kDid);
  vtd.Map(kDevfn, 0x0800'0000, 0x30'0000, VtdGuest::k4K, VtdGuest::kRw);
  vtd.Enable();
  ASSERT_EQ(MappingsOf(Query()), 1u);
  EXPECT_EQ(qmp_->Execute(R"({"execute": "x-debug-vfio-fail-map", )"
                          R"("arguments": {"n": 1, "errno": 12}})"),
            R"({"return": {}})");
  vtd.Map(kDevfn, 0x0800'1000, 0x31'0000, VtdGuest::k4K, VtdGuest::kRw);
  vtd.InvalidateIotlbPage(kDid, 0x0800'1000, 0);
  EXPECT_EQ(MappingsOf(Query()), 1u);
  std::string host = HostState();
  EXPECT_EQ(Num(host, "errors"), 1u) << host;
  EXPECT_TRUE(absl::StrContains(host, "vfio container")) << host;
  // Still running: the next mapping reaches the host.
  vtd.Map(kDevfn, 0x0800'2000, 0x32'0000, VtdGuest::k4K, VtdGuest::kRw);
  vtd.InvalidateIotlbPage(kDid, 0x0800'2000, 0);
  EXPECT_EQ(MappingsOf(Query()), 2u);
}

TEST_F(VfioVtdTest, HotplugWithoutCachingModeFailsAndUnplugCleansUp) {
  StartWithQmp({"-m", "256M", "-device", "intel-iommu"});
  const std::string r = qmp_->Execute(
      R"({"execute": "device_add", "arguments": {"driver": "vfio-pci", )"
      R"("host": "0000:01:00.0", "id": "hp"}})");
  EXPECT_TRUE(absl::StrContains(r, "GenericError")) << r;
  EXPECT_TRUE(absl::StrContains(r, "caching-mode=on")) << r;
  EXPECT_EQ(Query(), R"({"return": {"containers": []}})");
  EXPECT_EQ(Num(HostState(), "host-mappings"), 0u);
  EXPECT_EQ(qts().Readl(0), 0u);  // still running
}

TEST_F(VfioVtdTest, HotUnplugBehindVtdLeavesNoHostMapping) {
  StartWithQmp({"-m", "256M", "-device", "intel-iommu,caching-mode=on"});
  EXPECT_EQ(
      qmp_->Execute(R"({"execute": "device_add", "arguments": {"driver": )"
                    R"("vfio-pci", "host": "0000:02:00.0", "id": "hp", )"
                    R"("addr": "04.0"}})"),
      R"({"return": {}})");
  VtdGuest vtd(&qts(), 3);
  vtd.SetContext(kDevfn, kDid);
  vtd.Map(kDevfn, 0x0800'0000, 0x30'0000, VtdGuest::k4K, VtdGuest::kRw);
  vtd.Enable();
  EXPECT_EQ(MappingsOf(Query()), 1u);
  EXPECT_EQ(Num(HostState(), "host-mappings"), 1u);
  EXPECT_EQ(
      qmp_->Execute(R"({"execute": "device_del", "arguments": {"id": "hp"}})"),
      R"({"return": {}})");
  EXPECT_EQ(Query(), R"({"return": {"containers": []}})");
  const std::string host = HostState();
  EXPECT_EQ(Num(host, "host-mappings"), 0u) << host;
  EXPECT_EQ(Num(host, "locked-pages"), 0u) << host;
}

TEST(VfioCommandLineTest, VtdRefusesPassthroughWithoutCachingMode) {
  for (const char* order :
       {"-device intel-iommu -device vfio-pci,host=0000:01:00.0,id=v0",
        "-device vfio-pci,host=0000:01:00.0,id=v0 -device intel-iommu"}) {
    auto [rc, out] = RunToExit(order);
    EXPECT_EQ(rc, 1) << order;
    EXPECT_TRUE(absl::StrContains(out, "vfio-pci 'v0' (host 0000:01:00.0)"))
        << order << ": " << out;
    EXPECT_TRUE(absl::StrContains(out, "caching-mode=on")) << out;
  }
}

TEST(VfioCommandLineTest, VtdRefusesAWiderGuestAddressWidthThanTheHost) {
  auto [rc, out] = RunToExit(
      "-device intel-iommu,caching-mode=on,aw-bits=48 "
      "-device vfio-pci,host=0000:03:00.0");
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(absl::StrContains(out, "host 0000:03:00.0")) << out;
  EXPECT_TRUE(absl::StrContains(out, "aw-bits=48")) << out;
  EXPECT_TRUE(absl::StrContains(out, "(39 bits)")) << out;
}

TEST(VfioCommandLineTest, ABadHostPlatformBlobIsAClearError) {
  const std::string path = TempPath("bad.dtb");
  std::ofstream(path) << "this is not a device tree";
  auto [rc, out] = RunToExit("-object vfio-host-model,id=h0,dtb=" + path +
                             " -device vfio-pci,host=0000:01:00.0");
  unlink(path.c_str());
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(absl::StrContains(out, "-object vfio-host-model,id=h0,dtb="))
      << out;
}

}  // namespace
}  // namespace viommu::qtest
