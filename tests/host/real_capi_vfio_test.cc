// The C API's VFIO attach (include/viommu.h, "VFIO") on a REAL Linux VFIO
// stack: run as a guest step of tests/host/run_real_kernel.sh (root, the
// VM's edu bound to vfio-pci at $VIOMMU_BDF; docs/real-kernel-tests.md).
// A context with host "linux" and 16 MiB of guest RAM this program maps
// itself, as a VMM does; the real edu attached with viommu_vfio_attach
// and programmed through viommu_vfio_region_rw (its config space and BAR0
// through the VFIO device fd). The edu's DMA is real: it goes through the
// VM's VT-d and the host IOMMU mappings the library made.
//
// Environment: VIOMMU_BDF (required, else every test skips) and
// VIOMMU_PASSTHROUGH_BACKEND, "type1" (default: VIOMMU_VFIO_TYPE1) or
// "iommufd" (VIOMMU_VFIO_IOMMUFD: /dev/iommu and the device cdev). What
// the kernel holds is read from its side: the pages pinned for this
// process (/proc/self/status: VmPin for iommufd, VmLck for type1).
//
// The edu is QEMU 7.2's in the outer VM: DMA registers src/dst/count/cmd at
// 0x80/0x88/0x90/0x98, its buffer at device address 0x40000, DMA addresses
// masked to 28 bits, a DMA done about 100 ms later on the outer clock.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/capi/capi_fixture.h"
#include "tests/host/proc_status.h"
#include "viommu.h"

namespace viommu::capi::testing {
namespace {

constexpr uint64_t kDmaSrc = 0x80, kDmaDst = 0x88, kDmaCnt = 0x90,
                   kDmaCmd = 0x98;
constexpr uint64_t kEduBuffer = 0x40000;
constexpr uint64_t kCmdStart = 1, kCmdToRam = 2;
constexpr uint32_t kEduId = 0x010000ed;
constexpr uint16_t kCommandMemory = 1 << 1, kCommandMaster = 1 << 2;
constexpr uint8_t kDevfn = 0x20;  // the endpoint 00:04.0
constexpr uint16_t kDid = 1;
constexpr auto kDmaTimeout = std::chrono::seconds(10);

class RealCapiVfioTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kRamSize = 16 << 20;

  void SetUp() override {
    const char* bdf = std::getenv("VIOMMU_BDF");
    if (bdf == nullptr || *bdf == '\0') {
      GTEST_SKIP() << "VIOMMU_BDF is not set (not in the VM)";
    }
    bdf_ = bdf;
    const char* b = std::getenv("VIOMMU_PASSTHROUGH_BACKEND");
    const std::string backend = b != nullptr && *b != '\0' ? b : "type1";
    ASSERT_TRUE(backend == "type1" || backend == "iommufd")
        << "VIOMMU_PASSTHROUGH_BACKEND=" << backend;
    iommufd_ = backend == "iommufd";
    pinned_before_ = Pinned().value_or(0);

    viommu_config cfg{};
    cfg.size = sizeof(cfg);
    cfg.host = "linux";
    viommu_callbacks cb{};
    cb.size = sizeof(cb);
    cb.log = &Recorder::Log;
    ASSERT_EQ(viommu_ctx_new(&cfg, &cb, &rec_, &ctx_), 0);
    void* p = mmap(nullptr, kRamSize, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(p, MAP_FAILED);
    ram_ = static_cast<uint8_t*>(p);
    viommu_region r{};
    r.size = sizeof(r);
    r.kind = VIOMMU_REGION_RAM;
    r.gpa = 0;
    r.len = kRamSize;
    r.hva = ram_;
    r.fd = -1;
    r.name = "ram";
    uint32_t id = 0;
    ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  }

  void TearDown() override {
    if (HasFailure()) {
      if (ctx_ != nullptr) {
        std::fprintf(stderr, "x-query-vfio at the failure: %s\n",
                     Query().c_str());
      }
      for (const std::string& l : rec_.logs) {
        std::fprintf(stderr, "log: %s\n", l.c_str());
      }
    }
    viommu_ctx_free(ctx_);  // detaches what is left
    if (ram_ != nullptr) munmap(ram_, kRamSize);
    EXPECT_EQ(Pinned(), pinned_before_) << "pinned after viommu_ctx_free";
  }

  uint32_t Mode() const {
    return iommufd_ ? VIOMMU_VFIO_IOMMUFD : VIOMMU_VFIO_TYPE1;
  }
  std::string BackendMember() const {
    return absl::StrCat(R"("backend": ")", iommufd_ ? "iommufd" : "type1",
                        R"(")");
  }
  // KiB of this process's memory the kernel holds pinned for DMA, beyond
  // what it held before the test: iommufd counts its pins in
  // mm->pinned_vm (VmPin), type1 in mm->locked_vm (VmLck).
  std::optional<uint64_t> Pinned() const {
    return viommu::testing::ProcStatusKiB(getpid(),
                                          iommufd_ ? "VmPin" : "VmLck");
  }
  std::optional<uint64_t> PinnedByTest() const {
    std::optional<uint64_t> p = Pinned();
    if (!p.has_value() || *p < pinned_before_) return std::nullopt;
    return *p - pinned_before_;
  }

