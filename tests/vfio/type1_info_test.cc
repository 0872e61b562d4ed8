// ParseType1Info: the VFIO_IOMMU_GET_INFO reply and its capability chain,
// never trusting an offset or a count.
#include "vfio/type1_info.h"

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio {
namespace {

// Builds replies byte by byte.
class Reply {
 public:
  Reply(uint32_t flags, uint64_t pgsizes, uint32_t cap_offset) {
    uapi::vfio_iommu_type1_info info{};
    info.flags = flags;
    info.iova_pgsizes = pgsizes;
    info.cap_offset = cap_offset;
    Put(&info, sizeof(info));
  }
  template <typename T>
  Reply& Put(const T* p, size_t n) {
    // Byte by byte: GCC 12 warns (falsely) on vector::insert here.
    const auto* b = reinterpret_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) bytes_.push_back(b[i]);
    return *this;
  }
  Reply& Header(uint16_t id, uint32_t next, uint16_t version = 1) {
    uapi::vfio_info_cap_header h{id, version, next};
    return Put(&h, sizeof(h));
  }
  Reply& U32(uint32_t v) { return Put(&v, 4); }
  Reply& U64(uint64_t v) { return Put(&v, 8); }
  std::vector<uint8_t> Done() {
    const uint32_t argsz = static_cast<uint32_t>(bytes_.size());
    std::memcpy(bytes_.data(), &argsz, 4);
    return bytes_;
  }

 private:
  std::vector<uint8_t> bytes_;
};

constexpr uint32_t kBoth = uapi::kIommuInfoPgsizes | uapi::kIommuInfoCaps;

TEST(Type1InfoTest, ParsesIovaRangesAndDmaAvail) {
  auto buf = Reply(kBoth, 0x40201000, 24)
                 .Header(uapi::kIommuTypeCapIovaRange, 24 + 48)
                 .U32(2)
                 .U32(0)
                 .U64(0)
                 .U64(0xfedfffff)
                 .U64(0xfef00000)
                 .U64(0xffffffffffff)
                 .Header(uapi::kIommuTypeCapDmaAvail, 0)
                 .U32(1234)
                 .U32(0)
                 .Done();
  auto info = ParseType1Info(buf);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->pgsizes, 0x40201000u);
  ASSERT_TRUE(info->iova_ranges.has_value());
  EXPECT_EQ(
      *info->iova_ranges,
      (std::vector<Range>{{0, 0xfedfffff}, {0xfef00000, 0xffffffffffff}}));
  EXPECT_EQ(info->dma_avail, 1234u);
}

// The reply Linux 6.1 gave (docs/vfio-type1-model.md), byte for byte:
// MIGRATION at 24, DMA_AVAIL at 56 (12 bytes, unpadded), IOVA_RANGE at 68,
// argsz 116.
TEST(Type1InfoTest, ParsesTheLinux61ReplyLayout) {
  auto buf = Reply(kBoth, 0x40201000, 24)
                 .Header(uapi::kIommuTypeCapMigration, 56)
                 .U32(0)  // flags
                 .U32(0)  // padding
                 .U64(0x1000)
                 .U64(uint64_t{256} << 20)
                 .Header(uapi::kIommuTypeCapDmaAvail, 68)
                 .U32(65535)
                 .Header(uapi::kIommuTypeCapIovaRange, 0)
                 .U32(2)
                 .U32(0)
                 .U64(0)
                 .U64(0xfedfffff)
                 .U64(0xfef00000)
                 .U64(0x7fffffffff)
                 .Done();
  ASSERT_EQ(buf.size(), 116u);
  auto info = ParseType1Info(buf);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->dma_avail, 65535u);
  ASSERT_TRUE(info->migration.has_value());
  EXPECT_EQ(*info->migration,
            (Type1Info::Migration{.flags = 0,
                                  .pgsize_bitmap = 0x1000,
                                  .max_dirty_bitmap_size = 256u << 20}));
  EXPECT_EQ(*info->iova_ranges,
            (std::vector<Range>{{0, 0xfedfffff}, {0xfef00000, 0x7fffffffff}}));
}

TEST(Type1InfoTest, TruncatedMigrationIsRefused) {
  auto buf = Reply(kBoth, 0x1000, 24)
                 .Header(uapi::kIommuTypeCapMigration, 0)
                 .U32(0)
                 .Done();
  auto info = ParseType1Info(buf);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(info.status().message(), ::testing::HasSubstr("MIGRATION"));
}

TEST(Type1InfoTest, UnknownCapabilitiesAreSkipped) {
  auto buf = Reply(kBoth, 0x1000, 24)
                 .Header(0x77, 24 + 16)
                 .U64(0)
                 .Header(uapi::kIommuTypeCapDmaAvail, 0)
                 .U32(7)
                 .U32(0)
                 .Done();
  auto info = ParseType1Info(buf);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->dma_avail, 7u);
  EXPECT_FALSE(info->iova_ranges.has_value());
}

TEST(Type1InfoTest, NoCapsFlagMeansNoChain) {
  auto buf = Reply(uapi::kIommuInfoPgsizes, 0x1000, 24)
                 .Header(uapi::kIommuTypeCapDmaAvail, 0)
                 .U32(7)
                 .U32(0)
                 .Done();
  auto info = ParseType1Info(buf);
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->dma_avail.has_value());
}

