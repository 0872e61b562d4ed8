// Type1Iommu against a tiny reference model: random MAP/UNMAP sequences on
// a type1v2 container with two domains; every result, the mapping count,
// dma_avail, locked_vm and both domains' contents must agree.
#include <cerrno>
#include <map>
#include <random>

#include "gtest/gtest.h"
#include "tests/vfio/host/model/type1_test_util.h"
#include "viommu/vfio/host/model/type1_iommu.h"

namespace viommu::vfio::model {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kSlots = 64;         // IOVA space of the test: 64 pages
constexpr uint64_t kBase = 0xfedf0000;  // straddles the MSI window start
constexpr uint32_t kLimit = 6;          // small enough to reach ENOSPC

struct Reference {
  std::map<uint64_t, uint64_t> dmas;  // iova -> size

  bool Overlaps(uint64_t iova, uint64_t size) const {
    for (const auto& [s, n] : dmas) {
      if (s < iova + size && iova < s + n) return true;
    }
    return false;
  }
  int Map(uint64_t iova, uint64_t size) {
    if (Overlaps(iova, size)) return -EEXIST;
    if (dmas.size() == kLimit) return -ENOSPC;
    // Valid windows: below 0xfee00000 or above 0xfeefffff.
    if (iova + size - 1 >= 0xfee00000 && iova <= 0xfeefffff) return -EINVAL;
    dmas[iova] = size;
    return 0;
  }
  UnmapResult Unmap(uint64_t iova, uint64_t size) {
    const uint64_t last = iova + size - 1;
    for (const auto& [s, n] : dmas) {
      const uint64_t l = s + n - 1;
      if (s < iova && l >= iova) return {-EINVAL, size};
      if (s <= last && l > last) return {-EINVAL, size};
    }
    uint64_t removed = 0;
    for (auto it = dmas.begin(); it != dmas.end();) {
      if (it->first >= iova && it->first <= last) {
        removed += it->second;
        it = dmas.erase(it);
      } else {
        ++it;
      }
    }
    return {0, removed};
  }
};

TEST(Type1PropertyTest, RandomMapUnmapMatchesTheReference) {
  ProcessMemory mem;
  AnonBuffer ram(kSlots * kPage);
  Type1Iommu iommu({.v2 = true, .dma_entry_limit = kLimit}, &mem, nullptr);
  ASSERT_EQ(iommu.AttachGroup(GroupDesc(1, 48, {MsiWindow()})), 0);
  ASSERT_EQ(iommu.AttachGroup(GroupDesc(3, 39, {MsiWindow()})), 0);
  ASSERT_EQ(iommu.domain_count(), 2u);
  const std::vector<IovaWindow> windows = iommu.iova_list();
  Type1Client c = Type1Client::ForIommu(&iommu);
  Reference ref;
  std::mt19937_64 rng(12345);
  std::map<int, int> seen;  // result (1: unmap removed something) -> count
  for (int step = 0; step < 20000; ++step) {
    const uint64_t slot = rng() % kSlots;
    const uint64_t pages = 1 + rng() % std::min<uint64_t>(8, kSlots - slot);
    const uint64_t iova = kBase + slot * kPage;
    const uint64_t size = pages * kPage;
    if (rng() % 2 == 0) {
      const int want = ref.Map(iova, size);
      ASSERT_EQ(c.Map(iova, size, ram.addr() + slot * kPage), want)
          << "step " << step << " map 0x" << std::hex << iova << "+0x" << size;
      ++seen[want];
    } else {
      const UnmapResult want = ref.Unmap(iova, size);
      ASSERT_EQ(c.Unmap(iova, size), want) << "step " << step << " unmap 0x"
                                           << std::hex << iova << "+0x" << size;
      ++seen[want.rc == 0 && want.size > 0 ? 1 : want.rc];
    }
    uint64_t pinned = 0;
    for (const auto& [s, n] : ref.dmas) pinned += n / kPage;
    ASSERT_EQ(iommu.mapping_count(), ref.dmas.size());
    ASSERT_EQ(iommu.dma_avail(), kLimit - ref.dmas.size());
    ASSERT_EQ(mem.locked_pages(), pinned);
    for (uint32_t g : {1u, 3u}) {
      const HostIommuDomain* d = iommu.DomainOfGroup(g);
      ASSERT_EQ(d->mapping_count(), ref.dmas.size());
      ASSERT_EQ(d->mapped_bytes(), pinned * kPage);
    }
  }
  EXPECT_EQ(iommu.iova_list(), windows);
  for (int rc : {0, 1, -EEXIST, -ENOSPC, -EINVAL}) {
    EXPECT_GT(seen[rc], 0) << "never saw result " << rc;
  }
  for (const auto& [s, n] : ref.dmas) {
    const uint64_t want = ram.addr() + (s - kBase);
    EXPECT_EQ(iommu.DomainOfGroup(3)->IovaToHva(s), want);
  }
  EXPECT_EQ(c.Unmap(0, 0, uapi::kDmaUnmapFlagAll).rc, 0);
  EXPECT_EQ(mem.locked_pages(), 0u);
}

}  // namespace
}  // namespace viommu::vfio::model
