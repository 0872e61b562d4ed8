// Readers on other threads access the address space while the control
// thread keeps changing the topology. Run under ThreadSanitizer in CI
// (`make tsan`): no data race, no use-after-free, and every read sees
// either the old or the new mapping, never a torn one.
#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::memory {
namespace {

// Answers every read with a constant; thread-safe (no state).
class ConstantMmio final : public MmioOps {
 public:
  explicit ConstantMmio(uint32_t value) : value_(value) {}
  MemTxResult Read(uint64_t, uint64_t* v, unsigned, MemTxAttrs) override {
    *v = value_;
    return MemTxResult::Ok();
  }
  MemTxResult Write(uint64_t, uint64_t, unsigned, MemTxAttrs) override {
    return MemTxResult::Ok();
  }

 private:
  uint32_t value_;
};

constexpr uint32_t kRamPattern = 0x5a5a5a5a;
constexpr uint32_t kOverlayValue = 0x0ddba11;
constexpr uint64_t kPages = 64;

TEST(ConcurrencyStressTest, ReadersSeeOldOrNewViewDuringTopologyChanges) {
  MemorySystem sys;
  auto root = MemoryRegion::CreateContainer(&sys, "root", kSize2To64);
  auto ram = *MemoryRegion::CreateRam(&sys, "ram", kPages * 0x1000);
  for (uint64_t i = 0; i < kPages * 0x1000 / 4; ++i) {
    std::memcpy(ram->host() + 4 * i, &kRamPattern, 4);
  }
  root->AddSubregion(0, ram);
  AddressSpace as(&sys, root, "as");
  ConstantMmio overlay_ops(kOverlayValue);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bad{0}, reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      uint64_t page = static_cast<uint64_t>(t);
      while (!stop.load(std::memory_order_relaxed)) {
        uint32_t v = 0;
        page = (page * 7 + 3) % kPages;
        MemTxResult r = as.Read(page * 0x1000 + 0x10, &v, 4);
        if (!r.ok() || (v != kRamPattern && v != kOverlayValue)) {
          bad.fetch_add(1);
        }
        Translation tr = as.Translate(page * 0x1000, 4, false);
        if (tr.mr == nullptr || tr.mr->name().empty()) bad.fetch_add(1);
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }

  // Control thread: overlays come and go; each one is dropped right after
  // removal while readers may still hold the old view.
  for (int round = 0; round < 2000; ++round) {
    auto overlay = MemoryRegion::CreateMmio(&sys, "overlay", 0x1000, &overlay_ops);
    uint64_t page = static_cast<uint64_t>(round) % kPages;
    root->AddSubregionOverlap(page * 0x1000, overlay, 1);
    if (round % 3 == 0) {
      MemorySystem::Transaction txn(&sys);
      overlay->SetAddress(((page + 5) % kPages) * 0x1000);
      ram->SetReadonly(round % 2 == 0);
    }
    root->RemoveSubregion(overlay.get());
    overlay.reset();
  }
  stop.store(true);
  for (auto& th : readers) th.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(reads.load(), 0u);
}

}  // namespace
}  // namespace viommu::memory
