// SplitVirtqueue's chain accessor, used ring and interrupt suppression over
// an address space with RAM (a fake transport records device errors), and
// end to end behind VirtioPciFunction with the echo device.
#include "viommu/hw/virtio/split_virtqueue.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/hw/virtio/virtio_test_bench.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

// Counts heap allocations, for the no-allocation-per-request test.
namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace

// g++ 12 inlines these into std::vector's destructor and then warns that
// free() gets a pointer from operator new (-Wmismatched-new-delete): they
// are the replacement pair, so the warning does not apply. noinline keeps
// the call opaque.
__attribute__((noinline)) void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  std::abort();
}
__attribute__((noinline)) void operator delete(void* p) noexcept {
  std::free(p);
}
__attribute__((noinline)) void operator delete(void* p, size_t) noexcept {
  std::free(p);
}

namespace viommu::hw::virtio {
namespace {

using PopResult = SplitVirtqueue::PopResult;
using testing::EchoOptions;
using ::testing::ElementsAre;
using testing::GuestRing;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using testing::VirtioBench;

class FakeTransport final : public VirtioTransport {
 public:
  SplitVirtqueue& queue(unsigned) override { return *q; }
  uint64_t driver_features() const override { return features; }
  uint8_t device_status() const override { return 0; }
  bool broken() const override { return is_broken; }
  bool disabled() const override { return false; }
  void DeviceError(std::string_view what) override {
    errors.emplace_back(what);
    is_broken = true;
  }
  void NotifyQueue(unsigned) override {}
  void NotifyConfigChanged() override {}

  uint64_t features = FeatureBit(kFeatureVersion1);
  bool is_broken = false;
  std::vector<std::string> errors;
  SplitVirtqueue* q = nullptr;
};

constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000;
constexpr uint64_t kRamSize = 1 << 20;
constexpr uint64_t kRomBase = 0x200000;
constexpr uint16_t kSize = 8;

class SplitVirtqueueTest : public ::testing::Test {
 protected:
  SplitVirtqueueTest() {
    root_ = memory::MemoryRegion::CreateContainer(&sys_, "root", kSize2To64);
    root_->AddSubregion(
        0, *memory::MemoryRegion::CreateRam(&sys_, "ram", kRamSize));
    auto rom = *memory::MemoryRegion::CreateRam(&sys_, "rom", 0x1000);
    rom->SetReadonly(true);
    root_->AddSubregion(kRomBase, rom);
    as_ = std::make_unique<memory::AddressSpace>(&sys_, root_, "dma");
    t_.q = &q_;
    q_.SetDma(as_.get(), memory::MemTxAttrs::Requester(0x18));
    q_.SetRings(kDesc, kAvail, kUsed);
  }

  void Put(uint64_t addr, uint64_t v, unsigned size) {
    ASSERT_TRUE(as_->Write(addr, &v, size).ok());
  }
  uint64_t Get(uint64_t addr, unsigned size) {
    uint64_t v = 0;
    EXPECT_TRUE(as_->Read(addr, &v, size).ok());
    return v;
  }
  void PutDesc(uint64_t table, unsigned i, uint64_t addr, uint32_t len,
               uint16_t flags, uint16_t next = 0) {
    Put(table + 16 * i, addr, 8);
    Put(table + 16 * i + 8, len, 4);
    Put(table + 16 * i + 12, flags, 2);
    Put(table + 16 * i + 14, next, 2);
  }
  void Publish(uint16_t head) {
    Put(kAvail + 4 + 2 * (avail_idx_ % kSize), head, 2);
    ++avail_idx_;
    Put(kAvail + 2, avail_idx_, 2);
  }
  PopResult PopOne() { return q_.Pop(&elem_); }
  std::string LastError() {
    return t_.errors.empty() ? std::string() : t_.errors.back();
  }

