// AddressSpace::Read/Write: RAM, unassigned, readonly, MMIO chunking,
// ram_device dispatch and transaction attributes.
#include <cstdint>
#include <cstring>
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_mmio_device.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::memory {
namespace {

using ::testing::ElementsAre;
using testing::FakeMmioDevice;

class AddressSpaceTest : public ::testing::Test {
 protected:
  AddressSpaceTest()
      : root_(MemoryRegion::CreateContainer(&sys_, "root", kSize2To64)),
        ram_(*MemoryRegion::CreateRam(&sys_, "ram", 0x10000)) {
    root_->AddSubregion(0x0, ram_);
  }

  MemorySystem sys_;
  std::shared_ptr<MemoryRegion> root_;
  std::shared_ptr<MemoryRegion> ram_;
};

TEST_F(AddressSpaceTest, WriteThenReadRamRoundTrips) {
  AddressSpace as(&sys_, root_, "as");
  const char msg[] = "viommu";
  ASSERT_TRUE(as.Write(0x123, msg, sizeof(msg)).ok());
  char back[sizeof(msg)] = {};
  ASSERT_TRUE(as.Read(0x123, back, sizeof(back)).ok());
  EXPECT_STREQ(back, "viommu");
  EXPECT_EQ(std::memcmp(ram_->host() + 0x123, msg, sizeof(msg)), 0);
}

TEST_F(AddressSpaceTest, UnassignedReadsZeroWithDecodeError) {
  AddressSpace as(&sys_, root_, "as");
  uint32_t v = 0xdeadbeef;
  MemTxResult r = as.Read(0x100000, &v, 4);
  EXPECT_TRUE(r.decode_error());
  EXPECT_EQ(v, 0u);
}

TEST_F(AddressSpaceTest, AccessStraddlingRamEndIsPartlyServed) {
  AddressSpace as(&sys_, root_, "as");
  std::memset(ram_->host() + 0xfffe, 0xab, 2);
  uint32_t v = 0xffffffff;
  MemTxResult r = as.Read(0xfffe, &v, 4);
  EXPECT_TRUE(r.decode_error());
  EXPECT_EQ(v, 0x0000abab);
}

TEST_F(AddressSpaceTest, WriteToReadonlyRamIsDroppedWithDecodeError) {
  ram_->SetReadonly(true);
  AddressSpace as(&sys_, root_, "as");
  uint8_t b = 0x55;
  EXPECT_TRUE(as.Write(0x10, &b, 1).decode_error());
  EXPECT_EQ(ram_->host()[0x10], 0);
  EXPECT_TRUE(as.Read(0x10, &b, 1).ok());
}

// MMIO ops the region owns live exactly as long as the region: through a
// memory map a DMA thread still holds after the region was removed, and no
// longer (the C API's MMIO regions rely on it).
TEST_F(AddressSpaceTest, OwnedMmioOpsDieWithTheLastMemoryMapShowingThem) {
  class TrackedOps final : public MmioOps {
   public:
    explicit TrackedOps(bool* destroyed) : destroyed_(destroyed) {}
    ~TrackedOps() override { *destroyed_ = true; }
    MemTxResult Read(uint64_t, uint64_t* value, unsigned,
                     MemTxAttrs) override {
      *value = 0x5a;
      return MemTxResult::Ok();
    }
    MemTxResult Write(uint64_t, uint64_t, unsigned, MemTxAttrs) override {
      return MemTxResult::Ok();
    }

   private:
    bool* const destroyed_;
  };
  bool destroyed = false;
  AddressSpace as(&sys_, root_, "as");
  std::shared_ptr<MemoryRegion> mr = MemoryRegion::CreateMmio(
      &sys_, "owned", 0x100, std::make_unique<TrackedOps>(&destroyed));
  MemoryRegion* const raw = mr.get();
  root_->AddSubregion(0x20000, std::move(mr));
  uint8_t v = 0;
  ASSERT_TRUE(as.Read(0x20000, &v, 1).ok());
  EXPECT_EQ(v, 0x5a);

  // A reader's snapshot of the map keeps region and ops alive after removal.
  std::shared_ptr<const FlatView> old_view = as.CurrentView();
  root_->RemoveSubregion(raw);
  EXPECT_TRUE(as.Read(0x20000, &v, 1).decode_error());
  EXPECT_FALSE(destroyed);
  old_view.reset();
  EXPECT_TRUE(destroyed);
}

// ReadRam copies RAM and never dispatches MMIO: those bytes read as 0 with
// kDecodeError.
TEST_F(AddressSpaceTest, ReadRamSkipsMmioWithoutCallingTheDevice) {
  FakeMmioDevice dev(0x100);
  root_->AddSubregion(0x10000,
                      MemoryRegion::CreateMmio(&sys_, "d", 0x100, &dev));
  dev.bytes()[0] = 0x77;
  AddressSpace as(&sys_, root_, "as");
  ram_->host()[0xfffe] = 0x11;
  ram_->host()[0xffff] = 0x22;
  uint32_t v = 0xffffffff;
  EXPECT_TRUE(as.ReadRam(0xfffe, &v, 4).decode_error());
  EXPECT_EQ(v, 0x00002211u);
  EXPECT_TRUE(dev.accesses().empty());
  uint16_t w = 0;
  EXPECT_TRUE(as.ReadRam(0x10, &w, 2).ok());
  EXPECT_TRUE(as.ReadRam(0x20000, &w, 2).decode_error());  // unassigned
}

TEST_F(AddressSpaceTest, EightByteWriteToFourByteMmioBecomesTwoAccesses) {
  FakeMmioDevice dev(0x100);
  root_->AddSubregion(0x20000, MemoryRegion::CreateMmio(&sys_, "d", 0x100, &dev));
  AddressSpace as(&sys_, root_, "as");
  uint64_t v = 0x1122334455667788;
  ASSERT_TRUE(as.Write(0x20008, &v, 8).ok());
  EXPECT_THAT(dev.accesses(),
              ElementsAre("w 0x8/4=0x55667788", "w 0xc/4=0x11223344"));
}

TEST_F(AddressSpaceTest, MisalignedBufferAccessIsChunkedByAlignment) {
  FakeMmioDevice dev(0x100);
  root_->AddSubregion(0x20000, MemoryRegion::CreateMmio(&sys_, "d", 0x100, &dev));
  AddressSpace as(&sys_, root_, "as");
  uint8_t buf[4] = {};
  ASSERT_TRUE(as.Read(0x20001, buf, 4).ok());
  EXPECT_THAT(dev.accesses(), ElementsAre("r 0x1/1", "r 0x2/2", "r 0x4/1"));
}

TEST_F(AddressSpaceTest, InvalidMmioAccessSizeIsRejected) {
  FakeMmioDevice dev(0x100);
  dev.set_valid({4, 4, false});
  root_->AddSubregion(0x20000, MemoryRegion::CreateMmio(&sys_, "d", 0x100, &dev));
  AddressSpace as(&sys_, root_, "as");
  uint16_t v = 0x1234;
  EXPECT_TRUE(as.Write(0x20000, &v, 2).decode_error());
  EXPECT_TRUE(dev.accesses().empty());
}

TEST_F(AddressSpaceTest, AttributesReachTheDevice) {
  FakeMmioDevice dev(0x100);
  root_->AddSubregion(0x20000, MemoryRegion::CreateMmio(&sys_, "d", 0x100, &dev));
  AddressSpace as(&sys_, root_, "as");
  uint32_t v = 0;
  ASSERT_TRUE(as.Read(0x20000, &v, 4, MemTxAttrs::Requester(0x0018)).ok());
  EXPECT_FALSE(dev.last_attrs().unspecified);
  EXPECT_EQ(dev.last_attrs().requester_id, 0x0018);
}

TEST_F(AddressSpaceTest, DeviceErrorIsReported) {
  FakeMmioDevice dev(0x100);
  dev.set_read_result(MemTxResult::Error());
  root_->AddSubregion(0x20000, MemoryRegion::CreateMmio(&sys_, "d", 0x100, &dev));
  AddressSpace as(&sys_, root_, "as");
  uint32_t v = 0;
  EXPECT_EQ(as.Read(0x20000, &v, 4), MemTxResult::Error());
}

TEST_F(AddressSpaceTest, RamDeviceIsDispatchedNotCopied) {
  alignas(8) uint8_t bar[0x1000] = {};
  auto dev_mem = MemoryRegion::CreateRamDevice(&sys_, "bar", sizeof(bar), bar);
  EXPECT_TRUE(dev_mem->IsRam());
  EXPECT_TRUE(dev_mem->IsRamDevice());
  root_->AddSubregion(0x40000, dev_mem);
  AddressSpace as(&sys_, root_, "as");
  uint64_t v = 0x0102030405060708;
  ASSERT_TRUE(as.Write(0x40010, &v, 8).ok());
  uint64_t back = 0;
  ASSERT_TRUE(as.Read(0x40010, &back, 8).ok());
  EXPECT_EQ(back, v);
  EXPECT_EQ(bar[0x10], 0x08);
}

TEST_F(AddressSpaceTest, FirstFaultIsNoneWhenEveryPieceCompletes) {
  AddressSpace as(&sys_, root_, "as");
  uint64_t v = 0;
  AccessFault f{AccessFault::Kind::kIommu, 0x99};
  ASSERT_TRUE(as.Read(0x100, &v, 8, MemTxAttrs::Unspecified(), &f).ok());
  EXPECT_EQ(f.kind, AccessFault::Kind::kNone);
}

TEST_F(AddressSpaceTest, FirstFaultNamesTheFirstUnassignedByte) {
  AddressSpace as(&sys_, root_, "as");
  uint8_t buf[8] = {};
  AccessFault f;
  // Four bytes of RAM, then unassigned from 0x10000.
  EXPECT_TRUE(as.Read(0xfffc, buf, 8, MemTxAttrs::Unspecified(), &f)
                  .decode_error());
  EXPECT_EQ(f.kind, AccessFault::Kind::kUnassigned);
  EXPECT_EQ(f.addr, 0x10000u);
}

TEST_F(AddressSpaceTest, FirstFaultReportsAReadonlyWrite) {
  ram_->SetReadonly(true);
  AddressSpace as(&sys_, root_, "as");
  uint8_t b = 1;
  AccessFault f;
  EXPECT_TRUE(
      as.Write(0x20, &b, 1, MemTxAttrs::Unspecified(), &f).decode_error());
  EXPECT_EQ(f.kind, AccessFault::Kind::kReadonly);
  EXPECT_EQ(f.addr, 0x20u);
}

TEST_F(AddressSpaceTest, FirstFaultReportsADeviceError) {
  FakeMmioDevice dev(0x100);
  dev.set_read_result(MemTxResult::Error());
  root_->AddSubregion(0x20000, MemoryRegion::CreateMmio(&sys_, "d", 0x100, &dev));
  AddressSpace as(&sys_, root_, "as");
  uint32_t v = 0;
  AccessFault f;
  EXPECT_FALSE(as.Read(0x20004, &v, 4, MemTxAttrs::Unspecified(), &f).ok());
  EXPECT_EQ(f.kind, AccessFault::Kind::kDevice);
  EXPECT_EQ(f.addr, 0x20004u);
}

TEST_F(AddressSpaceTest, TranslateReportsRegionOffsetAndLength) {
  AddressSpace as(&sys_, root_, "as");
  Translation t = as.Translate(0xff00, 0x1000, /*is_write=*/false);
  ASSERT_TRUE(t.result.ok());
  EXPECT_EQ(t.mr, ram_.get());
  EXPECT_EQ(t.offset_in_region, 0xff00u);
  EXPECT_EQ(t.len, 0x100u);  // clamped at the end of the RAM
  EXPECT_EQ(t.target_as, &as);
}

}  // namespace
}  // namespace viommu::memory
