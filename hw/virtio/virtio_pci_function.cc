// VirtioPciFunction: creation, realize (BARs and capabilities as QEMU 7.2
// places them), the PCI configuration hooks, resets, and the
// VirtioTransport side (errors, interrupts). The BAR4 register areas are
// in virtio_pci_regs.cc.
#include "viommu/hw/virtio/virtio_pci_function.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "hw/virtio/virtio_pci_area_ops.h"
#include "hw/virtio/virtio_pci_msix.h"
#include "viommu/hw/pci/pci_regs.h"
#include "viommu/util/check.h"
#include "viommu/util/le_bytes.h"
#include "viommu/util/log.h"
#include "viommu/util/status_macros.h"

namespace viommu::hw::virtio {
namespace {

using pci::kCfgCommand;
using pci::kCommandMaster;

constexpr unsigned kMaxMsixVectors = 2048;
constexpr uint32_t kMaxConfigSize = 4096;

bool Overlaps(uint32_t a, unsigned alen, uint32_t b, unsigned blen) {
  return a < b + blen && b < a + alen;
}

}  // namespace

absl::StatusOr<std::unique_ptr<VirtioPciFunction>> VirtioPciFunction::Create(
    std::unique_ptr<VirtioDevice> device, VirtioPciOptions options) {
  if (device == nullptr) return absl::InvalidArgumentError("no virtio device");
  if (options.type_name.empty()) {
    return absl::InvalidArgumentError("virtio-pci: empty type name");
  }
  const unsigned nq = device->num_queues();
  if (nq == 0 || nq > kMaxQueues) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %u queues (1..%u)", options.type_name, nq, kMaxQueues));
  }
  for (unsigned i = 0; i < nq; ++i) {
    const uint16_t size = device->queue_max_size(i);
    if (size == 0 || size > kMaxQueueSize) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: queue %u size %u (1..%u)", options.type_name, i,
                          size, kMaxQueueSize));
    }
  }
  if (device->config_size() > kMaxConfigSize) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: config space of %u bytes (at most %u)", options.type_name,
        device->config_size(), kMaxConfigSize));
  }
  const unsigned vectors = options.msix_vectors.value_or(nq + 1);
  if (vectors > kMaxMsixVectors) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %u MSI-X vectors (at most %u)", options.type_name,
                        vectors, kMaxMsixVectors));
  }
  options.msix_vectors = vectors;
  uint64_t offered = device->device_features() | FeatureBit(kFeatureVersion1);
  if (options.indirect_desc) offered |= FeatureBit(kFeatureIndirectDesc);
  if (options.event_idx) offered |= FeatureBit(kFeatureEventIdx);
  if (options.queue_reset) offered |= FeatureBit(kFeatureRingReset);
  return std::unique_ptr<VirtioPciFunction>(
      new VirtioPciFunction(std::move(device), std::move(options), offered));
}

VirtioPciFunction::VirtioPciFunction(std::unique_ptr<VirtioDevice> device,
                                     VirtioPciOptions options, uint64_t offered)
    : PciDevice(options.type_name, {.vendor_id = kPciVendorId,
                                    .device_id = static_cast<uint16_t>(
                                        kPciDeviceIdBase + device->device_id()),
                                    .revision = kPciModernRevision,
                                    .class_code = options.class_code,
                                    .interrupt_pin = 1}),
      options_(std::move(options)),
      device_(std::move(device)),
      offered_(offered),
      config_size_(device_->config_size()),
      regs_(kMaxQueues),
      config_copy_(config_size_) {
  device_->Bind(this);
  const unsigned nq = device_->num_queues();
  queues_.reserve(nq);
  for (unsigned i = 0; i < nq; ++i) {
    queues_.push_back(
        std::make_unique<SplitVirtqueue>(this, i, device_->queue_max_size(i)));
  }
  if (*options_.msix_vectors > 0) {
    msix_ = std::make_unique<VirtioPciMsix>(
        *options_.msix_vectors, [this](uint64_t address, uint32_t data) {
          uint8_t bytes[4];
          StoreLe(bytes, data, 4);
          (void)DmaWrite(address, bytes, sizeof(bytes));
        });
  }
  area_ops_[0] = std::make_unique<AreaOps>(this, Area::kCommon);
  area_ops_[1] = std::make_unique<AreaOps>(this, Area::kIsr);
  area_ops_[2] = std::make_unique<AreaOps>(this, Area::kDevice);
  area_ops_[3] = std::make_unique<AreaOps>(this, Area::kNotify);
}

