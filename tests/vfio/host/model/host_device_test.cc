// ModelHostDevice: the simulated host device through its VFIO device-fd
// operations — edu registers, config space, DMA through a HostIommuDomain
// on a manual virtual clock, host IOMMU faults, P2P into another device's
// BAR2, BAR2 mmaps as device memory, interrupts and reset.
#include "viommu/vfio/host/model/host_device.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_device_timers.h"

namespace viommu::vfio::model {
namespace {

using ::testing::ElementsAre;

constexpr uint64_t kBar0 = 0;  // region file offsets
constexpr uint64_t kBar2 = uint64_t{2} << 40;
constexpr uint64_t kCfg = uint64_t{7} << 40;
constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kPage = 4096;

class RecordingSink final : public HostIrqSink {
 public:
  void Signal(uint32_t index, uint32_t vector, int32_t eventfd) override {
    signals.emplace_back(index, vector, eventfd);
  }
  std::vector<std::tuple<uint32_t, uint32_t, int32_t>> signals;
};

// Page-aligned anonymous memory standing in for guest RAM.
struct Ram {
  explicit Ram(size_t n) : bytes(n + kPage) {}
  uint8_t* at(size_t off) {
    auto base = reinterpret_cast<uintptr_t>(bytes.data());
    return reinterpret_cast<uint8_t*>((base + kPage - 1) & ~(kPage - 1)) + off;
  }
  uint64_t hva(size_t off) { return reinterpret_cast<uint64_t>(at(off)); }
  std::vector<uint8_t> bytes;
};

class HostDeviceTest : public ::testing::Test {
 protected:
  HostDeviceTest()
      : domain_((1ull << 48) - 1, DefaultHostPlatform().pgsize_bitmap) {
    dev_ = MakeDevice(DefaultHostPlatform().devices[0]);
  }

  std::unique_ptr<ModelHostDevice> MakeDevice(const HostDeviceDesc& desc) {
    absl::StatusOr<std::unique_ptr<ModelHostDevice>> d =
        ModelHostDevice::Create(desc, &mem_,
                                {.timers = &timers_, .irq_sink = &sink_});
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? std::move(*d) : nullptr;
  }

  uint64_t Read(ModelHostDevice* d, uint64_t off, unsigned size) {
    uint64_t v = 0;
    EXPECT_EQ(d->RegionRead(off, &v, size), size);
    return v;
  }
  void Write(ModelHostDevice* d, uint64_t off, uint64_t v, unsigned size) {
    EXPECT_EQ(d->RegionWrite(off, &v, size), size);
  }
  uint64_t Reg(uint64_t off, unsigned size = 4) {
    return Read(dev_.get(), kBar0 + off, size);
  }
  void SetReg(uint64_t off, uint64_t v, unsigned size = 4) {
    Write(dev_.get(), kBar0 + off, v, size);
  }
  void EnableMaster(ModelHostDevice* d) {
    Write(d, kCfg + 4, 0x0006, 2);  // MEMORY | MASTER
  }
  // Programs an edu DMA and lets 100 ms of virtual time pass.
  void RunDma(ModelHostDevice* d, uint64_t src, uint64_t dst, uint64_t count,
              uint64_t cmd) {
    Write(d, 0x80, src, 8);
    Write(d, 0x88, dst, 8);
    Write(d, 0x90, count, 8);
    Write(d, 0x98, cmd, 8);
    timers_.Advance(100 * kMs);
  }
  int SetIrqs(uint32_t index, uint32_t flags, uint32_t count,
              std::vector<uint8_t> payload = {}) {
    uapi::vfio_irq_set set{};
    set.argsz = static_cast<uint32_t>(sizeof(set) + payload.size());
    set.flags = flags;
    set.index = index;
    set.count = count;
    return dev_->SetIrqs(set, payload.data());
  }
  static std::vector<uint8_t> Fd(int32_t fd) {
    std::vector<uint8_t> v(4);
    std::memcpy(v.data(), &fd, 4);
    return v;
  }

