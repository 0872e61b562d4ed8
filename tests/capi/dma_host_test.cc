// The C API's fault callback, zero-copy DMA (viommu_dma_map_host /
// viommu_dma_unmap_host) with its revocation (dma_revoked), and RAM
// removal: -EBUSY while a zero-copy mapping points into it, and the grace
// period not held up by a DMA thread inside a callback.
#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/capi/capi_fixture.h"
#include "viommu.h"

namespace viommu::capi::testing {
namespace {

constexpr uint64_t kIova = 0x20'0000;
constexpr uint64_t kTarget = 0x40'0000;

// What the fault and dma_revoked callbacks saw.
struct Seen {
  std::vector<viommu_dma_fault> faults;
  std::vector<viommu_ep*> fault_eps;
  std::vector<void*> revoked;
  // When set, dma_revoked unmaps the mapping it names (cookie -> Mapping).
  bool unmap_in_callback = false;
  int unmap_result = 1;
};

struct Mapping {
  viommu_ep* ep = nullptr;
  void* host = nullptr;
  uint64_t len = 0;
};

Seen* g_seen = nullptr;

void OnFault(void*, viommu_ep* ep, const viommu_dma_fault* f) {
  g_seen->faults.push_back(*f);
  g_seen->fault_eps.push_back(ep);
}

void OnRevoked(void*, viommu_ep*, void* cookie) {
  g_seen->revoked.push_back(cookie);
  if (g_seen->unmap_in_callback) {
    auto* m = static_cast<Mapping*>(cookie);
    g_seen->unmap_result = viommu_dma_unmap_host(m->ep, m->host, m->len, 0);
  }
}

class CapiDmaHostTest : public CapiTest {
 protected:
  CapiDmaHostTest() {
    // A second context with the fault and dma_revoked callbacks.
    viommu_ctx_free(ctx_);
    g_seen = &seen_;
    viommu_config cfg{};
    cfg.size = sizeof(cfg);
    viommu_callbacks cb{};
    cb.size = sizeof(cb);
    cb.log = &Recorder::Log;
    cb.msi = &Recorder::OnMsi;
    cb.fault = &OnFault;
    cb.dma_revoked = &OnRevoked;
    EXPECT_EQ(viommu_ctx_new(&cfg, &cb, &rec_, &ctx_), 0);
  }
  ~CapiDmaHostTest() override {
    viommu_ctx_free(ctx_);  // its dma_revoked calls still record
    ctx_ = nullptr;
    g_seen = nullptr;
  }

  viommu_ep* Identity(uint8_t devfn = 0x20) {
    viommu_ep* ep = nullptr;
    EXPECT_EQ(viommu_ep_new(ctx_, 0, 0, devfn, nullptr, &ep), 0);
    return ep;
  }
  // VT-d (props), endpoint 00:04.0 in domain 1, kIova -> kTarget mapped
  // read/write, translation on.
  viommu_ep* Translated(const char* props, VtdGuest** guest) {
    viommu_iommu* iommu = nullptr;
    EXPECT_EQ(viommu_iommu_new(ctx_, "intel-iommu", props, &iommu), 0);
    viommu_ep* ep = nullptr;
    EXPECT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, iommu, &ep), 0);
    guest_ = std::make_unique<VtdGuest>(ram_, ctx_);
    guest_->SetContext(0x20, 1);
    guest_->Map(kIova, kTarget, 3);
    guest_->Map(kIova + 0x1000, kTarget + 0x1000, 3);
    guest_->Enable();
    *guest = guest_.get();
    return ep;
  }
  // Maps and fills `m`; returns the result.
  int Map(viommu_ep* ep, uint64_t iova, uint64_t want, uint32_t flags,
          Mapping* m, viommu_dma_fault* f = nullptr) {
    m->ep = ep;
    m->len = want;
    return viommu_dma_map_host(ep, iova, &m->len, flags, m, &m->host, f);
  }

  Seen seen_;
  std::unique_ptr<VtdGuest> guest_;
};

