// build/viommu passing a REAL device through a REAL Linux VFIO stack, end
// to end: run as a guest step of tests/host/run_real_kernel.sh (root, the
// VM's edu bound to vfio-pci at $VIOMMU_BDF; docs/real-kernel-tests.md).
// Each test starts `viommu -machine q35,vfio-host=linux -m 64M ... -device
// vfio-pci,host=$VIOMMU_BDF,id=hostedu -qtest stdio -qmp unix:...`, drives
// the guest side over qtest (PCI config, BAR0 of the passed-through edu,
// guest RAM, the VT-d tables of tests/qtest/vtd_guest.h) and checks the
// container state through QMP x-query-vfio, the device's interrupt state
// through x-query-vfio-devices and MSIs through x-query-msi.
//
// The device is QEMU 7.2's edu in the outer VM: BAR0 is one 1 MiB mmappable
// region; DMA registers src/dst/count/cmd at 0x80/0x88/0x90/0x98; its DMA
// buffer at device address 0x40000; cmd bit 0 starts (and reads 1 until
// done), bit 1 = buffer -> RAM. It masks DMA addresses to 28 bits (IOVAs
// stay below 256 MiB) and completes a DMA about 100 ms later on the outer
// QEMU's clock: the tests poll cmd bit 0 against a wall-clock deadline.
//
// Environment: VIOMMU_BDF (required, else every test skips), VIOMMU_BINARY
// (the viommu binary) or VIOMMU_BIN (the guest's binary root; viommu is
// $VIOMMU_BIN/viommu), VIOMMU_PASSTHROUGH_BACKEND: "type1" (default: the
// legacy container and group) or "iommufd" (`-object iommufd,id=iommufd0`
// and `iommufd=iommufd0` on the device: /dev/iommu and the device cdev,
// Linux 6.6 and later). Every test runs on either backend; where the two
// differ (the BAR's peer-to-peer mapping) the test says so. What the
// kernel holds is read from its side too: the pages pinned for viommu's
// process (/proc/PID/status: VmPin for iommufd, VmLck for type1).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "tests/host/proc_status.h"
#include "tests/qtest/qmp_client.h"
#include "tests/qtest/qpci.h"
#include "tests/qtest/qtest_client.h"
#include "tests/qtest/unix_socket.h"
#include "tests/qtest/vtd_guest.h"

namespace viommu::qtest {
namespace {

// edu (BAR0).
constexpr uint64_t kId = 0x00, kDmaSrc = 0x80, kDmaDst = 0x88, kDmaCnt = 0x90,
                   kDmaCmd = 0x98;
constexpr uint64_t kEduBuffer = 0x40000;
constexpr uint64_t kCmdStart = 1, kCmdToRam = 2, kCmdIrq = 4;
constexpr uint64_t kIrqStatus = 0x24, kIrqRaise = 0x60, kIrqAck = 0x64;
constexpr uint32_t kIrqDma = 0x100;
constexpr uint8_t kCapIdMsi = 0x05;
constexpr uint16_t kMsiEnable = 0x0001, kMsi64 = 0x0080;
constexpr uint32_t kEduId = 0x010000ed;  // edu 1.0
constexpr uint32_t kEduVendorDevice = 0x11e81234;
constexpr uint8_t kDevfn = 0x20;  // 04.0
constexpr uint16_t kDid = 1;
constexpr auto kDmaTimeout = std::chrono::seconds(10);

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

std::string ViommuBinary() {
  return EnvOr("VIOMMU_BINARY", EnvOr("VIOMMU_BIN", ".") + "/viommu");
}

// The number after `"key": ` in `json`.
std::optional<uint64_t> Num(const std::string& json, const std::string& key) {
  const std::string needle = absl::StrCat("\"", key, "\": ");
  size_t at = json.find(needle);
  if (at == std::string::npos) return std::nullopt;
  at += needle.size();
  const size_t end = json.find_first_not_of("0123456789", at);
  uint64_t v = 0;
  if (!absl::SimpleAtoi(json.substr(at, end - at), &v)) return std::nullopt;
  return v;
}

size_t CountOf(const std::string& json, const std::string& what) {
  size_t n = 0;
  for (size_t at = json.find(what); at != std::string::npos;
       at = json.find(what, at + 1)) {
    ++n;
  }
  return n;
}

std::vector<uint8_t> Pattern(uint8_t seed, size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + 7 * i);
  return v;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class RealPassthroughTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bdf_ = EnvOr("VIOMMU_BDF", "");
    if (bdf_.empty()) GTEST_SKIP() << "VIOMMU_BDF is not set (not in the VM)";
    const std::string backend = EnvOr("VIOMMU_PASSTHROUGH_BACKEND", "type1");
    ASSERT_TRUE(backend == "type1" || backend == "iommufd")
        << "VIOMMU_PASSTHROUGH_BACKEND=" << backend;
    iommufd_ = backend == "iommufd";
  }

  void TearDown() override {
    if (HasFailure() && qmp_ != nullptr) {
      std::fprintf(stderr, "x-query-vfio at the failure: %s\n",
                   Query().c_str());
    }
    qmp_.reset();
    if (qts_ != nullptr && qts_->failed()) {
      ADD_FAILURE() << "qtest: " << qts_->last_error();
    }
    bus_.reset();
    qts_.reset();  // viommu exits on EOF: its fds and mappings go
    if (!qmp_path_.empty()) unlink(qmp_path_.c_str());
  }

