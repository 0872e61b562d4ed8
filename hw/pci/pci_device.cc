// A PCI function's configuration space, BARs, bus mastering, INTx and MSI:
// QEMU's hw/pci/pci.c (pci_default_{read,write}_config, pci_register_bar,
// pci_update_mappings, pci_bar_address, pci_init_bus_master,
// pci_do_device_reset) and hw/pci/msi.c.
#include "viommu/hw/pci/pci_device.h"

#include <bit>
#include <cstring>
#include <utility>

#include "viommu/hw/pci/pci_bus.h"
#include "viommu/util/check.h"
#include "viommu/util/le_bytes.h"

namespace viommu::hw::pci {
namespace {

using memory::MemoryRegion;
using memory::MemTxAttrs;
using memory::MemTxResult;

// QEMU's pci_set_default_subsystem_id: Red Hat / QEMU.
constexpr uint16_t kDefaultSubsystemVendorId = 0x1af4;
constexpr uint16_t kDefaultSubsystemId = 0x1100;

bool RangesOverlap(uint32_t a, unsigned alen, uint32_t b, unsigned blen) {
  return a < b + blen && b < a + alen;
}

uint32_t BarOffset(int index) { return kCfgBar0 + 4 * index; }

uint32_t BarTypeBits(BarType type, bool prefetchable) {
  switch (type) {
    case BarType::kIo:
      return kBarSpaceIo;
    case BarType::kMem32:
      return prefetchable ? kBarMemPrefetch : 0;
    case BarType::kMem64:
      return kBarMemType64 | (prefetchable ? kBarMemPrefetch : 0);
  }
  return 0;
}

}  // namespace

PciDevice::PciDevice(std::string type_name, const PciDeviceInfo& info)
    : type_name_(std::move(type_name)), info_(info) {
  InitConfig();
}

PciDevice::~PciDevice() = default;

uint16_t PciDevice::requester_id() const {
  const uint16_t bus = bus_ != nullptr ? bus_->bus_number() : 0;
  return static_cast<uint16_t>(bus << 8 | devfn_);
}

memory::MemorySystem* PciDevice::memory() const {
  return bus_ != nullptr ? bus_->memory_system() : nullptr;
}

VirtualClock* PciDevice::clock() const {
  return bus_ != nullptr ? bus_->clock() : nullptr;
}

uint16_t PciDevice::command() const {
  return static_cast<uint16_t>(LoadLe(&config_[kCfgCommand], 2));
}

uint16_t PciDevice::status() const {
  return static_cast<uint16_t>(LoadLe(&config_[kCfgStatus], 2));
}

std::optional<uint64_t> PciDevice::BarMappedAddress(int index) const {
  if (index < 0 || index >= kNumBars) return std::nullopt;
  return bars_[index].mapped_at;
}

// QEMU's do_pci_register_device config setup and pci_init_{w,w1c}mask.
void PciDevice::InitConfig() {
  config_.fill(0);
  wmask_.fill(0);
  w1cmask_.fill(0);
  cap_used_.fill(false);
  bars_ = {};
  msi_cap_ = 0;
  intx_level_ = false;

  StoreLe(&config_[kCfgVendorId], info_.vendor_id, 2);
  StoreLe(&config_[kCfgDeviceId], info_.device_id, 2);
  config_[kCfgRevision] = info_.revision;
  StoreLe(&config_[kCfgClassProg], info_.class_code, 3);
  config_[kCfgHeaderType] = info_.multifunction ? kHeaderTypeMultiFunction : 0;
  const bool default_subsys =
      info_.subsystem_vendor_id == 0 && info_.subsystem_id == 0;
  StoreLe(
      &config_[kCfgSubsystemVendorId],
      default_subsys ? kDefaultSubsystemVendorId : info_.subsystem_vendor_id,
      2);
  StoreLe(&config_[kCfgSubsystemId],
          default_subsys ? kDefaultSubsystemId : info_.subsystem_id, 2);
  config_[kCfgInterruptPin] = info_.interrupt_pin;

  wmask_[kCfgCacheLineSize] = 0xff;
  wmask_[kCfgInterruptLine] = 0xff;
  StoreLe(&wmask_[kCfgCommand],
          kCommandIo | kCommandMemory | kCommandMaster | kCommandIntxDisable |
              kCommandSerr,
          2);
  std::memset(&wmask_[kConfigHeaderSize], 0xff,
              config_size() - kConfigHeaderSize);
  StoreLe(&w1cmask_[kCfgStatus], kStatusW1cBits, 2);
}

void PciDevice::Attach(PciBus* bus, uint8_t devfn,
                       std::shared_ptr<MemoryRegion> dma_root) {
  bus_ = bus;
  devfn_ = devfn;
  InitConfig();
  memory::MemorySystem* sys = bus->memory_system();
  bus_master_root_ =
      MemoryRegion::CreateContainer(sys, "bus master container", kSize2To64);
  bus_master_alias_ = MemoryRegion::CreateAlias(sys, "bus master", dma_root, 0,
                                                dma_root->size());
  bus_master_alias_->SetEnabled(false);
  bus_master_root_->AddSubregion(0, bus_master_alias_);
  dma_as_ =
      std::make_unique<memory::AddressSpace>(sys, bus_master_root_, type_name_);
}

void PciDevice::Detach() {
  SetIntx(false);
  {
    memory::MemorySystem::Transaction txn(bus_->memory_system());
    for (Bar& bar : bars_) {
      if (bar.mapped_at.has_value()) {
        bar.region->parent()->RemoveSubregion(bar.region.get());
        bar.mapped_at.reset();
      }
    }
  }
  dma_as_.reset();
  bus_master_root_.reset();
  bus_master_alias_.reset();
  WireIntx(nullptr, -1);
  InitConfig();  // drops BARs and capabilities: a later Plug realizes anew
  bus_ = nullptr;
}

void PciDevice::WireIntx(IrqSink* sink, int line) {
  intx_.Lower();  // the old sink sees the line go away
  intx_.Connect(sink, line);
  UpdateIntxPin();
}

uint32_t PciDevice::ConfigRead(uint32_t offset, unsigned size) {
  VIOMMU_CHECK(size >= 1 && size <= 4 && offset + size <= config_size());
  return static_cast<uint32_t>(LoadLe(&config_[offset], size));
}

void PciDevice::ConfigWrite(uint32_t offset, uint32_t value, unsigned size) {
  VIOMMU_CHECK(size >= 1 && size <= 4 && offset + size <= config_size());
  ApplyConfigWrite(config_.data(), wmask_.data(), w1cmask_.data(), offset,
                   value, size);
  const bool command = RangesOverlap(offset, size, kCfgCommand, 2);
  if (command || RangesOverlap(offset, size, kCfgBar0, 24) ||
      RangesOverlap(offset, size, kCfgRomAddress, 4)) {
    UpdateBars();
  }
  // QEMU only looks at the command register when its low byte is written;
  // a write of the high byte alone (INTX_DISABLE) takes effect here too.
  if (command) {
    UpdateIntxPin();
    UpdateBusMaster();
  }
  MsiWriteConfig(offset, size);
  ConfigWritten(offset, size);
}

void PciDevice::Reset() {
  SetIntx(false);
  const uint16_t cmd_clear = static_cast<uint16_t>(
      LoadLe(&wmask_[kCfgCommand], 2) | LoadLe(&w1cmask_[kCfgCommand], 2));
  StoreLe(&config_[kCfgCommand], command() & ~cmd_clear, 2);
  const uint16_t status_clear = static_cast<uint16_t>(
      LoadLe(&wmask_[kCfgStatus], 2) | LoadLe(&w1cmask_[kCfgStatus], 2));
  StoreLe(&config_[kCfgStatus], status() & ~status_clear, 2);
  config_[kCfgInterruptLine] &=
      ~(wmask_[kCfgInterruptLine] | w1cmask_[kCfgInterruptLine]);
  config_[kCfgCacheLineSize] = 0;
  for (int i = 0; i < kNumBars; ++i) {
    const Bar& bar = bars_[i];
    if (bar.region == nullptr) continue;
    const uint64_t type = BarTypeBits(bar.type, bar.prefetchable);
    StoreLe(&config_[BarOffset(i)], type, bar.type == BarType::kMem64 ? 8 : 4);
  }
  if (bus_ != nullptr) {
    UpdateBars();
    UpdateBusMaster();
  }
  UpdateIntxPin();
  MsiReset();
}

void PciDevice::PowerOnConfigReset() {
  Reset();
  // Reset() brought every register with a reset rule (COMMAND, BARs, MSI,
  // INTx) to its power-on value and updated the mappings; what is left
  // differs only in bytes without side effects.
  config_ = power_on_config_;
}

void PciDevice::RegisterBar(int index, BarType type, bool prefetchable,
                            std::shared_ptr<MemoryRegion> region) {
  const bool is64 = type == BarType::kMem64;
  VIOMMU_CHECK(index >= 0 && index + (is64 ? 1 : 0) < kNumBars,
               "BAR index out of range");
  VIOMMU_CHECK(bars_[index].region == nullptr &&
                   (!is64 || bars_[index + 1].region == nullptr),
               "BAR slot already in use");
  VIOMMU_CHECK(region != nullptr);
  VIOMMU_CHECK(region->size() <= (is64 ? kSize2To64 >> 1 : Size128{1} << 32),
               "BAR too large");
  const uint64_t size = static_cast<uint64_t>(region->size());
  VIOMMU_CHECK(
      std::has_single_bit(size) && size >= (type == BarType::kIo ? 4u : 16u),
      "BAR size must be a power of two (>= 16 memory, >= 4 I/O)");
  VIOMMU_CHECK(!(type == BarType::kIo && prefetchable),
               "I/O BARs are not prefetchable");
  bars_[index] = Bar{.type = type,
                     .prefetchable = prefetchable,
                     .region = std::move(region),
                     .mapped_at = std::nullopt};
  const uint32_t off = BarOffset(index);
  const uint64_t wmask = ~(size - 1);
  StoreLe(&config_[off], BarTypeBits(type, prefetchable), is64 ? 8 : 4);
  StoreLe(&wmask_[off], is64 ? wmask : (wmask & 0xffffffff), is64 ? 8 : 4);
}

// QEMU's pci_bar_address with allow_0_address off (q35).
std::optional<uint64_t> PciDevice::BarDecodeAddress(int index) const {
  const Bar& bar = bars_[index];
  const uint64_t size = static_cast<uint64_t>(bar.region->size());
  const uint32_t off = BarOffset(index);
  const uint16_t cmd = command();
  if (bar.type == BarType::kIo) {
    if (!(cmd & kCommandIo)) return std::nullopt;
    const uint64_t addr = LoadLe(&config_[off], 4) & ~(size - 1);
    const uint64_t last = addr + size - 1;
    if (last <= addr || last >= UINT32_MAX || addr == 0) return std::nullopt;
    return addr;
  }
  if (!(cmd & kCommandMemory)) return std::nullopt;
  uint64_t addr = LoadLe(&config_[off], 4);
  if (bar.type == BarType::kMem64) {
    addr |= uint64_t{LoadLe(&config_[off + 4], 4)} << 32;
  }
  addr &= ~(size - 1);
  const uint64_t last = addr + size - 1;
  // Wrapping, the all-ones "unmapped" value and 0 are not mappings.
  if (last <= addr || last == UINT64_MAX || addr == 0) return std::nullopt;
  if (bar.type != BarType::kMem64 && last >= UINT32_MAX) return std::nullopt;
  return addr;
}

// QEMU's pci_update_mappings: BARs at their decoded address, priority 1.
void PciDevice::UpdateBars() {
  if (bus_ == nullptr) return;
  memory::MemorySystem::Transaction txn(bus_->memory_system());
  for (int i = 0; i < kNumBars; ++i) {
    Bar& bar = bars_[i];
    if (bar.region == nullptr) continue;
    const std::optional<uint64_t> addr = BarDecodeAddress(i);
    if (addr == bar.mapped_at) continue;
    if (bar.mapped_at.has_value()) {
      bar.region->parent()->RemoveSubregion(bar.region.get());
    }
    bar.mapped_at = addr;
    if (addr.has_value()) {
      MemoryRegion* space =
          bar.type == BarType::kIo ? bus_->io_space() : bus_->memory_space();
      space->AddSubregionOverlap(*addr, bar.region, /*priority=*/1);
    }
  }
}

void PciDevice::UpdateBusMaster() {
  if (bus_master_alias_ == nullptr) return;
  const bool enable = (command() & kCommandMaster) != 0;
  if (bus_master_alias_->enabled() != enable) {
    bus_master_alias_->SetEnabled(enable);
  }
}

void PciDevice::SetIntx(bool level) {
  intx_level_ = level;
  UpdateIntxPin();
}

// QEMU's pci_irq_handler / pci_update_irq_status / pci_update_irq_disabled.
void PciDevice::UpdateIntxPin() {
  uint16_t st = status();
  st = intx_level_ ? (st | kStatusInterrupt) : (st & ~kStatusInterrupt);
  StoreLe(&config_[kCfgStatus], st, 2);
  intx_.Set(intx_level_ && !(command() & kCommandIntxDisable));
}

memory::MemTxResult PciDevice::DmaRead(uint64_t addr, void* buf, size_t len) {
  if (dma_as_ == nullptr) return MemTxResult::DecodeError();
  return dma_as_->Read(addr, buf, len, MemTxAttrs::Requester(requester_id()));
}

memory::MemTxResult PciDevice::DmaWrite(uint64_t addr, const void* buf,
                                        size_t len) {
  if (dma_as_ == nullptr) return MemTxResult::DecodeError();
  return dma_as_->Write(addr, buf, len, MemTxAttrs::Requester(requester_id()));
}

}  // namespace viommu::hw::pci