  memory::MemorySystem sys_;
  std::shared_ptr<memory::MemoryRegion> root_;
  std::unique_ptr<memory::AddressSpace> as_;
  FakeTransport t_;
  SplitVirtqueue q_{&t_, 0, kSize};
  VirtqElement elem_;
  uint16_t avail_idx_ = 0;
};

// --- chains that are accepted
// -------------------------------------------------

TEST_F(SplitVirtqueueTest, EmptyUntilTheAvailIndexMoves) {
  EXPECT_EQ(PopOne(), PopResult::kEmpty);
  PutDesc(kDesc, 0, 0x8000, 4, 0);
  EXPECT_EQ(PopOne(), PopResult::kEmpty);  // written but not published
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kElement);
  EXPECT_EQ(PopOne(), PopResult::kEmpty);
}

TEST_F(SplitVirtqueueTest, ChainSplitsIntoReadableThenWritableSegments) {
  PutDesc(kDesc, 3, 0x8000, 16, kDescFlagNext, 5);
  PutDesc(kDesc, 5, 0x9000, 4, kDescFlagNext, 1);
  PutDesc(kDesc, 1, 0xa000, 8, kDescFlagWrite | kDescFlagNext, 2);
  PutDesc(kDesc, 2, 0xb000, 2, kDescFlagWrite);
  Publish(3);
  ASSERT_EQ(PopOne(), PopResult::kElement);
  EXPECT_EQ(elem_.head(), 3);
  ASSERT_THAT(elem_.readable(), SizeIs(2));
  EXPECT_EQ(elem_.readable()[1].addr, 0x9000u);
  ASSERT_THAT(elem_.writable(), SizeIs(2));
  EXPECT_EQ(elem_.writable()[0].len, 8u);
  EXPECT_EQ(elem_.readable_bytes(), 20u);
  EXPECT_EQ(elem_.writable_bytes(), 10u);
  EXPECT_EQ(q_.in_flight(), 1u);
}

TEST_F(SplitVirtqueueTest, IndirectTableIsFollowed) {
  constexpr uint64_t kTable = 0x6000;
  PutDesc(kTable, 0, 0x8000, 12, kDescFlagNext, 2);
  PutDesc(kTable, 2, 0x9000, 4, kDescFlagWrite);
  PutDesc(kDesc, 0, kTable, 3 * 16, kDescFlagIndirect);
  Publish(0);
  ASSERT_EQ(PopOne(), PopResult::kElement);
  EXPECT_EQ(elem_.head(), 0);
  EXPECT_EQ(elem_.readable_bytes(), 12u);
  EXPECT_EQ(elem_.writable_bytes(), 4u);
}

TEST_F(SplitVirtqueueTest, IndirectTableMayHoldMoreThanTheQueueSize) {
  constexpr uint64_t kTable = 0x10000;
  for (unsigned i = 0; i < kMaxQueueSize; ++i) {
    PutDesc(kTable, i, 0x8000 + i, 1, i + 1 < kMaxQueueSize ? kDescFlagNext : 0,
            static_cast<uint16_t>(i + 1));
  }
  PutDesc(kDesc, 0, kTable, kMaxQueueSize * 16, kDescFlagIndirect);
  Publish(0);
  ASSERT_EQ(PopOne(), PopResult::kElement);
  EXPECT_THAT(elem_.readable(), SizeIs(kMaxQueueSize));
}

TEST_F(SplitVirtqueueTest, ReadableBufferInReadOnlyMemoryIsAccepted) {
  PutDesc(kDesc, 0, kRomBase, 0x1000, 0);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kElement);
}

// --- chains that are rejected
// -------------------------------------------------

class SplitVirtqueueRejectTest : public SplitVirtqueueTest {};

TEST_F(SplitVirtqueueRejectTest, LoopInTheDescriptorTable) {
  PutDesc(kDesc, 0, 0x8000, 4, kDescFlagNext, 1);
  PutDesc(kDesc, 1, 0x8000, 4, kDescFlagNext, 0);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kError);
  EXPECT_THAT(LastError(), HasSubstr("loops"));
}

