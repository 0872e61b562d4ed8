// DMA threads against the control thread through the C API (suite
// 'stress', also built alone in the ThreadSanitizer tree): while three
// threads run viommu_dma_rw on an identity endpoint (RAM that stays, RAM
// and MMIO regions that come and go) and through VT-d (a mapping that
// stays, walked again after every invalidation), the control thread adds
// and removes those regions (alone and in transactions), registers and
// drops a DMA listener, and invalidates VT-d's IOTLB through the MMIO entry
// point. Every DMA answer must be one the contract allows, and no MMIO
// callback may run after viommu_region_del returned.
//
// Not covered yet (docs/embedding.md, planned): RAM removal while DMA on it
// is in flight (the memory here stays mapped for the whole test, so a late
// copy is harmless), guest page-table rewrites during DMA (guest RAM races
// by definition; see vtd_concurrency_stress_test).
//
// DmaThreadsAgainstVfioAttachDetachChurn: VFIO attach/detach (see there).
#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/capi/capi_fixture.h"
#include "viommu.h"

namespace viommu::capi::testing {
namespace {

constexpr uint64_t kChurnRam = 0x4000'0000;   // 1 GiB: a 4 KiB RAM region
constexpr uint64_t kChurnMmio = 0x5000'0000;  // an MMIO region
constexpr uint64_t kIova = 0x1000;
constexpr uint64_t kTarget = 0x40000;

// MMIO callbacks: count calls made after the region's removal returned.
struct Device {
  std::atomic<uint64_t> generation{0};  // bumped when a removal returned
  std::atomic<uint64_t> live_generation{0};
  std::atomic<int> late_calls{0};
  static int Read(void* opaque, uint64_t, uint64_t* data, uint32_t) {
    auto* d = static_cast<Device*>(opaque);
    if (d->generation.load() != d->live_generation.load()) {
      d->late_calls.fetch_add(1);
    }
    *data = 0x77;
    return 0;
  }
  static int Write(void*, uint64_t, uint64_t, uint32_t) { return 0; }
};

void NopMap(void*, const viommu_dma_map*) {}
void NopUnmap(void*, uint64_t, uint64_t) {}

using CapiStressTest = CapiTest;

TEST_F(CapiStressTest, DmaThreadsAgainstRegionChurnAndVtdInvalidations) {
  AddRam();
  std::memset(ram_ + kTarget, 0x5a, 0x1000);
  std::vector<uint8_t> churn_mem(0x1000, 0xc3);
  viommu_iommu* iommu = nullptr;
  ASSERT_EQ(viommu_iommu_new(ctx_, "intel-iommu", "caching-mode=on", &iommu),
            0);
  viommu_ep* plain = nullptr;
  viommu_ep* translated = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 1, 0x00, nullptr, &plain), 0);
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, iommu, &translated), 0);
  VtdGuest g(ram_, ctx_);
  g.SetContext(0x20, 1);
  g.Map(kIova, kTarget, 3);
  g.Enable();

  Device dev;
  viommu_region ram_r{};
  ram_r.size = sizeof(ram_r);
  ram_r.kind = VIOMMU_REGION_RAM;
  ram_r.gpa = kChurnRam;
  ram_r.len = churn_mem.size();
  ram_r.hva = churn_mem.data();
  ram_r.fd = -1;
  viommu_region mmio_r{};
  mmio_r.size = sizeof(mmio_r);
  mmio_r.kind = VIOMMU_REGION_MMIO;
  mmio_r.gpa = kChurnMmio;
  mmio_r.len = 0x1000;
  mmio_r.read = &Device::Read;
  mmio_r.write = &Device::Write;
  mmio_r.opaque = &dev;

  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::atomic<uint64_t> accesses{0};
  auto dma = [&](int seed) {
    uint64_t n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      uint64_t v = 0;
      switch ((seed + n++) % 4) {
        case 0:  // RAM that stays
          if (viommu_dma_rw(plain, kTarget, &v, 8, VIOMMU_DMA_READ, nullptr) !=
                  0 ||
              v != 0x5a5a5a5a5a5a5a5aull) {
            bad.fetch_add(1);
          }
          break;
        case 1: {  // RAM that comes and goes: its bytes, or 0 and -EFAULT
          int r =
              viommu_dma_rw(plain, kChurnRam, &v, 8, VIOMMU_DMA_READ, nullptr);
          if (!((r == 0 && v == 0xc3c3c3c3c3c3c3c3ull) ||
                (r == -EFAULT && v == 0))) {
            bad.fetch_add(1);
          }
          break;
        }
        case 2: {  // MMIO that comes and goes (-EIO: removed in an open
                   // transaction, still in the published map but fenced)
          int r =
              viommu_dma_rw(plain, kChurnMmio, &v, 4, VIOMMU_DMA_READ, nullptr);
          if (!((r == 0 && v == 0x77) ||
                ((r == -EFAULT || r == -EIO) && v == 0))) {
            bad.fetch_add(1);
          }
          break;
        }
        default:  // through VT-d, re-walked after each invalidation
          if (viommu_dma_rw(translated, kIova, &v, 8, VIOMMU_DMA_READ,
                            nullptr) != 0 ||
              v != 0x5a5a5a5a5a5a5a5aull) {
            bad.fetch_add(1);
          }
          break;
      }
    }
    accesses.fetch_add(n);
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) threads.emplace_back(dma, i);

  viommu_dma_listener l{sizeof(l), &NopMap, &NopUnmap, nullptr};
  for (int i = 0; i < 3000; ++i) {
    uint32_t ram_id = 0, mmio_id = 0, lid = 0;
    dev.live_generation.store(dev.generation.load());
    ASSERT_EQ(viommu_region_add(ctx_, &ram_r, &ram_id), 0);
    ASSERT_EQ(viommu_region_add(ctx_, &mmio_r, &mmio_id), 0);
    ASSERT_EQ(viommu_dma_listener_add(plain, &l, &lid), 0);
    g.Reg64(vtd::Reg64::kIotlb, vtd::kIotlbIvt | 1ull << vtd::kIotlbIirgShift);
    if (i % 2 == 0) {
      ASSERT_EQ(viommu_transaction_begin(ctx_), 0);
      ASSERT_EQ(viommu_region_del(ctx_, mmio_id), 0);
      ASSERT_EQ(viommu_region_del(ctx_, ram_id), 0);
      ASSERT_EQ(viommu_transaction_commit(ctx_), 0);
    } else {
      ASSERT_EQ(viommu_region_del(ctx_, mmio_id), 0);
      ASSERT_EQ(viommu_region_del(ctx_, ram_id), 0);
    }
    // The removal returned: until the next add a callback is a late one.
    dev.generation.fetch_add(1);
    ASSERT_EQ(viommu_dma_listener_del(plain, lid), 0);
  }
  stop.store(true);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(dev.late_calls.load(), 0);
  EXPECT_GT(accesses.load(), 3000u);
}

