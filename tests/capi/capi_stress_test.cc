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
// GuestRemapsRamRemovalAndZeroCopyChurn: while DMA threads copy from and
// map (viommu_dma_map_host) RAM that comes and goes and an IOVA the guest
// keeps remapping, the control thread rewrites the VT-d page table and
// invalidates the page (VT-d without caching mode: revocation through its
// UNMAP-only notifications), adds RAM, removes it (retrying on -EBUSY
// while a zero-copy mapping points into it) and munmaps the memory the
// moment viommu_region_del returns: a late copy would crash or read
// other bytes. No dma_revoked call may arrive after its mapping was
// unmapped. Page-table entries are guest RAM a walk reads with plain
// copies, so the translating thread is parked while the entry is
// rewritten (as vtd_concurrency_stress_test does); the invalidation that
// makes the remap visible runs while it translates and maps.
//
// DmaThreadsAgainstVfioAttachDetachChurn: VFIO attach/detach (see there).
#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
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

// One zero-copy user: `live` while its mapping may exist (set before the
// map, cleared after the unmap returned); a revoke when not live is late.
struct ZcUser {
  std::atomic<bool> live{false};
  std::atomic<int> revokes{0};
};
std::atomic<int> g_late_revokes{0};

void OnRevoked(void*, viommu_ep*, void* cookie) {
  auto* u = static_cast<ZcUser*>(cookie);
  if (!u->live.load()) g_late_revokes.fetch_add(1);
  u->revokes.fetch_add(1);
}

constexpr uint64_t kPageA = 0x60000;  // IOVA kIova maps here or to kPageB
constexpr uint64_t kPageB = 0x70000;
constexpr size_t kChurnLen = 0x2000;

