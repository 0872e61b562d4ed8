// The C API's I/O port space: VIOMMU_REGION_F_IO regions and
// viommu_pio_access, beside (and apart from) guest-physical memory.
#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/capi/capi_fixture.h"
#include "viommu.h"

namespace viommu::capi::testing {
namespace {

using CapiPioTest = CapiTest;

// A port device recording its accesses.
struct Ports : RecordingDevice {
  Ports() { value = 0xa1b2c3d4; }
};

viommu_region PortRegion(uint64_t port, uint64_t len, Ports* p) {
  return CallbackRegion(port, len, p, VIOMMU_REGION_F_IO, "ports");
}

TEST_F(CapiPioTest, PioAccessReachesTheIoRegionsCallbacksAtTheirOffset) {
  Ports p;
  viommu_region r = PortRegion(0xcf8, 8, &p);
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  EXPECT_NE(id, 0u);
  uint32_t v = 0x80000010;
  ASSERT_EQ(viommu_pio_access(ctx_, 0xcf8, &v, 4, 1), 0);
  v = 0;
  ASSERT_EQ(viommu_pio_access(ctx_, 0xcfe, &v, 2, 0), 0);
  EXPECT_EQ(v, 0xc3d4u);  // the low 2 bytes of the callback's value
  v = 0x7f;
  ASSERT_EQ(viommu_pio_access(ctx_, 0xcfd, &v, 1, 1), 0);
  ASSERT_EQ(p.log.size(), 3u);
  EXPECT_EQ(p.log[0], "w 0/4=2147483664");
  EXPECT_EQ(p.log[1], "r 6/2");
  EXPECT_EQ(p.log[2], "w 5/1=127");
}

TEST_F(CapiPioTest, PortsThatAreNotOursAreEnoent) {
  Ports p;
  viommu_region r = PortRegion(0x3f8, 8, &p);
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  uint32_t v = 0;
  EXPECT_EQ(viommu_pio_access(ctx_, 0x3f7, &v, 1, 0), -ENOENT);
  EXPECT_EQ(viommu_pio_access(ctx_, 0x400, &v, 1, 1), -ENOENT);
  EXPECT_EQ(viommu_pio_access(ctx_, 0x60, &v, 1, 0), -ENOENT);
  EXPECT_TRUE(p.log.empty());
}

TEST_F(CapiPioTest, IoSpaceAndMemoryAreSeparate) {
  AddRam();  // guest-physical [0, 16 MiB)
  Ports p;
  viommu_region r = PortRegion(0x100, 0x10, &p);
  uint32_t id = 0;
  // Port 0x100 does not clash with the RAM at guest-physical 0x100.
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  ram_[0x100] = 0x5a;
  uint64_t m = 0;
  ASSERT_EQ(viommu_mmio_access(ctx_, 0x100, &m, 1, 0), 0);
  EXPECT_EQ(m, 0x5au);
  EXPECT_TRUE(p.log.empty());
  uint32_t v = 0;
  ASSERT_EQ(viommu_pio_access(ctx_, 0x100, &v, 1, 0), 0);
  EXPECT_EQ(v, 0xd4u);
  // Nothing of the I/O space is reachable by DMA or the memory exit.
  EXPECT_EQ(viommu_mmio_access(ctx_, 0x2000'0100, &m, 1, 0), -ENOENT);
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, nullptr, &ep), 0);
  uint8_t b = 0;
  ASSERT_EQ(viommu_dma_rw(ep, 0x100, &b, 1, VIOMMU_DMA_READ, nullptr), 0);
  EXPECT_EQ(b, 0x5a);
  EXPECT_EQ(p.log.size(), 1u);
}

TEST_F(CapiPioTest, OverlappingIoRegionsAreEexistAndDelFreesThePorts) {
  Ports p;
  viommu_region a = PortRegion(0x70, 2, &p);
  viommu_region b = PortRegion(0x71, 4, &p);
  uint32_t ida = 0, idb = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &a, &ida), 0);
  EXPECT_EQ(viommu_region_add(ctx_, &b, &idb), -EEXIST);
  ASSERT_EQ(viommu_region_del(ctx_, ida), 0);
  uint32_t v = 0;
  EXPECT_EQ(viommu_pio_access(ctx_, 0x70, &v, 1, 0), -ENOENT);
  ASSERT_EQ(viommu_region_add(ctx_, &b, &idb), 0);
  EXPECT_EQ(viommu_pio_access(ctx_, 0x71, &v, 1, 0), 0);
}

