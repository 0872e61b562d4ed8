// ModelHost's iommufd side (docs/vfio-iommufd-model.md, ModelHost wiring) with
// the real simulated devices (ModelHostDevice): /dev/iommu fds, the VFIO
// cdev rules row by row (input -> errno), the cdev flow end to end (edu DMA
// through the IOAS), and the legacy group + iommufd path.
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "viommu/vfio/host/model/host_device.h"
#include "viommu/vfio/host/model/model_host.h"

namespace viommu::vfio::model {
namespace {

constexpr uint64_t kBar2 = uint64_t{2} << 40;
constexpr uint64_t kCfg = uint64_t{7} << 40;
constexpr uint64_t kRamSize = 16 * 4096;
constexpr uint64_t kIova = 0x100000;

HostPciAddress Bdf(const char* s) { return *HostPciAddress::Parse(s); }

class ModelHostIommufdTest : public ::testing::Test {
 protected:
  explicit ModelHostIommufdTest(KernelVersion k = KernelVersion::kLatest,
                                HostPlatform p = DefaultHostPlatform())
      : host_(std::move(p),
              {.kernel = k, .device_factory = ModelHostDevice::Factory({})}) {}

  void SetUp() override {
    ram_ = static_cast<uint8_t*>(mmap(nullptr, kRamSize, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(ram_, MAP_FAILED);
    ictx_ = host_.Open("/dev/iommu");
    ASSERT_GE(ictx_, ModelHost::kFirstFd);
  }
  void TearDown() override { munmap(ram_, kRamSize); }

  int Cdev(const char* bdf) {
    return host_.Open(*host_.DeviceCdevPath(Bdf(bdf)));
  }
  int Bind(int cdev, int iommufd, uint32_t flags = 0, uint32_t* devid = nullptr,
           uint32_t argsz = sizeof(uapi::vfio_device_bind_iommufd)) {
    uint8_t buf[32] = {};
    uapi::vfio_device_bind_iommufd b{
        .argsz = argsz, .flags = flags, .iommufd = iommufd};
    std::memcpy(buf, &b, sizeof(b));
    const int rc = host_.Ioctl(cdev, uapi::kVfioDeviceBindIommufd, AsArg(buf));
    std::memcpy(&b, buf, sizeof(b));
    if (devid != nullptr) *devid = b.out_devid;
    return rc;
  }
  uint32_t IoasAlloc() {
    uapi::iommu_ioas_alloc a{.size = sizeof(a)};
    EXPECT_EQ(host_.Ioctl(ictx_, uapi::kIommuIoasAlloc, AsArg(&a)), 0);
    return a.out_ioas_id;
  }
  int IoasMap(uint32_t ioas, uint64_t iova, const void* va, uint64_t len) {
    uapi::iommu_ioas_map m{.size = sizeof(m),
                           .flags = uapi::kIoasMapFixedIova |
                                    uapi::kIoasMapReadable |
                                    uapi::kIoasMapWriteable,
                           .ioas_id = ioas,
                           .user_va = reinterpret_cast<uint64_t>(va),
                           .length = len,
                           .iova = iova};
    return host_.Ioctl(ictx_, uapi::kIommuIoasMap, AsArg(&m));
  }
  int AttachPt(int cdev, uint32_t* pt, uint32_t flags = 0,
               uint32_t argsz = sizeof(uapi::vfio_device_attach_iommufd_pt)) {
    uapi::vfio_device_attach_iommufd_pt a{
        .argsz = argsz, .flags = flags, .pt_id = *pt};
    const int rc =
        host_.Ioctl(cdev, uapi::kVfioDeviceAttachIommufdPt, AsArg(&a));
    *pt = a.pt_id;
    return rc;
  }
  int DetachPt(int cdev, uint32_t flags = 0,
               uint32_t argsz = sizeof(uapi::vfio_device_detach_iommufd_pt)) {
    uapi::vfio_device_detach_iommufd_pt d{.argsz = argsz, .flags = flags};
    return host_.Ioctl(cdev, uapi::kVfioDeviceDetachIommufdPt, AsArg(&d));
  }
  int SetContainer(int group, int fd) {
    return host_.Ioctl(group, uapi::kVfioGroupSetContainer, AsArg(&fd));
  }
  // A bound cdev of 0000:01:00.0 attached to a new IOAS mapping ram_ at
  // kIova; memory decode and bus master on.
  int BoundAndAttached(uint32_t* ioas_out = nullptr) {
    const int cdev = Cdev("0000:01:00.0");
    EXPECT_EQ(Bind(cdev, ictx_), 0);
    uint32_t ioas = IoasAlloc();
    EXPECT_EQ(IoasMap(ioas, kIova, ram_, kRamSize), 0);
    uint32_t pt = ioas;
    EXPECT_EQ(AttachPt(cdev, &pt), 0);
    EnableDma(cdev);
    if (ioas_out != nullptr) *ioas_out = ioas;
    return cdev;
  }
  void EnableDma(int devfd) {
    const uint16_t cmd = 0x6;  // MEMORY | MASTER
    ASSERT_EQ(host_.Pwrite(devfd, &cmd, 2, kCfg + 4), 2);
  }
  void Bar0(int devfd, uint64_t off, uint64_t v) {
    ASSERT_EQ(host_.Pwrite(devfd, &v, 8, off), 8);
  }
  // edu DMA (cmd 1: RAM -> buffer, 3: buffer -> RAM), run at the write.
  void Dma(int devfd, uint64_t src, uint64_t dst, uint64_t n, uint64_t cmd) {
    Bar0(devfd, 0x80, src);
    Bar0(devfd, 0x88, dst);
    Bar0(devfd, 0x90, n);
    Bar0(devfd, 0x98, cmd);
  }
  ModelHostDevice* Dev(const char* bdf) {
    return static_cast<ModelHostDevice*>(host_.device(Bdf(bdf)));
  }

  ModelHost host_;
  uint8_t* ram_ = nullptr;
  int ictx_ = -1;
};

// ---- /dev/iommu and cdev open ----

TEST_F(ModelHostIommufdTest, IommufdFdForwardsToItsOwnCtx) {
  const int other = host_.Open("/dev/iommu");
  EXPECT_EQ(IoasAlloc(), 1u);
  uapi::iommu_ioas_alloc a{.size = sizeof(a)};
  ASSERT_EQ(host_.Ioctl(other, uapi::kIommuIoasAlloc, AsArg(&a)), 0);
  EXPECT_EQ(a.out_ioas_id, 1u) << "ids are per ctx";
  EXPECT_EQ(
      host_.Ioctl(ictx_, uapi::kVfioCheckExtension, uapi::kVfioType1v2Iommu),
      1);
  EXPECT_EQ(host_.IommufdFds(), (std::vector<int>{ictx_, other}));
  EXPECT_EQ(host_.Close(other), 0);
  EXPECT_EQ(host_.IommufdFds(), (std::vector<int>{ictx_}));
}

TEST_F(ModelHostIommufdTest, CdevPathsAreCanonicalPlatformIndices) {
  EXPECT_EQ(*host_.DeviceCdevPath(Bdf("0000:02:00.0")),
            "/dev/vfio/devices/vfio1");
  EXPECT_GE(host_.Open("/dev/vfio/devices/vfio2"), ModelHost::kFirstFd);
  EXPECT_EQ(host_.Open("/dev/vfio/devices/vfio3"), -ENOENT);
  EXPECT_EQ(host_.Open("/dev/vfio/devices/vfio01"), -ENOENT);
  EXPECT_EQ(host_.Open("/dev/vfio/devices/vfio"), -ENOENT);
  EXPECT_EQ(host_.Open("/dev/vfio/devices/dev0"), -ENOENT);
  // Many cdev fds of one device may be open.
  EXPECT_GE(Cdev("0000:01:00.0"), 0);
  EXPECT_GE(Cdev("0000:01:00.0"), 0);
}

TEST_F(ModelHostIommufdTest, BeforeBindEveryCallIsEinval) {
  const int cdev = Cdev("0000:01:00.0");
  uapi::vfio_device_info di{.argsz = sizeof(di)};
  EXPECT_EQ(host_.Ioctl(cdev, uapi::kVfioDeviceGetInfo, AsArg(&di)), -EINVAL);
  uapi::vfio_region_info ri{.argsz = sizeof(ri), .index = 2};
  EXPECT_EQ(host_.Ioctl(cdev, uapi::kVfioDeviceGetRegionInfo, AsArg(&ri)),
            -EINVAL);
  EXPECT_EQ(host_.Ioctl(cdev, uapi::kVfioDeviceReset, 0), -EINVAL);
  uint32_t pt = 1;
  EXPECT_EQ(AttachPt(cdev, &pt), -EINVAL);
  EXPECT_EQ(DetachPt(cdev), -EINVAL);
  EXPECT_EQ(host_.Ioctl(cdev, 0x3b00 + 200, 0), -EINVAL) << "unknown";
  uint32_t v = 0;
  EXPECT_EQ(host_.Pread(cdev, &v, 4, kCfg), -EINVAL);
  EXPECT_EQ(host_.Pwrite(cdev, &v, 4, kCfg + 4), -EINVAL);
  EXPECT_EQ(host_.Mmap(cdev, 4096, kBar2).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- BIND_IOMMUFD, in the order of §4.14 ----

TEST_F(ModelHostIommufdTest, BindArgumentRows) {
  const int container = host_.Open("/dev/vfio/vfio");
  const int cdev = Cdev("0000:01:00.0");
  struct Row {
    uint32_t argsz, flags;
    int32_t iommufd;
    int want;
  };
  const Row rows[] = {
      {15, 0, ictx_, -EINVAL},      // (1) argsz < 16
      {16, 0, -1, -EINVAL},         // (3) iommufd < 0
      {24, 2, ictx_, -EINVAL},      // (3) unknown flag
      {24, 1, ictx_, -EINVAL},      // (7) token: the driver has none
      {24, 0, 4242, -EBADF},        // (8) not an open fd
      {24, 0, container, -EBADFD},  // (8) not an iommufd
      {24, 0, cdev, -EBADFD},       // (8) ... nor is a cdev
      {15, 1, 4242, -EINVAL},       // (1) before (7) and (8)
      {24, 1, 4242, -EINVAL},       // (7) before (8)
  };
  for (const Row& r : rows) {
    EXPECT_EQ(Bind(cdev, r.iommufd, r.flags, nullptr, r.argsz), r.want)
        << "argsz " << r.argsz << " flags " << r.flags << " fd " << r.iommufd;
  }
  // A minimal 16-byte struct binds; out_devid is at offset 12.
  uint32_t devid = 0;
  EXPECT_EQ(Bind(cdev, ictx_, 0, &devid, 16), 0);
  EXPECT_NE(devid, 0u);
}

TEST_F(ModelHostIommufdTest, BindNonZeroTailIsE2big) {
  const int cdev = Cdev("0000:01:00.0");
  uint8_t buf[40] = {};
  uapi::vfio_device_bind_iommufd b{.argsz = 40, .iommufd = ictx_};
  std::memcpy(buf, &b, sizeof(b));
  buf[33] = 1;
  EXPECT_EQ(host_.Ioctl(cdev, uapi::kVfioDeviceBindIommufd, AsArg(buf)),
            -E2BIG);
  buf[33] = 0;
  EXPECT_EQ(host_.Ioctl(cdev, uapi::kVfioDeviceBindIommufd, AsArg(buf)), 0);
}

TEST_F(ModelHostIommufdTest, BindOnGroupPathDeviceFdIsEinval) {
  const int group = host_.Open("/dev/vfio/1");
  ASSERT_EQ(SetContainer(group, ictx_), 0);
  const int dev =
      host_.Ioctl(group, uapi::kVfioGroupGetDeviceFd, AsArg("0000:01:00.0"));
  ASSERT_GE(dev, 0);
  EXPECT_EQ(Bind(dev, ictx_, 0, nullptr, 15), -EINVAL);  // (1)
  EXPECT_EQ(Bind(dev, ictx_), -EINVAL);                  // (4)
  // The cdev-only ioctls are not the group-path fd's: vfio-pci's ENOTTY.
  uint32_t pt = 1;
  EXPECT_EQ(AttachPt(dev, &pt), -ENOTTY);
}

TEST_F(ModelHostIommufdTest, BindWhileTheGroupFdIsOpenIsEbusy) {
  const int group = host_.Open("/dev/vfio/1");
  ASSERT_GE(group, 0);
  const int cdev = Cdev("0000:01:00.0");
  ASSERT_GE(cdev, 0) << "opening the cdev itself succeeds";
  EXPECT_EQ(Bind(cdev, ictx_), -EBUSY);
  EXPECT_EQ(Bind(cdev, 4242), -EBUSY) << "(5) before (8)";
  EXPECT_EQ(Bind(cdev, ictx_, 1), -EBUSY) << "(5) before (7)";
  ASSERT_EQ(host_.Close(group), 0);
  EXPECT_EQ(Bind(cdev, ictx_), 0);
}

TEST_F(ModelHostIommufdTest, GroupOpenWhileACdevIsBoundIsEbusy) {
  const int cdev = Cdev("0000:01:00.0");
  ASSERT_EQ(Bind(cdev, ictx_), 0);
  EXPECT_EQ(host_.Open("/dev/vfio/1"), -EBUSY);
  EXPECT_GE(host_.Open("/dev/vfio/2"), 0) << "other groups are free";
  ASSERT_EQ(host_.Close(cdev), 0);
  EXPECT_GE(host_.Open("/dev/vfio/1"), 0) << "close unbinds";
}

TEST_F(ModelHostIommufdTest, UnboundCdevDoesNotBlockTheGroup) {
  ASSERT_GE(Cdev("0000:01:00.0"), 0);
  EXPECT_GE(host_.Open("/dev/vfio/1"), 0);
}

TEST_F(ModelHostIommufdTest, SecondBindIsEinval) {
  const int cdev = Cdev("0000:01:00.0");
  ASSERT_EQ(Bind(cdev, ictx_), 0);
  EXPECT_EQ(Bind(cdev, ictx_), -EINVAL);     // (6)
  EXPECT_EQ(Bind(cdev, ictx_, 1), -EINVAL);  // (6) before (7)
  const int other = host_.Open("/dev/iommu");
  EXPECT_EQ(Bind(cdev, other), -EINVAL) << "not even to another ctx";
}

TEST_F(ModelHostIommufdTest, DeviceBoundThroughAnotherCdevIsEinval) {
  const int a = Cdev("0000:01:00.0");
  const int b = Cdev("0000:01:00.0");
  ASSERT_EQ(Bind(a, ictx_), 0);
  EXPECT_EQ(Bind(b, 4242), -EBADF) << "(8) before (9)";
  EXPECT_EQ(Bind(b, ictx_), -EINVAL);  // (9)
  ASSERT_EQ(host_.Close(a), 0);
  EXPECT_EQ(Bind(b, ictx_), 0);
}

TEST_F(ModelHostIommufdTest, BindHoldsTheCtxAfterTheIommufdFdCloses) {
  uint32_t ioas = 0;
  const int cdev = BoundAndAttached(&ioas);
  ASSERT_EQ(host_.Close(ictx_), 0);
  EXPECT_TRUE(host_.IommufdFds().empty());
  // The ctx lives on with the binding (as the kernel's file reference).
  std::memcpy(ram_ + 0x1000, "kept", 5);
  Dma(cdev, kIova + 0x1000, 0x40000, 5, 0x1);
  EXPECT_EQ(Dev("0000:01:00.0")->iommu_fault_count(), 0u);
  EXPECT_GT(host_.locked_pages(), 0u);
  ASSERT_EQ(host_.Close(cdev), 0);
  EXPECT_EQ(host_.locked_pages(), 0u) << "the last reference destroyed it";
  EXPECT_EQ(Dev("0000:01:00.0")->domain(), nullptr);
}

// ---- ATTACH / DETACH_IOMMUFD_PT ----

TEST_F(ModelHostIommufdTest, AttachRows) {
  const int cdev = Cdev("0000:01:00.0");
  ASSERT_EQ(Bind(cdev, ictx_), 0);
  const uint32_t ioas = IoasAlloc();
  uint32_t pt = ioas;
  EXPECT_EQ(AttachPt(cdev, &pt, 0, 11), -EINVAL);  // argsz < 12
  EXPECT_EQ(AttachPt(cdev, &pt, 2), -EINVAL);      // unknown flag
  EXPECT_EQ(AttachPt(cdev, &pt, 1), -EOPNOTSUPP);  // PASID
  pt = 77;
  EXPECT_EQ(AttachPt(cdev, &pt), -ENOENT);  // unknown pt_id
  pt = ioas;
  EXPECT_EQ(AttachPt(cdev, &pt, 0, 12), 0);
  EXPECT_NE(pt, ioas) << "the auto hwpt id is written back";
  EXPECT_NE(host_.DeviceDmaDomain(Bdf("0000:01:00.0")), nullptr);
  EXPECT_EQ(Dev("0000:01:00.0")->domain(),
            host_.DeviceDmaDomain(Bdf("0000:01:00.0")));
  uint32_t again = ioas;
  EXPECT_EQ(AttachPt(cdev, &again), 0) << "a second attach is a replace";
  EXPECT_EQ(again, pt);
}

TEST_F(ModelHostIommufdTest, DetachRows) {
  const int cdev = Cdev("0000:01:00.0");
  ASSERT_EQ(Bind(cdev, ictx_), 0);
  EXPECT_EQ(DetachPt(cdev), 0) << "not attached: still 0";
  EXPECT_EQ(DetachPt(cdev, 0, 7), -EINVAL);
  EXPECT_EQ(DetachPt(cdev, 2), -EINVAL);
  EXPECT_EQ(DetachPt(cdev, 1), -EOPNOTSUPP);
  uint32_t pt = IoasAlloc();
  ASSERT_EQ(AttachPt(cdev, &pt), 0);
  EXPECT_EQ(DetachPt(cdev, 0, 8), 0);
  EXPECT_EQ(Dev("0000:01:00.0")->domain(), nullptr);
}

TEST_F(ModelHostIommufdTest, BoundCdevAnswersTheDeviceIoctls) {
  const int cdev = Cdev("0000:01:00.0");
  ASSERT_EQ(Bind(cdev, ictx_), 0);
  uapi::vfio_device_info di{.argsz = sizeof(di)};
  ASSERT_EQ(host_.Ioctl(cdev, uapi::kVfioDeviceGetInfo, AsArg(&di)), 0);
  EXPECT_EQ(di.num_regions, uapi::kPciNumRegions);
  uapi::vfio_region_info ri{.argsz = sizeof(ri), .index = 2};
  ASSERT_EQ(host_.Ioctl(cdev, uapi::kVfioDeviceGetRegionInfo, AsArg(&ri)), 0);
  EXPECT_EQ(ri.offset, kBar2);
  uapi::vfio_irq_info ii{.argsz = sizeof(ii), .index = 1};
  ASSERT_EQ(host_.Ioctl(cdev, uapi::kVfioDeviceGetIrqInfo, AsArg(&ii)), 0);
  EXPECT_EQ(ii.count, 1u);
  EXPECT_EQ(host_.Ioctl(cdev, uapi::kVfioDeviceReset, 0), 0);
  uint32_t id = 0;
  ASSERT_EQ(host_.Pread(cdev, &id, 4, kCfg), 4);
  EXPECT_EQ(id, 0x11e81234u);
  absl::StatusOr<void*> bar = host_.Mmap(cdev, 4096, kBar2);
  ASSERT_TRUE(bar.ok()) << bar.status();
  host_.Munmap(*bar, 4096);
}

// ---- end to end with the simulated device ----

TEST_F(ModelHostIommufdTest, EduDmaLandsThroughTheIoas) {
  const int cdev = BoundAndAttached();
  std::memcpy(ram_ + 0x1000, "through iommufd", 16);
  Dma(cdev, kIova + 0x1000, 0x40000, 16, 0x1);
  Dma(cdev, 0x40000, kIova + 0x3000, 16, 0x3);
  EXPECT_STREQ(reinterpret_cast<char*>(ram_ + 0x3000), "through iommufd");
  EXPECT_EQ(Dev("0000:01:00.0")->completed_dma_count(), 2u);
  EXPECT_EQ(Dev("0000:01:00.0")->iommu_fault_count(), 0u);
}

TEST_F(ModelHostIommufdTest, UnmappedIovaFaults) {
  const int cdev = BoundAndAttached();
  Dma(cdev, 0x40000, 0x2000000, 8, 0x3);
  EXPECT_EQ(Dev("0000:01:00.0")->iommu_fault_count(), 1u);
  EXPECT_EQ(Dev("0000:01:00.0")->last_fault_iova(), 0x2000000u);
  ASSERT_EQ(DetachPt(cdev), 0);
  Dma(cdev, 0x40000, kIova, 8, 0x3);
  EXPECT_EQ(Dev("0000:01:00.0")->iommu_fault_count(), 2u)
      << "detached: DMA is blocked";
}

TEST_F(ModelHostIommufdTest, Bar2MmapCannotBeMappedOnceADomainExists) {
  uint32_t ioas = 0;
  BoundAndAttached(&ioas);
  const int other = Cdev("0000:02:00.0");
  ASSERT_EQ(Bind(other, ictx_), 0);
  absl::StatusOr<void*> bar = host_.Mmap(other, 1 << 20, kBar2);
  ASSERT_TRUE(bar.ok()) << bar.status();
  EXPECT_EQ(IoasMap(ioas, 0x800000, *bar, 1 << 20), -EFAULT);
  EXPECT_EQ(*host_.IoasMappingCount(ictx_, ioas), 1u);
  // Without a domain the map is accepted and the fault comes at attach.
  const uint32_t bare = IoasAlloc();
  EXPECT_EQ(IoasMap(bare, 0x800000, *bar, 1 << 20), 0);
  uint32_t pt = bare;
  EXPECT_EQ(AttachPt(other, &pt), -EFAULT);
  host_.Munmap(*bar, 1 << 20);
}

TEST_F(ModelHostIommufdTest, DirectRegionOverAnAreaIsEaddrinuse) {
  const int cdev = Cdev("0000:02:00.0");
  ASSERT_EQ(Bind(cdev, ictx_), 0);
  const uint32_t ioas = IoasAlloc();
  ASSERT_EQ(IoasMap(ioas, 0x0f000000 - 0x4000, ram_, 0x8000), 0);
  uint32_t pt = ioas;
  EXPECT_EQ(AttachPt(cdev, &pt), -EADDRINUSE);
  EXPECT_EQ(Dev("0000:02:00.0")->domain(), nullptr);
  // 0000:01:00.0 has no such region.
  const int ok = Cdev("0000:01:00.0");
  ASSERT_EQ(Bind(ok, ictx_), 0);
  EXPECT_EQ(AttachPt(ok, &pt), 0);
}

TEST_F(ModelHostIommufdTest, MappingCountAccessors) {
  uint32_t ioas = 0;
  BoundAndAttached(&ioas);
  ASSERT_EQ(IoasMap(ioas, 0x400000, ram_, 0x1000), 0);
  EXPECT_EQ(*host_.IoasMappingCount(ictx_, ioas), 2u);
  EXPECT_EQ(*host_.IoasIds(ictx_), std::vector<uint32_t>{ioas});
  EXPECT_EQ(host_.IoasMappingCount(ictx_, 99).status().code(),
            absl::StatusCode::kNotFound);
  const int container = host_.Open("/dev/vfio/vfio");
  EXPECT_EQ(host_.IoasMappingCount(container, ioas).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(host_.IoasIds(container).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(host_.Iommufd(container), nullptr);
}

// ---- legacy group + iommufd (§3.2) ----

TEST_F(ModelHostIommufdTest, LegacyGroupWithIommufdAttachesToTheCompatIoas) {
  const int group = host_.Open("/dev/vfio/1");
  ASSERT_EQ(SetContainer(group, ictx_), 0);
  uapi::vfio_group_status st{.argsz = sizeof(st)};
  ASSERT_EQ(host_.Ioctl(group, uapi::kVfioGroupGetStatus, AsArg(&st)), 0);
  EXPECT_EQ(st.flags, uapi::kGroupFlagsViable | uapi::kGroupFlagsContainerSet);
  EXPECT_EQ(SetContainer(group, ictx_), -EINVAL) << "already set";
  EXPECT_EQ(SetContainer(group, host_.Open("/dev/vfio/vfio")), -EINVAL);
  uapi::iommu_vfio_ioas vi{.size = sizeof(vi), .op = uapi::kIommuVfioIoasGet};
  ASSERT_EQ(host_.Ioctl(ictx_, uapi::kIommuVfioIoas, AsArg(&vi)), 0);
  // No SET_IOMMU needed: map through the compat numbers on /dev/iommu.
  uapi::vfio_iommu_type1_dma_map map{
      .argsz = sizeof(map),
      .flags = uapi::kDmaMapFlagRead | uapi::kDmaMapFlagWrite,
      .vaddr = reinterpret_cast<uint64_t>(ram_),
      .iova = kIova,
      .size = kRamSize};
  ASSERT_EQ(host_.Ioctl(ictx_, uapi::kVfioIommuMapDma, AsArg(&map)), 0);
  const int dev =
      host_.Ioctl(group, uapi::kVfioGroupGetDeviceFd, AsArg("0000:01:00.0"));
  ASSERT_GE(dev, 0);
  EXPECT_NE(Dev("0000:01:00.0")->domain(), nullptr);
  EXPECT_EQ(*host_.IoasMappingCount(ictx_, vi.ioas_id), 1u);
  EnableDma(dev);
  std::memcpy(ram_, "compat", 7);
  Dma(dev, kIova, 0x40000, 7, 0x1);
  Dma(dev, 0x40000, kIova + 0x2000, 7, 0x3);
  EXPECT_STREQ(reinterpret_cast<char*>(ram_ + 0x2000), "compat");
  // A second device fd shares the binding; the last close unbinds.
  const int dev2 =
      host_.Ioctl(group, uapi::kVfioGroupGetDeviceFd, AsArg("0000:01:00.0"));
  ASSERT_GE(dev2, 0);
  ASSERT_EQ(host_.Close(dev), 0);
  EXPECT_NE(Dev("0000:01:00.0")->domain(), nullptr);
  ASSERT_EQ(host_.Close(dev2), 0);
  EXPECT_EQ(Dev("0000:01:00.0")->domain(), nullptr);
  EXPECT_EQ(host_.Iommufd(ictx_)->object_count(), 1u) << "only the IOAS";
}

TEST_F(ModelHostIommufdTest, GetDeviceFdWithoutCompatIoasIsEnodev) {
  const int group = host_.Open("/dev/vfio/1");
  ASSERT_EQ(SetContainer(group, ictx_), 0);
  uapi::iommu_vfio_ioas vi{.size = sizeof(vi), .op = uapi::kIommuVfioIoasClear};
  ASSERT_EQ(host_.Ioctl(ictx_, uapi::kIommuVfioIoas, AsArg(&vi)), 0);
  EXPECT_EQ(
      host_.Ioctl(group, uapi::kVfioGroupGetDeviceFd, AsArg("0000:01:00.0")),
      -ENODEV);
  EXPECT_EQ(host_.Iommufd(ictx_)->object_count(), 1u) << "bind undone";
  EXPECT_EQ(
      host_.Ioctl(group, uapi::kVfioGroupGetDeviceFd, AsArg("0000:09:00.0")),
      -ENODEV);
}

TEST_F(ModelHostIommufdTest, SetContainerFdRows) {
  const int group = host_.Open("/dev/vfio/1");
  EXPECT_EQ(host_.Ioctl(group, uapi::kVfioGroupSetContainer, 0), -EFAULT);
  EXPECT_EQ(SetContainer(group, 4242), -EBADF);
  EXPECT_EQ(SetContainer(group, Cdev("0000:02:00.0")), -EBADFD);
  EXPECT_EQ(SetContainer(group, host_.Open("/dev/vfio/2")), -EBADFD);
  EXPECT_EQ(
      host_.Ioctl(group, uapi::kVfioGroupGetDeviceFd, AsArg("0000:01:00.0")),
      -EINVAL)
      << "no container nor iommufd";
}

class ModelHostIommufd61Test : public ModelHostIommufdTest {
 protected:
  ModelHostIommufd61Test() : ModelHostIommufdTest(KernelVersion::k6_1) {}
};

TEST_F(ModelHostIommufd61Test, SetContainerForeignFdIsEinval) {
  const int group = host_.Open("/dev/vfio/1");
  EXPECT_EQ(SetContainer(group, Cdev("0000:02:00.0")), -EINVAL);
  EXPECT_EQ(SetContainer(group, ictx_), 0);
}

TEST_F(ModelHostIommufdTest, UnsetContainerKeepsTheBoundDevice) {
  const int group = host_.Open("/dev/vfio/1");
  ASSERT_EQ(SetContainer(group, ictx_), 0);
  const int dev =
      host_.Ioctl(group, uapi::kVfioGroupGetDeviceFd, AsArg("0000:01:00.0"));
  ASSERT_GE(dev, 0);
  // No EBUSY with an iommufd: the device holds its own reference.
  EXPECT_EQ(host_.Ioctl(group, uapi::kVfioGroupUnsetContainer, 0), 0);
  EXPECT_NE(Dev("0000:01:00.0")->domain(), nullptr);
  // The group's DMA owner is still claimed: not viable (Linux 6.12).
  uapi::vfio_group_status st{.argsz = sizeof(st), .flags = 0xff};
  ASSERT_EQ(host_.Ioctl(group, uapi::kVfioGroupGetStatus, AsArg(&st)), 0);
  EXPECT_EQ(st.flags, 0u);
  EXPECT_EQ(
      host_.Ioctl(group, uapi::kVfioGroupGetDeviceFd, AsArg("0000:01:00.0")),
      -EINVAL);
  // Its DMA owner is the ctx: a type1 container cannot claim the group.
  EXPECT_EQ(SetContainer(group, host_.Open("/dev/vfio/vfio")), -EPERM);
  ASSERT_EQ(host_.Close(dev), 0);
  EXPECT_EQ(Dev("0000:01:00.0")->domain(), nullptr);
  ASSERT_EQ(host_.Ioctl(group, uapi::kVfioGroupGetStatus, AsArg(&st)), 0);
  EXPECT_EQ(st.flags, uapi::kGroupFlagsViable);
}

// Linux 6.12 (measured by the real-kernel suite): its iommufd ioctl table
// ends at FAULT_QUEUE_ALLOC (0x8e) and BIND_IOMMUFD ignores a tail.
class ModelHostIommufd612Test : public ModelHostIommufdTest {
 protected:
  ModelHostIommufd612Test() : ModelHostIommufdTest(KernelVersion::k6_12) {}
};

TEST_F(ModelHostIommufd612Test, IoctlTableEndsAtFaultQueueAlloc) {
  EXPECT_EQ(host_.Ioctl(ictx_, uapi::IoNr(0x8e), 0), -EFAULT);
  EXPECT_EQ(host_.Ioctl(ictx_, uapi::IoNr(0x8f), 0), -ENOTTY);
  EXPECT_EQ(host_.Ioctl(ictx_, uapi::IoNr(0x94), 0), -ENOTTY);
  ModelHost latest(DefaultHostPlatform(), {.kernel = KernelVersion::kLatest});
  const int f = latest.Open("/dev/iommu");
  ASSERT_GE(f, 0);
  EXPECT_EQ(latest.Ioctl(f, uapi::IoNr(0x8f), 0), -EFAULT) << "VIOMMU_ALLOC";
}

TEST_F(ModelHostIommufd612Test, BindIgnoresANonZeroTail) {
  const int cdev = Cdev("0000:01:00.0");
  uint8_t buf[40] = {};
  uapi::vfio_device_bind_iommufd b{.argsz = 40, .iommufd = ictx_};
  std::memcpy(buf, &b, sizeof(b));
  buf[33] = 1;
  EXPECT_EQ(host_.Ioctl(cdev, uapi::kVfioDeviceBindIommufd, AsArg(buf)), 0);
  std::memcpy(&b, buf, sizeof(b));
  EXPECT_NE(b.out_devid, 0u);
}

// Two devices in one group: the group's DMA has one owner.
class ModelHostIommufdSharedGroupTest : public ModelHostIommufdTest {
 protected:
  static HostPlatform SharedGroup() {
    HostPlatform p = DefaultHostPlatform();
    p.devices[2].group = 1;  // 0000:03:00.0 joins group 1
    return p;
  }
  ModelHostIommufdSharedGroupTest()
      : ModelHostIommufdTest(KernelVersion::kLatest, SharedGroup()) {}
};

TEST_F(ModelHostIommufdSharedGroupTest, GroupMateOnAnotherCtxIsEperm) {
  const int a = Cdev("0000:01:00.0");
  const int b = Cdev("0000:03:00.0");
  ASSERT_EQ(Bind(a, ictx_), 0);
  EXPECT_EQ(Bind(b, host_.Open("/dev/iommu")), -EPERM);
  EXPECT_EQ(Bind(b, ictx_), 0);
  ASSERT_EQ(host_.Close(a), 0);
  EXPECT_EQ(host_.Open("/dev/vfio/1"), -EBUSY) << "b is still bound";
}

}  // namespace
}  // namespace viommu::vfio::model
