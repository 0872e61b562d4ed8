// VirtioPciFunction on a real PciBus: the PCI face against bytes captured
// from QEMU 7.2, and the common/ISR/device/notify registers, the device
// status machine, resets, MSI-X and INTx, as a guest driver sees them.
#include "viommu/hw/virtio/virtio_pci_function.h"

#include <cstdint>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/hw/virtio/virtio_test_bench.h"

namespace viommu::hw::virtio {
namespace {

using pci::kCfgBar0;
using pci::kCfgCommand;
using pci::kCommandMaster;
using pci::kCommandMemory;
using testing::EchoOptions;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using testing::GuestRing;
using testing::kBar1;
using testing::kVirtioDevfn;
using testing::VirtioBench;

constexpr uint8_t kAckDriver = kStatusAcknowledge | kStatusDriver;
constexpr uint8_t kFeaturesOkStatus = kAckDriver | kStatusFeaturesOk;
constexpr uint8_t kLive = kFeaturesOkStatus | kStatusDriverOk;

// Configuration space (0x00-0xff) of QEMU 7.2.22's virtio-iommu-pci
// (Debian 1:7.2+dfsg-7+deb12u18+b3), captured over qtest with CF8/CFC `inl`
// reads, before any BAR was programmed:
//   qemu-system-x86_64 -machine q35 -accel tcg -bios HLT.BIN -nodefaults
//     -display none -m 512M -qtest stdio -device virtio-iommu-pci,addr=0x3
// Sizing the BARs there (write all ones, read back) gave BAR4 ffffc00c,
// BAR5 ffffffff (a 16 KiB 64-bit prefetchable BAR) and 0 for BAR0-3.
constexpr uint8_t kQemuVirtioIommuConfig[256] = {
    0xf4, 0x1a, 0x57, 0x10, 0x00, 0x00, 0x10, 0x00,  // 0x00
    0x01, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00,  //
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // 0x10
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
    0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // 0x20
    0x00, 0x00, 0x00, 0x00, 0xf4, 0x1a, 0x00, 0x11,  //
    0x00, 0x00, 0x00, 0x00, 0x84, 0x00, 0x00, 0x00,  // 0x30
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,  //
    0x09, 0x00, 0x10, 0x01, 0x04, 0x00, 0x00, 0x00,  // 0x40 common
    0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,  //
    0x09, 0x40, 0x10, 0x03, 0x04, 0x00, 0x00, 0x00,  // 0x50 ISR
    0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,  //
    0x09, 0x50, 0x10, 0x04, 0x04, 0x00, 0x00, 0x00,  // 0x60 device
    0x00, 0x20, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,  //
    0x09, 0x60, 0x14, 0x02, 0x04, 0x00, 0x00, 0x00,  // 0x70 notify
    0x00, 0x30, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,  //
    0x04, 0x00, 0x00, 0x00, 0x09, 0x70, 0x14, 0x05,  // 0x80 .. pci cfg
                                                     // 0x88-0xff: zero
};

// The same capture for `-device virtio-rng-pci,disable-legacy=on,vectors=3`
// differs in the device id (0x1044), the capability pointer (0x98) and the
// MSI-X capability at 0x98 (BAR1 sized fffff000: 4 KiB, 32-bit):
//   0x30: 00 00 00 00 98 00 00 00 ...
//   0x98: 11 84 02 00 01 00 00 00 01 08 00 00
constexpr uint8_t kQemuMsixCap[12] = {0x11, 0x84, 0x02, 0x00, 0x01, 0x00,
                                      0x00, 0x00, 0x01, 0x08, 0x00, 0x00};

// A backend shaped like virtio-iommu: id 23, 2 queues of 256, 40 bytes of
// config, QEMU 7.2's device bits 0x77; no MSI-X (its virtio-iommu-pci has
// no vectors property and ends up without).
void PlugIommuShaped(VirtioBench& v, bool map) {
  v.Plug(EchoOptions{.device_id = 23,
                     .features = 0x77,
                     .queues = 2,
                     .queue_size = 256,
                     .config_size = 40},
         VirtioPciOptions{.type_name = "virtio-iommu-pci",
                          .class_code = 0x00ff00,
                          .msix_vectors = 0},
         map);
}

std::vector<uint8_t> ConfigBytes(VirtioBench& v) {
  std::vector<uint8_t> out;
  for (uint32_t off = 0; off < 256; off += 4) {
    const uint32_t d = v.b.Cfg(kVirtioDevfn, off, 4);
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(d >> 8 * i));
  }
  return out;
}

uint32_t SizeBar(VirtioBench& v, int bar) {
  const uint32_t off = kCfgBar0 + 4 * bar;
  const uint32_t old = v.b.Cfg(kVirtioDevfn, off, 4);
  v.b.SetCfg(kVirtioDevfn, off, 0xffffffff, 4);
  const uint32_t sized = v.b.Cfg(kVirtioDevfn, off, 4);
  v.b.SetCfg(kVirtioDevfn, off, old, 4);
  return sized;
}

// --- the PCI face
// -------------------------------------------------------------

TEST(VirtioPciFunctionTest, ConfigSpaceMatchesQemu72VirtioIommuPci) {
  VirtioBench v;
  PlugIommuShaped(v, /*map=*/false);
  EXPECT_THAT(ConfigBytes(v), ElementsAreArray(kQemuVirtioIommuConfig));
}

TEST(VirtioPciFunctionTest, BarSizesMatchQemu72VirtioIommuPci) {
  VirtioBench v;
  PlugIommuShaped(v, /*map=*/false);
  std::vector<uint32_t> sized;
  for (int bar = 0; bar < 6; ++bar) sized.push_back(SizeBar(v, bar));
  EXPECT_THAT(sized, ElementsAre(0u, 0u, 0u, 0u, 0xffffc00cu, 0xffffffffu));
}

TEST(VirtioPciFunctionTest, MsixCapabilityAndBar1MatchQemu72) {
  VirtioBench v;
  v.Plug(EchoOptions{.device_id = 4, .queues = 1, .config_size = 0},
         VirtioPciOptions{.type_name = "virtio-rng-pci", .msix_vectors = 3},
         /*map=*/false);
  std::vector<uint8_t> bytes = ConfigBytes(v);
  EXPECT_EQ(bytes[0x02], 0x44);
  EXPECT_EQ(bytes[0x34], 0x98);
  EXPECT_THAT(std::vector<uint8_t>(bytes.begin() + 0x98, bytes.begin() + 0xa4),
              ElementsAreArray(kQemuMsixCap));
  EXPECT_EQ(SizeBar(v, 1), 0xfffff000u);
}

TEST(VirtioPciFunctionTest, MsixVectorsDefaultToQueuesPlusOne) {
  VirtioBench v;
  v.Plug(EchoOptions{.queues = 2},
         VirtioPciOptions{.type_name = "virtio-echo-pci"});
  ASSERT_TRUE(v.fn_->msix_present());
  // Table size field: vectors - 1.
  EXPECT_EQ(v.b.Cfg(kVirtioDevfn, v.fn_->msix_cap() + 2, 2) & 0x7ff, 2u);
}

TEST(VirtioPciFunctionTest, CreateRejectsBadQueueShapes) {
  EXPECT_FALSE(VirtioPciFunction::Create(std::make_unique<testing::EchoDevice>(
                                             EchoOptions{.queues = 0}),
                                         VirtioBench::DefaultOptions())
                   .ok());
  EXPECT_FALSE(VirtioPciFunction::Create(std::make_unique<testing::EchoDevice>(
                                             EchoOptions{.queue_size = 0}),
                                         VirtioBench::DefaultOptions())
                   .ok());
  EXPECT_FALSE(VirtioPciFunction::Create(std::make_unique<testing::EchoDevice>(
                                             EchoOptions{.config_size = 4097}),
                                         VirtioBench::DefaultOptions())
                   .ok());
}

// --- features ---------------------------------------------------------------

TEST(VirtioPciFunctionTest, DeviceFeatureWindowsShowOfferedBitsAsQemu72) {
  VirtioBench v;
  PlugIommuShaped(v, /*map=*/true);
  // QEMU 7.2: 0x30000077 and 0x101 (INDIRECT_DESC, EVENT_IDX, VERSION_1,
  // RING_RESET); window 2 reads 0.
  EXPECT_EQ(v.DeviceFeatures(), 0x10130000077u);
  v.SetCommon(CommonCfg::kDeviceFeatureSelect, 2, 4);
  EXPECT_EQ(v.Common(CommonCfg::kDeviceFeature, 4), 0u);
}

TEST(VirtioPciFunctionTest, TransportFeatureOptionsRemoveTheirBits) {
  VirtioBench v;
  v.Plug({}, VirtioPciOptions{.type_name = "e",
                              .msix_vectors = 0,
                              .indirect_desc = false,
                              .event_idx = false,
                              .queue_reset = false});
  EXPECT_EQ(v.DeviceFeatures(), 0x5 | FeatureBit(kFeatureVersion1));
}

TEST(VirtioPciFunctionTest, DriverFeatureWordsReadBackAsWritten) {
  VirtioBench v;
  v.Plug();
  v.SetDriverFeatures(0xff00000000ff);  // includes bits not offered
  v.SetCommon(CommonCfg::kDriverFeatureSelect, 0, 4);
  EXPECT_EQ(v.Common(CommonCfg::kDriverFeature, 4), 0xffu);
  v.SetCommon(CommonCfg::kDriverFeatureSelect, 1, 4);
  EXPECT_EQ(v.Common(CommonCfg::kDriverFeature, 4), 0xff00u);
  // The negotiated set is limited to what was offered.
  EXPECT_EQ(v.fn_->driver_features(), 0x5u | FeatureBit(kFeatureRingReset));
}

TEST(VirtioPciFunctionTest, FeaturesOkAcceptedForOfferedSubsetWithVersion1) {
  VirtioBench v;
  v.Plug();
  v.InitDriver(FeatureBit(kFeatureVersion1) | 0x1);
  EXPECT_EQ(v.Status(), kFeaturesOkStatus);
  EXPECT_EQ(v.fn_->driver_features(), FeatureBit(kFeatureVersion1) | 0x1);
}

TEST(VirtioPciFunctionTest, FeaturesOkRefusedWithoutVersion1) {
  VirtioBench v;
  v.Plug();
  v.InitDriver(0x5);
  EXPECT_EQ(v.Status(), kAckDriver);  // the whole write was refused
}

TEST(VirtioPciFunctionTest, FeaturesOkRefusedForFeatureNotOffered) {
  VirtioBench v;
  v.Plug();
  v.InitDriver(FeatureBit(kFeatureVersion1) | 0x2);  // bit 1 not offered
  EXPECT_EQ(v.Status(), kAckDriver);
}

TEST(VirtioPciFunctionTest, FeaturesOkRefusedWhenDeviceValidationFails) {
  VirtioBench v;
  v.Plug();
  v.echo_->refuse_feature_bit = 2;
  v.InitDriver(FeatureBit(kFeatureVersion1) | 0x4);
  EXPECT_EQ(v.Status(), kAckDriver);
  v.InitDriver(FeatureBit(kFeatureVersion1) | 0x1);
  EXPECT_EQ(v.Status(), kFeaturesOkStatus);
}

TEST(VirtioPciFunctionTest, FeatureWritesAfterFeaturesOkDoNotChangeNegotiated) {
  VirtioBench v;
  v.Plug();
  v.InitDriver(FeatureBit(kFeatureVersion1) | 0x1);
  v.SetDriverFeatures(FeatureBit(kFeatureVersion1) | 0x5);
  EXPECT_EQ(v.fn_->driver_features(), FeatureBit(kFeatureVersion1) | 0x1);
}

// --- status and reset --------------------------------------------------------

TEST(VirtioPciFunctionTest, StatusStoresWrittenByteAsQemu72) {
  VirtioBench v;
  v.Plug();
  v.SetStatus(kStatusFailed);
  EXPECT_EQ(v.Status(), kStatusFailed);
  v.SetStatus(kAckDriver);
  EXPECT_EQ(v.Status(), kAckDriver);
  EXPECT_THAT(v.echo_->statuses, ElementsAre(kStatusFailed, kAckDriver));
}

TEST(VirtioPciFunctionTest, WritingZeroStatusResetsDeviceAndEveryQueue) {
  VirtioBench v;
  GuestRing r = v.Ready();
  v.AddChain(r, {{0x40000, 4, 0}, {0x41000, 4, kDescFlagWrite}});
  v.Kick(0);
  ASSERT_EQ(v.fn_->queue(0).used_idx(), 1);
  v.SetCommon(CommonCfg::kQueueSelect, 1, 2);
  const int resets = v.echo_->resets;
  v.SetStatus(0);
  EXPECT_EQ(v.echo_->resets, resets + 1);
  EXPECT_EQ(v.Status(), 0);
  EXPECT_EQ(v.fn_->driver_features(), 0u);
  EXPECT_EQ(v.Common(CommonCfg::kQueueSelect, 2), 0u);
  for (unsigned q = 0; q < 2; ++q) {
    v.SetCommon(CommonCfg::kQueueSelect, q, 2);
    EXPECT_EQ(v.Common(CommonCfg::kQueueEnable, 2), 0u) << q;
    EXPECT_EQ(v.Common(CommonCfg::kQueueDescLo, 4), 0u) << q;
    EXPECT_EQ(v.Common(CommonCfg::kQueueSize, 2), 8u) << q;
    EXPECT_FALSE(v.fn_->queue(q).live()) << q;
    EXPECT_EQ(v.fn_->queue(q).used_idx(), 0) << q;
    EXPECT_EQ(v.fn_->queue(q).last_avail_idx(), 0) << q;
  }
}

TEST(VirtioPciFunctionTest, ResetKeepsSelectorsDriverWordsAndGeneration) {
  VirtioBench v;
  v.Plug();
  v.InitDriver();
  v.DriverOk();
  v.fn_->NotifyConfigChanged();
  v.SetCommon(CommonCfg::kDeviceFeatureSelect, 1, 4);
  v.SetCommon(CommonCfg::kDriverFeatureSelect, 1, 4);
  v.SetStatus(0);
  EXPECT_EQ(v.Common(CommonCfg::kDeviceFeatureSelect, 4), 1u);
  EXPECT_EQ(v.Common(CommonCfg::kDriverFeatureSelect, 4), 1u);
  EXPECT_EQ(v.Common(CommonCfg::kDriverFeature, 4), 0x101u);
  EXPECT_EQ(v.Common(CommonCfg::kConfigGeneration, 1), 1u);
}

TEST(VirtioPciFunctionTest, DeviceErrorSetsNeedsResetAndConfigInterrupt) {
  VirtioBench v;
  v.Ready();
  EXPECT_FALSE(v.Intx());
  v.SetCommon(CommonCfg::kQueueEnable, 0, 2);  // QEMU: a device error
  EXPECT_TRUE(v.fn_->broken());
  EXPECT_EQ(v.Status(), kLive | kStatusNeedsReset);
  EXPECT_EQ(v.Common(CommonCfg::kConfigGeneration, 1), 1u);
  EXPECT_TRUE(v.Intx());  // QEMU 7.2 raised INTx here
  EXPECT_EQ(v.Read(kVirtioPciIsrOffset, 1), 0x3u);
  EXPECT_FALSE(v.Intx());
}

TEST(VirtioPciFunctionTest, DeviceErrorBeforeDriverOkOnlySetsNeedsReset) {
  VirtioBench v;
  v.Plug();
  v.InitDriver();
  v.SetCommon(CommonCfg::kQueueEnable, 2, 2);
  EXPECT_EQ(v.Status(), kFeaturesOkStatus | kStatusNeedsReset);
  EXPECT_EQ(v.Common(CommonCfg::kConfigGeneration, 1), 0u);
  EXPECT_EQ(v.fn_->isr(), 0);
}

TEST(VirtioPciFunctionTest, DeviceErrorWithoutVersion1LeavesStatusAlone) {
  VirtioBench v;
  v.Plug();
  v.SetStatus(kAckDriver);
  v.SetCommon(CommonCfg::kQueueEnable, 0, 2);
  EXPECT_TRUE(v.fn_->broken());
  EXPECT_EQ(v.Status(), kAckDriver);
}

TEST(VirtioPciFunctionTest, ResetClearsBrokenState) {
  VirtioBench v;
  v.Ready();
  v.SetCommon(CommonCfg::kQueueEnable, 0, 2);
  ASSERT_TRUE(v.fn_->broken());
  v.SetStatus(0);
  EXPECT_FALSE(v.fn_->broken());
  EXPECT_EQ(v.Status(), 0);
}

TEST(VirtioPciFunctionTest, ClearingBusMasterDropsDriverOkAndStopsQueues) {
  VirtioBench v;
  GuestRing r = v.Ready();
  v.b.SetCfg(kVirtioDevfn, kCfgCommand, kCommandMemory, 2);
  EXPECT_EQ(v.Status(), kFeaturesOkStatus);
  EXPECT_TRUE(v.fn_->disabled());
  v.AddChain(r, {{0x40000, 4, 0}, {0x41000, 4, kDescFlagWrite}});
  v.Kick(0);
  EXPECT_EQ(v.echo_->elements, 0);
  EXPECT_FALSE(v.fn_->broken());  // nothing was read, nothing failed
  v.b.SetCfg(kVirtioDevfn, kCfgCommand, kCommandMemory | kCommandMaster, 2);
  v.Kick(0);
  EXPECT_EQ(v.echo_->elements, 1);
  EXPECT_EQ(v.UsedIdx(r), 1);
}

TEST(VirtioPciFunctionTest, PciResetResetsDevice) {
  VirtioBench v;
  v.Ready();
  const int resets = v.echo_->resets;
  v.fn_->Reset();
  EXPECT_EQ(v.echo_->resets, resets + 1);
  EXPECT_EQ(v.fn_->device_status(), 0);
  EXPECT_EQ(v.fn_->command(), 0);
}

// --- common configuration fields ---------------------------------------------

TEST(VirtioPciFunctionTest, FieldsAnswerOnlyAtTheirOwnOffset) {
  VirtioBench v;
  v.Plug();
  v.SetCommon(CommonCfg::kDeviceFeatureSelect, 0x12345678, 4);
  EXPECT_EQ(v.Read(0x00, 2), 0x5678u);  // cut to the access size
  EXPECT_EQ(v.Read(0x01, 1), 0u);       // not a field offset
  EXPECT_EQ(v.Read(0x02, 2), 0u);
  EXPECT_EQ(v.Read(0x18, 4), 8u);  // queue_size only, no vector
  EXPECT_EQ(v.Read(0x3c, 4), 0u);
}

TEST(VirtioPciFunctionTest, NumQueuesAndNotifyOffset) {
  VirtioBench v;
  v.Plug(EchoOptions{.queues = 3});
  EXPECT_EQ(v.Common(CommonCfg::kNumQueues, 2), 3u);
  v.SetCommon(CommonCfg::kQueueSelect, 2, 2);
  EXPECT_EQ(v.Common(CommonCfg::kQueueNotifyOff, 2), 2u);
}

TEST(VirtioPciFunctionTest, QueueSelectTakesValuesBelow1024Only) {
  VirtioBench v;
  v.Plug();
  v.SetCommon(CommonCfg::kQueueSelect, 1023, 2);
  EXPECT_EQ(v.Common(CommonCfg::kQueueSelect, 2), 1023u);
  v.SetCommon(CommonCfg::kQueueSelect, 1024, 2);
  EXPECT_EQ(v.Common(CommonCfg::kQueueSelect, 2), 1023u);
  EXPECT_EQ(v.Common(CommonCfg::kQueueSize, 2), 0u);  // no such queue
  EXPECT_EQ(v.Common(CommonCfg::kQueueNotifyOff, 2), 1023u);
}

TEST(VirtioPciFunctionTest, QueueSizeAccepts1To1024AsQemu72) {
  VirtioBench v;
  v.Plug();
  std::vector<uint64_t> seen;
  for (uint32_t size : {512u, 100u, 0u, 2000u, 1024u, 1025u}) {
    v.SetCommon(CommonCfg::kQueueSize, size, 2);
    seen.push_back(v.Common(CommonCfg::kQueueSize, 2));
  }
  EXPECT_THAT(seen, ElementsAre(512u, 100u, 100u, 100u, 1024u, 1024u));
}

TEST(VirtioPciFunctionTest, QueueEnableAppliesRingAddresses) {
  VirtioBench v;
  v.Plug();
  v.SetCommon(CommonCfg::kQueueDescLo, 0x10000, 4);
  v.SetCommon(CommonCfg::kQueueDescHi, 0x1, 4);
  v.SetCommon(CommonCfg::kQueueDriverLo, 0x11000, 4);
  v.SetCommon(CommonCfg::kQueueDeviceLo, 0x12000, 4);
  EXPECT_FALSE(v.fn_->queue(0).live());  // not before queue_enable
  EXPECT_EQ(v.Read(0x20, 8), 0x1'0001'0000u);
  v.SetCommon(CommonCfg::kQueueEnable, 1, 2);
  EXPECT_EQ(v.fn_->queue(0).desc_addr(), 0x1'0001'0000u);
  EXPECT_EQ(v.fn_->queue(0).avail_addr(), 0x11000u);
  EXPECT_EQ(v.fn_->queue(0).used_addr(), 0x12000u);
  EXPECT_EQ(v.Common(CommonCfg::kQueueEnable, 2), 1u);
}

TEST(VirtioPciFunctionTest, QueueEnableOnMissingQueueReadsBackOne) {
  VirtioBench v;
  v.Plug();
  v.SetCommon(CommonCfg::kQueueSelect, 5, 2);
  v.SetCommon(CommonCfg::kQueueEnable, 1, 2);
  EXPECT_EQ(v.Common(CommonCfg::kQueueEnable, 2), 1u);  // QEMU 7.2 too
  EXPECT_FALSE(v.fn_->broken());
}

TEST(VirtioPciFunctionTest, QueueResetResetsOneQueue) {
  VirtioBench v;
  GuestRing r = v.Ready();
  v.AddChain(r, {{0x40000, 4, 0}, {0x41000, 4, kDescFlagWrite}});
  v.Kick(0);
  v.SetCommon(CommonCfg::kQueueSelect, 0, 2);
  v.SetCommon(CommonCfg::kQueueReset, 1, 2);
  EXPECT_THAT(v.echo_->queue_resets, ElementsAre(0u));
  EXPECT_EQ(v.Common(CommonCfg::kQueueReset, 2), 0u);
  EXPECT_EQ(v.Common(CommonCfg::kQueueEnable, 2), 0u);
  EXPECT_FALSE(v.fn_->queue(0).live());
  EXPECT_EQ(v.fn_->queue(0).used_idx(), 0);
  EXPECT_TRUE(v.fn_->queue(1).live());
  EXPECT_EQ(v.Status(), kLive);
}

// Measured on QEMU 7.2: after queue_reset the queue is disabled and back
// to its maximum size, the programmed addresses still read back, and a
// new queue_enable applies the queue_size written before the reset.
TEST(VirtioPciFunctionTest, QueueResetKeepsProgrammedValuesForReEnable) {
  VirtioBench v;
  v.Ready();
  v.SetCommon(CommonCfg::kQueueSelect, 0, 2);
  v.SetCommon(CommonCfg::kQueueSize, 4, 2);
  v.SetCommon(CommonCfg::kQueueReset, 1, 2);
  EXPECT_EQ(v.Common(CommonCfg::kQueueSize, 2), 8u);
  EXPECT_EQ(v.Common(CommonCfg::kQueueDescLo, 4), 0x10000u);
  v.SetCommon(CommonCfg::kQueueEnable, 1, 2);
  EXPECT_EQ(v.Common(CommonCfg::kQueueSize, 2), 4u);
  EXPECT_EQ(v.fn_->queue(0).desc_addr(), 0x10000u);
}

TEST(VirtioPciFunctionTest, ReplugStartsFromResetWithTheSameConfigSpace) {
  VirtioBench v;
  PlugIommuShaped(v, /*map=*/true);
  v.InitDriver();
  ASSERT_TRUE(v.b.bus().Unplug(kVirtioDevfn).ok());
  PlugIommuShaped(v, /*map=*/false);
  EXPECT_THAT(ConfigBytes(v), ElementsAreArray(kQemuVirtioIommuConfig));
  EXPECT_EQ(v.fn_->device_status(), 0);
}

TEST(VirtioPciFunctionTest, VectorsReadNoVectorWithoutMsix) {
  VirtioBench v;
  v.Plug();
  EXPECT_EQ(v.Common(CommonCfg::kMsixConfig, 2), kNoVector);
  v.SetCommon(CommonCfg::kMsixConfig, 0, 2);
  v.SetCommon(CommonCfg::kQueueMsixVector, 0, 2);
  EXPECT_EQ(v.Common(CommonCfg::kMsixConfig, 2), kNoVector);
  EXPECT_EQ(v.Common(CommonCfg::kQueueMsixVector, 2), kNoVector);
}

TEST(VirtioPciFunctionTest, VectorPastTheTableReadsNoVector) {
  VirtioBench v;
  v.Plug(EchoOptions{.queues = 2},
         VirtioPciOptions{.type_name = "e", .msix_vectors = 3});
  v.SetCommon(CommonCfg::kQueueMsixVector, 2, 2);
  EXPECT_EQ(v.Common(CommonCfg::kQueueMsixVector, 2), 2u);
  v.SetCommon(CommonCfg::kQueueMsixVector, 3, 2);
  EXPECT_EQ(v.Common(CommonCfg::kQueueMsixVector, 2), kNoVector);
}

// --- ISR, device config, notify ----------------------------------------------

TEST(VirtioPciFunctionTest, IsrIsReadToClearAnywhereInItsArea) {
  VirtioBench v;
  v.Ready();
  v.fn_->NotifyConfigChanged();
  EXPECT_EQ(v.Read(kVirtioPciIsrOffset + 4, 1), 0x3u);
  EXPECT_EQ(v.Read(kVirtioPciIsrOffset, 1), 0u);
}

TEST(VirtioPciFunctionTest, ConfigChangeBeforeDriverOkDoesNothing) {
  VirtioBench v;
  v.Plug();
  v.InitDriver();
  v.fn_->NotifyConfigChanged();
  EXPECT_EQ(v.fn_->isr(), 0);
  EXPECT_EQ(v.fn_->config_generation(), 0);
}

TEST(VirtioPciFunctionTest, DeviceConfigReadsRefreshAndPastEndReadAllOnes) {
  VirtioBench v;
  v.Plug();
  v.echo_->reg = 0xa1b2c3d4;
  EXPECT_EQ(v.Read(kVirtioPciDeviceOffset, 4), 0xa1b2c3d4u);
  EXPECT_EQ(v.Read(kVirtioPciDeviceOffset + 1, 1), 0xc3u);
  EXPECT_EQ(v.Read(kVirtioPciDeviceOffset + 8, 4), 0xffffffffu);
  // Unaligned: split in 2-byte pieces, 6..7 in range, 8..9 past the end.
  EXPECT_EQ(v.Read(kVirtioPciDeviceOffset + 6, 4) >> 16, 0xffffu);
  // 8 bytes: two 4-byte reads, each refreshing the copy first.
  const uint64_t both = v.Read(kVirtioPciDeviceOffset, 8);
  EXPECT_EQ(both >> 32, v.echo_->config_reads);
}

TEST(VirtioPciFunctionTest, DeviceConfigWritesReachBackendInRangeOnly) {
  VirtioBench v;
  v.Plug();
  v.Write(kVirtioPciDeviceOffset, 0x11223344, 4);
  EXPECT_EQ(v.echo_->reg, 0x11223344u);
  v.Write(kVirtioPciDeviceOffset + 6, 0xffff, 4);  // 6..7 in, 8..9 out
  EXPECT_EQ(v.echo_->last_config_write, (std::pair<uint32_t, unsigned>{6, 2}));
  v.Write(kVirtioPciDeviceOffset + 8, 1, 4);
  EXPECT_EQ(v.echo_->last_config_write, (std::pair<uint32_t, unsigned>{6, 2}));
}

TEST(VirtioPciFunctionTest, NotifyReadsZeroAndIgnoresQueuesWithoutRings) {
  VirtioBench v;
  v.Plug();
  v.InitDriver();
  EXPECT_EQ(v.Read(kVirtioPciNotifyOffset, 4), 0u);
  v.Kick(0);  // queue 0 not enabled
  v.Kick(7);  // no such queue
  EXPECT_EQ(v.echo_->notified, 0);
}

// --- the PCI configuration access capability ---------------------------------

class CfgWindow {
 public:
  explicit CfgWindow(VirtioBench* v) : v_(v) {}
  void Set(uint32_t bar_offset, uint32_t len) {
    v_->b.SetCfg(kVirtioDevfn, kCap + 4, 4, 1);
    v_->b.SetCfg(kVirtioDevfn, kCap + 8, bar_offset, 4);
    v_->b.SetCfg(kVirtioDevfn, kCap + 12, len, 4);
  }
  uint32_t Data() { return v_->b.Cfg(kVirtioDevfn, kCap + 16, 4); }
  void SetData(uint32_t d) { v_->b.SetCfg(kVirtioDevfn, kCap + 16, d, 4); }
  static constexpr uint8_t kCap = 0x84;