TEST_F(CapiDmaHostTest, FaultCallbackGetsTheRecordDmaRwReturns) {
  AddRam();
  viommu_ep* ep = Identity(0x08);
  uint8_t buf[16] = {};
  viommu_dma_fault f{};
  f.size = sizeof(f);
  EXPECT_EQ(viommu_dma_rw(ep, kRamSize - 8, buf, sizeof(buf), VIOMMU_DMA_WRITE,
                          &f),
            -EFAULT);
  ASSERT_EQ(seen_.faults.size(), 1u);
  EXPECT_EQ(seen_.fault_eps[0], ep);
  EXPECT_EQ(seen_.faults[0].iova, kRamSize);
  EXPECT_EQ(seen_.faults[0].sid, 0x0008u);
  EXPECT_EQ(seen_.faults[0].reason, uint32_t{VIOMMU_FAULT_UNASSIGNED});
  EXPECT_EQ(seen_.faults[0].flags, uint32_t{VIOMMU_FAULT_F_WRITE});
  EXPECT_EQ(seen_.faults[0].size, sizeof(viommu_dma_fault));
  EXPECT_EQ(std::memcmp(&seen_.faults[0], &f, sizeof(f)), 0);
  // Without a record asked for, the callback still runs; success: none.
  EXPECT_EQ(viommu_dma_rw(ep, kRamSize, buf, 1, VIOMMU_DMA_READ, nullptr),
            -EFAULT);
  EXPECT_EQ(viommu_dma_rw(ep, 0, buf, 1, VIOMMU_DMA_READ, nullptr), 0);
  EXPECT_EQ(seen_.faults.size(), 2u);
}

