// Queued invalidation against QEMU 7.2's decoding: every descriptor type
// and granularity, each reserved-bit region, wait semantics, ring movement
// and where processing stops; then InvalidationQueue on a real IntelIommu.
#include "viommu/hw/iommu/vtd_invalidation_queue.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/hw/iommu/intel_iommu.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::vtd {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Guest memory made of backed windows; anything else fails. Records writes.
class TestMemory final : public GuestMemory {
 public:
  void Back(Hwaddr base, size_t len) {
    windows_[base] = std::vector<uint8_t>(len, 0);
  }
  bool Read(Hwaddr addr, void* buf, size_t len) override {
    uint8_t* p = Find(addr, len);
    if (p == nullptr) return false;
    std::memcpy(buf, p, len);
    return true;
  }
  bool Write(Hwaddr addr, const void* buf, size_t len) override {
    uint8_t* p = Find(addr, len);
    writes.push_back({addr, len});
    if (p == nullptr) return false;
    std::memcpy(p, buf, len);
    return true;
  }
  void Put(Hwaddr addr, const InvDesc& d) {
    uint8_t* p = Find(addr, sizeof(d));
    ASSERT_NE(p, nullptr);
    std::memcpy(p, &d, sizeof(d));
  }
  uint32_t Get32(Hwaddr addr) {
    uint32_t v = 0;
    EXPECT_TRUE(Read(addr, &v, 4));
    return v;
  }

  struct WriteRec {
    Hwaddr addr;
    size_t len;
  };
  std::vector<WriteRec> writes;

 private:
  uint8_t* Find(Hwaddr addr, size_t len) {
    auto it = windows_.upper_bound(addr);
    if (it == windows_.begin()) return nullptr;
    --it;
    const Hwaddr off = addr - it->first;
    if (off + len > it->second.size()) return nullptr;
    return it->second.data() + off;
  }
  std::map<Hwaddr, std::vector<uint8_t>> windows_;
};

// Records sink and progress calls as text, in one ordered log.
class Recorder final : public InvalidationSink, public QueueProgress {
 public:
  void InvalidateContext(ContextGranularity g, uint16_t did, uint16_t sid,
                         uint8_t fm) override {
    log.push_back("ctx g=" + std::to_string(static_cast<int>(g)) +
                  " did=" + std::to_string(did) + " sid=" + Hex(sid) +
                  " fm=" + std::to_string(fm));
  }
  void InvalidateIotlb(IotlbGranularity g, uint16_t did, Iova addr, uint8_t am,
                       bool ih) override {
    log.push_back("iotlb g=" + std::to_string(static_cast<int>(g)) +
                  " did=" + std::to_string(did) + " addr=" + Hex(addr) +
                  " am=" + std::to_string(am) + " ih=" + std::to_string(ih));
  }
  void InvalidateDeviceIotlb(uint16_t sid, Iova addr,
                             uint64_t size_mask) override {
    log.push_back("dev sid=" + Hex(sid) + " addr=" + Hex(addr) +
                  " mask=" + Hex(size_mask));
  }
  void InvalidateInterruptEntries(bool global, uint16_t index,
                                  uint8_t index_mask) override {
    log.push_back("iec global=" + std::to_string(global) +
                  " index=" + std::to_string(index) +
                  " mask=" + std::to_string(index_mask));
  }
  void OnWaitInterrupt() override { log.push_back("IF"); }
  void OnHeadAdvanced(uint32_t head, bool was_wait) override {
    log.push_back("head=" + std::to_string(head) + (was_wait ? " wait" : ""));
  }

  static std::string Hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof(buf), "%llx", static_cast<unsigned long long>(v));
    return buf;
  }
  std::vector<std::string> log;
};