  // Starts viommu on the real kernel with `extra` after the machine
  // options, and connects QMP.
  void Start(const std::vector<std::string>& extra) {
    static int serial = 0;
    qmp_path_ =
        absl::StrFormat("/tmp/viommu-real-qmp-%d-%d", getpid(), ++serial);
    std::vector<std::string> argv = {
        ViommuBinary(),
        "-machine",
        "q35,vfio-host=linux",
        "-m",
        "64M",
        "-qtest",
        "stdio",
        "-qmp",
        "unix:" + qmp_path_ + ",server=on,wait=off"};
    if (iommufd_) {
      argv.insert(argv.end(), {"-object", "iommufd,id=iommufd0"});
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    std::fprintf(stderr, "starting:");
    for (const std::string& a : argv) std::fprintf(stderr, " %s", a.c_str());
    std::fprintf(stderr, "\n");
    auto c = QtestClient::Spawn(argv, std::chrono::seconds(30));
    ASSERT_TRUE(c.ok()) << c.status();
    qts_ = *std::move(c);
    bus_ = std::make_unique<QPciBus>(qts_.get());
    // The first answer means the machine is built and QMP listens (a
    // machine that failed to build exits; its message is on stderr).
    absl::StatusOr<std::string> up = qts_->Command("readl 0x0");
    ASSERT_TRUE(up.ok()) << "viommu did not come up: " << up.status();
    const int fd = ConnectUnix(qmp_path_);
    ASSERT_GE(fd, 0) << "QMP socket " << qmp_path_;
    qmp_ = std::make_unique<QmpClient>(fd);
    qmp_->ReadLine();  // greeting
    ASSERT_EQ(qmp_->Execute(R"({"execute": "qmp_capabilities"})"),
              R"({"return": {}})");
  }

  std::string HostDevice(const std::string& extra = "") {
    return absl::StrCat("vfio-pci,host=", bdf_, ",id=hostedu,addr=04.0",
                        iommufd_ ? ",iommufd=iommufd0" : "", extra);
  }
  // x-query-vfio's "backend" member of this run's containers.
  std::string BackendMember() const {
    return absl::StrCat(R"("backend": ")", iommufd_ ? "iommufd" : "type1",
                        R"(")");
  }
  // KiB of viommu's memory the kernel holds pinned for DMA, as the kernel
  // counts it: iommufd adds its pins to mm->pinned_vm (VmPin), type1 to
  // mm->locked_vm (VmLck). Device memory (a BAR's PFNMAP) is not counted.
  std::optional<uint64_t> PinnedKiB() const {
    return viommu::testing::ProcStatusKiB(qts_->pid(),
                                          iommufd_ ? "VmPin" : "VmLck");
  }

  std::string Query() {
    return qmp_->Execute(R"({"execute": "x-query-vfio"})");
  }
  // Mappings of the only container (nullopt when there is not exactly one).
  std::optional<uint64_t> Mappings(const std::string& q) {
    if (CountOf(q, "{\"id\": ") != 1) return std::nullopt;
    return Num(q, "mappings");
  }

  // Places BAR0 (at `at`, or the next free address from 0xe0000000) and
  // turns memory decoding and bus mastering on; checks the edu id.
  uint64_t PlugBar0(std::optional<uint64_t> at = std::nullopt) {
    QPciDevice dev(bus_.get(), kDevfn);
    EXPECT_EQ(dev.ConfigReadl(0), kEduVendorDevice);
    uint64_t bar0 = 0;
    if (at.has_value()) {
      dev.ConfigWritel(0x10, static_cast<uint32_t>(*at));
      bar0 = *at;
    } else {
      bar0 = dev.MapBar(0);
    }
    dev.Enable();
    EXPECT_EQ(qts_->Readl(bar0 + kId), kEduId)
        << "BAR0 at 0x" << std::hex << bar0;
    return bar0;
  }

  // One edu DMA (`to_ram`: buffer -> `addr`, else `addr` -> buffer) of
  // `len` bytes, waited for. False (with a failure) on a timeout.
  bool Dma(uint64_t bar0, uint64_t addr, uint64_t len, bool to_ram) {
    qts_->Writeq(bar0 + kDmaSrc, to_ram ? kEduBuffer : addr);
    qts_->Writeq(bar0 + kDmaDst, to_ram ? addr : kEduBuffer);
    qts_->Writeq(bar0 + kDmaCnt, len);
    qts_->Writeq(bar0 + kDmaCmd, kCmdStart | (to_ram ? kCmdToRam : 0));
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t cmd = 0;
    do {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      cmd = qts_->Readq(bar0 + kDmaCmd);
      if ((cmd & kCmdStart) == 0) return true;
    } while (!qts_->failed() &&
             std::chrono::steady_clock::now() - t0 < kDmaTimeout);
    ADD_FAILURE() << absl::StrFormat(
        "edu DMA %s 0x%x (%u bytes) did not complete: cmd=0x%x",
        to_ram ? "to" : "from", addr, len, cmd);
    return false;
  }

  // Guest RAM `src` -> edu buffer -> `dst` (both through the device's DMA
  // address space: GPAs without a vIOMMU, IOVAs with one).
  void Copy(uint64_t bar0, uint64_t src, uint64_t dst, uint64_t len) {
    if (Dma(bar0, src, len, /*to_ram=*/false)) {
      Dma(bar0, dst, len, /*to_ram=*/true);
    }
  }

  size_t RaiseCount() const {
    size_t n = 0;
    for (const std::string& e : qts_->irq_events()) {
      n += absl::StartsWith(e, "IRQ raise") ? 1 : 0;
    }
    return n;
  }
  std::string Events() const {
    std::string out;
    for (const std::string& e : qts_->irq_events())
      absl::StrAppend(&out, e, "; ");
    return out.empty() ? "(none)" : out;
  }