  ProcessMemory mem_;
  FakeDeviceTimers timers_;
  RecordingSink sink_;
  HostIommuDomain domain_;
  std::unique_ptr<ModelHostDevice> dev_;
};

// ---- registers
// ----------------------------------------------------------------

TEST_F(HostDeviceTest, EduRegisters) {
  EXPECT_EQ(Reg(0x00), 0x010000edu);
  SetReg(0x04, 0x12345678);
  EXPECT_EQ(Reg(0x04), ~0x12345678u);
  SetReg(0x08, 5);
  EXPECT_EQ(Reg(0x08), 120u);
  SetReg(0x08, 40);
  EXPECT_EQ(Reg(0x08), 0u);  // mod 2^32
  SetReg(0x80, 0x1122334455667788, 8);
  EXPECT_EQ(Reg(0x80, 8), 0x1122334455667788u);
  SetReg(0x80, 0xaabbccdd, 4);  // zero-extended
  EXPECT_EQ(Reg(0x80, 8), 0xaabbccddu);
  EXPECT_EQ(Reg(0x00, 2), 0xffffu);  // only 4-byte accesses below 0x80
  EXPECT_EQ(Reg(0x00, 8), ~0ull);
  EXPECT_EQ(Reg(0x40000), 0xffffffffu);  // the buffer is not in the BAR
  SetReg(0x98, 0x2, 8);                  // no RUN bit: ignored
  EXPECT_EQ(Reg(0x98, 8), 0u);
}

TEST_F(HostDeviceTest, IrqStatusRaiseAckAndFactorialIrq) {
  SetReg(0x60, 0x5);
  EXPECT_EQ(Reg(0x24), 0x5u);
  EXPECT_TRUE(dev_->intx_asserted());
  SetReg(0x64, 0x1);
  EXPECT_EQ(Reg(0x24), 0x4u);
  SetReg(0x64, 0x4);
  EXPECT_FALSE(dev_->intx_asserted());
  SetReg(0x20, 0x80);
  EXPECT_EQ(Reg(0x20), 0x80u);
  SetReg(0x08, 3);
  EXPECT_EQ(Reg(0x24), 0x1u);
}

TEST_F(HostDeviceTest, BarAccessNeedsMemoryDecodeAndStaysInBounds) {
  uint32_t v = 0;
  EXPECT_EQ(dev_->RegionRead(kBar0 + (1 << 20) - 4, &v, 8), -EINVAL);
  EXPECT_EQ(dev_->RegionRead(kBar2 + (1 << 20), &v, 1), -EINVAL);
  EXPECT_EQ(dev_->RegionRead(uint64_t{1} << 40, &v, 4), -EINVAL);  // BAR1
  Write(dev_.get(), kCfg + 4, 0, 2);
  EXPECT_EQ(dev_->RegionRead(kBar0, &v, 4), -EIO);
  EXPECT_EQ(dev_->RegionWrite(kBar2, &v, 4), -EIO);
}

// ---- region and irq info, config space
// ------------------------------------------

TEST_F(HostDeviceTest, RegionAndIrqInfo) {
  uapi::vfio_region_info r{};
  ASSERT_EQ(dev_->GetRegionInfo(0, &r), 0);
  EXPECT_EQ(r.size, 1u << 20);
  EXPECT_EQ(r.flags, uapi::kRegionInfoFlagRead | uapi::kRegionInfoFlagWrite);
  ASSERT_EQ(dev_->GetRegionInfo(2, &r), 0);
  EXPECT_EQ(r.size, 1u << 20);
  EXPECT_EQ(r.offset, kBar2);
  EXPECT_TRUE(r.flags & uapi::kRegionInfoFlagMmap);
  ASSERT_EQ(dev_->GetRegionInfo(7, &r), 0);
  EXPECT_EQ(r.size, 256u);
  EXPECT_EQ(r.offset, kCfg);
  for (uint32_t i : {1u, 3u, 4u, 5u, 6u}) {
    ASSERT_EQ(dev_->GetRegionInfo(i, &r), 0);
    EXPECT_EQ(r.size, 0u) << i;
  }
  EXPECT_EQ(dev_->GetRegionInfo(8, &r), -EINVAL);
  EXPECT_EQ(dev_->GetRegionInfo(9, &r), -EINVAL);

  uapi::vfio_irq_info irq{};
  const uint32_t counts[] = {1, 1, 0, 0, 0};
  for (uint32_t i = 0; i < 5; ++i) {
    ASSERT_EQ(dev_->GetIrqInfo(i, &irq), 0);
    EXPECT_EQ(irq.count, counts[i]) << i;
    EXPECT_TRUE(irq.flags & uapi::kIrqInfoEventfd);
  }
  ASSERT_EQ(dev_->GetIrqInfo(0, &irq), 0);
  EXPECT_EQ(irq.flags, uapi::kIrqInfoEventfd | uapi::kIrqInfoMaskable |
                           uapi::kIrqInfoAutomasked);
  EXPECT_EQ(dev_->GetIrqInfo(5, &irq), -EINVAL);
}

TEST_F(HostDeviceTest, ConfigHeaderAndMsiCapability) {
  EXPECT_EQ(Read(dev_.get(), kCfg + 0, 4), 0x11e81234u);
  EXPECT_EQ(Read(dev_.get(), kCfg + 8, 4), 0x00ff0010u);   // class, rev
  EXPECT_EQ(Read(dev_.get(), kCfg + 0x3d, 1), 1u);         // INTA#
  EXPECT_EQ(Read(dev_.get(), kCfg + 6, 2) & 0x10, 0x10u);  // cap list
  EXPECT_EQ(Read(dev_.get(), kCfg + 0x34, 1), 0x40u);
  EXPECT_EQ(Read(dev_.get(), kCfg + 0x40, 4), 0x00800005u);  // MSI, 64-bit
  Write(dev_.get(), kCfg + 0x44, 0xfee01003, 4);
  EXPECT_EQ(Read(dev_.get(), kCfg + 0x44, 4), 0xfee01000u);
  Write(dev_.get(), kCfg + 0x40, 0xffff0000, 4);  // enable is not the user's
  EXPECT_EQ(Read(dev_.get(), kCfg + 0x40, 4), 0x00800005u);

  HostDeviceDesc desc = DefaultHostPlatform().devices[1];
  desc.vendor_id = 0x8086;
  desc.device_id = 0xabcd;
  std::unique_ptr<ModelHostDevice> other = MakeDevice(desc);
  EXPECT_EQ(Read(other.get(), kCfg + 0, 4), 0xabcd8086u);
}

TEST_F(HostDeviceTest, ConfigBarSizing) {
  EXPECT_EQ(Read(dev_.get(), kCfg + 0x10, 4), 0u);  // 32-bit memory
  Write(dev_.get(), kCfg + 0x10, 0xffffffff, 4);
  EXPECT_EQ(Read(dev_.get(), kCfg + 0x10, 4), 0xfff00000u);  // 1 MiB
  EXPECT_EQ(Read(dev_.get(), kCfg + 0x18, 4), 0xcu);  // 64-bit prefetchable
  Write(dev_.get(), kCfg + 0x18, 0xffffffff, 4);
  Write(dev_.get(), kCfg + 0x1c, 0xffffffff, 4);
  EXPECT_EQ(Read(dev_.get(), kCfg + 0x18, 4), 0xfff0000cu);
  EXPECT_EQ(Read(dev_.get(), kCfg + 0x1c, 4), 0xffffffffu);
  Write(dev_.get(), kCfg + 0x18, 0x12345678, 4);
  Write(dev_.get(), kCfg + 0x1c, 0x9, 4);
  EXPECT_EQ(Read(dev_.get(), kCfg + 0x18, 8), 0x000000091230000cu);
  for (uint32_t off : {0x14u, 0x20u, 0x24u, 0x30u}) {  // unimplemented BARs
    Write(dev_.get(), kCfg + off, 0xffffffff, 4);
    EXPECT_EQ(Read(dev_.get(), kCfg + off, 4), 0u) << off;
  }

  HostDeviceDesc desc = DefaultHostPlatform().devices[2];
  desc.bar2_size = uint64_t{1} << 33;  // 8 GiB: the mask reaches BAR3
  std::unique_ptr<ModelHostDevice> big = MakeDevice(desc);
  Write(big.get(), kCfg + 0x18, 0xffffffff, 4);
  Write(big.get(), kCfg + 0x1c, 0xffffffff, 4);
  EXPECT_EQ(Read(big.get(), kCfg + 0x18, 4), 0xcu);
  EXPECT_EQ(Read(big.get(), kCfg + 0x1c, 4), 0xfffffffeu);
}

TEST_F(HostDeviceTest, ConfigCommandAndStatus) {
  EXPECT_EQ(dev_->command(), 0x0002);  // memory decode on after open
  Write(dev_.get(), kCfg + 4, 0xffff, 2);
  EXPECT_EQ(dev_->command(), 0x0547);
  Write(dev_.get(), kCfg + 6, 0xffff, 2);  // W1C bits, none set
  EXPECT_EQ(Read(dev_.get(), kCfg + 6, 2), 0x0010u);
  Write(dev_.get(), kCfg + 0, 0xffffffff, 4);  // ids are read-only
  EXPECT_EQ(Read(dev_.get(), kCfg + 0, 4), 0x11e81234u);
  uint8_t b;
  EXPECT_EQ(dev_->RegionRead(kCfg + 256, &b, 1), -EINVAL);
  EXPECT_EQ(dev_->RegionRead(kCfg + 255, &b, 1), 1);
}

TEST_F(HostDeviceTest, CreateRefusesBadBar2Size) {
  HostDeviceDesc desc = DefaultHostPlatform().devices[0];
  desc.bar2_size = 0x3000;
  EXPECT_EQ(ModelHostDevice::Create(desc, &mem_, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- DMA
// ----------------------------------------------------------------------

TEST_F(HostDeviceTest, DmaToAndFromProcessMemoryAfter100Ms) {
  Ram ram(4 * kPage);
  for (int i = 0; i < 64; ++i) *ram.at(kPage + i) = static_cast<uint8_t>(i + 1);
  ASSERT_EQ(
      domain_.Map(0x100000, ram.hva(0), 4 * kPage, kPermRead | kPermWrite), 0);
  dev_->AttachDomain(&domain_);
  EnableMaster(dev_.get());

  // RAM -> device buffer at 0x40100, raising DMA_IRQ when done.
  Write(dev_.get(), 0x80, 0x100000 + kPage, 8);
  Write(dev_.get(), 0x88, 0x40100, 8);
  Write(dev_.get(), 0x90, 64, 8);
  Write(dev_.get(), 0x98, 0x1 | 0x4, 8);
  timers_.Advance(99 * kMs);
  EXPECT_TRUE(dev_->dma_pending());
  timers_.Advance(1 * kMs);
  EXPECT_FALSE(dev_->dma_pending());
  EXPECT_EQ(Reg(0x98, 8), 0x4u);
  EXPECT_EQ(Reg(0x24), 0x100u);

  // Device buffer -> another place in RAM.
  RunDma(dev_.get(), 0x40100, 0x100000 + 2 * kPage + 8, 64, 0x1 | 0x2);
  for (int i = 0; i < 64; ++i) {
    ASSERT_EQ(*ram.at(2 * kPage + 8 + i), i + 1) << i;
  }
  EXPECT_EQ(dev_->completed_dma_count(), 2u);
  EXPECT_EQ(dev_->iommu_fault_count(), 0u);
}

TEST_F(HostDeviceTest, DmaAcrossNonContiguousMappings) {
  Ram ram(4 * kPage);
  // IOVA 0x200000 -> page 2, 0x201000 -> page 0: not contiguous in hva.
  ASSERT_EQ(
      domain_.Map(0x200000, ram.hva(2 * kPage), kPage, kPermRead | kPermWrite),
      0);
  ASSERT_EQ(domain_.Map(0x201000, ram.hva(0), kPage, kPermRead | kPermWrite),
            0);
  for (int i = 0; i < 16; ++i)
    *ram.at(3 * kPage - 16 + i) = static_cast<uint8_t>(0xa0 + i);
  for (int i = 0; i < 16; ++i) *ram.at(i) = static_cast<uint8_t>(0xc0 + i);
  dev_->AttachDomain(&domain_);
  EnableMaster(dev_.get());
  RunDma(dev_.get(), 0x201000 - 16, 0x40000, 32, 0x1);
  RunDma(dev_.get(), 0x40000, 0x201000 + 64, 32, 0x1 | 0x2);
  EXPECT_EQ(*ram.at(64), 0xa0);       // the tail of page 2 ...
  EXPECT_EQ(*ram.at(64 + 16), 0xc0);  // ... then the head of page 0
  EXPECT_EQ(dev_->iommu_fault_count(), 0u);
}

TEST_F(HostDeviceTest, UnmappedIovaFaultsAndCopiesNothing) {
  Ram ram(2 * kPage);
  ASSERT_EQ(domain_.Map(0x300000, ram.hva(0), kPage, kPermRead | kPermWrite),
            0);
  dev_->AttachDomain(&domain_);
  EnableMaster(dev_.get());
  // 32 bytes from the last 16 of the mapped page into the unmapped next one.
  RunDma(dev_.get(), 0x40000, 0x301000 - 16, 32, 0x1 | 0x2 | 0x4);
  EXPECT_EQ(dev_->iommu_fault_count(), 1u);
  EXPECT_EQ(dev_->last_fault_iova(), 0x301000u);
  EXPECT_EQ(*ram.at(kPage - 16), 0);  // not even the mapped part
  EXPECT_EQ(dev_->completed_dma_count(), 0u);
  EXPECT_EQ(Reg(0x98, 8), 0x6u);  // run clears, the done irq is raised
  EXPECT_EQ(Reg(0x24), 0x100u);
}

TEST_F(HostDeviceTest, ReadOnlyMappingFaultsDeviceWrites) {
  Ram ram(kPage);
  ASSERT_EQ(domain_.Map(0x300000, ram.hva(0), kPage, kPermRead), 0);
  dev_->AttachDomain(&domain_);
  EnableMaster(dev_.get());
  RunDma(dev_.get(), 0x300000, 0x40000, 8, 0x1);  // read: fine
  RunDma(dev_.get(), 0x40000, 0x300010, 8, 0x3);  // write: fault
  EXPECT_EQ(dev_->completed_dma_count(), 1u);
  EXPECT_EQ(dev_->iommu_fault_count(), 1u);
  EXPECT_EQ(dev_->last_fault_iova(), 0x300010u);
}

TEST_F(HostDeviceTest, BlockedWithoutDomainAndGatedByBusMaster) {
  Ram ram(kPage);
  ASSERT_EQ(domain_.Map(0x100000, ram.hva(0), kPage, kPermRead | kPermWrite),
            0);
  RunDma(dev_.get(), 0x40000, 0x100000, 8, 0x3);  // master off
  EXPECT_EQ(dev_->dma_without_master_count(), 1u);
  EXPECT_EQ(dev_->iommu_fault_count(), 0u);
  EnableMaster(dev_.get());
  RunDma(dev_.get(), 0x40000, 0x100000, 8, 0x3);  // no domain: blocked
  EXPECT_EQ(dev_->iommu_fault_count(), 1u);
  EXPECT_EQ(dev_->last_fault_iova(), 0x100000u);
  dev_->AttachDomain(&domain_);
  RunDma(dev_.get(), 0x40000, 0x100000, 8, 0x3);
  EXPECT_EQ(dev_->completed_dma_count(), 1u);
  dev_->AttachDomain(nullptr);
  RunDma(dev_.get(), 0x40000, 0x100000, 8, 0x3);
  EXPECT_EQ(dev_->iommu_fault_count(), 2u);
}

TEST_F(HostDeviceTest, DmaMaskClampsTheIovaAndBufferRangeIsEnforced) {
  Ram ram(kPage);
  ASSERT_EQ(domain_.Map(0x100000, ram.hva(0), kPage, kPermRead | kPermWrite),
            0);
  dev_->AttachDomain(&domain_);
  EnableMaster(dev_.get());
  // 0x10100000 & (2^28 - 1) == 0x100000.
  *ram.at(0) = 0x5a;
  RunDma(dev_.get(), 0x10100000, 0x40000, 1, 0x1);
  RunDma(dev_.get(), 0x40000, 0x100001, 1, 0x3);
  EXPECT_EQ(*ram.at(1), 0x5a);
  // Buffer overruns are refused and counted, like the guest edu.
  RunDma(dev_.get(), 0x40f00, 0x100000, 0x200, 0x3);
  RunDma(dev_.get(), 0x100000, 0x3ffff, 1, 0x1);
  EXPECT_EQ(dev_->refused_dma_count(), 2u);
  EXPECT_EQ(dev_->completed_dma_count(), 2u);
}

TEST_F(HostDeviceTest, P2PIntoAnotherDevicesBar2) {
  std::unique_ptr<ModelHostDevice> peer =
      MakeDevice(DefaultHostPlatform().devices[1]);
  absl::StatusOr<void*> bar = peer->Mmap(kBar2, 1 << 20);
  ASSERT_TRUE(bar.ok()) << bar.status();
  const uint64_t hva = reinterpret_cast<uint64_t>(*bar);
  ASSERT_EQ(domain_.Map(0x800000, hva, 1 << 20, kPermRead | kPermWrite), 0);
  dev_->AttachDomain(&domain_);
  EnableMaster(dev_.get());
  Ram ram(kPage);
  std::memcpy(ram.at(0), "peer-to-peer", 12);
  ASSERT_EQ(domain_.Map(0x100000, ram.hva(0), kPage, kPermRead | kPermWrite),
            0);
  RunDma(dev_.get(), 0x100000, 0x40000, 12, 0x1);
  RunDma(dev_.get(), 0x40000, 0x800000 + 0x2000, 12, 0x3);
  char got[12];
  ASSERT_EQ(peer->RegionRead(kBar2 + 0x2000, got, 12), 12);
  EXPECT_EQ(std::memcmp(got, "peer-to-peer", 12), 0);
  EXPECT_EQ(std::memcmp(peer->bar2() + 0x2000, "peer-to-peer", 12), 0);
  peer->Munmap(*bar, 1 << 20);
}

TEST_F(HostDeviceTest, Bar2MmapIsDeviceMemoryInProcessMemory) {
  EXPECT_EQ(mem_.Classify(reinterpret_cast<uint64_t>(dev_->bar2()), 1 << 20),
            VaddrKind::kPfnMap);
  absl::StatusOr<void*> m = dev_->Mmap(kBar2 + 0x10000, 0x8000);
  ASSERT_TRUE(m.ok()) << m.status();
  const uint64_t va = reinterpret_cast<uint64_t>(*m);
  EXPECT_EQ(mem_.Classify(va, 0x8000), VaddrKind::kPfnMap);
  static_cast<uint8_t*>(*m)[5] = 0x77;  // the same memory as the device's
  EXPECT_EQ(dev_->bar2()[0x10005], 0x77);
  dev_->Munmap(*m, 0x8000);
  EXPECT_EQ(mem_.Classify(va, 0x8000), VaddrKind::kUnmapped);

  EXPECT_FALSE(dev_->Mmap(kBar0, kPage).ok());          // not mmap-able
  EXPECT_FALSE(dev_->Mmap(kBar2 + 0x800, kPage).ok());  // misaligned
  EXPECT_FALSE(dev_->Mmap(kBar2 + (1 << 20) - kPage, 2 * kPage).ok());
  EXPECT_FALSE(dev_->Mmap(kBar2, 0).ok());
  EXPECT_EQ(dev_->Mmap(kCfg, kPage).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(HostDeviceTest, DestroyingTheDeviceUnregistersBar2) {
  const uint64_t va = reinterpret_cast<uint64_t>(dev_->bar2());
  dev_.reset();
  EXPECT_EQ(mem_.Classify(va, kPage), VaddrKind::kUnmapped);
}

// ---- interrupts
// -----------------------------------------------------------------

constexpr uint32_t kTrigFd =
    uapi::kIrqSetActionTrigger | uapi::kIrqSetDataEventfd;
constexpr uint32_t kTrigNone =
    uapi::kIrqSetActionTrigger | uapi::kIrqSetDataNone;
constexpr uint32_t kUnmask = uapi::kIrqSetActionUnmask | uapi::kIrqSetDataNone;

TEST_F(HostDeviceTest, IntxIsAutomaskedUntilUnmask) {
  ASSERT_EQ(SetIrqs(0, kTrigFd, 1, Fd(42)), 0);
  SetReg(0x60, 1);
  SetReg(0x60, 2);  // still asserted: no new edge
  EXPECT_THAT(sink_.signals, ElementsAre(std::make_tuple(0u, 0u, 42)));
  ASSERT_EQ(SetIrqs(0, kUnmask, 1), 0);  // still asserted: signals again
  EXPECT_EQ(sink_.signals.size(), 2u);
  SetReg(0x64, 3);
  ASSERT_EQ(SetIrqs(0, kUnmask, 1), 0);
  SetReg(0x60, 1);
  EXPECT_EQ(sink_.signals.size(), 3u);
  EXPECT_EQ(Read(dev_.get(), kCfg + 6, 2) & 0x8, 0x8u);  // STATUS.INTERRUPT
}

TEST_F(HostDeviceTest, IntxDisableHidesTheLine) {
  ASSERT_EQ(SetIrqs(0, kTrigFd, 1, Fd(42)), 0);
  Write(dev_.get(), kCfg + 4, 0x0402, 2);  // MEMORY | INTX_DISABLE
  SetReg(0x60, 1);
  EXPECT_TRUE(sink_.signals.empty());
  Write(dev_.get(), kCfg + 4, 0x0002, 2);
  EXPECT_EQ(sink_.signals.size(), 1u);
}

TEST_F(HostDeviceTest, MsiWhenEnabledThroughSetIrqs) {
  ASSERT_EQ(SetIrqs(1, kTrigFd, 1, Fd(7)), 0);
  EXPECT_TRUE(dev_->msi_enabled());
  EXPECT_EQ(Read(dev_.get(), kCfg + 0x42, 2) & 1, 1u);
  SetReg(0x60, 1);
  SetReg(0x60, 2);  // MSI: one message per raise
  EXPECT_THAT(sink_.signals, ElementsAre(std::make_tuple(1u, 0u, 7),
                                         std::make_tuple(1u, 0u, 7)));
  EXPECT_FALSE(dev_->intx_asserted());
  EXPECT_EQ(SetIrqs(0, kTrigFd, 1, Fd(8)), -EINVAL);  // MSI is on
  ASSERT_EQ(SetIrqs(1, kTrigNone, 0), 0);             // disable MSI
  EXPECT_FALSE(dev_->msi_enabled());
  EXPECT_TRUE(dev_->intx_asserted());  // irq_status is still 3
  ASSERT_EQ(SetIrqs(0, kTrigFd, 1, Fd(8)), 0);
  EXPECT_EQ(SetIrqs(1, kTrigFd, 1, Fd(7)), -EINVAL);  // INTx is on
}

TEST_F(HostDeviceTest, SetIrqsValidation) {
  EXPECT_EQ(SetIrqs(5, kTrigNone, 0), -EINVAL);       // index
  EXPECT_EQ(SetIrqs(2, kTrigNone, 0), -EINVAL);       // MSI-X: count 0
  EXPECT_EQ(SetIrqs(0, kTrigFd, 2, Fd(1)), -EINVAL);  // count
  EXPECT_EQ(SetIrqs(0, kTrigFd, 1), -EINVAL);         // no payload
  EXPECT_EQ(SetIrqs(0, kTrigFd, 0), -EINVAL);         // count 0 + eventfd
  EXPECT_EQ(SetIrqs(0, uapi::kIrqSetActionTrigger, 1), -EINVAL);  // no data
  EXPECT_EQ(SetIrqs(0, kTrigNone | uapi::kIrqSetDataBool, 1, {1}), -EINVAL);
  EXPECT_EQ(SetIrqs(0, kTrigNone | uapi::kIrqSetActionMask, 1), -EINVAL);
  EXPECT_EQ(SetIrqs(0, kTrigNone | (1u << 6), 1), -EINVAL);  // unknown flag
  EXPECT_EQ(SetIrqs(1, kUnmask, 1), -ENOTTY);
  // Loopback triggers.
  ASSERT_EQ(SetIrqs(0, kTrigFd, 1, Fd(3)), 0);
  ASSERT_EQ(SetIrqs(0, kTrigNone, 1), 0);
  ASSERT_EQ(SetIrqs(0, kUnmask, 1), 0);
  ASSERT_EQ(
      SetIrqs(0, uapi::kIrqSetActionTrigger | uapi::kIrqSetDataBool, 1, {0}),
      0);
  EXPECT_EQ(sink_.signals.size(), 1u);
}

TEST_F(HostDeviceTest, ResetClearsEngineButKeepsConfig) {
  Ram ram(kPage);
  ASSERT_EQ(domain_.Map(0x100000, ram.hva(0), kPage, kPermRead | kPermWrite),
            0);
  dev_->AttachDomain(&domain_);
  EnableMaster(dev_.get());
  SetReg(0x04, 1);
  SetReg(0x60, 1);
  Write(dev_.get(), 0x80, 0x40000, 8);
  Write(dev_.get(), 0x88, 0x100000, 8);
  Write(dev_.get(), 0x90, 8, 8);
  Write(dev_.get(), 0x98, 0x3, 8);
  EXPECT_EQ(dev_->Reset(), 0);
  EXPECT_FALSE(dev_->dma_pending());
  EXPECT_EQ(Reg(0x04), 0u);
  EXPECT_EQ(Reg(0x24), 0u);
  EXPECT_FALSE(dev_->intx_asserted());
  timers_.Advance(200 * kMs);
  EXPECT_EQ(dev_->completed_dma_count(), 0u);
  EXPECT_EQ(dev_->command(), 0x0006);
}

TEST_F(HostDeviceTest, WithoutTimersTheDmaRunsAtTheCommandWrite) {
  absl::StatusOr<std::unique_ptr<ModelHostDevice>> d =
      ModelHostDevice::Create(DefaultHostPlatform().devices[0], &mem_, {});
  ASSERT_TRUE(d.ok());
  Ram ram(kPage);
  ASSERT_EQ(domain_.Map(0x100000, ram.hva(0), kPage, kPermRead | kPermWrite),
            0);
  (*d)->AttachDomain(&domain_);
  EnableMaster(d->get());
  Write(d->get(), 0x80, 0x40000, 8);
  Write(d->get(), 0x88, 0x100000, 8);
  Write(d->get(), 0x90, 8, 8);
  Write(d->get(), 0x98, 0x3, 8);
  EXPECT_FALSE((*d)->dma_pending());
  EXPECT_EQ((*d)->completed_dma_count(), 1u);
}

TEST(EventfdIrqSinkTest, AddsOneToTheEventfdCounter) {
  const int fd = eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  EventfdIrqSink sink;
  sink.Signal(uapi::kPciMsiIrqIndex, 0, fd);
  sink.Signal(uapi::kPciMsiIrqIndex, 0, fd);
  uint64_t count = 0;
  ASSERT_EQ(read(fd, &count, sizeof(count)), 8);
  EXPECT_EQ(count, 2u);
  close(fd);
}

}  // namespace
}  // namespace viommu::vfio::model
