// viommu/system/vfio_passthrough.h — VFIO passthrough wired into a q35
// machine: the host backend (vfio-host=model: ModelHost over a HostPlatform,
// its simulated devices' DMA on the machine's virtual clock; vfio-host=linux:
// LinuxHost, the running kernel's /dev/vfio and /dev/iommu), the VfioManager
// (containers) and the vfio-pci devices on the bus. Vm owns one.
//
//   VIOMMU_ASSIGN_OR_RETURN(auto vfio, VfioPassthrough::Create(
//       machine, vfio::DefaultHostPlatform(), {"fd0"}));
//   // or VfioPassthrough::CreateLinux(machine, {"fd0"}) for real devices
//   VIOMMU_RETURN_IF_ERROR(vfio->Add({.driver = "vfio-pci", .id = "nic0",
//       .props = {{"host", "0000:01:00.0"}, {"addr", "4"}}}));
//   vfio->PollInterrupts();          // after every guest-visible step
//   VIOMMU_RETURN_IF_ERROR(vfio->Delete("nic0"));   // zero host mappings
//
// Attach (per device, QEMU's vfio_pci_realize order): the container attach
// with the device's DMA address space (the vIOMMU's space for it,
// hw/core/viommu.h, else the machine's "memory" space, shared by every
// such device), the host IOMMU facts to the vIOMMU
// (PciBus::SetIommuDevice: VT-d refuses caching-mode=off and aw-bits
// wider than the host), the device fd, then
// the VfioPciDevice plugged at its devfn. Any failure undoes the earlier
// steps and names the device. After attach, container errors never fail
// anything: they are counted (errors()) and kept (last_error()).
//
// Lifetime: `machine` is not owned and outlives this; the destructor
// unplugs every vfio-pci device and tears every container down.
// Threading: control context only.
#ifndef VIOMMU_SYSTEM_VFIO_PASSTHROUGH_H_
#define VIOMMU_SYSTEM_VFIO_PASSTHROUGH_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "viommu/hw/i386/q35_machine.h"
#include "viommu/memory/address_space.h"
#include "viommu/system/vfio/vfio_pci_device.h"
#include "viommu/vfio/host/host_backend.h"
#include "viommu/vfio/host/host_platform.h"
#include "viommu/vfio/host/linux/linux_host.h"
#include "viommu/vfio/host/model/host_irq_sink.h"
#include "viommu/vfio/host/model/model_host.h"
#include "viommu/vfio/vfio_manager.h"

namespace viommu::system {

class VfioPassthrough {
 public:
  // One vfio-pci device as -device / device_add described it.
  struct Spec {
    hw::DeviceSpec device;
    uint8_t devfn = 0;
  };
  // `iommufds`: the ids of every `-object iommufd,id=ID`.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<VfioPassthrough>> Create(
      hw::Q35Machine* machine, vfio::HostPlatform platform,
      std::set<std::string> iommufds);
  // The same over the real kernel (LinuxHost with `options`).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<VfioPassthrough>>
  CreateLinux(hw::Q35Machine* machine, std::set<std::string> iommufds,
              vfio::LinuxHostOptions options = {});
  VfioPassthrough(const VfioPassthrough&) = delete;
  VfioPassthrough& operator=(const VfioPassthrough&) = delete;
  ~VfioPassthrough();

  // -device / device_add vfio-pci: properties host= (required), addr=,
  // iommufd=. Errors (each naming the device): kInvalidArgument (missing
  // or bad host, unknown property, unknown iommufd, bad addr), kNotFound
  // (no such host device), kAlreadyExists (slot or id in use, device
  // attached already), kFailedPrecondition (group in another address
  // space; VT-d without caching-mode), the container's first error.
  [[nodiscard]] absl::Status Add(const hw::DeviceSpec& spec);
  // device_del of a vfio-pci device: unplug, host IOMMU device unset,
  // container detach (the last device tears its container down: no host
  // mapping stays). Errors: kNotFound.
  [[nodiscard]] absl::Status Delete(const std::string& id);
  bool Owns(const std::string& id) const;
  // Unplugs and detaches every device (for a re-attach in new address
  // spaces once a vIOMMU is added); returns what re-adds them.
  std::vector<Spec> DetachAll();

  // Delivers the devices' pending interrupts (VfioPciDevice::PollInterrupts).
  void PollInterrupts();

  // x-query-vfio.
  std::vector<vfio::ContainerQuery> Query() const { return vfio_->Query(); }
  // QMP VFIO_IOVA_RANGES_CHANGED.
  void set_iova_ranges_changed_handler(
      std::function<void(uint32_t, const std::vector<Range>&)> fn) {
    ranges_changed_ = std::move(fn);
  }

  vfio::HostBackend& host() { return *host_; }
  // The model host behind host(), or null with vfio-host=linux.
  vfio::model::ModelHost* model_host() { return model_; }
  vfio::VfioManager& manager() { return *vfio_; }
  // Errors reported by containers after their initialisation, and failures
  // to undo an attach or to detach a device being removed.
  uint64_t errors() const { return errors_; }
  const absl::Status& last_error() const { return last_error_; }
  // Attached devices in attach order (host BDF, device).
  struct Attached {
    std::string id;
    vfio::HostPciAddress host;
    uint8_t devfn = 0;
    hw::DeviceSpec spec;
    std::unique_ptr<memory::AddressSpace> own_as;  // vIOMMU's, else null
  };
  const std::vector<std::unique_ptr<Attached>>& devices() const {
    return devices_;
  }
  VfioPciDevice* Device(const Attached& a) const;

 private:
  explicit VfioPassthrough(hw::Q35Machine* machine) : machine_(machine) {}
  void Init(std::unique_ptr<vfio::HostBackend> host,
            std::set<std::string> iommufds);
  [[nodiscard]] absl::Status Attach(const hw::DeviceSpec& spec);
  void Remove(Attached& a);
  // Counts a non-OK `s` in errors() and keeps it in last_error().
  void CountError(const absl::Status& s);

  hw::Q35Machine* const machine_;  // not owned
  std::set<std::string> iommufds_;
  vfio::model::EventfdIrqSink eventfds_;
  std::unique_ptr<vfio::HostBackend> host_;
  vfio::model::ModelHost* model_ = nullptr;  // host_ when it is the model
  std::unique_ptr<vfio::VfioManager> vfio_;
  std::vector<std::unique_ptr<Attached>> devices_;
  std::function<void(uint32_t, const std::vector<Range>&)> ranges_changed_;
  uint64_t errors_ = 0;
  absl::Status last_error_;
};

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_VFIO_PASSTHROUGH_H_
