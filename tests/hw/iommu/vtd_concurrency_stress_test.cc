// DMA threads translate and read through two devices' VT-d address spaces
// while the control thread remaps pages and drives the register block:
// page, domain and global IOTLB invalidations, context invalidations,
// SRTP and TE toggles. Run under ThreadSanitizer in CI (`make tsan`): no
// data race, no crash, and every DMA read returns the old or the new
// page's content, never anything else.
//
// Guest RAM and the DMA threads: the page tables are guest memory read
// with plain copies (as QEMU does), so a guest that rewrites an entry
// while a walk reads it races by definition. The control thread therefore
// writes guest RAM only while the DMA threads are parked (a handshake
// through atomics, so TSan sees the ordering); everything else — the
// invalidations that make a remap visible, address-space switches, cache
// flushes — runs while they translate. IOVA page i maps either to its old
// page (at the same address, so TE off reads the old content too) or to
// its new page. DMA threads touch mapped IOVAs only.
//
// FaultsRecordWhileGuestServicesThem: DMA threads fault (unmapped IOVAs)
// while the control thread reads and clears the fault registers as a
// guest's fault handler does: IntelIommu's lock serialises the records
// with the register accesses (no race under TSan), and the registers stay
// consistent (FSTS.PPF set exactly when a record is pending).
//
// StateMutexExcludesAndWakesWaiters: that lock alone (vtd_state_mutex.h),
// held by several threads in turn, some of them sleeping while they hold
// it so the others wait in the kernel: no increment of a plain counter is
// lost and every waiter is woken.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/hw/iommu/vtd_machine_guest.h"
#include "viommu/hw/i386/q35_machine.h"
#include "viommu/hw/iommu/vtd_state_mutex.h"
#include "viommu/hw/pci/pci_regs.h"
#include "viommu/memory/address_space.h"