// Descriptor builders (values as the VT-d spec lays them out).
InvDesc Ctx(uint64_t g, uint64_t did = 0, uint64_t sid = 0, uint64_t fm = 0) {
  return {1 | g << 4 | did << 16 | sid << 32 | fm << 48, 0};
}
InvDesc Iotlb(uint64_t g, uint64_t did = 0, uint64_t hi = 0) {
  return {2 | g << 4 | did << 16, hi};
}
InvDesc Dev(uint64_t sid, uint64_t hi) { return {3 | sid << 32, hi}; }
InvDesc Iec(bool index_selective, uint64_t index = 0, uint64_t mask = 0) {
  return {4 | (index_selective ? 1ull << 4 : 0) | mask << 27 | index << 32, 0};
}
constexpr uint64_t kIf = 1ull << 4, kSw = 1ull << 5, kFn = 1ull << 6;
InvDesc Wait(uint64_t flags, uint32_t data = 0, uint64_t addr = 0) {
  return {5 | flags | uint64_t{data} << 32, addr};
}

class DescriptorTest : public ::testing::Test {
 protected:
  QueueError Run(const InvDesc& d) {
    return ProcessDescriptor(d, mem_, rec_, &rec_);
  }
  TestMemory mem_;
  Recorder rec_;
};

// --- Context-cache descriptor (type 1) ---

TEST_F(DescriptorTest, ContextGlobal) {
  EXPECT_EQ(Run(Ctx(1)), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("ctx g=1 did=0 sid=0 fm=0"));
}

TEST_F(DescriptorTest, ContextDomainPassesDid) {
  EXPECT_EQ(Run(Ctx(2, 0xbeef)), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("ctx g=2 did=48879 sid=0 fm=0"));
}

TEST_F(DescriptorTest, ContextDeviceDecodesSidAndFm) {
  EXPECT_EQ(Run(Ctx(3, 7, 0x0218, 3)), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("ctx g=3 did=7 sid=218 fm=3"));
}

TEST_F(DescriptorTest, ContextGranularityZeroIsError) {
  EXPECT_EQ(Run(Ctx(0)), QueueError::kBadGranularity);
  EXPECT_THAT(rec_.log, IsEmpty());
}

class ContextReservedTest : public DescriptorTest,
                            public ::testing::WithParamInterface<InvDesc> {};

TEST_P(ContextReservedTest, ReservedBitIsError) {
  InvDesc d = Ctx(1);
  d.lo |= GetParam().lo;
  d.hi |= GetParam().hi;
  EXPECT_EQ(Run(d), QueueError::kReservedBits);
  EXPECT_THAT(rec_.log, IsEmpty());
}

// 7.2 mask 0xfffc00000000ffc0 on lo, and hi must be zero.
INSTANTIATE_TEST_SUITE_P(Regions, ContextReservedTest,
                         ::testing::Values(InvDesc{1ull << 6, 0},   // 7:6
                                           InvDesc{1ull << 8, 0},   // 8
                                           InvDesc{1ull << 9, 0},   // 11:9
                                           InvDesc{1ull << 11, 0},  // 11:9
                                           InvDesc{1ull << 12, 0},  // 15:12
                                           InvDesc{1ull << 15, 0},  // 15:12
                                           InvDesc{1ull << 50, 0},  // 63:50
                                           InvDesc{1ull << 63, 0},  // 63:50
                                           InvDesc{0, 1},           // hi
                                           InvDesc{0, 1ull << 63}));

// --- IOTLB descriptor (type 2) ---

TEST_F(DescriptorTest, IotlbGlobal) {
  EXPECT_EQ(Run(Iotlb(1)), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("iotlb g=1 did=0 addr=0 am=0 ih=0"));
}

TEST_F(DescriptorTest, IotlbDomain) {
  EXPECT_EQ(Run(Iotlb(2, 42)), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("iotlb g=2 did=42 addr=0 am=0 ih=0"));
}