TEST_F(SplitVirtqueueRejectTest, LoopInAHugeIndirectTableEndsAtTheChainLimit) {
  constexpr uint64_t kTable = 0x6000;
  PutDesc(kTable, 0, 0x8000, 4, kDescFlagNext, 1);
  PutDesc(kTable, 1, 0x8000, 4, kDescFlagNext, 0);
  // A table of 2^28 entries: the walk stops after kMaxQueueSize steps.
  PutDesc(kDesc, 0, kTable, 0xfffffff0, kDescFlagIndirect);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kError);
  EXPECT_THAT(LastError(), HasSubstr("loops"));
}

TEST_F(SplitVirtqueueRejectTest, ChainLongerThanAnyChainMayBe) {
  constexpr uint64_t kTable = 0x10000;
  for (unsigned i = 0; i <= kMaxQueueSize; ++i) {
    PutDesc(kTable, i, 0x8000, 1, kDescFlagNext, static_cast<uint16_t>(i + 1));
  }
  PutDesc(kDesc, 0, kTable, (kMaxQueueSize + 2) * 16, kDescFlagIndirect);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kError);
}

TEST_F(SplitVirtqueueRejectTest, NestedIndirectTable) {
  constexpr uint64_t kTable = 0x6000;
  PutDesc(kTable, 0, 0x7000, 16, kDescFlagIndirect);
  PutDesc(kDesc, 0, kTable, 16, kDescFlagIndirect);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kError);
  EXPECT_THAT(LastError(), HasSubstr("inside an indirect table"));
}

TEST_F(SplitVirtqueueRejectTest, IndirectDescriptorAfterTheHead) {
  PutDesc(kDesc, 0, 0x8000, 4, kDescFlagNext, 1);
  PutDesc(kDesc, 1, 0x6000, 16, kDescFlagIndirect);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kError);
}

TEST_F(SplitVirtqueueRejectTest, IndirectTableLengthNotAMultipleOf16) {
  PutDesc(kDesc, 0, 0x6000, 24, kDescFlagIndirect);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kError);
}

TEST_F(SplitVirtqueueRejectTest, EmptyIndirectTable) {
  PutDesc(kDesc, 0, 0x6000, 0, kDescFlagIndirect);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kError);
}

TEST_F(SplitVirtqueueRejectTest, IndirectTableInUnmappedMemory) {
  PutDesc(kDesc, 0, 0x40000000, 32, kDescFlagIndirect);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kError);
}

TEST_F(SplitVirtqueueRejectTest, NextIndexOutsideTheTable) {
  PutDesc(kDesc, 0, 0x8000, 4, kDescFlagNext, kSize);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kError);
  EXPECT_THAT(LastError(), HasSubstr("outside the table"));
}

TEST_F(SplitVirtqueueRejectTest, HeadOutOfRange) {
  Publish(kSize);
  EXPECT_EQ(PopOne(), PopResult::kError);
}

TEST_F(SplitVirtqueueRejectTest, ZeroLengthBuffer) {
  PutDesc(kDesc, 0, 0x8000, 0, 0);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kError);
}

TEST_F(SplitVirtqueueRejectTest, ReadableAfterWritable) {
  PutDesc(kDesc, 0, 0x8000, 4, kDescFlagWrite | kDescFlagNext, 1);
  PutDesc(kDesc, 1, 0x9000, 4, 0);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kError);
  EXPECT_THAT(LastError(), HasSubstr("readable buffer after a writable"));
}

TEST_F(SplitVirtqueueRejectTest, BufferInUnmappedMemory) {
  PutDesc(kDesc, 0, 0x40000000, 4, 0);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kError);
  EXPECT_THAT(LastError(), HasSubstr("mapped"));
}

