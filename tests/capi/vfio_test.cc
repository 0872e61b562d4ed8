// The C API's VFIO (include/viommu.h, "VFIO"): the host backend chosen in
// viommu_config, attach/detach of the model host's devices as endpoints,
// their regions and fd, the endpoints' IOVA ranges and their callback,
// RAM hot-add/remove reaching every container, and viommu_query_json.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/capi/capi_fixture.h"
#include "viommu.h"
#include "viommu/vfio/host/host_platform.h"
#include "viommu/vfio/host/host_platform_dtb.h"

namespace viommu::capi::testing {
namespace {

constexpr uint64_t kEduDmaSrc = 0x80;
constexpr uint64_t kEduDmaDst = 0x88;
constexpr uint64_t kEduDmaCount = 0x90;
constexpr uint64_t kEduDmaCmd = 0x98;
constexpr uint64_t kEduBuffer = 0x40000;  // the edu's device-side buffer
constexpr uint16_t kCommandMemory = 1 << 1;
constexpr uint16_t kCommandMaster = 1 << 2;

// x-query-vfio through the C API.
std::string Query(viommu_ctx* ctx) {
  char* json = nullptr;
  EXPECT_EQ(viommu_query_json(ctx, "x-query-vfio", &json), 0);
  std::string out = json != nullptr ? json : "";
  viommu_free(json);
  return out;
}

// The "mappings" numbers of every container, in id order.
std::vector<uint64_t> Mappings(viommu_ctx* ctx) {
  std::vector<uint64_t> out;
  const std::string q = Query(ctx);
  for (size_t p = q.find("\"mappings\": "); p != std::string::npos;
       p = q.find("\"mappings\": ", p + 1)) {
    out.push_back(std::stoull(q.substr(p + 12)));
  }
  return out;
}

// Counts the calls of iova_ranges_changed, per endpoint, and what a
// control call from inside it returns.
struct RangesRecorder : Recorder {
  std::vector<viommu_ep*> changed;
  std::vector<size_t> counts;  // viommu_ep_iova_ranges inside the callback
  int nested_control = 1;      // viommu_vfio_attach inside it
  static void OnChanged(void* opaque, viommu_ep* ep) {
    auto* r = static_cast<RangesRecorder*>(opaque);
    r->changed.push_back(ep);
    size_t n = 0;
    EXPECT_EQ(viommu_ep_iova_ranges(ep, nullptr, 0, &n), 0);
    r->counts.push_back(n);
    viommu_vfio* dev = nullptr;
    r->nested_control = viommu_vfio_attach(ep, "0000:03:00.0", 0, &dev);
  }
};

class CapiVfioTest : public CapiTest {
 protected:
  // A VT-d (caching mode) and endpoint 00:04.0 behind it.
  viommu_ep* VtdEndpoint(const char* props = "caching-mode=on") {
    EXPECT_EQ(viommu_iommu_new(ctx_, "intel-iommu", props, &iommu_), 0);
    viommu_ep* ep = nullptr;
    EXPECT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, iommu_, &ep), 0);
    return ep;
  }
  viommu_ep* IdentityEndpoint(uint8_t devfn) {
    viommu_ep* ep = nullptr;
    EXPECT_EQ(viommu_ep_new(ctx_, 0, 0, devfn, nullptr, &ep), 0);
    return ep;
  }
  int Region(viommu_vfio* dev, uint32_t index, uint64_t offset, uint64_t v,
             size_t len) {
    return viommu_vfio_region_rw(dev, index, offset, &v, len, 1);
  }
  // COMMAND = MEMORY | MASTER, then an edu DMA of `len` bytes.
  void EduDma(viommu_vfio* dev, uint64_t src, uint64_t dst, uint64_t len,
              bool to_ram) {
    ASSERT_EQ(Region(dev, VIOMMU_VFIO_PCI_CONFIG, 4,
                     kCommandMemory | kCommandMaster, 2),
              0);
    ASSERT_EQ(Region(dev, VIOMMU_VFIO_PCI_BAR0, kEduDmaSrc, src, 8), 0);
    ASSERT_EQ(Region(dev, VIOMMU_VFIO_PCI_BAR0, kEduDmaDst, dst, 8), 0);
    ASSERT_EQ(Region(dev, VIOMMU_VFIO_PCI_BAR0, kEduDmaCount, len, 8), 0);
    ASSERT_EQ(Region(dev, VIOMMU_VFIO_PCI_BAR0, kEduDmaCmd, to_ram ? 3 : 1, 8),
              0);
  }

  viommu_iommu* iommu_ = nullptr;
};

// ---- viommu_config: the host backend ----------------------------------

viommu_ctx* NewCtx(const viommu_config& cfg, Recorder* rec, int* err) {
  viommu_callbacks cb{};
  cb.size = sizeof(cb);
  cb.log = &Recorder::Log;
  viommu_ctx* ctx = nullptr;
  *err = viommu_ctx_new(&cfg, &cb, rec, &ctx);
  return ctx;
}