TEST_F(DescriptorTest, IotlbPageDecodesAddrAmIh) {
  EXPECT_EQ(Run(Iotlb(3, 5, 0x1234'5000 | 1 << 6 | 9)), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("iotlb g=3 did=5 addr=12345000 am=9 ih=1"));
}

TEST_F(DescriptorTest, IotlbPageAmAtMamvAccepted) {
  EXPECT_EQ(Run(Iotlb(3, 1, 18)), QueueError::kNone);
  EXPECT_EQ(rec_.log.size(), 1u);
}

TEST_F(DescriptorTest, IotlbPageAmAboveMamvIsError) {
  EXPECT_EQ(Run(Iotlb(3, 1, 19)), QueueError::kAmAboveMamv);
  EXPECT_THAT(rec_.log, IsEmpty());
}

TEST_F(DescriptorTest, IotlbAmIgnoredForDomain) {
  EXPECT_EQ(Run(Iotlb(2, 1, 0x3f)), QueueError::kNone);
}

TEST_F(DescriptorTest, IotlbDrainBitsAreNotReserved) {
  InvDesc d = Iotlb(1);
  d.lo |= 3ull << 6;  // DW, DR
  EXPECT_EQ(Run(d), QueueError::kNone);
}

TEST_F(DescriptorTest, IotlbGranularityZeroIsError) {
  EXPECT_EQ(Run(Iotlb(0)), QueueError::kBadGranularity);
  EXPECT_THAT(rec_.log, IsEmpty());
}

class IotlbReservedTest : public DescriptorTest,
                          public ::testing::WithParamInterface<InvDesc> {};

TEST_P(IotlbReservedTest, ReservedBitIsError) {
  InvDesc d = Iotlb(1);
  d.lo |= GetParam().lo;
  d.hi |= GetParam().hi;
  EXPECT_EQ(Run(d), QueueError::kReservedBits);
  EXPECT_THAT(rec_.log, IsEmpty());
}

// 7.2 masks: lo 0xffffffff0000ff00, hi 0xf80.
INSTANTIATE_TEST_SUITE_P(Regions, IotlbReservedTest,
                         ::testing::Values(InvDesc{1ull << 8, 0},   // 8
                                           InvDesc{1ull << 9, 0},   // 11:9
                                           InvDesc{1ull << 12, 0},  // 15:12
                                           InvDesc{1ull << 15, 0},
                                           InvDesc{1ull << 32, 0},  // 63:32
                                           InvDesc{1ull << 63, 0},
                                           InvDesc{0, 1ull << 7},  // hi 11:7
                                           InvDesc{0, 1ull << 11}));

// --- Device-IOTLB descriptor (type 3) ---

TEST_F(DescriptorTest, DeviceIotlbSingle4k) {
  EXPECT_EQ(Run(Dev(0x0010, 0xabcd'e000)), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("dev sid=10 addr=abcde000 mask=fff"));
}

TEST_F(DescriptorTest, DeviceIotlbSizeBitWithBit12ClearIs8k) {
  EXPECT_EQ(Run(Dev(1, 0x4000 | 1)), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("dev sid=1 addr=4000 mask=1fff"));
}

TEST_F(DescriptorTest, DeviceIotlbSizeFromTrailingOnes) {
  // Bits 14:12 = 011 -> 32 KiB; the address is aligned down to it.
  EXPECT_EQ(Run(Dev(1, 0x1'0000'3000 | 1)), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("dev sid=1 addr=100000000 mask=7fff"));
}

TEST_F(DescriptorTest, DeviceIotlbAllOnesCoversEverything) {
  // 7.2 shifts 8 KiB by 51+ ones: the size wraps to 0, so mask = ~0.
  EXPECT_EQ(Run(Dev(1, ~0ull & ~0xffeull)), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("dev sid=1 addr=0 mask=ffffffffffffffff"));
}

TEST_F(DescriptorTest, DeviceIotlbTwoToThe63) {
  // 50 ones above bit 12 -> 8K << 50 = 2^63.
  const uint64_t hi = ((1ull << 50) - 1) << 12 | 1;
  EXPECT_EQ(Run(Dev(1, hi)), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("dev sid=1 addr=0 mask=7fffffffffffffff"));
}

TEST_F(DescriptorTest, DeviceIotlbBits20To16AreNotReserved) {
  InvDesc d = Dev(1, 0);
  d.lo |= 0x1full << 16;
  EXPECT_EQ(Run(d), QueueError::kNone);
}

class DeviceReservedTest : public DescriptorTest,
                           public ::testing::WithParamInterface<InvDesc> {};

TEST_P(DeviceReservedTest, ReservedBitIsError) {
  InvDesc d = Dev(1, 0x5000);
  d.lo |= GetParam().lo;
  d.hi |= GetParam().hi;
  EXPECT_EQ(Run(d), QueueError::kReservedBits);
  EXPECT_THAT(rec_.log, IsEmpty());
}

// 7.2 masks: lo 0xffff0000ffe0fff8, hi 0xffe (bit 3 of the mask is inside
// the 4-bit type field, so setting it makes type 11: unknown).
INSTANTIATE_TEST_SUITE_P(
    Regions, DeviceReservedTest,
    ::testing::Values(InvDesc{1ull << 4, 0},  // 15:4
                      InvDesc{1ull << 9, 0}, InvDesc{1ull << 15, 0},
                      InvDesc{1ull << 21, 0},                          // 31:21
                      InvDesc{1ull << 31, 0}, InvDesc{1ull << 48, 0},  // 63:48
                      InvDesc{1ull << 63, 0}, InvDesc{0, 1ull << 1},  // hi 11:1
                      InvDesc{0, 1ull << 11}));

// --- Interrupt-entry-cache descriptor (type 4) ---

TEST_F(DescriptorTest, IecGlobalWhenGClear) {
  EXPECT_EQ(Run(Iec(false)), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("iec global=1 index=0 mask=0"));
}

TEST_F(DescriptorTest, IecIndexSelective) {
  EXPECT_EQ(Run(Iec(true, 0x1234, 5)), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("iec global=0 index=4660 mask=5"));
}

TEST_F(DescriptorTest, IecHasNoReservedCheckIn72) {
  InvDesc d = Iec(true, 3, 1);
  d.lo |= 0xffffull << 48 | 0x7ull << 9 | 1ull << 20;  // incl. type 11:9
  d.hi = ~0ull;
  EXPECT_EQ(Run(d), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("iec global=0 index=3 mask=1"));
}

// --- Wait descriptor (type 5) ---

TEST_F(DescriptorTest, WaitStatusWriteIsLittleEndian32Bit) {
  mem_.Back(0x9000, 0x10);
  EXPECT_EQ(Run(Wait(kSw, 0x1122'3344, 0x9004)), QueueError::kNone);
  ASSERT_EQ(mem_.writes.size(), 1u);
  EXPECT_EQ(mem_.writes[0].addr, 0x9004u);
  EXPECT_EQ(mem_.writes[0].len, 4u);
  uint8_t b[4];
  ASSERT_TRUE(mem_.Read(0x9004, b, 4));
  EXPECT_THAT(b, ElementsAre(0x44, 0x33, 0x22, 0x11));
  EXPECT_EQ(mem_.Get32(0x9000), 0u);
  EXPECT_EQ(mem_.Get32(0x9008), 0u);
  EXPECT_THAT(rec_.log, IsEmpty());
}

TEST_F(DescriptorTest, WaitStatusAddressIsNotMasked) {
  mem_.Back(0xff00'0000'0000'1000, 0x10);  // beyond any HAW
  EXPECT_EQ(Run(Wait(kSw, 7, 0xff00'0000'0000'1000)), QueueError::kNone);
  EXPECT_EQ(mem_.Get32(0xff00'0000'0000'1000), 7u);
}

TEST_F(DescriptorTest, WaitStatusWriteFailureIsError) {
  EXPECT_EQ(Run(Wait(kSw, 1, 0x5000)), QueueError::kWaitWriteFailed);
}

TEST_F(DescriptorTest, WaitInterruptFlag) {
  EXPECT_EQ(Run(Wait(kIf)), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("IF"));
  EXPECT_THAT(mem_.writes, IsEmpty());
}

TEST_F(DescriptorTest, WaitSwWithFn) {
  mem_.Back(0x9000, 4);
  EXPECT_EQ(Run(Wait(kSw | kFn, 2, 0x9000)), QueueError::kNone);
  EXPECT_EQ(mem_.Get32(0x9000), 2u);
}

TEST_F(DescriptorTest, WaitIfWithFn) {
  EXPECT_EQ(Run(Wait(kIf | kFn)), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("IF"));
}

TEST_F(DescriptorTest, WaitFnAloneIsErrorIn72) {
  EXPECT_EQ(Run(Wait(kFn)), QueueError::kWaitNoAction);
}

TEST_F(DescriptorTest, WaitWithNothingSetIsError) {
  EXPECT_EQ(Run(Wait(0)), QueueError::kWaitNoAction);
}

// QEMU 7.2 aborts the VM here; viommu does what the specification (and
// later QEMU) says: the status write, then the interrupt.
TEST_F(DescriptorTest, WaitSwAndIfDoesBoth) {
  mem_.Back(0x9000, 4);
  EXPECT_EQ(Run(Wait(kSw | kIf, 1, 0x9000)), QueueError::kNone);
  EXPECT_EQ(mem_.Get32(0x9000), 1u);
  EXPECT_THAT(rec_.log, ElementsAre("IF"));
}

class WaitReservedTest : public DescriptorTest,
                         public ::testing::WithParamInterface<InvDesc> {};

TEST_P(WaitReservedTest, ReservedBitIsError) {
  mem_.Back(0x9000, 4);
  InvDesc d = Wait(kSw, 1, 0x9000);
  d.lo |= GetParam().lo;
  d.hi |= GetParam().hi;
  EXPECT_EQ(Run(d), QueueError::kReservedBits);
  EXPECT_THAT(mem_.writes, IsEmpty());
}

// 7.2 masks: lo 0xffffff80, hi 0x3.
INSTANTIATE_TEST_SUITE_P(Regions, WaitReservedTest,
                         ::testing::Values(InvDesc{1ull << 7, 0},   // 8:7
                                           InvDesc{1ull << 9, 0},   // 11:9
                                           InvDesc{1ull << 12, 0},  // 31:12
                                           InvDesc{1ull << 31, 0},
                                           InvDesc{0, 1},  // hi 1:0
                                           InvDesc{0, 2}));

// --- Types ---

class UnknownTypeTest : public DescriptorTest,
                        public ::testing::WithParamInterface<int> {};

TEST_P(UnknownTypeTest, IsError) {
  EXPECT_EQ(Run({static_cast<uint64_t>(GetParam()) | 1 << 4, 0}),
            QueueError::kUnknownType);
  EXPECT_THAT(rec_.log, IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(Types, UnknownTypeTest,
                         ::testing::Values(0, 8, 9, 10, 11, 12, 13, 14, 15));

TEST_F(DescriptorTest, PasidTypesAreAcceptedAndIgnored) {
  EXPECT_EQ(Run({6, 0}), QueueError::kNone);
  EXPECT_EQ(Run({7 | ~0xfull, ~0ull}), QueueError::kNone);
  EXPECT_THAT(rec_.log, IsEmpty());
}

TEST_F(DescriptorTest, TypeIsLowFourBitsOnly) {
  // Newer QEMU reads bits 11:9 as type bits 6:4 (0x14 = unknown); 7.2
  // sees an IEC descriptor.
  EXPECT_EQ(Run({4 | 1ull << 9, 0}), QueueError::kNone);
  EXPECT_THAT(rec_.log, ElementsAre("iec global=1 index=0 mask=0"));
}

// --- The ring ---

constexpr Hwaddr kBase = 0x10'0000;
constexpr uint32_t kSize = 256;

class QueueTest : public ::testing::Test {
 protected:
  QueueTest() { mem_.Back(kBase, kSize * 16); }
  void Put(uint32_t index, const InvDesc& d) {
    mem_.Put(kBase + uint64_t{index} * 16, d);
  }
  QueueRunResult Run(uint32_t head, uint32_t tail) {
    return ProcessQueue(mem_, kBase, kSize, head, tail, rec_, &rec_);
  }
  TestMemory mem_;
  Recorder rec_;
};

TEST_F(QueueTest, ProcessesHeadToTailAndReportsEachHead) {
  Put(0, Ctx(1));
  Put(1, Iotlb(1));
  Put(2, Wait(kIf));
  const QueueRunResult r = Run(0, 3);
  EXPECT_FALSE(r.failed());
  EXPECT_EQ(r.new_head, 3u);
  EXPECT_EQ(r.completed, 3u);
  EXPECT_EQ(r.wait_interrupts, 1u);
  EXPECT_EQ(r.last_was_wait, true);
  EXPECT_THAT(rec_.log, ElementsAre("ctx g=1 did=0 sid=0 fm=0", "head=1",
                                    "iotlb g=1 did=0 addr=0 am=0 ih=0",
                                    "head=2", "IF", "head=3 wait"));
}

TEST_F(QueueTest, InterruptPrecedesLaterDescriptors) {
  Put(5, Wait(kIf));
  Put(6, Iotlb(2, 9));
  const QueueRunResult r = Run(5, 7);
  EXPECT_EQ(r.last_was_wait, false);
  EXPECT_THAT(rec_.log,
              ElementsAre("IF", "head=6 wait",
                          "iotlb g=2 did=9 addr=0 am=0 ih=0", "head=7"));
}

TEST_F(QueueTest, EmptyQueueFetchesNothing) {
  const QueueRunResult r = Run(4, 4);
  EXPECT_FALSE(r.failed());
  EXPECT_EQ(r.new_head, 4u);
  EXPECT_FALSE(r.last_was_wait.has_value());
  EXPECT_THAT(rec_.log, IsEmpty());
}

TEST_F(QueueTest, WrapsAroundWhenHeadIsAboveTail) {
  Put(254, Iec(true, 254));
  Put(255, Iec(true, 255));
  Put(0, Iec(true, 0));
  Put(1, Iec(true, 1));
  const QueueRunResult r = Run(254, 2);
  EXPECT_FALSE(r.failed());
  EXPECT_EQ(r.new_head, 2u);
  EXPECT_EQ(r.completed, 4u);
  EXPECT_THAT(rec_.log, ElementsAre("iec global=0 index=254 mask=0", "head=255",
                                    "iec global=0 index=255 mask=0", "head=0",
                                    "iec global=0 index=0 mask=0", "head=1",
                                    "iec global=0 index=1 mask=0", "head=2"));
}

TEST_F(QueueTest, TailAtOrBeyondSizeIsErrorBeforeAnyFetch) {
  Put(0, Ctx(1));
  for (uint32_t tail : {kSize, kSize + 1, 0x7fffu}) {
    const QueueRunResult r = Run(0, tail);
    EXPECT_EQ(r.error, QueueError::kBadTail);
    EXPECT_EQ(r.new_head, 0u);
    EXPECT_FALSE(r.last_was_wait.has_value());
  }
  EXPECT_THAT(rec_.log, IsEmpty());
}

TEST_F(QueueTest, FetchFailureOnUnbackedMemory) {
  TestMemory empty;
  const QueueRunResult r =
      ProcessQueue(empty, 0x4000'0000, kSize, 3, 4, rec_, &rec_);
  EXPECT_EQ(r.error, QueueError::kFetchFailed);
  EXPECT_EQ(r.new_head, 3u);
  EXPECT_EQ(r.last_was_wait, false);
  EXPECT_THAT(rec_.log, IsEmpty());
}

TEST_F(QueueTest, FetchReadsSixteenBytesAtBasePlusHeadTimesSixteen) {
  TestMemory partial;
  partial.Back(0x8000 + 2 * 16, 15);  // one byte short of descriptor 2
  EXPECT_EQ(ProcessQueue(partial, 0x8000, kSize, 2, 3, rec_, &rec_).error,
            QueueError::kFetchFailed);
}

TEST_F(QueueTest, StopsAtFirstBadDescriptorWithHeadOnIt) {
  Put(10, Ctx(1));
  Put(11, Iotlb(0));  // bad granularity
  Put(12, Ctx(2));
  const QueueRunResult r = Run(10, 13);
  EXPECT_EQ(r.error, QueueError::kBadGranularity);
  EXPECT_EQ(r.new_head, 11u);
  EXPECT_EQ(r.completed, 1u);
  EXPECT_EQ(r.last_was_wait, false);
  EXPECT_THAT(rec_.log, ElementsAre("ctx g=1 did=0 sid=0 fm=0", "head=11"));
}

TEST_F(QueueTest, FailedWaitStillCountsAsLastFetchedWait) {
  Put(0, Wait(kFn));
  const QueueRunResult r = Run(0, 1);
  EXPECT_EQ(r.error, QueueError::kWaitNoAction);
  EXPECT_EQ(r.new_head, 0u);
  EXPECT_EQ(r.last_was_wait, true);
}

TEST_F(QueueTest, StatusWriteIntoTheRingIsSeenByLaterFetch) {
  // Descriptors are fetched one at a time: a status write that rewrites a
  // later descriptor's low dword changes what is processed.
  Put(0, Wait(kSw, 0x1 | 1 << 4, kBase + 16));  // writes lo of desc 1
  Put(1, Ctx(3, 0, 0x55));
  const QueueRunResult r = Run(0, 2);
  EXPECT_FALSE(r.failed());
  EXPECT_THAT(rec_.log, ElementsAre("head=1 wait", "ctx g=1 did=0 sid=55 fm=0",
                                    "head=2"));
}

// --- InvalidationQueue on an IntelIommu ---

class InvalidationQueueTest : public ::testing::Test, public Observer {
 protected:
  void SetUp() override {
    root_ = memory::MemoryRegion::CreateContainer(&sys_, "root", kSize2To64);
    root_->AddSubregion(
        0, *memory::MemoryRegion::CreateRam(&sys_, "ram", 4 << 20));
    as_ = std::make_unique<memory::AddressSpace>(&sys_, root_, "memory");
    iommu_ = *IntelIommu::Create(Properties{}, as_.get());
    mem_ = std::make_unique<AddressSpaceGuestMemory>(as_.get());
    queue_ =
        std::make_unique<InvalidationQueue>(iommu_.get(), mem_.get(), &rec_);
    iommu_->set_observer(this);
  }
  void TearDown() override { iommu_->set_observer(nullptr); }
  void OnQueueTailWritten(uint32_t) override { queue_->Drain(); }

  void W(uint16_t off, uint64_t v, unsigned size = 8) {
    ASSERT_TRUE(iommu_->Write(off, v, size, {}).ok());
  }
  uint64_t R(uint16_t off, unsigned size = 8) {
    uint64_t v = 0;
    EXPECT_TRUE(iommu_->Read(off, &v, size, {}).ok());
    return v;
  }
  void Put(uint32_t index, const InvDesc& d) {
    ASSERT_TRUE(as_->Write(kQueue + index * 16, &d, sizeof(d)).ok());
  }
  void EnableQi() {
    W(Offset(Reg64::kIqa), kQueue);  // QS = 0: 256 descriptors
    W(Offset(Reg32::kGcmd), kGcmdQie, 4);
    ASSERT_TRUE(iommu_->qi_enabled());
  }
  uint32_t Fsts() { return static_cast<uint32_t>(R(Offset(Reg32::kFsts), 4)); }

  static constexpr Hwaddr kQueue = 0x20'0000;
  memory::MemorySystem sys_;
  std::shared_ptr<memory::MemoryRegion> root_;
  std::unique_ptr<memory::AddressSpace> as_;
  std::unique_ptr<IntelIommu> iommu_;
  std::unique_ptr<AddressSpaceGuestMemory> mem_;
  Recorder rec_;
  std::unique_ptr<InvalidationQueue> queue_;
};

TEST_F(InvalidationQueueTest, TailWriteProcessesAndMovesIqh) {
  EnableQi();
  Put(0, Ctx(1));
  Put(1, Wait(kSw, 0xcafe, 0x3000));
  W(Offset(Reg64::kIqt), 2 << 4);
  EXPECT_EQ(R(Offset(Reg64::kIqh)), 2u << 4);
  uint32_t status = 0;
  ASSERT_TRUE(as_->Read(0x3000, &status, 4).ok());
  EXPECT_EQ(status, 0xcafeu);
  EXPECT_EQ(Fsts() & kFstsIqe, 0u);
  EXPECT_THAT(rec_.log, ElementsAre("ctx g=1 did=0 sid=0 fm=0"));
  // Drained after a wait descriptor: QI may be disabled.
  W(Offset(Reg32::kGcmd), 0, 4);
  EXPECT_FALSE(iommu_->qi_enabled());
}

TEST_F(InvalidationQueueTest, InterruptFlagSetsIwcAndPendingWhenMasked) {
  EnableQi();
  Put(0, Wait(kIf));
  W(Offset(Reg64::kIqt), 1 << 4);
  EXPECT_EQ(R(Offset(Reg32::kIcs), 4) & kIcsIwc, kIcsIwc);
  EXPECT_EQ(R(Offset(Reg32::kIectl), 4) & kFectlIp, kFectlIp);
}

TEST_F(InvalidationQueueTest, BadDescriptorSetsIqeAndLeavesIqhOnIt) {
  EnableQi();
  Put(0, Iotlb(1));
  Put(1, {0, 0});
  Put(2, Iotlb(2));
  W(Offset(Reg64::kIqt), 3 << 4);
  EXPECT_EQ(R(Offset(Reg64::kIqh)), 1u << 4);
  EXPECT_EQ(Fsts() & kFstsIqe, kFstsIqe);
  EXPECT_EQ(queue_->errors(), 1u);
  EXPECT_EQ(queue_->last_error(), QueueError::kUnknownType);
  EXPECT_EQ(rec_.log.size(), 1u);
  // With IQE set a further tail write is not processed.
  W(Offset(Reg64::kIqt), 3 << 4);
  EXPECT_EQ(rec_.log.size(), 1u);
  // Fixing the descriptor and clearing IQE resumes at IQH.
  Put(1, Iotlb(1));
  W(Offset(Reg32::kFsts), kFstsIqe, 4);
  W(Offset(Reg64::kIqt), 3 << 4);
  EXPECT_EQ(R(Offset(Reg64::kIqh)), 3u << 4);
  EXPECT_EQ(rec_.log.size(), 3u);
}

TEST_F(InvalidationQueueTest, TailBeyondSizeSetsIqe) {
  EnableQi();
  W(Offset(Reg64::kIqt), 256 << 4);
  EXPECT_EQ(Fsts() & kFstsIqe, kFstsIqe);
  EXPECT_EQ(R(Offset(Reg64::kIqh)), 0u);
  EXPECT_EQ(queue_->last_error(), QueueError::kBadTail);
}

TEST_F(InvalidationQueueTest, FailedWaitBlocksQiDisable) {
  EnableQi();
  Put(0, Wait(kSw, 1, 0x3000));
  Put(1, Wait(kFn));
  W(Offset(Reg64::kIqt), 2 << 4);
  EXPECT_EQ(R(Offset(Reg64::kIqh)), 1u << 4);
  EXPECT_EQ(Fsts() & kFstsIqe, kFstsIqe);
  W(Offset(Reg32::kGcmd), 0, 4);  // head != tail: refused
  EXPECT_TRUE(iommu_->qi_enabled());
}

TEST_F(InvalidationQueueTest, StatusWriteToIqtDefersTheNestedRun) {
  // The register block in the address space the status write goes to.
  constexpr Hwaddr kRegs = 0xfed9'0000;
  root_->AddSubregion(
      kRegs, memory::MemoryRegion::CreateMmio(&sys_, "intel_iommu",
                                              kRegBlockSize, iommu_.get()));
  EnableQi();
  // Descriptor 0 moves IQT to 3 while the queue is being processed (QEMU
  // 7.2 recurses here and re-runs descriptor 0 forever).
  Put(0, Wait(kSw, 3 << 4, kRegs + Offset(Reg64::kIqt)));
  Put(1, Ctx(1));
  Put(2, Ctx(2));
  W(Offset(Reg64::kIqt), 1 << 4);
  EXPECT_EQ(R(Offset(Reg64::kIqt)), 3u << 4);
  EXPECT_EQ(R(Offset(Reg64::kIqh)), 3u << 4);
  EXPECT_EQ(Fsts() & kFstsIqe, 0u);
  EXPECT_THAT(rec_.log, ElementsAre("ctx g=1 did=0 sid=0 fm=0",
                                    "ctx g=2 did=0 sid=0 fm=0"));
}

}  // namespace
}  // namespace viommu::vtd
