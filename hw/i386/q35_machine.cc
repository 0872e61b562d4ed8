#include "viommu/hw/i386/q35_machine.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "hw/i386/device_factory.h"
#include "hw/i386/ich9_functions.h"
#include "hw/i386/ich9_reset_control.h"
#include "viommu/hw/iommu/virtio/virtio_iommu.h"
#include "viommu/hw/pci/pci_host.h"
#include "viommu/util/check.h"
#include "viommu/util/le_bytes.h"
#include "viommu/util/parse_devfn.h"
#include "viommu/util/status_macros.h"

namespace viommu::hw {
namespace {

using memory::MemoryRegion;
using memory::MemTxAttrs;
using memory::MemTxResult;

// QEMU's q35: all RAM below 4 GiB when it fits under 0xb0000000, else
// 2 GiB there and the rest from 4 GiB.
uint64_t RamBelow4g(uint64_t ram_size) {
  const uint64_t lowmem = ram_size >= kEcamBase ? 0x8000'0000 : kEcamBase;
  return std::min(ram_size, lowmem);
}

}  // namespace

class Q35Machine::UnassignedIo final : public memory::MmioOps {
 public:
  MemTxResult Read(uint64_t, uint64_t* value, unsigned size,
                   MemTxAttrs) override {
    *value = AllOnes(size);
    return MemTxResult::Ok();
  }
  MemTxResult Write(uint64_t, uint64_t, unsigned, MemTxAttrs) override {
    return MemTxResult::Ok();
  }
  memory::AccessRules valid() const override { return {1, 4, true}; }
  memory::AccessRules impl() const override { return {1, 4, true}; }
};

void GsiRouter::SetIrq(int line, bool level) {
  if (line < 0 || line >= kNumGsi || levels_[line] == level) return;
  levels_[line] = level;
  if (observer_) observer_(line, level);
}

bool GsiRouter::level(int gsi) const {
  return gsi >= 0 && gsi < kNumGsi && levels_[gsi];
}

absl::StatusOr<std::unique_ptr<Q35Machine>> Q35Machine::Create(
    const Options& options) {
  std::unique_ptr<Q35Machine> m(new Q35Machine());
  VIOMMU_RETURN_IF_ERROR(m->Init(options));
  return m;
}

Q35Machine::~Q35Machine() {
  // Devices first: they hold regions and address spaces of the system.
  pci_bus_.reset();
  viommu_.reset();
  system_as_.reset();
  io_as_.reset();
}

absl::Status Q35Machine::Init(const Options& options) {
  if (options.ram_size == 0 || options.ram_size % 4096 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("RAM size ", options.ram_size,
                     " must be a non-zero multiple of 4 KiB"));
  }
  ram_size_ = options.ram_size;
  below_4g_ = RamBelow4g(ram_size_);
  VIOMMU_ASSIGN_OR_RETURN(
      ram_, MemoryRegion::CreateRam(&memory_, "pc.ram", ram_size_));

  memory::MemorySystem::Transaction txn(&memory_);
  system_root_ = MemoryRegion::CreateContainer(&memory_, "system", kSize2To64);
  system_root_->AddSubregion(
      0,
      MemoryRegion::CreateAlias(&memory_, "ram-below-4g", ram_, 0, below_4g_));
  if (ram_size_ > below_4g_) {
    system_root_->AddSubregion(
        kFourGiB, MemoryRegion::CreateAlias(&memory_, "ram-above-4g", ram_,
                                            below_4g_, ram_size_ - below_4g_));
  }
  msi_region_ = MemoryRegion::CreateMmio(&memory_, "msi", kMsiSize, &msi_);
  system_root_->AddSubregionOverlap(kMsiBase, msi_region_, /*priority=*/-1);

  unassigned_io_ = std::make_unique<UnassignedIo>();
  io_root_ =
      MemoryRegion::CreateMmio(&memory_, "io", 0x10000, unassigned_io_.get());

  pci_bus_ = std::make_unique<pci::PciBus>(&memory_, &clock_, system_root_,
                                           io_root_, system_root_);
  // ICH9: PIRQ A..H reach IOAPIC inputs 16..23; slot and pin pick the PIRQ
  // as QEMU's default D<slot>IR routing does.
  pci_bus_->SetIntxSink(&gsi_, [](uint8_t devfn, int pin) {
    const int slot = devfn >> 3;
    return 16 + ((slot + pin - 1) % 4) + 4;
  });