TEST(CapiVfioConfigTest, AbiV02ConfigWithoutHostFieldsIsTheModelHost) {
  viommu_config cfg{};
  cfg.size = offsetof(viommu_config, host);  // ABI 0.1 / 0.2
  cfg.host = "no such host";                 // beyond its size: not read
  Recorder rec;
  int err = 1;
  viommu_ctx* ctx = NewCtx(cfg, &rec, &err);
  ASSERT_EQ(err, 0);
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx, 0, 0, 0x20, nullptr, &ep), 0);
  viommu_vfio* dev = nullptr;
  EXPECT_EQ(viommu_vfio_attach(ep, "0000:01:00.0", VIOMMU_VFIO_TYPE1, &dev), 0);
  viommu_ctx_free(ctx);
}

TEST(CapiVfioConfigTest, ConfigSmallerThanAbiV01IsEinval) {
  viommu_config cfg{};
  cfg.size = offsetof(viommu_config, flags);
  Recorder rec;
  int err = 0;
  EXPECT_EQ(NewCtx(cfg, &rec, &err), nullptr);
  EXPECT_EQ(err, -EINVAL);
}

TEST(CapiVfioConfigTest, UnknownHostIsEinval) {
  viommu_config cfg{};
  cfg.size = sizeof(cfg);
  cfg.host = "xen";
  Recorder rec;
  int err = 0;
  EXPECT_EQ(NewCtx(cfg, &rec, &err), nullptr);
  EXPECT_EQ(err, -EINVAL);
  EXPECT_TRUE(rec.LogContains("unknown host 'xen'"));
}

TEST(CapiVfioConfigTest, HostDtbWithLinuxIsEinval) {
  viommu_config cfg{};
  cfg.size = sizeof(cfg);
  cfg.host = "linux";
  cfg.host_dtb = "/nonexistent.dtb";
  Recorder rec;
  int err = 0;
  EXPECT_EQ(NewCtx(cfg, &rec, &err), nullptr);
  EXPECT_EQ(err, -EINVAL);
  EXPECT_TRUE(rec.LogContains("model host only"));
}

TEST(CapiVfioConfigTest, UnreadableHostDtbIsEnoent) {
  viommu_config cfg{};
  cfg.size = sizeof(cfg);
  cfg.host_dtb = "/nonexistent/host.dtb";
  Recorder rec;
  int err = 0;
  EXPECT_EQ(NewCtx(cfg, &rec, &err), nullptr);
  EXPECT_EQ(err, -ENOENT);
  EXPECT_TRUE(rec.LogContains("/nonexistent/host.dtb"));
}

TEST(CapiVfioConfigTest, HostDtbReplacesTheModelPlatform) {
  vfio::HostPlatform p;
  vfio::HostDeviceDesc d;
  d.address = *vfio::HostPciAddress::Parse("0000:05:00.0");
  d.group = 9;
  p.devices.push_back(d);
  absl::StatusOr<std::vector<uint8_t>> blob = vfio::HostPlatformToDtb(p);
  ASSERT_TRUE(blob.ok()) << blob.status();
  char path[] = "/tmp/capi_vfio_test_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, blob->data(), blob->size()),
            static_cast<ssize_t>(blob->size()));
  close(fd);
  viommu_config cfg{};
  cfg.size = sizeof(cfg);
  cfg.host = "model";
  cfg.host_dtb = path;
  Recorder rec;
  int err = 1;
  viommu_ctx* ctx = NewCtx(cfg, &rec, &err);
  unlink(path);
  ASSERT_EQ(err, 0);
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx, 0, 0, 0x20, nullptr, &ep), 0);
  viommu_vfio* dev = nullptr;
  EXPECT_EQ(viommu_vfio_attach(ep, "0000:01:00.0", 0, &dev), -ENOENT);
  EXPECT_EQ(viommu_vfio_attach(ep, "0000:05:00.0", 0, &dev), 0);
  viommu_ctx_free(ctx);
}

TEST(CapiVfioConfigTest, LinuxHostAnswersEnoentForAnAbsentDevice) {
  viommu_config cfg{};
  cfg.size = sizeof(cfg);
  cfg.host = "linux";
  Recorder rec;
  int err = 1;
  viommu_ctx* ctx = NewCtx(cfg, &rec, &err);
  ASSERT_EQ(err, 0);
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx, 0, 0, 0x20, nullptr, &ep), 0);
  viommu_vfio* dev = nullptr;
  EXPECT_EQ(viommu_vfio_attach(ep, "ffff:ff:1f.7", VIOMMU_VFIO_TYPE1, &dev),
            -ENOENT);
  EXPECT_EQ(dev, nullptr);
  viommu_ctx_free(ctx);
}

// ---- attach / detach --------------------------------------------------

