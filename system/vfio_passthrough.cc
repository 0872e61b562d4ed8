#include "viommu/system/vfio_passthrough.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "viommu/devcore/host_iommu_device.h"
#include "viommu/util/parse_devfn.h"
#include "viommu/util/status_macros.h"
#include "viommu/vfio/host/model/host_device.h"

namespace viommu::system {
namespace {

// "vfio-pci 'id' (host 0000:01:00.0)" for messages.
std::string DeviceName(const std::string& id, const std::string& host) {
  return id.empty() ? absl::StrCat("vfio-pci (host ", host, ")")
                    : absl::StrCat("vfio-pci '", id, "' (host ", host, ")");
}

[[nodiscard]] absl::Status Prefix(const absl::Status& s,
                                  const std::string& name) {
  return absl::Status(s.code(), absl::StrCat(name, ": ", s.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<VfioPassthrough>> VfioPassthrough::Create(
    hw::Q35Machine* machine, vfio::HostPlatform platform,
    std::set<std::string> iommufds) {
  std::unique_ptr<VfioPassthrough> p(new VfioPassthrough(machine));
  VIOMMU_ASSIGN_OR_RETURN(
      std::unique_ptr<vfio::model::ModelHost> model,
      vfio::model::ModelHost::Create(
          std::move(platform),
          vfio::model::ModelHostOptions{
              .device_factory = vfio::model::ModelHostDevice::Factory(
                  {.timers = &machine->clock(), .irq_sink = &p->eventfds_})}));
  p->model_ = model.get();
  p->Init(std::move(model), std::move(iommufds));
  return p;
}

absl::StatusOr<std::unique_ptr<VfioPassthrough>> VfioPassthrough::CreateLinux(
    hw::Q35Machine* machine, std::set<std::string> iommufds,
    vfio::LinuxHostOptions options) {
  std::unique_ptr<VfioPassthrough> p(new VfioPassthrough(machine));
  p->Init(std::make_unique<vfio::LinuxHost>(std::move(options)),
          std::move(iommufds));
  return p;
}

void VfioPassthrough::Init(std::unique_ptr<vfio::HostBackend> host,
                           std::set<std::string> iommufds) {
  iommufds_ = std::move(iommufds);
  host_ = std::move(host);
  VfioPassthrough* self = this;
  vfio_ = std::make_unique<vfio::VfioManager>(
      host_.get(),
      vfio::VfioManager::Options{
          .on_error =
              [self](uint32_t id, const absl::Status& s) {
                ++self->errors_;
                self->last_error_ = absl::Status(
                    s.code(),
                    absl::StrFormat("vfio container %u: %s", id, s.message()));
              },
          .on_iova_ranges_changed =
              [self](uint32_t id, const std::vector<Range>& r) {
                if (self->ranges_changed_) self->ranges_changed_(id, r);
              }});
}

VfioPassthrough::~VfioPassthrough() {
  while (!devices_.empty()) {
    Remove(*devices_.back());
    devices_.pop_back();
  }
  vfio_.reset();  // every container torn down before the host goes
  model_ = nullptr;
  host_.reset();
}

VfioPciDevice* VfioPassthrough::Device(const Attached& a) const {
  return static_cast<VfioPciDevice*>(machine_->pci_bus().Find(a.devfn));
}

bool VfioPassthrough::Owns(const std::string& id) const {
  return !id.empty() && std::any_of(devices_.begin(), devices_.end(),
                                    [&](const auto& a) { return a->id == id; });
}

absl::Status VfioPassthrough::Add(const hw::DeviceSpec& spec) {
  std::string host_text;
  if (auto it = spec.props.find("host"); it != spec.props.end()) {
    host_text = it->second;
  }
  absl::Status s = Attach(spec);
  if (s.ok() || absl::StartsWith(s.message(), "vfio-pci")) return s;
  return Prefix(s, DeviceName(spec.id, host_text.empty() ? "?" : host_text));
}

absl::Status VfioPassthrough::Attach(const hw::DeviceSpec& spec) {
  hw::pci::PciBus& bus = machine_->pci_bus();
  std::optional<vfio::HostPciAddress> host;
  std::optional<uint8_t> devfn;
  std::string iommufd;
  for (const auto& [k, v] : spec.props) {
    if (k == "host") {
      VIOMMU_ASSIGN_OR_RETURN(host, vfio::HostPciAddress::Parse(v));
    } else if (k == "addr") {
      VIOMMU_ASSIGN_OR_RETURN(devfn, ParseDevfn("vfio-pci", v));
    } else if (k == "iommufd") {
      if (!iommufds_.contains(v)) {
        return absl::InvalidArgumentError(
            absl::StrCat("Property 'vfio-pci.iommufd' can't find value '", v,
                         "' (no -object iommufd,id=", v, ")"));
      }
      iommufd = v;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("Property 'vfio-pci.", k, "' not found"));
    }
  }
  if (!host) {
    return absl::InvalidArgumentError(
        "Parameter 'host' is missing (host=SSSS:BB:DD.F)");
  }
  if (model_ != nullptr && model_->platform().FindDevice(*host) == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("host device ", host->ToString(),
                     " does not exist on the model host (see -object "
                     "vfio-host-model)"));
  }
  if (absl::StatusOr<uint32_t> group = host_->IommuGroupOf(*host);
      !group.ok()) {
    return absl::NotFoundError(absl::StrCat(
        group.status().message(),
        "; is it bound to vfio-pci (driver_override, drivers_probe)?"));
  }
  if (!spec.id.empty() && bus.FindById(spec.id) != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat("Duplicate device ID '", spec.id, "'"));
  }
  if (!devfn) {
    for (unsigned slot = 1; slot < 32 && !devfn; ++slot) {
      if (bus.Find(static_cast<uint8_t>(slot << 3)) == nullptr) {
        devfn = static_cast<uint8_t>(slot << 3);
      }
    }
    if (!devfn) {
      return absl::ResourceExhaustedError(
          "PCI: no slot/function available for vfio-pci, all in use");
    }
  } else if (const hw::pci::PciDevice* other = bus.Find(*devfn)) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "PCI: slot %d function %d not available for vfio-pci, in use by %s",
        *devfn >> 3, *devfn & 7, other->type_name()));
  }
  const std::string bdf = host->ToString();
  auto a = std::make_unique<Attached>();
  a->id = spec.id;
  a->host = *host;
  a->devfn = *devfn;
  a->spec = spec;
  a->spec.props["addr"] = absl::StrFormat("%02x.%x", *devfn >> 3, *devfn & 7);
  memory::AddressSpace* as = &machine_->system_as();
  if (hw::Viommu* iommu = bus.iommu()) {
    a->own_as = std::make_unique<memory::AddressSpace>(
        &machine_->memory(), iommu->DmaRoot(bus.bus_number(), *devfn),
        iommu->DmaSpaceName(bus.bus_number(), *devfn));
    as = a->own_as.get();
  }
  VIOMMU_RETURN_IF_ERROR(
      vfio_->AttachDevice(as, {.host = *host, .iommufd = iommufd}).status());
  // A failed undo is counted (errors()); the attach's own error is the
  // one returned.
  auto undo_attach = [&] { CountError(vfio_->DetachDevice(*host)); };
  absl::StatusOr<devcore::HostIommuDevice> hiod = vfio_->HostIommuInfo(*host);
  if (!hiod.ok()) {
    undo_attach();
    return hiod.status();
  }
  hiod->name = DeviceName(spec.id, bdf);
  if (absl::Status s = bus.SetIommuDevice(*devfn, *hiod); !s.ok()) {
    undo_attach();
    return s;  // the vIOMMU's message names the device already
  }
  auto undo = [&] {
    bus.UnsetIommuDevice(*devfn);
    undo_attach();
  };
  absl::StatusOr<int> fd = vfio_->DeviceFd(*host);
  if (!fd.ok()) {
    undo();
    return fd.status();
  }
  absl::StatusOr<std::unique_ptr<VfioPciDevice>> dev =
      VfioPciDevice::Create(host_.get(), *fd, bdf);
  if (!dev.ok()) {
    undo();
    return dev.status();
  }
  (*dev)->set_id(spec.id);
  if (absl::Status s = bus.Plug(*std::move(dev), *devfn).status(); !s.ok()) {
    undo();
    return s;
  }
  devices_.push_back(std::move(a));
  return absl::OkStatus();
}