  config_ports_ = std::make_unique<pci::PciConfigPorts>(pci_bus_.get());
  reset_control_ = std::make_unique<Ich9ResetControl>([this] {
    if (guest_reset_handler_) {
      guest_reset_handler_();
    } else {
      Reset();
    }
  });
  q35_config_ports_ = std::make_unique<Q35ConfigPorts>(config_ports_.get(),
                                                       reset_control_.get());
  io_root_->AddSubregion(0xcf8,
                         MemoryRegion::CreateMmio(&memory_, "pci-conf", 8,
                                                  q35_config_ports_.get()));
  ecam_ = std::make_unique<pci::PciEcam>(pci_bus_.get());

  system_as_ =
      std::make_unique<memory::AddressSpace>(&memory_, system_root_, "memory");
  io_as_ = std::make_unique<memory::AddressSpace>(&memory_, io_root_, "I/O");

  auto host = std::make_unique<pci::Q35HostBridge>();
  host->set_pciexbar_observer([this](uint64_t v) { UpdateEcam(v); });
  VIOMMU_RETURN_IF_ERROR(pci_bus_->Plug(std::move(host), 0).status());
  VIOMMU_RETURN_IF_ERROR(pci_bus_->Plug(Ich9Function::Lpc(), 0xf8).status());
  VIOMMU_RETURN_IF_ERROR(pci_bus_->Plug(Ich9Function::Ahci(), 0xfa).status());
  VIOMMU_RETURN_IF_ERROR(pci_bus_->Plug(Ich9Function::Smbus(), 0xfb).status());
  return absl::OkStatus();
}

void Q35Machine::UpdateEcam(uint64_t pciexbar) {
  pci::PciexbarDecode d = pci::DecodePciexbar(pciexbar);
  if (d.reserved_length) return;  // QEMU keeps the previous window
  memory::MemorySystem::Transaction txn(&memory_);
  if (ecam_region_ != nullptr) {
    system_root_->RemoveSubregion(ecam_region_.get());
    ecam_region_.reset();
  }
  if (!d.enabled) return;
  ecam_region_ = MemoryRegion::CreateMmio(&memory_, "pcie-mmcfg-mmio",
                                          d.window.size, ecam_.get());
  system_root_->AddSubregion(d.window.base, ecam_region_);
}

namespace {

// The vIOMMUs -device can add to q35. A driver's properties are checked
// before the one-vIOMMU rule (QEMU sets properties before realize).
struct ViommuDriver {
  std::string_view name;
  absl::Status (*check_properties)(const DeviceProps& props);
  absl::StatusOr<std::unique_ptr<Viommu>> (*create)(const DeviceProps& props,
                                                    const ViommuHost& host);
  // For a vIOMMU that is also a PCI function (virtio-iommu-pci): the
  // function, which refers to the vIOMMU the machine owns; nullptr for a
  // system-bus vIOMMU (its `addr` is then an unknown property).
  absl::StatusOr<std::unique_ptr<pci::PciDevice>> (*create_function)(
      Viommu& viommu);
};

constexpr ViommuDriver kViommuDrivers[] = {
    {vtd::VtdViommu::kDriver,
     [](const DeviceProps& props) {
       return vtd::ParseProperties(props).status();
     },
     [](const DeviceProps& props, const ViommuHost& host)
         -> absl::StatusOr<std::unique_ptr<Viommu>> {
       return vtd::VtdViommu::Create(props, host);
     },
     nullptr},
    {virtio_iommu::VirtioIommu::kDriver,
     [](const DeviceProps& props) {
       return virtio_iommu::ParseProperties(props).status();
     },
     [](const DeviceProps& props, const ViommuHost& host)
         -> absl::StatusOr<std::unique_ptr<Viommu>> {
       return virtio_iommu::VirtioIommu::Create(props, host);
     },
     [](Viommu& viommu) {
       return static_cast<virtio_iommu::VirtioIommu&>(viommu).CreateFunction();
     }},
};

const ViommuDriver* FindViommuDriver(std::string_view name) {
  for (const ViommuDriver& d : kViommuDrivers) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

}  // namespace

bool Q35Machine::IsViommuDriver(std::string_view driver) {
  return FindViommuDriver(driver) != nullptr;
}

vtd::IntelIommu* Q35Machine::intel_iommu() {
  auto* vtd = dynamic_cast<vtd::VtdViommu*>(viommu_.get());
  return vtd != nullptr ? &vtd->unit() : nullptr;
}

vtd::VtdEngine* Q35Machine::vtd_engine() {
  auto* vtd = dynamic_cast<vtd::VtdViommu*>(viommu_.get());
  return vtd != nullptr ? &vtd->engine() : nullptr;
}

absl::Status Q35Machine::AddViommu(const DeviceSpec& spec) {
  const ViommuDriver* driver = FindViommuDriver(spec.driver);
  VIOMMU_CHECK(driver != nullptr);
  VIOMMU_RETURN_IF_ERROR(driver->check_properties(spec.props));
  if (viommu_ != nullptr) {
    return absl::AlreadyExistsError(
        "QEMU does not support multiple vIOMMUs for x86 yet.");
  }
  if (!spec.id.empty() && pci_bus_->FindById(spec.id) != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat("Duplicate device ID '", spec.id, "'"));
  }
  const ViommuHost host{.memory = &memory_,
                        .system_root = system_root_,
                        .system_as = system_as_.get(),
                        .msi_region = msi_region_,
                        .msi = &msi_};
  VIOMMU_ASSIGN_OR_RETURN(std::unique_ptr<Viommu> viommu,
                          driver->create(spec.props, host));
  if (driver->create_function != nullptr) {
    // The function goes on the bus first (nothing changed if that fails);
    // ReplugForIommu below gives it its DMA root like every other device.
    // It refers to the vIOMMU, which the machine owns and destroys after
    // the bus, so no function's DMA root outlives its IOMMU model.
    std::optional<uint8_t> devfn;
    if (auto it = spec.props.find("addr"); it != spec.props.end()) {
      VIOMMU_ASSIGN_OR_RETURN(devfn, ParseDevfn(spec.driver, it->second));
    }
    VIOMMU_ASSIGN_OR_RETURN(std::unique_ptr<pci::PciDevice> fn,
                            driver->create_function(*viommu));
    fn->set_id(spec.id);
    VIOMMU_RETURN_IF_ERROR(pci_bus_->Plug(std::move(fn), devfn).status());
  }
  viommu_ = std::move(viommu);
  viommu_id_ = spec.id;
  pci_bus_->SetIommu(viommu_.get());
  return ReplugForIommu();
}