TEST_F(CapiVfioTest, AttachIdentityEndpointMapsGuestRamInAContainer) {
  AddRam();
  viommu_ep* ep = IdentityEndpoint(0x20);
  viommu_vfio* dev = nullptr;
  ASSERT_EQ(viommu_vfio_attach(ep, "0000:01:00.0", VIOMMU_VFIO_TYPE1, &dev), 0);
  ASSERT_NE(dev, nullptr);
  const std::string q = Query(ctx_);
  EXPECT_NE(q.find("\"backend\": \"type1\""), std::string::npos) << q;
  EXPECT_NE(q.find("\"address-space\": \"memory\""), std::string::npos) << q;
  EXPECT_NE(q.find("\"devices\": [\"0000:01:00.0\"]"), std::string::npos) << q;
  EXPECT_EQ(Mappings(ctx_), std::vector<uint64_t>{1});  // the RAM region
  viommu_vfio_detach(dev);
  EXPECT_EQ(Query(ctx_), "{\"containers\": []}");
}

TEST_F(CapiVfioTest, AutoModeUsesIommufdWhereTheDeviceHasACdev) {
  AddRam();
  viommu_vfio* dev = nullptr;
  ASSERT_EQ(viommu_vfio_attach(IdentityEndpoint(0x20), "01:00.0",
                               VIOMMU_VFIO_AUTO, &dev),
            0);
  EXPECT_NE(Query(ctx_).find("\"backend\": \"iommufd\""), std::string::npos);
}

TEST_F(CapiVfioTest, IommufdModeAttaches) {
  AddRam();
  viommu_vfio* dev = nullptr;
  ASSERT_EQ(viommu_vfio_attach(IdentityEndpoint(0x20), "0000:02:00.0",
                               VIOMMU_VFIO_IOMMUFD, &dev),
            0);
  EXPECT_NE(Query(ctx_).find("\"backend\": \"iommufd\""), std::string::npos);
  EXPECT_EQ(Mappings(ctx_), std::vector<uint64_t>{1});
}

