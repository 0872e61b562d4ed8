// MMIO access rules: `valid` rejection, `impl` splitting and widening,
// ram_device loads and stores, and the chunk size of buffer accesses.
#include "memory/mmio_access.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_mmio_device.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::memory {
namespace {

using ::testing::ElementsAre;
using testing::FakeMmioDevice;
using ::testing::IsEmpty;

class MmioAccessTest : public ::testing::Test {
 protected:
  std::shared_ptr<MemoryRegion> Region(AccessRules valid, AccessRules impl) {
    dev_.set_valid(valid);
    dev_.set_impl(impl);
    return MemoryRegion::CreateMmio(&sys_, "dev", 0x100, &dev_);
  }
  // Device bytes 0x00, 0x01, 0x02, ... so that reads show their offsets.
  void FillCounting() {
    for (size_t i = 0; i < dev_.bytes().size(); ++i) {
      dev_.bytes()[i] = static_cast<uint8_t>(i);
    }
  }

  MemorySystem sys_;
  FakeMmioDevice dev_{0x100};
};

// ---- valid: rejection ----------------------------------------------------

TEST_F(MmioAccessTest, RejectsSizeBelowValidMin) {
  auto mr = Region({4, 8, false}, {});
  uint64_t v = 0xdead;
  EXPECT_EQ(MmioDispatchRead(*mr, 0, &v, 2, {}), MemTxResult::DecodeError());
  EXPECT_EQ(v, 0u);
  EXPECT_EQ(MmioDispatchWrite(*mr, 0, 1, 1, {}), MemTxResult::DecodeError());
  EXPECT_THAT(dev_.accesses(), IsEmpty());
}

TEST_F(MmioAccessTest, RejectsSizeAboveValidMax) {
  auto mr = Region({1, 4, false}, {});
  uint64_t v = 0xdead;
  EXPECT_EQ(MmioDispatchRead(*mr, 0, &v, 8, {}), MemTxResult::DecodeError());
  EXPECT_EQ(v, 0u);
  EXPECT_EQ(MmioDispatchWrite(*mr, 0, 1, 8, {}), MemTxResult::DecodeError());
  EXPECT_THAT(dev_.accesses(), IsEmpty());
}

TEST_F(MmioAccessTest, ValidMaxZeroAcceptsAnySize) {
  // As in QEMU, a max of 0 disables the size check, min included.
  auto mr = Region({4, 0, false}, {1, 8, false});
  uint64_t v;
  EXPECT_TRUE(MmioDispatchRead(*mr, 0, &v, 1, {}).ok());
  EXPECT_TRUE(MmioDispatchRead(*mr, 0, &v, 8, {}).ok());
  EXPECT_THAT(dev_.accesses(), ElementsAre("r 0x0/1", "r 0x0/8"));
}

TEST_F(MmioAccessTest, RejectsUnalignedAccessWhenNotAllowed) {
  auto mr = Region({1, 4, false}, {});
  uint64_t v = 0xdead;
  EXPECT_EQ(MmioDispatchRead(*mr, 2, &v, 4, {}), MemTxResult::DecodeError());
  EXPECT_EQ(v, 0u);
  EXPECT_EQ(MmioDispatchWrite(*mr, 1, 0, 2, {}), MemTxResult::DecodeError());
  EXPECT_THAT(dev_.accesses(), IsEmpty());
}

TEST_F(MmioAccessTest, AcceptsUnalignedAccessWhenAllowed) {
  auto mr = Region({1, 4, true}, {1, 4, true});
  FillCounting();
  uint64_t v = 0;
  EXPECT_TRUE(MmioDispatchRead(*mr, 2, &v, 4, {}).ok());
  EXPECT_EQ(v, 0x05040302u);
  // Not split further for alignment (QEMU's FIXME): one 4-byte call.
  EXPECT_THAT(dev_.accesses(), ElementsAre("r 0x2/4"));
}

// Refuses writes at 0x10 from requester 0x20; records what it was asked.
class VetoingDevice final : public MmioOps {
 public:
  MemTxResult Read(uint64_t, uint64_t* value, unsigned, MemTxAttrs) override {
    ++calls;
    *value = 0xff;
    return MemTxResult::Ok();
  }
  MemTxResult Write(uint64_t, uint64_t, unsigned, MemTxAttrs) override {
    ++calls;
    return MemTxResult::Ok();
  }
  bool Accepts(uint64_t offset, unsigned, bool is_write,
               MemTxAttrs attrs) override {
    seen_attrs = attrs;
    return !(offset == 0x10 && is_write && attrs.requester_id == 0x20);
  }
  int calls = 0;
  MemTxAttrs seen_attrs;
};

TEST_F(MmioAccessTest, AcceptsVetoRejectsAccess) {
  VetoingDevice dev;
  auto mr = MemoryRegion::CreateMmio(&sys_, "veto", 0x100, &dev);
  EXPECT_EQ(MmioDispatchWrite(*mr, 0x10, 1, 4, MemTxAttrs::Requester(0x20)),
            MemTxResult::DecodeError());
  EXPECT_EQ(dev.seen_attrs, MemTxAttrs::Requester(0x20));
  EXPECT_EQ(dev.calls, 0);
  // Other offsets, reads and requesters pass.
  EXPECT_TRUE(
      MmioDispatchWrite(*mr, 0x14, 1, 4, MemTxAttrs::Requester(0x20)).ok());
  uint64_t v = 0;
  EXPECT_TRUE(
      MmioDispatchRead(*mr, 0x10, &v, 4, MemTxAttrs::Requester(0x20)).ok());
  EXPECT_EQ(v, 0xffu);
  EXPECT_TRUE(
      MmioDispatchWrite(*mr, 0x10, 1, 4, MemTxAttrs::Requester(0x21)).ok());
  EXPECT_EQ(dev.calls, 3);
}

// ---- impl: splitting and widening -----------------------------------------

TEST_F(MmioAccessTest, SplitsEightByteReadIntoImplMaxPieces) {
  auto mr = Region({1, 8, false}, {1, 4, false});
  FillCounting();
  uint64_t v = 0;
  EXPECT_TRUE(MmioDispatchRead(*mr, 0x8, &v, 8, {}).ok());
  EXPECT_THAT(dev_.accesses(), ElementsAre("r 0x8/4", "r 0xc/4"));
  EXPECT_EQ(v, 0x0f0e0d0c0b0a0908u);  // little-endian composition
}

TEST_F(MmioAccessTest, SplitsEightByteWriteIntoImplMaxPieces) {
  auto mr = Region({1, 8, false}, {1, 4, false});
  EXPECT_TRUE(MmioDispatchWrite(*mr, 0x8, 0x1122334455667788, 8, {}).ok());
  EXPECT_THAT(dev_.accesses(),
              ElementsAre("w 0x8/4=0x55667788", "w 0xc/4=0x11223344"));
}

TEST_F(MmioAccessTest, SplitsIntoBytesWhenImplMaxIsOne) {
  auto mr = Region({1, 4, false}, {1, 1, false});
  EXPECT_TRUE(MmioDispatchWrite(*mr, 0x4, 0xa1b2, 2, {}).ok());
  EXPECT_THAT(dev_.accesses(), ElementsAre("w 0x4/1=0xb2", "w 0x5/1=0xa1"));
}

TEST_F(MmioAccessTest, ImplZeroMeansQemuDefaults) {
  // impl {0, 0}: min 1 (no widening), max 4 (8 bytes split in two).
  auto mr = Region({1, 8, false}, {0, 0, false});
  uint64_t v;
  EXPECT_TRUE(MmioDispatchRead(*mr, 0x0, &v, 1, {}).ok());
  EXPECT_TRUE(MmioDispatchRead(*mr, 0x8, &v, 8, {}).ok());
  EXPECT_THAT(dev_.accesses(), ElementsAre("r 0x0/1", "r 0x8/4", "r 0xc/4"));
}

TEST_F(MmioAccessTest, WidensOneByteReadToImplMinAndMasks) {
  auto mr = Region({1, 4, false}, {4, 4, false});
  dev_.bytes()[4] = 0xaa;
  dev_.bytes()[5] = 0xbb;
  dev_.bytes()[6] = 0xcc;
  dev_.bytes()[7] = 0xdd;
  uint64_t v = 0;
  EXPECT_TRUE(MmioDispatchRead(*mr, 0x4, &v, 1, {}).ok());
  EXPECT_THAT(dev_.accesses(), ElementsAre("r 0x4/4"));
  EXPECT_EQ(v, 0xaau);  // only the byte asked for
}

TEST_F(MmioAccessTest, WidensOneByteWriteToImplMin) {
  auto mr = Region({1, 4, false}, {4, 4, false});
  EXPECT_TRUE(MmioDispatchWrite(*mr, 0x4, 0x5a, 1, {}).ok());
  EXPECT_THAT(dev_.accesses(), ElementsAre("w 0x4/4=0x5a"));
}

// Returns a different result for each successive call.
class ScriptedResults final : public MmioOps {
 public:
  explicit ScriptedResults(std::vector<MemTxResult> results)
      : results_(std::move(results)) {}
  MemTxResult Read(uint64_t, uint64_t* value, unsigned, MemTxAttrs) override {
    *value = 0;
    return Next();
  }
  MemTxResult Write(uint64_t, uint64_t, unsigned, MemTxAttrs) override {
    return Next();
  }
  AccessRules valid() const override { return {1, 8, false}; }
  AccessRules impl() const override { return {1, 2, false}; }