TEST_F(SplitVirtqueueRejectTest, BufferRunningPastTheEndOfRam) {
  PutDesc(kDesc, 0, kRamSize - 4, 8, kDescFlagWrite);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kError);
}

TEST_F(SplitVirtqueueRejectTest, BufferWrappingPastTheTopOfTheAddressSpace) {
  PutDesc(kDesc, 0, ~uint64_t{0} - 1, 4, 0);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kError);
}

TEST_F(SplitVirtqueueRejectTest, WritableBufferInReadOnlyMemory) {
  PutDesc(kDesc, 0, kRomBase, 4, kDescFlagWrite);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kError);
}

TEST_F(SplitVirtqueueRejectTest, MoreElementsInFlightThanTheQueueSize) {
  for (uint16_t i = 0; i < kSize; ++i) {
    PutDesc(kDesc, i, 0x8000, 4, 0);
    Publish(i);
  }
  for (uint16_t i = 0; i < kSize; ++i) ASSERT_EQ(PopOne(), PopResult::kElement);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kError);
}

TEST_F(SplitVirtqueueRejectTest, RejectedChainIsConsumedWithoutUsedEntry) {
  PutDesc(kDesc, 0, 0x8000, 0, 0);
  Publish(0);
  ASSERT_EQ(PopOne(), PopResult::kError);
  EXPECT_EQ(q_.last_avail_idx(), 1);
  EXPECT_EQ(Get(kUsed + 2, 2), 0u);
  EXPECT_EQ(q_.in_flight(), 0u);
  EXPECT_THAT(elem_.readable(), SizeIs(0));
}

TEST_F(SplitVirtqueueRejectTest, BrokenDevicePopsNothingAndPushesNothing) {
  PutDesc(kDesc, 0, 0x8000, 4, 0);
  Publish(0);
  ASSERT_EQ(PopOne(), PopResult::kElement);
  t_.is_broken = true;
  q_.Push(elem_, 0);
  EXPECT_EQ(Get(kUsed + 2, 2), 0u);
  Publish(0);
  EXPECT_EQ(PopOne(), PopResult::kEmpty);
  EXPECT_THAT(t_.errors, SizeIs(0));
}

// --- used ring, indices, interrupt suppression
// --------------------------------

TEST_F(SplitVirtqueueTest, PushWritesIdAndLengthAndBumpsUsedIndex) {
  PutDesc(kDesc, 6, 0x8000, 4, kDescFlagWrite);
  Publish(6);
  ASSERT_EQ(PopOne(), PopResult::kElement);
  q_.Push(elem_, 3);
  EXPECT_EQ(Get(kUsed + 2, 2), 1u);
  EXPECT_EQ(Get(kUsed + 4, 4), 6u);
  EXPECT_EQ(Get(kUsed + 8, 4), 3u);
  EXPECT_EQ(q_.in_flight(), 0u);
}

TEST_F(SplitVirtqueueTest, IndicesWrapAt65536) {
  PutDesc(kDesc, 0, 0x8000, 4, 0);
  constexpr unsigned kRequests = 65536 + 5;
  for (unsigned n = 0; n < kRequests; n += 4) {
    for (unsigned i = 0; i < 4; ++i) Publish(0);
    for (unsigned i = 0; i < 4; ++i) {
      ASSERT_EQ(PopOne(), PopResult::kElement) << n;
      q_.Push(elem_, static_cast<uint32_t>(n + i));
    }
  }
  const uint16_t done = static_cast<uint16_t>((kRequests + 3) / 4 * 4);
  EXPECT_EQ(q_.last_avail_idx(), done);
  EXPECT_EQ(Get(kUsed + 2, 2), done);
  // The last entry sits in slot (done - 1) % size, with its pre-wrap length.
  EXPECT_EQ(Get(kUsed + 4 + 8 * ((done - 1) % kSize) + 4, 4),
            (kRequests + 3) / 4 * 4 - 1);
  EXPECT_THAT(t_.errors, SizeIs(0));
}