TEST_F(CapiDmaHostTest, FaultCallbackRunsAfterVtdRecordedTheFault) {
  AddRam();
  VtdGuest* g = nullptr;
  viommu_ep* ep = Translated("", &g);
  g->SetFaultEvent(0xfee0'0000, 0x31);
  uint64_t v = 0;
  EXPECT_EQ(viommu_dma_rw(ep, 0x7000'0000, &v, 8, VIOMMU_DMA_READ, nullptr),
            -EFAULT);
  ASSERT_EQ(seen_.faults.size(), 1u);
  EXPECT_EQ(seen_.faults[0].reason, uint32_t{VIOMMU_FAULT_TRANSLATION});
  EXPECT_EQ(seen_.faults[0].iova, 0x7000'0000u);
  EXPECT_EQ(rec_.msis.size(), 1u);  // the fault event came first
  EXPECT_NE(g->ReadReg32(vtd::Reg32::kFsts) & vtd::kFstsPpf, 0u);
}

TEST_F(CapiDmaHostTest, IdentityMapReturnsTheHostAddressOfGuestRam) {
  AddRam();
  viommu_ep* ep = Identity();
  Mapping m;
  ASSERT_EQ(Map(ep, 0x3000, 0x100, VIOMMU_DMA_WRITE, &m), 0);
  EXPECT_EQ(m.host, ram_ + 0x3000);
  EXPECT_EQ(m.len, 0x100u);
  std::memcpy(m.host, "zc", 3);
  char back[3] = {};
  ASSERT_EQ(viommu_dma_rw(ep, 0x3000, back, 3, VIOMMU_DMA_READ, nullptr), 0);
  EXPECT_STREQ(back, "zc");
  EXPECT_EQ(viommu_dma_unmap_host(ep, m.host, m.len, 3), 0);
  EXPECT_EQ(viommu_dma_unmap_host(ep, m.host, m.len, 3), -ENOENT);
  EXPECT_TRUE(seen_.revoked.empty());
}

TEST_F(CapiDmaHostTest, MapIsShortenedAtTheEndOfTheRamRegion) {
  AddRam();
  viommu_ep* ep = Identity();
  Mapping m;
  ASSERT_EQ(Map(ep, kRamSize - 0x10, 0x1000, VIOMMU_DMA_READ, &m), 0);
  EXPECT_EQ(m.len, 0x10u);
  EXPECT_EQ(viommu_dma_unmap_host(ep, m.host, m.len, 0), 0);
}

TEST_F(CapiDmaHostTest, MapThroughVtdStopsAtTheIommuPage) {
  AddRam();
  VtdGuest* g = nullptr;
  viommu_ep* ep = Translated("", &g);
  Mapping m;
  ASSERT_EQ(Map(ep, kIova + 0x800, 0x2000, VIOMMU_DMA_WRITE, &m), 0);
  EXPECT_EQ(m.host, ram_ + kTarget + 0x800);
  EXPECT_EQ(m.len, 0x800u);  // to the end of the 4 KiB page
  EXPECT_EQ(viommu_dma_unmap_host(ep, m.host, m.len, m.len), 0);
}

TEST_F(CapiDmaHostTest, WhatIsNotMappableIsEfaultOrEopnotsupp) {
  AddRam();
  std::vector<uint8_t> bar(0x1000);
  viommu_region r = RamDeviceRegion(0x8000'0000, bar.size(), bar.data());
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  std::vector<uint8_t> rom(0x1000);
  r.kind = VIOMMU_REGION_RAM;
  r.flags = VIOMMU_REGION_F_READONLY;
  r.gpa = 0x9000'0000;
  r.hva = rom.data();
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  viommu_ep* ep = Identity(0x10);
  Mapping m;
  viommu_dma_fault f{};
  f.size = sizeof(f);
  EXPECT_EQ(Map(ep, 0x8000'0000, 8, VIOMMU_DMA_READ, &m), -EOPNOTSUPP);
  EXPECT_EQ(Map(ep, 0xfee0'0000, 4, VIOMMU_DMA_WRITE, &m), -EOPNOTSUPP);
  EXPECT_EQ(Map(ep, 0x9000'0000, 8, VIOMMU_DMA_WRITE, &m, &f), -EFAULT);
  EXPECT_EQ(f.reason, uint32_t{VIOMMU_FAULT_READONLY});
  EXPECT_EQ(Map(ep, 0x9000'0000, 8, VIOMMU_DMA_READ, &m), 0);
  EXPECT_EQ(viommu_dma_unmap_host(ep, m.host, m.len, 0), 0);
  EXPECT_EQ(Map(ep, 0x7000'0000, 8, VIOMMU_DMA_READ, &m, &f), -EFAULT);
  EXPECT_EQ(f.reason, uint32_t{VIOMMU_FAULT_UNASSIGNED});
  EXPECT_EQ(f.iova, 0x7000'0000u);
  EXPECT_EQ(f.flags, 0u);
  ASSERT_EQ(seen_.faults.size(), 2u);  // one per failed map
  EXPECT_EQ(seen_.faults[1].iova, 0x7000'0000u);
}

TEST_F(CapiDmaHostTest, UnmappedIovaIsATranslationFaultRecordedByVtd) {
  AddRam();
  VtdGuest* g = nullptr;
  viommu_ep* ep = Translated("", &g);
  Mapping m;
  viommu_dma_fault f{};
  f.size = sizeof(f);
  EXPECT_EQ(Map(ep, 0x7000'0000, 8, VIOMMU_DMA_WRITE, &m, &f), -EFAULT);
  EXPECT_EQ(f.reason, uint32_t{VIOMMU_FAULT_TRANSLATION});
  EXPECT_EQ(f.flags, uint32_t{VIOMMU_FAULT_F_WRITE});
  EXPECT_EQ(f.sid, 0x0020u);
  EXPECT_NE(g->ReadReg32(vtd::Reg32::kFsts) & vtd::kFstsPpf, 0u);
  EXPECT_EQ(seen_.faults.size(), 1u);
}

TEST_F(CapiDmaHostTest, BadArgumentsAreEinval) {
  AddRam();
  viommu_ep* ep = Identity();
  uint64_t len = 8;
  void* host = nullptr;
  EXPECT_EQ(viommu_dma_map_host(nullptr, 0, &len, 0, nullptr, &host, nullptr),
            -EINVAL);
  EXPECT_EQ(viommu_dma_map_host(ep, 0, nullptr, 0, nullptr, &host, nullptr),
            -EINVAL);
  EXPECT_EQ(viommu_dma_map_host(ep, 0, &len, 0, nullptr, nullptr, nullptr),
            -EINVAL);
  EXPECT_EQ(viommu_dma_map_host(ep, 0, &len, 4, nullptr, &host, nullptr),
            -EINVAL);
  uint64_t zero = 0;
  EXPECT_EQ(viommu_dma_map_host(ep, 0, &zero, 0, nullptr, &host, nullptr),
            -EINVAL);
  viommu_dma_fault small{};
  small.size = 4;
  EXPECT_EQ(viommu_dma_map_host(ep, 0, &len, 0, nullptr, &host, &small),
            -EINVAL);
  EXPECT_EQ(viommu_dma_unmap_host(nullptr, ram_, 8, 0), -EINVAL);
  EXPECT_EQ(viommu_dma_unmap_host(ep, nullptr, 8, 0), -EINVAL);
  ASSERT_EQ(viommu_dma_map_host(ep, 0, &len, 0, nullptr, &host, nullptr), 0);
  EXPECT_EQ(viommu_dma_unmap_host(ep, host, len, len + 1), -EINVAL);
  EXPECT_EQ(viommu_dma_unmap_host(ep, host, len + 1, 0), -ENOENT);
  viommu_ep* other = Identity(0x28);
  EXPECT_EQ(viommu_dma_unmap_host(other, host, len, 0), -ENOENT);
  EXPECT_EQ(viommu_dma_unmap_host(ep, host, len, 0), 0);
}

TEST_F(CapiDmaHostTest, PageInvalidationRevokesWithoutCachingMode) {
  AddRam();
  VtdGuest* g = nullptr;
  viommu_ep* ep = Translated("", &g);
  Mapping a, b;
  ASSERT_EQ(Map(ep, kIova, 0x1000, VIOMMU_DMA_READ, &a), 0);
  ASSERT_EQ(Map(ep, kIova + 0x1000, 0x1000, VIOMMU_DMA_READ, &b), 0);
  // The guest remaps the second page and invalidates it: only b goes.
  g->Map(kIova + 0x1000, kTarget + 0x5000, 3);
  g->InvalidatePage(1, kIova + 0x1000);
  ASSERT_EQ(seen_.revoked.size(), 1u);
  EXPECT_EQ(seen_.revoked[0], &b);
  // Revoked, still mapped until the VMM unmaps it; a new map sees the new
  // translation.
  Mapping c;
  ASSERT_EQ(Map(ep, kIova + 0x1000, 0x1000, VIOMMU_DMA_READ, &c), 0);
  EXPECT_EQ(c.host, ram_ + kTarget + 0x5000);
  EXPECT_EQ(viommu_dma_unmap_host(ep, b.host, b.len, 0), 0);
  // A second invalidation revokes what is live and not yet revoked.
  g->Reg64(vtd::Reg64::kIotlb, vtd::kIotlbIvt | 1ull << vtd::kIotlbIirgShift);
  ASSERT_EQ(seen_.revoked.size(), 3u);
  EXPECT_EQ(viommu_dma_unmap_host(ep, a.host, a.len, 0), 0);
  EXPECT_EQ(viommu_dma_unmap_host(ep, c.host, c.len, 0), 0);
}

TEST_F(CapiDmaHostTest, CachingModeRemapRevokes) {
  AddRam();
  VtdGuest* g = nullptr;
  viommu_ep* ep = Translated("caching-mode=on", &g);
  g->InvalidatePage(1, kIova);  // caching mode: the guest's map is notified
  Mapping a;
  ASSERT_EQ(Map(ep, kIova, 0x1000, VIOMMU_DMA_WRITE, &a), 0);
  g->Map(kIova, 0, 0);  // unmapped by the guest
  g->InvalidatePage(1, kIova);
  ASSERT_EQ(seen_.revoked.size(), 1u);
  EXPECT_EQ(seen_.revoked[0], &a);
  EXPECT_EQ(viommu_dma_unmap_host(ep, a.host, a.len, 0), 0);
}

TEST_F(CapiDmaHostTest, TranslationSwitchRevokes) {
  AddRam();
  VtdGuest* g = nullptr;
  viommu_ep* ep = Translated("", &g);
  Mapping a, p;
  ASSERT_EQ(Map(ep, kIova, 0x1000, VIOMMU_DMA_READ, &a), 0);
  // The guest turns translation off (GCMD.TE = 0): the DMA space
  // switches to guest-physical memory.
  g->Reg32(vtd::Reg32::kGcmd, 0);
  ASSERT_EQ(seen_.revoked.size(), 1u);
  EXPECT_EQ(seen_.revoked[0], &a);
  // Now identity: a map of a guest-physical address, revoked when the
  // guest turns translation back on.
  ASSERT_EQ(Map(ep, kTarget, 0x1000, VIOMMU_DMA_READ, &p), 0);
  EXPECT_EQ(p.host, ram_ + kTarget);
  g->Enable();
  ASSERT_EQ(seen_.revoked.size(), 2u);
  EXPECT_EQ(seen_.revoked[1], &p);
  EXPECT_EQ(viommu_dma_unmap_host(ep, a.host, a.len, 0), 0);
  EXPECT_EQ(viommu_dma_unmap_host(ep, p.host, p.len, 0), 0);
}

TEST_F(CapiDmaHostTest, IommuResetRevokes) {
  AddRam();
  viommu_iommu* iommu = nullptr;
  ASSERT_EQ(viommu_iommu_new(ctx_, "intel-iommu", "", &iommu), 0);
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, iommu, &ep), 0);
  VtdGuest g(ram_, ctx_);
  g.SetContext(0x20, 1);
  g.Map(kIova, kTarget, 3);
  g.Enable();
  Mapping a;
  ASSERT_EQ(Map(ep, kIova, 0x1000, VIOMMU_DMA_READ, &a), 0);
  ASSERT_EQ(viommu_iommu_reset(iommu), 0);
  ASSERT_EQ(seen_.revoked.size(), 1u);
  EXPECT_EQ(viommu_dma_unmap_host(ep, a.host, a.len, 0), 0);
}

TEST_F(CapiDmaHostTest, SnoopControlMeansNoZeroCopy) {
  AddRam();
  VtdGuest* g = nullptr;
  viommu_ep* ep = Translated("snoop-control=on", &g);
  Mapping a;
  EXPECT_EQ(Map(ep, kIova, 0x1000, VIOMMU_DMA_READ, &a), -EOPNOTSUPP);
  uint64_t v = 0;
  EXPECT_EQ(viommu_dma_rw(ep, kIova, &v, 8, VIOMMU_DMA_READ, nullptr), 0);
}

TEST_F(CapiDmaHostTest, RamRemovalIsEbusyWhileMappedAndRevokes) {
  const uint32_t ram = AddRam();
  viommu_ep* ep = Identity();
  Mapping a;
  ASSERT_EQ(Map(ep, 0x5000, 0x100, VIOMMU_DMA_READ, &a), 0);
  EXPECT_EQ(viommu_region_del(ctx_, ram), -EBUSY);
  EXPECT_TRUE(rec_.LogContains("zero-copy"));
  ASSERT_EQ(seen_.revoked.size(), 1u);
  EXPECT_EQ(seen_.revoked[0], &a);
  // Revoked once, not again on the retry.
  EXPECT_EQ(viommu_region_del(ctx_, ram), -EBUSY);
  EXPECT_EQ(seen_.revoked.size(), 1u);
  EXPECT_EQ(viommu_dma_unmap_host(ep, a.host, a.len, 0), 0);
  EXPECT_EQ(viommu_region_del(ctx_, ram), 0);
  uint64_t v = 0;
  EXPECT_EQ(viommu_dma_rw(ep, 0x5000, &v, 8, VIOMMU_DMA_READ, nullptr),
            -EFAULT);
}

TEST_F(CapiDmaHostTest, RamRemovalSucceedsWhenDmaRevokedUnmaps) {
  const uint32_t ram = AddRam();
  viommu_ep* ep = Identity();
  Mapping a;
  ASSERT_EQ(Map(ep, 0x5000, 0x100, VIOMMU_DMA_READ, &a), 0);
  seen_.unmap_in_callback = true;
  EXPECT_EQ(viommu_region_del(ctx_, ram), 0);
  EXPECT_EQ(seen_.unmap_result, 0);
  EXPECT_EQ(seen_.revoked.size(), 1u);
}

TEST_F(CapiDmaHostTest, MapOfRamRemovedInAnOpenTransactionIsEfault) {
  const uint32_t ram = AddRam();
  viommu_ep* ep = Identity();
  ASSERT_EQ(viommu_transaction_begin(ctx_), 0);
  ASSERT_EQ(viommu_region_del(ctx_, ram), 0);
  // The published map still shows it; DMA copies still work ...
  uint64_t v = 0;
  EXPECT_EQ(viommu_dma_rw(ep, 0x5000, &v, 8, VIOMMU_DMA_READ, nullptr), 0);
  // ... but no new pointer into it is handed out.
  Mapping a;
  viommu_dma_fault f{};
  f.size = sizeof(f);
  EXPECT_EQ(Map(ep, 0x5000, 8, VIOMMU_DMA_READ, &a, &f), -EFAULT);
  EXPECT_EQ(f.reason, uint32_t{VIOMMU_FAULT_UNASSIGNED});
  ASSERT_EQ(viommu_transaction_commit(ctx_), 0);
  EXPECT_EQ(Map(ep, 0x5000, 8, VIOMMU_DMA_READ, &a, &f), -EFAULT);
  // A region added again at the same place maps.
  AddRam();
  EXPECT_EQ(Map(ep, 0x5000, 8, VIOMMU_DMA_READ, &a), 0);
  EXPECT_EQ(viommu_dma_unmap_host(ep, a.host, a.len, 0), 0);
}

TEST_F(CapiDmaHostTest, EndpointAndContextFreeRevoke) {
  AddRam();
  viommu_ep* ep = Identity();
  viommu_ep* other = Identity(0x28);
  Mapping a, b;
  ASSERT_EQ(Map(ep, 0x5000, 8, VIOMMU_DMA_READ, &a), 0);
  ASSERT_EQ(Map(other, 0x6000, 8, VIOMMU_DMA_READ, &b), 0);
  viommu_ep_free(ep);
  ASSERT_EQ(seen_.revoked.size(), 1u);
  EXPECT_EQ(seen_.revoked[0], &a);
  viommu_ctx_free(ctx_);
  ctx_ = nullptr;
  ASSERT_EQ(seen_.revoked.size(), 2u);
  EXPECT_EQ(seen_.revoked[1], &b);
}

// A DMA thread blocked inside an MMIO callback does not hold up a RAM
// removal (the callback's thread is paused out of the grace period), so a
// callback may wait for the thread that removes RAM.
struct Blocker {
  std::atomic<bool> entered{false};
  std::atomic<bool> release{false};
  static int Read(void* opaque, uint64_t, uint64_t* data, uint32_t) {
    auto* b = static_cast<Blocker*>(opaque);
    b->entered.store(true);
    while (!b->release.load()) std::this_thread::yield();
    *data = 1;
    return 0;
  }
  static int Write(void*, uint64_t, uint64_t, uint32_t) { return 0; }
};

TEST_F(CapiDmaHostTest, RamRemovalDoesNotWaitForADmaThreadInACallback) {
  AddRam();
  std::vector<uint8_t> extra(0x1000, 0x11);
  viommu_region r{};
  r.size = sizeof(r);
  r.kind = VIOMMU_REGION_RAM;
  r.gpa = 0x4000'0000;
  r.len = extra.size();
  r.hva = extra.data();
  r.fd = -1;
  uint32_t extra_id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &extra_id), 0);
  Blocker blocker;
  viommu_region mmio{};
  mmio.size = sizeof(mmio);
  mmio.kind = VIOMMU_REGION_MMIO;
  mmio.gpa = 0x5000'0000;
  mmio.len = 0x1000;
  mmio.read = &Blocker::Read;
  mmio.write = &Blocker::Write;
  mmio.opaque = &blocker;
  uint32_t mmio_id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &mmio, &mmio_id), 0);
  viommu_ep* ep = Identity();
  std::thread dma([&] {
    uint64_t v = 0;
    EXPECT_EQ(viommu_dma_rw(ep, 0x5000'0000, &v, 4, VIOMMU_DMA_READ, nullptr),
              0);
  });
  while (!blocker.entered.load()) std::this_thread::yield();
  EXPECT_EQ(viommu_region_del(ctx_, extra_id), 0);  // returns: not held up
  blocker.release.store(true);
  dma.join();
}

}  // namespace
}  // namespace viommu::capi::testing
