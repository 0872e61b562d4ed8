// iommufd model, device side (§4.11, §4.14): attach conflicts, automatic
// domain reuse, detach/unbind, replace and the legacy compat attach, with the
// default host platform's devices (ARCHITECTURE.md §4):
//   0000:01:00.0 group 1, 48-bit, msi 0xfee00000-0xfeefffff
//   0000:02:00.0 group 2, 48-bit, msi + direct 0x0f000000-0x0f0fffff
//   0000:03:00.0 group 3, 39-bit, msi
#include <cerrno>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/vfio/host/model/iommufd_test_util.h"
#include "viommu/vfio/host/host_backend.h"

namespace viommu::vfio::model::testing {
namespace {

constexpr uint64_t kDirect = 0x0f000000;
constexpr uint64_t kMsi = 0xfee00000;

class IommufdDeviceTest : public ::testing::Test {
 protected:
  IommufdDeviceDesc Desc(const char* bdf) {
    const HostPlatform& p = DefaultHostPlatform();
    const HostDeviceDesc* d = p.FindDevice(*HostPciAddress::Parse(bdf));
    EXPECT_NE(d, nullptr);
    return IommufdDeviceDesc::FromHost(*d, p.pgsize_bitmap);
  }
  uint32_t Bind(const IommufdDeviceDesc& desc) {
    uint32_t devid = 0;
    EXPECT_EQ(0, fd_.ctx.BindDevice(
                     desc, [this](HostIommuDomain* d) { events_.push_back(d); },
                     &devid));
    return devid;
  }
  int Attach(uint32_t devid, uint32_t pt, uint32_t* out = nullptr) {
    int rc = fd_.ctx.AttachDevice(devid, &pt);
    if (out != nullptr) *out = pt;
    return rc;
  }