VirtioPciFunction::~VirtioPciFunction() = default;

absl::Status VirtioPciFunction::Realize() {
  memory::MemorySystem* sys = memory();
  bar4_ = memory::MemoryRegion::CreateContainer(sys, "virtio-pci",
                                                kVirtioPciModernBarSize);
  static constexpr const char* kAreaNames[] = {
      "virtio-pci-common", "virtio-pci-isr", "virtio-pci-device",
      "virtio-pci-notify"};
  for (size_t i = 0; i < area_ops_.size(); ++i) {
    bar4_->AddSubregion(
        i * kVirtioPciAreaSize,
        memory::MemoryRegion::CreateMmio(sys, kAreaNames[i], kVirtioPciAreaSize,
                                         area_ops_[i].get()));
  }
  // The vendor capabilities in QEMU's order, each placed at the first free
  // config bytes: common 0x40, ISR 0x50, device 0x60, notify 0x70, PCI
  // configuration access 0x84.
  struct CapSpec {
    uint8_t type;
    uint8_t len;
    uint64_t offset;
  };
  static constexpr CapSpec kCaps[] = {
      {kPciCapCommonCfg, kPciCapLen, kVirtioPciCommonOffset},
      {kPciCapIsrCfg, kPciCapLen, kVirtioPciIsrOffset},
      {kPciCapDeviceCfg, kPciCapLen, kVirtioPciDeviceOffset},
      {kPciCapNotifyCfg, kPciNotifyCapLen, kVirtioPciNotifyOffset},
  };
  uint8_t* cfg = config();
  for (const CapSpec& c : kCaps) {
    VIOMMU_ASSIGN_OR_RETURN(uint8_t at, AddCapability(kPciCapIdVendor, c.len));
    cfg[at + kPciCapOffLen] = c.len;
    cfg[at + kPciCapOffType] = c.type;
    cfg[at + kPciCapOffBar] = kVirtioPciModernBar;
    StoreLe(&cfg[at + kPciCapOffOffset], c.offset, 4);
    StoreLe(&cfg[at + kPciCapOffLength], kVirtioPciAreaSize, 4);
    if (c.type == kPciCapNotifyCfg) {
      StoreLe(&cfg[at + kPciCapOffNotifyMultiplier], kVirtioPciNotifyMultiplier,
              4);
    }
  }
  RegisterBar(kVirtioPciModernBar, pci::BarType::kMem64,
              /*prefetchable=*/true, bar4_);
  VIOMMU_ASSIGN_OR_RETURN(cfg_cap_,
                          AddCapability(kPciCapIdVendor, kPciCfgCapLen));
  cfg[cfg_cap_ + kPciCapOffLen] = kPciCfgCapLen;
  cfg[cfg_cap_ + kPciCapOffType] = kPciCapPciCfg;
  // The driver chooses the window: bar, offset, length and data writable.
  uint8_t* wm = wmask();
  wm[cfg_cap_ + kPciCapOffBar] = 0xff;
  StoreLe(&wm[cfg_cap_ + kPciCapOffOffset], 0xffffffff, 4);
  StoreLe(&wm[cfg_cap_ + kPciCapOffLength], 0xffffffff, 4);
  StoreLe(&wm[cfg_cap_ + kPciCapOffCfgData], 0xffffffff, 4);
  if (msix_ != nullptr) {
    msix_bar_ = msix_->CreateBar(sys);
    RegisterBar(kVirtioPciMsixBar, pci::BarType::kMem32,
                /*prefetchable=*/false, msix_bar_);
    VIOMMU_ASSIGN_OR_RETURN(uint8_t at, AddCapability(VirtioPciMsix::kCapId,
                                                      VirtioPciMsix::kCapSize));
    msix_->InitCapability(cfg, wm, at, kVirtioPciMsixBar);
    msix_->Reset();
  }
  for (auto& q : queues_) {
    q->SetDma(dma_address_space(),
              memory::MemTxAttrs::Requester(requester_id()));
  }
  ResetDevice();
  return device_->Realize();
}