TEST_F(SplitVirtqueueTest, EventIdxWritesAvailEventAfterEachPop) {
  t_.features |= FeatureBit(kFeatureEventIdx);
  PutDesc(kDesc, 0, 0x8000, 4, 0);
  Publish(0);
  Publish(0);
  ASSERT_EQ(PopOne(), PopResult::kElement);
  EXPECT_EQ(Get(kUsed + 4 + 8 * kSize, 2), 1u);
  ASSERT_EQ(PopOne(), PopResult::kElement);
  EXPECT_EQ(Get(kUsed + 4 + 8 * kSize, 2), 2u);
}

TEST_F(SplitVirtqueueTest, WithoutEventIdxNoInterruptFlagSuppresses) {
  PutDesc(kDesc, 0, 0x8000, 4, 0);
  Publish(0);
  ASSERT_EQ(PopOne(), PopResult::kElement);
  q_.Push(elem_, 0);
  EXPECT_TRUE(q_.ShouldNotify());
  Put(kAvail, kAvailFlagNoInterrupt, 2);
  EXPECT_FALSE(q_.ShouldNotify());
  EXPECT_EQ(Get(kUsed + 4 + 8 * kSize, 2), 0u);  // no avail_event written
}

TEST_F(SplitVirtqueueTest, EventIdxInterruptsWhenUsedEventIsPassed) {
  t_.features |= FeatureBit(kFeatureEventIdx);
  PutDesc(kDesc, 0, 0x8000, 4, 0);
  auto serve = [&](int n) {
    for (int i = 0; i < n; ++i) Publish(0);
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(PopOne(), PopResult::kElement);
      q_.Push(elem_, 0);
    }
  };
  serve(1);
  EXPECT_TRUE(q_.ShouldNotify());     // first decision: always
  Put(kAvail + 4 + 2 * kSize, 5, 2);  // used_event: interrupt after entry 5
  serve(2);                           // used 1 -> 3
  EXPECT_FALSE(q_.ShouldNotify());
  serve(3);  // used 3 -> 6 passes 5
  EXPECT_TRUE(q_.ShouldNotify());
  serve(1);  // used 6 -> 7, used_event still 5
  EXPECT_FALSE(q_.ShouldNotify());
}

// --- copies
// -------------------------------------------------------------------

TEST_F(SplitVirtqueueTest, CopiesSpanSegmentsFromAnOffset) {
  const char kIn[] = "0123456789";
  ASSERT_TRUE(as_->Write(0x8000, kIn, 3).ok());
  ASSERT_TRUE(as_->Write(0x9000, kIn + 3, 7).ok());
  PutDesc(kDesc, 0, 0x8000, 3, kDescFlagNext, 1);
  PutDesc(kDesc, 1, 0x9000, 7, kDescFlagNext, 2);
  PutDesc(kDesc, 2, 0xa000, 2, kDescFlagWrite | kDescFlagNext, 3);
  PutDesc(kDesc, 3, 0xb000, 6, kDescFlagWrite);
  Publish(0);
  ASSERT_EQ(PopOne(), PopResult::kElement);
  char got[16] = {};
  EXPECT_EQ(q_.ReadFrom(elem_, 2, got, sizeof(got)), 8u);  // short
  EXPECT_EQ(std::string(got, 8), "23456789");
  EXPECT_EQ(q_.WriteTo(elem_, 1, "abcdefghij", 10), 7u);
  char out0[2], out1[6];
  ASSERT_TRUE(as_->Read(0xa000, out0, 2).ok());
  ASSERT_TRUE(as_->Read(0xb000, out1, 6).ok());
  EXPECT_EQ(out0[1], 'a');
  EXPECT_EQ(std::string(out1, 6), "bcdefg");
}

