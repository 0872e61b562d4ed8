#include "viommu/hw/pci/pci_bus.h"

#include <cstdint>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/hw/pci/fake_pci_device.h"

namespace viommu::hw::pci {
namespace {

using ::testing::ElementsAre;
using testing::FakePciDevice;
using testing::FakePciOptions;
using ::testing::HasSubstr;
using testing::PciTestBench;

TEST(PciBusTest, PlugWithoutDevfnTakesLowestFreeSlotFromOne) {
  PciTestBench b;
  ASSERT_TRUE(b.bus().Plug(std::make_unique<Q35HostBridge>(), 0).ok());
  FakePciDevice* first = b.PlugFake(std::nullopt);
  ASSERT_NE(b.PlugFake(0x18), nullptr);  // 03.0
  FakePciDevice* second = b.PlugFake(std::nullopt);
  FakePciDevice* third = b.PlugFake(std::nullopt);
  EXPECT_EQ(first->devfn(), 0x08);
  EXPECT_EQ(second->devfn(), 0x10);
  EXPECT_EQ(third->devfn(), 0x20);
  EXPECT_EQ(third->requester_id(), 0x20);
}

TEST(PciBusTest, PlugIntoUsedSlotIsAlreadyExists) {
  PciTestBench b;
  FakePciDevice* dev = b.PlugFake(0x20);
  dev->set_id("d1");
  absl::StatusOr<PciDevice*> r =
      b.bus().Plug(std::make_unique<FakePciDevice>(), 0x20);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(r.status().message(),
              HasSubstr("slot 4 function 0 not available for fake-pci, in "
                        "use by fake-pci,id=d1"));
  EXPECT_EQ(b.bus().Find(0x20), dev);
}

TEST(PciBusTest, PlugIntoFullBusIsResourceExhausted) {
  PciTestBench b;
  for (int slot = 1; slot < 32; ++slot) {
    ASSERT_NE(b.PlugFake(std::nullopt, {.bars = false, .msi_vectors = 0}),
              nullptr);
  }
  absl::StatusOr<PciDevice*> r =
      b.bus().Plug(std::make_unique<FakePciDevice>(), std::nullopt);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(PciBusTest, RealizeErrorLeavesNothingAttached) {
  PciTestBench b;
  absl::StatusOr<PciDevice*> r = b.bus().Plug(
      std::make_unique<FakePciDevice>(
          FakePciOptions{.realize_status = absl::InternalError("boom")}),
      0x20);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(b.bus().Find(0x20), nullptr);
  EXPECT_EQ(b.bus().ConfigRead(0x20, kCfgVendorId, 4), 0xffffffffu);
}

TEST(PciBusTest, AbsentFunctionReadsAllOnes) {
  PciTestBench b;
  EXPECT_EQ(b.Cfg(0x30, 0, 4), 0xffffffffu);
  EXPECT_EQ(b.Cfg(0x30, 2, 2), 0xffffu);
  EXPECT_EQ(b.Cfg(0x30, 1, 1), 0xffu);
  b.SetCfg(0x30, kCfgCommand, 0x7, 2);  // dropped, no crash
}

TEST(PciBusTest, ConventionalFunctionReadsAllOnesPast256) {
  PciTestBench b;
  b.PlugFake(0x20);
  EXPECT_EQ(b.Cfg(0x20, 0x100, 4), 0xffffffffu);
  EXPECT_EQ(b.Cfg(0x20, 0xffc, 2), 0xffffu);
  b.SetCfg(0x20, 0x100, 0x1234, 4);
}

TEST(PciBusTest, UnplugRemovesBarMappingsAndReturnsDevice) {
  PciTestBench b;
  FakePciDevice* dev = b.PlugFake(0x20);
  b.SetCfg(0x20, kCfgBar0, 0xe0000000);
  b.SetCfg(0x20, kCfgBar0 + 16, 0xc000);
  b.SetCfg(0x20, kCfgCommand, kCommandMemory | kCommandIo, 2);
  uint64_t v = 0;
  ASSERT_TRUE(b.MemRead(0xe0000000, &v, 4).ok());

  absl::StatusOr<std::unique_ptr<PciDevice>> out = b.bus().Unplug(0x20);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->get(), dev);
  EXPECT_EQ(dev->unrealize_count(), 1);
  EXPECT_EQ(dev->bus(), nullptr);
  EXPECT_EQ(b.bus().Find(0x20), nullptr);
  EXPECT_TRUE(b.MemRead(0xe0000000, &v, 4).decode_error());
  EXPECT_TRUE(b.io_as().Read(0xc000, &v, 1).decode_error());
  EXPECT_EQ(b.Cfg(0x20, 0, 4), 0xffffffffu);
}

TEST(PciBusTest, UnplugLowersIntx) {
  PciTestBench b;
  FakePciDevice* dev = b.PlugFake(0x20);
  dev->DoSetIntx(true);
  ASSERT_TRUE(b.irq().level(16));
  ASSERT_TRUE(b.bus().Unplug(0x20).ok());
  EXPECT_FALSE(b.irq().level(16));
}

TEST(PciBusTest, UnplugEmptySlotIsNotFound) {
  PciTestBench b;
  EXPECT_EQ(b.bus().Unplug(0x20).status().code(), absl::StatusCode::kNotFound);
}

TEST(PciBusTest, UnpluggedDeviceCanBePluggedAgain) {
  PciTestBench b;
  b.PlugFake(0x20);
  absl::StatusOr<std::unique_ptr<PciDevice>> out = b.bus().Unplug(0x20);
  ASSERT_TRUE(out.ok());
  auto* fake = static_cast<FakePciDevice*>(out->get());
  absl::StatusOr<PciDevice*> again = b.bus().Plug(std::move(*out), 0x28);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(fake->realize_count(), 2);
  EXPECT_EQ(b.Cfg(0x28, kCfgVendorId, 4), 0xbeef1234u);
  b.SetCfg(0x28, kCfgBar0, 0xffffffff);
  EXPECT_EQ(b.Cfg(0x28, kCfgBar0, 4), 0xfffff000u);
}

TEST(PciBusTest, FindByIdAndForEachDevice) {
  PciTestBench b;
  FakePciDevice* a = b.PlugFake(0x28);
  FakePciDevice* c = b.PlugFake(0x10);
  a->set_id("net0");
  EXPECT_EQ(b.bus().FindById("net0"), a);
  EXPECT_EQ(b.bus().FindById("nope"), nullptr);
  EXPECT_EQ(b.bus().FindById(""), nullptr);
  std::vector<PciDevice*> seen;
  b.bus().ForEachDevice([&](PciDevice* d) { seen.push_back(d); });
  EXPECT_THAT(seen, ElementsAre(c, a));
}

TEST(PciBusTest, ResetResetsEveryDevice) {
  PciTestBench b;
  b.PlugFake(0x10);
  b.PlugFake(0x18);
  b.SetCfg(0x10, kCfgCommand, kCommandMaster, 2);
  b.SetCfg(0x18, kCfgCommand, kCommandMemory, 2);
  b.bus().Reset();
  EXPECT_EQ(b.Cfg(0x10, kCfgCommand, 2), 0u);
  EXPECT_EQ(b.Cfg(0x18, kCfgCommand, 2), 0u);
}

TEST(PciBusTest, IntxSinkSetAfterPlugCarriesLevel) {
  testing::RecordingIrqSink sink;  // outlives the bus, which lowers lines
  PciTestBench b;
  b.bus().SetIntxSink(nullptr, nullptr);
  FakePciDevice* dev = b.PlugFake(0x20);
  dev->DoSetIntx(true);
  b.bus().SetIntxSink(&sink, [](uint8_t, int pin) { return 10 + pin; });
  EXPECT_TRUE(sink.level(11));
}

}  // namespace
}  // namespace viommu::hw::pci