// VFIO attach/detach churn against DMA threads: while threads run
// viommu_dma_rw on an identity endpoint and through VT-d, the control
// thread attaches and detaches host devices (an identity endpoint's, whose
// container mirrors guest memory, and the translated endpoint's own, fed
// by VT-d's replay), adds and removes RAM that every live container maps,
// invalidates VT-d and queries x-query-vfio. DMA answers must stay those
// the contract allows, and each detach must leave no container behind.
TEST_F(CapiStressTest, DmaThreadsAgainstVfioAttachDetachChurn) {
  AddRam();
  std::memset(ram_ + kTarget, 0x5a, 0x1000);
  // Page-aligned, so the containers really map it.
  void* churn_page = mmap(nullptr, 0x1000, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(churn_page, MAP_FAILED);
  std::memset(churn_page, 0xc3, 0x1000);
  viommu_iommu* iommu = nullptr;
  ASSERT_EQ(viommu_iommu_new(ctx_, "intel-iommu", "caching-mode=on", &iommu),
            0);
  viommu_ep* plain = nullptr;
  viommu_ep* translated = nullptr;
  viommu_ep* passthrough = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 1, 0x00, nullptr, &plain), 0);
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, iommu, &translated), 0);
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 1, 0x08, nullptr, &passthrough), 0);
  VtdGuest g(ram_, ctx_);
  g.SetContext(0x20, 1);
  g.Map(kIova, kTarget, 3);
  g.Enable();
  viommu_region ram_r{};
  ram_r.size = sizeof(ram_r);
  ram_r.kind = VIOMMU_REGION_RAM;
  ram_r.gpa = kChurnRam;
  ram_r.len = 0x1000;
  ram_r.hva = churn_page;
  ram_r.fd = -1;

  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::atomic<uint64_t> accesses{0};
  auto dma = [&](int seed) {
    uint64_t n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      uint64_t v = 0;
      int r;
      switch ((seed + n++) % 3) {
        case 0:  // RAM that stays
          r = viommu_dma_rw(plain, kTarget, &v, 8, VIOMMU_DMA_READ, nullptr);
          if (r != 0 || v != 0x5a5a5a5a5a5a5a5aull) bad.fetch_add(1);
          break;
        case 1:  // RAM that comes and goes
          r = viommu_dma_rw(plain, kChurnRam, &v, 8, VIOMMU_DMA_READ, nullptr);
          if (!((r == 0 && v == 0xc3c3c3c3c3c3c3c3ull) ||
                (r == -EFAULT && v == 0))) {
            bad.fetch_add(1);
          }
          break;
        default:  // through VT-d, whose endpoint gains and loses a device
          r = viommu_dma_rw(translated, kIova, &v, 8, VIOMMU_DMA_READ,
                            nullptr);
          if (r != 0 || v != 0x5a5a5a5a5a5a5a5aull) bad.fetch_add(1);
          break;
      }
    }
    accesses.fetch_add(n);
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) threads.emplace_back(dma, i);

  for (int i = 0; i < 60; ++i) {
    viommu_vfio* a = nullptr;
    viommu_vfio* b = nullptr;
    uint32_t ram_id = 0;
    ASSERT_EQ(viommu_vfio_attach(passthrough, "0000:01:00.0",
                                 i % 2 == 0 ? VIOMMU_VFIO_TYPE1
                                            : VIOMMU_VFIO_IOMMUFD,
                                 &a),
              0);
    ASSERT_EQ(viommu_vfio_attach(translated, "0000:02:00.0", VIOMMU_VFIO_AUTO,
                                 &b),
              0);
    ASSERT_EQ(viommu_region_add(ctx_, &ram_r, &ram_id), 0);
    g.Reg64(vtd::Reg64::kIotlb, vtd::kIotlbIvt | 1ull << vtd::kIotlbIirgShift);
    char* json = nullptr;
    ASSERT_EQ(viommu_query_json(ctx_, "x-query-vfio", &json), 0);
    // Guest RAM + the churn RAM, and IOVA kIova behind VT-d.
    EXPECT_NE(std::strstr(json, "\"mappings\": 2"), nullptr) << json;
    EXPECT_NE(std::strstr(json, "\"mappings\": 1"), nullptr) << json;
    viommu_free(json);
    if (i % 2 == 0) {
      ASSERT_EQ(viommu_region_del(ctx_, ram_id), 0);
      viommu_vfio_detach(a);
      viommu_vfio_detach(b);
    } else {
      viommu_vfio_detach(b);
      ASSERT_EQ(viommu_region_del(ctx_, ram_id), 0);
      viommu_vfio_detach(a);
    }
    ASSERT_EQ(viommu_query_json(ctx_, "x-query-vfio", &json), 0);
    EXPECT_STREQ(json, "{\"containers\": []}");
    viommu_free(json);
  }
  stop.store(true);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(accesses.load(), 60u);
  munmap(churn_page, 0x1000);
}

}  // namespace
}  // namespace viommu::capi::testing