void* MapChurn() {
  void* p = mmap(nullptr, kChurnLen, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT_NE(p, MAP_FAILED);
  std::memset(p, 0xc3, kChurnLen);
  return p;
}

TEST(CapiStressRemovalTest, GuestRemapsRamRemovalAndZeroCopyChurn) {
  constexpr uint64_t kRam = 16 << 20;
  uint8_t* ram = static_cast<uint8_t*>(mmap(nullptr, kRam,
                                            PROT_READ | PROT_WRITE,
                                            MAP_PRIVATE | MAP_ANONYMOUS, -1,
                                            0));
  ASSERT_NE(ram, MAP_FAILED);
  std::memset(ram + kPageA, 0xa5, 0x1000);
  std::memset(ram + kPageB, 0xb6, 0x1000);
  viommu_config cfg{};
  cfg.size = sizeof(cfg);
  viommu_callbacks cb{};
  cb.size = sizeof(cb);
  cb.dma_revoked = &OnRevoked;
  viommu_ctx* ctx = nullptr;
  ASSERT_EQ(viommu_ctx_new(&cfg, &cb, nullptr, &ctx), 0);
  viommu_region r{};
  r.size = sizeof(r);
  r.kind = VIOMMU_REGION_RAM;
  r.len = kRam;
  r.hva = ram;
  r.fd = -1;
  uint32_t ram_id = 0;
  ASSERT_EQ(viommu_region_add(ctx, &r, &ram_id), 0);
  viommu_iommu* iommu = nullptr;
  ASSERT_EQ(viommu_iommu_new(ctx, "intel-iommu", "", &iommu), 0);
  viommu_ep* plain = nullptr;
  viommu_ep* translated = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx, 0, 1, 0x00, nullptr, &plain), 0);
  ASSERT_EQ(viommu_ep_new(ctx, 0, 0, 0x20, iommu, &translated), 0);
  VtdGuest g(ram, ctx);
  g.SetContext(0x20, 1);
  g.Map(kIova, kPageA, 3);
  g.Enable();

  std::atomic<bool> stop{false};
  std::atomic<bool> removing{false};
  std::atomic<int> bad{0};
  std::atomic<uint64_t> copies{0}, maps{0};
  // Parking of the translating thread while the guest rewrites its PTE.
  std::atomic<uint64_t> park{0}, parked{0}, resume{0};

  // Translated: copies and zero-copy maps of kIova, A's or B's bytes.
  ZcUser vtd_user;
  std::thread vtd_thread([&] {
    uint64_t n = 0;
    while (!stop.load()) {
      const uint64_t want = park.load();
      if (want != parked.load()) {
        parked.store(want);
        while (resume.load() != want && !stop.load()) std::this_thread::yield();
        continue;
      }
      uint64_t v = 0;
      if (viommu_dma_rw(translated, kIova + 8 * (n % 512), &v, 8,
                        VIOMMU_DMA_READ, nullptr) != 0 ||
          (v != 0xa5a5a5a5a5a5a5a5ull && v != 0xb6b6b6b6b6b6b6b6ull)) {
        bad.fetch_add(1);
      }
      uint64_t len = 0x1000;
      void* host = nullptr;
      vtd_user.live.store(true);
      if (viommu_dma_map_host(translated, kIova, &len, VIOMMU_DMA_READ,
                              &vtd_user, &host, nullptr) == 0) {
        const auto* p = static_cast<const uint8_t*>(host);
        if ((p != ram + kPageA && p != ram + kPageB) || len != 0x1000 ||
            (p[len - 1] != 0xa5 && p[len - 1] != 0xb6)) {
          bad.fetch_add(1);
        }
        if (viommu_dma_unmap_host(translated, host, len, len) != 0) {
          bad.fetch_add(1);
        }
        maps.fetch_add(1);
      } else {
        bad.fetch_add(1);  // always mapped: A or B
      }
      vtd_user.live.store(false);
      ++n;
    }
    copies.fetch_add(n);
  });
  // Identity: copies from the RAM that comes and goes.
  std::thread copy_thread([&] {
    uint64_t n = 0;
    while (!stop.load()) {
      uint64_t v = 0;
      const int rc = viommu_dma_rw(plain, kChurnRam + 8 * (n % 1024), &v, 8,
                                   VIOMMU_DMA_READ, nullptr);
      if (!((rc == 0 && v == 0xc3c3c3c3c3c3c3c3ull) ||
            (rc == -EFAULT && v == 0))) {
        bad.fetch_add(1);
      }
      ++n;
    }
    copies.fetch_add(n);
  });
  // Identity: zero-copy maps of the RAM that comes and goes.
  ZcUser plain_user;
  std::thread map_thread([&] {
    while (!stop.load()) {
      if (removing.load()) {
        std::this_thread::yield();
        continue;
      }
      uint64_t len = kChurnLen;
      void* host = nullptr;
      plain_user.live.store(true);
      const int rc = viommu_dma_map_host(plain, kChurnRam, &len,
                                         VIOMMU_DMA_READ, &plain_user, &host,
                                         nullptr);
      if (rc == 0) {
        const auto* p = static_cast<const uint8_t*>(host);
        if (len != kChurnLen || p[0] != 0xc3 || p[len - 1] != 0xc3) {
          bad.fetch_add(1);
        }
        if (viommu_dma_unmap_host(plain, host, len, 0) != 0) bad.fetch_add(1);
        maps.fetch_add(1);
      } else if (rc != -EFAULT) {
        bad.fetch_add(1);
      }
      plain_user.live.store(false);
    }
  });

  viommu_region churn{};
  churn.size = sizeof(churn);
  churn.kind = VIOMMU_REGION_RAM;
  churn.gpa = kChurnRam;
  churn.len = kChurnLen;
  churn.fd = -1;
  uint64_t busy = 0;
  for (int i = 0; i < 500; ++i) {
    // RAM comes...
    void* mem = MapChurn();
    churn.hva = mem;
    uint32_t id = 0;
    ASSERT_EQ(viommu_region_add(ctx, &churn, &id), 0);
    // ... the guest remaps kIova (parked walker) and invalidates it
    // (walker running) ...
    const uint64_t gen = park.load() + 1;
    park.store(gen);
    while (parked.load() != gen) std::this_thread::yield();
    g.Map(kIova, i % 2 == 0 ? kPageB : kPageA, 3);
    resume.store(gen);
    g.InvalidatePage(1, kIova);
    // ... and RAM goes, once no zero-copy mapping points into it.
    if (i % 3 == 0) {
      ASSERT_EQ(viommu_transaction_begin(ctx), 0);
    }
    removing.store(i % 2 == 0);
    int rc;
    while ((rc = viommu_region_del(ctx, id)) == -EBUSY) {
      ++busy;
      std::this_thread::yield();
    }
    ASSERT_EQ(rc, 0);
    if (i % 3 == 0) {
      ASSERT_EQ(viommu_transaction_commit(ctx), 0);
    }
    removing.store(false);
    // Returned: the memory may go at once.
    ASSERT_EQ(munmap(mem, kChurnLen), 0);
  }
  stop.store(true);
  resume.store(park.load());
  vtd_thread.join();
  copy_thread.join();
  map_thread.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(g_late_revokes.load(), 0);
  EXPECT_GT(vtd_user.revokes.load() + plain_user.revokes.load(), 0);
  EXPECT_GT(maps.load(), 100u);
  EXPECT_GT(copies.load(), 1000u);
  std::printf("copies %llu, maps %llu, revokes %d + %d, -EBUSY %llu\n",
              static_cast<unsigned long long>(copies.load()),
              static_cast<unsigned long long>(maps.load()),
              vtd_user.revokes.load(), plain_user.revokes.load(),
              static_cast<unsigned long long>(busy));
  viommu_ctx_free(ctx);
  munmap(ram, kRam);
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
