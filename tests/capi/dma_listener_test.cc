// The C API's DMA listeners: replay on registration, region add/remove on
// identity endpoints, VT-d mappings (caching mode) as map/unmap, remaps as
// unmap then map, unmaps on unregistration and endpoint free.
#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/capi/capi_fixture.h"
#include "viommu.h"

namespace viommu::capi::testing {
namespace {

using ::testing::ElementsAre;

// Records map/unmap calls as strings.
struct Events {
  std::vector<std::string> log;
  std::vector<viommu_dma_map> maps;
  static void Map(void* opaque, const viommu_dma_map* m) {
    auto* e = static_cast<Events*>(opaque);
    e->maps.push_back(*m);
    e->log.push_back(absl::StrFormat("map 0x%x->0x%x +0x%x p%u", m->iova,
                                     m->gpa, m->len, m->perm));
  }
  static void Unmap(void* opaque, uint64_t iova, uint64_t len) {
    static_cast<Events*>(opaque)->log.push_back(
        absl::StrFormat("unmap 0x%x +0x%x", iova, len));
  }
  viommu_dma_listener Listener() {
    return viommu_dma_listener{sizeof(viommu_dma_listener), &Map, &Unmap, this};
  }
};

class CapiDmaListenerTest : public CapiTest {
 protected:
  // The context goes (and unmaps) while ev_ is still alive.
  ~CapiDmaListenerTest() override {
    viommu_ctx_free(ctx_);
    ctx_ = nullptr;
  }

  viommu_ep* Endpoint(viommu_iommu* iommu = nullptr) {
    viommu_ep* ep = nullptr;
    EXPECT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, iommu, &ep), 0);
    return ep;
  }
  uint32_t Listen(viommu_ep* ep, Events* ev) {
    viommu_dma_listener l = ev->Listener();
    uint32_t id = 0;
    EXPECT_EQ(viommu_dma_listener_add(ep, &l, &id), 0);
    return id;
  }

  Events ev_;
};

TEST_F(CapiDmaListenerTest, RegistrationReplaysRamWithHvaAndFd) {
  AddRam(/*fd=*/7, /*fd_offset=*/0x10000);
  viommu_ep* ep = Endpoint();
  Listen(ep, &ev_);
  ASSERT_THAT(ev_.log, ElementsAre("map 0x0->0x0 +0x1000000 p3"));
  EXPECT_EQ(ev_.maps[0].hva, ram_);
  EXPECT_EQ(ev_.maps[0].fd, 7);
  EXPECT_EQ(ev_.maps[0].fd_offset, 0x10000u);
  EXPECT_EQ(ev_.maps[0].flags, 0u);
  EXPECT_EQ(ev_.maps[0].size, sizeof(viommu_dma_map));
}

TEST_F(CapiDmaListenerTest, RegionsAddedAndRemovedAreMappedAndUnmapped) {
  viommu_ep* ep = Endpoint();
  Listen(ep, &ev_);
  EXPECT_TRUE(ev_.log.empty());
  viommu_region r{};
  r.size = sizeof(r);
  r.kind = VIOMMU_REGION_RAM;
  r.flags = VIOMMU_REGION_F_READONLY;
  r.gpa = 0x100000;
  r.len = 0x2000;
  r.hva = ram_;
  r.fd = -1;
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  ASSERT_EQ(viommu_region_del(ctx_, id), 0);
  EXPECT_THAT(ev_.log, ElementsAre("map 0x100000->0x100000 +0x2000 p1",
                                   "unmap 0x100000 +0x2000"));
  EXPECT_EQ(ev_.maps[0].fd, -1);
}

TEST_F(CapiDmaListenerTest, RamDeviceIsMappedWithItsFlag) {
  viommu_ep* ep = Endpoint();
  Listen(ep, &ev_);
  const viommu_region r = RamDeviceRegion(0x8000'0000, 0x1000, ram_);
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  ASSERT_EQ(ev_.maps.size(), 1u);
  EXPECT_EQ(ev_.maps[0].flags, uint32_t{VIOMMU_MAP_F_RAM_DEVICE});
}

TEST_F(CapiDmaListenerTest, MmioRegionsAreNotMapped) {
  viommu_ep* ep = Endpoint();
  Listen(ep, &ev_);
  viommu_region r{};
  r.size = sizeof(r);
  r.kind = VIOMMU_REGION_MMIO;
  r.gpa = 0x8000'0000;
  r.len = 0x1000;
  r.read = [](void*, uint64_t, uint64_t*, uint32_t) { return 0; };
  r.write = [](void*, uint64_t, uint64_t, uint32_t) { return 0; };
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  EXPECT_TRUE(ev_.log.empty());
}

TEST_F(CapiDmaListenerTest, TransactionDelaysTheDiffToTheCommit) {
  AddRam();
  viommu_ep* ep = Endpoint();
  Listen(ep, &ev_);
  ev_.log.clear();
  viommu_region r{};
  r.size = sizeof(r);
  r.kind = VIOMMU_REGION_RAM;
  r.gpa = 0x2000'0000;
  r.len = 0x1000;
  r.hva = ram_;
  r.fd = -1;
  uint32_t a = 0, b = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &a), 0);
  ev_.log.clear();
  ASSERT_EQ(viommu_transaction_begin(ctx_), 0);
  ASSERT_EQ(viommu_region_del(ctx_, a), 0);
  r.hva = ram_ + 0x1000;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &b), 0);
  EXPECT_TRUE(ev_.log.empty());
  ASSERT_EQ(viommu_transaction_commit(ctx_), 0);
  EXPECT_THAT(ev_.log, ElementsAre("unmap 0x20000000 +0x1000",
                                   "map 0x20000000->0x20000000 +0x1000 p3"));
  EXPECT_EQ(ev_.maps.back().hva, ram_ + 0x1000);
}

