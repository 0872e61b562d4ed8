// tests/hw/virtio/virtio_test_bench.h — a test-only virtio backend (an echo
// device) and a bench that plugs it behind a VirtioPciFunction on a real
// PciBus and plays the guest driver: config space, BAR4 registers, split
// rings in guest RAM, kicks and used-ring reads.
//
//   VirtioBench v;
//   v.Plug();                          // echo device at 03.0, BAR4 mapped
//   v.InitDriver();                    // ACK, DRIVER, features, FEATURES_OK
//   GuestRing r = v.SetupQueue(0, 8, 0x10000);
//   v.DriverOk();
//   uint16_t head = v.AddChain(r, {{0x40000, 4, 0}, {0x41000, 4,
//   kDescFlagWrite}}); v.Kick(0);                         // processed before
//   Kick returns EXPECT_EQ(v.UsedIdx(r), 1);
#ifndef VIOMMU_TESTS_HW_VIRTIO_VIRTIO_TEST_BENCH_H_
#define VIOMMU_TESTS_HW_VIRTIO_VIRTIO_TEST_BENCH_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/hw/pci/fake_pci_device.h"
#include "viommu/hw/pci/pci_regs.h"
#include "viommu/hw/virtio/split_virtqueue.h"
#include "viommu/hw/virtio/virtio_device.h"
#include "viommu/hw/virtio/virtio_pci_function.h"
#include "viommu/hw/virtio/virtio_regs.h"
#include "viommu/util/le_bytes.h"

namespace viommu::hw::virtio::testing {

struct EchoOptions {
  uint16_t device_id = 42;
  uint64_t features = 0x5;  // device-type bits 0 and 2
  unsigned queues = 2;
  uint16_t queue_size = 8;
  uint32_t config_size = 8;
  bool notify_per_element = false;
};

// Queue 0 echoes: every chain's readable bytes are copied into its writable
// part (as far as it goes) and the chain is returned with that many bytes
// written; one interrupt per batch (or per element). Other queues return
// chains with 0 bytes. Config: le32 register at 0 (RW), le32 read counter
// at 4 (RO: counts ReadConfig calls).
class EchoDevice final : public VirtioDevice {
 public:
  explicit EchoDevice(EchoOptions o = {}) : o_(o) {}
  uint16_t device_id() const override { return o_.device_id; }
  uint64_t device_features() const override { return o_.features; }
  unsigned num_queues() const override { return o_.queues; }
  uint16_t queue_max_size(unsigned) const override { return o_.queue_size; }
  uint32_t config_size() const override { return o_.config_size; }

  void ReadConfig(std::span<uint8_t> config) override {
    ++config_reads;
    if (config.size() >= 8) {
      StoreLe(config.data(), reg, 4);
      StoreLe(config.data() + 4, config_reads, 4);
    }
  }
  void WriteConfig(std::span<const uint8_t> config, uint32_t offset,
                   unsigned size) override {
    if (offset < 4 && config.size() >= 4) {
      reg = static_cast<uint32_t>(LoadLe(config.data(), 4));
    }
    last_config_write = {offset, size};
  }
  void QueueNotified(unsigned index) override {
    ++notified;
    SplitVirtqueue& vq = transport()->queue(index);
    int pushed = 0;
    for (;;) {
      const SplitVirtqueue::PopResult r = vq.Pop(&elem_);
      if (r == SplitVirtqueue::PopResult::kError) ++pop_errors;
      if (r != SplitVirtqueue::PopResult::kElement) break;
      ++elements;
      uint32_t written = 0;
      if (index == 0) {
        const size_t n = vq.ReadFrom(elem_, 0, buf_.data(), buf_.size());
        written = static_cast<uint32_t>(vq.WriteTo(elem_, 0, buf_.data(), n));
      }
      last_readable = elem_.readable().size();
      last_writable = elem_.writable().size();
      vq.Push(elem_, written);
      ++pushed;
      if (o_.notify_per_element) transport()->NotifyQueue(index);
    }
    if (!o_.notify_per_element && pushed > 0) transport()->NotifyQueue(index);
  }
  [[nodiscard]] absl::Status ValidateFeatures(uint64_t features) override {
    if (refuse_feature_bit && (features & FeatureBit(*refuse_feature_bit))) {
      return absl::FailedPreconditionError("refused by the device");
    }
    return absl::OkStatus();
  }
  void StatusChanged(uint8_t, uint8_t status) override {
    statuses.push_back(status);
  }
  void Reset() override { ++resets; }
  void QueueReset(unsigned index) override { queue_resets.push_back(index); }

  uint32_t reg = 0;
  uint32_t config_reads = 0;
  std::pair<uint32_t, unsigned> last_config_write{~0u, 0};
  int notified = 0;
  int elements = 0;
  int pop_errors = 0;
  size_t last_readable = 0;
  size_t last_writable = 0;
  int resets = 0;
  std::vector<unsigned> queue_resets;
  std::vector<uint8_t> statuses;
  std::optional<unsigned> refuse_feature_bit;