void VfioPassthrough::Remove(Attached& a) {
  hw::pci::PciBus& bus = machine_->pci_bus();
  // Unplug first: the device's BAR mmaps leave the topology (and any
  // container that mapped them for P2P) before its fd closes.
  CountError(bus.Unplug(a.devfn).status());
  bus.UnsetIommuDevice(a.devfn);
  CountError(vfio_->DetachDevice(a.host));
}

void VfioPassthrough::CountError(const absl::Status& s) {
  if (s.ok()) return;
  ++errors_;
  last_error_ = s;
}

absl::Status VfioPassthrough::Delete(const std::string& id) {
  auto it = std::find_if(devices_.begin(), devices_.end(),
                         [&](const auto& a) { return a->id == id; });
  if (id.empty() || it == devices_.end()) {
    return absl::NotFoundError(absl::StrCat("Device '", id, "' not found"));
  }
  Remove(**it);
  devices_.erase(it);
  return absl::OkStatus();
}

std::vector<VfioPassthrough::Spec> VfioPassthrough::DetachAll() {
  std::vector<Spec> out;
  for (auto& a : devices_) out.push_back({a->spec, a->devfn});
  while (!devices_.empty()) {
    Remove(*devices_.back());
    devices_.pop_back();
  }
  return out;
}

void VfioPassthrough::PollInterrupts() {
  for (const auto& a : devices_) {
    if (VfioPciDevice* d = Device(*a)) d->PollInterrupts();
  }
}

}  // namespace viommu::system