TEST_F(CapiVfioTest, ABarTheHostCannotPinIsSkippedWithAWarningInTheLog) {
  AddRam();
  viommu_vfio* dev = nullptr;
  ASSERT_EQ(viommu_vfio_attach(IdentityEndpoint(0x20), "0000:02:00.0",
                               VIOMMU_VFIO_IOMMUFD, &dev),
            0);
  // Memory iommufd cannot pin for writing (read-only: GUP with FOLL_WRITE
  // fails with EFAULT, as it does for a BAR's VM_PFNMAP on Linux).
  void* bar =
      mmap(nullptr, 0x10000, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(bar, MAP_FAILED);
  const viommu_region r = RamDeviceRegion(0xe000'0000, 0x10000, bar);
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);  // best effort, as QEMU
  EXPECT_TRUE(rec_.LogContains(
      "PCI peer-to-peer transactions on BARs are not supported"));
  const std::string q = Query(ctx_);
  EXPECT_NE(q.find("\"ram-device-map-failed\""), std::string::npos) << q;
  EXPECT_EQ(Mappings(ctx_), std::vector<uint64_t>{1});  // the RAM only
  EXPECT_EQ(viommu_region_del(ctx_, id), 0);
  munmap(bar, 0x10000);
}

TEST_F(CapiVfioTest, IdentityDevicesShareAContainerUntilTheLastDetach) {
  AddRam();
  viommu_vfio* a = nullptr;
  viommu_vfio* b = nullptr;
  ASSERT_EQ(viommu_vfio_attach(IdentityEndpoint(0x20), "0000:01:00.0",
                               VIOMMU_VFIO_TYPE1, &a),
            0);
  ASSERT_EQ(viommu_vfio_attach(IdentityEndpoint(0x28), "0000:03:00.0",
                               VIOMMU_VFIO_TYPE1, &b),
            0);
  EXPECT_NE(Query(ctx_).find("[\"0000:01:00.0\", \"0000:03:00.0\"]"),
            std::string::npos)
      << Query(ctx_);
  viommu_vfio_detach(a);
  EXPECT_EQ(Mappings(ctx_), std::vector<uint64_t>{1});  // b keeps it mapped
  viommu_vfio_detach(b);
  EXPECT_EQ(Query(ctx_), "{\"containers\": []}");
}

TEST_F(CapiVfioTest, AttachErrors) {
  AddRam();
  viommu_ep* ep = IdentityEndpoint(0x20);
  viommu_vfio* dev = nullptr;
  EXPECT_EQ(viommu_vfio_attach(nullptr, "0000:01:00.0", 0, &dev), -EINVAL);
  EXPECT_EQ(viommu_vfio_attach(ep, nullptr, 0, &dev), -EINVAL);
  EXPECT_EQ(viommu_vfio_attach(ep, "0000:01:00.0", 0, nullptr), -EINVAL);
  EXPECT_EQ(viommu_vfio_attach(ep, "0000:01:00.0", 3, &dev), -EINVAL);
  EXPECT_TRUE(rec_.LogContains("unknown mode 3"));
  EXPECT_EQ(viommu_vfio_attach(ep, "zz:00.0", 0, &dev), -EINVAL);
  EXPECT_EQ(viommu_vfio_attach(ep, "0000:09:00.0", VIOMMU_VFIO_TYPE1, &dev),
            -ENOENT);
  EXPECT_EQ(viommu_vfio_attach(ep, "0000:09:00.0", VIOMMU_VFIO_IOMMUFD, &dev),
            -ENOENT);
  EXPECT_EQ(dev, nullptr);
  ASSERT_EQ(viommu_vfio_attach(ep, "0000:01:00.0", 0, &dev), 0);
  viommu_vfio* again = nullptr;
  EXPECT_EQ(viommu_vfio_attach(ep, "0000:02:00.0", 0, &again), -EEXIST);
  EXPECT_TRUE(rec_.LogContains("has host device 0000:01:00.0 already"));
  EXPECT_EQ(
      viommu_vfio_attach(IdentityEndpoint(0x28), "0000:01:00.0", 0, &again),
      -EEXIST);
  EXPECT_EQ(again, nullptr);
}

TEST_F(CapiVfioTest, VtdWithoutCachingModeRefusesAndLeavesNothing) {
  AddRam();
  viommu_ep* ep = VtdEndpoint("");
  viommu_vfio* dev = nullptr;
  EXPECT_EQ(viommu_vfio_attach(ep, "0000:01:00.0", VIOMMU_VFIO_TYPE1, &dev),
            -EINVAL);
  EXPECT_EQ(dev, nullptr);
  EXPECT_EQ(Query(ctx_), "{\"containers\": []}");
  // The host device is free again.
  viommu_vfio* other = nullptr;
  EXPECT_EQ(viommu_vfio_attach(IdentityEndpoint(0x28), "0000:01:00.0",
                               VIOMMU_VFIO_TYPE1, &other),
            0);
}

TEST_F(CapiVfioTest, VtdWiderThanTheHostApertureIsRefused) {
  AddRam();
  // 0000:03:00.0's host IOMMU has 39 bits; VT-d with 48 is refused.
  viommu_ep* ep = VtdEndpoint("caching-mode=on,aw-bits=48");
  viommu_vfio* dev = nullptr;
  EXPECT_EQ(viommu_vfio_attach(ep, "0000:03:00.0", VIOMMU_VFIO_TYPE1, &dev),
            -EINVAL);
  EXPECT_EQ(Query(ctx_), "{\"containers\": []}");
  EXPECT_EQ(viommu_vfio_attach(ep, "0000:01:00.0", VIOMMU_VFIO_TYPE1, &dev), 0);
}

TEST_F(CapiVfioTest, EndpointFreeDetachesItsDevice) {
  AddRam();
  viommu_ep* ep = IdentityEndpoint(0x20);
  viommu_vfio* dev = nullptr;
  ASSERT_EQ(viommu_vfio_attach(ep, "0000:01:00.0", 0, &dev), 0);
  viommu_ep_free(ep);
  EXPECT_EQ(Query(ctx_), "{\"containers\": []}");
  EXPECT_EQ(viommu_vfio_attach(IdentityEndpoint(0x20), "0000:01:00.0", 0, &dev),
            0);
  // viommu_ctx_free (the fixture) detaches it.
}

TEST_F(CapiVfioTest, DetachOfNullIsANoOp) { viommu_vfio_detach(nullptr); }

// ---- DMA of the host device ------------------------------------------

TEST_F(CapiVfioTest, HostDeviceDmaGoesThroughVtdTranslation) {
  AddRam();
  viommu_ep* ep = VtdEndpoint();
  VtdGuest g(ram_, ctx_);
  g.SetContext(0x20, 1);
  g.Map(0x10000, 0x200000, 3);
  g.Enable();
  viommu_vfio* dev = nullptr;
  ASSERT_EQ(viommu_vfio_attach(ep, "0000:01:00.0", VIOMMU_VFIO_TYPE1, &dev), 0);
  EXPECT_EQ(Mappings(ctx_), std::vector<uint64_t>{1});  // IOVA 0x10000
  for (int i = 0; i < 64; ++i) ram_[0x200000 + i] = static_cast<uint8_t>(i);
  EduDma(dev, 0x10000, kEduBuffer, 64, /*to_ram=*/false);  // RAM -> device
  EduDma(dev, kEduBuffer, 0x10800, 64, /*to_ram=*/true);   // device -> RAM
  for (int i = 0; i < 64; ++i) {
    ASSERT_EQ(ram_[0x200800 + i], i) << i;
  }
  // An IOVA VT-d does not map is not in the container: nothing lands.
  std::memset(ram_ + 0x300000, 0xee, 64);
  EduDma(dev, kEduBuffer, 0x20000, 64, /*to_ram=*/true);
  EXPECT_EQ(ram_[0x300000], 0xee);
}

TEST_F(CapiVfioTest, GuestInvalidationReachesTheContainer) {
  AddRam();
  viommu_ep* ep = VtdEndpoint();
  VtdGuest g(ram_, ctx_);
  g.SetContext(0x20, 1);
  g.Enable();
  viommu_vfio* dev = nullptr;
  ASSERT_EQ(viommu_vfio_attach(ep, "0000:01:00.0", VIOMMU_VFIO_TYPE1, &dev), 0);
  EXPECT_EQ(Mappings(ctx_), std::vector<uint64_t>{0});
  g.Map(0x10000, 0x200000, 3);
  g.InvalidatePage(1, 0x10000);
  EXPECT_EQ(Mappings(ctx_), std::vector<uint64_t>{1});
  g.Map(0x10000, 0, 0);
  g.InvalidatePage(1, 0x10000);
  EXPECT_EQ(Mappings(ctx_), std::vector<uint64_t>{0});
}

// ---- RAM hot-add / hot-remove -----------------------------------------

TEST_F(CapiVfioTest, RamHotAddAndRemoveReachEveryContainer) {
  AddRam();
  // Container 1: identity endpoint (guest memory map). Container 2: behind
  // VT-d with translation off (its DMA space shows guest memory too).
  viommu_vfio* a = nullptr;
  viommu_vfio* b = nullptr;
  viommu_ep* vtd_ep = VtdEndpoint();
  ASSERT_EQ(viommu_vfio_attach(IdentityEndpoint(0x28), "0000:01:00.0",
                               VIOMMU_VFIO_TYPE1, &a),
            0);
  ASSERT_EQ(viommu_vfio_attach(vtd_ep, "0000:02:00.0", VIOMMU_VFIO_TYPE1, &b),
            0);
  ASSERT_EQ(Mappings(ctx_), (std::vector<uint64_t>{1, 1}));
  constexpr uint64_t kDimmSize = 1 << 20;
  void* dimm = mmap(nullptr, kDimmSize, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // page aligned
  ASSERT_NE(dimm, MAP_FAILED);
  viommu_region r{};
  r.size = sizeof(r);
  r.kind = VIOMMU_REGION_RAM;
  r.gpa = 0x4000'0000;
  r.len = kDimmSize;
  r.hva = dimm;
  r.fd = -1;
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  EXPECT_EQ(Mappings(ctx_), (std::vector<uint64_t>{2, 2}));
  ASSERT_EQ(viommu_region_del(ctx_, id), 0);
  EXPECT_EQ(Mappings(ctx_), (std::vector<uint64_t>{1, 1}));
  munmap(dimm, kDimmSize);
}

// ---- regions and fd ----------------------------------------------------

TEST_F(CapiVfioTest, RegionInfoDescribesBarsAndConfig) {
  viommu_vfio* dev = nullptr;
  ASSERT_EQ(viommu_vfio_attach(IdentityEndpoint(0x20), "0000:01:00.0", 0, &dev),
            0);
  viommu_vfio_region info{};
  info.size = sizeof(info);
  ASSERT_EQ(viommu_vfio_region_info(dev, VIOMMU_VFIO_PCI_BAR0, &info), 0);
  EXPECT_EQ(info.len, 1u << 20);
  EXPECT_EQ(info.flags, VIOMMU_VFIO_REGION_F_READ | VIOMMU_VFIO_REGION_F_WRITE);
  ASSERT_EQ(viommu_vfio_region_info(dev, 2, &info), 0);
  EXPECT_EQ(info.flags & VIOMMU_VFIO_REGION_F_MMAP, VIOMMU_VFIO_REGION_F_MMAP);
  ASSERT_EQ(viommu_vfio_region_info(dev, VIOMMU_VFIO_PCI_CONFIG, &info), 0);
  EXPECT_EQ(info.len, 256u);
  EXPECT_EQ(info.offset, uint64_t{7} << 40);
  ASSERT_EQ(viommu_vfio_region_info(dev, 1, &info), 0);
  EXPECT_EQ(info.len, 0u);
  EXPECT_EQ(viommu_vfio_region_info(dev, 8, &info), -EINVAL);  // VGA
  EXPECT_EQ(viommu_vfio_region_info(dev, 0, nullptr), -EINVAL);
  info.size = sizeof(info) - 1;
  EXPECT_EQ(viommu_vfio_region_info(dev, 0, &info), -EINVAL);
  EXPECT_EQ(viommu_vfio_region_info(nullptr, 0, &info), -EINVAL);
}

TEST_F(CapiVfioTest, RegionRwReadsConfigAndBarRegisters) {
  viommu_vfio* dev = nullptr;
  ASSERT_EQ(viommu_vfio_attach(IdentityEndpoint(0x20), "0000:01:00.0", 0, &dev),
            0);
  uint32_t id = 0;
  ASSERT_EQ(viommu_vfio_region_rw(dev, VIOMMU_VFIO_PCI_CONFIG, 0, &id, 4, 0),
            0);
  EXPECT_EQ(id, 0x11e81234u);  // vendor 0x1234, device 0x11e8
  uint32_t v = 0x1234;
  ASSERT_EQ(viommu_vfio_region_rw(dev, VIOMMU_VFIO_PCI_BAR0, 4, &v, 4, 1), 0);
  ASSERT_EQ(viommu_vfio_region_rw(dev, VIOMMU_VFIO_PCI_BAR0, 4, &v, 4, 0), 0);
  EXPECT_EQ(v, ~0x1234u);  // edu's liveness register
  EXPECT_EQ(viommu_vfio_region_rw(dev, VIOMMU_VFIO_PCI_BAR0, 0, nullptr, 0, 0),
            0);
}

TEST_F(CapiVfioTest, RegionRwErrors) {
  viommu_vfio* dev = nullptr;
  ASSERT_EQ(viommu_vfio_attach(IdentityEndpoint(0x20), "0000:01:00.0", 0, &dev),
            0);
  uint64_t v = 0;
  EXPECT_EQ(viommu_vfio_region_rw(nullptr, 0, 0, &v, 4, 0), -EINVAL);
  EXPECT_EQ(viommu_vfio_region_rw(dev, 0, 0, nullptr, 4, 0), -EINVAL);
  EXPECT_EQ(viommu_vfio_region_rw(dev, VIOMMU_VFIO_PCI_CONFIG, 254, &v, 4, 0),
            -EINVAL);  // past the end
  EXPECT_EQ(
      viommu_vfio_region_rw(dev, VIOMMU_VFIO_PCI_CONFIG, UINT64_MAX, &v, 4, 0),
      -EINVAL);
  EXPECT_EQ(viommu_vfio_region_rw(dev, 1, 0, &v, 4, 0), -EINVAL);  // size 0
  EXPECT_EQ(viommu_vfio_region_rw(dev, 8, 0, &v, 4, 0), -EINVAL);  // VGA
  // Memory decode off: the BAR refuses (vfio-pci's -EIO).
  uint16_t cmd = 0;
  ASSERT_EQ(viommu_vfio_region_rw(dev, VIOMMU_VFIO_PCI_CONFIG, 4, &cmd, 2, 1),
            0);
  EXPECT_EQ(viommu_vfio_region_rw(dev, VIOMMU_VFIO_PCI_BAR0, 0, &v, 4, 0),
            -EIO);
  EXPECT_TRUE(rec_.LogContains("region 0: read of 0x4 bytes at 0x0"));
}

TEST_F(CapiVfioTest, DeviceFdIsUnsupportedOnTheModelHost) {
  viommu_vfio* dev = nullptr;
  ASSERT_EQ(viommu_vfio_attach(IdentityEndpoint(0x20), "0000:01:00.0", 0, &dev),
            0);
  int fd = 0;
  EXPECT_EQ(viommu_vfio_device_fd(dev, &fd), -EOPNOTSUPP);
  EXPECT_EQ(fd, -1);
  EXPECT_TRUE(rec_.LogContains("not kernel fds"));
  EXPECT_EQ(viommu_vfio_device_fd(dev, nullptr), -EINVAL);
  EXPECT_EQ(viommu_vfio_device_fd(nullptr, &fd), -EINVAL);
}

// ---- IOVA ranges ------------------------------------------------------

TEST_F(CapiVfioTest, EndpointWithoutHostDeviceHasTheWholeSpace) {
  viommu_ep* ep = IdentityEndpoint(0x20);
  viommu_iova_range r[2] = {};
  size_t n = 0;
  ASSERT_EQ(viommu_ep_iova_ranges(ep, r, 2, &n), 0);
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(r[0].start, 0u);
  EXPECT_EQ(r[0].end, UINT64_MAX);
}

TEST_F(CapiVfioTest, HostDeviceRangesAreTheApertureMinusReservedRegions) {
  viommu_ep* ep = IdentityEndpoint(0x20);
  viommu_vfio* dev = nullptr;
  // 0000:02:00.0: 48-bit aperture, a direct-mapped range at 0x0f000000
  // and the MSI window reserved.
  ASSERT_EQ(viommu_vfio_attach(ep, "0000:02:00.0", VIOMMU_VFIO_TYPE1, &dev), 0);
  viommu_iova_range r[4] = {};
  size_t n = 0;
  ASSERT_EQ(viommu_ep_iova_ranges(ep, r, 4, &n), 0);
  ASSERT_EQ(n, 3u);
  EXPECT_EQ(r[0].start, 0u);
  EXPECT_EQ(r[0].end, 0x0effffffu);
  EXPECT_EQ(r[1].start, 0x0f100000u);
  EXPECT_EQ(r[1].end, 0xfedfffffu);
  EXPECT_EQ(r[2].start, 0xfef00000u);
  EXPECT_EQ(r[2].end, (uint64_t{1} << 48) - 1);
  // Fewer slots: the count is still the whole.
  n = 0;
  ASSERT_EQ(viommu_ep_iova_ranges(ep, r, 1, &n), 0);
  EXPECT_EQ(n, 3u);
  ASSERT_EQ(viommu_ep_iova_ranges(ep, nullptr, 0, &n), 0);
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(viommu_ep_iova_ranges(ep, nullptr, 1, &n), -EINVAL);
  EXPECT_EQ(viommu_ep_iova_ranges(ep, r, 1, nullptr), -EINVAL);
  EXPECT_EQ(viommu_ep_iova_ranges(nullptr, r, 1, &n), -EINVAL);
  viommu_vfio_detach(dev);
  ASSERT_EQ(viommu_ep_iova_ranges(ep, r, 4, &n), 0);
  EXPECT_EQ(n, 1u);
}

class CapiVfioRangesTest : public ::testing::Test {
 protected:
  CapiVfioRangesTest() {
    viommu_config cfg{};
    cfg.size = sizeof(cfg);
    viommu_callbacks cb{};
    cb.size = sizeof(cb);
    cb.log = &Recorder::Log;
    cb.iova_ranges_changed = &RangesRecorder::OnChanged;
    EXPECT_EQ(viommu_ctx_new(&cfg, &cb, &rec_, &ctx_), 0);
  }
  ~CapiVfioRangesTest() override { viommu_ctx_free(ctx_); }

  RangesRecorder rec_;
  viommu_ctx* ctx_ = nullptr;
};

TEST_F(CapiVfioRangesTest, AttachAndDetachFireTheCallback) {
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, nullptr, &ep), 0);
  viommu_vfio* dev = nullptr;
  ASSERT_EQ(viommu_vfio_attach(ep, "0000:02:00.0", VIOMMU_VFIO_TYPE1, &dev), 0);
  ASSERT_EQ(rec_.changed, std::vector<viommu_ep*>{ep});
  EXPECT_EQ(rec_.counts, std::vector<size_t>{3});  // queried inside it
  EXPECT_EQ(rec_.nested_control, -EDEADLK);
  viommu_vfio_detach(dev);
  EXPECT_EQ(rec_.changed, (std::vector<viommu_ep*>{ep, ep}));
  EXPECT_EQ(rec_.counts, (std::vector<size_t>{3, 1}));
}

