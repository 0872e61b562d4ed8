// tests/hw/iommu/fake_guest_memory.h — a GuestMemory over a sparse set of
// 4K pages. Accesses that touch a page that was never written (or was
// removed) fail, which is how tests make root, context and page-table reads
// fail. Counts Read calls so tests can check how a walk reads memory.
//
//   vtd::testing::FakeGuestMemory mem;
//   mem.WriteU64(0x1000, 0x2001);       // creates the page, zero-filled
//   mem.AddPage(0x5000);                // an all-zero page
//   mem.RemovePage(0x1000);             // reads of it now fail
//   EXPECT_EQ(mem.read_count(), 0u);
//
// Threading: not thread-safe (test use only).
#ifndef VIOMMU_TESTS_HW_IOMMU_FAKE_GUEST_MEMORY_H_
#define VIOMMU_TESTS_HW_IOMMU_FAKE_GUEST_MEMORY_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "viommu/hw/iommu/vtd_guest_memory.h"

namespace viommu::vtd::testing {

class FakeGuestMemory final : public GuestMemory {
 public:
  static constexpr uint64_t kPageSize = 4096;

  bool Read(Hwaddr addr, void* buf, size_t len) override {
    ++read_count_;
    return Access(addr, buf, len, /*write=*/false);
  }
  bool Write(Hwaddr addr, const void* buf, size_t len) override {
    return Access(addr, const_cast<void*>(buf), len, /*write=*/true);
  }

  // Makes the page containing `addr` readable (zero-filled if new).
  void AddPage(Hwaddr addr) { Page(addr); }
  // Makes the page containing `addr` unreadable again.
  void RemovePage(Hwaddr addr) { pages_.erase(addr / kPageSize); }
  bool HasPage(Hwaddr addr) const { return pages_.count(addr / kPageSize); }

  // Stores `v` little-endian at `addr`, creating pages as needed.
  void WriteU64(Hwaddr addr, uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      Page(addr + i)[(addr + i) % kPageSize] =
          static_cast<uint8_t>(v >> (8 * i));
    }
  }
  // Reads back what WriteU64 stored; 0 in an absent page.
  uint64_t ReadU64(Hwaddr addr) const {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) {
      auto it = pages_.find((addr + i) / kPageSize);
      if (it != pages_.end()) {
        v |= uint64_t{(*it->second)[(addr + i) % kPageSize]} << (8 * i);
      }
    }
    return v;
  }

  uint64_t read_count() const { return read_count_; }
  void reset_read_count() { read_count_ = 0; }
  size_t page_count() const { return pages_.size(); }

 private:
  using PageData = std::array<uint8_t, kPageSize>;

  uint8_t* Page(Hwaddr addr) {
    auto& p = pages_[addr / kPageSize];
    if (!p) p = std::make_unique<PageData>();  // value-initialized: zeros
    return p->data();
  }

  // All pages must exist before any byte moves, so a failed access has no
  // partial effect.
  bool Access(Hwaddr addr, void* buf, size_t len, bool write) {
    for (Hwaddr a = addr & ~(kPageSize - 1); a < addr + len; a += kPageSize) {
      if (!pages_.count(a / kPageSize)) return false;
    }
    auto* bytes = static_cast<uint8_t*>(buf);
    while (len > 0) {
      const size_t off = addr % kPageSize;
      const size_t n = std::min<size_t>(len, kPageSize - off);
      uint8_t* page = pages_[addr / kPageSize]->data();
      if (write) {
        std::memcpy(page + off, bytes, n);
      } else {
        std::memcpy(bytes, page + off, n);
      }
      addr += n;
      bytes += n;
      len -= n;
    }
    return true;
  }

  std::unordered_map<uint64_t, std::unique_ptr<PageData>> pages_;
  uint64_t read_count_ = 0;
};

}  // namespace viommu::vtd::testing

#endif  // VIOMMU_TESTS_HW_IOMMU_FAKE_GUEST_MEMORY_H_