TEST_F(CapiDmaListenerTest, DelUnmapsWhatIsLeftAndUnknownIdIsEnoent) {
  AddRam();
  viommu_ep* ep = Endpoint();
  uint32_t id = Listen(ep, &ev_);
  ASSERT_EQ(viommu_dma_listener_del(ep, id), 0);
  EXPECT_THAT(ev_.log, ElementsAre("map 0x0->0x0 +0x1000000 p3",
                                   "unmap 0x0 +0x1000000"));
  EXPECT_EQ(viommu_dma_listener_del(ep, id), -ENOENT);
}

TEST_F(CapiDmaListenerTest, EndpointFreeUnmaps) {
  AddRam();
  viommu_ep* ep = Endpoint();
  Listen(ep, &ev_);
  viommu_ep_free(ep);
  EXPECT_THAT(ev_.log, ElementsAre("map 0x0->0x0 +0x1000000 p3",
                                   "unmap 0x0 +0x1000000"));
}

TEST_F(CapiDmaListenerTest, MissingCallbackIsEinval) {
  viommu_ep* ep = Endpoint();
  viommu_dma_listener l{sizeof(l), &Events::Map, nullptr, nullptr};
  uint32_t id = 0;
  EXPECT_EQ(viommu_dma_listener_add(ep, &l, &id), -EINVAL);
}

TEST_F(CapiDmaListenerTest, VtdWithoutCachingModeRefusesTheListener) {
  AddRam();
  viommu_iommu* iommu = nullptr;
  ASSERT_EQ(viommu_iommu_new(ctx_, "intel-iommu", nullptr, &iommu), 0);
  viommu_ep* ep = Endpoint(iommu);
  viommu_dma_listener l = ev_.Listener();
  uint32_t id = 0;
  EXPECT_EQ(viommu_dma_listener_add(ep, &l, &id), -EINVAL);
  EXPECT_TRUE(rec_.LogContains("caching-mode=on"));
  EXPECT_TRUE(ev_.log.empty());
}

TEST_F(CapiDmaListenerTest, VtdMappingsReplayThenRemapIsUnmapThenMap) {
  AddRam(/*fd=*/5, /*fd_offset=*/0);
  viommu_iommu* iommu = nullptr;
  ASSERT_EQ(viommu_iommu_new(ctx_, "intel-iommu", "caching-mode=on", &iommu),
            0);
  viommu_ep* ep = Endpoint(iommu);
  VtdGuest g(ram_, ctx_);
  g.SetContext(0x20, 1);
  g.Map(0x1000, 0x40000, 3);
  g.Enable();
  uint32_t id = Listen(ep, &ev_);
  ASSERT_THAT(ev_.log, ElementsAre("map 0x1000->0x40000 +0x1000 p3"));
  EXPECT_EQ(ev_.maps[0].hva, ram_ + 0x40000);
  EXPECT_EQ(ev_.maps[0].fd_offset, 0x40000u);

  ev_.log.clear();
  g.Map(0x1000, 0x50000, 1);
  g.InvalidatePage(1, 0x1000);
  EXPECT_THAT(ev_.log, ElementsAre("unmap 0x1000 +0x1000",
                                   "map 0x1000->0x50000 +0x1000 p1"));

  ev_.log.clear();
  g.Map(0x2000, 0x60000, 3);  // caching mode: invalidations announce maps
  g.InvalidatePage(1, 0x2000);
  EXPECT_THAT(ev_.log, ElementsAre("map 0x2000->0x60000 +0x1000 p3"));

  ev_.log.clear();
  ASSERT_EQ(viommu_dma_listener_del(ep, id), 0);
  EXPECT_THAT(ev_.log,
              ElementsAre("unmap 0x1000 +0x1000", "unmap 0x2000 +0x1000"));
}

TEST_F(CapiDmaListenerTest, EnablingVtdUnmapsIdentityAndMapsTheTables) {
  AddRam();
  viommu_iommu* iommu = nullptr;
  ASSERT_EQ(viommu_iommu_new(ctx_, "intel-iommu", "caching-mode=on", &iommu),
            0);
  viommu_ep* ep = Endpoint(iommu);
  Listen(ep, &ev_);
  ASSERT_THAT(ev_.log, ElementsAre("map 0x0->0x0 +0x1000000 p3"));
  ev_.log.clear();
  VtdGuest g(ram_, ctx_);
  g.SetContext(0x20, 1);
  g.Map(0x3000, 0x70000, 3);
  g.Enable();
  EXPECT_THAT(ev_.log, ElementsAre("unmap 0x0 +0x1000000",
                                   "map 0x3000->0x70000 +0x1000 p3"));
}

}  // namespace
}  // namespace viommu::capi::testing
