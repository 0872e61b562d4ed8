// viommu/system/vm.h — one virtual machine as build/viommu runs it: the q35
// machine built from a VmConfig, the -device list realised, and the
// operations the qtest and QMP front ends perform on it.
//
//   VIOMMU_ASSIGN_OR_RETURN(auto vm, Vm::Create(config));
//   vm->MemWrite(0x1000, "\x01", 1);
//   vm->ClockStep(100'000'000);
//
// Threading: control context only (the GLib main loop's thread).
#ifndef VIOMMU_SYSTEM_VM_H_
#define VIOMMU_SYSTEM_VM_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "viommu/hw/i386/q35_machine.h"
#include "viommu/system/command_line.h"
#include "viommu/system/qtest/qtest_target.h"
#include "viommu/system/vfio_passthrough.h"

namespace viommu::system {

class Vm final : public QtestTarget {
 public:
  // Builds the machine and plugs every -device in order. Objects:
  // `iommufd,id=ID` (a /dev/iommu for vfio-pci's iommufd=ID) and
  // `vfio-host-model,id=ID,dtb=FILE` (the model host platform; at most one).
  // vfio-pci devices given before the vIOMMU (intel-iommu) are re-attached
  // in its address spaces (command-line order does not matter, as QEMU).
  // vfio-host=linux selects the running kernel's /dev/vfio (LinuxHost)
  // instead of the model host. Errors: kInvalidArgument for an unknown
  // object type, a bad blob, or vfio-host-model together with
  // vfio-host=linux; kAlreadyExists for a duplicate object id; the
  // machine's, the host backend's or the first device's,
  // prefixed with the offending -device / -object text.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Vm>> Create(
      const VmConfig& config);
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;
  // vfio-pci devices first (they need the host backend), then the machine.
  ~Vm() override;

  hw::Q35Machine& machine() { return *machine_; }
  VfioPassthrough& vfio() { return *vfio_; }

  // qtest's view: CPU accesses to system memory and I/O ports, with
  // unspecified attributes. Unassigned memory reads 0, writes vanish.
  void MemRead(uint64_t addr, void* buf, size_t len) override;
  void MemWrite(uint64_t addr, const void* buf, size_t len) override;
  uint32_t PortIn(uint16_t port, unsigned size) override;
  void PortOut(uint16_t port, uint32_t value, unsigned size) override;

  // Clock commands; passthrough devices' interrupts raised by what ran
  // (host DMA completions) are delivered before they return.
  int64_t ClockStep(int64_t ns) override;
  std::optional<int64_t> ClockNow() override {
    return machine_->clock().now_ns();
  }
  std::optional<int64_t> ClockStepNext() override;
  int64_t ClockSet(int64_t ns) override;

  // irq_intercept_in: only the machine's interrupt controller ("ioapic")
  // can be intercepted; level changes go to `fn` (qtest IRQ lines).
  [[nodiscard]] absl::Status InterceptIrqIn(
      absl::string_view qom_path, std::function<void(int, bool)> fn) override;
  [[nodiscard]] absl::Status InterceptIrqOut(
      absl::string_view qom_path) override;
  // Only the interrupt controller's unnamed inputs (GSIs) can be driven.
  [[nodiscard]] absl::Status SetIrqIn(absl::string_view qom_path,
                                      absl::string_view name, uint64_t n,
                                      int64_t level) override;

  // QMP device_add/device_del/system_reset (vfio-pci included).
  [[nodiscard]] absl::Status DeviceAdd(const hw::DeviceSpec& spec);
  [[nodiscard]] absl::Status DeviceDel(const std::string& id);
  void SystemReset() { machine_->Reset(); }

  // Delivers pending passthrough interrupts (after every qtest command and
  // main-loop iteration).
  void PollInterrupts() { vfio_->PollInterrupts(); }

 private:
  Vm() = default;
  [[nodiscard]] absl::Status AddColdDevice(const OptionList& d);
  std::unique_ptr<hw::Q35Machine> machine_;
  std::unique_ptr<VfioPassthrough> vfio_;
};

// Converts an OptionList from -device into a DeviceSpec (id split out).
hw::DeviceSpec ToDeviceSpec(const OptionList& device);

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_VM_H_