namespace viommu::vtd {
namespace {

using testing::kPage4K;
using testing::VtdMachineGuest;

constexpr uint8_t kEduDevfn = 0x20;      // 04.0
constexpr uint8_t kTestdevDevfn = 0x28;  // 05.0
constexpr uint16_t kDid = 1;
constexpr int kPages = 16;
// IOVA page i is at kOld + i * 4K, identity-mapped to its old page, or
// mapped to kNew + i * 4K.
constexpr uint64_t kOld = 0x40'0000;
constexpr uint64_t kNew = 0x80'0000;
constexpr int kDmaThreads = 3;

uint64_t OldValue(int i) { return 0x01d0'0000'0000'0000ull | uint64_t(i); }
uint64_t NewValue(int i) { return 0x0e30'0000'0000'0000ull | uint64_t(i); }

// Parks the DMA threads so the control thread can write guest RAM.
class Parking {
 public:
  // DMA thread, between accesses.
  void MaybePark(int thread) {
    const uint64_t gen = pause_gen_.load(std::memory_order_acquire);
    if (gen == resume_gen_.load(std::memory_order_acquire)) return;
    acked_[thread].store(gen, std::memory_order_release);
    while (resume_gen_.load(std::memory_order_acquire) != gen) {
      std::this_thread::yield();
    }
  }
  // Control thread: returns once every DMA thread is parked.
  void Pause(int threads) {
    const uint64_t gen = pause_gen_.fetch_add(1) + 1;
    for (int t = 0; t < threads; ++t) {
      while (acked_[t].load(std::memory_order_acquire) != gen &&
             !finished_[t].load(std::memory_order_acquire)) {
        std::this_thread::yield();
      }
    }
  }
  void Resume() {
    resume_gen_.store(pause_gen_.load(), std::memory_order_release);
  }
  void Finished(int thread) {
    finished_[thread].store(true, std::memory_order_release);
  }

 private:
  std::atomic<uint64_t> pause_gen_{0};
  std::atomic<uint64_t> resume_gen_{0};
  std::atomic<uint64_t> acked_[kDmaThreads] = {};
  std::atomic<bool> finished_[kDmaThreads] = {};
};

TEST(VtdConcurrencyStressTest, DmaSeesOldOrNewPageWhileGuestRemaps) {
  auto m = *hw::Q35Machine::Create({.ram_size = 32 << 20});
  ASSERT_TRUE(m->AddDevice({.driver = "intel-iommu"}).ok());
  ASSERT_TRUE(
      m->AddDevice({.driver = "edu", .props = {{"addr", "04.0"}}}).ok());
  ASSERT_TRUE(
      m->AddDevice({.driver = "dma-testdev", .props = {{"addr", "05.0"}}})
          .ok());
  VtdMachineGuest g(m.get(), /*levels=*/3);
  for (uint8_t devfn : {kEduDevfn, kTestdevDevfn}) {
    g.SetContext(devfn, kDid);
  }
  for (int i = 0; i < kPages; ++i) {
    for (uint64_t off = 0; off < kPage4K; off += 8) {
      g.Write64(kOld + i * kPage4K + off, OldValue(i));
      g.Write64(kNew + i * kPage4K + off, NewValue(i));
    }
    g.Map(kOld + i * kPage4K, kOld + i * kPage4K, kPage4K,
          memory::kIommuReadWrite);
  }
  g.Enable();

  // The DMA views, made on the control thread before the threads start.
  const uint8_t devfns[kDmaThreads] = {kEduDevfn, kEduDevfn, kTestdevDevfn};
  std::vector<std::unique_ptr<memory::AddressSpace>> dma;
  for (uint8_t devfn : devfns) {
    dma.push_back(std::make_unique<memory::AddressSpace>(
        &m->memory(), m->pci_bus().DmaRootFor(devfn), "dma"));
  }

  Parking parking;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bad{0}, failed{0}, reads{0}, new_reads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kDmaThreads; ++t) {
    threads.emplace_back([&, t] {
      const auto attrs = memory::MemTxAttrs::Requester(devfns[t]);
      uint64_t x = 0x9e3779b97f4a7c15ull * (t + 1);
      while (!stop.load(std::memory_order_acquire)) {
        parking.MaybePark(t);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const int i = static_cast<int>(x % kPages);
        const uint64_t off = (x >> 8) % (kPage4K / 8) * 8;
        uint64_t v = 0;
        if (!dma[t]->Read(kOld + i * kPage4K + off, &v, 8, attrs).ok()) {
          failed.fetch_add(1, std::memory_order_relaxed);
        } else if (v == NewValue(i)) {
          new_reads.fetch_add(1, std::memory_order_relaxed);
        } else if (v != OldValue(i)) {
          bad.fetch_add(1, std::memory_order_relaxed);
        }
        reads.fetch_add(1, std::memory_order_relaxed);
      }
      parking.Finished(t);
    });
  }

  // Control thread. Remaps flip one page between old and new; each kind of
  // invalidation makes it visible. The loop is bounded in rounds and time
  // (TSan is slow); no assertion depends on timing.
  bool mapped_new[kPages] = {};
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(1200);
  int rounds = 0;
  for (; rounds < 4000 && std::chrono::steady_clock::now() < deadline;
       ++rounds) {
    const int i = rounds * 7 % kPages;
    const uint64_t iova = kOld + i * kPage4K;
    switch (rounds % 8) {
      case 0:
      case 1:
      case 2:
      case 3: {
        mapped_new[i] = !mapped_new[i];
        parking.Pause(kDmaThreads);
        g.Map(iova, mapped_new[i] ? kNew + i * kPage4K : iova, kPage4K,
              memory::kIommuReadWrite);
        parking.Resume();
        if (rounds % 4 == 0) g.InvalidatePage(kDid, iova, 0);
        if (rounds % 4 == 1) g.InvalidatePage(kDid, iova & ~0xffffull, 4);
        if (rounds % 4 == 2) g.InvalidateDomain(kDid);
        if (rounds % 4 == 3) g.InvalidateGlobal();
        break;
      }
      case 4:
        g.InvalidateContextGlobal();
        break;
      case 5:
        g.InvalidateContextDevice(rounds % 16 < 8 ? kEduDevfn : kTestdevDevfn);
        break;
      case 6:
        g.SetRoot();  // SRTP: caches flushed, spaces re-evaluated
        break;
      case 7:
        g.Disable();  // TE off: identity, which reads the old pages
        g.WriteReg32(Reg32::kGcmd, kGcmdTe);
        break;
    }
  }
  stop.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();

  std::printf("%d control rounds, %llu DMA reads (%llu of new pages)\n", rounds,
              static_cast<unsigned long long>(reads.load()),
              static_cast<unsigned long long>(new_reads.load()));
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_EQ(failed.load(), 0u);
  EXPECT_GT(reads.load(), 0u);
  EXPECT_GT(new_reads.load(), 0u);  // remaps reached the DMA threads
  EXPECT_GT(rounds, 8);
  EXPECT_EQ(g.ReadReg32(Reg32::kFsts), 0u);  // no DMA faulted
  EXPECT_EQ(g.ReadReg32(Reg32::kGsts) & kGstsTes, kGstsTes);
}

TEST(VtdConcurrencyStressTest, FaultsRecordWhileGuestServicesThem) {
  auto m = *hw::Q35Machine::Create({.ram_size = 32 << 20});
  ASSERT_TRUE(m->AddDevice({.driver = "intel-iommu"}).ok());
  ASSERT_TRUE(
      m->AddDevice({.driver = "edu", .props = {{"addr", "04.0"}}}).ok());
  ASSERT_TRUE(
      m->AddDevice({.driver = "dma-testdev", .props = {{"addr", "05.0"}}})
          .ok());
  VtdMachineGuest g(m.get(), /*levels=*/3);
  for (uint8_t devfn : {kEduDevfn, kTestdevDevfn}) g.SetContext(devfn, kDid);
  g.Enable();  // nothing mapped: every DMA faults (reason 6, read)

  const uint8_t devfns[kDmaThreads] = {kEduDevfn, kEduDevfn, kTestdevDevfn};
  std::vector<std::unique_ptr<memory::AddressSpace>> dma;
  for (uint8_t devfn : devfns) {
    dma.push_back(std::make_unique<memory::AddressSpace>(
        &m->memory(), m->pci_bus().DmaRootFor(devfn), "dma"));
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> faulted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kDmaThreads; ++t) {
    threads.emplace_back([&, t] {
      const auto attrs = memory::MemTxAttrs::Requester(devfns[t]);
      uint64_t iova = 0x1000'0000 + t * 0x10'0000;
      while (!stop.load(std::memory_order_acquire)) {
        uint64_t v = 0;
        if (!dma[t]->Read(iova, &v, 8, attrs).ok()) {
          faulted.fetch_add(1, std::memory_order_relaxed);
        }
        iova += kPage4K;
      }
    });
  }

  // The guest's fault handler: read FSTS and the records, clear F of each
  // pending one, clear PFO; now and then mask and unmask the event.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(800);
  int rounds = 0, seen = 0;
  for (; std::chrono::steady_clock::now() < deadline; ++rounds) {
    const uint32_t fsts = g.ReadReg32(Reg32::kFsts);
    for (int i = 0; i < kNumFrcd; ++i) {
      const uint16_t hi = Offset(Reg32::kFrcd0Dw3) + 16 * i;
      const uint32_t dw3 = g.ReadReg32(static_cast<Reg32>(hi));
      if (dw3 & (kFrcdF >> 32)) {
        ++seen;
        g.WriteReg32(static_cast<Reg32>(hi), kFrcdF >> 32);
      }
    }
    if (fsts & kFstsPfo) g.WriteReg32(Reg32::kFsts, kFstsPfo);
    if (rounds % 64 == 0) g.WriteReg32(Reg32::kFectl, kFectlIm);
    if (rounds % 64 == 32) g.WriteReg32(Reg32::kFectl, 0);
  }
  stop.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();

  std::printf(
      "%d handler rounds, %d records serviced, %llu faulting reads, "
      "%llu faults reported\n",
      rounds, seen, static_cast<unsigned long long>(faulted.load()),
      static_cast<unsigned long long>(m->vtd_engine()->stats().faults));
  EXPECT_GT(faulted.load(), 0u);
  EXPECT_GT(seen, 0);
  // Quiescent now: PPF is set exactly when some record is pending.
  bool pending = false;
  for (int i = 0; i < kNumFrcd; ++i) {
    pending |=
        (g.ReadReg32(static_cast<Reg32>(Offset(Reg32::kFrcd0Dw3) + 16 * i)) &
         (kFrcdF >> 32)) != 0;
  }
  EXPECT_EQ((g.ReadReg32(Reg32::kFsts) & kFstsPpf) != 0, pending);
}

TEST(VtdConcurrencyStressTest, StateMutexExcludesAndWakesWaiters) {
  StateMutex mu;
  uint64_t counter = 0;  // plain: only ever touched under mu
  constexpr int kThreads = 4;
  constexpr int kRounds = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        mu.Lock();
        const uint64_t seen = counter;
        if (i % 1000 == t) {
          // Hold it a while: the others find it taken and sleep.
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        counter = seen + 1;
        mu.Unlock();
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(counter, uint64_t{kThreads} * kRounds);
}

}  // namespace
}  // namespace viommu::vtd