void VirtioPciFunction::Unrealize() {
  device_->Unrealize();
  for (auto& q : queues_) q->SetDma(nullptr, memory::MemTxAttrs());
  cfg_cap_ = 0;
  bar4_.reset();
  msix_bar_.reset();
}

bool VirtioPciFunction::msix_enabled() const {
  return msix_ != nullptr && msix_->enabled();
}

uint8_t VirtioPciFunction::msix_cap() const {
  return msix_ != nullptr ? msix_->cap() : 0;
}

SplitVirtqueue& VirtioPciFunction::queue(unsigned index) {
  VIOMMU_CHECK(index < queues_.size(), "virtio queue index out of range");
  return *queues_[index];
}

uint32_t VirtioPciFunction::ConfigRead(uint32_t offset, unsigned size) {
  if (cfg_cap_ != 0 &&
      Overlaps(offset, size, cfg_cap_ + kPciCapOffCfgData, 4)) {
    CfgWindowAccess(/*is_write=*/false);
  }
  return PciDevice::ConfigRead(offset, size);
}

void VirtioPciFunction::ConfigWrite(uint32_t offset, uint32_t value,
                                    unsigned size) {
  PciDevice::ConfigWrite(offset, value, size);
  if (msix_ != nullptr && msix_->ConfigWritten(offset, size)) {
    SetIntx(false);  // MSI-X on: INTx deasserted
  }
  // QEMU's rule for a write that covers the command register's low byte:
  // without bus mastering the device stops and loses DRIVER_OK.
  if (offset <= kCfgCommand && kCfgCommand < offset + size) {
    if (!(command() & kCommandMaster)) {
      disabled_ = true;
      if (status_ & kStatusDriverOk) {
        SetStatus(static_cast<uint8_t>(status_ & ~kStatusDriverOk));
      }
    } else {
      disabled_ = false;
    }
  }
  if (cfg_cap_ != 0 &&
      Overlaps(offset, size, cfg_cap_ + kPciCapOffCfgData, 4)) {
    CfgWindowAccess(/*is_write=*/true);
  }
}

// The PCI configuration access capability: `length` (1, 2 or 4) bytes at
// `offset` (aligned down to the length) of BAR4, through pci_cfg_data.
void VirtioPciFunction::CfgWindowAccess(bool is_write) {
  uint8_t* cap = config() + cfg_cap_;
  const uint32_t len = static_cast<uint32_t>(LoadLe(cap + kPciCapOffLength, 4));
  if (len != 1 && len != 2 && len != 4) return;
  const uint64_t off = LoadLe(cap + kPciCapOffOffset, 4) & ~uint64_t{len - 1};
  if (off + len > kVirtioPciModernBarSize) return;
  const Area area = static_cast<Area>(off / kVirtioPciAreaSize);
  const uint64_t in_area = off % kVirtioPciAreaSize;
  if (in_mmio_) {  // reached from this function's own processing
    ++refused_reentrant_;
    return;
  }
  in_mmio_ = true;
  if (is_write) {
    AreaWrite(area, in_area, LoadLe(cap + kPciCapOffCfgData, len), len);
  } else {
    StoreLe(cap + kPciCapOffCfgData, AreaRead(area, in_area, len), len);
  }
  in_mmio_ = false;
}