  // Declared first: the ctx's destructor still notifies attached devices.
  std::vector<HostIommuDomain*> events_;
  ProcessMemory mem_;
  IommufdFd fd_{&mem_};
  Buffer buf_{kBufferSize};
};

TEST_F(IommufdDeviceTest, ReservedRegionVsExistingAreaIsEaddrinuse) {
  const uint32_t ioas = fd_.IoasAlloc();
  ASSERT_EQ(0, fd_.MapFixed(ioas, buf_.addr(), kPage, kDirect + kPage));
  const uint32_t dev2 = Bind(Desc("0000:02:00.0"));
  const size_t objects = fd_.ctx.object_count();
  EXPECT_EQ(-EADDRINUSE, Attach(dev2, ioas));
  EXPECT_EQ(objects, fd_.ctx.object_count());  // no auto hwpt left behind
  EXPECT_EQ(0u, fd_.ctx.DeviceHwpt(dev2));
  EXPECT_TRUE(events_.empty());
  const uint32_t dev1 = Bind(Desc("0000:01:00.0"));
  EXPECT_EQ(0, Attach(dev1, ioas));  // its only region is the MSI window
}

TEST_F(IommufdDeviceTest, ConflictWithExistingAutoHwptIsReturnedAtOnce) {
  const uint32_t ioas = fd_.IoasAlloc();
  const uint32_t dev1 = Bind(Desc("0000:01:00.0"));
  uint32_t hwpt = 0;
  ASSERT_EQ(0, Attach(dev1, ioas, &hwpt));
  ASSERT_EQ(0, fd_.MapFixed(ioas, buf_.addr(), kPage, kDirect));
  const uint32_t dev2 = Bind(Desc("0000:02:00.0"));
  const size_t objects = fd_.ctx.object_count();
  EXPECT_EQ(-EADDRINUSE, Attach(dev2, ioas));
  EXPECT_EQ(objects, fd_.ctx.object_count());
}

TEST_F(IommufdDeviceTest, AutoDomainReusedWhenCompatible) {
  const uint32_t ioas = fd_.IoasAlloc();
  const uint32_t dev1 = Bind(Desc("0000:01:00.0"));
  const uint32_t dev2 = Bind(Desc("0000:02:00.0"));
  const uint32_t dev3 = Bind(Desc("0000:03:00.0"));
  uint32_t h1 = 0, h2 = 0, h3 = 0;
  ASSERT_EQ(0, Attach(dev1, ioas, &h1));
  ASSERT_EQ(0, Attach(dev2, ioas, &h2));
  EXPECT_EQ(h1, h2);
  EXPECT_EQ(fd_.ctx.DeviceDomain(dev1), fd_.ctx.DeviceDomain(dev2));
  ASSERT_EQ(0, Attach(dev3, ioas, &h3));  // 39-bit: incompatible, new hwpt
  EXPECT_NE(h1, h3);
  EXPECT_EQ((1ull << 39) - 1, fd_.ctx.DeviceDomain(dev3)->aperture_last());
  // The IOAS now ends at the 39-bit aperture and has the holes of all
  // reserved regions (each attached device's).
  u::iommu_iova_range r[4] = {};
  u::iommu_ioas_iova_ranges c{.size = sizeof(c),
                              .ioas_id = ioas,
                              .num_iovas = 4,
                              .__reserved = 0,
                              .allowed_iovas = reinterpret_cast<uint64_t>(r),
                              .out_iova_alignment = 0};
  ASSERT_EQ(0, fd_.Io(u::kIommuIoasIovaRanges, &c));
  ASSERT_EQ(3u, c.num_iovas);
  EXPECT_EQ(kDirect - 1, r[0].last);
  EXPECT_EQ(kDirect + 0x100000, r[1].start);
  EXPECT_EQ(kMsi - 1, r[1].last);
  EXPECT_EQ(0xfef00000u, r[2].start);
  EXPECT_EQ((1ull << 39) - 1, r[2].last);
  EXPECT_EQ(kPage, c.out_iova_alignment);
}

TEST_F(IommufdDeviceTest, DetachFreesAutoHwptAndReservations) {
  const uint32_t ioas = fd_.IoasAlloc();
  const uint32_t dev2 = Bind(Desc("0000:02:00.0"));
  uint32_t hwpt = 0;
  ASSERT_EQ(0, Attach(dev2, ioas, &hwpt));
  ASSERT_EQ(1u, events_.size());
  EXPECT_NE(nullptr, events_[0]);
  EXPECT_EQ(-EINVAL,
            fd_.MapFixed(ioas, buf_.addr(), kPage, kDirect));  // reserved
  EXPECT_EQ(-EBUSY, fd_.Destroy(ioas));
  fd_.ctx.DetachDevice(dev2);
  ASSERT_EQ(2u, events_.size());
  EXPECT_EQ(nullptr, events_[1]);
  EXPECT_EQ(-ENOENT, fd_.Destroy(hwpt));  // freed with its last device
  EXPECT_EQ(0, fd_.MapFixed(ioas, buf_.addr(), kPage, kDirect));
  fd_.ctx.DetachDevice(dev2);  // detach when not attached: harmless
  EXPECT_EQ(2u, events_.size());
  EXPECT_EQ(0, fd_.Destroy(ioas));
}

TEST_F(IommufdDeviceTest, ApertureConflictIsEaddrinuse) {
  const uint32_t ioas = fd_.IoasAlloc();
  ASSERT_EQ(0, fd_.MapFixed(ioas, buf_.addr(), kPage, 1ull << 40));
  EXPECT_EQ(-EADDRINUSE, Attach(Bind(Desc("0000:03:00.0")), ioas));
  EXPECT_EQ(0, Attach(Bind(Desc("0000:01:00.0")), ioas));
}

TEST_F(IommufdDeviceTest, AllowedRangeOverMsiIsEaddrinuse) {
  const uint32_t ioas = fd_.IoasAlloc();
  ASSERT_EQ(0, fd_.Allow(ioas, {{0xfe000000, 0xfeffffff}}));
  EXPECT_EQ(-EADDRINUSE, Attach(Bind(Desc("0000:01:00.0")), ioas));
}

TEST_F(IommufdDeviceTest, GroupMateOnAnotherHwptIsEinval) {
  IommufdDeviceDesc a = Desc("0000:01:00.0");
  IommufdDeviceDesc b = a;
  a.group = b.group = 7;
  const uint32_t ioas1 = fd_.IoasAlloc(), ioas2 = fd_.IoasAlloc();
  const uint32_t da = Bind(a), db = Bind(b);
  uint32_t ha = 0, hb = 0;
  ASSERT_EQ(0, Attach(da, ioas1, &ha));
  EXPECT_EQ(-EINVAL, Attach(db, ioas2));
  ASSERT_EQ(0, Attach(db, ioas1, &hb));
  EXPECT_EQ(ha, hb);
}

TEST_F(IommufdDeviceTest, DeviceDmaGoesThroughTheDomain) {
  const uint32_t ioas = fd_.IoasAlloc();
  uint64_t iova = 0;
  ASSERT_EQ(0, fd_.Map(ioas, buf_.addr(), kBufferSize, &iova));
  const uint32_t dev = Bind(Desc("0000:01:00.0"));
  ASSERT_EQ(0, Attach(dev, ioas));
  ASSERT_EQ(1u, events_.size());
  auto hva = events_[0]->Translate(iova + 0x10, 64, /*write=*/true);
  ASSERT_TRUE(hva.has_value());
  EXPECT_EQ(buf_.addr() + 0x10, *hva);
  EXPECT_EQ(kBufferSize / kPage, mem_.locked_pages());
  fd_.ctx.UnbindDevice(dev);
  EXPECT_EQ(0u, mem_.locked_pages());
}

TEST_F(IommufdDeviceTest, ReplaceReservesInNewIoasFirst) {
  const uint32_t ioas1 = fd_.IoasAlloc(), ioas2 = fd_.IoasAlloc();
  ASSERT_EQ(0, fd_.MapFixed(ioas2, buf_.addr(), kPage, kDirect));
  const uint32_t dev = Bind(Desc("0000:02:00.0"));
  uint32_t h1 = 0;
  ASSERT_EQ(0, Attach(dev, ioas1, &h1));
  EXPECT_EQ(-EADDRINUSE, Attach(dev, ioas2));
  EXPECT_EQ(h1, fd_.ctx.DeviceHwpt(dev));  // still on the old hwpt
  ASSERT_EQ(0, fd_.Unmap(ioas2, 0, UINT64_MAX));
  uint32_t h2 = 0;
  ASSERT_EQ(0, Attach(dev, ioas2, &h2));
  EXPECT_NE(h1, h2);
  EXPECT_EQ(0, fd_.Destroy(ioas1));  // old auto hwpt gone, reservations too
  EXPECT_EQ(-EINVAL, fd_.MapFixed(ioas2, buf_.addr(), kPage, kDirect));
}

TEST_F(IommufdDeviceTest, AttachErrors) {
  const uint32_t dev = Bind(Desc("0000:01:00.0"));
  EXPECT_EQ(-ENOENT, Attach(dev, 0));
  EXPECT_EQ(-ENOENT, Attach(dev, 99));
  EXPECT_EQ(-EINVAL, Attach(dev, dev));  // a device is not a page table
  uint32_t pt = 1;
  EXPECT_EQ(-ENOENT, fd_.ctx.AttachDevice(42, &pt));
}

TEST_F(IommufdDeviceTest, LegacyGroupAttachesToCompatIoas) {
  const uint32_t dev = Bind(Desc("0000:01:00.0"));
  EXPECT_EQ(-ENODEV, fd_.ctx.AttachDeviceToCompatIoas(dev));
  uint32_t compat = 0;
  ASSERT_EQ(0, fd_.ctx.GetOrCreateCompatIoas(&compat));
  ASSERT_EQ(0, fd_.ctx.AttachDeviceToCompatIoas(dev));
  u::vfio_iommu_type1_dma_map m{
      .argsz = sizeof(m),
      .flags = u::kDmaMapFlagRead | u::kDmaMapFlagWrite,
      .vaddr = buf_.addr(),
      .iova = kMsi,
      .size = kPage};
  EXPECT_EQ(-EINVAL, fd_.Io(u::kVfioIommuMapDma, &m));  // MSI window
  m.iova = 0x100000;
  EXPECT_EQ(0, fd_.Io(u::kVfioIommuMapDma, &m));
  EXPECT_EQ(-EEXIST, fd_.Io(u::kVfioIommuMapDma, &m));
  ASSERT_TRUE(
      fd_.ctx.DeviceDomain(dev)->Translate(0x100000, 8, false).has_value());
}

TEST_F(IommufdDeviceTest, CloseNotifiesAttachedDevices) {
  {
    ProcessMemory mem;
    auto fd = std::make_unique<IommufdFd>(&mem);
    uint32_t ioas = fd->IoasAlloc(), devid = 0;
    ASSERT_EQ(
        0, fd->ctx.BindDevice(
               Desc("0000:01:00.0"),
               [this](HostIommuDomain* d) { events_.push_back(d); }, &devid));
    ASSERT_EQ(0, fd->ctx.AttachDevice(devid, &ioas));
    fd.reset();
  }
  ASSERT_EQ(2u, events_.size());
  EXPECT_EQ(nullptr, events_[1]);
}

TEST_F(IommufdDeviceTest, CdevBindArgs) {
  int32_t iommufd = -1;
  bool token = false;
  struct {
    u::vfio_device_bind_iommufd b;
    uint64_t tail;
  } c{};
  c.b.argsz = 15;
  EXPECT_EQ(-EINVAL, IommufdCtx::CheckBindArgs(AsArg(&c), &iommufd, &token));
  c.b.argsz = sizeof(c);
  c.tail = 1;
  EXPECT_EQ(-E2BIG, IommufdCtx::CheckBindArgs(AsArg(&c), &iommufd, &token));
  c.tail = 0;
  c.b.iommufd = -1;
  EXPECT_EQ(-EINVAL, IommufdCtx::CheckBindArgs(AsArg(&c), &iommufd, &token));
  c.b.iommufd = 5;
  c.b.flags = 2;
  EXPECT_EQ(-EINVAL, IommufdCtx::CheckBindArgs(AsArg(&c), &iommufd, &token));
  c.b.flags = 1;
  EXPECT_EQ(0, IommufdCtx::CheckBindArgs(AsArg(&c), &iommufd, &token));
  EXPECT_EQ(5, iommufd);
  EXPECT_TRUE(token);
}

TEST_F(IommufdDeviceTest, CdevAttachDetachArgs) {
  const uint32_t ioas = fd_.IoasAlloc();
  const uint32_t dev = Bind(Desc("0000:01:00.0"));
  u::vfio_device_attach_iommufd_pt a{
      .argsz = 11, .flags = 0, .pt_id = ioas, .pasid = 0};
  EXPECT_EQ(-EINVAL, fd_.ctx.CdevAttachPt(dev, AsArg(&a)));
  a.argsz = 12;
  a.flags = 2;
  EXPECT_EQ(-EINVAL, fd_.ctx.CdevAttachPt(dev, AsArg(&a)));
  a.flags = 1;
  EXPECT_EQ(-EOPNOTSUPP, fd_.ctx.CdevAttachPt(dev, AsArg(&a)));
  a.flags = 0;
  ASSERT_EQ(0, fd_.ctx.CdevAttachPt(dev, AsArg(&a)));
  EXPECT_EQ(fd_.ctx.DeviceHwpt(dev), a.pt_id);  // the auto hwpt id
  EXPECT_NE(ioas, a.pt_id);
  u::vfio_device_detach_iommufd_pt d{.argsz = 7, .flags = 0, .pasid = 0};
  EXPECT_EQ(-EINVAL, fd_.ctx.CdevDetachPt(dev, AsArg(&d)));
  d.argsz = 8;
  d.flags = 4;
  EXPECT_EQ(-EINVAL, fd_.ctx.CdevDetachPt(dev, AsArg(&d)));
  d.flags = 1;
  EXPECT_EQ(-EOPNOTSUPP, fd_.ctx.CdevDetachPt(dev, AsArg(&d)));
  d.flags = 0;
  EXPECT_EQ(0, fd_.ctx.CdevDetachPt(dev, AsArg(&d)));
  EXPECT_EQ(0u, fd_.ctx.DeviceHwpt(dev));
  EXPECT_EQ(0, fd_.ctx.CdevDetachPt(dev, AsArg(&d)));  // not attached: 0
}

// Random map/copy/unmap/attach/detach: every domain mirrors the areas and
// closing the ctx leaves no pinned page (the selftest teardown check).
TEST(IommufdRandomOps, DomainsMirrorAreasAndNoPinsLeak) {
  ProcessMemory mem;
  Buffer buf(kBufferSize);
  std::mt19937 rng(7);
  {
    IommufdFd fd(&mem);
    const uint32_t ioas = fd.IoasAlloc();
    uint32_t d1 = 0, d2 = 0, hwpt2 = 0;
    ASSERT_EQ(0, fd.ctx.BindDevice(IommufdDeviceDesc::Mock(1), {}, &d1));
    ASSERT_EQ(0, fd.ctx.BindDevice(IommufdDeviceDesc::Mock(2), {}, &d2));
    // Keep automatic IOVAs inside the mock aperture (else EADDRINUSE).
    ASSERT_EQ(0, fd.Allow(ioas, {{kMockApertureStart, kMockApertureLast}}));
    std::vector<std::pair<uint64_t, uint64_t>> areas;  // iova, length
    uint64_t total = 0;
    for (int step = 0; step < 2000; ++step) {
      const uint64_t off = (rng() % 16) * kPage;
      const uint64_t len = (1 + rng() % (16 - off / kPage)) * kPage;
      uint64_t iova = 0;
      switch (rng() % 6) {
        case 0:
        case 1:
          if (fd.Map(ioas, buf.addr() + off, len, &iova) == 0) {
            areas.push_back({iova, len});
            total += len;
          }
          break;
        case 2:
          if (!areas.empty()) {
            const size_t i = rng() % areas.size();
            uint64_t out = 0;
            ASSERT_EQ(0, fd.Unmap(ioas, areas[i].first, areas[i].second, &out));
            ASSERT_EQ(areas[i].second, out);
            total -= out;
            areas.erase(areas.begin() + i);
          }
          break;
        case 3:
          if (!areas.empty()) {
            const auto [src, src_len] = areas[rng() % areas.size()];
            if (fd.Copy(ioas, &iova, ioas, src, src_len, kRW) == 0) {
              areas.push_back({iova, src_len});
              total += src_len;
            }
          }
          break;
        case 4:
          if (fd.ctx.DeviceHwpt(d1) != 0) {
            fd.ctx.DetachDevice(d1);
          } else {
            uint32_t pt = ioas;
            ASSERT_EQ(0, fd.ctx.AttachDevice(d1, &pt));
          }
          break;
        case 5:
          if (hwpt2 != 0) {
            fd.ctx.DetachDevice(d2);
            ASSERT_EQ(0, fd.Destroy(hwpt2));
            hwpt2 = 0;
          } else {
            u::iommu_hwpt_alloc c{};
            c.size = sizeof(c);
            c.dev_id = d2;
            c.pt_id = ioas;
            ASSERT_EQ(0, fd.Io(u::kIommuHwptAlloc, &c));
            hwpt2 = c.out_hwpt_id;
            uint32_t pt = hwpt2;
            ASSERT_EQ(0, fd.ctx.AttachDevice(d2, &pt));
          }
          break;
      }
      for (uint32_t d : {d1, d2}) {
        if (HostIommuDomain* dom = fd.ctx.DeviceDomain(d)) {
          ASSERT_EQ(total, dom->mapped_bytes()) << step;
        }
      }
      const bool any_domain = fd.ctx.DeviceHwpt(d1) || hwpt2;
      ASSERT_EQ(any_domain && total > 0, mem.locked_pages() > 0) << step;
    }
  }
  EXPECT_EQ(0u, mem.locked_pages());
}

}  // namespace
}  // namespace viommu::vfio::model::testing
