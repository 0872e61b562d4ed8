#include "viommu/system/vm.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "viommu/util/status_macros.h"
#include "viommu/vfio/host/host_platform_dtb.h"

namespace viommu::system {

hw::DeviceSpec ToDeviceSpec(const OptionList& device) {
  hw::DeviceSpec spec;
  spec.driver = device.head;
  for (const auto& [k, v] : device.props) {
    if (k == "id") {
      spec.id = v;
    } else {
      spec.props[k] = v;
    }
  }
  return spec;
}

namespace {

std::string ObjectText(const OptionList& o) {
  std::string text = o.head;
  for (const auto& [k, v] : o.props) absl::StrAppend(&text, ",", k, "=", v);
  return text;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Vm>> Vm::Create(const VmConfig& config) {
  std::optional<vfio::HostPlatform> platform;
  std::set<std::string> iommufds;
  for (const OptionList& o : config.objects) {
    const std::string id = o.Get("id").value_or("");
    const std::string where = absl::StrCat("-object ", ObjectText(o), ": ");
    if (o.head == "iommufd") {
      for (const auto& [k, v] : o.props) {
        if (k != "id" && k != "fd") {
          return absl::InvalidArgumentError(
              absl::StrCat(where, "Property 'iommufd.", k, "' not found"));
        }
      }
      if (!iommufds.insert(id).second) {
        return absl::AlreadyExistsError(
            absl::StrCat(where, "duplicate object id '", id, "'"));
      }
    } else if (o.head == "vfio-host-model") {
      if (config.vfio_host == "linux") {
        return absl::InvalidArgumentError(absl::StrCat(
            where,
            "describes the model host; it cannot be used with -machine "
            "vfio-host=linux (the real kernel's devices)"));
      }
      std::optional<std::string> dtb = o.Get("dtb");
      if (!dtb) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "Parameter 'dtb' is missing"));
      }
      if (platform) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "only one vfio-host-model object is allowed"));
      }
      absl::StatusOr<vfio::HostPlatform> p =
          vfio::ReadHostPlatformDtbFile(*dtb);
      if (!p.ok()) {
        return absl::Status(p.status().code(),
                            absl::StrCat(where, p.status().message()));
      }
      platform = *std::move(p);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("-object ", o.head, ": object type '", o.head,
                       "' is not supported by this viommu"));
    }
  }
  std::unique_ptr<Vm> vm(new Vm());
  VIOMMU_ASSIGN_OR_RETURN(
      vm->machine_, hw::Q35Machine::Create({.ram_size = config.ram_size}));
  if (config.vfio_host == "linux") {
    VIOMMU_ASSIGN_OR_RETURN(
        vm->vfio_,
        VfioPassthrough::CreateLinux(vm->machine_.get(), std::move(iommufds)));
  } else {
    VIOMMU_ASSIGN_OR_RETURN(
        vm->vfio_,
        VfioPassthrough::Create(
            vm->machine_.get(),
            platform ? *std::move(platform) : vfio::DefaultHostPlatform(),
            std::move(iommufds)));
  }
  for (const OptionList& d : config.devices) {
    absl::Status s = vm->AddColdDevice(d);
    if (!s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("-device ", d.head, ": ", s.message()));
    }
  }
  return vm;
}

absl::Status Vm::AddColdDevice(const OptionList& d) {
  hw::DeviceSpec spec = ToDeviceSpec(d);
  if (spec.driver == "vfio-pci") return vfio_->Add(spec);
  if (!hw::Q35Machine::IsViommuDriver(spec.driver)) {
    return machine_->AddDevice(spec);
  }
  // vfio-pci devices already plugged move into their vIOMMU address
  // spaces (and meet its host-IOMMU checks), at the slots they had.
  std::vector<VfioPassthrough::Spec> moved = vfio_->DetachAll();
  VIOMMU_RETURN_IF_ERROR(machine_->AddDevice(spec));
  for (const VfioPassthrough::Spec& m : moved) {
    VIOMMU_RETURN_IF_ERROR(vfio_->Add(m.device));
  }
  return absl::OkStatus();
}

Vm::~Vm() {
  vfio_.reset();
  machine_.reset();
}

absl::Status Vm::DeviceAdd(const hw::DeviceSpec& spec) {
  if (spec.driver == "vfio-pci") return vfio_->Add(spec);
  return machine_->HotplugDevice(spec);
}

absl::Status Vm::DeviceDel(const std::string& id) {
  if (vfio_->Owns(id)) return vfio_->Delete(id);
  return machine_->DeleteDevice(id);
}

int64_t Vm::ClockStep(int64_t ns) {
  const int64_t now = machine_->clock().Step(ns);
  PollInterrupts();
  return now;
}

std::optional<int64_t> Vm::ClockStepNext() {
  std::optional<int64_t> now = machine_->clock().StepToNextDeadline();
  PollInterrupts();
  return now;
}

int64_t Vm::ClockSet(int64_t ns) {
  const int64_t now = machine_->clock().AdvanceTo(ns);
  PollInterrupts();
  return now;
}

void Vm::MemRead(uint64_t addr, void* buf, size_t len) {
  (void)machine_->system_as().Read(addr, buf, len);
  PollInterrupts();
}

void Vm::MemWrite(uint64_t addr, const void* buf, size_t len) {
  (void)machine_->system_as().Write(addr, buf, len);
  PollInterrupts();
}

uint32_t Vm::PortIn(uint16_t port, unsigned size) {
  uint32_t v = 0;
  (void)machine_->io_as().Read(port, &v, size);
  PollInterrupts();
  return v;
}

void Vm::PortOut(uint16_t port, uint32_t value, unsigned size) {
  (void)machine_->io_as().Write(port, &value, size);
  PollInterrupts();
}

namespace {

bool IsIoapic(absl::string_view path) {
  return path == "ioapic" || path == "/machine/ioapic";
}

}  // namespace

absl::Status Vm::InterceptIrqIn(absl::string_view qom_path,
                                std::function<void(int, bool)> fn) {
  if (!IsIoapic(qom_path)) {
    return absl::NotFoundError(
        absl::StrCat("No device at path '", qom_path, "'"));
  }
  machine_->gsi().set_observer(std::move(fn));
  return absl::OkStatus();
}

absl::Status Vm::InterceptIrqOut(absl::string_view qom_path) {
  absl::string_view id = qom_path;
  const bool peripheral = absl::ConsumePrefix(&id, "/machine/peripheral/");
  if (IsIoapic(qom_path) ||
      (peripheral && machine_->pci_bus().FindById(std::string(id)))) {
    return absl::OkStatus();
  }
  return absl::NotFoundError(
      absl::StrCat("No device at path '", qom_path, "'"));
}

absl::Status Vm::SetIrqIn(absl::string_view qom_path, absl::string_view name,
                          uint64_t n, int64_t level) {
  if (!IsIoapic(qom_path)) return absl::NotFoundError("Unknown device");
  if (name != "unnamed-gpio-in" || n >= hw::kNumGsi) {
    return absl::NotFoundError("Unknown IRQ");
  }
  machine_->gsi().SetIrq(static_cast<int>(n), level != 0);
  return absl::OkStatus();
}

}  // namespace viommu::system