TEST_F(CapiPioTest, MalformedIoRegionsAreEinval) {
  Ports p;
  uint32_t id = 0;
  viommu_region r = PortRegion(0xfffe, 4, &p);  // passes port 0xffff
  EXPECT_EQ(viommu_region_add(ctx_, &r, &id), -EINVAL);
  r = PortRegion(0x1'0000, 1, &p);
  EXPECT_EQ(viommu_region_add(ctx_, &r, &id), -EINVAL);
  r = PortRegion(0xfff0, 0x10, &p);  // ends exactly at 0xffff: fine
  EXPECT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  viommu_region ram{};
  ram.size = sizeof(ram);
  ram.kind = VIOMMU_REGION_RAM;
  ram.flags = VIOMMU_REGION_F_IO;  // RAM has no place in the I/O space
  ram.len = 0x1000;
  ram.hva = ram_;
  ram.fd = -1;
  EXPECT_EQ(viommu_region_add(ctx_, &ram, &id), -EINVAL);
  EXPECT_TRUE(rec_.LogContains("F_IO"));
}

TEST_F(CapiPioTest, BadPioAccessesAreEinvalAndCallbackErrorsEio) {
  Ports p;
  viommu_region r = PortRegion(0xfff0, 0x10, &p);
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  uint32_t v = 0;
  EXPECT_EQ(viommu_pio_access(ctx_, 0xfff0, &v, 8, 0), -EINVAL);
  EXPECT_EQ(viommu_pio_access(ctx_, 0xfff0, &v, 3, 0), -EINVAL);
  EXPECT_EQ(viommu_pio_access(ctx_, 0xfff0, nullptr, 4, 0), -EINVAL);
  EXPECT_EQ(viommu_pio_access(ctx_, 0xfffe, &v, 4, 0), -EINVAL);
  EXPECT_EQ(viommu_pio_access(nullptr, 0, &v, 1, 0), -EINVAL);
  p.result = 1;
  v = 0xffff;
  EXPECT_EQ(viommu_pio_access(ctx_, 0xfff0, &v, 2, 0), -EIO);
  EXPECT_EQ(v, 0u);
  EXPECT_EQ(viommu_pio_access(ctx_, 0xfff0, &v, 2, 1), -EIO);
}

TEST_F(CapiPioTest, PioAccessFromACallbackIsEdeadlk) {
  struct Reentrant {
    viommu_ctx* ctx;
    int inner = 1;
    static int Read(void* opaque, uint64_t, uint64_t* data, uint32_t) {
      auto* self = static_cast<Reentrant*>(opaque);
      uint32_t v = 0;
      self->inner = viommu_pio_access(self->ctx, 0x80, &v, 1, 0);
      *data = 0;
      return 0;
    }
    static int Write(void*, uint64_t, uint64_t, uint32_t) { return 0; }
  } re{ctx_};
  viommu_region r{};
  r.size = sizeof(r);
  r.kind = VIOMMU_REGION_MMIO;
  r.flags = VIOMMU_REGION_F_IO;
  r.gpa = 0x80;
  r.len = 1;
  r.read = &Reentrant::Read;
  r.write = &Reentrant::Write;
  r.opaque = &re;
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  uint32_t v = 0;
  ASSERT_EQ(viommu_pio_access(ctx_, 0x80, &v, 1, 0), 0);
  EXPECT_EQ(re.inner, -EDEADLK);
}

}  // namespace
}  // namespace viommu::capi::testing