 private:
  MemTxResult Next() { return results_.at(next_++ % results_.size()); }
  std::vector<MemTxResult> results_;
  size_t next_ = 0;
};

TEST_F(MmioAccessTest, PieceResultsAreOredTogether) {
  ScriptedResults dev({MemTxResult::Ok(), MemTxResult::Error(),
                       MemTxResult::Ok(), MemTxResult::AccessError()});
  auto mr = MemoryRegion::CreateMmio(&sys_, "scripted", 0x100, &dev);
  uint64_t v;
  // 8 bytes as four 2-byte pieces; a failing piece does not stop the rest.
  MemTxResult r = MmioDispatchRead(*mr, 0, &v, 8, {});
  EXPECT_EQ(r, MemTxResult::Error() | MemTxResult::AccessError());
  EXPECT_EQ(MmioDispatchWrite(*mr, 0, 0, 4, {}), MemTxResult::Error());
}

TEST_F(MmioAccessTest, CallbackSeesAttrs) {
  auto mr = Region({1, 4, false}, {});
  uint64_t v;
  EXPECT_TRUE(MmioDispatchRead(*mr, 0, &v, 4, MemTxAttrs::Requester(7)).ok());
  EXPECT_EQ(dev_.last_attrs(), MemTxAttrs::Requester(7));
}

// ---- ram_device -------------------------------------------------------------

TEST_F(MmioAccessTest, RamDeviceLoadsAndStoresHostMemory) {
  alignas(8) uint8_t bar[32] = {};
  auto mr = MemoryRegion::CreateRamDevice(&sys_, "bar", sizeof(bar), bar);
  // Unaligned 8-byte store, then loads of every size.
  EXPECT_TRUE(MmioDispatchWrite(*mr, 3, 0x0807060504030201, 8, {}).ok());
  EXPECT_EQ(bar[2], 0);
  EXPECT_EQ(bar[3], 0x01);
  EXPECT_EQ(bar[10], 0x08);
  EXPECT_EQ(bar[11], 0);
  uint64_t v = 0;
  EXPECT_TRUE(MmioDispatchRead(*mr, 3, &v, 8, {}).ok());
  EXPECT_EQ(v, 0x0807060504030201u);
  EXPECT_TRUE(MmioDispatchRead(*mr, 5, &v, 2, {}).ok());
  EXPECT_EQ(v, 0x0403u);
  EXPECT_TRUE(MmioDispatchRead(*mr, 10, &v, 1, {}).ok());
  EXPECT_EQ(v, 0x08u);
  EXPECT_TRUE(MmioDispatchWrite(*mr, 4, 0xaabb, 2, {}).ok());
  EXPECT_EQ(bar[4], 0xbb);
  EXPECT_EQ(bar[5], 0xaa);
  EXPECT_EQ(bar[6], 0x04);  // only 2 bytes written
}

// ---- MmioChunkSize
// ------------------------------------------------------------

struct ChunkCase {
  AccessRules valid;
  AccessRules impl;
  uint64_t offset;
  uint64_t remaining;
  unsigned want;
};

TEST_F(MmioAccessTest, ChunkSizeFollowsQemuMemoryAccessSize) {
  const ChunkCase cases[] = {
      {{1, 0, false}, {}, 0x0, 8, 4},            // valid.max 0 -> 4
      {{1, 8, false}, {}, 0x0, 8, 8},            // valid.max caps
      {{1, 8, false}, {}, 0x0, 64, 8},           //
      {{1, 4, false}, {}, 0x0, 8, 4},            //
      {{1, 8, false}, {}, 0x2, 8, 2},            // alignment of offset caps
      {{1, 8, false}, {}, 0x4, 8, 4},            //
      {{1, 8, false}, {}, 0x7, 8, 1},            //
      {{1, 8, false}, {}, 0x18, 8, 8},           //
      {{1, 8, false}, {}, 0x0, 3, 2},            // remaining caps, pow2 floor
      {{1, 8, false}, {}, 0x0, 7, 4},            //
      {{1, 8, false}, {}, 0x0, 1, 1},            //
      {{1, 8, false}, {1, 4, true}, 0x2, 8, 8},  // impl.unaligned: no cap
      {{1, 8, false}, {1, 4, true}, 0x3, 6, 4},  //
      {{1, 0, true}, {1, 4, false}, 0x1, 8, 1},  // valid.unaligned ignored
  };
  for (const ChunkCase& c : cases) {
    auto mr = Region(c.valid, c.impl);
    EXPECT_EQ(MmioChunkSize(*mr, c.offset, c.remaining), c.want)
        << "valid.max " << c.valid.max_access_size << " impl.unaligned "
        << c.impl.unaligned << " offset " << c.offset << " remaining "
        << c.remaining;
  }
}

TEST_F(MmioAccessTest, RamDeviceChunksUpToEightBytesUnaligned) {
  uint8_t bar[64] = {};
  auto mr = MemoryRegion::CreateRamDevice(&sys_, "bar", sizeof(bar), bar);
  EXPECT_EQ(MmioChunkSize(*mr, 0, 64), 8u);
  EXPECT_EQ(MmioChunkSize(*mr, 3, 64), 8u);
  EXPECT_EQ(MmioChunkSize(*mr, 3, 7), 4u);
  EXPECT_EQ(MmioChunkSize(*mr, 3, 1), 1u);
}

}  // namespace
}  // namespace viommu::memory