TEST_F(CapiVfioRangesTest, AGroupJoiningASharedContainerNarrowsTheOthers) {
  viommu_ep* a = nullptr;
  viommu_ep* b = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, nullptr, &a), 0);
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x28, nullptr, &b), 0);
  viommu_vfio* da = nullptr;
  viommu_vfio* db = nullptr;
  ASSERT_EQ(viommu_vfio_attach(a, "0000:01:00.0", VIOMMU_VFIO_TYPE1, &da), 0);
  ASSERT_EQ(rec_.changed, std::vector<viommu_ep*>{a});
  rec_.changed.clear();
  // 0000:02:00.0 adds a reserved range to the shared container: both
  // endpoints' ranges change.
  ASSERT_EQ(viommu_vfio_attach(b, "0000:02:00.0", VIOMMU_VFIO_TYPE1, &db), 0);
  EXPECT_EQ(rec_.changed.size(), 2u);
  size_t n = 0;
  ASSERT_EQ(viommu_ep_iova_ranges(a, nullptr, 0, &n), 0);
  EXPECT_EQ(n, 3u);
}

TEST_F(CapiVfioRangesTest, NoCallbackWhenNothingChanged) {
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, nullptr, &ep), 0);
  viommu_vfio* dev = nullptr;
  EXPECT_EQ(viommu_vfio_attach(ep, "0000:09:00.0", VIOMMU_VFIO_TYPE1, &dev),
            -ENOENT);
  EXPECT_TRUE(rec_.changed.empty());
}