 private:
  VirtioBench* v_;
};

TEST(VirtioPciFunctionTest, CfgCapabilityReadsAndWritesBar4) {
  VirtioBench v;
  v.Plug();
  CfgWindow w(&v);
  w.Set(static_cast<uint32_t>(CommonCfg::kDeviceFeature), 4);
  EXPECT_EQ(w.Data(), 0x30000005u);
  w.Set(static_cast<uint32_t>(CommonCfg::kDeviceFeatureSelect), 2);
  w.SetData(0xaabb0005);  // 2 bytes: 0x0005
  EXPECT_EQ(v.Common(CommonCfg::kDeviceFeatureSelect, 4), 5u);
  w.Set(static_cast<uint32_t>(CommonCfg::kDeviceStatus), 1);
  w.SetData(0x1207);
  EXPECT_EQ(v.Status(), 0x07);
}

TEST(VirtioPciFunctionTest, CfgCapabilityIgnoresOtherLengthsAndBarByte) {
  VirtioBench v;
  v.Plug();
  CfgWindow w(&v);
  w.Set(0, 4);
  w.SetData(3);
  EXPECT_EQ(v.Common(CommonCfg::kDeviceFeatureSelect, 4), 3u);
  w.Set(0, 8);
  w.SetData(9);
  EXPECT_EQ(v.Common(CommonCfg::kDeviceFeatureSelect, 4), 3u);
  w.Set(0, 3);
  EXPECT_EQ(w.Data(), 9u);  // no access: data as last written
  // QEMU 7.2 does not check the bar byte either.
  v.b.SetCfg(kVirtioDevfn, CfgWindow::kCap + 4, 0, 1);
  v.b.SetCfg(kVirtioDevfn, CfgWindow::kCap + 12, 4, 4);
  w.SetData(6);
  EXPECT_EQ(v.Common(CommonCfg::kDeviceFeatureSelect, 4), 6u);
}

TEST(VirtioPciFunctionTest, CfgCapabilityWritableBytesAsQemu72) {
  VirtioBench v;
  PlugIommuShaped(v, /*map=*/false);
  for (uint32_t off = 0x40; off < 0x98; off += 4) {
    v.b.SetCfg(kVirtioDevfn, off, 0xffffffff, 4);
  }
  std::vector<uint8_t> bytes = ConfigBytes(v);
  std::vector<uint8_t> want(kQemuVirtioIommuConfig,
                            kQemuVirtioIommuConfig + 256);
  // Measured on QEMU 7.2 after the same writes: bar, offset, length and
  // data of the PCI cfg capability changed, nothing else in 0x40-0x97.
  want[0x88] = 0xff;
  for (int i = 0x8c; i < 0x98; ++i) want[i] = 0xff;
  EXPECT_THAT(std::vector<uint8_t>(bytes.begin() + 0x40, bytes.begin() + 0x98),
              ElementsAreArray(want.begin() + 0x40, want.begin() + 0x98));
}

TEST(VirtioPciFunctionTest, CfgCapabilityReadOfIsrClearsIt) {
  VirtioBench v;
  v.Ready();
  v.fn_->NotifyConfigChanged();
  CfgWindow w(&v);
  w.Set(static_cast<uint32_t>(kVirtioPciIsrOffset), 1);
  EXPECT_EQ(w.Data() & 0xff, 0x3u);
  EXPECT_EQ(v.fn_->isr(), 0);
}

// --- interrupts --------------------------------------------------------------

// As measured on QEMU 7.2 with EVENT_IDX: the first used entry interrupts,
// one that does not pass used_event does not, and avail_event follows.
TEST(VirtioPciFunctionTest, EventIdxSuppressesIntxAsQemu72) {
  VirtioBench v;
  GuestRing r = v.Ready();
  v.AddChain(r, {{0x40000, 4, 0}, {0x41000, 4, kDescFlagWrite}});
  v.Kick(0);
  EXPECT_EQ(v.AvailEvent(r), 1);
  EXPECT_EQ(v.Read(kVirtioPciIsrOffset, 1), 0x1u);
  v.SetUsedEvent(r, 5);
  v.AddChain(r, {{0x40000, 4, 0}, {0x41000, 4, kDescFlagWrite}}, 2);
  v.Kick(0);
  EXPECT_EQ(v.UsedIdx(r), 2);
  EXPECT_EQ(v.AvailEvent(r), 2);
  EXPECT_FALSE(v.Intx());
  EXPECT_EQ(v.Read(kVirtioPciIsrOffset, 1), 0u);
}

TEST(VirtioPciFunctionTest, IntxFollowsIsrWithoutMsix) {
  VirtioBench v;
  GuestRing r = v.Ready();
  v.AddChain(r, {{0x40000, 4, 0}, {0x41000, 4, kDescFlagWrite}});
  v.Kick(0);
  EXPECT_TRUE(v.Intx());
  EXPECT_EQ(v.Read(kVirtioPciIsrOffset, 1), 0x1u);
  EXPECT_FALSE(v.Intx());
}

class VirtioMsixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v_.Plug(EchoOptions{.queues = 2},
            VirtioPciOptions{.type_name = "virtio-echo-pci"});
    cap_ = v_.fn_->msix_cap();
    // Vector 1: message 0x4041 to the MSI window.
    PutEntry(1, 0xfee00000, 0x4041, /*masked=*/false);
    v_.b.SetCfg(kVirtioDevfn, cap_ + 3, 0x80, 1);  // enable
    v_.InitDriver();
    v_.SetCommon(CommonCfg::kQueueSelect, 0, 2);
    v_.SetCommon(CommonCfg::kQueueMsixVector, 1, 2);
    r_ = v_.SetupQueue(0, 8, 0x10000);
    v_.DriverOk();
  }
  void PutEntry(unsigned vec, uint32_t addr, uint32_t data, bool masked) {
    v_.Put(kBar1 + 16 * vec, addr, 4);
    v_.Put(kBar1 + 16 * vec + 4, 0, 4);
    v_.Put(kBar1 + 16 * vec + 8, data, 4);
    v_.Put(kBar1 + 16 * vec + 12, masked ? 1 : 0, 4);
  }
  void Request() {
    v_.AddChain(r_, {{0x40000, 4, 0}, {0x41000, 4, kDescFlagWrite}},
                static_cast<uint16_t>(2 * (r_.avail_idx % 4)));
    v_.Kick(0);
  }
  uint64_t Msis() { return v_.b.msi().Count(kVirtioDevfn); }

  VirtioBench v_;
  uint8_t cap_ = 0;
  GuestRing r_;
};

