#include "viommu/system/vm.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "viommu/util/status_macros.h"

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

absl::StatusOr<std::unique_ptr<Vm>> Vm::Create(const VmConfig& config) {
  if (!config.objects.empty()) {
    // iommufd and vfio-host-model arrive with the VFIO backend.
    const std::string& type = config.objects.front().head;
    return absl::InvalidArgumentError(
        absl::StrCat("-object ", type, ": object type '", type,
                     "' is not supported by this viommu"));
  }
  std::unique_ptr<Vm> vm(new Vm());
  VIOMMU_ASSIGN_OR_RETURN(
      vm->machine_, hw::Q35Machine::Create({.ram_size = config.ram_size}));
  for (const OptionList& d : config.devices) {
    absl::Status s = vm->machine_->AddDevice(ToDeviceSpec(d));
    if (!s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("-device ", d.head, ": ", s.message()));
    }
  }
  return vm;
}

void Vm::MemRead(uint64_t addr, void* buf, size_t len) {
  (void)machine_->system_as().Read(addr, buf, len);
}

void Vm::MemWrite(uint64_t addr, const void* buf, size_t len) {
  (void)machine_->system_as().Write(addr, buf, len);
}

uint32_t Vm::PortIn(uint16_t port, unsigned size) {
  uint32_t v = 0;
  (void)machine_->io_as().Read(port, &v, size);
  return v;
}

void Vm::PortOut(uint16_t port, uint32_t value, unsigned size) {
  (void)machine_->io_as().Write(port, &value, size);
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