 private:
  EchoOptions o_;
  VirtqElement elem_;
  std::array<uint8_t, 4096> buf_{};
};

struct GuestRing {
  unsigned queue = 0;
  uint16_t size = 0;
  uint64_t desc = 0;
  uint64_t avail = 0;
  uint64_t used = 0;
  uint16_t avail_idx = 0;  // the driver's next avail index
};

struct GuestDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;  // NEXT is added by AddChain
};

inline constexpr uint8_t kVirtioDevfn = 0x18;  // 03.0: INTA# -> line 19
inline constexpr int kVirtioIntxLine = 19;
inline constexpr uint64_t kBar4 = 0xe000'0000;
inline constexpr uint64_t kBar1 = 0xe100'0000;

class VirtioBench {
 public:
  // Plugs an EchoDevice behind a VirtioPciFunction at 03.0 and, unless
  // `map` is false, maps BAR4 (and BAR1) with memory decode and bus
  // mastering on.
  void Plug(EchoOptions echo = {}, VirtioPciOptions opts = DefaultOptions(),
            bool map = true) {
    auto dev = std::make_unique<EchoDevice>(echo);
    echo_ = dev.get();
    absl::StatusOr<std::unique_ptr<VirtioPciFunction>> fn =
        VirtioPciFunction::Create(std::move(dev), std::move(opts));
    ASSERT_TRUE(fn.ok()) << fn.status();
    absl::StatusOr<pci::PciDevice*> plugged =
        b.bus().Plug(*std::move(fn), kVirtioDevfn);
    ASSERT_TRUE(plugged.ok()) << plugged.status();
    fn_ = static_cast<VirtioPciFunction*>(*plugged);
    if (map) {
      b.SetCfg(kVirtioDevfn, pci::kCfgBar0 + 4 * 4, kBar4, 4);
      b.SetCfg(kVirtioDevfn, pci::kCfgBar0 + 5 * 4, 0, 4);
      if (fn_->msix_present()) {
        b.SetCfg(kVirtioDevfn, pci::kCfgBar0 + 4, kBar1, 4);
      }
      b.SetCfg(kVirtioDevfn, pci::kCfgCommand,
               pci::kCommandMemory | pci::kCommandMaster, 2);
    }
  }
  static VirtioPciOptions DefaultOptions() {
    return {.type_name = "virtio-echo-pci", .msix_vectors = 0};
  }