TEST_F(SplitVirtqueueTest, PopCopyPushDoNotAllocateOnceWarm) {
  PutDesc(kDesc, 0, 0x8000, 36, kDescFlagNext, 1);
  PutDesc(kDesc, 1, 0x9000, 4, kDescFlagWrite);
  t_.features |= FeatureBit(kFeatureEventIdx);
  auto serve = [&] {
    Publish(0);
    ASSERT_EQ(PopOne(), PopResult::kElement);
    uint8_t req[36];
    ASSERT_EQ(q_.ReadFrom(elem_, 0, req, sizeof(req)), sizeof(req));
    const uint32_t status = 0;
    ASSERT_EQ(q_.WriteTo(elem_, 0, &status, 4), 4u);
    q_.Push(elem_, 4);
    (void)q_.ShouldNotify();
  };
  serve();  // warm-up
  const uint64_t before = g_allocations.load();
  for (int i = 0; i < 100; ++i) serve();
  EXPECT_EQ(g_allocations.load() - before, 0u);
}

// Random descriptor tables, avail rings and indirect tables: Pop always
// ends (an element, empty, or a rejection) and never hangs or reads outside
// the address space's answers. Deterministic seeds.
TEST_F(SplitVirtqueueTest, RandomRingsAlwaysTerminate) {
  std::mt19937_64 rng(1234);
  int elements = 0, errors = 0;
  for (int round = 0; round < 300; ++round) {
    q_.Reset();
    q_.SetRings(kDesc, kAvail, kUsed);
    t_.is_broken = false;
    t_.features = FeatureBit(kFeatureVersion1) |
                  ((round & 1) ? FeatureBit(kFeatureEventIdx) : 0);
    // Descriptors pointing at small addresses (some mapped, some not),
    // some into an indirect table at 0x6000 filled the same way.
    for (uint64_t table : {kDesc, uint64_t{0x6000}}) {
      for (unsigned i = 0; i < 16; ++i) {
        const uint64_t r = rng();
        const uint64_t addr = (r & 1) ? 0x6000 : (rng() % (2 * kRamSize));
        const uint32_t len = static_cast<uint32_t>(rng() % 0x300);
        PutDesc(table, i, addr, len, static_cast<uint16_t>(rng() & 7),
                static_cast<uint16_t>(rng() % 20));
      }
    }
    for (unsigned i = 0; i < kSize; ++i) {
      Put(kAvail + 4 + 2 * i, rng() % (kSize + 2), 2);
    }
    Put(kAvail + 2, rng() % 64, 2);
    int pops = 0;
    for (;;) {
      const PopResult r = PopOne();
      ASSERT_LT(++pops, 70000) << "round " << round;
      if (r == PopResult::kElement) {
        ++elements;
        EXPECT_LE(elem_.readable().size() + elem_.writable().size(),
                  kMaxQueueSize);
        q_.Push(elem_, 0);
        continue;
      }
      if (r == PopResult::kError) ++errors;
      break;
    }
  }
  // Both outcomes occur, so the rounds exercised the accessor.
  EXPECT_GT(elements, 0);
  EXPECT_GT(errors, 0);
}

// --- end to end behind the PCI transport
// --------------------------------------

TEST(VirtqueueThroughPciTest, UsedRingIsFinalWhenTheNotifyWriteReturns) {
  VirtioBench v;
  GuestRing r = v.Ready();
  v.PutBytes(0x40000, "ping", 4);
  v.AddChain(r, {{0x40000, 4, 0}, {0x41000, 16, kDescFlagWrite}});
  v.Kick(0);
  EXPECT_EQ(v.UsedIdx(r), 1);
  EXPECT_EQ(v.UsedElem(r, 0), (std::pair<uint32_t, uint32_t>{0, 4}));
  EXPECT_THAT(v.GetBytes(0x41000, 4), ElementsAre('p', 'i', 'n', 'g'));
}