TEST(Type1InfoTest, ShortBufferIsDataLoss) {
  std::vector<uint8_t> buf(8, 0);
  EXPECT_EQ(ParseType1Info(buf).status().code(), absl::StatusCode::kDataLoss);
}

TEST(Type1InfoTest, CapabilityOffsetPastTheDataIsRefused) {
  auto buf = Reply(kBoth, 0x1000, 4096).Done();
  EXPECT_EQ(ParseType1Info(buf).status().code(), absl::StatusCode::kDataLoss);
}

TEST(Type1InfoTest, CapabilityOffsetIntoTheHeaderIsRefused) {
  auto buf = Reply(kBoth, 0x1000, 8).Header(3, 0).U32(1).U32(0).Done();
  EXPECT_EQ(ParseType1Info(buf).status().code(), absl::StatusCode::kDataLoss);
}

TEST(Type1InfoTest, ChainLoopIsRefused) {
  auto buf = Reply(kBoth, 0x1000, 24)
                 .Header(uapi::kIommuTypeCapDmaAvail, 24)
                 .U32(1)
                 .U32(0)
                 .Done();
  EXPECT_EQ(ParseType1Info(buf).status().code(), absl::StatusCode::kDataLoss);
}

TEST(Type1InfoTest, RangeCountRunningPastTheDataIsRefused) {
  auto buf = Reply(kBoth, 0x1000, 24)
                 .Header(uapi::kIommuTypeCapIovaRange, 0)
                 .U32(0x10000000)
                 .U32(0)
                 .U64(0)
                 .U64(0xfff)
                 .Done();
  EXPECT_EQ(ParseType1Info(buf).status().code(), absl::StatusCode::kDataLoss);
}

TEST(Type1InfoTest, InvertedOrUnorderedRangesAreRefused) {
  auto inverted = Reply(kBoth, 0x1000, 24)
                      .Header(uapi::kIommuTypeCapIovaRange, 0)
                      .U32(1)
                      .U32(0)
                      .U64(0x2000)
                      .U64(0x1000)
                      .Done();
  EXPECT_EQ(ParseType1Info(inverted).status().code(),
            absl::StatusCode::kDataLoss);
  auto unordered = Reply(kBoth, 0x1000, 24)
                       .Header(uapi::kIommuTypeCapIovaRange, 0)
                       .U32(2)
                       .U32(0)
                       .U64(0x10000)
                       .U64(0x1ffff)
                       .U64(0)
                       .U64(0xfff)
                       .Done();
  EXPECT_EQ(ParseType1Info(unordered).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(Type1InfoTest, BytesBeyondArgszAreNotData) {
  auto buf = Reply(kBoth, 0x1000, 24)
                 .Header(uapi::kIommuTypeCapDmaAvail, 0)
                 .U32(9)
                 .U32(0)
                 .Done();
  // argsz claims only the fixed header: the cap lies beyond it.
  const uint32_t argsz = 24;
  std::memcpy(buf.data(), &argsz, 4);
  EXPECT_EQ(ParseType1Info(buf).status().code(), absl::StatusCode::kDataLoss);
}

TEST(Type1InfoTest, TruncatedDmaAvailIsRefused) {
  auto buf =
      Reply(kBoth, 0x1000, 24).Header(uapi::kIommuTypeCapDmaAvail, 0).Done();
  EXPECT_EQ(ParseType1Info(buf).status().code(), absl::StatusCode::kDataLoss);
}

// Damaged replies (random bytes over a valid chain, random argsz) parse or
// fail with kDataLoss; every parsed range is ordered. Run under ASan this
// also checks that no byte outside the reply is read.
TEST(Type1InfoTest, DamagedRepliesParseOrFailCleanly) {
  const std::vector<uint8_t> good =
      Reply(kBoth, 0x40201000, 24)
          .Header(uapi::kIommuTypeCapIovaRange, 24 + 48)
          .U32(2)
          .U32(0)
          .U64(0)
          .U64(0xfedfffff)
          .U64(0xfef00000)
          .U64(0xffffffffffff)
          .Header(uapi::kIommuTypeCapDmaAvail, 0)
          .U32(1234)
          .U32(0)
          .Done();
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> buf = good;
    buf.resize(std::uniform_int_distribution<size_t>(0, good.size())(rng));
    const int flips = std::uniform_int_distribution<int>(1, 4)(rng);
    for (int f = 0; f < flips && !buf.empty(); ++f) {
      buf[std::uniform_int_distribution<size_t>(0, buf.size() - 1)(rng)] =
          static_cast<uint8_t>(rng());
    }
    auto info = ParseType1Info(buf);
    if (!info.ok()) {
      ASSERT_EQ(info.status().code(), absl::StatusCode::kDataLoss);
      continue;
    }
    if (info->iova_ranges.has_value()) {
      const auto& r = *info->iova_ranges;
      for (size_t k = 0; k < r.size(); ++k) {
        ASSERT_LE(r[k].first, r[k].last);
        if (k > 0) {
          ASSERT_GT(r[k].first, r[k - 1].last);
        }
      }
    }
  }
}

}  // namespace
}  // namespace viommu::vfio
