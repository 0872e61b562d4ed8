// ProcessMemory: the model's view of GUP and locked_vm.
#include "viommu/vfio/host/model/process_memory.h"

#include <sys/mman.h>

#include <cerrno>

#include "gtest/gtest.h"

namespace viommu::vfio::model {
namespace {

class MmapBuffer {
 public:
  explicit MmapBuffer(uint64_t len) : len_(len) {
    p_ = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
              -1, 0);
  }
  ~MmapBuffer() {
    if (p_ != MAP_FAILED) munmap(p_, len_);
  }
  uint64_t addr() const { return reinterpret_cast<uint64_t>(p_); }
  void UnmapPage(uint64_t index) {
    munmap(static_cast<char*>(p_) + index * kHostPageSize, kHostPageSize);
  }

 private:
  void* p_;
  uint64_t len_;
};

TEST(ProcessMemoryTest, ClassifiesMappedAndUnmappedMemory) {
  ProcessMemory mem;
  MmapBuffer buf(4 * kHostPageSize);
  EXPECT_EQ(mem.Classify(buf.addr(), 4 * kHostPageSize), VaddrKind::kAnonymous);
  EXPECT_EQ(mem.Classify(buf.addr() + 10, 1), VaddrKind::kAnonymous);
  buf.UnmapPage(2);
  EXPECT_EQ(mem.Classify(buf.addr(), 4 * kHostPageSize), VaddrKind::kUnmapped);
  EXPECT_EQ(mem.Classify(buf.addr(), 2 * kHostPageSize), VaddrKind::kAnonymous);
  EXPECT_EQ(mem.Classify(0x1000, kHostPageSize), VaddrKind::kUnmapped);
}

TEST(ProcessMemoryTest, DeviceMemoryIsPfnMapAndMixedRangesAreMixed) {
  ProcessMemory mem;
  MmapBuffer buf(4 * kHostPageSize);
  mem.AddDeviceMemory(buf.addr() + kHostPageSize, 2 * kHostPageSize);
  EXPECT_EQ(mem.Classify(buf.addr() + kHostPageSize, 2 * kHostPageSize),
            VaddrKind::kPfnMap);
  EXPECT_EQ(mem.Classify(buf.addr() + kHostPageSize + 8, 8),
            VaddrKind::kPfnMap);
  EXPECT_EQ(mem.Classify(buf.addr(), 4 * kHostPageSize), VaddrKind::kMixed);
  mem.RemoveDeviceMemory(buf.addr() + kHostPageSize);
  EXPECT_EQ(mem.Classify(buf.addr(), 4 * kHostPageSize), VaddrKind::kAnonymous);
}

TEST(ProcessMemoryTest, PinnableFollowsTheMappingPermissions) {
  ProcessMemory mem;
  MmapBuffer buf(4 * kHostPageSize);
  char* p = reinterpret_cast<char*>(buf.addr());
  // Page 1 read-only, page 2 inaccessible, before the first query (kernels
  // without PROCMAP_QUERY cache a yes).
  ASSERT_EQ(mprotect(p + kHostPageSize, kHostPageSize, PROT_READ), 0);
  ASSERT_EQ(mprotect(p + 2 * kHostPageSize, kHostPageSize, PROT_NONE), 0);
  EXPECT_FALSE(mem.Pinnable(buf.addr() + kHostPageSize, 8, true));
  EXPECT_TRUE(mem.Pinnable(buf.addr() + kHostPageSize, 8, false));
  EXPECT_FALSE(mem.Pinnable(buf.addr() + 2 * kHostPageSize, 8, false));
  EXPECT_FALSE(mem.Pinnable(buf.addr(), 2 * kHostPageSize, true));
  EXPECT_TRUE(mem.Pinnable(buf.addr(), 2 * kHostPageSize, false));
  EXPECT_TRUE(
      mem.Pinnable(buf.addr() + 3 * kHostPageSize, kHostPageSize, true));
  // An upgrade is seen at once (a "no" always re-reads the mappings).
  ASSERT_EQ(mprotect(p, 4 * kHostPageSize, PROT_READ | PROT_WRITE), 0);
  EXPECT_TRUE(mem.Pinnable(buf.addr(), 4 * kHostPageSize, true));
  EXPECT_FALSE(mem.Pinnable(0x1000, kHostPageSize, false)) << "unmapped";
}

TEST(ProcessMemoryTest, ChargeEnforcesTheLimitWithoutCapIpcLock) {
  ProcessMemory mem;
  mem.set_memlock_limit_pages(10);
  EXPECT_EQ(mem.Charge(6), 0);
  EXPECT_EQ(mem.Charge(5), -ENOMEM);
  EXPECT_EQ(mem.locked_pages(), 6u);
  EXPECT_EQ(mem.Charge(4), 0);  // exactly at the limit
  EXPECT_EQ(mem.Charge(1), -ENOMEM);
  EXPECT_EQ(mem.Charge(UINT64_MAX), -ENOMEM);
  mem.Uncharge(10);
  EXPECT_EQ(mem.locked_pages(), 0u);
}

TEST(ProcessMemoryTest, CapIpcLockChargesButNeverRefuses) {
  ProcessMemory mem;
  mem.set_memlock_limit_pages(1);
  mem.set_cap_ipc_lock(true);
  EXPECT_EQ(mem.Charge(100), 0);
  EXPECT_EQ(mem.locked_pages(), 100u);  // locked_vm still counts
}

}  // namespace
}  // namespace viommu::vfio::model