// ---- queries ----------------------------------------------------------

TEST_F(CapiVfioTest, QueryJsonErrors) {
  char* json = reinterpret_cast<char*>(1);
  EXPECT_EQ(viommu_query_json(nullptr, "x-query-vfio", &json), -EINVAL);
  EXPECT_EQ(viommu_query_json(ctx_, nullptr, &json), -EINVAL);
  EXPECT_EQ(viommu_query_json(ctx_, "x-query-vfio", nullptr), -EINVAL);
  EXPECT_EQ(viommu_query_json(ctx_, "query-pci", &json), -EOPNOTSUPP);
  EXPECT_EQ(json, nullptr);
  EXPECT_TRUE(rec_.LogContains("unknown query 'query-pci'"));
  ASSERT_EQ(viommu_query_json(ctx_, "vfio", &json), 0);
  EXPECT_STREQ(json, "{\"containers\": []}");
  viommu_free(json);
  viommu_free(nullptr);
}

TEST_F(CapiVfioTest, QueryJsonHasTheXQueryVfioSchema) {
  AddRam();
  viommu_vfio* dev = nullptr;
  ASSERT_EQ(viommu_vfio_attach(IdentityEndpoint(0x20), "0000:01:00.0",
                               VIOMMU_VFIO_TYPE1, &dev),
            0);
  EXPECT_EQ(Query(ctx_),
            "{\"containers\": [{\"id\": 1, \"backend\": \"type1\", "
            "\"address-space\": \"memory\", \"devices\": [\"0000:01:00.0\"], "
            "\"iova-ranges\": [{\"start\": 0, \"end\": 4276092927}, "
            "{\"start\": 4277141504, \"end\": 281474976710655}], "
            "\"mappings\": 1, \"dma-avail\": 65534, \"skipped\": [{\"start\": "
            "4276092928, \"end\": 4277141503, \"reason\": \"mmio\"}]}]}");
}