void VirtioPciFunction::Reset() {
  ResetDevice();
  PciDevice::Reset();
  if (msix_ != nullptr) msix_->Reset();
}

// --- device state -----------------------------------------------------------

bool VirtioPciFunction::FeaturesAcceptable() {
  const uint64_t requested =
      uint64_t{driver_words_[1]} << 32 | driver_words_[0];
  if (requested & ~offered_) {
    VIOMMU_LOG_GUEST_ERROR(
        "%s: FEATURES_OK refused: features 0x%x were not offered", type_name(),
        requested & ~offered_);
    return false;
  }
  if (!(requested & FeatureBit(kFeatureVersion1))) {
    VIOMMU_LOG_GUEST_ERROR("%s: FEATURES_OK refused: VERSION_1 not accepted",
                           type_name());
    return false;
  }
  const absl::Status device_ok = device_->ValidateFeatures(requested);
  if (!device_ok.ok()) {
    VIOMMU_LOG_GUEST_ERROR("%s: FEATURES_OK refused: %s", type_name(),
                           device_ok.message());
    return false;
  }
  features_ = requested;
  return true;
}

void VirtioPciFunction::SetStatus(uint8_t value) {
  if (!(status_ & kStatusFeaturesOk) && (value & kStatusFeaturesOk) &&
      !FeaturesAcceptable()) {
    return;  // the whole write is refused
  }
  const uint8_t old = status_;
  status_ = value;
  if (value == 0) {
    ResetDevice();
    return;
  }
  if (old != value) device_->StatusChanged(old, value);
}

void VirtioPciFunction::ResetDevice() {
  device_->Reset();
  status_ = 0;
  isr_ = 0;
  broken_ = false;
  disabled_ = false;
  features_ = 0;
  queue_select_ = 0;
  config_vector_ = kNoVector;
  if (!msix_enabled()) LowerIntx();
  for (auto& q : queues_) q->Reset();
  std::fill(regs_.begin(), regs_.end(), QueueRegs{});
  if (msix_ != nullptr) msix_->UnuseAll();
}

void VirtioPciFunction::ResetQueue(unsigned index) {
  if (index < queues_.size()) {
    device_->QueueReset(index);
    queues_[index]->Reset();
  }
  regs_[index].enabled = false;
  regs_[index].vector = kNoVector;
}

void VirtioPciFunction::DeviceError(std::string_view what) {
  ++device_errors_;
  last_error_.assign(what);
  VIOMMU_LOG_GUEST_ERROR("%s: %s", type_name(), what);
  // As QEMU 7.2: the configuration interrupt goes out before the device is
  // marked broken (later interrupts do not).
  if (features_ & FeatureBit(kFeatureVersion1)) {
    const uint8_t old = status_;
    status_ |= kStatusNeedsReset;
    if (old != status_) device_->StatusChanged(old, status_);
    NotifyConfigChanged();
  }
  broken_ = true;
}

void VirtioPciFunction::NotifyQueue(unsigned index) {
  VIOMMU_CHECK(index < queues_.size(), "virtio queue index out of range");
  if (!queues_[index]->ShouldNotify()) return;
  isr_ |= kIsrQueue;
  RaiseVector(regs_[index].vector);
}

void VirtioPciFunction::NotifyConfigChanged() {
  if (!(status_ & kStatusDriverOk)) return;
  isr_ |= kIsrQueue | kIsrConfig;  // QEMU sets both bits
  ++generation_;
  RaiseVector(config_vector_);
}

void VirtioPciFunction::RaiseVector(uint16_t vector) {
  if (broken_) return;
  if (msix_enabled()) {
    if (vector != kNoVector) msix_->Notify(vector);
    return;
  }
  SetIntx((isr_ & kIsrQueue) != 0);
}

void VirtioPciFunction::LowerIntx() { SetIntx(false); }

}  // namespace viommu::hw::virtio