  // BAR4 accesses.
  uint64_t Read(uint64_t off, unsigned size) {
    uint64_t v = 0;
    EXPECT_TRUE(b.MemRead(kBar4 + off, &v, size).ok()) << std::hex << off;
    return v;
  }
  void Write(uint64_t off, uint64_t v, unsigned size) {
    EXPECT_TRUE(b.MemWrite(kBar4 + off, v, size).ok()) << std::hex << off;
  }
  uint64_t Common(CommonCfg f, unsigned size) {
    return Read(static_cast<uint64_t>(f), size);
  }
  void SetCommon(CommonCfg f, uint64_t v, unsigned size) {
    Write(static_cast<uint64_t>(f), v, size);
  }
  uint8_t Status() {
    return static_cast<uint8_t>(Common(CommonCfg::kDeviceStatus, 1));
  }
  void SetStatus(uint8_t s) { SetCommon(CommonCfg::kDeviceStatus, s, 1); }
  void SetDriverFeatures(uint64_t f) {
    SetCommon(CommonCfg::kDriverFeatureSelect, 0, 4);
    SetCommon(CommonCfg::kDriverFeature, f & 0xffffffff, 4);
    SetCommon(CommonCfg::kDriverFeatureSelect, 1, 4);
    SetCommon(CommonCfg::kDriverFeature, f >> 32, 4);
  }
  uint64_t DeviceFeatures() {
    SetCommon(CommonCfg::kDeviceFeatureSelect, 0, 4);
    uint64_t f = Common(CommonCfg::kDeviceFeature, 4);
    SetCommon(CommonCfg::kDeviceFeatureSelect, 1, 4);
    return f | Common(CommonCfg::kDeviceFeature, 4) << 32;
  }
  // ACKNOWLEDGE, DRIVER, features (default: all offered), FEATURES_OK.
  void InitDriver(std::optional<uint64_t> features = std::nullopt) {
    SetStatus(kStatusAcknowledge);
    SetStatus(kStatusAcknowledge | kStatusDriver);
    SetDriverFeatures(features.value_or(fn_->offered_features()));
    SetStatus(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  }
  void DriverOk() {
    SetStatus(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk |
              kStatusDriverOk);
  }
  // Rings of `size` entries at `base` (desc), base + 0x1000 (avail),
  // base + 0x2000 (used); enabled.
  GuestRing SetupQueue(unsigned q, uint16_t size, uint64_t base) {
    GuestRing r{.queue = q,
                .size = size,
                .desc = base,
                .avail = base + 0x1000,
                .used = base + 0x2000};
    Fill(base, 0x3000, 0);
    SetCommon(CommonCfg::kQueueSelect, q, 2);
    SetCommon(CommonCfg::kQueueSize, size, 2);
    SetCommon(CommonCfg::kQueueDescLo, r.desc, 4);
    SetCommon(CommonCfg::kQueueDescHi, 0, 4);
    SetCommon(CommonCfg::kQueueDriverLo, r.avail, 4);
    SetCommon(CommonCfg::kQueueDriverHi, 0, 4);
    SetCommon(CommonCfg::kQueueDeviceLo, r.used, 4);
    SetCommon(CommonCfg::kQueueDeviceHi, 0, 4);
    SetCommon(CommonCfg::kQueueEnable, 1, 2);
    return r;
  }
  // Everything up to DRIVER_OK with queue 0 at 0x10000 (and queue 1 at
  // 0x20000 when there is one).
  GuestRing Ready(EchoOptions echo = {},
                  VirtioPciOptions opts = DefaultOptions()) {
    Plug(echo, std::move(opts));
    InitDriver();
    GuestRing r = SetupQueue(0, echo.queue_size, 0x10000);
    if (echo.queues > 1) SetupQueue(1, echo.queue_size, 0x20000);
    DriverOk();
    return r;
  }

  // Guest RAM.
  void Put(uint64_t addr, uint64_t v, unsigned size) {
    ASSERT_TRUE(b.MemWrite(addr, v, size).ok()) << std::hex << addr;
  }
  uint64_t Get(uint64_t addr, unsigned size) {
    uint64_t v = 0;
    EXPECT_TRUE(b.MemRead(addr, &v, size).ok()) << std::hex << addr;
    return v;
  }
  void PutBytes(uint64_t addr, const void* p, size_t n) {
    ASSERT_TRUE(b.system_as().Write(addr, p, n).ok());
  }
  std::vector<uint8_t> GetBytes(uint64_t addr, size_t n) {
    std::vector<uint8_t> out(n);
    EXPECT_TRUE(b.system_as().Read(addr, out.data(), n).ok());
    return out;
  }
  void Fill(uint64_t addr, size_t n, uint8_t byte) {
    std::vector<uint8_t> bytes(n, byte);
    PutBytes(addr, bytes.data(), n);
  }
  void PutDesc(uint64_t table, unsigned i, uint64_t addr, uint32_t len,
               uint16_t flags, uint16_t next) {
    Put(table + 16 * i, addr, 8);
    Put(table + 16 * i + 8, len, 4);
    Put(table + 16 * i + 12, flags, 2);
    Put(table + 16 * i + 14, next, 2);
  }
  // Writes `chain` into descriptors first..first+n-1 (NEXT-linked) and
  // makes it available. Returns the head.
  uint16_t AddChain(GuestRing& r, std::vector<GuestDesc> chain,
                    uint16_t first = 0) {
    for (size_t i = 0; i < chain.size(); ++i) {
      const bool more = i + 1 < chain.size();
      const uint16_t idx = static_cast<uint16_t>((first + i) % r.size);
      PutDesc(
          r.desc, idx, chain[i].addr, chain[i].len,
          static_cast<uint16_t>(chain[i].flags | (more ? kDescFlagNext : 0)),
          static_cast<uint16_t>((idx + 1) % r.size));
    }
    Publish(r, first);
    return first;
  }
  // Puts `head` in the next avail slot and bumps the avail index.
  void Publish(GuestRing& r, uint16_t head) {
    Put(r.avail + 4 + 2 * (r.avail_idx % r.size), head, 2);
    ++r.avail_idx;
    Put(r.avail + 2, r.avail_idx, 2);
  }
  void Kick(unsigned q) { Write(kVirtioPciNotifyOffset + 4 * q, q, 2); }
  uint16_t UsedIdx(const GuestRing& r) {
    return static_cast<uint16_t>(Get(r.used + 2, 2));
  }
  std::pair<uint32_t, uint32_t> UsedElem(const GuestRing& r, uint16_t i) {
    const uint64_t at = r.used + 4 + 8 * (i % r.size);
    return {static_cast<uint32_t>(Get(at, 4)),
            static_cast<uint32_t>(Get(at + 4, 4))};
  }
  uint16_t AvailEvent(const GuestRing& r) {
    return static_cast<uint16_t>(Get(r.used + 4 + 8 * r.size, 2));
  }
  void SetUsedEvent(const GuestRing& r, uint16_t v) {
    Put(r.avail + 4 + 2 * r.size, v, 2);
  }
  bool Intx() { return b.irq().level(kVirtioIntxLine); }

  pci::testing::PciTestBench b;
  VirtioPciFunction* fn_ = nullptr;
  EchoDevice* echo_ = nullptr;
};

}  // namespace viommu::hw::virtio::testing

#endif  // VIOMMU_TESTS_HW_VIRTIO_VIRTIO_TEST_BENCH_H_