// ---- the control-call guard -------------------------------------------

// A DMA listener whose map callback makes the VFIO control calls.
struct Reentrant {
  viommu_ctx* ctx = nullptr;
  viommu_ep* ep = nullptr;
  viommu_vfio* dev = nullptr;
  int attach = 1, region_rw = 1, info = 1, fd = 1, query = 1, ranges = 1;
  static void Map(void* opaque, const viommu_dma_map*) {
    auto* r = static_cast<Reentrant*>(opaque);
    viommu_vfio* other = nullptr;
    r->attach = viommu_vfio_attach(r->ep, "0000:02:00.0", 0, &other);
    uint32_t v = 0;
    r->region_rw = viommu_vfio_region_rw(r->dev, 7, 0, &v, 4, 0);
    viommu_vfio_region info{};
    info.size = sizeof(info);
    r->info = viommu_vfio_region_info(r->dev, 7, &info);
    int fd = -1;
    r->fd = viommu_vfio_device_fd(r->dev, &fd);
    char* json = nullptr;
    r->query = viommu_query_json(r->ctx, "vfio", &json);
    size_t n = 0;
    r->ranges = viommu_ep_iova_ranges(r->ep, nullptr, 0, &n);
  }
  static void Unmap(void*, uint64_t, uint64_t) {}
};