  std::string Query() {
    char* json = nullptr;
    EXPECT_EQ(viommu_query_json(ctx_, "x-query-vfio", &json), 0);
    std::string out = json != nullptr ? json : "";
    viommu_free(json);
    return out;
  }
  // The "mappings" of the only container (-1 when there is not one).
  int64_t Mappings() {
    const std::string q = Query();
    const size_t at = q.find(R"("mappings": )");
    if (at == std::string::npos ||
        q.find(R"("mappings": )", at + 1) != std::string::npos) {
      return -1;
    }
    int64_t v = -1;
    const size_t num = at + 12;
    return absl::SimpleAtoi(
               q.substr(num, q.find_first_not_of("0123456789", num) - num), &v)
               ? v
               : -1;
  }

  viommu_ep* Endpoint(viommu_iommu* iommu) {
    viommu_ep* ep = nullptr;
    EXPECT_EQ(viommu_ep_new(ctx_, 0, 0, kDevfn, iommu, &ep), 0);
    return ep;
  }
  viommu_vfio* Attach(viommu_ep* ep) {
    viommu_vfio* dev = nullptr;
    EXPECT_EQ(viommu_vfio_attach(ep, bdf_.c_str(), Mode(), &dev), 0);
    return dev;
  }

  int Write(viommu_vfio* dev, uint32_t index, uint64_t offset, uint64_t v,
            size_t len) {
    return viommu_vfio_region_rw(dev, index, offset, &v, len, 1);
  }
  uint64_t Read(viommu_vfio* dev, uint32_t index, uint64_t offset, size_t len) {
    uint64_t v = 0;
    EXPECT_EQ(viommu_vfio_region_rw(dev, index, offset, &v, len, 0), 0);
    return v;
  }
  // Memory decoding and bus mastering on; checks the edu's id.
  void Enable(viommu_vfio* dev) {
    ASSERT_EQ(Read(dev, VIOMMU_VFIO_PCI_CONFIG, 0, 4), 0x11e81234u);
    ASSERT_EQ(Write(dev, VIOMMU_VFIO_PCI_CONFIG, 4,
                    kCommandMemory | kCommandMaster, 2),
              0);
    ASSERT_EQ(Read(dev, VIOMMU_VFIO_PCI_BAR0, 0, 4), kEduId);
  }
  // One edu DMA (`to_ram`: buffer -> `iova`, else `iova` -> buffer),
  // waited for. False (with a failure) on a timeout.
  bool Dma(viommu_vfio* dev, uint64_t iova, uint64_t len, bool to_ram) {
    EXPECT_EQ(Write(dev, VIOMMU_VFIO_PCI_BAR0, kDmaSrc,
                    to_ram ? kEduBuffer : iova, 8),
              0);
    EXPECT_EQ(Write(dev, VIOMMU_VFIO_PCI_BAR0, kDmaDst,
                    to_ram ? iova : kEduBuffer, 8),
              0);
    EXPECT_EQ(Write(dev, VIOMMU_VFIO_PCI_BAR0, kDmaCnt, len, 8), 0);
    EXPECT_EQ(Write(dev, VIOMMU_VFIO_PCI_BAR0, kDmaCmd,
                    kCmdStart | (to_ram ? kCmdToRam : 0), 8),
              0);
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t cmd = 0;
    do {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      cmd = Read(dev, VIOMMU_VFIO_PCI_BAR0, kDmaCmd, 8);
      if ((cmd & kCmdStart) == 0) return true;
    } while (std::chrono::steady_clock::now() - t0 < kDmaTimeout);
    ADD_FAILURE() << "edu DMA " << (to_ram ? "to" : "from") << " 0x" << std::hex
                  << iova << " did not complete: cmd=0x" << cmd;
    return false;
  }
  // RAM at `src` -> edu buffer -> RAM at `dst` (addresses in the
  // endpoint's DMA space).
  void Copy(viommu_vfio* dev, uint64_t src, uint64_t dst, uint64_t len) {
    if (Dma(dev, src, len, /*to_ram=*/false)) {
      Dma(dev, dst, len, /*to_ram=*/true);
    }
  }
  void Fill(uint64_t gpa, uint8_t seed, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      ram_[gpa + i] = static_cast<uint8_t>(seed + 7 * i);
    }
  }
  bool Same(uint64_t a, uint64_t b, size_t n) const {
    return std::memcmp(ram_ + a, ram_ + b, n) == 0;
  }