TEST_F(VirtioMsixTest, QueueInterruptSendsItsVector) {
  Request();
  EXPECT_EQ(Msis(), 1u);
  EXPECT_EQ(v_.b.msi().Last(kVirtioDevfn)->data, 0x4041u);
  EXPECT_FALSE(v_.Intx());
  EXPECT_EQ(v_.fn_->isr(), 1);  // ISR is set with MSI-X too
}

TEST_F(VirtioMsixTest, MaskedVectorIsPendingAndFiresOnUnmask) {
  v_.Put(kBar1 + 16 + 12, 1, 4);  // mask vector 1
  Request();
  EXPECT_EQ(Msis(), 0u);
  EXPECT_EQ(v_.Get(kBar1 + 0x800, 4), 0x2u);  // PBA bit 1
  v_.Put(kBar1 + 16 + 12, 0, 4);
  EXPECT_EQ(Msis(), 1u);
  EXPECT_EQ(v_.Get(kBar1 + 0x800, 4), 0u);
}

TEST_F(VirtioMsixTest, FunctionMaskHoldsEveryVector) {
  v_.b.SetCfg(kVirtioDevfn, cap_ + 3, 0xc0, 1);  // enable + mask all
  Request();
  EXPECT_EQ(Msis(), 0u);
  v_.b.SetCfg(kVirtioDevfn, cap_ + 3, 0x80, 1);
  EXPECT_EQ(Msis(), 1u);
}

TEST_F(VirtioMsixTest, NoVectorSendsNothing) {
  v_.SetCommon(CommonCfg::kQueueMsixVector, kNoVector, 2);
  Request();
  EXPECT_EQ(Msis(), 0u);
  EXPECT_FALSE(v_.Intx());
}

TEST_F(VirtioMsixTest, TableStartsMaskedAfterPciReset) {
  v_.fn_->Reset();
  EXPECT_FALSE(v_.fn_->msix_enabled());
  v_.b.SetCfg(kVirtioDevfn, kCfgBar0 + 4, kBar1, 4);
  v_.b.SetCfg(kVirtioDevfn, kCfgCommand, kCommandMemory, 2);
  EXPECT_EQ(v_.Get(kBar1 + 16 + 12, 4), 1u);
  EXPECT_EQ(v_.Get(kBar1 + 16, 4), 0u);
}

}  // namespace
}  // namespace viommu::hw::virtio