TEST_F(CapiVfioTest, ControlCallsFromACallbackAreEdeadlk) {
  AddRam();
  Reentrant r;
  r.ctx = ctx_;
  r.ep = IdentityEndpoint(0x20);
  ASSERT_EQ(viommu_vfio_attach(r.ep, "0000:01:00.0", 0, &r.dev), 0);
  viommu_dma_listener l{sizeof(l), &Reentrant::Map, &Reentrant::Unmap, &r};
  uint32_t id = 0;
  ASSERT_EQ(viommu_dma_listener_add(r.ep, &l, &id), 0);  // replay: map
  EXPECT_EQ(r.attach, -EDEADLK);
  EXPECT_EQ(r.region_rw, -EDEADLK);
  EXPECT_EQ(r.info, -EDEADLK);
  EXPECT_EQ(r.fd, -EDEADLK);
  EXPECT_EQ(r.query, -EDEADLK);
  EXPECT_EQ(r.ranges, -EDEADLK);  // only iova_ranges_changed may query
}

// Blocks a control call (a DMA listener's replay) on another thread.
struct Blocker {
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, release = false;
  static void Map(void* opaque, const viommu_dma_map*) {
    auto* b = static_cast<Blocker*>(opaque);
    std::unique_lock<std::mutex> lock(b->mu);
    b->entered = true;
    b->cv.notify_all();
    b->cv.wait(lock, [b] { return b->release; });
  }
  static void Unmap(void*, uint64_t, uint64_t) {}
};

TEST_F(CapiVfioTest, OverlappingControlCallsAreEbusy) {
  AddRam();
  viommu_ep* ep = IdentityEndpoint(0x20);
  viommu_vfio* dev = nullptr;
  ASSERT_EQ(viommu_vfio_attach(ep, "0000:01:00.0", 0, &dev), 0);
  viommu_ep* ep2 = IdentityEndpoint(0x28);
  Blocker b;
  viommu_dma_listener l{sizeof(l), &Blocker::Map, &Blocker::Unmap, &b};
  uint32_t lid = 0;
  std::thread t([&] { EXPECT_EQ(viommu_dma_listener_add(ep, &l, &lid), 0); });
  {
    std::unique_lock<std::mutex> lock(b.mu);
    b.cv.wait(lock, [&] { return b.entered; });
  }
  viommu_vfio* other = nullptr;
  EXPECT_EQ(viommu_vfio_attach(ep2, "0000:02:00.0", 0, &other), -EBUSY);
  uint32_t v = 0;
  EXPECT_EQ(viommu_vfio_region_rw(dev, 7, 0, &v, 4, 0), -EBUSY);
  viommu_vfio_region info{};
  info.size = sizeof(info);
  EXPECT_EQ(viommu_vfio_region_info(dev, 7, &info), -EBUSY);
  int fd = -1;
  EXPECT_EQ(viommu_vfio_device_fd(dev, &fd), -EBUSY);
  char* json = nullptr;
  EXPECT_EQ(viommu_query_json(ctx_, "vfio", &json), -EBUSY);
  size_t n = 0;
  EXPECT_EQ(viommu_ep_iova_ranges(ep, nullptr, 0, &n), -EBUSY);
  {
    std::lock_guard<std::mutex> lock(b.mu);
    b.release = true;
  }
  b.cv.notify_all();
  t.join();
}

}  // namespace
}  // namespace viommu::capi::testing