  std::string bdf_;
  bool iommufd_ = false;
  uint64_t pinned_before_ = 0;
  Recorder rec_;
  viommu_ctx* ctx_ = nullptr;
  uint8_t* ram_ = nullptr;
};

// An identity endpoint: its container maps all guest RAM (the kernel pins
// all 16 MiB), a real edu DMA moves bytes RAM -> device -> RAM at their
// guest-physical addresses, and the detach leaves no container and nothing
// pinned.
TEST_F(RealCapiVfioTest, IdentityAttachMapsRamAndRealDmaLands) {
  viommu_vfio* dev = Attach(Endpoint(nullptr));
  ASSERT_NE(dev, nullptr) << (rec_.logs.empty() ? "" : rec_.logs.back());
  std::string q = Query();
  EXPECT_TRUE(absl::StrContains(q, BackendMember())) << q;
  EXPECT_TRUE(absl::StrContains(q, R"("address-space": "memory")")) << q;
  EXPECT_TRUE(absl::StrContains(q, absl::StrCat(R"("devices": [")", bdf_)))
      << q;
  EXPECT_TRUE(absl::StrContains(
      q, R"("iova-ranges": [{"start": 0, "end": 4276092927}, )"
         R"({"start": 4277141504, "end": 549755813887}])"))
      << "the 39-bit VT-d aperture around the MSI window: " << q;
  EXPECT_EQ(Mappings(), 1);
  EXPECT_EQ(PinnedByTest(), 16u << 10);
  int fd = -1;
  EXPECT_EQ(viommu_vfio_device_fd(dev, &fd), 0);
  EXPECT_GE(fd, 0);

  ASSERT_NO_FATAL_FAILURE(Enable(dev));
  Fill(0x10'0000, 0x21, 64);
  std::memset(ram_ + 0x20'0000, 0, 64);
  Copy(dev, 0x10'0000, 0x20'0000, 64);
  EXPECT_TRUE(Same(0x10'0000, 0x20'0000, 64)) << "the DMA did not land";
  // The last page of RAM.
  std::memset(ram_ + kRamSize - 0x1000, 0, 16);
  Dma(dev, kRamSize - 0x1000, 16, /*to_ram=*/true);
  EXPECT_TRUE(Same(0x10'0000, kRamSize - 0x1000, 16));

  viommu_vfio_detach(dev);
  EXPECT_EQ(Query(), R"({"containers": []})");
  EXPECT_EQ(PinnedByTest(), 0u) << "the kernel still holds pages pinned";
}

// Behind VT-d with caching-mode=on the container mirrors the guest's
// mappings (the kernel pins exactly the mapped pages); a DMA at an IOVA
// lands at the translated GPA; after the guest clears the entry and
// invalidates, the IOVA is gone from the host (the DMA does not land);
// the detach leaves nothing pinned.
TEST_F(RealCapiVfioTest, BehindVtdTheContainerMirrorsTheGuestMappings) {
  viommu_iommu* iommu = nullptr;
  ASSERT_EQ(viommu_iommu_new(ctx_, "intel-iommu", "caching-mode=on", &iommu),
            0);
  viommu_ep* ep = Endpoint(iommu);
  VtdGuest vtd(ram_, ctx_);  // tables at 0x100000..
  vtd.SetContext(kDevfn, kDid);
  vtd.Map(0x0800'0000, 0x30'0000, 3);
  vtd.Map(0x0800'1000, 0x31'0000, 3);
  vtd.Map(0x0800'2000, 0x32'0000, 3);
  vtd.Enable();
  viommu_vfio* dev = Attach(ep);
  ASSERT_NE(dev, nullptr) << (rec_.logs.empty() ? "" : rec_.logs.back());
  std::string q = Query();
  EXPECT_TRUE(absl::StrContains(q, BackendMember())) << q;
  EXPECT_TRUE(absl::StrContains(q, R"("address-space": "vtd-04.0")")) << q;
  EXPECT_EQ(Mappings(), 3) << "the guest's three pages, replayed: " << q;
  EXPECT_EQ(PinnedByTest(), 12u);

  ASSERT_NO_FATAL_FAILURE(Enable(dev));
  Fill(0x30'0000, 0x40, 48);
  std::memset(ram_ + 0x31'0000, 0, 48);
  Copy(dev, 0x0800'0000, 0x0800'1000, 48);
  EXPECT_TRUE(Same(0x30'0000, 0x31'0000, 48))
      << "DMA to IOVA 0x08001000 must land at GPA 0x310000";

  // A new guest mapping, invalidated: mirrored, and the device reaches it.
  vtd.Map(0x0900'0000, 0x40'0000, 3);
  vtd.InvalidatePage(kDid, 0x0900'0000);
  EXPECT_EQ(Mappings(), 4);
  EXPECT_EQ(PinnedByTest(), 16u);
  std::memset(ram_ + 0x40'0000, 0, 48);
  Dma(dev, 0x0900'0000, 48, /*to_ram=*/true);
  EXPECT_TRUE(Same(0x30'0000, 0x40'0000, 48))
      << "DMA to the new IOVA 0x09000000 must land at GPA 0x400000";

  // The guest clears IOVA 0x08002000 and invalidates: unmapped and
  // unpinned on the host; a DMA there is refused by the VM's real VT-d.
  vtd.Map(0x0800'2000, 0, 0);
  vtd.InvalidatePage(kDid, 0x0800'2000);
  EXPECT_EQ(Mappings(), 3);
  EXPECT_EQ(PinnedByTest(), 12u);
  std::memset(ram_ + 0x32'0000, 0x5a, 48);
  Dma(dev, 0x0800'2000, 48, /*to_ram=*/true);
  EXPECT_EQ(ram_[0x32'0000], 0x5a) << "a DMA to an unmapped IOVA landed";
  EXPECT_EQ(ram_[0x32'0000 + 47], 0x5a);

  viommu_vfio_detach(dev);
  EXPECT_EQ(Query(), R"({"containers": []})");
  EXPECT_EQ(PinnedByTest(), 0u);
}

// The edu's BAR0, mmap'd from the device fd and added as a RAM_DEVICE
// region, is offered to the identity container for peer-to-peer: type1
// maps it (one more mapping), iommufd refuses the VM_PFNMAP memory with
// EFAULT and the range is recorded as skipped ("ram-device-map-failed").
// Either way RAM DMA goes on, and removing the region clears it.
TEST_F(RealCapiVfioTest, BarMmapIsMappedByType1AndSkippedByIommufd) {
  viommu_vfio* dev = Attach(Endpoint(nullptr));
  ASSERT_NE(dev, nullptr) << (rec_.logs.empty() ? "" : rec_.logs.back());
  viommu_vfio_region info{};
  info.size = sizeof(info);
  ASSERT_EQ(viommu_vfio_region_info(dev, VIOMMU_VFIO_PCI_BAR0, &info), 0);
  ASSERT_EQ(info.len, 1u << 20);
  ASSERT_NE(info.flags & VIOMMU_VFIO_REGION_F_MMAP, 0u);
  int fd = -1;
  ASSERT_EQ(viommu_vfio_device_fd(dev, &fd), 0);
  void* bar = mmap(nullptr, info.len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                   static_cast<off_t>(info.offset));
  ASSERT_NE(bar, MAP_FAILED) << std::strerror(errno);
  ASSERT_NO_FATAL_FAILURE(Enable(dev));
  EXPECT_EQ(*static_cast<volatile uint32_t*>(bar), kEduId);

  constexpr uint64_t kBar = 0x0c00'0000;  // below edu's 28-bit DMA mask
  viommu_region r{};
  r.size = sizeof(r);
  r.kind = VIOMMU_REGION_RAM_DEVICE;
  r.gpa = kBar;
  r.len = info.len;
  r.hva = bar;
  r.fd = -1;
  r.name = "edu-bar0";
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  std::string q = Query();
  if (iommufd_) {
    EXPECT_EQ(Mappings(), 1) << "iommufd mapped the BAR: " << q;
    EXPECT_TRUE(absl::StrContains(
        q, R"("skipped": [{"start": 201326592, "end": 202375167, )"
           R"("reason": "ram-device-map-failed"}, )"))
        << q;
  } else {
    EXPECT_EQ(Mappings(), 2) << "the BAR's P2P mapping: " << q;
    EXPECT_FALSE(absl::StrContains(q, "ram-device")) << q;
    // Real P2P: the edu reads its own id at IOVA kBar.
    std::memset(ram_ + 0x20'0000, 0xff, 8);
    if (Dma(dev, kBar, 4, /*to_ram=*/false)) {
      Dma(dev, 0x20'0000, 4, /*to_ram=*/true);
    }
    uint32_t got = 0;
    std::memcpy(&got, ram_ + 0x20'0000, 4);
    EXPECT_EQ(got, kEduId);
  }
  EXPECT_EQ(PinnedByTest(), 16u << 10) << "a BAR is never counted as pinned";
  Fill(0x10'0000, 0x63, 32);
  std::memset(ram_ + 0x28'0000, 0, 32);
  Copy(dev, 0x10'0000, 0x28'0000, 32);
  EXPECT_TRUE(Same(0x10'0000, 0x28'0000, 32));

  ASSERT_EQ(viommu_region_del(ctx_, id), 0);
  q = Query();
  EXPECT_EQ(Mappings(), 1) << q;
  EXPECT_FALSE(absl::StrContains(q, "ram-device")) << q;
  munmap(bar, info.len);
  viommu_vfio_detach(dev);
  EXPECT_EQ(PinnedByTest(), 0u);
}

}  // namespace
}  // namespace viommu::capi::testing