absl::Status Q35Machine::ReplugForIommu() {
  std::vector<uint8_t> plugged;
  pci_bus_->ForEachDevice(
      [&](pci::PciDevice* d) { plugged.push_back(d->devfn()); });
  memory::MemorySystem::Transaction txn(&memory_);
  for (uint8_t devfn : plugged) {
    VIOMMU_ASSIGN_OR_RETURN(std::unique_ptr<pci::PciDevice> dev,
                            pci_bus_->Unplug(devfn));
    VIOMMU_RETURN_IF_ERROR(pci_bus_->Plug(std::move(dev), devfn).status());
  }
  return absl::OkStatus();
}

absl::Status Q35Machine::HotplugDevice(const DeviceSpec& spec) {
  if (IsViommuDriver(spec.driver)) {
    return absl::InvalidArgumentError(
        "Parameter 'driver' expects a pluggable device type");
  }
  return AddDevice(spec);
}

absl::Status Q35Machine::AddDevice(const DeviceSpec& spec) {
  if (IsViommuDriver(spec.driver)) return AddViommu(spec);
  DeviceProps props = spec.props;
  std::optional<uint8_t> devfn;
  if (auto it = props.find("addr"); it != props.end()) {
    VIOMMU_ASSIGN_OR_RETURN(devfn, ParseDevfn(spec.driver, it->second));
    props.erase(it);
  }
  if (!spec.id.empty() &&
      (pci_bus_->FindById(spec.id) != nullptr || spec.id == viommu_id_)) {
    return absl::AlreadyExistsError(
        absl::StrCat("Duplicate device ID '", spec.id, "'"));
  }
  VIOMMU_ASSIGN_OR_RETURN(std::unique_ptr<pci::PciDevice> dev,
                          CreatePciDevice(spec.driver, props));
  dev->set_id(spec.id);
  return pci_bus_->Plug(std::move(dev), devfn).status();
}

absl::Status Q35Machine::DeleteDevice(const std::string& id) {
  pci::PciDevice* dev = id.empty() ? nullptr : pci_bus_->FindById(id);
  if (dev == nullptr && !id.empty() && id == viommu_id_) {
    return absl::FailedPreconditionError(
        "Bus 'main-system-bus' does not support hotplugging");
  }
  if (dev == nullptr) {
    return absl::NotFoundError(absl::StrCat("Device '", id, "' not found"));
  }
  if (!dev->hotpluggable()) {
    return absl::FailedPreconditionError(
        absl::StrCat("Device '", id, "' does not support hot-unplug"));
  }
  return pci_bus_->Unplug(dev->devfn()).status();
}

void Q35Machine::Reset() {
  reset_control_->Reset();
  pci_bus_->Reset();
  if (viommu_ != nullptr) viommu_->Reset();
}

}  // namespace viommu::hw