TEST(VirtqueueThroughPciTest, RejectedChainNeedsResetAndStopsProcessing) {
  VirtioBench v;
  GuestRing r = v.Ready();
  v.AddChain(r, {{0x40000, 0, 0}});  // zero-length buffer
  v.Kick(0);
  EXPECT_EQ(v.echo_->pop_errors, 1);
  EXPECT_TRUE(v.fn_->broken());
  EXPECT_NE(v.Status() & kStatusNeedsReset, 0);
  EXPECT_THAT(v.fn_->last_device_error(), HasSubstr("zero-length"));
  v.AddChain(r, {{0x40000, 4, 0}, {0x41000, 4, kDescFlagWrite}}, 2);
  v.Kick(0);
  EXPECT_EQ(v.echo_->elements, 0);
  EXPECT_EQ(v.UsedIdx(r), 0);
  // A reset and a new initialisation bring it back.
  v.SetStatus(0);
  v.InitDriver();
  r = v.SetupQueue(0, 8, 0x10000);
  v.DriverOk();
  v.AddChain(r, {{0x40000, 4, 0}, {0x41000, 4, kDescFlagWrite}});
  v.Kick(0);
  EXPECT_EQ(v.UsedIdx(r), 1);
}

TEST(VirtqueueThroughPciTest, OneInterruptPerBatch) {
  VirtioBench v;
  GuestRing r = v.Ready(EchoOptions{},
                        VirtioPciOptions{.type_name = "e", .event_idx = false});
  const uint8_t cap = v.fn_->msix_cap();
  v.Put(testing::kBar1, 0xfee00000, 4);
  v.Put(testing::kBar1 + 12, 0, 4);
  v.b.SetCfg(testing::kVirtioDevfn, cap + 3, 0x80, 1);
  v.SetCommon(CommonCfg::kQueueSelect, 0, 2);
  v.SetCommon(CommonCfg::kQueueMsixVector, 0, 2);
  for (uint16_t i = 0; i < 3; ++i) {
    v.AddChain(r, {{0x40000, 4, 0}, {0x41000, 4, kDescFlagWrite}},
               static_cast<uint16_t>(2 * i));
  }
  v.Kick(0);
  EXPECT_EQ(v.UsedIdx(r), 3);
  EXPECT_EQ(v.b.msi().Count(testing::kVirtioDevfn), 1u);
}

TEST(VirtqueueThroughPciTest, PerElementNotificationSendsOneEach) {
  VirtioBench v;
  GuestRing r = v.Ready(EchoOptions{.notify_per_element = true},
                        VirtioPciOptions{.type_name = "e", .event_idx = false});
  v.Put(testing::kBar1, 0xfee00000, 4);
  v.Put(testing::kBar1 + 12, 0, 4);
  v.b.SetCfg(testing::kVirtioDevfn, v.fn_->msix_cap() + 3, 0x80, 1);
  v.SetCommon(CommonCfg::kQueueSelect, 0, 2);
  v.SetCommon(CommonCfg::kQueueMsixVector, 0, 2);
  for (uint16_t i = 0; i < 3; ++i) {
    v.AddChain(r, {{0x40000, 4, 0}, {0x41000, 4, kDescFlagWrite}},
               static_cast<uint16_t>(2 * i));
  }
  v.Kick(0);
  EXPECT_EQ(v.b.msi().Count(testing::kVirtioDevfn), 3u);
}

TEST(VirtqueueThroughPciTest, DmaIntoItsOwnBarIsRefusedNotRecursed) {
  VirtioBench v;
  GuestRing r = v.Ready();
  // The reply buffer is the function's own notify register.
  v.AddChain(r, {{0x40000, 4, 0},
                 {testing::kBar4 + kVirtioPciNotifyOffset, 4, kDescFlagWrite}});
  v.Kick(0);
  EXPECT_EQ(v.echo_->notified, 1);
  EXPECT_GE(v.fn_->refused_reentrant_count(), 1u);
  EXPECT_EQ(v.UsedIdx(r), 1);
}

}  // namespace
}  // namespace viommu::hw::virtio