  // x-query-vfio-devices (the one device's record).
  std::string Devices() {
    return qmp_->Execute(R"({"execute": "x-query-vfio-devices"})");
  }
  // x-query-msi for the device's requester id (bus 0: its devfn).
  std::string MsiRecord() {
    return qmp_->Execute(absl::StrCat(
        R"({"execute": "x-query-msi", "arguments": {"requester-id": )", kDevfn,
        "}}"));
  }
  uint64_t MsiCount() { return Num(MsiRecord(), "count").value_or(0); }
  // Runs qtest commands (viommu polls the interrupt eventfds after each)
  // until `done` or the deadline; false on a timeout.
  template <typename Pred>
  bool WaitFor(Pred done) {
    const auto t0 = std::chrono::steady_clock::now();
    while (!done()) {
      if (qts_->failed() ||
          std::chrono::steady_clock::now() - t0 >= kDmaTimeout) {
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      qts_->Readl(0);
    }
    return true;
  }
  // Programs the emulated MSI capability at `cap` (one vector) with
  // `address` / `data` and enables it.
  void EnableMsi(QPciDevice& dev, uint8_t cap, uint32_t address,
                 uint16_t data) {
    const uint16_t flags = dev.ConfigReadw(cap + 2);
    const bool is64 = (flags & kMsi64) != 0;
    dev.ConfigWritel(cap + 4, address);
    if (is64) dev.ConfigWritel(cap + 8, 0);
    dev.ConfigWritew(cap + (is64 ? 12 : 8), data);
    dev.ConfigWritew(cap + 2,
                     static_cast<uint16_t>((flags & ~0x70) | kMsiEnable));
  }

  std::string bdf_;
  bool iommufd_ = false;
  std::string qmp_path_;
  std::unique_ptr<QtestClient> qts_;
  std::unique_ptr<QPciBus> bus_;
  std::unique_ptr<QmpClient> qmp_;
};

// (a) No vIOMMU: all guest RAM is DMA-mapped in one container (type1, or
// an IOAS of the iommufd), the kernel holds all of it pinned, and a real
// edu DMA moves bytes from one guest RAM location to another.
TEST_F(RealPassthroughTest, WithoutIommuGuestRamIsMappedAndRealDmaLands) {
  ASSERT_NO_FATAL_FAILURE(Start({"-device", HostDevice()}));
  const std::string q = Query();
  EXPECT_TRUE(absl::StrContains(q, BackendMember())) << q;
  EXPECT_TRUE(absl::StrContains(q, R"("address-space": "memory")")) << q;
  EXPECT_TRUE(absl::StrContains(q, absl::StrCat(R"("devices": [")", bdf_)))
      << q;
  // The kernel's ranges: the 39-bit VT-d aperture around the MSI window
  // (docs/real-kernel-tests.md, real_passthrough).
  EXPECT_TRUE(absl::StrContains(
      q, R"("iova-ranges": [{"start": 0, "end": 4276092927}, )"
         R"({"start": 4277141504, "end": 549755813887}])"))
      << q;
  EXPECT_EQ(Mappings(q), 1u) << "64 MiB of RAM in one mapping: " << q;
  // type1's DMA_AVAIL capability (65535 - 1); iommufd has no such limit
  // (the container's UINT32_MAX - 1).
  EXPECT_EQ(Num(q, "dma-avail"), iommufd_ ? 4294967294u : 65534u) << q;
  EXPECT_EQ(PinnedKiB(), 64u << 10) << "the kernel pins all 64 MiB";

  const uint64_t bar0 = PlugBar0();
  const std::vector<uint8_t> data = Pattern(0x11, 64);
  qts_->Memwrite(0x10'0000, data);
  qts_->Memset(0x20'0000, data.size(), 0);
  Copy(bar0, 0x10'0000, 0x20'0000, data.size());
  EXPECT_EQ(qts_->Memread(0x20'0000, data.size()), data);
  // A second copy to the end of RAM (the last page of the mapping).
  qts_->Memset(0x3ff'f000, 16, 0);
  Dma(bar0, 0x3ff'f000, 16, /*to_ram=*/true);
  EXPECT_EQ(qts_->Memread(0x3ff'f000, 16),
            std::vector<uint8_t>(data.begin(), data.begin() + 16));
}

// (b) intel-iommu,caching-mode=on: the container follows the guest's VT-d
// page tables (and the kernel pins exactly the mapped pages); a real DMA
// at an IOVA lands at the translated GPA; after the guest unmaps and
// invalidates, the same DMA no longer lands (the VM's real VT-d faults it).
TEST_F(RealPassthroughTest, BehindVtdTheContainerFollowsTheGuestMappings) {
  ASSERT_NO_FATAL_FAILURE(Start(
      {"-device", "intel-iommu,caching-mode=on", "-device", HostDevice()}));
  std::string q = Query();
  EXPECT_TRUE(absl::StrContains(q, R"("address-space": "vtd-04.0")")) << q;
  EXPECT_TRUE(absl::StrContains(q, BackendMember())) << q;
  EXPECT_EQ(Mappings(q), 1u) << "DMAR off: all of RAM: " << q;
  EXPECT_EQ(PinnedKiB(), 64u << 10);

  VtdGuest vtd(qts_.get(), 3);
  vtd.SetContext(kDevfn, kDid);
  vtd.Map(kDevfn, 0x0800'0000, 0x30'0000, VtdGuest::k4K, VtdGuest::kRw);
  vtd.Enable();
  q = Query();
  EXPECT_EQ(Mappings(q), 1u) << "the one guest mapping: " << q;
  EXPECT_EQ(PinnedKiB(), 4u) << "one 4 KiB page pinned";
  vtd.Map(kDevfn, 0x0800'1000, 0x31'0000, VtdGuest::k4K, VtdGuest::kRw);
  vtd.InvalidateIotlbPage(kDid, 0x0800'1000, 0);
  vtd.Map(kDevfn, 0x0820'0000, 0x40'0000, VtdGuest::k2M, VtdGuest::kRw);
  vtd.InvalidateIotlbPage(kDid, 0x0820'0000, 9);
  q = Query();
  EXPECT_EQ(Mappings(q), 3u) << q;
  EXPECT_EQ(PinnedKiB(), 4u + 4u + 2048u);

  const uint64_t bar0 = PlugBar0();
  const std::vector<uint8_t> data = Pattern(0xa0, 32);
  qts_->Memwrite(0x41'0010, data);  // IOVA 0x08210010 (the 2 MiB leaf)
  qts_->Memset(0x30'0000, data.size(), 0);
  Copy(bar0, 0x0821'0010, 0x0800'0000, data.size());
  EXPECT_EQ(qts_->Memread(0x30'0000, data.size()), data)
      << "DMA to IOVA 0x08000000 must land at GPA 0x300000";
  // Only the target page was written.
  EXPECT_EQ(qts_->Memread(0x31'0000, 4), std::vector<uint8_t>(4, 0));

  // The guest unmaps IOVA 0x08000000 and invalidates: the container drops
  // it, and a DMA there faults in the real VT-d instead of landing.
  vtd.Unmap(kDevfn, 0x0800'0000, VtdGuest::k4K);
  vtd.InvalidateIotlbPage(kDid, 0x0800'0000, 0);
  q = Query();
  EXPECT_EQ(Mappings(q), 2u) << q;
  EXPECT_EQ(PinnedKiB(), 4u + 2048u) << "the unmapped page is unpinned";
  const std::vector<uint8_t> sentinel(data.size(), 0x5a);
  qts_->Memwrite(0x30'0000, sentinel);
  Dma(bar0, 0x0800'0000, data.size(), /*to_ram=*/true);
  EXPECT_EQ(qts_->Memread(0x30'0000, data.size()), sentinel)
      << "a DMA to an unmapped IOVA landed";
  // The remaining mapping still works.
  Dma(bar0, 0x0800'1000, data.size(), /*to_ram=*/true);
  EXPECT_EQ(qts_->Memread(0x31'0000, data.size()), data);
}

// (c) BAR0 of the real device is a ram_device section of the guest's
// memory (its mmap). A type1 container maps it for peer-to-peer DMA as
// QEMU does: one more mapping, the BAR not skipped, and a real edu DMA whose
// source is the BAR's own IOVA reads the device's registers through that
// mapping. iommufd maps only memory it can pin (GUP) and refuses the
// BAR's VM_PFNMAP mmap with EFAULT: the range is recorded as skipped
// ("ram-device-map-failed") with QEMU's warning, the device keeps working,
// and the same DMA does not reach the BAR (the VM's VT-d faults it).
TEST_F(RealPassthroughTest, Bar0IsARamDeviceSectionMappedForPeerToPeer) {
  const std::string log_path =
      absl::StrFormat("/tmp/viommu-real-log-%d", getpid());
  unlink(log_path.c_str());
  ASSERT_NO_FATAL_FAILURE(
      Start({"-d", "guest_errors", "-D", log_path, "-device", HostDevice()}));
  std::string q = Query();
  const std::optional<uint64_t> before = Mappings(q);
  ASSERT_EQ(before, 1u) << q;
  // Below 256 MiB so that edu's 28-bit DMA mask can reach it.
  constexpr uint64_t kBar = 0x0c00'0000;
  const uint64_t bar0 = PlugBar0(kBar);
  q = Query();
  // [kBar, kBar + 1 MiB - 1] as x-query-vfio prints a skipped range (the
  // MSI window follows it as "mmio").
  const std::string skipped =
      R"("skipped": [{"start": 201326592, "end": 202375167, )"
      R"("reason": "ram-device-map-failed"}, )";
  if (iommufd_) {
    EXPECT_EQ(Mappings(q), *before) << "iommufd mapped the BAR: " << q;
    EXPECT_TRUE(absl::StrContains(q, skipped)) << q;
    const std::string log = ReadFile(log_path);
    std::fprintf(stderr, "viommu's -D log: %s", log.c_str());
    EXPECT_TRUE(absl::StrContains(
        log,
        "PCI peer-to-peer transactions on BARs are not supported: "
        "IOMMU_IOAS_MAP(ioas="))
        << log;
    EXPECT_TRUE(
        absl::StrContains(log, " iova=0xc000000 length=0x100000 user_va=0x"))
        << log;
    EXPECT_TRUE(
        absl::StrContains(log, " rw (PCI BAR?)): Bad address (errno 14)"))
        << log;
  } else {
    EXPECT_EQ(Mappings(q), *before + 1) << "the BAR's P2P mapping: " << q;
    EXPECT_FALSE(absl::StrContains(q, "ram-device")) << "skipped: " << q;
    EXPECT_FALSE(absl::StrContains(ReadFile(log_path), "peer-to-peer"))
        << ReadFile(log_path);
  }
  EXPECT_EQ(PinnedKiB(), 64u << 10) << "a BAR is never counted as pinned";

  // P2P: the device reads its own id register at IOVA kBar.
  qts_->Memset(0x20'0000, 8, 0xff);
  if (Dma(bar0, kBar + kId, 4, /*to_ram=*/false)) {
    Dma(bar0, 0x20'0000, 4, /*to_ram=*/true);
  }
  if (iommufd_) {
    EXPECT_NE(qts_->Readl(0x20'0000), kEduId)
        << "edu read its BAR at IOVA 0x" << std::hex << kBar
        << " that iommufd refused to map";
  } else {
    EXPECT_EQ(qts_->Readl(0x20'0000), kEduId)
        << "edu read at IOVA 0x" << std::hex << kBar
        << " did not reach its own BAR";
  }
  // RAM DMA still works beside the skipped BAR.
  const std::vector<uint8_t> data = Pattern(0x77, 16);
  qts_->Memwrite(0x10'0000, data);
  qts_->Memset(0x28'0000, data.size(), 0);
  Copy(bar0, 0x10'0000, 0x28'0000, data.size());
  EXPECT_EQ(qts_->Memread(0x28'0000, data.size()), data);

  // Memory decoding off: the BAR leaves the address space; the container
  // unmaps it (type1) or forgets the skipped range (iommufd).
  QPciDevice(bus_.get(), kDevfn).ConfigWritew(0x04, 0);
  q = Query();
  EXPECT_EQ(Mappings(q), *before) << q;
  EXPECT_FALSE(absl::StrContains(q, "ram-device")) << q;
  unlink(log_path.c_str());
}

// (d) device_del tears the container down: no container in x-query-vfio
// and, on the kernel's side, no page of viommu's left pinned (the IOAS or
// the type1 container held all 64 MiB); the same host device can be added
// again and does DMA.
TEST_F(RealPassthroughTest, DeviceDelLeavesNothingAndDeviceAddWorksAgain) {
  ASSERT_NO_FATAL_FAILURE(Start({"-device", HostDevice()}));
  uint64_t bar0 = PlugBar0();
  std::string q = Query();
  // iommufd refuses the BAR (test c).
  EXPECT_EQ(Mappings(q), iommufd_ ? 1u : 2u) << "RAM + BAR0: " << q;
  EXPECT_EQ(PinnedKiB(), 64u << 10);
  std::string r =
      qmp_->Execute(R"({"execute": "device_del", "arguments": {"id": )"
                    R"("hostedu"}})");
  ASSERT_EQ(r, R"({"return": {}})");
  EXPECT_TRUE(!qmp_->events().empty() &&
              absl::StrContains(qmp_->events().back(), "DEVICE_DELETED"));
  q = Query();
  EXPECT_EQ(q, R"({"return": {"containers": []}})");
  EXPECT_EQ(PinnedKiB(), 0u) << "the kernel still holds pages pinned";
  EXPECT_EQ(QPciDevice(bus_.get(), kDevfn).ConfigReadl(0), 0xffffffffu);

  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(absl::StrCat("device_add round ", round));
    r = qmp_->Execute(absl::StrCat(
        R"({"execute": "device_add", "arguments": {"driver": "vfio-pci", )",
        R"("host": ")", bdf_, R"(", "id": "hostedu", "addr": "04.0")",
        iommufd_ ? R"(, "iommufd": "iommufd0")" : "", "}}"));
    ASSERT_EQ(r, R"({"return": {}})");
    q = Query();
    EXPECT_EQ(Mappings(q), 1u) << q;
    EXPECT_TRUE(absl::StrContains(q, BackendMember())) << q;
    EXPECT_EQ(PinnedKiB(), 64u << 10);
    bus_ = std::make_unique<QPciBus>(qts_.get());  // BARs from 0xe0000000
    bar0 = PlugBar0();
    const std::vector<uint8_t> data =
        Pattern(static_cast<uint8_t>(0x30 + round), 24);
    qts_->Memwrite(0x10'0000, data);
    qts_->Memset(0x28'0000, data.size(), 0);
    Copy(bar0, 0x10'0000, 0x28'0000, data.size());
    EXPECT_EQ(qts_->Memread(0x28'0000, data.size()), data);
    r = qmp_->Execute(
        R"({"execute": "device_del", "arguments": {"id": "hostedu"}})");
    ASSERT_EQ(r, R"({"return": {}})");
    EXPECT_EQ(Query(), R"({"return": {"containers": []}})");
    EXPECT_EQ(PinnedKiB(), 0u);
  }
}

// (e) INTx of the real device reaches the guest's IOAPIC input, is ended
// by the guest's next BAR access (the host unmasks it), and so the next
// interrupt arrives too, although BAR0 is normally an mmap that viommu
// never sees accesses to.
TEST_F(RealPassthroughTest, IntxArrivesAgainAfterTheGuestAcksIt) {
  ASSERT_NO_FATAL_FAILURE(Start({"-device", HostDevice()}));
  ASSERT_EQ(*qts_->Command("irq_intercept_in ioapic"), "OK");
  const uint64_t bar0 = PlugBar0();
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(absl::StrCat("interrupt ", round));
    const size_t raises_before = RaiseCount();
    qts_->Writeq(bar0 + kDmaSrc, 0x10'0000);
    qts_->Writeq(bar0 + kDmaDst, kEduBuffer);
    qts_->Writeq(bar0 + kDmaCnt, 8);
    qts_->Writeq(bar0 + kDmaCmd, kCmdStart | kCmdIrq);
    const auto t0 = std::chrono::steady_clock::now();
    while (RaiseCount() == raises_before && !qts_->failed() &&
           std::chrono::steady_clock::now() - t0 < kDmaTimeout) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      qts_->Readl(0);  // any command: viommu polls the eventfds after it
    }
    ASSERT_GT(RaiseCount(), raises_before)
        << "no INTx within the timeout; events: " << Events();
    // The guest's handler: read the status, acknowledge (both BAR0).
    EXPECT_EQ(qts_->Readl(bar0 + kIrqStatus), kIrqDma);
    qts_->Writel(bar0 + kIrqAck, kIrqDma);
    EXPECT_EQ(qts_->Readl(bar0 + kIrqStatus), 0u);
    EXPECT_TRUE(absl::StrContains(qts_->irq_events().back(), "IRQ lower"))
        << "the pin stays up after the guest acked: " << Events();
  }
}

// (f) MSI of the real device: the guest programs the emulated MSI
// capability (an address in the MSI window, a data value) and enables it;
// viommu moves the host to MSI (VFIO_DEVICE_SET_IRQS on the MSI index, the
// kernel enables MSI in the real edu); the real edu's interrupt (raise
// register, then a DMA completion) signals the eventfd and viommu writes
// the guest's message into the machine's MSI window (x-query-msi, requester
// id 04.0), none on the INTx pin. Disabling MSI puts the host back on INTx
// and the next interrupt arrives at the IOAPIC input instead.
TEST_F(RealPassthroughTest, MsiArrivesWithTheGuestMessageAndOffIsIntxAgain) {
  ASSERT_NO_FATAL_FAILURE(Start({"-device", HostDevice()}));
  ASSERT_EQ(*qts_->Command("irq_intercept_in ioapic"), "OK");
  const uint64_t bar0 = PlugBar0();  // memory decoding + bus master
  QPciDevice dev(bus_.get(), kDevfn);
  std::string d = Devices();
  EXPECT_TRUE(absl::StrContains(d, R"("irq-mode": "intx")")) << d;
  const uint8_t cap = dev.FindCapability(kCapIdMsi);
  ASSERT_NE(cap, 0) << "edu's MSI capability is not shown to the guest";
  ASSERT_EQ(Num(MsiRecord(), "total"), 0u) << MsiRecord();

  EnableMsi(dev, cap, 0xfee0'1000, 0x4041);
  d = Devices();
  ASSERT_TRUE(absl::StrContains(d, R"("irq-mode": "msi")")) << d;

  // 1: the raise register (edu sends one MSI per raise while MSI is on).
  qts_->Writel(bar0 + kIrqRaise, 0x1);
  ASSERT_TRUE(WaitFor([&] { return MsiCount() >= 1; }))
      << "no MSI within the timeout: " << MsiRecord() << " " << Devices();
  std::string m = MsiRecord();
  EXPECT_TRUE(absl::StrContains(
      m, R"("count": 1, "last": {"address": 4276097024, "data": 16449})"))
      << m;
  EXPECT_EQ(qts_->Readl(bar0 + kIrqStatus), 1u);
  qts_->Writel(bar0 + kIrqAck, 0x1);
  EXPECT_EQ(qts_->Readl(bar0 + kIrqStatus), 0u);

  // 2: a DMA completion, after the guest changed the data (the message is
  // the one programmed at delivery time).
  dev.ConfigWritew(cap + ((dev.ConfigReadw(cap + 2) & kMsi64) ? 12 : 8),
                   0x4052);
  qts_->Writeq(bar0 + kDmaSrc, 0x10'0000);
  qts_->Writeq(bar0 + kDmaDst, kEduBuffer);
  qts_->Writeq(bar0 + kDmaCnt, 8);
  qts_->Writeq(bar0 + kDmaCmd, kCmdStart | kCmdIrq);
  ASSERT_TRUE(WaitFor([&] { return MsiCount() >= 2; }))
      << "no MSI for the DMA: " << MsiRecord() << " " << Devices();
  m = MsiRecord();
  EXPECT_TRUE(absl::StrContains(
      m, R"("count": 2, "last": {"address": 4276097024, "data": 16466})"))
      << m;
  EXPECT_EQ(qts_->Readl(bar0 + kIrqStatus), kIrqDma);
  qts_->Writel(bar0 + kIrqAck, kIrqDma);
  EXPECT_EQ(RaiseCount(), 0u) << "INTx while MSI was on: " << Events();
  d = Devices();
  EXPECT_TRUE(absl::StrContains(d, R"("msi-delivered": 2, )")) << d;

  // MSI off: INTx again.
  dev.ConfigWritew(
      cap + 2, static_cast<uint16_t>(dev.ConfigReadw(cap + 2) & ~kMsiEnable));
  d = Devices();
  EXPECT_TRUE(absl::StrContains(d, R"("irq-mode": "intx")")) << d;
  qts_->Writel(bar0 + kIrqRaise, 0x1);
  ASSERT_TRUE(WaitFor([&] { return RaiseCount() >= 1; }))
      << "no INTx after MSI was disabled; events: " << Events() << " "
      << MsiRecord();
  EXPECT_EQ(MsiCount(), 2u) << "an MSI after MSI was disabled";
  EXPECT_EQ(qts_->Readl(bar0 + kIrqStatus), 1u);
  qts_->Writel(bar0 + kIrqAck, 0x1);
  EXPECT_TRUE(absl::StrContains(qts_->irq_events().back(), "IRQ lower"))
      << Events();
  d = Devices();
  EXPECT_TRUE(
      absl::StrContains(d, R"("host-errors": 0, "last-host-error": "")"))
      << d;
}

// (g) system_reset: edu has no FLR, so the kernel offers no
// VFIO_DEVICE_RESET (device flags 0x2) and VfioPciDevice::Reset only stops
// the host's decoding and interrupts and resets the emulated config: the
// command register, the BARs (unassigned) and MSI (off, INTx registered
// again) read as after power-on, without a host error. The container keeps
// the RAM mapping and drops the BAR's P2P mapping; it comes back only when
// the guest turns memory decoding on again, and then a real DMA works and
// INTx arrives as before. (iommufd never maps the BAR: test c.)
TEST_F(RealPassthroughTest, SystemResetClearsTheConfigAndDmaWorksAfterReplug) {
  ASSERT_NO_FATAL_FAILURE(Start({"-device", HostDevice()}));
  const uint64_t bar_maps = iommufd_ ? 0 : 1;
  constexpr uint64_t kBar = 0x0c00'0000;
  uint64_t bar0 = PlugBar0(kBar);
  QPciDevice dev(bus_.get(), kDevfn);
  const uint8_t cap = dev.FindCapability(kCapIdMsi);
  ASSERT_NE(cap, 0);
  EnableMsi(dev, cap, 0xfee0'0000, 0x4030);
  std::string d = Devices();
  EXPECT_TRUE(absl::StrContains(d, R"("device-reset": false)"))
      << "edu has no FLR: " << d;
  EXPECT_TRUE(absl::StrContains(d, R"("irq-mode": "msi")")) << d;
  std::string q = Query();
  EXPECT_EQ(Mappings(q), 1 + bar_maps) << "RAM + BAR0: " << q;

  ASSERT_EQ(qmp_->Execute(R"({"execute": "system_reset"})"),
            R"({"return": {}})");
  EXPECT_TRUE(!qmp_->events().empty() &&
              absl::StrContains(qmp_->events().back(), R"("event": "RESET")"))
      << (qmp_->events().empty() ? "no event" : qmp_->events().back());
  EXPECT_EQ(dev.ConfigReadl(0), kEduVendorDevice);
  EXPECT_EQ(dev.ConfigReadw(0x04), 0u) << "command register";
  EXPECT_EQ(dev.ConfigReadl(0x10) & ~0xfu, 0u) << "BAR0 still assigned";
  EXPECT_EQ(dev.ConfigReadw(cap + 2) & kMsiEnable, 0u) << "MSI still on";
  EXPECT_EQ(dev.FindCapability(kCapIdMsi), cap);
  d = Devices();
  EXPECT_TRUE(absl::StrContains(d, R"("irq-mode": "intx")")) << d;
  EXPECT_TRUE(
      absl::StrContains(d, R"("host-errors": 0, "last-host-error": "")"))
      << "Reset without VFIO_DEVICE_RESET: " << d;
  q = Query();
  EXPECT_EQ(Mappings(q), 1u) << "RAM only: " << q;

  // BAR0 placed again but decoding still off: no P2P mapping yet.
  dev.ConfigWritel(0x10, static_cast<uint32_t>(kBar));
  q = Query();
  EXPECT_EQ(Mappings(q), 1u) << "BAR mapped before memory decoding: " << q;
  bar0 = PlugBar0(kBar);  // memory decoding + bus master
  q = Query();
  EXPECT_EQ(Mappings(q), 1 + bar_maps) << "RAM + BAR0 again: " << q;

  ASSERT_EQ(*qts_->Command("irq_intercept_in ioapic"), "OK");
  const std::vector<uint8_t> data = Pattern(0x61, 40);
  qts_->Memwrite(0x18'0000, data);
  qts_->Memset(0x38'0000, data.size(), 0);
  Copy(bar0, 0x18'0000, 0x38'0000, data.size());
  EXPECT_EQ(qts_->Memread(0x38'0000, data.size()), data)
      << "no DMA after the reset";
  // P2P through the re-made BAR mapping.
  if (!iommufd_) {
    qts_->Memset(0x20'0000, 8, 0xff);
    if (Dma(bar0, kBar + kId, 4, /*to_ram=*/false)) {
      Dma(bar0, 0x20'0000, 4, /*to_ram=*/true);
    }
    EXPECT_EQ(qts_->Readl(0x20'0000), kEduId);
  }
  // INTx registered again by the reset.
  qts_->Writel(bar0 + kIrqRaise, 0x1);
  ASSERT_TRUE(WaitFor([&] { return RaiseCount() >= 1; }))
      << "no INTx after the reset; events: " << Events();
  qts_->Writel(bar0 + kIrqAck, 0x1);
  EXPECT_TRUE(absl::StrContains(qts_->irq_events().back(), "IRQ lower"))
      << Events();
  EXPECT_EQ(MsiCount(), 0u) << MsiRecord();
  d = Devices();
  EXPECT_TRUE(absl::StrContains(d, R"("host-errors": 0, )")) << d;
}

// (h) intel-iommu,caching-mode=on,intremap=on: the guest turns interrupt
// remapping on (IRTA at kIrt with 256 entries, SIRTP, IRE, queued
// invalidation on; DMA translation on too, as a Linux guest leaves it) and
// programs the emulated MSI capability in remappable format (handle 5,
// SHV, subhandle 0). The real edu's MSI reaches viommu through the host
// eventfd and leaves the VT-d model as IRTE 5 says: vector V1 to APIC D1.
// The guest rewrites IRTE 5 (V2, D2, and source-id verification of 04.0):
// the next interrupt still follows the cached entry; after an
// index-selective IEC invalidation (queued, then a wait descriptor) the
// next one follows the new IRTE. With IRTE 5 not present (after a global
// IEC invalidation) the interrupt is blocked and a fault record names
// reason 0x22, index 5 and requester 04.0. No interrupt reaches the INTx
// pin meanwhile.
constexpr uint64_t kIrt = 0x0200'0000;      // 256 IRTEs (IRTA.S = 7)
constexpr uint64_t kIrQueue = 0x0210'0000;  // 256 QI descriptors
constexpr uint64_t kIrWaitStatus = 0x0211'0000;
constexpr uint64_t kIrta = 0xb8;
constexpr uint32_t kGcmdTe = 1u << 31, kGcmdSrtp = 1u << 30,
                   kGcmdQie = 1u << 26, kGcmdIre = 1u << 25,
                   kGcmdSirtp = 1u << 24;
constexpr uint32_t kFstsPpf = 1u << 1;
constexpr uint16_t kIrHandle = 5;

// An IRTE's low quadword: present, fixed, edge, physical `dest` (xAPIC).
uint64_t IrteLo(uint8_t vector, uint8_t dest) {
  return 1 | uint64_t{vector} << 16 | uint64_t{dest} << 40;
}
// Its high quadword: source-id verification of requester `sid` (SVT 1,
// SQ 0: all 16 bits compared).
uint64_t IrteHiVerify(uint16_t sid) { return sid | uint64_t{1} << 18; }
// The remappable-format MSI address of `handle` with SHV (data carries
// the subhandle), as Linux programs it.
uint32_t RemappableShv(uint16_t handle) {
  const uint32_t h = handle;
  return 0xfee0'0000 | (h & 0x7fff) << 5 | 1u << 4 | 1u << 3 | (h >> 15) << 2;
}
// The message the MSI window receives for a fixed, edge IRTE (vector,
// physical xAPIC destination), as x-query-msi prints it.
std::string Delivered(uint64_t count, uint8_t vector, uint8_t dest) {
  return absl::StrCat(R"("count": )", count, R"(, "last": {"address": )",
                      0xfee0'0000u | uint32_t{dest} << 12, R"(, "data": )",
                      0x4000u | vector, "}");
}

TEST_F(RealPassthroughTest, BehindVtdWithIntremapTheMsiFollowsTheIrte) {
  ASSERT_NO_FATAL_FAILURE(
      Start({"-device", "intel-iommu,caching-mode=on,intremap=on", "-device",
             HostDevice()}));
  ASSERT_EQ(*qts_->Command("irq_intercept_in ioapic"), "OK");
  const uint64_t vtd_reg = VtdGuest::kRegBase;

  // DMA translation and the invalidation queue (VtdGuest keeps TE, QIE).
  VtdGuest vtd(qts_.get(), 3);
  vtd.SetContext(kDevfn, kDid);
  vtd.Map(kDevfn, 0x0800'0000, 0x30'0000, VtdGuest::k4K, VtdGuest::kRw);
  vtd.Enable();
  vtd.EnableQueue(kIrQueue);
  // The interrupt remapping table, IRTE 5 = (V1 0x41, D1 2); then IRTA,
  // SIRTP, IRE (GCMD keeps TE and QIE on).
  qts_->Memset(kIrt, 256 * 16, 0);
  qts_->Writeq(kIrt + kIrHandle * 16, IrteLo(0x41, 2));
  qts_->Writeq(vtd_reg + kIrta, kIrt | 7);
  qts_->Writel(vtd_reg + VtdGuest::kGcmd, kGcmdTe | kGcmdQie | kGcmdSirtp);
  qts_->Writel(vtd_reg + VtdGuest::kGcmd, kGcmdTe | kGcmdQie | kGcmdIre);
  ASSERT_EQ(vtd.Gsts(), kGcmdTe | kGcmdSrtp | kGcmdQie | kGcmdIre | kGcmdSirtp)
      << "GSTS: TES, RTPS, QIES, IRES, IRTPS";
  EXPECT_EQ(Mappings(Query()), 1u) << Query();
  // One queued invalidation followed by a wait descriptor whose status
  // write shows the queue has processed it.
  uint32_t waits = 0;
  auto invalidate = [&](uint64_t descriptor) {
    vtd.Submit(descriptor, 0);
    vtd.SubmitWait(kIrWaitStatus, ++waits, /*interrupt=*/false);
    EXPECT_EQ(qts_->Readl(kIrWaitStatus), waits) << "queue stalled";
    EXPECT_EQ(qts_->Readl(vtd_reg + VtdGuest::kFsts), 0u);
  };

  const uint64_t bar0 = PlugBar0();
  QPciDevice dev(bus_.get(), kDevfn);
  const uint8_t cap = dev.FindCapability(kCapIdMsi);
  ASSERT_NE(cap, 0) << "edu's MSI capability is not shown to the guest";
  EnableMsi(dev, cap, RemappableShv(kIrHandle), /*data=*/0);
  std::string d = Devices();
  ASSERT_TRUE(absl::StrContains(d, R"("irq-mode": "msi")")) << d;
  // One raise of the real edu, waited for until viommu has sent the
  // message from the host eventfd (`delivered` in all), then acked.
  auto raise = [&](uint64_t delivered) {
    qts_->Writel(bar0 + kIrqRaise, 0x1);
    const bool sent = WaitFor([&] {
      return Num(Devices(), "msi-delivered").value_or(0) >= delivered;
    });
    EXPECT_EQ(qts_->Readl(bar0 + kIrqStatus), 1u);
    qts_->Writel(bar0 + kIrqAck, 0x1);
    return sent;
  };

  // 1: IRTE 5 as first written.
  ASSERT_TRUE(raise(1)) << "no MSI within the timeout: " << Devices();
  std::string m = MsiRecord();
  EXPECT_TRUE(absl::StrContains(m, Delivered(1, 0x41, 2))) << m;
  EXPECT_EQ(qts_->Readl(vtd_reg + VtdGuest::kFsts), 0u);

  // 2: the guest rewrites IRTE 5. Until the IEC is invalidated the cached
  // entry still decides; after an index-selective invalidation of index 5
  // (IM 0) the new one does, its source-id check passing for 04.0.
  qts_->Writeq(kIrt + kIrHandle * 16 + 8, IrteHiVerify(kDevfn));
  qts_->Writeq(kIrt + kIrHandle * 16, IrteLo(0x52, 3));
  ASSERT_TRUE(raise(2)) << Devices();
  m = MsiRecord();
  EXPECT_TRUE(absl::StrContains(m, Delivered(2, 0x41, 2)))
      << "the cached IRTE until the IEC invalidation: " << m;
  invalidate(0x4 | 1u << 4 | uint64_t{kIrHandle} << 32);
  ASSERT_TRUE(raise(3)) << Devices();
  m = MsiRecord();
  EXPECT_TRUE(absl::StrContains(m, Delivered(3, 0x52, 3))) << m;
  EXPECT_EQ(qts_->Readl(vtd_reg + VtdGuest::kFsts), 0u);

  // 3: IRTE 5 not present, global IEC invalidation: the host interrupt is
  // blocked (the window receives nothing) and recorded as fault 0x22
  // (IRTE not present) with index 5 in FRCD[0] bits 63:48.
  qts_->Writeq(kIrt + kIrHandle * 16, 0);
  invalidate(0x4);
  ASSERT_TRUE(raise(4)) << Devices();
  m = MsiRecord();
  EXPECT_TRUE(absl::StrContains(m, R"("count": 3, )"))
      << "a blocked interrupt was delivered: " << m;
  EXPECT_EQ(qts_->Readl(vtd_reg + VtdGuest::kFsts), kFstsPpf);
  const VtdGuest::Fault f = vtd.ReadFault();
  EXPECT_TRUE(f.pending());
  EXPECT_EQ(f.reason(), 0x22);
  EXPECT_EQ(f.sid(), kDevfn);
  EXPECT_EQ(f.lo, uint64_t{kIrHandle} << 48);

  EXPECT_EQ(RaiseCount(), 0u) << "INTx while MSI was on: " << Events();
  d = Devices();
  EXPECT_TRUE(
      absl::StrContains(d, R"("host-errors": 0, "last-host-error": "")"))
      << d;
}

}  // namespace
}  // namespace viommu::qtest
